"""A bar per label for the selected image, best first (painted, no chart library)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from .image_grid import ACCENT, UNSURE_COLOUR

ROW = 22


class ScoreBars(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("scoreBars")
        self.scores: list[tuple[str, float]] = []
        self.chosen: set[str] = set()
        self.unsure = False
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    def set_scores(self, scores: list[tuple[str, float]], chosen: set[str] | None = None,
                   unsure: bool = False) -> None:
        self.scores, self.chosen, self.unsure = scores, chosen or set(), unsure
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(260, max(1, len(self.scores)) * ROW + 4)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(160, max(1, len(self.scores)) * ROW + 4)

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        metrics = QFontMetrics(self.font())
        bold_font = self.font()
        bold_font.setBold(True)
        bold = QFontMetrics(bold_font)  # chosen labels are drawn bold: measure them that way
        if not self.scores:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No scores yet")
            return
        name_width = min(self.width() // 3, max(bold.horizontalAdvance(n) for n, _ in self.scores) + 8)
        value_width = metrics.horizontalAdvance("100.0%") + 6
        bar_width = max(10, self.width() - name_width - value_width - 4)
        for i, (name, score) in enumerate(self.scores):
            y = 2 + i * ROW
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            font = self.font()
            font.setBold(name in self.chosen)
            painter.setFont(font)
            text = (bold if font.bold() else metrics).elidedText(
                name, Qt.TextElideMode.ElideRight, name_width - 6)
            painter.drawText(QRect(0, y, name_width - 6, ROW), Qt.AlignmentFlag.AlignVCenter, text)
            track = QRect(name_width, y + 5, bar_width, ROW - 10)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase).darker(105))
            painter.drawRoundedRect(track, 3, 3)
            fill = QRect(track)
            fill.setWidth(max(2, int(bar_width * max(0.0, min(1.0, score)))))
            colour = UNSURE_COLOUR if (self.unsure and i == 0) else ACCENT
            if name not in self.chosen and not (self.unsure and i == 0):
                colour = colour.lighter(150)
            painter.setBrush(colour)
            painter.drawRoundedRect(fill, 3, 3)
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawText(QRect(name_width + bar_width + 4, y, value_width, ROW),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, f"{score:.1%}")
