"""The quick method: a few-shot head over cached embeddings, saved small and loaded by the core."""

from __future__ import annotations

import json

import numpy as np
from ft_helpers import TINY
from safetensors.numpy import load_file

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.classify import softmax
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from training.api import evaluate_job


def _engine(pretrained):
    return Engine(TorchEncoder(load_model(TINY, str(pretrained), "cpu")), NullCache())


def test_quick_beats_zero_shot_and_reaches_high_accuracy(quick_run):
    result, history = quick_run
    assert result.accuracy_after >= 0.99
    assert result.accuracy_after > result.accuracy_before  # random weights: zero-shot is poor
    assert result.head_kind in ("linear", "tip-adapter")
    assert sum(map(sum, result.confusion)) == len(result.val_paths) == len(result.val_pred)
    assert any(h.get("kind") == "val" for h in history)


def test_head_is_small_and_metadata_is_complete(quick_run):
    result, _ = quick_run
    folder = result.model_dir
    assert not (folder / "model.safetensors").exists()  # the base weights are referenced, not copied
    assert (folder / "head.safetensors").stat().st_size < 200_000
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["architecture"] == TINY and metadata["base_pretrained"] == "none"
    assert metadata["method"] == "quick" and metadata["class_names"] == result.classes
    assert metadata["validation"]["accuracy_after"] == result.accuracy_after
    assert {"templates", "date", "head"} <= set(metadata)
    assert (folder / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loaded_head_scores_match_the_formula_and_the_in_memory_head(quick_run):
    result, _ = quick_run
    engine = _engine(result.model_dir)
    embedded = run_job(engine.embed_job(result.val_paths))
    labels = list(reversed(result.classes))  # any order of the same labels uses the head
    scores = engine.score(embedded.features, engine.label_set(labels))

    meta = json.loads((result.model_dir / "metadata.json").read_text())["head"]
    tensors = load_file(str(result.model_dir / "head.safetensors"))
    f = embedded.features
    if meta["kind"] == "linear":
        logits = meta["scale"] * f @ tensors["weight"].T + tensors["bias"]
    else:
        affinity = np.exp(-meta["beta"] * (1 - f @ tensors["keys"].T))
        logits = meta["scale"] * f @ tensors["zero_shot"].T + meta["alpha"] * affinity @ tensors["values"]
    expected = softmax(logits)[:, [result.classes.index(c) for c in labels]]
    np.testing.assert_allclose(scores.probs, expected, rtol=1e-5, atol=1e-6)

    in_memory = result.loaded.head.logits(f)
    assert np.array_equal(engine.loaded.head.logits(f), in_memory)  # identical, not just close
    predicted = [result.classes.index(labels[i]) for i in scores.probs.argmax(1)]
    assert predicted == result.val_pred


def test_other_label_sets_keep_zero_shot_scores(quick_run):
    result, _ = quick_run
    tuned, base = _engine(result.model_dir), _engine("none")
    embedded = run_job(base.embed_job(result.val_paths))
    labels = ["red", "a photo of a dog"]
    np.testing.assert_array_equal(tuned.score(embedded.features, tuned.label_set(labels)).probs,
                                  base.score(embedded.features, base.label_set(labels)).probs)


def test_evaluate_uses_the_head_and_matches_the_training_report(quick_run, colours):
    result, _ = quick_run
    tuned = run_job(evaluate_job(colours, TINY, str(result.model_dir), device="cpu"))
    base = run_job(evaluate_job(colours, TINY, "none", device="cpu"))
    assert tuned.classes == result.classes
    assert sum(map(sum, tuned.confusion)) == len(tuned.true) == 32
    assert tuned.accuracy == np.mean(np.array(tuned.true) == np.array(tuned.pred))
    assert tuned.accuracy >= 0.95 > base.accuracy
