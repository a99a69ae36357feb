"""Images with no pixels (a header that declares width or height 0, or a decode that gives 0×N):
one sentence "<name>: the image has no pixels (W×H).", in core, the Python API and the CLI alike."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdesk.core.errors import ImageLoadError
from clipdesk.core.images import declared_empty_size, decode_rgb, open_image, require_pixels

ROOT = Path(__file__).resolve().parents[2]


def png(width: int, height: int) -> bytes:
    """A PNG written by hand: Pillow refuses to save a 0-pixel image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def gif(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b")


def bmp(width: int, height: int) -> bytes:
    return (struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0))


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


CASES = [("w0.png", png(0, 5), "0×5"), ("h0.png", png(7, 0), "7×0"), ("w0.gif", gif(0, 4), "0×4"),
         ("h0.bmp", bmp(6, 0), "6×0"), ("h0.jpg", jpeg(9, 0), "9×0")]


@pytest.mark.parametrize("name, data, size", CASES)
def test_zero_size_headers_are_named_in_one_sentence(tmp_path, name, data, size):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError) as caught:
        open_image(path)
    assert str(caught.value) == f"{path}: the image has no pixels ({size})."


def test_real_images_are_not_taken_for_empty_ones(tmp_path):
    for width, height in [(1, 1), (3, 2)]:
        assert declared_empty_size(png(width, height)) is None
        assert declared_empty_size(gif(width, height)) is None
        assert declared_empty_size(bmp(width, -height)) is None  # top-down BMP
        assert declared_empty_size(jpeg(width, height)) is None
    assert declared_empty_size(b"not an image") is None
    Image.new("RGB", (1, 3), "red").save(tmp_path / "thin.png")
    assert open_image(tmp_path / "thin.png").size == (1, 3)


def test_a_decode_that_gives_no_pixels(tmp_path, monkeypatch):
    """Whatever the decoder (HEIF, RAW preview, a transpose): the check runs on the result."""
    from PIL import ImageOps

    Image.new("RGB", (8, 6), "blue").save(tmp_path / "ok.png")
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda image: image.crop((0, 0, 0, 6)))
    with pytest.raises(ImageLoadError, match=r"ok\.png: the image has no pixels \(0×6\)\.$"):
        decode_rgb((tmp_path / "ok.png").read_bytes(), tmp_path / "ok.png")


def test_require_pixels_names_what_it_is_given():
    assert require_pixels(Image.new("L", (2, 1)), "x").size == (2, 1)
    with pytest.raises(ImageLoadError, match=r"^Image 3: the image has no pixels \(0×2\)\.$"):
        require_pixels(Image.new("RGB", (0, 2)), "Image 3")


def test_python_api_files_images_and_arrays(tmp_path):
    import clipdesk

    (tmp_path / "w0.png").write_bytes(png(0, 5))
    Image.new("RGB", (16, 16), (230, 20, 20)).save(tmp_path / "good.png")
    classifier = clipdesk.load("demo")
    results = classifier.classify(
        [tmp_path / "w0.png", Image.new("RGB", (0, 4)), np.zeros((0, 5, 3), np.uint8), tmp_path / "good.png"],
        ["red circle", "blue star"])
    errors = [result.error for result in results]
    assert errors[:3] == [f"{tmp_path / 'w0.png'}: the image has no pixels (0×5).",
                          "Image 1: the image has no pixels (0×4).",
                          "Image 2: the image has no pixels (5×0)."]
    assert errors[3] is None and results[3].label in ("red circle", "blue star")


def test_cli_json_and_table(tmp_path):
    (tmp_path / "h0.gif").write_bytes(gif(0, 4))
    command = [sys.executable, "-m", "clipdesk", "classify", str(tmp_path / "h0.gif"), "--labels", "a,b",
               "--model", "demo", "--format", "json"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert b"Traceback" not in proc.stderr and b"ZeroDivision" not in proc.stdout + proc.stderr
    rows = json.loads(proc.stdout.decode("utf-8"))
    assert rows == [{"path": str(tmp_path / "h0.gif"),
                     "error": f"{tmp_path / 'h0.gif'}: the image has no pixels (0×4)."}]


def test_the_apps_classify_job_reports_it(tmp_path, tiny_engine_nocache):
    """The window runs session.classify_job: the row's error is the same sentence."""
    from clipdesk.core.session import classify_job

    (tmp_path / "h0.png").write_bytes(png(3, 0))
    Image.new("RGB", (32, 24), "green").save(tmp_path / "fine.png")
    job = classify_job(tiny_engine_nocache, [tmp_path / "h0.png", tmp_path / "fine.png"], ["a", "b"], "none", False)
    items = {}
    for progress in job:
        if progress.payload is not None:
            items.update({path: (vector, error) for path, vector, error in progress.payload.items})
    assert items[tmp_path / "h0.png"] == (None, f"{tmp_path / 'h0.png'}: the image has no pixels (3×0).")
    assert items[tmp_path / "fine.png"][1] == "" and items[tmp_path / "fine.png"][0] is not None
