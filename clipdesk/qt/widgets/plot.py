"""A small live line plot (training loss and validation accuracy), painted with QPainter."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QWidget

LOSS_COLOUR = QColor("#2e7dd7")
ACC_COLOUR = QColor("#2e9d4f")


class TrainingPlot(QWidget):
    """Loss per step on the left axis (auto-scaled); validation accuracy per epoch on 0–100 %."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPlot")
        self.loss: list[tuple[float, float]] = []  # (x, loss), x = fractional epoch
        self.accuracy: list[tuple[float, float]] = []  # (epoch, accuracy 0..1)
        self.setMinimumHeight(170)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(480, 220)

    def clear(self) -> None:
        self.loss, self.accuracy = [], []
        self.update()

    def add_loss(self, x: float, value: float) -> None:
        self.loss.append((x, float(value)))
        self.update()

    def add_accuracy(self, epoch: float, value: float) -> None:
        self.accuracy.append((epoch, float(value)))
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        area = QRectF(self.rect()).adjusted(48, 14, -48, -26)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.drawRect(area)
        text = palette.color(QPalette.ColorRole.Text)
        if not self.loss and not self.accuracy:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "Loss and validation accuracy appear here")
            return
        # Loss is per step, accuracy per epoch (the quick method reports only accuracy): each
        # series spans the width on its own x scale, both run from start to the latest point.
        def scale(series):
            xs = [x for x, _ in series]
            x0, span = min(xs), (max(xs) - min(xs)) or 1.0
            return lambda x: area.left() + (x - x0) / span * area.width()

        if self.loss:
            values = [v for _, v in self.loss]
            low, high = min(values), max(values)
            high = high if high > low else low + 1.0
            px = scale(self.loss)
            self._line(painter, [(px(x), area.bottom() - (v - low) / (high - low) * area.height())
                                 for x, v in self.loss], LOSS_COLOUR)
            painter.setPen(LOSS_COLOUR)
            painter.drawText(QRectF(0, area.top() - 7, 44, 14), Qt.AlignmentFlag.AlignRight, f"{high:.3g}")
            painter.drawText(QRectF(0, area.bottom() - 7, 44, 14), Qt.AlignmentFlag.AlignRight, f"{low:.3g}")
            painter.drawText(QRectF(area.left(), 0, 200, 14), Qt.AlignmentFlag.AlignLeft,
                             f"loss {values[-1]:.4f}")
        if self.accuracy:
            px = scale(self.accuracy)
            points = [(px(x), area.bottom() - v * area.height()) for x, v in self.accuracy]
            self._line(painter, points, ACC_COLOUR, dots=True)
            painter.setPen(ACC_COLOUR)
            painter.drawText(QRectF(area.right() + 4, area.top() - 7, 44, 14), Qt.AlignmentFlag.AlignLeft, "100%")
            painter.drawText(QRectF(area.right() + 4, area.bottom() - 7, 44, 14), Qt.AlignmentFlag.AlignLeft, "0%")
            painter.drawText(QRectF(area.right() - 200, 0, 200, 14), Qt.AlignmentFlag.AlignRight,
                             f"val. accuracy {self.accuracy[-1][1]:.1%}")
        painter.setPen(text)
        painter.drawText(QRectF(area.left(), area.bottom() + 6, area.width(), 16),
                         Qt.AlignmentFlag.AlignCenter, "training progress →")

    @staticmethod
    def _line(painter: QPainter, points: list[tuple[float, float]], colour: QColor, dots: bool = False) -> None:
        painter.setPen(QPen(colour, 2))
        if len(points) > 1:
            path = QPainterPath(QPointF(*points[0]))
            for point in points[1:]:
                path.lineTo(QPointF(*point))
            painter.drawPath(path)
        if dots or len(points) == 1:
            painter.setBrush(colour)
            for x, y in points:
                painter.drawEllipse(QPointF(x, y), 3, 3)
