"""Engine behaviour: progress and cancel while embedding, scoring maths, and search ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipdesk.core.classify import rank, softmax
from clipdesk.core.errors import Cancelled, ImageLoadError, LabelError
from clipdesk.core.jobs import CancelToken, run_job


def independent_image_vectors(loaded, paths) -> np.ndarray:
    with torch.no_grad():
        batch = torch.stack([loaded.preprocess(Image.open(p).convert("RGB")) for p in paths])
        features = loaded.model.encode_image(batch)
    return (features / features.norm(dim=-1, keepdim=True)).numpy()


def independent_text_vector(loaded, text: str) -> np.ndarray:
    with torch.no_grad():
        features = loaded.model.encode_text(loaded.tokenizer([text]))[0]
    return (features / features.norm()).numpy()


def test_progress_counts_every_file_in_batches(tiny_engine, make_images):
    paths = make_images(7)
    steps = []
    result = run_job(tiny_engine.embed_job(paths, batch_size=3), on_progress=steps.append)
    done = [step.done for step in steps]
    assert done == [0, 3, 6, 7]
    assert all(step.total == 7 and step.unit == "img" for step in steps)
    assert [len(step.payload) for step in steps[1:]] == [3, 3, 1]
    assert result.features.shape == (7, 64)
    assert tiny_engine.encoder.encoder_calls == 3


def test_empty_input(tiny_engine):
    result = run_job(tiny_engine.embed_job([]))
    assert result.paths == [] and result.features.shape[0] == 0 and result.errors == {}


def test_all_files_bad_gives_empty_features(tiny_engine, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    result = run_job(tiny_engine.embed_job([bad]))
    assert result.features.shape[0] == 0 and list(result.errors) == [bad]
    scores = tiny_engine.score(result.features, tiny_engine.label_set(["cat"]))
    assert scores.probs.shape == (0, 1)


def test_cancel_mid_embed_stops_within_a_batch(tiny_engine, make_images):
    paths = make_images(12)
    cancel = CancelToken()
    job = tiny_engine.embed_job(paths, batch_size=2, cancel=cancel)
    seen = []
    with pytest.raises(Cancelled):
        for progress in job:
            seen.append(progress.done)
            if progress.done >= 4:
                cancel.cancel()
    assert seen == [0, 2, 4]
    assert tiny_engine.encoder.encoder_calls == 2  # nothing encoded after the cancel
    # What was encoded before the cancel is cached; a rerun only encodes the rest.
    rerun = run_job(tiny_engine.embed_job(paths, batch_size=2))
    assert rerun.encoded == 8


def test_cancel_before_start(tiny_engine, make_images):
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        run_job(tiny_engine.embed_job(make_images(3), cancel=cancel))
    assert tiny_engine.encoder.encoder_calls == 0


@pytest.mark.parametrize("workers", [1, 3])
def test_results_independent_of_batch_size_and_workers(tiny_loaded, tiny_engine_nocache, make_images,
                                                       workers):
    from clipdesk.core.embed import embed_job

    paths = make_images(5)
    reference = independent_image_vectors(tiny_loaded, paths)
    for batch_size in (1, 2, 8):
        result = run_job(embed_job(tiny_engine_nocache.encoder, paths, tiny_engine_nocache.cache,
                                   batch_size=batch_size, workers=workers))
        assert result.paths == paths
        np.testing.assert_allclose(result.features, reference, atol=1e-5)


def test_embed_image(tiny_engine, make_images, tiny_loaded, tmp_path):
    (path,) = make_images(1)
    np.testing.assert_allclose(tiny_engine.embed_image(path),
                               independent_image_vectors(tiny_loaded, [path])[0], atol=1e-5)
    bad = tmp_path / "bad.png"
    bad.write_text("x")
    with pytest.raises(ImageLoadError, match="bad.png"):
        tiny_engine.embed_image(bad)


def test_score_is_softmax_of_scaled_cosines(tiny_engine, make_images):
    result = run_job(tiny_engine.embed_job(make_images(3)))
    label_set = tiny_engine.label_set(["cat", "dog", "car"])
    scores = tiny_engine.score(result.features, label_set)
    cosines = result.features @ label_set.weights.T
    logits = tiny_engine.encoder.logit_scale * cosines
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.probs, expected, atol=1e-6)
    np.testing.assert_allclose(scores.cosines, cosines, atol=1e-6)
    top = scores.top(0)
    assert [name for name, _ in top] == [label_set.names[j] for j in np.argsort(-expected[0])]
    assert scores.top(0, 1)[0][1] == pytest.approx(expected[0].max())
    assert scores.as_dict(1) == pytest.approx(dict(zip(label_set.names, expected[1])))


def test_softmax_is_stable_for_large_logits():
    probs = softmax(np.array([[1000.0, 999.0, -1000.0]]))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])


def test_multi_label_scores_are_relative_to_the_best_label(tiny_engine, make_images):
    result = run_job(tiny_engine.embed_job(make_images(2)))
    label_set = tiny_engine.label_set(["cat", "dog", "car"])
    scores = tiny_engine.score(result.features, label_set, multi_label=True)
    cosines = result.features @ label_set.weights.T
    expected = np.exp(tiny_engine.encoder.logit_scale * (cosines - cosines.max(axis=1, keepdims=True)))
    np.testing.assert_allclose(scores.probs, expected, atol=1e-6)
    np.testing.assert_allclose(scores.probs.max(axis=1), 1.0)  # the best label is always present
    assert scores.multi_label


# -- search ------------------------------------------------------------------------------------


def test_search_text_ranks_by_cosine(tiny_engine, tiny_loaded, make_images):
    paths = make_images(6)
    result = run_job(tiny_engine.embed_job(paths))
    query = independent_text_vector(tiny_loaded, "a red bicycle")
    cosines = independent_image_vectors(tiny_loaded, paths) @ query
    hits = tiny_engine.search_text("  a red bicycle ", result.features, top_k=4)
    assert [i for i, _ in hits] == list(np.argsort(-cosines)[:4])
    np.testing.assert_allclose([c for _, c in hits], np.sort(cosines)[::-1][:4], atol=1e-5)
    assert len(tiny_engine.search_text("a red bicycle", result.features)) == 6
    with pytest.raises(LabelError):
        tiny_engine.search_text("   ", result.features)


def test_search_image_finds_itself_first(tiny_engine, tiny_loaded, make_images):
    paths = make_images(6)
    result = run_job(tiny_engine.embed_job(paths))
    query = tiny_engine.embed_image(paths[3])
    hits = tiny_engine.search_image(query, result.features, top_k=3)
    assert hits[0][0] == 3 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    reference = independent_image_vectors(tiny_loaded, paths)
    expected = np.argsort(-(reference @ reference[3]))[:3]
    assert [i for i, _ in hits] == list(expected)
    assert [c for _, c in hits] == sorted((c for _, c in hits), reverse=True)


def test_rank_edge_cases():
    features = np.eye(3, dtype=np.float32)
    assert rank(np.array([0, 1, 0], np.float32), features, top_k=10)[0] == (1, 1.0)
    assert rank(np.ones(3, np.float32), np.zeros((0, 3), np.float32)) == []
    assert [i for i, _ in rank(np.ones(3, np.float32), features)] == [0, 1, 2]  # ties: stable
