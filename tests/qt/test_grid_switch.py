"""The grid shows its source model while nothing is ranked or filtered, the numpy proxy otherwise,
and the switch keeps the selection and the current image (real clicks and keys)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from qt_helpers import wait_idle, window_with_images

from clipdesk.qt.widgets.image_grid import PATH_ROLE


def _click_card(qtbot, window, row: int, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    view = window.image_view
    rect = view.visualRect(view.model().index(row, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


def _selected_paths(window) -> set:
    return {index.data(PATH_ROLE) for index in window.image_view.selectionModel().selectedIndexes()}


def test_search_switches_to_the_proxy_and_back_keeping_the_selection(qtbot, open_window, make_images):
    images = make_images(8)
    window = window_with_images(qtbot, open_window, images)
    view = window.image_view
    assert view.model() is window.image_model  # nothing ranked: the C++-side source, no Python proxy
    assert window.grid_proxy is window.image_model
    _click_card(qtbot, window, 2)
    _click_card(qtbot, window, 5, Qt.KeyboardModifier.ControlModifier)
    assert _selected_paths(window) == {images[2], images[5]} and window.details.path == images[5]

    window.activateWindow()
    qtbot.keyClick(view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(window.search_box, "a red car")
    qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(window.session.search_query), timeout=20000)
    assert view.model() is window.grid_order  # ranked: the proxy orders the grid
    order = [view.model().index(r, 0).data(PATH_ROLE) for r in range(8)]
    sims = {item.path: item.similarity for item in window.session.items}
    assert order == sorted(images, key=lambda p: -sims[p])  # best match first
    assert _selected_paths(window) == {images[2], images[5]}
    assert view.currentIndex().data(PATH_ROLE) == images[5] and window.details.path == images[5]

    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.model() is window.image_model
    assert _selected_paths(window) == {images[2], images[5]}
    assert view.currentIndex().data(PATH_ROLE) == images[5]
    qtbot.keyClick(view, Qt.Key.Key_Right)  # keyboard navigation goes on from the kept current card
    assert window.details.path == images[6]


def test_filter_uses_the_proxy_and_ctrl_a_survives_the_round_trip(qtbot, open_window, make_images):
    images = make_images(10)
    window = window_with_images(qtbot, open_window, images, ["cat", "dog"])
    view = window.image_view
    label = window.session.decision(0).label
    expected = [item.path for row, item in enumerate(window.session.items)
                if window.session.decision(row).label == label]
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(_selected_paths(window)) == 10
    window.filter_combo.setCurrentIndex(window.filter_combo.findData(label))
    window.filter_combo.activated.emit(window.filter_combo.currentIndex())
    assert view.model() is window.grid_order
    assert [view.model().index(r, 0).data(PATH_ROLE) for r in range(view.model().rowCount())] == expected
    assert _selected_paths(window) == set(expected)  # the shown part of the selection
    window.set_label_filter("")
    assert view.model() is window.image_model and view.model().rowCount() == 10
    assert window.grid_order.is_identity()


def test_table_sort_does_not_move_the_grid_off_its_source(qtbot, open_window, make_images):
    window = open_window()
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(4))
    wait_idle(qtbot, window, 4)
    header = window.results_table.horizontalHeader()
    x = header.sectionViewportPosition(2) + header.sectionSize(2) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))
    assert header.sortIndicatorSection() == 2  # the table sorts by score
    assert not window.table_proxy.is_identity()
    assert window.image_view.model() is window.image_model  # the grid keeps the added order


def test_changed_cards_repaint_without_relaying_out_every_row(qtbot, open_window, make_images, monkeypatch):
    """QListView re-lays out every row on any dataChanged (ListMode may resize items): through the
    Python proxy that was ~5,000-20,000 calls per landed thumbnail at 20,000 images. The grid's
    cards have one size, so a change repaints; the proxy is asked only for the cards shown."""
    window = open_window()
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(40))
    wait_idle(qtbot, window, 40)
    window.search("a cat")
    qtbot.waitUntil(lambda: bool(window.session.search_query), timeout=20000)
    assert window.image_view.model() is window.grid_order
    qtbot.wait(200)  # the switch's own layout is done
    rows: set[int] = set()
    index = window.grid_order.index

    def counting(row, column, *args):
        rows.add(row)
        return index(row, column, *args)

    monkeypatch.setattr(window.grid_order, "index", counting)
    window.session.add_label("bird")  # a re-score changes every card
    wait_idle(qtbot, window)
    qtbot.wait(200)
    assert rows  # the proxy is still what the grid reads
    assert len(rows) < 40  # but not every row: no relayout
    assert window.image_view.model() is window.grid_order  # still ranked
