"""Synthetic 12-megapixel "photos" for the benchmarks, written once into benchmarks/_data/ (git-ignored).

Real photos are mostly smooth areas with edges and sensor noise; random noise alone would make
JPEGs far larger and slower to decode than a camera's, flat colour far faster. So each image is
a low-resolution scene (gradient sky, ground, shapes) upscaled to 4000×3000 plus mild noise,
saved at quality 90 (≈ 2–4 MB, like a phone photo).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DATA = Path(__file__).resolve().parent / "_data" / "core"
SIZE = (4000, 3000)
QUALITY = 90
TEXTURE, NOISE = 12, 5  # tuned so that a file is ≈ 3 MB, like a 12-MP phone JPEG


def synth_photo(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    small_w, small_h = size[0] // 8, size[1] // 8
    y = np.linspace(0, 1, small_h, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, small_w, dtype=np.float32)[None, :, None]
    sky, ground = rng.uniform(40, 255, 3), rng.uniform(0, 200, 3)
    horizon = rng.uniform(0.35, 0.7)
    blend = np.clip((y - horizon) * 8 + 0.5, 0, 1)
    scene = sky * (1 - blend) * (1 - 0.3 * y) + ground * blend * (0.8 + 0.4 * x)
    image = Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 12))):
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        rx, ry = rng.uniform(5, small_w / 5), rng.uniform(5, small_h / 5)
        fill = tuple(int(v) for v in rng.uniform(0, 255, 3))
        shape = rng.integers(3)
        if shape == 0:
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
        elif shape == 1:
            draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
        else:
            points = [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in rng.uniform(0, 6.3, 5)]
            draw.polygon(points, fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(0.7)).resize(size, Image.Resampling.BICUBIC)
    # Texture (foliage, fabric, gravel) at half resolution, then per-pixel sensor noise.
    texture = rng.normal(0, TEXTURE, (size[1] // 2, size[0] // 2)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture, "F").resize(size, Image.Resampling.BILINEAR))
    noise = rng.integers(-NOISE, NOISE + 1, (size[1], size[0], 3), dtype=np.int16)
    pixels = np.asarray(image, dtype=np.int16) + noise + texture.astype(np.int16)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def ensure_photos(count: int, folder: Path | None = None, log=print) -> list[Path]:
    """`count` distinct JPEGs, generated on first use and reused by later runs."""
    folder = folder or DATA / f"jpeg_{SIZE[0]}x{SIZE[1]}_q{QUALITY}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:04d}.jpg" for i in range(count)]
    missing = [p for p in paths if not p.is_file()]
    for n, path in enumerate(missing, 1):
        if n == 1 or n % 20 == 0:
            log(f"  synthesising 12-MP JPEGs: {n}/{len(missing)}")
        tmp = path.with_suffix(".tmp")
        synth_photo(int(path.stem.split("_")[1])).save(tmp, "JPEG", quality=QUALITY)
        tmp.replace(path)
    return paths


def unique_copies(pool: list[Path], count: int, folder: Path) -> list[Path]:
    """`count` files with distinct contents (hence cache misses) from a smaller pool.

    Bytes after a JPEG's end-of-image marker are ignored by decoders, so appending a counter
    makes a new file for the content-hash cache that decodes exactly like its source.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    sources = [p.read_bytes() for p in pool]
    paths = []
    for i in range(count):
        path = folder / f"copy_{i:05d}.jpg"
        path.write_bytes(sources[i % len(sources)] + f"clipdesk-bench-copy-{i}".encode())
        paths.append(path)
    return paths
