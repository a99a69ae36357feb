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
        for row in rows:
            self.dataChanged.emit(*self._span(row, row))

    def _all_changed(self) -> None:
        if self.session.items:
            self.dataChanged.emit(*self._span(0, len(self.session.items) - 1))
