"""Issue 21: first use of a model never exported to ONNX (backend auto: torch serves while the
export is prepared in the background), photos dropped, 3 labels typed, then a 4th right after
the first results. The 4th label is one text encoding and a matrix product: no classification
job, no image decoded or encoded again."""

from __future__ import annotations

import numpy as np
import pytest
from issue21_helpers import Counts, expected_probs, type_label
from qt_helpers import TINY, wait_idle
from synth_images import save_image

LABELS = ["a cat", "a dog", "a car", "a bird"]


@pytest.fixture
def first_use_window(qtbot, monkeypatch):
    """The window on a model that was never exported, with the background export on (as for a
    user; the test suite turns it off elsewhere)."""
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    monkeypatch.setenv("CLIPDESK_BACKGROUND_EXPORT", "1")
    window = MainWindow(ModelChoice(*TINY, "cpu", "auto"), batch_size=4)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
    yield window
    window.close()


def test_a_label_added_after_first_use_is_only_rescored(qtbot, first_use_window, tmp_path, monkeypatch):
    window = first_use_window
    assert window.worker.engine.encoder.note  # the never-exported path: an export is being prepared
    window.session.set_options(templates="none")
    counts = Counts(monkeypatch, window)
    photos = [save_image(tmp_path / "photos" / f"photo{i}.png", i, 640, 480) for i in range(6)]
    window.add_paths(photos)
    for label in LABELS[:3]:
        type_label(qtbot, window, label)
    wait_idle(qtbot, window, 6)
    assert window.session.score_labels == LABELS[:3]

    engine = window.worker.engine
    encoded_images, encoded_labels = engine.encoder.encoder_calls, engine.text_encodes
    jobs = len(counts.classify_calls)
    type_label(qtbot, window, LABELS[3])
    wait_idle(qtbot, window, 6)
    assert window.session.score_labels == LABELS
    assert len(counts.classify_calls) == jobs, "the label edit started a classification"
    assert engine.encoder.encoder_calls == encoded_images, "images went through the encoder again"
    assert engine.text_encodes == encoded_labels + 1  # only the new label through the text tower
    counts.assert_each_image_once(photos)

    loaded = engine.loaded
    paths = [item.path for item in window.session.items]
    expected = expected_probs(loaded.model, loaded.tokenizer, loaded.preprocess, paths, LABELS)
    got = np.stack([item.probs for item in window.session.items])
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_torch_leaves_the_background_export_a_core():
    """While the export process runs, torch uses one core fewer; before it starts (the note is
    already up: it is due after the first batch) and after it, every core (the measured cause
    of the slow label: threads waiting for each other; of slow first results: one thread)."""
    import torch

    from clipdesk.core.embed import share_cores

    class Stub:
        class loaded:  # noqa: N801 - stands in for LoadedModel
            device = torch.device("cpu")

        note = ""
        export_running = False

    before = torch.get_num_threads()
    try:
        share_cores(Stub())  # nothing prepared: every core (whatever an earlier test left)
        every = torch.get_num_threads()
        Stub.note = "Preparing a faster ONNX version of this model in the background."
        share_cores(Stub())
        assert torch.get_num_threads() == every  # announced, not started: the first photos get every core
        Stub.export_running = True
        share_cores(Stub())
        assert torch.get_num_threads() == max(1, every - 1)
        Stub.export_running = False
        share_cores(Stub())
        assert torch.get_num_threads() == every
    finally:
        torch.set_num_threads(before)


def test_first_photos_get_every_core_and_the_export_starts_after_them(qtbot, first_use_window, tmp_path,
                                                                     monkeypatch):
    import torch

    import clipdesk.core.embed as embed_module

    # share_cores learns "every core" afresh on the first batch: the worker thread's own count
    # (an earlier test in this process may have left another thread's count lower).
    monkeypatch.setattr(embed_module, "_all_cores", None)
    window = first_use_window
    encoder = window.worker.engine.encoder
    assert encoder.note and not encoder.export_running  # announced at load, not started
    threads, running = [], []
    encode = encoder.encode_image

    def watching(images):
        threads.append(torch.get_num_threads())
        running.append(encoder.export_running)
        return encode(images)

    monkeypatch.setattr(encoder, "encode_image", watching)
    window.session.set_options(templates="none")
    photos = [save_image(tmp_path / "photos" / f"photo{i}.png", i, 320, 240) for i in range(4)]
    window.add_paths(photos)
    type_label(qtbot, window, "a cat")
    wait_idle(qtbot, window, 4)
    assert threads and running[0] is False
    # Every core, not one fewer, while the export is only announced (the bug: one fewer).
    assert threads[0] == embed_module._all_cores
    qtbot.waitUntil(lambda: encoder._process is not None, timeout=10000)  # due after the first batch
