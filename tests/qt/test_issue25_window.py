"""Issue 25, points 8, 10, 11 and 12: one state for both Find similar buttons, the Help and Edit
menus, the Model menu's wording, the first screen's guidance. Real clicks, keys and triggers."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar
from qt_helpers import window_with_images


def _toolbar_button(window, action):
    return window.findChild(QToolBar, "mainToolBar").widgetForAction(action)


def _click_card(qtbot, view, row: int) -> None:
    rect = view.visualRect(view.model().index(row, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_both_find_similar_buttons_agree(qtbot, open_window, make_images):
    window = window_with_images(qtbot, open_window, make_images(3), labels=["cat", "dog"])
    toolbar_button = _toolbar_button(window, window.similar_action)
    panel_button = window.details.similar

    def agree() -> bool:
        return toolbar_button.isEnabled() == panel_button.isEnabled()

    assert not toolbar_button.isEnabled() and agree()  # nothing selected
    view = window.image_view
    _click_card(qtbot, view, 0)
    assert toolbar_button.isEnabled() and agree()
    panel_button.click()  # Find similar: the grid shows the ranked order (the proxy)
    qtbot.waitUntil(lambda: bool(window.session.search_query))
    _click_card(qtbot, view, 0)
    qtbot.keyClick(view, Qt.Key.Key_Delete)  # removes the selected card
    assert len(window.session) == 2
    assert window.details.path is None and window.details.preview.text().startswith("Select an image")
    assert not toolbar_button.isEnabled() and agree()
    _click_card(qtbot, view, 1)
    assert toolbar_button.isEnabled() and agree()
    window.clear_action.trigger()
    assert not toolbar_button.isEnabled() and agree()
