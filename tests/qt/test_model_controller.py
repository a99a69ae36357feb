"""ModelController: switching models through the Model menu, a cancelled or failed load that keeps
the working model, the error dialog's way out, and the backend shown in the status bar."""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QMessageBox
from qt_helpers import TINY, wait_idle

import clipdesk.qt.model_controller as model_controller
from clipdesk.core import onnx_backend as ob
from clipdesk.core import onnx_export as bg
from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from clipdesk.core.settings import Settings
from clipdesk.qt.model_controller import ModelChoice, gui_model_message


def _menu_action(window, menu_name: str, text: str) -> QAction:
    menu = window.model_menu.findChild(QMenu, menu_name)
    return next(action for action in menu.actions() if action.text() == text)


def test_device_menu_reloads_the_model_on_the_chosen_device(qtbot, open_window):
    window = open_window()
    window.model_menu.aboutToShow.emit()  # the menu is rebuilt when it opens
    with qtbot.waitSignal(window.model_loaded, timeout=30000) as loaded:
        _menu_action(window, "deviceMenu", "CPU").trigger()
    assert loaded.args[0]["device"] == "cpu"
    assert window.models.choice == ModelChoice("clipdesk-tiny", "none", "cpu", "torch")
    assert window.model_label.text() == f"{loaded.args[0]['name']} · cpu · torch"
    assert window.settings["device"] == "cpu" and window.settings["arch"] == "clipdesk-tiny"
    assert _menu_action(window, "deviceMenu", "CPU").isChecked()  # the menu shows the new state


def test_esc_cancels_a_load_and_keeps_the_working_model(qtbot, open_window, make_images):
    window = open_window()
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(3))
    wait_idle(qtbot, window, 3)
    name = window.model_info["name"]
    before = [item.probs.copy() for item in window.session.items]
    gate = threading.Event()  # holds the worker, so the load is still queued when Esc comes
    window.worker.submit("hold", lambda _w, _t: gate.wait(30), cancellable=False)
    window.load_model("clipdesk-tiny", "none")
    assert not window.model_ready and window.model_label.text() == "Loading model…"
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    gate.set()
    qtbot.waitUntil(lambda: "cancelled" in window.status_label.text(), timeout=30000)
    assert window.status_label.text() == f"Model loading cancelled. Still using {name}."
    assert window.model_ready and window.model_label.text().startswith(name)
    assert not window.cancel_button.isVisible()
    for item, probs in zip(window.session.items, before):
        assert (item.probs == probs).all()  # the embeddings were not reset
    window.session.add_label("bird")  # the kept model still scores
    wait_idle(qtbot, window)
    assert all(len(item.probs) == 3 for item in window.session.items)


def test_failed_first_load_offers_the_demo_model(qtbot, open_window, tmp_path):
    window = open_window(wait=False)
    qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
    window.models.previous_choice = None  # as after a failed very first load
    window.models.info = {}
    with qtbot.waitSignal(window.model_failed, timeout=30000):
        window.load_model("clipdesk-tiny", str(tmp_path / "gone.pt"))
    assert window.model_label.text() == "No model loaded" and not window.model_ready
    box = window.model_error_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    demo = next(b for b in box.buttons() if b.text() == "Use the demo model")
    with qtbot.waitSignal(window.model_loaded, timeout=60000) as loaded:
        qtbot.mouseClick(demo, Qt.MouseButton.LeftButton)
    assert loaded.args[0]["pretrained"] == "demo" and window.model_ready
    assert window.model_error_box is None  # a later failure opens a fresh dialog
    assert window.windowTitle() == f"clipdesk — {loaded.args[0]['name']}"


def test_status_bar_follows_the_encoder_switching_to_onnx(qtbot, make_images, monkeypatch):
    """First use with backend auto: torch serves while the real background export runs; once it
    has landed, the next batch runs on ONNX Runtime and the model label says so."""
    from clipdesk.qt.main_window import MainWindow

    monkeypatch.setenv(bg.BACKGROUND_ENV, "1")  # the real export process, as users get it
    monkeypatch.setattr(model_controller, "BACKEND_POLL_MS", 10**7)  # only batches notice it here
    window = MainWindow(ModelChoice(*TINY, "cpu", "auto"), Settings.load(), batch_size=8)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
    encoder = window.worker.engine.encoder
    assert isinstance(encoder, ob.OnnxEncoder)
    assert window.model_label.text().endswith(f"· {ob.PENDING_NAME}")
    window.session.set_labels(["cat", "dog"])
    first = make_images(2)
    window.add_paths(first)
    wait_idle(qtbot, window, 2)  # served by torch; the export starts after these first results
    assert window.model_label.text().endswith(f"· {ob.PENDING_NAME}")
    identity = window.worker.engine.loaded.identity
    qtbot.waitUntil(lambda: ob.cached_export(identity) is not None, timeout=300000)
    assert window.model_label.text().endswith(f"· {ob.PENDING_NAME}")  # nothing has asked yet
    calls = encoder.encoder_calls
    later = make_images(2, first_seed=10)
    qtbot.wait(1100)  # a batch polls the export at most once a second
    window.add_paths(later)
    wait_idle(qtbot, window, 4)
    assert window.model_label.text() == f"{window.model_info['name']} · cpu · onnx"
    assert window.model_info["backend"] == "onnx"
    assert encoder.name == "onnx" and encoder.folder is not None and encoder.encoder_calls > calls
    torch_engine = Engine(TorchEncoder(load_model(*TINY, "cpu")), NullCache())
    expected = run_job(torch_engine.embed_job(later)).features  # ONNX Runtime gives torch's vectors
    got = np.stack([window.session.items[window.session.row_of(path)].vector for path in later])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    window.close()


def test_gui_message_names_menu_items_not_flags():
    from clipdesk.core.errors import ModelLoadError

    message = gui_model_message(ModelLoadError(
        "No weights for ViT-B-32 laion2b. Pass --pretrained PATH. Run clipdesk models --download."))
    assert message.startswith("No weights for ViT-B-32 laion2b.")
    assert "--" not in message and "clipdesk models" not in message
    assert "Model › Load checkpoint…" in message and "Model › Demo model" in message
