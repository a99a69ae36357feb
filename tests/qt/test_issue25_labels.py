"""Issue 25, point 4: a label typed and entered is scrolled into view and selected, even when the
list already holds more labels than it shows (an 800×600 window). Real key events."""

from __future__ import annotations

from PySide6.QtCore import Qt


def test_new_label_is_scrolled_into_view(qtbot, open_window):
    window = open_window(wait=False)
    window.resize(800, 600)
    editor = window.label_editor
    window.session.set_labels([f"label {i}" for i in range(12)])
    qtbot.wait(20)
    viewport = editor.list.viewport().rect()
    last = editor.list.item(11)
    assert not viewport.contains(editor.list.visualItemRect(last))  # the list shows fewer than 12
    editor.input.setFocus()
    qtbot.keyClicks(editor.input, "zebra crossing")
    qtbot.keyClick(editor.input, Qt.Key.Key_Return)
    qtbot.wait(20)
    assert window.session.labels[-1] == "zebra crossing"
    item = editor.list.item(12)
    assert item.text() == "zebra crossing"
    assert viewport.contains(editor.list.visualItemRect(item))  # whole and in view
    assert editor.list.currentItem() is item and item.isSelected()
    # a pasted list: the last of the new labels is the one shown
    editor.list.scrollToTop()
    qtbot.keyClicks(editor.input, "ant, bee")
    qtbot.keyClick(editor.input, Qt.Key.Key_Return)
    qtbot.wait(20)
    assert editor.list.currentItem().text() == "bee"
    assert viewport.contains(editor.list.visualItemRect(editor.list.currentItem()))
