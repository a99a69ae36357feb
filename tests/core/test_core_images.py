"""Images in: finding files, decoding every mode Pillow reads to upright RGB, the JPEG draft path,
and bad files becoming per-file errors while the rest of a run proceeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_images import save_image, synth_array

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.errors import ImageLoadError
from clipdesk.core.images import decode_rgb, find_images, open_image
from clipdesk.core.jobs import run_job

# -- finding files ------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    for name in ["b.png", "a.jpg", "sub/c.PNG", "sub/deeper/e.webp", "sub/.hidden.png",
                 ".hiddendir/d.png", "z/y.tiff", "g.gif", "h.bmp"]:
        save_image(root / name, seed=len(name), width=32, height=24)
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "model.safetensors").write_bytes(b"\0" * 16)
    return root


EXPECTED = ["a.jpg", "b.png", "g.gif", "h.bmp", "sub/c.PNG", "sub/deeper/e.webp", "z/y.tiff"]


def test_find_images_recursive_sorted_skips_hidden_and_non_images(tree):
    files, errors = find_images([tree])
    assert errors == {}
    assert [p.relative_to(tree).as_posix() for p in files] == EXPECTED
    assert all(p.is_absolute() for p in files)


def test_find_images_removes_duplicates_keeps_first_order(tree):
    files, errors = find_images([tree / "sub" / "c.PNG", tree, tree / "a.jpg", str(tree / "sub")])
    assert errors == {}
    names = [p.relative_to(tree).as_posix() for p in files]
    assert names == ["sub/c.PNG"] + [n for n in EXPECTED if n != "sub/c.PNG"]
    assert len(set(files)) == len(files)


def test_find_images_relative_paths_become_absolute(tree, monkeypatch):
    monkeypatch.chdir(tree)
    files, _ = find_images([".", "a.jpg"])
    assert [p.relative_to(tree).as_posix() for p in files] == EXPECTED
    assert all(p.is_absolute() for p in files)


def test_find_images_named_files_kept_and_missing_reported(tree):
    missing = tree / "nope.jpg"
    files, errors = find_images([tree / "notes.txt", tree / "sub" / ".hidden.png", missing])
    # Files named explicitly are the user's choice; decoding judges them later.
    assert [p.name for p in files] == ["notes.txt", ".hidden.png"]
    assert list(errors) == [missing]
    assert "nope.jpg" in errors[missing]


def test_find_images_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert find_images([tmp_path / "empty"]) == ([], {})


# -- decoding ----------------------------------------------------------------------------------


def halves_image(width=80, height=40) -> Image.Image:
    """Left half red, right half blue: orientation is visible in the colours."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(array)


def mean_colour(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1, 3).mean(axis=0)


