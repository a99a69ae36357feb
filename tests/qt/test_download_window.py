"""The window loading a model it must download, from a local stand-in for the Hugging Face hub
(tests/core/hub_server.py): the download dialog shows MB progress, its Cancel button stops the load
and the previous model goes on working; loading again completes; an unreachable hub is one sentence."""

from __future__ import annotations

import hashlib
import re

import pytest
from hub_server import (
    ARCH,
    REPO_ID,
    TAG,
    WEIGHTS_NAME,
    HubServer,
    closed_port_url,
    point_hub_at,
    register_tag,
    tiny_weights,
)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QPushButton
from qt_helpers import wait_idle

from clipdesk.core.download import cached_weights


@pytest.fixture(scope="module")
def weights():
    return tiny_weights()[0]


@pytest.fixture
def hub(monkeypatch, weights):
    with HubServer() as server:
        server.add(REPO_ID, WEIGHTS_NAME, weights)
        point_hub_at(monkeypatch, server.url)
        register_tag(monkeypatch)
        yield server


def download_dialog(window) -> QProgressDialog | None:
    dialog = window.findChild(QProgressDialog, "downloadDialog")
    return dialog if dialog is not None and dialog.isVisible() else None


def test_download_dialog_cancel_keeps_the_working_model_then_reload_completes(
        qtbot, open_window, make_images, hub, weights):
    window = open_window()
    window.session.set_labels(["cat", "dog"])
    window.add_paths(make_images(2))
    wait_idle(qtbot, window, 2)
    name = window.model_info["name"]

    hub.delay = 0.02  # ~3 MB/s: the 13 MB file takes ~4 s, time to see progress and cancel
    window.load_model(ARCH, TAG)
    qtbot.waitUntil(lambda: download_dialog(window) is not None and download_dialog(window).value() >= 1,
                    timeout=20000)
    dialog = download_dialog(window)
    assert f"Downloading {ARCH} {TAG}" in dialog.labelText()
    assert " of 13 MB" in dialog.labelText() and dialog.maximum() == 13
    # The rate shown is the transfer's: the server sends at most 64 KiB per 20 ms (3.1 MiB/s).
    rate = float(re.search(r"· ([0-9.]+) MB/s", dialog.labelText()).group(1))
    assert 0 < rate <= 3.2, dialog.labelText()
    button = dialog.findChild(QPushButton)
    assert button.text() == "Cancel"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in window.status_label.text(), timeout=5000)
    assert window.status_label.text() == f"Model loading cancelled. Still using {name}."
    assert download_dialog(window) is None
    assert window.model_ready and window.model_label.text().startswith(name)
    assert hub.aborted.wait(10)  # the transfer itself stopped, rather than landing the file later
    assert cached_weights(ARCH, TAG) is None
    # The previous model still classifies: new images get scores.
    window.add_paths(make_images(1, first_seed=5))
    wait_idle(qtbot, window, 3)
    assert all(item.probs is not None for item in window.session.items)

    hub.delay = 0.0
    with qtbot.waitSignal(window.model_loaded, timeout=60000) as loaded:
        window.load_model(ARCH, TAG)
    assert loaded.args[0]["pretrained"] == TAG and loaded.args[0]["arch"] == ARCH
    assert download_dialog(window) is None  # closed once the load finished
    path = cached_weights(ARCH, TAG)
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(weights).digest()
    wait_idle(qtbot, window, 3)


def test_unreachable_hub_says_so_in_one_dialog(qtbot, open_window, monkeypatch):
    window = open_window()
    name = window.model_info["name"]
    point_hub_at(monkeypatch, closed_port_url())
    register_tag(monkeypatch)
    window.load_model(ARCH, TAG)
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "modelErrorBox") is not None, timeout=10000)
    box = window.findChild(QMessageBox, "modelErrorBox")
    first = box.text().split("\n")[0]
    assert first.startswith(f"Could not download the weights for {ARCH} '{TAG}' (no connection to 127.0.0.1:")
    assert "Traceback" not in box.text() and "--pretrained" not in box.text()
    assert window.status_label.text() == f"The model could not be loaded. Still using {name}."
    assert download_dialog(window) is None
