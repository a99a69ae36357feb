"""A small live line plot (training loss and validation accuracy), painted with QPainter.

Axes carry "nice" ticks (1-2-5 steps, or powers of ten when the loss spans two decades or more)
in a short format ("1e-9", "0.25", "2.5k"); every label is measured with the painter's font and
thinned until none is cut or overlaps another, from a loss of 1e-9 to 1e3 and 1 to 10,000 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QWidget

LOSS_COLOUR = QColor("#2e7dd7")
ACC_COLOUR = QColor("#2e9d4f")
PAD = 4  # between a label and what it labels; labels are kept this far apart


@dataclass
class TickLabel:
    text: str
    rect: QRectF
    colour: QColor | None
    align: Qt.AlignmentFlag


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5 or 5 × 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def log_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Powers of ten covering [low, high] (both > 0), every k-th decade so that about `count` remain."""
    first, last = math.floor(math.log10(low) + 1e-9), math.ceil(math.log10(high) - 1e-9)
    every = max(1, math.ceil((last - first) / max(1, count - 1)))
    first = every * math.floor(first / every)
    return [10.0 ** e for e in range(first, last + every, every)]


def _decimals(x: float) -> int:
    """The fewest decimals that write `x` exactly (0.25: 2; 500: 0)."""
    return next((d for d in range(13) if abs(round(x * 10**d) - x * 10**d) < 1e-6 * max(1.0, abs(x) * 10**d)), 12)


def format_tick(value: float, step: float) -> str:
    """Short and exact enough to tell neighbours `step` apart: 0.25, 1.5e-9, 1e3, 2.5k."""
    if value == 0:
        return "0"
    size, step = abs(value), abs(step) or abs(value)
    if 10_000 <= size < 1e6 and step >= 100:
        return f"{value / 1000:.{max(_decimals(step / 1000), _decimals(value / 1000))}f}" + "k"
    if 1e-3 <= size < 1e5 and step >= 1e-3:
        return f"{value:.{max(_decimals(step), min(_decimals(value), 3))}f}"
    scale = 10.0 ** math.floor(math.log10(size) + 1e-9)  # the mantissa's unit
    mantissa = f"{value / scale:.{min(3, _decimals(value / scale))}f}"  # a multiple of step: exact
    return f"{mantissa}e{round(math.log10(scale))}"


