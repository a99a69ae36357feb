"""Shared helpers of the training tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

TINY = "clipdesk-tiny"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "dark_yellow": (160, 150, 20)}


def make_colour_folder(root: Path, per_class: int = 8, size: int = 32, seed: int = 0,
                       colours: dict | None = None) -> Path:
    rng = np.random.default_rng(seed)
    for name, rgb in (colours or COLOURS).items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0, 20, (size, size, 3))
            pixels = np.clip(np.array(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root


def make_occluded_hue_folder(root: Path, per_class: int = 20, n_classes: int = 4, size: int = 32,
                             seed: int = 0) -> Path:
    """Hue classes (random brightness and saturation) with a block of a random colour over one
    side (half the picture) of every image. Flat colours are no test of `full`: the random base
    model's embeddings already separate them perfectly, so `full` rightly keeps the base weights
    and its figure is quick's. Here a head over the base embeddings is misled by the block, while
    fine-tuning learns to look past it: `full` keeps fine-tuned weights (its own figure)."""
    rng = np.random.default_rng(seed)
    half = size // 2
    sides = [(slice(0, half), slice(None)), (slice(half, None), slice(None)),
             (slice(None), slice(0, half)), (slice(None), slice(half, None))]
    for k in range(n_classes):
        folder = root / f"hue{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            hue = (k / n_classes + rng.normal(0, 0.02)) % 1.0
            value, saturation = rng.uniform(0.35, 1.0), rng.uniform(0.5, 1.0)
            rgb = np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255
            pixels = np.empty((size, size, 3))
            pixels[:] = rgb
            block = rng.integers(0, 256, 3)
            pixels[sides[int(rng.integers(4))]] = block
            pixels = np.clip(pixels + rng.normal(0, 15, pixels.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"hue{k}_{i}.png")
    return root


# `full` on the occluded hues: enough steps at a rate a from-scratch tiny model learns at.
FULL_SETTINGS = {"epochs": 15, "lr": 1e-3, "batch_size": 8}


def full_config(folder: Path, out: Path, **overrides):
    from training.api import FinetuneConfig

    settings = dict(method="full", arch=TINY, pretrained="none", out=out, device="cpu", **FULL_SETTINGS)
    settings.update(overrides)
    return FinetuneConfig(folder, **settings)


def full_cli_options() -> list[str]:
    """FULL_SETTINGS as `training finetune` options, so a CLI run matches full_config's."""
    return [option for key, value in FULL_SETTINGS.items()
            for option in (f"--{key.replace('_', '-')}", str(value))]
