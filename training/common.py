"""Helpers the methods share: transforms, batched encoding, run fingerprints, the forgetting guard."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from clipdesk.core.prompts import Label, template_set

from .data import load_training_image
from .loop import amp_context

# The forgetting guard: a generic label set whose zero-shot answers should not change much.
GENERIC_LABELS = (
    "person", "dog", "cat", "bird", "car", "bicycle", "airplane", "boat", "tree", "flower",
    "building", "food", "book", "computer", "chair", "mountain", "beach", "city street",
    "text document", "drawing", "animal", "sky", "water", "toy",
)


def train_transform(loaded, flip: bool = True):
    """open_clip's training transform (random resized crop) with a horizontal flip in front."""
    from torchvision import transforms

    steps = [transforms.RandomHorizontalFlip()] if flip else []
    return transforms.Compose([*steps, loaded.preprocess_train])


def fingerprint(**parts) -> str:
    """A short hash of a run's settings and data, so resumed state never mixes two runs."""
    def default(value):
        if isinstance(value, Path):
            try:
                return f"{value}:{value.stat().st_size}:{int(value.stat().st_mtime)}"
            except OSError:
                return str(value)
        return str(value)

    text = json.dumps(parts, sort_keys=True, default=default)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def class_prompts(classes: Sequence[str], templates: str) -> list[str]:
    """The first template of the set is the class's training prompt (FLYP's one prompt per class)."""
    first = template_set(templates)[0]
    return [first(c) if callable(first) else first.format(c) for c in classes]


@torch.no_grad()
def encode_paths(model, paths: Sequence[Path], transform, device, batch_size: int = 64) -> torch.Tensor:
    """Normalised image features (CPU float32) with the evaluation transform, in path order."""
    out = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([transform(load_training_image(p)) for p in paths[start:start + batch_size]])
        with amp_context(device):
            features = model.encode_image(batch.to(device), normalize=True)
        out.append(features.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def class_weights(model, loaded, classes: Sequence[str], templates: str, device) -> torch.Tensor:
    """open_clip's zero-shot classifier for `classes` under `model`'s current weights, [C, D]."""
    from open_clip import build_zero_shot_classifier

    names = [Label(c).name for c in classes]
    with amp_context(device):
        weights = build_zero_shot_classifier(model, loaded.tokenizer, names, list(template_set(templates)),
                                             num_classes_per_batch=None, device=device)
    return weights.float().T.cpu()


def stratified_split(paths: Sequence[Path], labels: Sequence[int], fraction: float,
                     seed: int) -> tuple[list[Path], list[int], list[Path], list[int]]:
    """Seeded per-class split (train_paths, train_labels, held_paths, held_labels); a class keeps
    at least one image for training, and gives at least one away when it has two or more."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in sorted(set(labels)):
        members = [p for p, y in zip(paths, labels) if y == label]
        order = rng.permutation(len(members))
        n_held = min(len(members) - 1, max(1, round(fraction * len(members))))
        held += [(members[j], label) for j in order[:n_held]]
        train += [(members[j], label) for j in order[n_held:]]
    return [p for p, _ in train], [y for _, y in train], [p for p, _ in held], [y for _, y in held]


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def default_full_lr(n_parameters: int) -> float:
    """Fine-tuning rate by model size: 1e-5 for ViT-B-sized CLIPs (≈150 M parameters, FLYP's and
    WiSE-FT's setting) and larger ones, ∝ 1/size below (the 4.8 M-parameter demo: 3e-4, where
    1e-5-scale rates leave the loss near where it started), at most 1e-3."""
    return float(min(1e-3, max(1e-5, 1e-5 * 150e6 / max(n_parameters, 1))))


def predictions(features: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    return (features @ weights.T).argmax(dim=1).numpy()


def numpy_state(state: dict) -> dict[str, np.ndarray]:
    """A state dict as numpy arrays for checkpoint.save_safetensors_atomic (numpy's safetensors
    API, which the torch-free quick head shares); bfloat16, which numpy lacks, is widened to
    float32 (training keeps fp32 weights, autocast aside, so this is a guard)."""
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().cpu().contiguous().numpy()
            for k, v in state.items()}
