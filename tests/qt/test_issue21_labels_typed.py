"""Issue 21: labels typed one after another while a folder is classified. Each re-scores what is
done at once — while the running batch is still being encoded, not after it — and the running
classification goes on: never restarted, no image decoded twice."""

from __future__ import annotations

import threading

import numpy as np
from issue21_helpers import Counts, expected_probs, type_label
from qt_helpers import wait_idle

import clipdesk.qt.classify_controller as classify_module

LABELS = ["red", "a dog", "blue sky", "a car"]


def gate_encoder(monkeypatch, window) -> threading.Semaphore:
    """The image encoder runs one batch per release: the test decides where the run is."""
    gate = threading.Semaphore(0)
    encoder = window.worker.engine.encoder
    encode = encoder.encode_image

    def gated(images, *args, **kwargs):
        assert gate.acquire(timeout=60), "the test never released this batch"
        return encode(images, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode_image", gated)
    return gate


def test_labels_typed_during_classification(qtbot, open_window, make_images, monkeypatch):
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 64)  # one chunk: every edit lands mid-chunk
    window = open_window(batch_size=2)
    window.session.set_options(templates="none")
    counts = Counts(monkeypatch, window)
    gate = gate_encoder(monkeypatch, window)
    images = make_images(24)
    window.add_paths(images)
    gate.release(3)
    qtbot.waitUntil(lambda: window.session.counts()["done"] == 6, timeout=30000)
    task = window.classifier.task
    assert task is not None

    for typed, label in enumerate(LABELS, start=1):
        # The worker now waits inside a batch's encoding (the gate is shut): a re-score that
        # waited for the batch to end would never come, and this wait would time out.
        type_label(qtbot, window, label)
        done_before = [item for item in window.session.items if item.status == "done"]

        def rescored(done_before=done_before, typed=typed) -> bool:
            return (window.session.score_labels == LABELS[:typed]
                    and all(item.probs is not None and len(item.probs) == typed for item in done_before))

        qtbot.waitUntil(rescored, timeout=30000)
        # Re-scored while the same classification still runs (the worker waits for the gate).
        assert window.classifier.task is task and window.session.pending_paths()
        gate.release(2)
        target = len(done_before) + 4  # two batches of 2 released since the edit
        qtbot.waitUntil(lambda target=target: window.session.counts()["done"] >= target, timeout=30000)

    gate.release(1000)
    wait_idle(qtbot, window, 24)
    counts.assert_each_image_once(images)
    loaded = window.worker.engine.loaded
    paths = [item.path for item in window.session.items]
    expected = expected_probs(loaded.model, loaded.tokenizer, loaded.preprocess, paths, LABELS)
    got = np.stack([item.probs for item in window.session.items])
    assert window.session.score_labels == LABELS
    np.testing.assert_allclose(got, expected, atol=2e-3)
