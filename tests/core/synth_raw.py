"""Minimal camera RAW files for tests and benchmarks that LibRaw reads: DNGs written with tifffile,
and Canon CR2 / Nikon NEF files built byte by byte (see the section further down).

A DNG is a TIFF with a few extra tags. The raw image is a 16-bit RGGB Bayer mosaic (CFA) made
from an RGB picture; the colour matrix declares the camera's space to be linear sRGB, so LibRaw's
demosaic gives back roughly the picture's colours. `preview=` adds what cameras embed: a JPEG
in IFD0 (NewSubFileType 1) with the raw in a SubIFD — what LibRaw's `extract_thumb` returns.
tifffile cannot write JPEG-compressed strips without imagecodecs, so the JPEG's bytes are written
as a 1-row greyscale strip and the tags describing the strip are then rewritten in place.
"""

from __future__ import annotations

import io
import struct
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


# -- Canon CR2 and Nikon NEF ---------------------------------------------------------------------
# Both are TIFF files laid out as the cameras write them, built here byte by byte (tifffile cannot
# place the IFDs where a CR2 needs them). What differs from a camera's file: the raw strip is
# uncompressed 16-bit (cameras use Canon's lossless JPEG / Nikon's Huffman coding, which LibRaw
# reads through the same TIFF fields) and there is no maker note (so no white balance as shot).

_TIFF_TYPES = {"B": (1, "B"), "A": (2, ""), "H": (3, "H"), "L": (4, "I"), "U": (7, "B")}


class TiffBuilder:
    """A TIFF file assembled bottom-up: data and child IFDs first, so that every offset a parent
    IFD holds is known when it is written. `order` is "<" (II, Canon) or ">" (MM, Nikon)."""

    def __init__(self, order: str, header_extra: bytes = b"") -> None:
        self.order = order
        self.data = bytearray((b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 0)
                              + header_extra)

    def blob(self, payload: bytes) -> int:
        """Append bytes at an even offset (TIFF word alignment); returns the offset."""
        if len(self.data) % 2:
            self.data += b"\0"
        offset = len(self.data)
        self.data += payload
        return offset

    def _field(self, kind: str, value) -> tuple[int, int, bytes]:
        code, fmt = _TIFF_TYPES[kind]
        if kind == "A":
            raw = value.encode("ascii") + b"\0"
            return code, len(raw), raw
        if kind == "U":
            return code, len(value), bytes(value)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        return code, len(values), b"".join(struct.pack(self.order + fmt, v) for v in values)

    def ifd(self, entries: dict[int, tuple[str, object]], next_ifd: int = 0) -> int:
        """Write one IFD (tags sorted, values over 4 bytes stored before it); returns its offset."""
        fields = []
        for tag in sorted(entries):
            code, count, raw = self._field(*entries[tag])
            value = struct.pack(self.order + "I", self.blob(raw)) if len(raw) > 4 else raw.ljust(4, b"\0")
            fields.append(struct.pack(self.order + "HHI", tag, code, count) + value)
        offset = self.blob(struct.pack(self.order + "H", len(fields)) + b"".join(fields)
                           + struct.pack(self.order + "I", next_ifd))
        return offset

    def finish(self, first_ifd: int) -> bytearray:
        self.data[4:8] = struct.pack(self.order + "I", first_ifd)
        return self.data


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


CANON_MODEL = "Canon EOS 5D Mark II"
CANON_WHITE = 15600  # LibRaw's white level for this model (its camera table, not the file)
NIKON_MODEL = "NIKON D700"
NIKON_WHITE = 16383  # 14-bit


