"""Repaints of an item view while results stream in: a few a second, and none out of sight.

Every repaint of the grid or the table calls Python for each card or cell, and each of those
calls waits for the GIL that the decode threads hold: repainting once per classified batch (30 a
second) took the GUI thread's share of the two cores and stalled it for 100-200 ms (issue 21).
A view's `dataChanged` hands its range to `RepaintPacer.changed`, which repaints at once after a
quiet spell, then at most every `interval_ms`, and never for rows above or below the viewport.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

REPAINT_MS = 200  # the most often a view repaints while results stream in (5 a second)


def maybe_visible(view, top_left, bottom_right) -> bool:
    """False only when rows first..last surely lie above or below the viewport (both lists
    and tables put later rows lower); a row not laid out yet has no rectangle: maybe visible."""
    if not top_left.isValid() or not bottom_right.isValid():
        return True
    first, last = view.visualRect(top_left), view.visualRect(bottom_right)
    if first.isEmpty() or last.isEmpty():
        return True
    return first.top() < view.viewport().height() and last.bottom() >= 0


class RepaintPacer(QObject):
    def __init__(self, view, interval_ms: int = REPAINT_MS) -> None:
        super().__init__(view)
        self.view = view
        self._cooldown = QTimer(self, singleShot=True, interval=interval_ms)
        self._cooldown.timeout.connect(self._repaint_if_due)
        self._due = False

    def changed(self, top_left, bottom_right) -> None:
        if not maybe_visible(self.view, top_left, bottom_right):
            return
        if self._cooldown.isActive():
            self._due = True
            return
        self.view.viewport().update()
        self._cooldown.start()

    def _repaint_if_due(self) -> None:
        if self._due:
            self._due = False
            self.view.viewport().update()
            self._cooldown.start()
