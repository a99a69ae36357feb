"""Multi-label in the window (issue 15): clicking the checkbox scores every loaded image from its
whole picture and its four quarters, progressively and cancellably, on the demo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from qt_helpers import TINY, wait_idle

import clipdesk.qt.classify_controller as classify_module
from clipdesk.core.engine import open_engine_job
from clipdesk.core.jobs import run_job
from clipdesk.core.settings import Settings

# Eight colour-shape labels, no colour or shape twice; a picture draws two of them (or one).
PAIRS = [("red", "square"), ("orange", "diamond"), ("yellow", "ring"), ("green", "triangle"),
         ("blue", "cross"), ("purple", "circle"), ("pink", "star"), ("white", "heart")]
NAMES = [f"{colour} {shape}" for colour, shape in PAIRS]
PRESENT_FROM = 0.05  # the documented bar (README), written here, not imported


@pytest.fixture(scope="module")
def demo_engine():
    """Our own demo engine (no cache): the independent computation the window is checked against."""
    return run_job(open_engine_job("demo", "demo", "cpu", "torch", use_cache=False))


def make_pictures(folder, n_two: int, n_one: int = 0, seed: int = 0):
    """128-px pictures of the demo model's world; returns (paths, the labels drawn in each)."""
    from training.synthetic import render, sample_scene

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    scenes = ([sample_scene(rng, pairs=PAIRS, n_objects=2) for _ in range(n_two)]
              + [sample_scene(rng, pairs=PAIRS, n_objects=1) for _ in range(n_one)])
    paths = []
    for i, scene in enumerate(scenes):
        paths.append(folder / f"scene{i:02d}.png")
        render(scene, 128).save(paths[-1])
    return paths, [{f"{c} {s}" for c, s in scene.pairs} for scene in scenes]


@pytest.fixture
def demo_window(qtbot):
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    windows = []

    def open_(batch_size: int = 8):
        window = MainWindow(ModelChoice("demo", "demo", "cpu", "torch"), Settings.load(), batch_size=batch_size)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
        return window

    yield open_
    for window in windows:
        window.close()


def click_multi_label(qtbot, window) -> None:
    box = window.label_editor.multi_label
    before = box.isChecked()
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert box.isChecked() != before and window.session.multi_label == box.isChecked()


def multi_label_window(qtbot, demo_window, folder, n_two: int):
    """A demo window with two-shape pictures added and multi-label ticked before they land."""
    paths, _ = make_pictures(folder, n_two=n_two)
    window = demo_window()
    window.session.set_labels(NAMES)
    window.add_paths(paths)
    click_multi_label(qtbot, window)
    wait_idle(qtbot, window, len(paths))
    return window, paths


def encode_by_hand(loaded, images) -> np.ndarray:
    """Unit-length image embeddings straight from the model, no clipdesk pipeline in between."""
    with torch.no_grad():
        features = loaded.model.encode_image(torch.stack([loaded.preprocess(image) for image in images]))
    return (features / features.norm(dim=-1, keepdim=True)).double().numpy()


