"""Decoders beyond Pillow's built-ins: HEIC/HEIF (pillow-heif), AVIF (Pillow), camera RAW (rawpy).

`registry()` registers the pillow-heif opener once, on first use, and works out which file
suffixes the installed decoders can really open — that list, not a hard-coded one, decides what
a folder scan picks up. A decoder without a wheel for this platform is simply missing from it,
and `Registry.unavailable` says in one line which formats that costs.

RAW files are read the way photo browsers do: the embedded full-size JPEG preview when there is
one (no demosaicing; JPEG draft mode still applies), else LibRaw's half-size demosaic.
"""

from __future__ import annotations

import io
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, features

from .errors import ImageLoadError

# LibRaw reads far more; these are the suffixes cameras actually write.
RAW_SUFFIXES = frozenset({
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".rwl", ".pef", ".ptx", ".srw", ".x3f", ".3fr", ".fff", ".iiq", ".mef", ".mos",
    ".mrw", ".erf", ".kdc", ".dcr", ".k25", ".gpr",
})
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})
# Pillow formats that identify a file but cannot decode it (video, PostScript via Ghostscript,
# stubs without a handler): a folder scan must not pick them up as images.
_NOT_DECODABLE = frozenset({"MPEG", "EPS"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
                          b"avif", b"avis", b"mif2"})
# LibRaw's `sizes.flip` → the transpose that makes the picture upright.
_FLIP = {1: Image.Transpose.FLIP_LEFT_RIGHT, 2: Image.Transpose.FLIP_TOP_BOTTOM,
         3: Image.Transpose.ROTATE_180, 4: Image.Transpose.TRANSPOSE,
         5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270,
         7: Image.Transpose.TRANSVERSE}


@dataclass(frozen=True)
class Registry:
    """What the installed decoders can open, and what is missing on this platform."""

    suffixes: frozenset[str]
    raw: bool
    unavailable: tuple[str, ...] = ()

    def unavailable_note(self) -> str | None:
        """One line naming the formats this installation cannot read, or None."""
        if not self.unavailable:
            return None
        return (f"{' and '.join(self.unavailable)} files cannot be read on this system "
                "(decoder not installed); they are skipped.")


_lock = threading.Lock()
_registry: Registry | None = None


def registry() -> Registry:
    """Register the extra openers (once, thread-safe) and list the suffixes they can read."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = _build_registry()
    return _registry


def _build_registry() -> Registry:
    unavailable = []  # ImportError: no wheel; OSError: a wheel whose shared library fails to load
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except (ImportError, OSError):
        unavailable.append("HEIC/HEIF")
    with warnings.catch_warnings():  # an older Pillow warns that it does not know "avif"
        warnings.simplefilter("ignore")
        pillow_avif = features.check("avif")
    if not pillow_avif:
        try:  # older Pillow without its own AVIF plugin: pillow-heif's, where it still has one
            import pillow_heif

            pillow_heif.register_avif_opener()
        except (ImportError, OSError, AttributeError):
            unavailable.append("AVIF")
    try:
        import rawpy  # noqa: F401
        raw = True
    except (ImportError, OSError):
        raw = False
        unavailable.append("camera RAW")
    suffixes = set(pillow_suffixes())
    if raw:
        suffixes |= RAW_SUFFIXES
    return Registry(frozenset(suffixes), raw, tuple(unavailable))


def pillow_suffixes() -> frozenset[str]:
    """Suffixes of every format Pillow (with its registered plugins) can open and decode."""
    Image.init()
    openable = set()
    for suffix, name in Image.registered_extensions().items():
        if name == "MPO":  # multi-picture JPEG: opened by the JPEG plugin
            openable.add(suffix)
            continue
        if name in _NOT_DECODABLE or name not in Image.OPEN:
            continue
        if not _stub_without_handler(Image.OPEN[name][0]):
            openable.add(suffix)
    return frozenset(openable)


def _stub_without_handler(factory) -> bool:
    """BUFR, GRIB, HDF5, WMF: Pillow identifies them but decodes them only through a handler."""
    return (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile)
            and getattr(sys.modules.get(factory.__module__), "_handler", None) is None)


def is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def heif_kind(data: bytes) -> str | None:
    """"AVIF" or "HEIC/HEIF" when the bytes open with an ISO-BMFF `ftyp` box of such a brand."""
    if len(data) < 12 or data[4:8] != b"ftyp" or data[8:12] not in _HEIF_BRANDS:
        return None
    return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIC/HEIF"


def decode_raw(data: bytes, path: Path, draft_size: int | None = None) -> Image.Image:
    """A camera RAW file as an upright image: its embedded preview if big enough, else demosaiced.

    The preview is used when its short side reaches `draft_size` (or half the sensor's short
    side, which is what the half-size demosaic would give); a small thumbnail is not enough.
    """
    if not registry().raw:
        raise ImageLoadError(f"{path}: camera RAW files need rawpy, which is not installed here.")
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            if sizes.width * sizes.height > 2 * (Image.MAX_IMAGE_PIXELS or sys.maxsize):
                raise ImageLoadError(f"{path}: image too large to open safely; it was skipped.")
            needed = min(draft_size or sys.maxsize, min(sizes.width, sizes.height) // 2)
            preview = _preview(raw, sizes.flip, needed, draft_size)
            if preview is not None:
                return preview
            pixels = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return Image.fromarray(pixels)  # postprocess already applies the flip
    except rawpy.LibRawFileUnsupportedError as error:
        raise ImageLoadError(f"{path}: not a camera RAW file LibRaw can read.") from error
    except (rawpy.LibRawError, rawpy.NotSupportedError) as error:
        raise ImageLoadError(f"{path}: corrupt or truncated RAW data ({_reason(error)}).") from error


def _reason(error: Exception) -> str:
    """LibRaw's message without the bytes repr: b'Input/output error' -> input/output error."""
    text = error.args[0] if error.args else type(error).__name__
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"LibRaw: {text[:1].lower()}{text[1:]}".rstrip(".")


def _preview(raw, flip: int, needed: int, draft_size: int | None) -> Image.Image | None:
    """The embedded preview, upright, if there is one at least `needed` pixels on its short side."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            image = Image.open(io.BytesIO(thumb.data))
            if min(image.size) < needed:
                return None
            if draft_size:
                image.draft("RGB", (draft_size, draft_size))
            image.load()
        else:
            image = Image.fromarray(thumb.data)
            if min(image.size) < needed:
                return None
    except (OSError, ValueError, SyntaxError, EOFError):
        return None  # a broken preview is no reason to fail: the demosaic path still works
    # LibRaw writes the flip into the preview's EXIF when the preview had none; a camera's own
    # preview EXIF usually says 1 while the picture needs the sensor's flip.
    if image.getexif().get(0x0112, 1) in range(2, 9):
        return ImageOps.exif_transpose(image)
    return image.transpose(_FLIP[flip]) if flip in _FLIP else image
