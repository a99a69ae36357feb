"""Desktop conventions under real events: icons, right-click menu, double-click, About, warnings."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QMenu
from qt_helpers import window_with_images

from clipdesk import __version__


def _visible(name: str):
    return [w for w in QApplication.topLevelWidgets() if w.objectName() == name and w.isVisible()]


def test_icons_about_and_kept_warnings(qtbot, open_window):
    window = open_window(wait=False)
    assert not window.windowIcon().isNull()
    assert all(not a.icon().isNull() for a in window.findChildren(QAction) if a.objectName() in ("undoAction", "redoAction"))
    window.findChild(QAction, "aboutAction").trigger()
    box = window.findChild(type(window.show_about()), "aboutBox")
    assert __version__ in box.text()
    box.reject()
    window.session.set_labels(["cat"])
    line = window.label_editor.findChild(type(window.search_box), "labelInput")
    qtbot.keyClicks(line, "cat")
    qtbot.keyClick(line, Qt.Key.Key_Return)  # a duplicate: a warning
    qtbot.wait(50)
    assert any("already in the list" in note for note in window.notifications)
    assert window.badge.isVisible()  # kept in the problems list, not gone after a moment
    dialog = window.show_errors()
    dialog.reject()


def test_right_click_menu_and_double_click(qtbot, open_window, make_images):
    images = make_images(3)
    window = window_with_images(qtbot, open_window, images)
    view = window.image_view
    rect = view.visualRect(window.grid_proxy.index(1, 0))
    menu = window.grid_actions.show_menu(rect.center())
    assert isinstance(menu, QMenu)
    texts = [a.text() for a in menu.actions() if a.text()]
    assert texts == ["&Open", "Show in &folder", "&View large", "Find &similar", "Set &label",
                     "Fine-tune on my &corrections", "&Copy path", "&Remove"]
    next(a for a in menu.actions() if a.text() == "&Copy path").trigger()
    assert QGuiApplication.clipboard().text() == str(images[1])
    menu.close()
    with qtbot.waitSignal(window.results_updated, timeout=20000):
        next(a for a in window.grid_actions.menu_for(images[1]).actions() if a.text() == "Find &similar").trigger()
    assert window.ranked_chip.text().startswith("Similar to img001")
    window.clear_search()

    centre = view.visualRect(window.grid_proxy.index(0, 0)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    viewer = window.grid_actions.viewer
    assert viewer is not None and viewer.isVisible() and viewer.windowTitle() == images[0].name
    assert not viewer.label.pixmap().isNull()
    viewer.reject()

    menu = window.grid_actions.show_menu(view.visualRect(window.grid_proxy.index(2, 0)).center())
    next(a for a in menu.actions() if a.text() == "&Remove").trigger()
    assert window.session.row_of(images[2]) is None
    assert window.grid_actions.show_menu(QPoint(5000, 5000)) is None  # empty space: no menu
