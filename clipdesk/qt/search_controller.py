"""Search and Find similar: the search box, the ranked-view chip, and the search tasks.

A text query or a picture ranks every encoded image on the model worker (≈ 10 ms at 20,000),
which also lays the result out as one similarity per encoded image (no list over 20,000 rows on
the GUI thread); the views re-sort from the similarities without rebuilding, the table one
event-loop turn after the grid so that neither turn holds the GUI for long. The ranked view is visible state
("Search: red car ✕", "Similar to IMG_0042 ✕"); the chip, Esc and an emptied box end it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLineEdit, QPushButton, QStyle

from clipdesk.core.errors import Cancelled

from .worker import Task


def _aligned(ranked: list[tuple[int, float]], n: int) -> tuple[np.ndarray, int]:
    """(similarity per feature row, the best row or -1), on the worker: `ranked` is best first."""
    values = np.full(n, np.nan, np.float32)
    if ranked:
        rows, cosines = zip(*ranked)
        values[np.asarray(rows, np.int64)] = cosines
    return values, (ranked[0][0] if ranked else -1)


class SearchController(QObject):
    """Owns `box` (the toolbar's search field), `chip` (above the grid) and `similar_action`."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.task: Task | None = None
        self.box = QLineEdit()
        self.box.setObjectName("searchBox")
        self.box.setPlaceholderText("Search by text, e.g. “a red car at night” — Enter")
        self.box.setClearButtonEnabled(True)
        self.box.setMinimumWidth(140)  # reflows at 800 px: the toolbar keeps "Show" in view
        self.box.returnPressed.connect(lambda: self.search(self.box.text()))
        self.box.textChanged.connect(lambda text: text.strip() or self.clear())
        self.chip = QPushButton()  # "Search: red car ✕": the ranked view is visible state
        self.chip.setObjectName("rankedChip")
        self.chip.setToolTip("Back to the order images were added in (Esc)")
        self.chip.setStyleSheet("QPushButton { border-radius: 10px; padding: 2px 10px; "
                                "background: #dbe9fb; color: #1a4f8b; }")
        self.chip.clicked.connect(self.clear)
        self.chip.hide()
        self.similar_action = QAction(window.style().standardIcon(QStyle.StandardPixmap.SP_FileDialogContentsView),
                                      "Find &similar", window)
        self.similar_action.setObjectName("findSimilarAction")
        self.similar_action.setToolTip("Rank images by similarity to the selected one")
        self.similar_action.triggered.connect(
            lambda: window.details.path and self.find_similar(window.details.path))
        self.similar_action.setEnabled(False)
        self.session.on("scores", self._show_ranked_state)

    def search(self, query: str) -> None:
        query = query.strip()
        if not query:
            self.clear()
            return
        paths, features = self.session.features()
        if not paths or not self.window.model_ready:
            self.window.show_message("Nothing to search yet: add images and wait for them to be encoded.", 5000)
            return
        self._start(f"Search: {query}", paths,
                    lambda worker, _t: _aligned(worker.engine.search_text(query, features), len(paths)))

    def find_similar(self, path: Path) -> None:
        row = self.session.row_of(path)
        item = self.session.items[row] if row is not None else None
        if item is None or item.vector is None or not self.window.model_ready:
            return
        paths, features = self.session.features()
        vector = item.vector
        self._start(f"Similar to {path.name}", paths,
                    lambda worker, _t: _aligned(worker.engine.search_image(vector, features), len(paths)))

    def _start(self, query: str, paths: list[Path], factory) -> None:
        if self.task is not None:
            self.task.cancel()

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda ranked: self._searched(task, query, paths, ranked))
            task.signals.errored.connect(lambda error: self._failed(task, error))

        self.task = self.window.worker.submit("search", factory, connect=connect)

    def _searched(self, task: Task, query: str, paths: list[Path], result: tuple[np.ndarray, int]) -> None:
        if task is not self.task:
            return
        self.task = None
        window = self.window
        values, best = result
        self.session.set_similarity(paths, values, query)  # the grid re-sorts now, the table next turn
        QTimer.singleShot(0, self, self._sort_table)
        best = f" Best: {paths[best].name}." if best >= 0 else ""
        window.show_message(f"Ranked {len(paths)} images ({query}).{best}")
        window.image_view.scrollToTop()
        window.results_updated.emit()

    def _sort_table(self) -> None:
        if self.session.search_query:  # unless the search was cleared in between
            self.window.results_table.sortByColumn(5, Qt.SortOrder.DescendingOrder)

    def _failed(self, task: Task, error) -> None:
        if task is self.task:
            self.task = None
            if not isinstance(error, Cancelled):
                self.window.show_message(str(error), 6000)

    def clear(self) -> None:
        """Back to the order images were added in (the chip, Esc, or an emptied box)."""
        if self.box.text():
            self.box.blockSignals(True)
            self.box.clear()
            self.box.blockSignals(False)
        if self.session.search_query:
            self.session.set_similarity(None)
            self.window.results_table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
            self.window._idle_message()

    def focus(self) -> None:
        """Ctrl+F."""
        self.box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.box.selectAll()

    def _show_ranked_state(self) -> None:
        query = self.session.search_query
        self.chip.setText(f"{query}  ✕")
        self.chip.setVisible(bool(query))
