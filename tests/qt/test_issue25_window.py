"""Issue 25, points 8, 10, 11 and 12: one state for both Find similar buttons, the Help and Edit
menus, the Model menu's wording, the first screen's guidance. Real clicks, keys and triggers."""

from __future__ import annotations

import subprocess
import sys

from layout_checks import layout_problems
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar
from qt_helpers import wait_idle, window_with_images

from clipdesk.core.paths import resources_dir


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


def _rows(dialog) -> dict[str, str]:
    table = dialog.table
    return {table.item(i, 0).text(): table.item(i, 1).text() for i in range(table.rowCount())}


def _native(key) -> str:
    return QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText)


def test_help_and_edit_menus(qtbot, open_window, make_images):
    window = window_with_images(qtbot, open_window, make_images(4), labels=["cat", "dog", "bird"])
    window.activateWindow()
    help_menu = window.findChild(QMenu, "helpMenu")
    assert [a.text() for a in help_menu.actions() if not a.isSeparator()] == [
        "&Getting started", "&Keyboard shortcuts", "&About clipdesk"]
    view = window.image_view
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_F1)  # the platform's HelpContents key on every desktop
    guide = window.help_dialog
    assert guide is not None and guide.isVisible() and guide.objectName() == "guideDialog"
    assert "Drop files or folders" in guide.text.toPlainText().replace("drop", "Drop")
    guide.reject()

    window.findChild(QAction, "shortcutsAction").trigger()
    rows = _rows(window.help_dialog)
    assert rows["Undo"].split(", ")[0] == _native("Ctrl+Z")
    assert _native("Ctrl+Shift+Z") in rows["Redo"] or _native("Ctrl+Y") in rows["Redo"]
    assert rows["Select all"] == _native("Ctrl+A")
    assert rows["Remove selected"] == _native("Del")
    assert rows["Search images by text"] == _native("Ctrl+F")
    window.help_dialog.reject()

    # File › Remove selected shows Del, yet Del in the label list still removes a label
    assert window.remove_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText) == _native("Del")
    labels = window.label_editor.list
    labels.setFocus()
    labels.setCurrentRow(2)
    qtbot.keyClick(labels, Qt.Key.Key_Delete)
    assert window.session.labels == ["cat", "dog"] and len(window.session) == 4

    # Edit › Select all: in the label list it selects labels, on the grid every card
    window.select_all_action.trigger()
    assert len(labels.selectedItems()) == 2 and not view.selectionModel().selectedIndexes()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(view.selectionModel().selectedIndexes()) == 4
    view.clearSelection()
    window.details.setFocus()
    window.select_all_action.trigger()  # focus elsewhere: the grid
    assert len(view.selectionModel().selectedIndexes()) == 4


def test_first_screen_guides_and_tries_the_demo(qtbot, open_window):
    window = open_window()
    window.resize(800, 600)
    qtbot.wait(30)
    empty = window.empty_state
    assert window.grid_stack.currentWidget() is empty and empty.isVisible()
    text = empty.text.text()
    assert "Drop images or folders" in text and "labels" in text
    assert layout_problems(window) == []  # the first screen fits 800×600 too
    samples = sorted((resources_dir() / "models" / "demo" / "samples").glob("*.png"))
    demo = empty.buttons["tryDemoButton"]
    qtbot.mouseClick(demo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_ready and window.model_info.get("pretrained") == "demo"
                    and len(window.session) == len(samples), timeout=60000)
    wait_idle(qtbot, window, len(samples))
    assert window.grid_stack.currentWidget() is window.image_view
    # each sample is named after what it shows ("03-yellow-triangle.png"): those are the labels
    shown = {" ".join(p.stem.split("-")[1:]) for p in samples}
    assert shown <= set(window.session.labels)
    window.clear_action.trigger()
    assert window.grid_stack.currentWidget() is empty


def test_model_menu_words_and_developer_submenu(qtbot, open_window):
    window = open_window()
    menu = window.model_menu
    menu.fetch()
    qtbot.waitUntil(lambda: menu.entries is not None, timeout=30000)
    menu.aboutToShow.emit()  # rebuilt as when it opens
    top = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert not any("Random" in text for text in top)  # not among real models any more
    tags = [e for e in menu.entries if e.kind == "pretrained"]
    have = sum(1 for e in tags if e.available)
    picker = next(a for a in menu.actions() if a.objectName() == "pretrainedPickerAction")
    expected = f"{have} downloaded" if have else "none downloaded yet"
    assert picker.text() == f"Choose a pretrained CLIP model… ({len(tags)} to choose from, {expected})"
    assert top[-1] == "Developer"  # last, after device and backend
    developer = menu.findChild(QMenu, "developerMenu")
    random = developer.findChild(QMenu, "randomWeightsMenu")
    assert random.title() == "Random weights (for testing only)"
    tiny = next(a for a in random.actions() if a.text() == "clipdesk-tiny")
    with qtbot.waitSignal(window.model_loaded, timeout=30000) as loaded:
        tiny.trigger()
    assert loaded.args[0]["arch"] == "clipdesk-tiny"


def test_window_modules_import_before_the_application_exists():
    """Nothing resolves a platform key binding at import time (that crashed before QApplication)."""
    code = "import clipdesk.qt.main_window, clipdesk.qt.app; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-500:]
