"""The fine-tune dialog's training chart: tick labels are short, whole and apart at extreme values
(a loss of 1e-9 to 1e3, accuracy 0 to 1, 1 to 10,000 steps); issue 15 saw ".48e-09" cut off."""

from __future__ import annotations

import itertools
import math

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QFontMetricsF

from clipdesk.qt.widgets.plot import TrainingPlot, format_tick, log_ticks, nice_ticks


def _plot(qtbot, size, loss=(), accuracy=()) -> TrainingPlot:
    plot = TrainingPlot()
    qtbot.addWidget(plot)
    plot.resize(*size)
    plot.show()
    for x, value in loss:
        plot.add_loss(x, value)
    for x, value in accuracy:
        plot.add_accuracy(x, value)
    qtbot.waitExposed(plot)
    plot.grab()  # a real paint event through every label
    return plot


def _assert_readable(plot: TrainingPlot) -> list:
    metrics = QFontMetricsF(plot.font())
    labels = plot.tick_labels()
    bounds = QRectF(plot.rect())
    for label in labels:
        assert metrics.horizontalAdvance(label.text) <= label.rect.width() + 0.01, label.text
        assert metrics.height() <= label.rect.height() + 0.01, label.text
        assert bounds.contains(label.rect), (label.text, label.rect)
        assert "…" not in label.text and not label.text.startswith("."), label.text
    for a, b in itertools.combinations(labels, 2):
        assert not a.rect.intersects(b.rect), (a.text, b.text)
    return labels


EXTREME_LOSS = [(step, 10 ** (3 - 12 * (step - 1) / 9999)) for step in range(1, 10001, 37)] + [(10000, 1e-9)]
EXTREME_ACCURACY = [(epoch, epoch / 10) for epoch in range(11)]


@pytest.mark.parametrize("size", [(480, 220), (340, 170), (900, 320)])
def test_labels_fit_and_stay_apart_at_extreme_values(qtbot, size):
    plot = _plot(qtbot, size, EXTREME_LOSS, EXTREME_ACCURACY)
    texts = [label.text for label in _assert_readable(plot)]
    loss_ticks = [t for t in texts if t.startswith("1e")]
    exponents = [int(t[2:]) for t in loss_ticks]
    assert exponents == sorted(exponents) and exponents[0] <= -9 and exponents[-1] >= 3  # log axis
    assert "0%" in texts and "100%" in texts
    steps = [float(t[:-1]) * 1000 if t.endswith("k") else float(t) for t in texts if t[0].isdigit() and "e" not in t
             and not t.endswith("%")]
    assert steps and min(steps) >= 1 and max(steps) <= 10000 and steps == sorted(steps)


def test_a_narrow_loss_range_gets_distinct_ticks(qtbot):
    loss = [(step, 1.48e-9 + 1e-11 * step) for step in range(1, 20)]
    plot = _plot(qtbot, (480, 220), loss)
    labels = _assert_readable(plot)
    ticks = [label.text for label in labels if "e-9" in label.text and not label.text.startswith("loss")]
    values = [float(t) for t in ticks]
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks) and values == sorted(values)
    assert values[0] <= 1.49e-9 and values[-1] >= 1.67e-9  # the axis covers the data
    assert any(label.text == "loss 1.67e-9" for label in labels)


def test_tick_helpers_against_hand_values():
    assert nice_ticks(0.0, 1.0, 5) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert [format_tick(t, 0.25) for t in nice_ticks(0.0, 1.0, 5)] == ["0", "0.25", "0.50", "0.75", "1.00"]
    assert nice_ticks(1, 10000, 6) == pytest.approx([0, 2000, 4000, 6000, 8000, 10000])
    assert log_ticks(1e-9, 1e3, 5) == pytest.approx([1e-9, 1e-6, 1e-3, 1, 1e3])
    assert format_tick(0.25, 0.05) == "0.25"
    assert format_tick(1.5e-9, 1e-10) == "1.5e-9"
    assert format_tick(10000, 2000) == "10k" and format_tick(12500, 2500) == "12.5k"
    assert format_tick(4000, 2000) == "4000" and format_tick(0, 0.1) == "0"
    for value, step in [(1.23e-7, 1e-9), (0.003, 0.001), (7e4, 1e4)]:
        text = format_tick(value, step)
        number = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
        assert math.isclose(number, value, rel_tol=1e-9), text
