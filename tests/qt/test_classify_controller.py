"""ClassifyController: chunked classification, Cancel and Ctrl+R, re-scores between chunks,
and the progress shown while it runs."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from qt_helpers import wait_idle

import clipdesk.qt.classify_controller as classify_module
from clipdesk.qt.classify_controller import CHUNK_MAX, CHUNK_MIN, CHUNK_SECONDS, Run


def _count_submits(window, monkeypatch) -> list[tuple[str, int]]:
    """Record (task name, images) for every task this window's worker gets."""
    submitted: list[tuple[str, int]] = []
    submit = window.worker.submit

    def counting(name, factory, connect=None, cancellable=True, **options):
        submitted.append((name, len(window.classifier.in_flight)))
        return submit(name, factory, connect=connect, cancellable=cancellable, **options)

    monkeypatch.setattr(window.worker, "submit", counting)
    return submitted


def test_images_are_classified_in_chunks_with_progress(qtbot, open_window, make_images, monkeypatch):
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 4)
    monkeypatch.setattr(classify_module, "CHUNK_MAX", 4)
    window = open_window(batch_size=2)
    window.session.set_labels(["cat", "dog"])
    submitted = _count_submits(window, monkeypatch)
    formats: list[str] = []
    window.results_updated.connect(lambda: formats.append(window.progress_bar.format()))
    with qtbot.waitSignal(window.idle, timeout=60000):
        window.add_paths(make_images(12))
    wait_idle(qtbot, window, 12)
    assert [size for name, size in submitted if name == "classify"] == [4, 4, 4]  # 12 images, chunks of 4
    assert window.progress_bar.maximum() == 12 and window.progress_bar.value() == 12
    assert sum(text.endswith(" img/s") for text in formats) == 6  # one per batch of 2
    assert window.status_label.text() == "12 of 12 images classified."
    assert not window.progress_bar.isVisible() and not window.cancel_button.isVisible()
    assert all(item.probs is not None and np.isclose(item.probs.sum(), 1.0) for item in window.session.items)


def run_in_chunks_of_4(qtbot, open_window, images, monkeypatch):
    """A window classifying `images` in chunks of 4 (batches of 2), once the first batch landed."""
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 4)
    monkeypatch.setattr(classify_module, "CHUNK_MAX", 4)
    window = open_window(batch_size=2)
    window.session.set_labels(["cat", "dog"])
    window.add_paths(images)
    qtbot.waitUntil(lambda: window.session.counts()["done"] > 0, timeout=30000)
    return window


def test_ctrl_r_resumes_after_cancel(qtbot, open_window, make_images, monkeypatch):
    window = run_in_chunks_of_4(qtbot, open_window, make_images(16), monkeypatch)
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window._classify_task is None, timeout=20000)
    assert window.classifier.paused and window.session.pending_paths()
    window.session.add_label("bird")  # an edit while paused re-scores what is there, embeds nothing
    qtbot.wait(300)
    assert window.classifier.task is None and window.session.pending_paths()
    window.activateWindow()
    qtbot.keyClick(window.image_view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window, 16)
    assert not window.classifier.paused
    assert all(item.probs is not None and len(item.probs) == 3 for item in window.session.items)


def test_label_edit_during_a_run_is_served_between_chunks(qtbot, open_window, make_images, monkeypatch):
    window = run_in_chunks_of_4(qtbot, open_window, make_images(12), monkeypatch)
    window.session.add_label("bird")
    wait_idle(qtbot, window, 12)
    assert window.session.score_labels == ["cat", "dog", "bird"]
    assert window.classifier.scores_signature == window.classifier.signature()
    assert all(item.probs is not None and len(item.probs) == 3 for item in window.session.items)
    window.session.set_labels([])  # no labels: the scores go, nothing is re-scored
    wait_idle(qtbot, window, 12)
    assert window.session.score_labels == [] and window.classifier.rescore_task is None


def test_chunk_size_follows_the_measured_rate():
    class Fake:
        run = None

    controller = Fake()
    size = classify_module.ClassifyController.chunk_size
    assert size(controller) == CHUNK_MIN  # nothing measured yet
    controller.run = Run(total=10_000, done=400, started=time.monotonic() - 2.0)  # ≈ 200 img/s
    assert abs(size(controller) - 200 * CHUNK_SECONDS) <= 2
    controller.run = Run(total=10_000, done=100_000, started=time.monotonic() - 1.0)
    assert size(controller) == CHUNK_MAX
