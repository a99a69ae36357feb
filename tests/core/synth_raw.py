"""Minimal camera RAW files for tests and benchmarks: DNGs that LibRaw reads, written with tifffile.

A DNG is a TIFF with a few extra tags. The raw image is a 16-bit RGGB Bayer mosaic (CFA) made
from an RGB picture; the colour matrix declares the camera's space to be linear sRGB, so LibRaw's
demosaic gives back roughly the picture's colours. `preview=` adds what cameras embed: a JPEG
in IFD0 (NewSubFileType 1) with the raw in a SubIFD — what LibRaw's `extract_thumb` returns.
tifffile cannot write JPEG-compressed strips without imagecodecs, so the JPEG's bytes are written
as a 1-row greyscale strip and the tags describing the strip are then rewritten in place.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

WHITE = 4095  # a 12-bit sensor
# XYZ (D65) -> linear sRGB, as DNG ColorMatrix1 (XYZ -> camera) for a camera that sees sRGB.
_XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]


def cfa_from_rgb(rgb: np.ndarray, white: int = WHITE) -> np.ndarray:
    """The RGGB mosaic a sensor would record for an sRGB picture (gamma removed, 12-bit)."""
    linear = (rgb.astype(np.float32) / 255.0) ** 2.2 * white
    cfa = np.empty(rgb.shape[:2], np.uint16)
    cfa[0::2, 0::2] = linear[0::2, 0::2, 0]
    cfa[0::2, 1::2] = linear[0::2, 1::2, 1]
    cfa[1::2, 0::2] = linear[1::2, 0::2, 1]
    cfa[1::2, 1::2] = linear[1::2, 1::2, 2]
    return cfa


def _camera_tags(orientation: int) -> list[tuple]:
    matrix = []
    for value in _XYZ_TO_SRGB:
        matrix += [round(value * 10000), 10000]
    return [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "clipdesk test camera", True),  # UniqueCameraModel
        (271, "s", 0, "clipdesk", True),  # Make
        (272, "s", 0, "synthetic", True),  # Model
        (274, "H", 1, orientation, True),  # Orientation (EXIF/TIFF numbering)
        (50721, "2i", 9, tuple(matrix), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral: no white-balance cast
    ]


def _raw_tags(white: int) -> list[tuple]:
    return [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50714, "H", 1, 0, True),  # BlackLevel
        (50717, "H", 1, white, True),  # WhiteLevel
    ]


def write_dng(path: Path, rgb: np.ndarray, orientation: int = 1,
              preview: np.ndarray | None = None, preview_exif: bool = False,
              quality: int = 90) -> Path:
    """A DNG of `rgb` (H, W, 3 uint8; even sizes), optionally with an embedded JPEG preview.

    `preview_exif`: give the preview its own EXIF (orientation 1), as cameras do; LibRaw then
    leaves it alone instead of writing its flip into it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfa = cfa_from_rgb(rgb)
    if preview is None:
        with tifffile.TiffWriter(path) as tif:
            tif.write(cfa, photometric=32803, subfiletype=0,
                      extratags=_camera_tags(orientation) + _raw_tags(WHITE))
        return path
    buffer = io.BytesIO()
    exif = Image.Exif()
    if preview_exif:
        exif[0x0112] = 1
        exif[0x010F] = "clipdesk"
    Image.fromarray(preview).save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    jpeg = buffer.getvalue()
    if preview_exif and jpeg[2:4] == b"\xff\xe0":  # cameras start with APP1 Exif, not JFIF
        jpeg = jpeg[:2] + jpeg[4 + int.from_bytes(jpeg[4:6], "big"):]
    height, width = preview.shape[:2]
    with tifffile.TiffWriter(path) as tif:  # the JPEG's bytes as one 1-row greyscale strip
        tif.write(np.frombuffer(jpeg, np.uint8).reshape(1, -1), photometric="minisblack",
                  subfiletype=1, subifds=1, rowsperstrip=1, extratags=_camera_tags(orientation))
        tif.write(cfa, photometric=32803, subfiletype=0, extratags=_raw_tags(WHITE))
    with tifffile.TiffFile(path, mode="r+b") as tif:  # ... then described as what it is
        tags = tif.pages[0].tags
        for name, value in [("ImageWidth", width), ("ImageLength", height), ("SamplesPerPixel", 3),
                            ("BitsPerSample", (8, 8, 8)), ("RowsPerStrip", height),
                            ("Compression", 7), ("PhotometricInterpretation", 6)]:  # JPEG, YCbCr
            tags[name].overwrite(value)
    return path
