"""Contrastive training on captioned pairs (the loop the demo model is trained with)."""

from __future__ import annotations

import json

import torch
from ft_helpers import TINY, make_colour_folder

from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from training.api import FinetuneConfig, finetune_job
from training.captions import train_captions_job
from training.data import load_training_image


def _pairs(folder):
    return [(p, f"a {p.parent.name.replace('_', ' ')} square") for p in sorted(folder.rglob("*.png"))]


def test_captions_job_learns_and_round_trips(tmp_path):
    pairs = _pairs(make_colour_folder(tmp_path / "data", per_class=6))
    history = []
    result = run_job(train_captions_job(pairs, TINY, "none", epochs=4, lr=5e-4, batch_size=8,
                                        device="cpu", seed=0, out=tmp_path / "model", val_fraction=0.25,
                                        class_names=["red", "blue"], extra_metadata={"note": "test"}),
                     on_progress=lambda p: history.append(p.payload))
    losses = [h["loss"] for h in history if h and h["kind"] == "train"]
    assert losses[-1] < losses[0]
    assert result.recall_after > result.recall_before
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["method"] == "captions" and metadata["note"] == "test"
    assert metadata["class_names"] == ["red", "blue"]

    reloaded = load_model(TINY, str(tmp_path / "model"), "cpu")
    images = torch.stack([reloaded.preprocess(load_training_image(p)) for p, _ in pairs[:4]])
    tokens = reloaded.tokenizer([c for _, c in pairs[:4]])
    with torch.no_grad():
        a = result.loaded.model(images, tokens)
        b = reloaded.model(images, tokens)
    assert torch.equal(a[0] @ a[1].T, b[0] @ b[1].T)


def test_finetune_captions_from_csv(tmp_path):
    pairs = _pairs(make_colour_folder(tmp_path / "data", per_class=4))
    rows = ["filepath,caption"] + [f"{p.relative_to(tmp_path)},{c}" for p, c in pairs]
    (tmp_path / "pairs.csv").write_text("\n".join(rows))
    config = FinetuneConfig(tmp_path / "pairs.csv", method="captions", arch=TINY, pretrained="none",
                            epochs=2, batch_size=8, device="cpu", out=tmp_path / "model")
    result = run_job(finetune_job(config))
    assert result.method == "captions" and (tmp_path / "model" / "model.safetensors").is_file()
    assert 0.0 <= result.accuracy_after <= 1.0
