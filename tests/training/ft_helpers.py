"""Shared helpers of the training tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

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


def full_config(folder: Path, out: Path, **overrides):
    from training.api import FinetuneConfig

    settings = dict(method="full", arch=TINY, pretrained="none", out=out, device="cpu", epochs=4,
                    lr=5e-4, batch_size=8)
    settings.update(overrides)
    return FinetuneConfig(folder, **settings)
