"""Search and Find similar at scale: the worker hands the GUI one similarity per encoded image (no
list over every row on the GUI thread), the grid re-sorts at once and the table one turn later."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from qt_helpers import wait_idle

from clipdesk.core.prompts import Label
from clipdesk.qt.search_controller import _aligned
from clipdesk.qt.widgets.image_grid import PATH_ROLE


def test_aligned_puts_each_cosine_at_its_feature_row():
    rng = np.random.default_rng(3)
    cosines = rng.uniform(-1, 1, 50)
    ranked = [(int(i), float(cosines[i])) for i in np.argsort(-cosines)]  # what rank() returns
    values, best = _aligned(ranked, 50)
    np.testing.assert_allclose(values, cosines, rtol=1e-6)
    assert best == int(np.argmax(cosines))
    values, best = _aligned([], 0)
    assert len(values) == 0 and best == -1


def _grid_paths(window) -> list:
    model = window.image_view.model()
    return [model.index(row, 0).data(PATH_ROLE) for row in range(model.rowCount())]


def _search(qtbot, window, text: str) -> None:
    window.activateWindow()
    qtbot.keyClick(window.image_view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(window.search_box, text)
    with qtbot.waitSignal(window.results_updated, timeout=20000):
        qtbot.keyClick(window.search_box, Qt.Key.Key_Return)


def test_enter_ranks_the_grid_now_and_the_table_next_turn(qtbot, open_window, make_images):
    window = open_window()
    images = make_images(12)
    window.add_paths(images)
    wait_idle(qtbot, window, 12)
    header = window.results_table.horizontalHeader()
    _search(qtbot, window, "a red car")
    paths, features = window.session.features()
    query = window.worker.engine.label_weights([Label("a red car")], "none")[0]  # worker idle now
    expected = {path: float(value) for path, value in zip(paths, features @ query)}
    sims = {item.path: item.similarity for item in window.session.items}
    assert sims == pytest.approx(expected, abs=1e-5)
    assert _grid_paths(window) == sorted(images, key=lambda p: -expected[p])  # best first, at once
    assert "Search: a red car" in window.searching.chip.text()
    qtbot.waitUntil(lambda: header.sortIndicatorSection() == 5)  # the table, one turn later
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    best = max(expected, key=expected.get)
    assert window.results_table.model().index(0, 0).data(PATH_ROLE) == best
    assert best.name in window.status_label.text()

    with qtbot.waitSignal(window.results_updated, timeout=20000):
        window.find_similar(images[4])  # Find similar: the image itself is its best match
    assert _grid_paths(window)[0] == images[4]
    assert window.session.items[4].similarity == pytest.approx(1.0, abs=1e-4)


def test_esc_before_the_table_turn_leaves_the_table_unsorted(qtbot, open_window, make_images):
    window = open_window()
    window.add_paths(make_images(6))
    wait_idle(qtbot, window, 6)
    header = window.results_table.horizontalHeader()
    # Esc lands in the same turn as the result, before the table's deferred sort
    window.results_updated.connect(lambda: qtbot.keyClick(window.image_view, Qt.Key.Key_Escape))
    _search(qtbot, window, "a dog")
    qtbot.wait(50)
    assert not window.session.search_query and not window.searching.chip.isVisible()
    assert header.sortIndicatorSection() != 5
    assert window.image_view.model() is window.image_model  # the grid is back on its source
