"""The full method (FLYP + WiSE-FT) and the pieces of the contrastive loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ft_helpers import TINY
from open_clip.loss import ClipLoss

from clipdesk.core.models import load_model
from training.common import class_prompts
from training.data import load_training_image
from training.full import ALPHAS, wise_mix
from training.loop import MAX_LOGIT_SCALE, GroupedClipLoss, epoch_batches, lr_at, param_groups


def test_full_lowers_the_loss_and_beats_zero_shot(full_run):
    result, history = full_run
    losses = [h for h in history if h["kind"] == "train"]
    first = np.mean([h["loss"] for h in losses if h["epoch"] == 1])
    last = np.mean([h["loss"] for h in losses if h["epoch"] == losses[-1]["epoch"]])
    assert last < 0.5 * first
    assert result.alpha in ALPHAS
    assert [h["epoch"] for h in history if h["kind"] == "val"] == list(range(1, losses[-1]["epoch"] + 1))
    assert 0.0 <= result.forgetting["generic_agreement"] <= 1.0
    # The figure is full's own: fine-tuned weights kept (not the base weights with quick's head and
    # quick's nested figure), judged on the held-out test split.
    assert result.alpha > 0 and result.evaluation["weights_kept"]["kept"] == "fine-tuned mix"
    assert not result.evaluation["method"].startswith("nested")
    assert result.evaluation["images"] == len(result.val_paths) == len(result.val_true)
    # Recomputed here from the saved folder: the model's features and its head on the test images.
    reloaded = load_model(TINY, str(result.model_dir), "cpu")
    with torch.no_grad():
        images = torch.stack([reloaded.preprocess(load_training_image(p)) for p in result.val_paths])
        features = reloaded.model.encode_image(images, normalize=True).numpy()
    after = float(np.mean(reloaded.head.predict(features) == np.asarray(result.val_true)))
    assert after == pytest.approx(result.accuracy_after)
    # Zero-shot on the same images: the base model, one prompt per class.
    base = load_model(TINY, "none", "cpu")
    with torch.no_grad():
        text = base.model.encode_text(base.tokenizer(class_prompts(result.classes, "photo")), normalize=True)
        zero_shot = (base.model.encode_image(images, normalize=True) @ text.T).argmax(1).numpy()
    assert after > float(np.mean(zero_shot == np.asarray(result.val_true))) + 0.3  # measured: 0.75 vs 0.19
    assert after > result.accuracy_before


def test_checkpoint_round_trip_gives_identical_logits(full_run):
    result, _ = full_run
    in_memory = result.loaded
    reloaded = load_model(TINY, str(result.model_dir), "cpu")
    images = torch.stack([reloaded.preprocess(load_training_image(p)) for p in result.val_paths])
    tokens = reloaded.tokenizer(class_prompts(result.classes, "photo"))
    with torch.no_grad():
        a_img, a_txt, a_scale = in_memory.model(images, tokens)[:3]
        b_img, b_txt, b_scale = reloaded.model(images, tokens)[:3]
    assert torch.equal(a_scale * a_img @ a_txt.T, b_scale * b_img @ b_txt.T)
    assert reloaded.class_names == result.classes
    assert reloaded.head is not None and reloaded.head.kind == in_memory.head.kind
    assert reloaded.head.predict(b_img.numpy()).tolist() == result.val_pred  # the saved head answers


def test_metadata_records_the_run(full_run):
    result, _ = full_run
    metadata = json.loads((result.model_dir / "metadata.json").read_text())
    assert metadata["method"] == "full" and metadata["alpha"] == result.alpha
    assert metadata["base_pretrained"] == "none" and metadata["templates"] == "photo"
    sweep = metadata["validation"]["wise_ft"]
    assert [s["alpha"] for s in sweep] == list(ALPHAS)
    chosen = min(sweep, key=lambda s: (round(s["loss"], 4), -s["accuracy"], s["alpha"]))
    assert result.alpha in (0.0, chosen["alpha"])  # α: validation loss, or the base model's features
    record = metadata["validation"]["evaluation"]
    assert record["accuracy"] == result.accuracy_after
    kept = metadata["validation"]["kept"]
    assert kept["kept"] == "fine-tuned mix" and result.alpha > 0  # the occluded hues: fine-tuning wins
    assert kept["val_accuracy_tuned"] > kept["val_accuracy_base"]
    # The figure comes from the test images, the head from train + validation.
    assert record["images"] == metadata["validation"]["test_images"] == len(result.val_paths)
    val_and_train = metadata["validation"]["val_images"] + metadata["validation"]["train_images"]
    assert val_and_train + record["images"] == 80  # make_occluded_hue_folder: 4 classes × 20
    assert not (result.model_dir / ".resume").exists()  # state is removed once the model is safe


def test_wise_mix_interpolates_float_weights():
    base = {"w": torch.zeros(3), "n": torch.tensor([1])}
    tuned = {"w": torch.tensor([1.0, 2.0, 4.0]), "n": torch.tensor([7])}
    mixed = wise_mix(base, tuned, 0.25)
    assert torch.allclose(mixed["w"], torch.tensor([0.25, 0.5, 1.0]))
    assert mixed["n"].item() == 7
    assert torch.equal(wise_mix(base, tuned, 0.0)["w"], base["w"])


def test_grouped_loss_masks_same_class_pairs():
    torch.manual_seed(0)
    img = F.normalize(torch.randn(6, 8), dim=-1)
    txt = F.normalize(torch.randn(6, 8), dim=-1)
    scale = torch.tensor(10.0)
    distinct = torch.arange(6)
    assert torch.allclose(GroupedClipLoss()(img, txt, scale, distinct), ClipLoss()(img, txt, scale))

    groups = torch.tensor([0, 0, 1, 1, 1, 2])
    logits = scale * img @ txt.T
    expected = 0.0
    for matrix in (logits, logits.T):
        for i in range(6):
            keep = [j for j in range(6) if j == i or groups[j] != groups[i]]
            row = matrix[i, keep]
            expected += -torch.log_softmax(row, 0)[keep.index(i)] / 12
    assert torch.allclose(GroupedClipLoss()(img, txt, scale, groups), expected, atol=1e-6)


def test_warmup_then_cosine_schedule():
    lrs = [lr_at(step, 100, 1e-3, 10) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[55] == pytest.approx(0.5 * 1e-3, rel=1e-2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 1e-5


def test_no_decay_groups_and_logit_scale_clamp():
    model = load_model(TINY, "none", "cpu").model
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay, decay = param_groups(model, 0.1)
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"logit_scale", "positional_embedding", "token_embedding.weight"} <= skipped
    assert all(n.endswith("bias") or "ln" in n or "embedding" in n or n == "logit_scale"
               or n.endswith("class_embedding") for n in skipped)
    assert decay["weight_decay"] == 0.1 and all(p.ndim >= 2 for p in decay["params"])
    assert pytest.approx(math.log(100)) == MAX_LOGIT_SCALE


def test_batches_are_seeded_and_split_evenly_across_ranks():
    one = epoch_batches(21, 8, epoch=2, seed=0, world=1)
    two = epoch_batches(21, 8, epoch=2, seed=0, world=2)
    assert one == epoch_batches(21, 8, epoch=2, seed=0, world=1)
    assert [len(b) for b in one] == [8, 8, 5] and [len(b) for b in two] == [8, 8, 4]
    assert one[:2] == two[:2] and one != epoch_batches(21, 8, epoch=3, seed=0, world=1)
