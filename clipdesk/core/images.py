"""Find image files and decode them to RGB, fast and without ever crashing on bad input.

Every failure becomes an `ImageLoadError` whose message is one sentence naming the file, so a
run reports it per file and carries on. This is the one place images are decoded (window,
thumbnails, CLI, search, training, the embedding cache): formats are whatever Pillow,
pillow-heif (HEIC/HEIF) and rawpy (camera RAW) can open here — see `decoders.py`.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from . import decoders
from .errors import ImageLoadError
from .safeio import is_regular_file, read_bytes_guarded

log = logging.getLogger(__name__)

NO_SUFFIX = "(no extension)"
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey half-image


def supported_suffixes() -> frozenset[str]:
    """Suffixes a folder scan picks up: whatever the installed decoders can really open."""
    return decoders.registry().suffixes


def __getattr__(name: str):
    if name == "IMAGE_SUFFIXES":  # computed on first use: registering decoders is not import work
        return supported_suffixes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_images(paths: Iterable[str | os.PathLike],
                skipped: Counter[str] | None = None) -> tuple[list[Path], dict[Path, str]]:
    """Expand files and folders (recursively, sorted, hidden entries skipped), without duplicates.

    Files named explicitly are kept whatever their suffix (decoding will judge them); inside
    folders only suffixes an installed decoder reads count, the others are tallied in `skipped`.
    Missing paths come back as errors. `scan_images` adds RAW+JPEG pairing and the notes.
    """
    found: dict[Path, None] = {}
    errors: dict[Path, str] = {}
    for raw in paths:
        if not str(os.fspath(raw)).strip():  # Path("") is ".": never scan the working folder unasked
            errors[Path(str(os.fspath(raw)))] = "An empty path was given; name image files or folders."
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in _walk(path, errors, skipped):
                found.setdefault(child, None)
        elif path.is_file():
            found.setdefault(path.absolute(), None)
        elif path.exists():
            errors[path] = f"{path}: not a regular file (a pipe or device); skipped."
        else:
            errors[path] = f"{path}: no such file or folder."
    return list(found), errors


@dataclass
class Scan:
    """What a scan found, what it left out and why: the notes a front end shows once."""

    files: list[Path] = field(default_factory=list)
    errors: dict[Path, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)  # suffix -> files no decoder reads
    companions: dict[Path, list[Path]] = field(default_factory=dict)  # JPEG -> its RAW twins
    unavailable: str | None = None  # which formats this installation cannot decode

    def problems(self) -> list[str]:
        """Files left out: the formats this installation cannot read, and each skipped type."""
        lines = [self.unavailable] if self.unavailable else []
        if self.skipped:
            lines.append(skipped_note(self.skipped))
        return lines

    def notes(self) -> list[str]:
        """`problems()`, plus how many RAW files were folded into their JPEG."""
        lines = self.problems()
        paired = sum(len(raws) for raws in self.companions.values())
        if paired:
            lines.append(f"{_plural(paired, 'RAW file')} paired with a JPEG of the same name: "
                         "the JPEG is classified, and sorting moves or copies both.")
        return lines


def scan_images(paths: Iterable[str | os.PathLike], pair_raw: bool = True) -> Scan:
    """`find_images` for a front end: RAW+JPEG pairs as one photo (unless `pair_raw` is False),
    skipped file types counted, and missing decoders named."""
    scan = Scan(unavailable=decoders.registry().unavailable_note())
    files, scan.errors = find_images(paths, scan.skipped)
    scan.files, scan.companions = pair_raw_files(files) if pair_raw else (files, {})
    return scan


def skipped_note(counts: Counter[str]) -> str:
    """"12 files skipped: 10 .mov, 2 .psd" — most frequent first."""
    parts = ", ".join(f"{n} {suffix}" for suffix, n in
                      sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return f"{_plural(sum(counts.values()), 'file')} skipped: {parts} (no installed decoder reads them)."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pair_raw_files(files: list[Path]) -> tuple[list[Path], dict[Path, list[Path]]]:
    """Drop each RAW file that has a JPEG of the same name (any case) beside it in `files`.

    Returns the files to classify and, per JPEG, the RAW files that go with it.
    """
    jpegs: dict[tuple[Path, str], Path] = {}
    for path in files:
        if path.suffix.lower() in decoders.JPEG_SUFFIXES:
            jpegs.setdefault((path.parent, path.stem.casefold()), path)
    kept, companions = [], {}
    for path in files:
        jpeg = jpegs.get((path.parent, path.stem.casefold())) if decoders.is_raw(path) else None
        if jpeg is None:
            kept.append(path)
        else:
            companions.setdefault(jpeg, []).append(path)
    return kept, companions


def raw_companions(paths: Iterable[Path]) -> dict[Path, list[Path]]:
    """For each JPEG in `paths`, the RAW files beside it with the same name (any case), from disk."""
    listings: dict[Path, dict[str, list[Path]]] = {}
    result: dict[Path, list[Path]] = {}
    for path in map(Path, paths):
        if path.suffix.lower() not in decoders.JPEG_SUFFIXES:
            continue
        if path.parent not in listings:
            listings[path.parent] = _raw_by_stem(path.parent)
        raws = listings[path.parent].get(path.stem.casefold())
        if raws:
            result[path] = raws
    return result


def _raw_by_stem(folder: Path) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if decoders.is_raw(path) and entry.is_file():
                    by_stem.setdefault(path.stem.casefold(), []).append(path)
    except OSError:
        return {}
    return {stem: sorted(raws) for stem, raws in by_stem.items()}


def _walk(folder: Path, errors: dict[Path, str] | None = None,
          skipped: Counter[str] | None = None) -> list[Path]:
    """Image files under `folder`; `skipped` counts, per suffix, the files no decoder can open."""
    results = []
    supported = supported_suffixes()

    def unreadable(error: OSError) -> None:  # os.walk would skip the folder without a word
        where = Path(error.filename or folder).absolute()
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        message = f"{where}: folder could not be read ({reason}); the images in it were not added."
        if errors is None:
            log.warning(message)
        else:
            errors[where] = message

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = Path(name).suffix.lower()
            if not name.startswith(".") and suffix not in supported and skipped is not None:
                skipped[suffix or NO_SUFFIX] += 1
            if not name.startswith(".") and suffix in supported:
                if not is_regular_file(Path(root, name)):  # a FIFO named x.png would hang a read
                    special = Path(root, name).absolute()  # not `skipped`: that counts suffixes
                    message = f"{special}: not a regular file (a pipe, device or broken link); skipped."
                    if errors is None:
                        log.warning(message)
                    else:
                        errors[special] = message
                    continue
                results.append(Path(root, name).absolute())
    return sorted(results)


def read_bytes(path: Path) -> bytes:
    """Through the one file guard: a FIFO, a device or a link to /dev/zero is refused, not read."""
    data = read_bytes_guarded(path, "image")
    if not data:
        raise ImageLoadError(f"{path}: empty file (0 bytes).")
    return data


def decode_rgb(data: bytes, path: Path, draft_size: int | None = None) -> Image.Image:
    """Decode bytes to an RGB image, upright per EXIF (HEIF: its own transforms; RAW: LibRaw's flip).

    `draft_size`: let libjpeg decode at a reduced scale whose short side is still at least this
    many pixels — most of the cost of a 12-MP JPEG is the full-size IDCT we then throw away.
    """
    decoders.registry()  # the HEIF opener is registered once, here, before the first decode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if decoders.is_raw(path):
                return require_pixels(to_rgb(decoders.decode_raw(data, path, draft_size)), path)
            image = Image.open(io.BytesIO(data))
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            image = ImageOps.exif_transpose(image)
            return require_pixels(to_rgb(image), path)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(
            f"{path}: image too large to open safely ({error}); it was skipped."
        ) from error
    except UnidentifiedImageError as error:
        kind = decoders.heif_kind(data)  # pillow-heif cannot say more than "unidentified"
        if kind in decoders.registry().unavailable:
            raise ImageLoadError(f"{path}: {kind} files need a decoder (pillow-heif) that is not "
                                 "installed here.") from error
        if kind:
            raise ImageLoadError(f"{path}: corrupt or truncated {kind} data.") from error
        empty = declared_empty_size(data)  # Pillow refuses a 0-pixel header as "unidentified"
        if empty:
            raise ImageLoadError(no_pixels_message(path, *empty)) from error
        raise ImageLoadError(f"{path}: not an image format clipdesk can read.") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageLoadError(f"{path}: corrupt or truncated image data ({error}).") from error


def no_pixels_message(name: object, width: int, height: int) -> str:
    return f"{name}: the image has no pixels ({width}×{height})."


def require_pixels(image: Image.Image, name: object) -> Image.Image:
    """An image with zero width or height would fail later in the resize (ZeroDivisionError):
    refuse it here, in one sentence naming `name` (a path, or "Image 3")."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(no_pixels_message(name, width, height))
    return image


def declared_empty_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) when a PNG, GIF, BMP or JPEG header declares a zero dimension."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        size = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        size = struct.unpack("<HH", data[6:10])
    elif data[:2] == b"BM" and len(data) >= 26 and struct.unpack("<I", data[14:18])[0] >= 40:
        size = struct.unpack("<ii", data[18:26])
    elif data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
    else:
        return None
    return (size[0], abs(size[1])) if size and 0 in size else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The frame size from the first SOFn marker (segments walked by their lengths)."""
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    path = Path(path)
    return decode_rgb(read_bytes(path), path, draft_size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Palette, alpha, CMYK, greyscale and 16-bit images all become 8-bit RGB."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np  # only 16-bit and float images need it; importing this module does not

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
