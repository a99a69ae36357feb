"""The status bar says what is true now: "preparing a faster ONNX version" goes once the background
export has landed (or has given up), even with nothing classifying to notice it (issue 15: still
shown 25 s after start).

Both tests run the real background export process (backend auto, first use of a model): one lets it
finish, the other gives it a real reason to fail (the checkpoint changed on disk since it was loaded).
"""

from __future__ import annotations

import threading

import torch
from qt_helpers import TINY, wait_idle
from safetensors.torch import save_file

from clipdesk.core import onnx_backend as ob
from clipdesk.core import onnx_export as bg
from clipdesk.core.models import load_model
from clipdesk.core.settings import Settings
from clipdesk.qt.model_controller import ModelChoice

EXPORT_TIMEOUT_MS = 300_000  # a niced export process on a busy 2-core CI machine


def auto_window(qtbot, monkeypatch, arch: str, pretrained: str):
    """A window on backend auto with background exports on, as a user's first use of a model."""
    from clipdesk.qt.main_window import MainWindow

    monkeypatch.setenv(bg.BACKGROUND_ENV, "1")
    window = MainWindow(ModelChoice(arch, pretrained, "cpu", "auto"), Settings.load(), batch_size=8)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
    assert window.model_label.text().endswith(f"· {ob.PENDING_NAME}")
    assert window.models.backend_timer.isActive()
    return window


def record_poll_threads(encoder) -> list[threading.Thread]:
    """Which threads ask the encoder about the export (it must never be the GUI thread)."""
    threads: list[threading.Thread] = []
    real = encoder.poll_background

    def poll_background() -> str:
        threads.append(threading.current_thread())
        return real()

    encoder.poll_background = poll_background
    return threads


def test_the_label_follows_a_finished_export_while_idle(qtbot, make_images, monkeypatch):
    window = auto_window(qtbot, monkeypatch, *TINY)
    encoder = window.worker.engine.encoder
    identity = window.worker.engine.loaded.identity
    polled_on = record_poll_threads(encoder)
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(2))
    wait_idle(qtbot, window, 2)  # the first results came from torch; now the export process starts
    assert "preparing" in window.model_label.text() and ob.cached_export(identity) is None
    # Idle from here on: only the window's own polling can notice the export landing.
    qtbot.waitUntil(lambda: "preparing" not in window.model_label.text(), timeout=EXPORT_TIMEOUT_MS)
    assert ob.cached_export(identity) is not None  # it really landed
    assert window.model_label.text() == f"{window.model_info['name']} · cpu · onnx"
    assert window.status_label.text() == (
        f"The faster ONNX version of {window.model_info['name']} is ready and in use.")
    assert encoder.name == "onnx" and encoder.folder is not None
    assert polled_on and threading.main_thread() not in polled_on  # asked on the model worker
    assert not window.models.backend_timer.isActive()  # nothing passing left to watch
    window.close()


def test_a_failed_export_stops_saying_preparing(qtbot, make_images, monkeypatch, tmp_path):
    checkpoint = tmp_path / "tiny.safetensors"
    model = load_model(*TINY, "cpu").model
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    window = auto_window(qtbot, monkeypatch, TINY[0], str(checkpoint))
    identity = window.worker.engine.loaded.identity
    # The file changes after the window loaded it: the export process loads the new weights, sees
    # they are not the ones the window uses, and gives up (the real check in run_export).
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(2))
    wait_idle(qtbot, window, 2)
    qtbot.waitUntil(lambda: "preparing" not in window.model_label.text(), timeout=EXPORT_TIMEOUT_MS)
    assert window.model_label.text().endswith("· torch") and window.worker.engine.encoder.note == ""
    assert ob.cached_export(identity) is None
    assert "weights changed" in (bg.recent_failure(identity) or "")  # it failed, for that reason
    assert not window.models.backend_timer.isActive()
    window.close()
