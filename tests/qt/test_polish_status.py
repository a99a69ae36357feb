"""The status bar says what is true now: "preparing a faster ONNX version" goes once the background
export has landed (or has given up), even with nothing classifying to notice it (issue 15: still
shown 25 s after start)."""

from __future__ import annotations

import threading

from clipdesk.core import onnx_backend as ob


class _Exited:
    """A background export process that ended without leaving an export."""

    def poll(self) -> int:
        return 1


def _pending_encoder(window, process=None) -> ob.OnnxEncoder:
    """An ONNX encoder in its "torch while the export runs" state, over the window's own model."""
    engine = window.worker.engine
    encoder = ob.OnnxEncoder(engine.loaded)
    encoder._fallback, encoder.name, encoder._pending, encoder._process = engine.encoder, ob.PENDING_NAME, True, process
    encoder.cache_identity = engine.encoder.cache_identity
    return encoder


def test_the_label_follows_a_finished_export_while_idle(qtbot, open_window):
    window = open_window()
    engine = window.worker.engine
    torch_encoder = engine.encoder
    encoder = _pending_encoder(window)
    polled_on = []
    ready = threading.Event()
    real_poll = encoder._poll_pending

    def poll() -> None:  # the export lands when the test says so
        polled_on.append(threading.current_thread())
        if ready.is_set():
            encoder._pending, encoder._fallback, encoder.name = False, None, "onnx"
        else:
            real_poll()

    encoder._poll_pending = poll
    engine.encoder = encoder
    window.models.backend_timer.setInterval(50)
    window.models.refresh_backend()  # what a classify chunk does
    assert "preparing" in window.model_label.text()
    assert window.models.backend_timer.isActive()
    qtbot.waitUntil(lambda: len(polled_on) >= 2, timeout=5000)  # asked again and again while idle
    assert "preparing" in window.model_label.text()
    assert threading.main_thread() not in polled_on  # on the model worker, never the GUI thread
    ready.set()
    qtbot.waitUntil(lambda: "preparing" not in window.model_label.text(), timeout=5000)
    assert window.model_label.text().endswith("· onnx")
    assert "ONNX version" in window.status_label.text() and "ready" in window.status_label.text()
    assert not window.models.backend_timer.isActive()  # nothing passing left to watch
    engine.encoder = torch_encoder


def test_a_failed_export_stops_saying_preparing(qtbot, open_window, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "no-exports"))  # no export appears
    window = open_window()
    engine = window.worker.engine
    torch_encoder = engine.encoder
    engine.encoder = _pending_encoder(window, _Exited())
    window.models.backend_timer.setInterval(50)
    window.models.refresh_backend()
    assert "preparing" in window.model_label.text()
    qtbot.waitUntil(lambda: "preparing" not in window.model_label.text(), timeout=5000)
    assert window.model_label.text().endswith("· torch") and engine.encoder.note == ""
    assert not window.models.backend_timer.isActive()
    engine.encoder = torch_encoder
