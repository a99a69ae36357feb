"""Issue 25, points 2 and 3: redo by every key the platform lists for Redo (Ctrl+Shift+Z on X11,
Ctrl+Y as well on Windows), in the stack's order; after an undo the status counts what shows and
the restored image is the one selected. Real key events on the grid."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from qt_helpers import wait_idle, window_with_images

from clipdesk.qt.widgets.image_grid import PATH_ROLE


def _press(qtbot, widget, sequence: QKeySequence) -> None:
    combo = sequence[0]
    qtbot.keyClick(widget, combo.key(), combo.keyboardModifiers())


def _click(qtbot, view, row: int) -> None:
    """A left click on the grid's card at `row` (selects it alone, gives the grid focus)."""
    rect = view.visualRect(view.model().index(row, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _bindings(key: QKeySequence.StandardKey) -> list[QKeySequence]:
    return [seq for seq in QKeySequence.keyBindings(key) if not seq.isEmpty()]


def test_redo_by_every_platform_key_in_stack_order(qtbot, open_window, make_images):
    images = make_images(6)
    window = window_with_images(qtbot, open_window, images, labels=["cat", "dog"])
    window.activateWindow()
    window.session.add_label("bird")  # an older edit that a stray Ctrl+Z must not reach
    wait_idle(qtbot, window)
    view = window.image_view
    redo_keys = _bindings(QKeySequence.StandardKey.Redo)
    assert redo_keys, "the platform lists no Redo key"
    undo_key = QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Z)
    redo_action = window.findChild(QAction, "redoAction")
    shortcuts = [s.toString() for s in redo_action.shortcuts()]
    assert len(shortcuts) == len(set(shortcuts))  # a key listed twice fires nothing (ambiguous)
    for sequence in redo_keys:
        _click(qtbot, view, 2)
        qtbot.keyClick(view, Qt.Key.Key_Delete)
        assert images[2] not in [item.path for item in window.session.items]
        _press(qtbot, view, undo_key)
        assert [item.path for item in window.session.items] == images
        _press(qtbot, view, sequence)  # redo: the removal again
        assert len(window.session) == 5, f"{sequence.toString()} did not redo"
        assert images[2] not in [item.path for item in window.session.items]
        _press(qtbot, view, undo_key)  # undoes the removal, not the label edit before it
        assert [item.path for item in window.session.items] == images
        assert window.session.labels == ["cat", "dog", "bird"]
    # the Edit menu shows the platform's first key for each
    undo_action = window.findChild(QAction, "undoAction")
    assert undo_action.shortcut().matches(_bindings(QKeySequence.StandardKey.Undo)[0]) \
        == QKeySequence.SequenceMatch.ExactMatch
    assert redo_action.shortcut().matches(redo_keys[0]) == QKeySequence.SequenceMatch.ExactMatch
    assert "Ctrl+Shift+Z" in [s.toString() for s in redo_keys] or "Ctrl+Y" in [s.toString() for s in redo_keys]


def _selected_paths(window) -> list:
    view = window.image_view
    return [index.data(PATH_ROLE) for index in view.selectionModel().selectedIndexes()]


def test_undo_of_a_removal_selects_it_and_counts_it(qtbot, open_window, make_images):
    images = make_images(12)
    window = window_with_images(qtbot, open_window, images, labels=["cat", "dog"])
    window.activateWindow()
    view = window.image_view
    _click(qtbot, view, 4)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    qtbot.keyClick(view, Qt.Key.Key_Right)  # the user moves on to another card
    assert images[4] not in [item.path for item in window.session.items]
    _press(qtbot, view, QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Z))
    assert window.status_label.text() == "12 of 12 images classified."
    assert _selected_paths(window) == [images[4]]  # the restored card is the one selected
    assert view.currentIndex().data(PATH_ROLE) == images[4]
    assert window.details.path == images[4]
    _press(qtbot, view, _bindings(QKeySequence.StandardKey.Redo)[0])
    assert window.status_label.text() == "11 of 11 images classified."
    assert window.details.path != images[4]

    # Clear all images, then undo: all twelve back and counted, the first selected
    window.clear_action.trigger()
    assert window.status_label.text().startswith("Drop images")
    _press(qtbot, view, QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Z))
    assert window.status_label.text() == "11 of 11 images classified."
    assert sorted(_selected_paths(window)) == sorted(p for p in images if p != images[4])
