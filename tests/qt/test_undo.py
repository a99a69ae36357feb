"""Edit › Undo / Redo through QUndoStack, driven by real key presses and menu actions."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from qt_helpers import wait_idle

from clipdesk.core.paths import config_dir
from clipdesk.core.session import load_image_list, save_image_list


def _undo(qtbot, window) -> None:
    qtbot.keyClick(window.image_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)


def _redo(qtbot, window) -> None:
    qtbot.keyClick(window.image_view, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)


def test_undo_remove_clear_add_and_labels(qtbot, open_window, make_images):
    window = open_window()
    window.activateWindow()
    window.session.set_labels(["cat", "dog"])
    images = make_images(5)
    window.add_paths(images)
    wait_idle(qtbot, window, 5)
    probs = {item.path: item.probs.copy() for item in window.session.items}

    window.image_view.setCurrentIndex(window.grid_proxy.index(1, 0))
    qtbot.keyClick(window.image_view, Qt.Key.Key_Delete)
    assert len(window.session) == 4
    _undo(qtbot, window)
    assert [item.path for item in window.session.items] == images  # back in its place
    assert (window.session.items[1].probs == probs[images[1]]).all()  # with its results
    _redo(qtbot, window)
    assert len(window.session) == 4
    _undo(qtbot, window)

    window.clear_action.trigger()
    assert len(window.session) == 0
    undo_action = window.findChild(type(window.clear_action), "undoAction")
    assert undo_action.text() == "&Undo Clear all images"
    undo_action.trigger()
    assert [item.path for item in window.session.items] == images

    window.session.add_label("car")
    window.session.set_labels([])  # Labels › Clear labels
    _undo(qtbot, window)
    assert window.session.labels == ["cat", "dog", "car"]
    _undo(qtbot, window)
    assert window.session.labels == ["cat", "dog"]
    wait_idle(qtbot, window)
    assert window.session.score_labels == ["cat", "dog"]

    extra = make_images(2, first_seed=50)
    window.add_paths(extra)
    qtbot.waitUntil(lambda: len(window.session) == 7, timeout=20000)
    _undo(qtbot, window)
    assert [item.path for item in window.session.items] == images


def test_image_list_restored_on_reopen(qtbot, open_window, make_images):
    window = open_window(wait=False)
    images = make_images(3)
    window.add_paths(images)
    qtbot.waitUntil(lambda: len(window.session) == 3, timeout=20000)
    window.close()
    saved = json.loads((config_dir() / "images.json").read_text())
    assert saved["images"] == [str(p) for p in images]
    again = open_window(wait=False)
    qtbot.waitUntil(lambda: len(again.session) == 3, timeout=20000)
    assert [item.path for item in again.session.items] == images


def test_image_list_file_is_atomic_and_forgiving(tmp_path, make_images):
    images = make_images(2)
    target = tmp_path / "conf" / "images.json"
    save_image_list(target, [*images, tmp_path / "gone.png"])
    assert load_image_list(target) == images  # files that vanished are left out
    assert [p.name for p in target.parent.iterdir()] == ["images.json"]  # no temporary left
    target.write_text("{not json")
    assert load_image_list(target) == []
