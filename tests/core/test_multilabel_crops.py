"""Multi-label from the whole picture and its quarters: crop geometry, the scoring maths against a
loop, quarter embeddings against encoding each crop by hand, their cache, and the fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import EmbeddingCache
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.multilabel import global_local_scores, quarter_crops
from clipdesk.core.session import ImageItem, decide, decision_arrays

# The documented rule (module docstring and README), written out here rather than imported: the
# test must fail when a constant in the code drifts from what the documentation promises.
WHOLE_WEIGHT_DOC = 0.2
LOCAL_MARGIN_DOC = 0.05
PRESENT_FROM_DOC = 0.05


def test_quarter_crops_are_the_four_corners_of_the_picture():
    pixels = np.arange(7 * 5 * 3, dtype=np.uint8).reshape(5, 7, 3)
    crops = quarter_crops(Image.fromarray(pixels))
    assert [crop.size for crop in crops] == [(3, 2)] * 4
    np.testing.assert_array_equal(np.asarray(crops[0]), pixels[:2, :3])
    np.testing.assert_array_equal(np.asarray(crops[1]), pixels[:2, 4:])
    np.testing.assert_array_equal(np.asarray(crops[2]), pixels[3:, :3])
    np.testing.assert_array_equal(np.asarray(crops[3]), pixels[3:, 4:])
    assert [crop.size for crop in quarter_crops(Image.new("RGB", (1, 1)))] == [(1, 1)] * 4


def test_global_local_scores_equal_a_loop():
    rng = np.random.default_rng(0)
    features, quarters = rng.normal(size=(3, 6)) * 0.2, rng.normal(size=(3, 4, 6)) * 0.2
    weights, scale = rng.normal(size=(4, 6)), 5.0
    scores = global_local_scores(features, quarters, weights, scale, list("abcd"))
    for i in range(3):
        mixed = []
        for j in range(4):
            whole = features[i] @ weights[j]
            best_quarter = max(quarters[i, k] @ weights[j] for k in range(4))
            mixed.append(WHOLE_WEIGHT_DOC * whole
                         + (1 - WHOLE_WEIGHT_DOC) * max(whole, best_quarter - LOCAL_MARGIN_DOC))
        expected = [np.exp(scale * (m - max(mixed))) for m in mixed]
        np.testing.assert_allclose(scores.probs[i], expected, rtol=1e-5)
    assert scores.multi_label


def test_a_worked_example_by_hand():
    """Labels are the unit vectors, so every cosine below is a number written here."""
    whole = np.array([[0.30, 0.25, 0.10]])
    quarters = np.array([[[0.34, 0.20, 0.05], [0.10, 0.33, 0.02], [0.28, 0.15, 0.12], [0.0, 0.0, 0.0]]])
    # label a: quarter 0.34 - 0.05 = 0.29 < 0.30, so c = 0.30 (the whole picture wins)
    # label b: quarter 0.33 - 0.05 = 0.28 > 0.25, so c = 0.2 * 0.25 + 0.8 * 0.28 = 0.274
    # label c: quarter 0.12 - 0.05 = 0.07 < 0.10, so c = 0.10
    # scores at logit scale 100: exp(100 * (c - 0.30)) = 1, exp(-2.6), exp(-20)
    scores = global_local_scores(whole, quarters, np.eye(3), 100.0, ["a", "b", "c"])
    np.testing.assert_allclose(scores.probs[0], [1.0, 0.0742735782, 2.0611536e-09], rtol=1e-5)
    np.testing.assert_allclose(scores.cosines, whole)  # the shown cosines stay the whole picture's
    assert decide(scores.probs[0], scores.labels, multi_label=True).labels == ["a", "b"]


def test_present_from_five_percent_of_the_best_label():
    probs = np.array([1.0, PRESENT_FROM_DOC, PRESENT_FROM_DOC - 1e-4, 0.2], np.float32)
    names = ["best", "edge", "below", "second"]
    assert decide(probs, names, multi_label=True).labels == ["best", "second", "edge"]
    arrays = decision_arrays([ImageItem(Path("x"), probs=probs)], 4, multi_label=True)
    assert arrays.present.tolist() == [[True, True, False, True]]
    nothing = decide(np.array([0.01, 0.02], np.float32), ["a", "b"], multi_label=True)
    assert nothing.labels == [] and nothing.unsure


def test_without_quarters_the_scores_are_relative_to_the_best_whole_image_label():
    rng = np.random.default_rng(1)
    features, weights = rng.normal(size=(2, 6)), rng.normal(size=(3, 6))
    cosines = features @ weights.T
    expected = np.exp(2.0 * (cosines - cosines.max(axis=1, keepdims=True)))
    np.testing.assert_allclose(global_local_scores(features, None, weights, 2.0, list("abc")).probs, expected,
                               rtol=1e-5)


def encode_crops_by_hand(loaded, path) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    boxes = [(0, 0, w // 2, h // 2), (w - w // 2, 0, w, h // 2),
             (0, h - h // 2, w // 2, h), (w - w // 2, h - h // 2, w, h)]
    with torch.no_grad():
        features = loaded.model.encode_image(torch.stack([loaded.preprocess(image.crop(b)) for b in boxes]))
    return (features / features.norm(dim=-1, keepdim=True)).numpy()


class CountingEncoder(TorchEncoder):
    calls = 0

    def encode_image(self, images, normalize: bool = True):
        CountingEncoder.calls += len(images)
        return super().encode_image(images, normalize)


def test_quarters_equal_encoding_each_crop_and_come_from_the_cache_the_second_time(
        tiny_loaded, tmp_path, make_images):
    paths = make_images(3, size=(97, 71))
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    engine = Engine(CountingEncoder(tiny_loaded), cache)
    whole = run_job(engine.embed_job(paths))
    CountingEncoder.calls = 0
    quarters = run_job(engine.quarters_job(paths, whole.features, batch_size=4))
    assert quarters.shape == (3, 4, whole.features.shape[1]) and CountingEncoder.calls == 12
    for path, rows in zip(paths, quarters):
        np.testing.assert_allclose(rows, encode_crops_by_hand(tiny_loaded, path), atol=1e-5)
    CountingEncoder.calls = 0
    again = run_job(Engine(CountingEncoder(tiny_loaded), cache).quarters_job(paths, whole.features))
    assert CountingEncoder.calls == 0
    np.testing.assert_allclose(again, quarters, atol=1e-6)
    # the quarter rows live under their own identity: the whole-image cache is untouched
    np.testing.assert_allclose(run_job(engine.embed_job(paths)).features, whole.features, atol=1e-6)
    cache.close()


def test_a_file_gone_since_embedding_falls_back_to_whole_image_scoring(tiny_engine, make_images):
    paths = make_images(2)
    whole = run_job(tiny_engine.embed_job(paths))
    paths[1].unlink()
    quarters = run_job(tiny_engine.quarters_job(paths, whole.features))
    for k in range(4):
        np.testing.assert_array_equal(quarters[1, k], whole.features[1])
    assert not np.allclose(quarters[0, 0], whole.features[0])
    label_set = tiny_engine.label_set(["cat", "dog"])
    with_fallback = tiny_engine.score(whole.features[1:], label_set, multi_label=True, quarters=quarters[1:])
    whole_only = tiny_engine.score(whole.features[1:], label_set, multi_label=True)
    np.testing.assert_allclose(with_fallback.probs, whole_only.probs, rtol=1e-5)


@pytest.mark.parametrize("count", [0, 1])
def test_quarters_of_nothing_or_one(tiny_engine, make_images, count):
    paths = make_images(count)
    whole = run_job(tiny_engine.embed_job(paths))
    assert run_job(tiny_engine.quarters_job(paths, whole.features)).shape[0] == count
