"""Keeps a Qt item model's rows in step with a core `Session`'s events (shared by the grid and table)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex


class SessionRowsMixin:
    """Subclasses set `self.session` and call `_follow_session()`; `_span(first, last)` names
    the (top-left, bottom-right) indexes of a run of rows."""

    def _follow_session(self) -> None:
        session = self.session
        session.on("added", self._added)
        session.on("about_to_reset", self.beginResetModel)
        session.on("reset", self.endResetModel)
        session.on("changed", self._changed)
        session.on("scores", self._all_changed)
        session.on("options", lambda _keys: self._all_changed())

    def _added(self, first: int, last: int) -> None:
        self.beginInsertRows(QModelIndex(), first, last)
        self.endInsertRows()

    def _changed(self, rows) -> None:
        # One signal per run of adjacent rows: a classified batch is 32 rows in a row, and every
        # dataChanged costs the proxies and views a pass of their own.
        for first, last in row_runs(rows):
            self.dataChanged.emit(*self._span(first, last))

    def _all_changed(self) -> None:
        if self.session.items:
            self.dataChanged.emit(*self._span(0, len(self.session.items) - 1))


def row_runs(rows) -> list[tuple[int, int]]:
    """Sorted (first, last) runs of consecutive row numbers: [5, 1, 2, 3] -> [(1, 3), (5, 5)]."""
    runs: list[tuple[int, int]] = []
    for row in sorted(set(rows)):
        if runs and row == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs
