"""Cancel (Esc or the button) stops classification within one batch, every time."""

from __future__ import annotations

from PySide6.QtCore import Qt
from qt_helpers import wait_idle

import clipdesk.qt.classify_controller as classify_module


def _done(window) -> int:
    return window.session.counts()["done"]


def test_cancel_lands_within_one_batch_every_time(qtbot, open_window, make_images, monkeypatch):
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 4)  # chunk ends are frequent: the old race
    monkeypatch.setattr(classify_module, "CHUNK_MAX", 4)
    window = open_window(batch_size=2)
    window.session.set_labels(["cat", "dog"])
    images = make_images(40)
    window.add_paths(images)
    for attempt in range(4):
        before = _done(window)
        qtbot.waitUntil(lambda before=before: _done(window) > before, timeout=30000)
        at_cancel = _done(window)
        if attempt % 2:
            qtbot.keyClick(window, Qt.Key.Key_Escape)
        else:
            qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window._classify_task is None, timeout=20000)
        qtbot.wait(300)  # long enough for a queued chunk to have started and landed
        assert window._classify_task is None
        assert _done(window) <= at_cancel + 2 * 2  # the batch being encoded (+ one in the signal queue)
        assert "Cancelled" in window.status_label.text()
        assert not window.cancel_button.isVisible()
        window.classify_action.trigger()  # File › Classify pending images resumes
    wait_idle(qtbot, window, 40)
    assert _done(window) == 40
