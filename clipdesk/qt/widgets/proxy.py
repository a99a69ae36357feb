"""A filter/sort proxy shared by the grid and the table: filter by predicted label, search order.

The view order is one numpy array of session rows, computed from the session's vectorised
decisions and similarities: filtering, ranking or sorting 20,000 images costs milliseconds and
never calls Python once per row (a QSortFilterProxyModel calls `lessThan` n·log n times).
Reordering keeps the selection (`layoutChanged` with persistent indexes); only a change in which
rows are shown resets the view.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractProxyModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from clipdesk.core.session import Session

ALL = ""
_NO_PARENT = QModelIndex()


class SessionProxy(QAbstractProxyModel):
    """Rows are session rows. While a search is active, best matches come first (the grid);
    the table sorts by a column from `sort_keys(column)` of its source model."""

    order_changed = Signal()  # after every refresh: `is_identity()` may have changed

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.label_filter = ALL
        self.search_order = True  # the grid follows search ranking; the table sorts by column
        self.sort_column = -1
        self.sort_order = Qt.SortOrder.AscendingOrder
        self._columns = 0
        self._rows = np.zeros(0, np.int64)  # view row → session row
        self._pos = np.zeros(0, np.int64)  # session row → view row, -1 when filtered out
        self._later = QTimer(self, singleShot=True, interval=30)  # coalesces per-batch changes
        self._later.timeout.connect(self.refresh)
        session.on("scores", self.refresh)
        session.on("options", lambda _keys: self.refresh())

    # -- source -----------------------------------------------------------------------------------
    def setSourceModel(self, model) -> None:  # noqa: N802
        super().setSourceModel(model)
        self._columns = self.columnCount()
        model.rowsInserted.connect(self._inserted)
        model.modelAboutToBeReset.connect(self.beginResetModel)
        model.modelReset.connect(self._source_reset)
        model.dataChanged.connect(self._source_changed)
        self.beginResetModel()
        self._set_order(self._order())
        self.endResetModel()

    def _source_reset(self) -> None:
        self._set_order(self._order())
        self.endResetModel()
        self.order_changed.emit()

    def view_rows(self, session_rows: np.ndarray) -> np.ndarray:
        """Where session rows are in this order (-1: filtered out)."""
        rows = np.asarray(session_rows, np.int64)
        rows = rows[(rows >= 0) & (rows < len(self._pos))]
        return self._pos[rows]

    def is_identity(self) -> bool:
        """Nothing filtered, ranked or sorted: the source model's order is the view's order."""
        if self.label_filter:
            return False
        if self.search_order:
            return not self.session.search_query
        return self.sort_column < 0 or getattr(self.sourceModel(), "sort_keys", None) is None

    def _inserted(self, _parent, first: int, last: int) -> None:
        """Rows are only ever appended; new rows have no score or match, so they go last."""
        new = np.arange(first, last + 1, dtype=np.int64)
        self._pos = np.concatenate([self._pos, np.full(len(new), -1, np.int64)])
        if self.label_filter:
            return  # an image without a decision matches no label
        start = len(self._rows)
        self.beginInsertRows(_NO_PARENT, start, start + len(new) - 1)
        self._rows = np.concatenate([self._rows, new])
        self._pos[new] = np.arange(start, start + len(new))
        self.endInsertRows()

    def _source_changed(self, top_left: QModelIndex, bottom_right: QModelIndex) -> None:
        # Takes no `roles`: re-emitting PySide's converted role list crashed (refcount) under load.
        positions = self._pos[top_left.row():bottom_right.row() + 1]
        positions = positions[positions >= 0]
        if len(positions):
            self.dataChanged.emit(self.index(int(positions.min()), 0),
                                  self.index(int(positions.max()), self._columns - 1))
        if self.label_filter or (not self.search_order and self.sort_column > 0):
            self._later.start()  # a decision changed: which rows show, or their order, may too

    # -- order ------------------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        n = len(self.session.items)
        rows = np.arange(n, dtype=np.int64)
        if self.label_filter:
            rows = rows[self.session.label_mask(self.label_filter)[:n]]
        keys = self._keys(n)
        if keys is None:
            return rows
        keys = keys[rows]
        if keys.dtype.kind == "f":
            missing = np.isnan(keys)
            known = rows[~missing]
            order = np.argsort(keys[~missing], kind="stable")
            if self.sort_order == Qt.SortOrder.DescendingOrder:
                order = np.argsort(-keys[~missing], kind="stable")
            return np.concatenate([known[order], rows[missing]])  # no value: last, either way
        order = np.argsort(keys, kind="stable")
        if self.sort_order == Qt.SortOrder.DescendingOrder:
            order = order[::-1]
        return rows[order]

    def _keys(self, n: int) -> np.ndarray | None:
        """One sort key per session row, or None for the order images were added in."""
        if self.search_order:
            if not self.session.search_query:
                return None
            return -self.session.similarity_array()  # best match first
        if self.sort_column < 0:
            return None
        keys_of: Callable | None = getattr(self.sourceModel(), "sort_keys", None)
        return None if keys_of is None else keys_of(self.sort_column)

    def _set_order(self, rows: np.ndarray) -> None:
        self._rows = rows
        self._pos = np.full(len(self.session.items), -1, np.int64)
        self._pos[rows] = np.arange(len(rows))

    def refresh(self) -> None:
        """Recompute the order: a re-sort keeps the selection; a new set of rows resets."""
        self._later.stop()
        if self.sourceModel() is None:
            return
        self._reorder(self._order())
        self.order_changed.emit()

    def _reorder(self, rows: np.ndarray) -> None:
        if np.array_equal(rows, self._rows):
            return
        if len(rows) != len(self._rows) or not np.array_equal(np.sort(rows), np.sort(self._rows)):
            self.beginResetModel()
            self._set_order(rows)
            self.endResetModel()
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        sources = [int(self._rows[index.row()]) for index in old]
        self._set_order(rows)
        self.changePersistentIndexList(old, [self.index(int(self._pos[s]), index.column())
                                             for s, index in zip(sources, old)])
        self.layoutChanged.emit()

    def set_label_filter(self, label: str) -> None:
        self.label_filter = label
        self.refresh()

    def refilter(self) -> None:
        self.refresh()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sort_column, self.sort_order = column, order
        self.refresh()

    # -- QAbstractProxyModel ----------------------------------------------------------------------
    def index(self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> QModelIndex:
        if parent.isValid() or not (0 <= row < len(self._rows)) or not (0 <= column < self._columns):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, child=None):  # QObject.parent() without an argument
        if child is None:
            return super().parent()
        return QModelIndex()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def multiData(self, index, roles) -> None:  # noqa: N802
        """All the roles a painted cell asks for, handed to the source in one call (Qt's proxy
        would map the index again for each role: two Python calls per role)."""
        source = self.sourceModel()
        if source is None:
            for role_data in roles:
                role_data.clearData()
            return
        source.multiData(self.mapToSource(index), roles)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> int:  # noqa: N802
        source = self.sourceModel()
        if parent.isValid() or source is None:
            return 0
        return 1 if isinstance(source, QAbstractListModel) else source.columnCount()

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = _NO_PARENT) -> bool:  # noqa: N802
        return not parent.isValid() and len(self._rows) > 0

    def mapToSource(self, proxy_index: QModelIndex | QPersistentModelIndex) -> QModelIndex:  # noqa: N802
        if not proxy_index.isValid() or proxy_index.row() >= len(self._rows):
            return QModelIndex()
        return self.sourceModel().index(int(self._rows[proxy_index.row()]), proxy_index.column())

    def mapFromSource(self, source_index: QModelIndex | QPersistentModelIndex) -> QModelIndex:  # noqa: N802
        if not source_index.isValid() or source_index.row() >= len(self._pos):
            return QModelIndex()
        position = int(self._pos[source_index.row()])
        return QModelIndex() if position < 0 else self.createIndex(position, source_index.column())
