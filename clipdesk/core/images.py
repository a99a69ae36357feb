"""Find image files and decode them to RGB, fast and without ever crashing on bad input.

Every failure becomes an `ImageLoadError` whose message is one sentence naming the file, so a
run reports it per file and carries on.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError
from .safeio import is_regular_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey half-image


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def find_images(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], dict[Path, str]]:
    """Expand files and folders (recursively, sorted, hidden entries skipped), without duplicates.

    Files named explicitly are kept whatever their suffix (decoding will judge them); inside
    folders only image suffixes count. Missing paths come back as errors.
    """
    found: dict[Path, None] = {}
    errors: dict[Path, str] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in _walk(path, errors):
                found.setdefault(child, None)
        elif path.is_file():
            found.setdefault(path.absolute(), None)
        elif path.exists():
            errors[path] = f"{path}: not a regular file (a pipe or device); skipped."
        else:
            errors[path] = f"{path}: no such file or folder."
    return list(found), errors


def _walk(folder: Path, errors: dict[Path, str] | None = None) -> list[Path]:
    results = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                if not is_regular_file(Path(root, name)):  # a FIFO named x.png would hang a read
                    skipped = Path(root, name).absolute()
                    message = f"{skipped}: not a regular file (a pipe, device or broken link); skipped."
                    if errors is None:
                        log.warning(message)
                    else:
                        errors[skipped] = message
                    continue
                results.append(Path(root, name).absolute())
    return sorted(results)


def read_bytes(path: Path) -> bytes:
    """Through the one file guard: a FIFO, a device or a link to /dev/zero is refused, not read."""
    from .safeio import read_bytes_guarded

    data = read_bytes_guarded(path, "image")
    if not data:
        raise ImageLoadError(f"{path}: empty file (0 bytes).")
    return data


def decode_rgb(data: bytes, path: Path, draft_size: int | None = None) -> Image.Image:
    """Decode bytes to an RGB image, upright per EXIF.

    `draft_size`: let libjpeg decode at a reduced scale whose short side is still at least this
    many pixels — most of the cost of a 12-MP JPEG is the full-size IDCT we then throw away.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(
            f"{path}: image too large to open safely ({error}); it was skipped."
        ) from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{path}: not an image format clipdesk can read.") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageLoadError(f"{path}: corrupt or truncated image data ({error}).") from error


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    path = Path(path)
    return decode_rgb(read_bytes(path), path, draft_size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Palette, alpha, CMYK, greyscale and 16-bit images all become 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np

        array = np.asarray(image, dtype=np.float32)
        peak = float(array.max()) or 1.0
        scale = 255.0 / (65535.0 if peak > 255 else 255.0)
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
