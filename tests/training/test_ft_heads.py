"""Few-shot heads in the core, the checkpoint folder rules, and gradient accumulation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ft_helpers import TINY, make_colour_folder

from clipdesk.core.errors import ModelLoadError
from clipdesk.core.heads import LinearHead, TipAdapterHead, head_metadata, load_head
from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from training.checkpoint import STATE_DIR, output_dir, write_model_folder
from training.common import train_transform
from training.data import ImageDataset, scan_dataset
from training.loop import LoopConfig, contrastive_train_job


def _write_head(folder, head, classes):
    metadata = {"architecture": TINY, "base_pretrained": "none", "class_names": classes,
                "head": head_metadata(head)}
    write_model_folder(folder, metadata, head=head.tensors())
    return metadata


def test_tip_adapter_head_round_trip_and_formula(tmp_path):
    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    zero_shot, keys, features = unit(rng.normal(size=(3, 64))), unit(rng.normal(size=(5, 64))), unit(rng.normal(size=(4, 64)))
    values = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]]
    head = TipAdapterHead(["a", "b", "c"], zero_shot, keys, values, alpha=2.0, beta=5.5, scale=50.0)
    metadata = _write_head(tmp_path, head, ["a", "b", "c"])
    loaded = load_head(tmp_path, metadata)
    expected = 50.0 * features @ zero_shot.T + 2.0 * np.exp(-5.5 * (1 - features @ keys.T)) @ values
    np.testing.assert_allclose(loaded.logits(features), expected, rtol=1e-5)
    assert np.array_equal(loaded.logits(features), head.logits(features))

    model = load_model(TINY, str(tmp_path), "cpu")  # through the core's folder loader
    assert model.head.kind == "tip-adapter" and model.class_names == ["a", "b", "c"]


def test_malformed_heads_are_one_clear_error(tmp_path):
    head = LinearHead(["a", "b"], np.zeros((2, 64), np.float32), np.zeros(2, np.float32), 10.0)
    metadata = _write_head(tmp_path, head, ["a", "b"])
    with pytest.raises(ModelLoadError, match="does not match"):
        load_head(tmp_path, dict(metadata, class_names=["a", "b", "c"]))
    with pytest.raises(ModelLoadError, match="unknown few-shot head"):
        load_head(tmp_path, dict(metadata, head={"kind": "mystery"}))
    (tmp_path / "head.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="could not be read"):
        load_model(TINY, str(tmp_path), "cpu")


def test_default_output_keeps_finished_models_and_reuses_interrupted_ones(tmp_path):
    data = tmp_path / "my pets"
    first = output_dir(data, "quick", None, None)
    assert first.name == "my-pets-quick"
    write_model_folder(first, {"architecture": TINY}, head={"w": np.zeros(1, np.float32)})
    second = output_dir(data, "quick", None, None)
    assert second.name == "my-pets-quick-2"
    (second / STATE_DIR).mkdir(parents=True)
    (second / "metadata.json").write_text(json.dumps({}))
    assert output_dir(data, "quick", None, None) == second  # resumable state: same folder
    assert output_dir(data, "quick", tmp_path / "x", None) == tmp_path / "x"


def test_gradient_accumulation_steps_once_per_group(tmp_path):
    loaded = load_model(TINY, "none", "cpu")
    summary = scan_dataset(make_colour_folder(tmp_path / "data", per_class=4))
    paths = [p for c in summary.classes for p in summary.files[c]]
    labels = [i for i, c in enumerate(summary.classes) for _ in summary.files[c]]
    dataset = ImageDataset(paths, labels, train_transform(loaded))
    tokens = loaded.tokenizer(summary.classes)
    config = LoopConfig(epochs=1, lr=1e-4, batch_size=4, accum_steps=2)
    history = []
    result = run_job(contrastive_train_job(loaded.model, dataset, config, torch.device("cpu"),
                                           group_tokens=tokens),
                     on_progress=lambda p: history.append(p.payload))
    assert result.steps == 2  # 16 images, micro-batches of 4, two per optimizer step
    assert all(np.isfinite(h["loss"]) for h in history if h and h["kind"] == "train")


def test_fine_tunes_of_tags_keep_the_tag_settings(tmp_path):
    from clipdesk.core.models import _base_tag_cfg

    assert _base_tag_cfg("ViT-B-32", "openai")["quick_gelu"] is True  # QuickGELU must survive
    (tmp_path / "metadata.json").write_text(json.dumps({"architecture": "ViT-B-32",
                                                        "base_pretrained": "openai"}))
    assert _base_tag_cfg("ViT-B-32", str(tmp_path))["quick_gelu"] is True  # fine-tune of a fine-tune
    assert _base_tag_cfg(TINY, "none") is None
