"""Synthetic test images: deterministic, photo-like (gradient + shapes + noise), any size.

Random-initialised models still give each such image its own embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def synth_array(seed: int, width: int = 96, height: int = 72) -> np.ndarray:
    """A deterministic, photo-like RGB array: a coloured gradient, a few shapes, sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    colour_a, colour_b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = ((x / width) * np.cos(seed) + (y / height) * np.sin(seed) + 1) / 2
    array = colour_a * t[..., None] + colour_b * (1 - t[..., None])
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = rng.uniform(0, width * 0.7), rng.uniform(0, height * 0.7)
        box = (x0, y0, x0 + rng.uniform(8, width / 2), y0 + rng.uniform(8, height / 2))
        fill = tuple(int(v) for v in rng.uniform(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    noisy = np.asarray(image, np.float32) + rng.normal(0, 6, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def save_image(path: Path, seed: int = 0, width: int = 96, height: int = 72, **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synth_array(seed, width, height)).save(path, **save_args)
    return path