# EXIF orientation -> numpy operation that makes the stored pixels upright.
ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, -1),  # rotate 90° clockwise
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("draft", [None, 16])
def test_exif_orientation_applied(tmp_path, orientation, draft):
    stored = halves_image()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    stored.save(path, quality=95, exif=exif.tobytes())
    expected = ORIENTATIONS[orientation](np.asarray(stored))

    image = open_image(path, draft_size=draft)
    got = np.asarray(image)
    assert image.mode == "RGB"
    assert got.shape[0] * expected.shape[1] == got.shape[1] * expected.shape[0]  # same aspect
    if draft:
        assert got.shape[0] < expected.shape[0]  # decoded at a reduced scale, then turned
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(expected)).resize(image.size))
    # Compare the colour of each quadrant: JPEG blurs the edge, not the halves.
    h, w = got.shape[:2]
    for rows in (slice(0, h // 3), slice(2 * h // 3, h)):
        for cols in (slice(0, w // 3), slice(2 * w // 3, w)):
            assert np.abs(mean_colour(got[rows, cols]) - mean_colour(expected[rows, cols])).max() < 20


def test_palette_with_transparency_composited_on_white(tmp_path):
    palette_image = Image.new("P", (8, 8), 0)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    for x in range(4):
        for y in range(8):
            palette_image.putpixel((x, y), 1)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    got = np.asarray(open_image(path))
    assert tuple(got[0, 0]) == (255, 0, 0)
    assert tuple(got[0, 7]) == (255, 255, 255)  # transparent black -> white background


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.gif"
    Image.fromarray(synth_array(3, 32, 24)).convert("P").save(path)
    image = open_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(path).convert("RGB")))


def test_rgba_alpha_composited_on_white(tmp_path):
    array = np.zeros((4, 4, 4), np.uint8)
    array[0, 0] = (255, 0, 0, 0)  # fully transparent: white
    array[0, 1] = (0, 0, 255, 255)  # opaque: itself
    array[0, 2] = (0, 0, 0, 128)  # half transparent black: mid grey
    path = tmp_path / "rgba.png"
    Image.fromarray(array, "RGBA").save(path)
    got = np.asarray(open_image(path)).astype(int)
    assert tuple(got[0, 0]) == (255, 255, 255)
    assert tuple(got[0, 1]) == (0, 0, 255)
    assert np.abs(got[0, 2] - 127).max() <= 1


def test_la_and_greyscale(tmp_path):
    Image.new("LA", (4, 4), (0, 0)).save(tmp_path / "la.png")
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    assert tuple(np.asarray(open_image(tmp_path / "la.png"))[0, 0]) == (255, 255, 255)
    assert tuple(np.asarray(open_image(tmp_path / "l.png"))[0, 0]) == (77, 77, 77)


@pytest.mark.parametrize("suffix", [".jpg", ".tiff"])
def test_cmyk_converted(tmp_path, suffix):
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)  # cyan 0, magenta+yellow full: red
    assert Image.open(path).mode == "CMYK"
    pixel = np.asarray(open_image(path))[8, 8].astype(int)
    assert pixel[0] > 200 and pixel[1] < 50 and pixel[2] < 50


def test_16_bit_greyscale_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.float64).round().astype(np.uint16)
    array = np.tile(ramp, (8, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode.startswith("I")
    got = np.asarray(open_image(path)).astype(int)
    expected = np.floor(ramp / 65535 * 255)
    assert got.shape == (8, 64, 3)
    assert np.abs(got[0, :, 0] - expected).max() <= 1  # a plain convert("RGB") would clip to 255
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    pixel = np.asarray(open_image(path))[8, 8].astype(int)
    assert pixel[0] > 200 and pixel[2] < 50


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tiff", ".gif"])
def test_every_format_decodes(tmp_path, suffix):
    path = save_image(tmp_path / f"x{suffix}", seed=5, width=40, height=30)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_jpeg_draft_never_below_requested_size(tmp_path):
    path = save_image(tmp_path / "big.jpg", seed=1, width=1600, height=1200, quality=90)
    full = open_image(path)
    assert full.size == (1600, 1200)
    for requested in (448, 300, 128):
        draft = open_image(path, draft_size=requested)
        assert min(draft.size) >= requested
        assert draft.size[0] < 1600  # a reduced-scale decode really happened
        assert draft.size[0] * 3 == draft.size[1] * 4
    # Smaller JPEGs than twice the request are decoded at full size.
    small = save_image(tmp_path / "small.jpg", seed=1, width=500, height=400)
    assert open_image(small, draft_size=448).size == (500, 400)


def test_draft_ignored_for_png(tmp_path):
    path = save_image(tmp_path / "big.png", seed=1, width=900, height=600)
    assert open_image(path, draft_size=100).size == (900, 600)


def test_jpeg_fast_path_keeps_top1_against_exact(vitb32_loaded, tmp_path):
    """The draft decode (default) against --exact on larger JPEGs: same top-1, near-equal vectors."""
    paths = [save_image(tmp_path / f"photo{i}.jpg", seed=10 + i, width=1600, height=1200, quality=90)
             for i in range(4)]
    engine = Engine(TorchEncoder(vitb32_loaded), NullCache())
    labels = engine.label_set(["cat", "dog", "car", "beach", "forest", "city at night"])
    fast = run_job(engine.embed_job(paths, batch_size=4))
    exact = run_job(engine.embed_job(paths, batch_size=4, exact=True))
    assert fast.encoded == exact.encoded == 4
    assert not np.array_equal(fast.features, exact.features)  # the draft path really differs
    similarity = (fast.features * exact.features).sum(axis=1)
    assert similarity.min() > 0.99
    fast_scores, exact_scores = engine.score(fast.features, labels), engine.score(exact.features, labels)
    assert (fast_scores.probs.argmax(1) == exact_scores.probs.argmax(1)).all()
    assert np.abs(fast_scores.probs - exact_scores.probs).max() < 0.02


# -- bad files ---------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    folder = tmp_path / "mixed"
    good = [save_image(folder / f"good{i}.png", seed=i) for i in range(3)]
    jpeg = save_image(folder / "good.jpg", seed=9, quality=90)
    good.append(jpeg)
    bad = {}
    bad["corrupt"] = folder / "corrupt.jpg"
    bad["corrupt"].write_bytes(os.urandom(2000))
    bad["garbled"] = folder / "garbled.jpg"  # a real JPEG header, then noise
    data = jpeg.read_bytes()
    bad["garbled"].write_bytes(data[:200] + os.urandom(len(data) - 200))
    bad["truncated"] = folder / "truncated.jpg"
    bad["truncated"].write_bytes(data[: len(data) // 2])
    png = (folder / "good0.png").read_bytes()
    bad["truncated_png"] = folder / "truncated.png"
    bad["truncated_png"].write_bytes(png[: len(png) // 2])
    bad["empty"] = folder / "empty.png"
    bad["empty"].write_bytes(b"")
    bad["text"] = folder / "readme.png"
    bad["text"].write_text("this is a text file with an image suffix\n")
    bad["missing"] = folder / "deleted.jpg"
    return good, bad


def test_bad_files_give_per_file_errors_and_the_rest_proceeds(tiny_engine_nocache, bad_files):
    good, bad = bad_files
    order = [good[0], *bad.values(), *good[1:]]
    result = run_job(tiny_engine_nocache.embed_job(order, batch_size=3))
    assert result.paths == good
    assert result.features.shape == (len(good), 64)
    assert result.encoded == len(good)
    assert set(result.errors) == set(bad.values())
    for path, message in result.errors.items():
        assert str(path) in message and "\n" not in message and message.endswith(".")
    assert "empty" in result.errors[bad["empty"]]
    assert "not an image" in result.errors[bad["text"]]
    assert "not found" in result.errors[bad["missing"]]
    assert "truncated" in result.errors[bad["truncated"]]


def test_bad_file_errors_come_with_progress_payload(tiny_engine_nocache, bad_files):
    good, bad = bad_files
    payloads = []
    run_job(tiny_engine_nocache.embed_job([*good, *bad.values()], batch_size=4),
            on_progress=lambda p: payloads.extend(p.payload or []))
    assert [path for path, _, _ in payloads] == [*good, *bad.values()]
    for path, vector, error in payloads:
        assert (vector is None) == bool(error) == (path in bad.values())


def test_unreadable_file(tiny_engine_nocache, tmp_path, monkeypatch):
    good = save_image(tmp_path / "ok.png", seed=1)
    locked = save_image(tmp_path / "locked.png", seed=2)
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # running as root: permissions do not stop us, so simulate
            real_open = os.open

            def refusing_open(path, *args, **kwargs):
                if Path(path) == locked:
                    raise PermissionError(13, "Permission denied", str(path))
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(os, "open", refusing_open)
        result = run_job(tiny_engine_nocache.embed_job([locked, good]))
    finally:
        locked.chmod(0o644)
    assert result.paths == [good]
    assert "permission denied" in result.errors[locked]


def test_decompression_bomb(tiny_engine_nocache, tmp_path, monkeypatch):
    good = save_image(tmp_path / "ok.png", seed=1)  # 96×72 = 6,912 pixels
    bomb = save_image(tmp_path / "bomb.png", seed=2, width=200, height=200)  # 40,000 pixels
    # Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS and warns above it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    result = run_job(tiny_engine_nocache.embed_job([bomb, good]))
    assert result.paths == [good]
    assert "too large" in result.errors[bomb]
    with pytest.raises(ImageLoadError, match="too large"):
        open_image(bomb)


def test_decode_rgb_errors_are_image_load_errors(tmp_path):
    for data in (b"GIF89a\x00", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, b"hello"):
        with pytest.raises(ImageLoadError):
            decode_rgb(data, tmp_path / "x.png")
