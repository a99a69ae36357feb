"""Few-shot heads that load but would compute garbage are refused at load, and labels that name
the head's classes differently (case, spacing, a subset) still use the head."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.heads import load_head
from clipdesk.core.models import TINY_ARCH, load_model

DIM = 64  # clipdesk-tiny's embedding width
CLASSES = ["golden retriever", "Cat", "dog"]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def linear_folder(folder, weight, bias, scale=20.0, classes=CLASSES, **head):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight, "bias": bias}, str(folder / "head.safetensors"))
    metadata = {"architecture": TINY_ARCH, "base_pretrained": "none", "class_names": classes,
                "head": {"kind": "linear", "file": "head.safetensors", "scale": scale, **head}}
    (folder / "metadata.json").write_text(json.dumps(metadata))  # NaN is written as a bare token
    return folder, metadata


@pytest.fixture
def weights():
    rng = np.random.default_rng(3)
    return unit(rng.normal(size=(3, DIM))), rng.normal(size=3).astype(np.float32) * 0.1


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_fp16_head_is_read_as_float32_and_scores_properly(tmp_path, weights):
    weight, bias = weights
    folder, metadata = linear_folder(tmp_path / "m", weight.astype(np.float16), bias.astype(np.float16))
    head = load_head(folder, metadata)
    assert head.weight.dtype == np.float32 and head.bias.dtype == np.float32
    features = unit(np.random.default_rng(4).normal(size=(5, DIM)))
    expected = 20.0 * features.astype(np.float64) @ weight.astype(np.float16).astype(np.float64).T \
        + bias.astype(np.float16)
    np.testing.assert_allclose(head.logits(features), expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(softmax(head.logits(features)), axis=1).max() > 0.05  # not flat


@pytest.mark.parametrize("change, words", [
    (lambda w, b: (w.astype(np.int32), b), "int32"),
    (lambda w, b: (np.where(np.arange(DIM) == 3, np.nan, w).astype(np.float32), b), "NaN"),
    (lambda w, b: (w, np.array([np.inf, 0, 0], np.float32)), "infinite"),
    (lambda w, b: (w[:2], b), "does not match"),
    (lambda w, b: (w, b[:2]), "does not match"),
    (lambda w, b: (w.reshape(-1), b), "does not match"),
    (lambda w, b: (w, np.zeros((3, 1), np.float32)), "does not match"),
])
def test_damaged_tensors_are_refused_at_load(tmp_path, weights, change, words):
    folder, metadata = linear_folder(tmp_path / "m", *change(*weights))
    with pytest.raises(ModelLoadError, match=words) as caught:
        load_head(folder, metadata)
    assert "head.safetensors" in str(caught.value)


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -3.0, 0.0, "20", True, None, 1e30])
def test_bad_scale_is_refused_at_load(tmp_path, weights, scale):
    folder, metadata = linear_folder(tmp_path / "m", *weights, scale=scale)
    with pytest.raises(ModelLoadError, match="'scale'"):
        load_head(folder, metadata)
    with pytest.raises(ModelLoadError):  # the CLI path: load_model exits 1 with this sentence
        load_model(TINY_ARCH, str(folder), "cpu")


def test_head_file_outside_the_folder_is_refused(tmp_path, weights):
    folder, metadata = linear_folder(tmp_path / "m", *weights, file="../../etc/passwd")
    with pytest.raises(ModelLoadError, match="plain file name"):
        load_head(folder, metadata)


def test_head_for_another_embedding_width_is_refused_before_scoring(tmp_path):
    rng = np.random.default_rng(5)
    folder, _ = linear_folder(tmp_path / "m", unit(rng.normal(size=(3, DIM + 8))), np.zeros(3, np.float32))
    loaded = load_model(TINY_ARCH, str(folder), "cpu")
    with pytest.raises(ModelLoadError, match=f"{DIM + 8}-d"):
        Engine(TorchEncoder(loaded), NullCache())


@pytest.fixture
def head_engine(tmp_path, weights):
    folder, _ = linear_folder(tmp_path / "m", *weights)
    return Engine(TorchEncoder(load_model(TINY_ARCH, str(folder), "cpu")), NullCache())


def test_other_case_and_spacing_still_use_the_head(head_engine, weights):
    weight, bias = weights
    features = unit(np.random.default_rng(6).normal(size=(4, DIM)))
    label_set = head_engine.label_set(["DOG", " cat ", "Golden_Retriever"])
    assert not any("head" in note for note in label_set.notes)
    scores = head_engine.score(features, label_set)
    expected = softmax((20.0 * features @ weight.T + bias)[:, [2, 1, 0]])
    np.testing.assert_allclose(scores.probs, expected, rtol=1e-5, atol=1e-6)


def test_a_subset_uses_the_heads_rows_renormalised(head_engine, weights):
    weight, bias = weights
    features = unit(np.random.default_rng(7).normal(size=(4, DIM)))
    scores = head_engine.score(features, head_engine.label_set(["dog", "golden retriever"]))
    expected = softmax((20.0 * features @ weight.T + bias)[:, [2, 0]])
    np.testing.assert_allclose(scores.probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, rtol=1e-6)


def test_other_labels_say_the_head_is_not_used(head_engine):
    features = unit(np.random.default_rng(8).normal(size=(2, DIM)))
    label_set = head_engine.label_set(["dog", "car"])
    (note,) = [n for n in label_set.notes if "head" in n]
    assert "'car'" in note and "zero-shot" in note
    scores = head_engine.score(features, label_set)
    zero_shot = softmax(head_engine.encoder.logit_scale * features @ label_set.weights.T)
    np.testing.assert_allclose(scores.probs, zero_shot, rtol=1e-5, atol=1e-6)