class TrainingPlot(QWidget):
    """Loss per step on the left axis (auto-scaled, log when it spans decades); validation accuracy
    per epoch on 0–100 % on the right; the x axis counts steps (epochs when there is no loss)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPlot")
        self.loss: list[tuple[float, float]] = []  # (step, loss)
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

    # -- scales ---------------------------------------------------------------------------------
    def _loss_values(self) -> list[float]:
        return [v for _, v in self.loss if math.isfinite(v)]

    def _log_scale(self) -> bool:
        values = self._loss_values()
        return bool(values) and min(values) > 0 and max(values) / min(values) >= 100

    def _loss_ticks(self, count: int) -> list[float]:
        values = self._loss_values() or [0.0, 1.0]
        low, high = min(values), max(values)
        if self._log_scale():
            return log_ticks(low, high, count)
        if high - low <= abs(high) * 1e-9:  # flat: a band around the value
            low, high = low - (abs(low) or 1.0) * 0.5, high + (abs(high) or 1.0) * 0.5
        return nice_ticks(low, high, count)

    def _x_series(self) -> list[tuple[float, float]]:
        return self.loss or self.accuracy

    @staticmethod
    def _x_range(series) -> tuple[float, float]:
        xs = [x for x, _ in series] or [0.0, 1.0]
        low, high = min(xs), max(xs)
        return (low, high) if high > low else (low, low + 1.0)

    # -- layout: the plot area and every label, measured ------------------------------------------
    def _area(self, metrics: QFontMetricsF, loss_labels: list[str]) -> QRectF:
        line = metrics.height()
        caption = "step" if self.loss else "epoch"
        left = max([metrics.horizontalAdvance(t) for t in [*loss_labels, caption]] + [24.0]) + 2 * PAD
        right = metrics.horizontalAdvance("100%") + 2 * PAD
        margin = self._margin(line)  # a header or the x labels, clear of half a y label
        return QRectF(self.rect()).adjusted(left, margin, -right, -margin)

    @staticmethod
    def _margin(line: float) -> float:
        return 1.5 * line + 2 * PAD

    def tick_labels(self) -> list[TickLabel]:
        """Every text the plot draws, with the rectangle it is drawn in (what the tests measure)."""
        metrics = QFontMetricsF(self.font())
        line = metrics.height()
        labels: list[TickLabel] = []
        loss_ticks = self._fitting_y_ticks(self._loss_ticks, line) if self.loss else []
        loss_text = self._texts(loss_ticks, self._log_scale())
        area = self._area(metrics, loss_text)
        if area.width() <= 0 or area.height() <= 0:
            return []
        self._add_headers(labels, metrics, area)
        for value, text in zip(loss_ticks, loss_text):
            y = self._loss_y(value, loss_ticks, area)
            labels.append(TickLabel(text, QRectF(0, y - line / 2, area.left() - PAD, line), LOSS_COLOUR,
                                    Qt.AlignmentFlag.AlignRight))
        if self.accuracy:
            ticks = self._fitting_y_ticks(lambda count: nice_ticks(0.0, 1.0, count), line)
            for value in ticks:
                y = area.bottom() - value * area.height()
                labels.append(TickLabel(f"{value:.0%}", QRectF(area.right() + PAD, y - line / 2,
                                                               self.width() - area.right() - PAD, line),
                                        ACC_COLOUR, Qt.AlignmentFlag.AlignLeft))
        labels += self._x_labels(metrics, area)
        return labels

    def _fitting_y_ticks(self, ticks_for, line: float) -> list[float]:
        """The most ticks (up to 6) whose labels stand at least a line and PAD apart."""
        room = self.height() - 2 * self._margin(line)
        for count in (6, 5, 4, 3, 2):
            ticks = ticks_for(count)
            if len(ticks) <= 2 or room / (len(ticks) - 1) >= line + PAD:
                return ticks
        return ticks_for(2)[:: max(1, len(ticks_for(2)) - 1)]

    @staticmethod
    def _texts(ticks: list[float], log: bool) -> list[str]:
        if log:  # decades: all plain (0.01 … 1000) or all as powers (1e-9 … 1e3), never mixed
            exponents = [round(math.log10(t)) for t in ticks]
            if all(-2 <= e <= 3 for e in exponents):
                return [format_tick(t, t) for t in ticks]
            return [f"1e{e}" for e in exponents]
        step = ticks[1] - ticks[0] if len(ticks) > 1 else (abs(ticks[0]) if ticks else 1.0)
        return [format_tick(t, step) for t in ticks]

    def _loss_y(self, value: float, ticks: list[float], area: QRectF) -> float:
        low, high = ticks[0], ticks[-1]
        if self._log_scale():
            value, low, high = math.log10(max(value, 1e-300)), math.log10(low), math.log10(high)
        span = (high - low) or 1.0
        return area.bottom() - (value - low) / span * area.height()

    def _x_labels(self, metrics: QFontMetricsF, area: QRectF) -> list[TickLabel]:
        """x ticks (steps, or epochs without a loss): as many as fit side by side, within the widget."""
        low, high = self._x_range(self._x_series())
        line = metrics.height()
        top = area.bottom() + line / 2 + PAD  # below the lowest y label
        caption = TickLabel("step" if self.loss else "epoch", QRectF(0, top, area.left() - PAD, line),
                            None, Qt.AlignmentFlag.AlignRight)
        whole = all(float(x).is_integer() for x, _ in self._x_series())  # steps, epochs: no "1.5"
        for count in (8, 6, 5, 4, 3, 2):
            ticks = [t for t in nice_ticks(low, high, count) if low - 1e-9 <= t <= high + 1e-9
                     and (not whole or float(t).is_integer())] or [low, high]
            step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
            labels = []
            for value in ticks:
                text = format_tick(value, step)
                width = metrics.horizontalAdvance(text) + PAD
                x = area.left() + (value - low) / (high - low) * area.width() - width / 2
                x = min(max(x, area.left()), self.width() - width)
                labels.append(TickLabel(text, QRectF(x, top, width, line), None, Qt.AlignmentFlag.AlignCenter))
            if all(a.rect.right() + PAD <= b.rect.left() for a, b in zip(labels, labels[1:])):
                return [caption, *labels]
        return [caption, labels[0], labels[-1]] if len(labels) > 1 else [caption, *labels]

    def _add_headers(self, labels: list[TickLabel], metrics: QFontMetricsF, area: QRectF) -> None:
        """The latest values, above the plot: the loss on the left half, accuracy on the right."""
        half = self.width() / 2 - PAD
        line = metrics.height()
        if self.loss:
            value = self.loss[-1][1]
            short = f"{value:.4g}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
            text = metrics.elidedText(f"loss {short}", Qt.TextElideMode.ElideRight, half)
            labels.append(TickLabel(text, QRectF(0, 0, half, line), LOSS_COLOUR, Qt.AlignmentFlag.AlignLeft))
        if self.accuracy:
            text = metrics.elidedText(f"val. accuracy {self.accuracy[-1][1]:.1%}", Qt.TextElideMode.ElideRight, half)
            labels.append(TickLabel(text, QRectF(self.width() - half, 0, half, line), ACC_COLOUR,
                                    Qt.AlignmentFlag.AlignRight))

    # -- painting -------------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        metrics = QFontMetricsF(self.font())
        if not self.loss and not self.accuracy:
            area = self._area(metrics, [])
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
            painter.drawRect(area)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "Loss and validation accuracy appear here")
            return
        loss_ticks = self._fitting_y_ticks(self._loss_ticks, metrics.height()) if self.loss else []
        area = self._area(metrics, self._texts(loss_ticks, self._log_scale()))
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.drawRect(area)
        if self.loss:
            low, high = self._x_range(self.loss)
            points = [(area.left() + (x - low) / (high - low) * area.width(), self._loss_y(v, loss_ticks, area))
                      for x, v in self.loss if math.isfinite(v)]
            self._line(painter, points, LOSS_COLOUR)
        if self.accuracy:
            low, high = self._x_range(self.accuracy)
            points = [(area.left() + (x - low) / (high - low) * area.width(), area.bottom() - v * area.height())
                      for x, v in self.accuracy]
            self._line(painter, points, ACC_COLOUR, dots=True)
        for label in self.tick_labels():
            painter.setPen(label.colour or palette.color(QPalette.ColorRole.Text))
            painter.drawText(label.rect, label.align | Qt.AlignmentFlag.AlignVCenter, label.text)

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
