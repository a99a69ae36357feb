"""Issue 25, point 1: the window reflows at 800×600 (and still at 1400×900) with nothing drawn
over anything else, nothing cut off and every table column in view. Real resize events; the
checks are on the widgets' geometry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from layout_checks import layout_problems
from PySide6.QtWidgets import QToolButton
from qt_helpers import window_with_images

from clipdesk.qt.widgets.image_grid import ImageView


def _settle(qtbot, window, width: int, height: int) -> None:
    window.resize(width, height)
    view = window.image_view
    qtbot.wait(50)
    qtbot.waitUntil(lambda: view.gridSize().width() == ImageView.columns_for(view.viewport().width())[1])
    qtbot.wait(50)  # the grid's delayed relayout and the preview's rescale


@pytest.mark.parametrize("size", [(800, 600), (1400, 900)])
def test_window_reflows_without_overlap(qtbot, open_window, make_images, size):
    window = window_with_images(qtbot, open_window, make_images(12), labels=["cat", "dog", "bird"])
    window.image_view.setCurrentIndex(window.grid_proxy.index(0, 0))  # the details panel filled
    qtbot.waitUntil(lambda: window.details.title.text() != "")
    _settle(qtbot, window, *size)
    assert window.size().toTuple() == size  # the minimum sizes let the window be that small
    if os.environ.get("QT_SCALE_FACTOR"):  # the 200 % run below: really drawn at twice the pixels
        assert window.devicePixelRatio() == float(os.environ["QT_SCALE_FACTOR"])
    assert layout_problems(window) == []
    # the toolbar shows everything: no "››" overflow hiding the label filter
    extension = window.findChild(QToolButton, "qt_toolbar_ext_button")
    assert extension is None or not extension.isVisible()
    assert window.filter_combo.isVisible() and window.filter_combo.width() >= 80
    # every table column fits in the table's viewport
    table = window.results_table
    header = table.horizontalHeader()
    right_edge = max(header.sectionViewportPosition(c) + header.sectionSize(c) for c in range(header.count()))
    assert right_edge <= table.viewport().width()
    assert all(header.sectionSize(c) >= 40 for c in range(header.count()))
    # the grid keeps most of the width: three columns of cards at 800 px
    columns = window.image_view.viewport().width() // window.image_view.gridSize().width()
    assert columns >= (3 if size[0] == 800 else 5)
    assert window.right.width() <= 0.36 * size[0]
    # the selected image's name sits below its preview, the button below the bars
    details = window.details
    assert details.title.geometry().top() >= details.preview.geometry().bottom()
    assert details.similar.geometry().top() >= details.bars.geometry().bottom()


def test_window_reflows_at_200_percent_scaling():
    """The same checks with Qt scaling everything by 2 (a 4K laptop at 200 %): Qt reads the scale
    factor once per process, so the test above runs again in a process of its own."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                          f"{Path(__file__)}::test_window_reflows_without_overlap"],
                         capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "2 passed" in run.stdout