def quarters_by_hand(image: Image.Image) -> list[Image.Image]:
    """Top-left, top-right, bottom-left, bottom-right halves of each side (odd sizes overlap)."""
    w, h = image.size
    return [image.crop(box) for box in [(0, 0, w // 2, h // 2), (w - w // 2, 0, w, h // 2),
                                        (0, h - h // 2, w // 2, h), (w - w // 2, h - h // 2, w, h)]]


def independent_scores(engine, paths, labels, templates):
    """The window's multi-label scores recomputed here, not with clipdesk's own scoring: each picture
    and its four quarters through the model by hand, then the documented rule in numpy:
    c = 0.2 cos(whole) + 0.8 max(cos(whole), max cos(quarter) - 0.05), score = exp(s (c - max c)).
    Only the label text vectors come from the engine (their encoding is tested elsewhere)."""
    loaded = engine.loaded
    weights = engine.label_set(labels, templates).weights.astype(np.float64)
    scale = float(loaded.model.logit_scale.detach().exp())
    expected, quarters = {}, {}
    for path in paths:
        image = Image.open(path).convert("RGB")
        whole_vector = encode_by_hand(loaded, [image])[0]
        quarter_vectors = encode_by_hand(loaded, quarters_by_hand(image))
        whole = weights @ whole_vector
        local = (quarter_vectors @ weights.T).max(axis=0) - 0.05
        mixed = 0.2 * whole + 0.8 * np.maximum(whole, local)
        expected[path] = np.exp(scale * (mixed - mixed.max()))
        quarters[path] = quarter_vectors
    return expected, quarters


def test_two_shape_pictures_get_both_labels(qtbot, demo_window, demo_engine, tmp_path):
    paths, drawn = make_pictures(tmp_path / "pictures", n_two=12, n_one=4)
    window = demo_window()
    window.session.set_labels(NAMES)
    window.add_paths(paths)
    wait_idle(qtbot, window, len(paths))
    whole_only = {item.path: item.probs for item in window.session.items}  # softmax, one label each

    click_multi_label(qtbot, window)
    wait_idle(qtbot, window)
    expected, quarters = independent_scores(demo_engine, paths, NAMES, window.session.templates)
    embedded = run_job(demo_engine.embed_job(paths))
    whole = dict(zip(embedded.paths, demo_engine.score(  # the whole image alone, for comparison
        embedded.features, demo_engine.label_set(NAMES, window.session.templates), multi_label=True).probs))
    exact, exact_whole = [], []
    for path, labels in zip(paths, drawn):
        row = window.session.row_of(path)
        item = window.session.items[row]
        np.testing.assert_allclose(item.quarters, quarters[path], atol=1e-5)
        np.testing.assert_allclose(item.probs, expected[path], rtol=1e-3, atol=1e-6)
        assert not np.allclose(item.probs, whole_only[path])
        shown = set(window.session.decision(row).labels)
        assert shown == set(np.array(NAMES)[expected[path] >= PRESENT_FROM])
        exact.append(shown == labels)
        exact_whole.append(set(np.array(NAMES)[whole[path] >= PRESENT_FROM]) == labels)
    # Both shapes, and nothing else, in most two-shape pictures (here 9 of 12; over 6 seeds 68 %,
    # the whole image alone 33 %).
    assert sum(exact[:12]) >= 7 and sum(exact[:12]) >= sum(exact_whole[:12]) + 3, (exact, exact_whole)
    assert all(exact[12:]), exact  # a one-shape picture gets one label


def test_turning_multi_label_off_keeps_the_quarters(qtbot, demo_window, tmp_path, monkeypatch):
    window, paths = multi_label_window(qtbot, demo_window, tmp_path / "pictures", n_two=6)
    kept = {item.path: item.quarters for item in window.session.items}
    probs = {item.path: item.probs for item in window.session.items}
    assert all(q is not None and q.shape[0] == 4 for q in kept.values())

    click_multi_label(qtbot, window)  # off: softmax scores, quarters stay
    wait_idle(qtbot, window)
    assert all(np.isclose(item.probs.sum(), 1.0) for item in window.session.items)
    submitted = []
    submit = window.worker.submit
    monkeypatch.setattr(window.worker, "submit", lambda name, *a, **k: (submitted.append(name), submit(name, *a, **k))[1])
    click_multi_label(qtbot, window)  # on again: a re-score, no image or crop is embedded again
    wait_idle(qtbot, window)
    assert submitted == ["rescore"]
    for item in window.session.items:
        assert item.quarters is kept[item.path]
        np.testing.assert_allclose(item.probs, probs[item.path], atol=1e-5)


def test_cancel_during_the_region_pass_and_resume(qtbot, demo_window, demo_engine, tmp_path, monkeypatch):
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 4)  # many small chunks: Cancel lands mid-pass
    monkeypatch.setattr(classify_module, "CHUNK_MAX", 4)
    paths, _ = make_pictures(tmp_path / "pictures", n_two=40)
    window = demo_window(batch_size=2)
    window.session.set_labels(NAMES)
    window.add_paths(paths)
    wait_idle(qtbot, window, len(paths))
    messages = []
    window.results_updated.connect(lambda: messages.append(window.status_label.text()))

    def with_quarters() -> int:
        return sum(item.quarters is not None for item in window.session.items)

    click_multi_label(qtbot, window)
    qtbot.waitUntil(lambda: with_quarters() > 0, timeout=30000)
    assert window.cancel_button.isVisible()
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    at_cancel = with_quarters()
    qtbot.waitUntil(lambda: window._classify_task is None, timeout=20000)
    qtbot.wait(300)  # a queued chunk would have started and landed by now
    assert window._classify_task is None and with_quarters() <= at_cancel + 2 * 2
    assert window.session.region_pending()
    assert "not scored for multi-label" in window.status_label.text()
    assert any(text.startswith("Scoring regions for multi-label") for text in messages)
    # Meanwhile every image has a score: whole-image ones where no quarters were computed yet.
    assert all(item.probs is not None for item in window.session.items)
    window.session.add_label("grey ring")  # an edit while paused re-scores; the status still says
    qtbot.waitUntil(lambda: window.session.score_labels == [*NAMES, "grey ring"]  # what is left
                    and "not yet scored for multi-label" in window.status_label.text(), timeout=10000)
    assert window._classify_task is None and window.session.region_pending()
    window.session.remove_label(len(NAMES))

    window.classify_action.trigger()  # File › Classify pending images resumes the pass
    wait_idle(qtbot, window)
    assert with_quarters() == len(paths)
    expected, _ = independent_scores(demo_engine, paths, NAMES, window.session.templates)
    for item in window.session.items:
        np.testing.assert_allclose(item.probs, expected[item.path], rtol=1e-3, atol=1e-6)


def test_a_model_switch_drops_the_quarters(qtbot, demo_window, tmp_path):
    window, paths = multi_label_window(qtbot, demo_window, tmp_path / "pictures", n_two=4)
    demo_dim = window.session.items[0].vector.shape[0]
    with qtbot.waitSignal(window.model_loaded, timeout=60000):
        window.load_model(*TINY)
    assert all(item.quarters is None and item.vector is None for item in window.session.items)
    wait_idle(qtbot, window)
    tiny_dim = window.session.items[0].vector.shape[0]
    assert tiny_dim != demo_dim
    assert all(item.quarters.shape == (4, tiny_dim) for item in window.session.items)


def test_region_pass_equals_classifying_with_multi_label(demo_engine, tmp_path):
    """The two ways an image gets its crops (new with multi-label on, or a region pass after) give
    the same quarters and scores; a file gone since it was embedded keeps its whole-image score."""
    from clipdesk.core.session import ScoredBatch, classify_job, regions_job

    paths, _ = make_pictures(tmp_path / "pictures", n_two=5, n_one=1)

    def batches(job) -> list[ScoredBatch]:
        out = []
        run_job(job, lambda progress: out.append(progress.payload) if progress.payload else None)
        return out

    direct = batches(classify_job(demo_engine, paths, NAMES, "none", True, batch_size=4))
    vectors = [vector for batch in direct for _, vector, _ in batch.items]
    paths[-1].unlink()  # vanished since: its crops cannot be made
    later = batches(regions_job(demo_engine, paths, vectors, NAMES, "none", batch_size=4))
    assert [p for b in later for p, _, _ in b.items] == paths  # every image, in order, none an error
    quarters = np.concatenate([b.quarters for b in later])
    probs = np.concatenate([b.probs for b in later])
    np.testing.assert_allclose(quarters[:-1], np.concatenate([b.quarters for b in direct])[:-1], atol=1e-6)
    np.testing.assert_allclose(probs[:-1], np.concatenate([b.probs for b in direct])[:-1], atol=1e-6)
    np.testing.assert_allclose(quarters[-1], np.repeat(vectors[-1][None], 4, axis=0))
    whole = demo_engine.score(vectors[-1][None], demo_engine.label_set(NAMES, "none"), multi_label=True)
    np.testing.assert_allclose(probs[-1], whole.probs[0], atol=1e-6)


def test_edits_during_the_region_pass(qtbot, demo_window, demo_engine, tmp_path, monkeypatch):
    """Removing images and editing labels while crops are computed: what is left ends up scored
    exactly as computed apart, with the new labels."""
    monkeypatch.setattr(classify_module, "CHUNK_MIN", 4)
    monkeypatch.setattr(classify_module, "CHUNK_MAX", 4)
    paths, _ = make_pictures(tmp_path / "pictures", n_two=24)
    window = demo_window(batch_size=2)
    window.session.set_labels(NAMES[:6])
    window.add_paths(paths)
    wait_idle(qtbot, window, len(paths))
    click_multi_label(qtbot, window)
    qtbot.waitUntil(lambda: any(item.quarters is not None for item in window.session.items), timeout=30000)
    window.session.remove_rows(range(0, 24, 3))
    window.session.add_label(NAMES[6])
    window.session.add_label(NAMES[7])
    wait_idle(qtbot, window, 16)
    assert window.session.score_labels == NAMES
    kept = [item.path for item in window.session.items]
    expected, quarters = independent_scores(demo_engine, kept, NAMES, window.session.templates)
    for item in window.session.items:
        np.testing.assert_allclose(item.quarters, quarters[item.path], atol=1e-5)
        np.testing.assert_allclose(item.probs, expected[item.path], rtol=1e-3, atol=1e-6)
