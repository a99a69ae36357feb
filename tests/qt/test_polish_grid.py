"""The grid's cards fill its width: as many columns as fit (the scrollbar and the gap between cards
counted), widened so that no column's worth of space is left unused (issue 15, seen at 1,400 px)."""

from __future__ import annotations

from qt_helpers import wait_idle

from clipdesk.qt.widgets.image_grid import CARD, GAP, ImageView


def _columns(view) -> list:
    """The cards of the first row, as laid out (visual rectangles, left to right)."""
    model = view.model()
    rects = [view.visualRect(model.index(row, 0)) for row in range(model.rowCount())]
    return sorted((r for r in rects if r.top() == rects[0].top()), key=lambda r: r.left())


def test_cards_fill_the_width_at_several_window_widths(qtbot, open_window, make_images):
    window = open_window()
    window.add_paths(make_images(30))
    wait_idle(qtbot, window, 30)
    view = window.image_view
    seen = set()
    for width in (760, 1000, 1200, 1400, 1600, 1920):
        window.resize(width, 700)  # real resize events, down to the grid's viewport
        qtbot.waitUntil(lambda: view.gridSize().width() == ImageView.columns_for(view.viewport().width())[1])
        qtbot.wait(30)  # the delayed relayout
        available = view.viewport().width()  # a shown scrollbar is not part of it
        assert view.verticalScrollBar().isVisible()  # 30 cards do not fit in 700 px: counted
        row = _columns(view)
        columns, cell = len(row), view.gridSize().width()
        seen.add(columns)
        assert all(r.width() == cell - GAP and r.width() >= CARD.width() for r in row)
        assert columns * cell <= available  # every card is whole
        assert (columns + 1) * (CARD.width() + GAP) > available - 1  # one more would not fit
        assert available - (row[-1].right() + 1) <= GAP + columns  # no unused column: only rounding
        assert [r.left() for r in row] == [k * cell for k in range(columns)]
    assert len(seen) >= 4  # the widths really gave different column counts


def test_without_a_scrollbar_the_full_width_is_used(qtbot, open_window, make_images):
    window = open_window()
    window.add_paths(make_images(3))
    window.resize(1400, 900)
    view = window.image_view
    qtbot.waitUntil(lambda: view.model().rowCount() == 3)
    qtbot.waitUntil(lambda: view.gridSize().width() == ImageView.columns_for(view.viewport().width())[1])
    assert not view.verticalScrollBar().isVisible()
    assert view.viewport().width() == view.width() - 2 * view.frameWidth()
    columns, cell = ImageView.columns_for(view.viewport().width())
    assert columns == (view.viewport().width() - 1) // (CARD.width() + GAP)
    assert cell * columns <= view.viewport().width() - 1 < (cell + 1) * columns
