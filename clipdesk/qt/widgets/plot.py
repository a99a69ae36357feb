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
        metrics = painter.fontMetrics()
        labels = self._loss_range()
        ticks = [f"{v:.3g}" for v in labels] if labels else []
        left = max([metrics.horizontalAdvance(t) for t in ticks] + [24]) + 10  # never cut: measured
        right = metrics.horizontalAdvance("100%") + 10
        line = metrics.height()
        area = QRectF(self.rect()).adjusted(left, line + 10, -right, -(line + 12))
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
            low, high = labels
            px = scale(self.loss)
            self._line(painter, [(px(x), area.bottom() - (v - low) / (high - low) * area.height())
                                 for x, v in self.loss], LOSS_COLOUR)
            painter.setPen(LOSS_COLOUR)
            half = line / 2
            painter.drawText(QRectF(0, area.top() - half, left - 6, line), Qt.AlignmentFlag.AlignRight, ticks[1])
            painter.drawText(QRectF(0, area.bottom() - half, left - 6, line), Qt.AlignmentFlag.AlignRight, ticks[0])
            painter.drawText(QRectF(area.left(), 0, area.width() / 2, line), Qt.AlignmentFlag.AlignLeft,
                             f"loss {values[-1]:.4g}")
        if self.accuracy:
            px = scale(self.accuracy)
            points = [(px(x), area.bottom() - v * area.height()) for x, v in self.accuracy]
            self._line(painter, points, ACC_COLOUR, dots=True)
            painter.setPen(ACC_COLOUR)
            half = line / 2
            painter.drawText(QRectF(area.right() + 4, area.top() - half, right, line), Qt.AlignmentFlag.AlignLeft, "100%")
            painter.drawText(QRectF(area.right() + 4, area.bottom() - half, right, line), Qt.AlignmentFlag.AlignLeft, "0%")
            painter.drawText(QRectF(area.center().x(), 0, area.width() / 2, line), Qt.AlignmentFlag.AlignRight,
                             f"val. accuracy {self.accuracy[-1][1]:.1%}")
        painter.setPen(text)
        painter.drawText(QRectF(area.left(), area.bottom() + 6, area.width(), line),
                         Qt.AlignmentFlag.AlignCenter, "training progress →")

    def _loss_range(self) -> tuple[float, float] | None:
        if not self.loss:
            return None
        values = [v for _, v in self.loss]
        low, high = min(values), max(values)
        return low, (high if high > low else low + 1.0)

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