def write_cr2(path: Path, rgb: np.ndarray, orientation: int = 1,
              preview: np.ndarray | None = None) -> Path:
    """A Canon CR2 of `rgb` (H, W, 3 uint8; even sizes, at least 22 px): the CR2 header ("CR",
    version 2.0, offset of the raw IFD), IFD0 with Make/Model, orientation, EXIF and — given
    `preview` — the full-size JPEG preview as its strip; IFD1 a 1/4-size JPEG thumbnail (tags 513 /
    514); the raw IFD last in the chain, as IFD3 is in a camera's file (RGGB mosaic)."""
    height, width = rgb.shape[:2]
    cfa = cfa_from_rgb(rgb, CANON_WHITE)
    tiff = TiffBuilder("<", b"CR\x02\x00" + b"\0\0\0\0")
    strip = tiff.blob(cfa.astype("<u2").tobytes())
    raw_ifd = tiff.ifd({256: ("H", width), 257: ("H", height), 258: ("H", 16), 259: ("H", 1),
                        262: ("H", 32803), 273: ("L", strip), 277: ("H", 1), 278: ("H", height),
                        279: ("L", cfa.nbytes)})
    thumb = _jpeg((preview if preview is not None else rgb)[::4, ::4])
    thumb_at = tiff.blob(thumb)
    ifd1 = tiff.ifd({259: ("H", 6), 513: ("L", thumb_at), 514: ("L", len(thumb))}, raw_ifd)
    exif = tiff.ifd({36864: ("U", b"0230")})  # ExifVersion
    entries = {271: ("A", "Canon"), 272: ("A", CANON_MODEL), 274: ("H", orientation), 34665: ("L", exif)}
    if preview is not None:
        jpeg = _jpeg(preview)
        entries.update({256: ("H", preview.shape[1]), 257: ("H", preview.shape[0]), 258: ("H", [8, 8, 8]),
                        259: ("H", 6), 273: ("L", tiff.blob(jpeg)), 279: ("L", len(jpeg))})
    data = tiff.finish(tiff.ifd(entries, ifd1))
    data[12:16] = struct.pack("<I", raw_ifd)  # the CR2 header points at the raw IFD
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_nef(path: Path, rgb: np.ndarray, orientation: int = 1,
              preview: np.ndarray | None = None) -> Path:
    """A Nikon NEF of `rgb` (even sizes, at least 22 px): big-endian TIFF; IFD0 is the 1/8-size
    uncompressed RGB thumbnail with Make/Model, orientation and EXIF, and its SubIFDs hold the
    JPEG preview (given `preview`) and the 14-bit raw with its TIFF/EP CFA pattern (RGGB)."""
    height, width = rgb.shape[:2]
    cfa = cfa_from_rgb(rgb, NIKON_WHITE)
    tiff = TiffBuilder(">")
    strip = tiff.blob(cfa.astype(">u2").tobytes())
    subs = [tiff.ifd({254: ("L", 0), 256: ("L", width), 257: ("L", height), 258: ("H", 14), 259: ("H", 1),
                      262: ("H", 32803), 273: ("L", strip), 277: ("H", 1), 278: ("L", height),
                      279: ("L", cfa.nbytes), 284: ("H", 1), 33421: ("H", [2, 2]), 33422: ("B", [0, 1, 1, 2])})]
    if preview is not None:
        jpeg = _jpeg(preview)
        subs.insert(0, tiff.ifd({254: ("L", 1), 259: ("H", 6), 513: ("L", tiff.blob(jpeg)),
                                 514: ("L", len(jpeg))}))
    thumb = np.ascontiguousarray((preview if preview is not None else rgb)[::8, ::8])
    thumb_at = tiff.blob(thumb.tobytes())
    exif = tiff.ifd({36864: ("U", b"0221")})
    ifd0 = tiff.ifd({254: ("L", 1), 256: ("L", thumb.shape[1]), 257: ("L", thumb.shape[0]),
                     258: ("H", [8, 8, 8]), 259: ("H", 1), 262: ("H", 2), 271: ("A", "NIKON CORPORATION"),
                     272: ("A", NIKON_MODEL), 273: ("L", thumb_at), 274: ("H", orientation), 277: ("H", 3),
                     278: ("L", thumb.shape[0]), 279: ("L", thumb.nbytes), 330: ("L", subs),
                     34665: ("L", exif)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(tiff.finish(ifd0)))
    return path


# -- Canon CR3 (ISO-BMFF) ----------------------------------------------------------------------
# The container as Canon writes it, as far as LibRaw reads it: `ftyp` (brand "crx "), `moov` with
# Canon's header box (uuid 85c0b687…: CNCV, CMT1 = a TIFF IFD0 with Make/Model/Orientation), a
# track holding the full-size JPEG preview (CRAW sample entry with a JPEG box) and the raw track
# (CRAW with a CMP1 header: 14-bit, 4 planes, RGGB), and their bytes in `mdat`. The raw track's
# bytes are NOT CRX-coded (Canon's wavelet codec has no encoder outside the camera): LibRaw
# identifies the file and extracts the preview, but demosaicing it fails, as with a damaged file.

CANON_CR3_MODEL = "Canon EOS R5"
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


def _box(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def _tiff_ifd0_at_8(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A little-endian TIFF whose IFD0 starts at byte 8, as CR3's CMT1 box must (LibRaw checks)."""
    data_at = 8 + 2 + 12 * len(entries) + 4
    ifd, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, count, raw in entries:
        if len(raw) > 4:
            ifd += struct.pack("<HHII", tag, kind, count, data_at + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        else:
            ifd += struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\0")
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + extra


def _craw_track(width: int, height: int, child: bytes, size: int, offset: int) -> bytes:
    """trak > mdia (hdlr "vide") > minf > stbl: a CRAW sample entry, one sample of `size` bytes at
    `offset` (stsz, co64)."""
    entry = bytearray(82)
    struct.pack_into(">HH", entry, 24, width, height)
    craw = _box(b"CRAW", bytes(entry) + child)
    stbl = _box(b"stbl", _box(b"stsd", struct.pack(">II", 0, 1) + craw)
                + _box(b"stsz", struct.pack(">III", 0, size, 1))
                + _box(b"co64", struct.pack(">IIQ", 0, 1, offset)))
    hdlr = _box(b"hdlr", b"\0" * 8 + b"vide" + b"\0" * 12)
    return _box(b"trak", _box(b"mdia", hdlr + _box(b"minf", stbl)))


def write_cr3(path: Path, preview: np.ndarray, sensor: tuple[int, int] = (128, 96),
              orientation: int = 1) -> Path:
    """A Canon CR3 whose only picture is its full-size JPEG `preview`; `sensor` (width, height,
    even) is what the raw track's CMP1 header declares."""
    width, height = sensor
    jpeg = _jpeg(preview)
    raw_bytes = b"\0" * 64  # where the CRX-coded tiles would be
    model = CANON_CR3_MODEL.encode("ascii") + b"\0"
    cmt1 = _tiff_ifd0_at_8([(256, 4, 1, struct.pack("<I", width)), (257, 4, 1, struct.pack("<I", height)),
                            (271, 2, 6, b"Canon\0"), (272, 2, len(model), model),
                            (274, 3, 1, struct.pack("<H", orientation))])
    header = _box(b"uuid", _CANON_UUID + _box(b"CNCV", b"CanonCR3_001/00.10.00/00.00.00") + _box(b"CMT1", cmt1))
    cmp1 = bytearray(60)  # version 1.0, image = one tile, 14 bits, 4 planes, RGGB, header size
    struct.pack_into(">H", cmp1, 4, 0x100)
    struct.pack_into(">IIII", cmp1, 8, width, height, width, height)
    cmp1[24:28] = bytes([14, 0x40, 0, 0])
    struct.pack_into(">I", cmp1, 28, 32)

    def moov(jpeg_at: int, raw_at: int) -> bytes:
        return _box(b"moov", header
                    + _craw_track(preview.shape[1], preview.shape[0], _box(b"JPEG", b"\0" * 4), len(jpeg), jpeg_at)
                    + _craw_track(width, height, _box(b"CMP1", bytes(cmp1)), len(raw_bytes), raw_at))

    ftyp = _box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom")
    start = len(ftyp) + len(moov(0, 0)) + 8  # offsets do not change the boxes' sizes
    data = ftyp + moov(start, start + len(jpeg)) + _box(b"mdat", jpeg + raw_bytes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
