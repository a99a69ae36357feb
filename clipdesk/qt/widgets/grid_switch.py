"""The grid shows its C++-backed source model directly while nothing is ranked or filtered.

QListView asks its model for `index()` about 1,600 times per scroll step at 2,000 rows; through
the Python `SessionProxy` each is a Python call (≈ 25 ms a step, growing with the rows). With no
search, filter or sort the proxy is an identity, so the view is given the source model and those
calls stay in C++; the proxy takes over only while its order differs. The switch keeps the
selection and the current image.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QObject, Signal
from PySide6.QtWidgets import QAbstractItemView

from .proxy import SessionProxy


class GridModelSwitch(QObject):
    """Gives `view` the proxy's source or the proxy, whichever is needed; re-emits `currentChanged`."""

    current_changed = Signal(QModelIndex)  # from whichever selection model the view has now

    def __init__(self, view: QAbstractItemView, proxy: SessionProxy, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view, self.proxy = view, proxy
        self._attach(self._wanted())
        proxy.order_changed.connect(self.update)

    def _wanted(self):
        return self.proxy.sourceModel() if self.proxy.is_identity() else self.proxy

    def update(self) -> None:
        wanted = self._wanted()
        if self.view.model() is not wanted:
            self._attach(wanted)

    def _source_row(self, index: QModelIndex) -> int:
        return self.proxy.mapToSource(index).row() if index.model() is self.proxy else index.row()

    def _view_rows(self, model, session_rows: list[int]) -> np.ndarray:
        rows = np.asarray(session_rows, np.int64)
        rows = self.proxy.view_rows(rows) if model is self.proxy else rows[rows < model.rowCount()]
        return np.sort(rows[rows >= 0])

    def _attach(self, model) -> None:
        view = self.view
        old = view.selectionModel()
        rows, current = [], []
        if old is not None and view.model() is not None:
            rows = [self._source_row(index) for index in old.selectedIndexes()]
            current = [self._source_row(old.currentIndex())] if old.currentIndex().isValid() else []
        view.setModel(model)
        selection_model = view.selectionModel()
        selection_model.currentChanged.connect(lambda index, _previous: self.current_changed.emit(index))
        rows = self._view_rows(model, rows)
        if len(rows):
            selection = QItemSelection()
            breaks = np.flatnonzero(np.diff(rows) != 1)  # contiguous runs: one range each
            for first, last in zip(rows[np.r_[0, breaks + 1]], rows[np.r_[breaks, len(rows) - 1]]):
                selection.select(model.index(int(first), 0), model.index(int(last), 0))
            selection_model.select(selection, QItemSelectionModel.SelectionFlag.Select)
        current = self._view_rows(model, current)
        if len(current):
            selection_model.setCurrentIndex(model.index(int(current[0]), 0),
                                            QItemSelectionModel.SelectionFlag.NoUpdate)
