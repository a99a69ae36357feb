"""HEIC/HEIF, AVIF and camera RAW: real files written here (pillow-heif, Pillow, tifffile DNGs),
decoded upright through the one decoding path, found by the scan with every skipped type
counted, RAW+JPEG pairs kept together, and bad files reported per file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image
from synth_images import save_image, synth_array
from synth_raw import CANON_WHITE, write_cr2, write_cr3, write_dng, write_nef

from clipdesk.core import decoders
from clipdesk.core.errors import ImageLoadError
from clipdesk.core.images import (
    find_images,
    open_image,
    pair_raw_files,
    scan_images,
    skipped_note,
    supported_suffixes,
)
from clipdesk.core.jobs import run_job
from clipdesk.core.sorting import execute, plan_sort, undo

RED, BLUE = (220, 30, 30), (30, 30, 220)
GREEN, YELLOW = (0, 200, 0), (250, 250, 0)
# EXIF orientation -> numpy operation that makes the stored pixels upright.
UPRIGHT = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1),
           8: lambda a: np.rot90(a, 1)}


def halves(left, right, width=96, height=64) -> np.ndarray:
    """Two colours side by side: orientation shows in where each colour ends up."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = left
    array[:, width // 2:] = right
    return array


def assert_looks_like(got: np.ndarray, expected: np.ndarray, tolerance: float = 60) -> None:
    """Same aspect, and each corner region has the expected colour (codecs blur the edge)."""
    assert got.shape[0] * expected.shape[1] == got.shape[1] * expected.shape[0]
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(expected)).resize(
        (got.shape[1], got.shape[0]), Image.Resampling.NEAREST))
    h, w = got.shape[:2]
    for rows in (slice(0, h // 4), slice(3 * h // 4, h)):
        for cols in (slice(0, w // 4), slice(3 * w // 4, w)):
            diff = got[rows, cols].reshape(-1, 3).mean(0) - expected[rows, cols].reshape(-1, 3).mean(0)
            assert np.abs(diff).max() < tolerance, (rows, cols, diff)


def save_with_orientation(path: Path, array: np.ndarray, orientation: int, fmt: str) -> Path:
    decoders.registry()  # pillow-heif's opener (and saver) registered
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, fmt, quality=90, exif=exif.tobytes())
    return path


# -- what the installed decoders read -------------------------------------------------------------


def test_supported_suffixes_come_from_the_installed_decoders():
    suffixes = supported_suffixes()
    assert {".heic", ".heif", ".hif", ".avif", ".jpg", ".png", ".webp", ".tif", ".psd"} <= suffixes
    assert {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"} <= suffixes
    assert suffixes == decoders.pillow_suffixes() | decoders.RAW_SUFFIXES
    registered = Image.registered_extensions()
    assert all(suffix in registered or suffix in decoders.RAW_SUFFIXES for suffix in suffixes)
    # Identified but never decoded by Pillow here (video, Ghostscript, handler stubs), or not images.
    assert not {".mpg", ".mpeg", ".eps", ".ps", ".grib", ".h5", ".pdf", ".mov", ".txt"} & suffixes
    assert decoders.registry().unavailable_note() is None


def test_avif_beside_png_both_found_and_skipped_types_counted(tmp_path):
    folder = tmp_path / "photos"
    save_image(folder / "photo.png", seed=1)
    save_with_orientation(folder / "photo.avif", synth_array(2), 1, "AVIF")
    save_with_orientation(folder / "sub" / "phone.HEIC", synth_array(3), 1, "HEIF")
    for name in ("a.mov", "b.mov", "sub/c.mov", "notes.txt", "Makefile"):
        (folder / name).write_bytes(b"x")
    (folder / ".DS_Store").write_bytes(b"x")  # hidden: neither an image nor worth a note

    scan = scan_images([folder])
    assert [p.relative_to(folder).as_posix() for p in scan.files] == ["photo.avif", "photo.png",
                                                                      "sub/phone.HEIC"]
    assert scan.skipped == Counter({".mov": 3, ".txt": 1, "(no extension)": 1})
    assert scan.notes() == [skipped_note(scan.skipped)]
    assert scan.notes()[0].startswith("5 files skipped: 3 .mov, 1 (no extension), 1 .txt")
    assert skipped_note(Counter({".psd": 1})).startswith("1 file skipped: 1 .psd")
    assert find_images([folder])[0] == scan.files  # the plain listing agrees


# -- HEIC/HEIF and AVIF ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
@pytest.mark.parametrize(("fmt", "suffix"), [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heic_and_avif_decoded_upright(tmp_path, fmt, suffix, orientation):
    stored = halves(RED, BLUE)
    path = save_with_orientation(tmp_path / f"o{orientation}{suffix}", stored, orientation, fmt)
    image = open_image(path)
    assert image.mode == "RGB"
    assert_looks_like(np.asarray(image), UPRIGHT[orientation](stored))


def test_heic_16_bit_and_alpha(tmp_path):
    decoders.registry()
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, :16, 3] = 255  # left opaque blue, right transparent: white
    path = tmp_path / "alpha.heic"
    Image.fromarray(rgba, "RGBA").save(path, "HEIF", quality=95)
    got = np.asarray(open_image(path)).astype(int)
    assert np.abs(got[16, 4] - (0, 0, 255)).max() < 20
    assert np.abs(got[16, 28] - (255, 255, 255)).max() < 20


def test_truncated_heic_is_a_clear_per_file_error_and_the_rest_proceeds(tiny_engine_nocache, tmp_path):
    good = [save_image(tmp_path / "a.png", seed=1),
            save_with_orientation(tmp_path / "b.heic", synth_array(2), 1, "HEIF"),
            save_with_orientation(tmp_path / "c.avif", synth_array(3), 1, "AVIF")]
    data = good[1].read_bytes()
    truncated = tmp_path / "truncated.heic"
    truncated.write_bytes(data[: len(data) // 2])
    result = run_job(tiny_engine_nocache.embed_job([good[0], truncated, *good[1:]], batch_size=2))
    assert result.paths == good
    assert list(result.errors) == [truncated]
    message = result.errors[truncated]
    assert message == f"{truncated}: corrupt or truncated HEIC/HEIF data."
    avif = good[2].read_bytes()
    (tmp_path / "cut.avif").write_bytes(avif[: len(avif) // 2])
    with pytest.raises(ImageLoadError, match="corrupt or truncated AVIF data"):
        open_image(tmp_path / "cut.avif")
    with pytest.raises(ImageLoadError, match="not an image format"):  # not HEIF at all: as before
        open_image(save_text(tmp_path / "fake.heic"))


def save_text(path: Path) -> Path:
    path.write_text("not a photo\n")
    return path


# -- camera RAW -----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_raw_without_preview_is_demosaiced_upright(tmp_path, orientation):
    stored = halves(RED, BLUE)
    path = write_dng(tmp_path / f"o{orientation}.dng", stored, orientation)
    for draft in (None, 16):
        image = open_image(path, draft_size=draft)
        assert image.mode == "RGB"
        assert image.size == ((48, 32) if orientation in (1, 3) else (32, 48))  # half size
        assert_looks_like(np.asarray(image), UPRIGHT[orientation](stored), tolerance=70)


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
@pytest.mark.parametrize("camera_exif", [False, True])
def test_raw_embedded_preview_used_upright_with_jpeg_draft(tmp_path, orientation, camera_exif):
    """The preview (green|yellow here, unlike the red|blue mosaic) is what is shown, turned by
    LibRaw's flip: from the EXIF LibRaw writes into it, or — when the camera's preview has its own
    EXIF saying 1 — from `sizes.flip`."""
    preview = halves(GREEN, YELLOW, 384, 256)
    path = write_dng(tmp_path / f"p{orientation}.dng", halves(RED, BLUE), orientation,
                     preview=preview, preview_exif=camera_exif)
    expected = UPRIGHT[orientation](preview)
    full = open_image(path)
    assert full.size == (expected.shape[1], expected.shape[0])  # the full preview, not half size
    assert_looks_like(np.asarray(full), expected, tolerance=30)
    draft = open_image(path, draft_size=64)
    assert min(draft.size) == 64  # libjpeg decoded the preview at 1/4 scale
    assert_looks_like(np.asarray(draft), expected, tolerance=30)


def test_raw_with_only_a_small_thumbnail_is_demosaiced(tmp_path):
    path = write_dng(tmp_path / "thumb.dng", halves(RED, BLUE, 192, 128), 1,
                     preview=halves(GREEN, YELLOW, 24, 16))
    image = open_image(path, draft_size=48)  # 24×16 thumbnail < 48; the demosaic gives 96×64
    assert image.size == (96, 64)
    assert_looks_like(np.asarray(image), halves(RED, BLUE), tolerance=70)


def test_bad_raw_files_are_clear_per_file_errors(tiny_engine_nocache, tmp_path):
    good = write_dng(tmp_path / "good.dng", synth_array(1, 96, 64), 1)
    truncated = tmp_path / "truncated.dng"
    truncated.write_bytes(good.read_bytes()[:600])
    not_raw = save_text(tmp_path / "IMG_0001.CR3")
    result = run_job(tiny_engine_nocache.embed_job([truncated, good, not_raw]))
    assert result.paths == [good]
    assert set(result.errors) == {truncated, not_raw}
    for path, message in result.errors.items():
        assert message.startswith(f"{path}: ") and message.endswith(".") and "\n" not in message
    assert "RAW" in result.errors[truncated] and "RAW" in result.errors[not_raw]
    assert "b'" not in result.errors[truncated]  # LibRaw's message, not a bytes repr


def test_every_new_format_is_embedded_and_cached_by_content(tiny_engine, tmp_path):
    paths = [save_with_orientation(tmp_path / "a.heic", synth_array(1), 1, "HEIF"),
             save_with_orientation(tmp_path / "b.avif", synth_array(2), 1, "AVIF"),
             write_dng(tmp_path / "c.dng", synth_array(3, 96, 64), 1),
             write_dng(tmp_path / "d.nef.dng", synth_array(4, 96, 64), 6, preview=synth_array(5, 192, 128))]
    first = run_job(tiny_engine.embed_job(paths))
    assert first.paths == paths and first.encoded == 4 and not first.errors
    moved = tmp_path / "moved"
    moved.mkdir()
    renamed = [p.rename(moved / p.name) for p in paths]
    again = run_job(tiny_engine.embed_job(renamed))
    assert again.encoded == 0  # content-keyed: a moved file is still a hit
    np.testing.assert_array_equal(again.features, first.features)


# -- Canon CR2 and Nikon NEF: TIFF-based camera files (tests/core/synth_raw.py) ------------------

CAMERA_WRITERS = {".CR2": write_cr2, ".NEF": write_nef}


def assert_red_and_blue_where_expected(got: np.ndarray, expected: np.ndarray) -> None:
    """The camera's colour matrix (and no white balance as shot) shifts the colours, so check what
    survives it: in each corner region, red stays red-dominant and blue blue-dominant."""
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(expected)).resize(
        (got.shape[1], got.shape[0]), Image.Resampling.NEAREST)).astype(int)
    h, w = got.shape[:2]
    for rows in (slice(0, h // 4), slice(3 * h // 4, h)):
        for cols in (slice(0, w // 4), slice(3 * w // 4, w)):
            r, _, b = got[rows, cols].reshape(-1, 3).mean(0)
            want_r, _, want_b = expected[rows, cols].reshape(-1, 3).mean(0)
            assert (r - b > 100) if want_r > want_b else (b - r > 100), (rows, cols, r, b)


@pytest.mark.parametrize("suffix", sorted(CAMERA_WRITERS))
def test_libraw_takes_the_camera_makers_own_path(tmp_path, suffix):
    """LibRaw recognised the make and model, not just a TIFF: the Canon 5D Mark II's white level
    comes from LibRaw's camera table (the file does not hold one), Nikon's two-pixel left margin
    is its rule for Nikon bodies."""
    path = CAMERA_WRITERS[suffix](tmp_path / f"IMG_0001{suffix}", halves(RED, BLUE, 128, 96))
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_image.shape == (96, 128)  # the whole strip, unpacked
        if suffix == ".CR2":
            assert raw.white_level == CANON_WHITE and raw.sizes.width == 128
        else:
            assert raw.sizes.left_margin == 2 and raw.sizes.width == 124
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]] and raw.color_desc == b"RGBG"  # RGGB


@pytest.mark.parametrize("suffix", sorted(CAMERA_WRITERS))
@pytest.mark.parametrize("orientation", [1, 6])
def test_canon_and_nikon_raw_demosaiced_upright(tmp_path, suffix, orientation):
    stored = halves(RED, BLUE, 128, 96)
    path = CAMERA_WRITERS[suffix](tmp_path / f"IMG_0001{suffix}", stored, orientation)
    image = open_image(path)  # only a 1/4-size (CR2) or 1/8-size (NEF) thumbnail: demosaiced
    width = 64 if suffix == ".CR2" else 62  # half size, less Nikon's crop
    assert image.mode == "RGB" and image.size == ((width, 48) if orientation == 1 else (48, width))
    assert_red_and_blue_where_expected(np.asarray(image), UPRIGHT[orientation](stored))


@pytest.mark.parametrize("suffix", sorted(CAMERA_WRITERS))
@pytest.mark.parametrize("orientation", [1, 6])
def test_canon_and_nikon_full_size_preview_is_used_upright(tmp_path, suffix, orientation):
    preview = halves(GREEN, YELLOW, 384, 256)  # unlike the red|blue mosaic
    path = CAMERA_WRITERS[suffix](tmp_path / f"IMG_0002{suffix}", halves(RED, BLUE, 128, 96), orientation,
                                  preview=preview)
    expected = UPRIGHT[orientation](preview)
    full = open_image(path)
    assert full.size == (expected.shape[1], expected.shape[0])  # the preview, at its full size
    assert_looks_like(np.asarray(full), expected, tolerance=30)
    draft = open_image(path, draft_size=64)
    assert min(draft.size) == 64  # libjpeg decoded the preview at 1/4 scale
    assert_looks_like(np.asarray(draft), expected, tolerance=30)


def test_canon_and_nikon_files_are_found_embedded_and_damage_is_one_sentence(tiny_engine_nocache, tmp_path):
    folder = tmp_path / "card"
    cr2 = write_cr2(folder / "IMG_0001.CR2", synth_array(3, 128, 96))
    nef = write_nef(folder / "DSC_0001.NEF", synth_array(4, 128, 96))
    broken = folder / "IMG_0002.CR2"
    broken.write_bytes(cr2.read_bytes()[:300])  # cut inside the IFDs
    files, errors = find_images([folder])
    assert sorted(files) == sorted(p.absolute() for p in (cr2, nef, broken)) and not errors
    result = run_job(tiny_engine_nocache.embed_job([cr2, nef, broken]))
    assert result.paths == [cr2, nef] and list(result.errors) == [broken]
    message = result.errors[broken]
    assert message.startswith(f"{broken}: ") and "RAW" in message and "\n" not in message
    assert not np.allclose(result.features[0], result.features[1])


@pytest.mark.parametrize("orientation", [1, 6])
def test_canon_cr3_preview_is_used_upright(tmp_path, orientation):
    """CR3 is ISO-BMFF, not TIFF: LibRaw finds the Canon header, the raw track's CMP1 and the
    preview track; the preview is what clipdesk shows."""
    preview = halves(GREEN, YELLOW, 384, 256)
    path = write_cr3(tmp_path / "IMG_0001.CR3", preview, orientation=orientation)
    with rawpy.imread(str(path)) as raw:
        assert (raw.sizes.raw_width, raw.sizes.raw_height) == (128, 96)  # from CMP1
        assert raw.color_desc == b"RGBG"
    expected = UPRIGHT[orientation](preview)
    image = open_image(path)
    assert image.size == (expected.shape[1], expected.shape[0])
    assert_looks_like(np.asarray(image), expected, tolerance=30)
    assert min(open_image(path, draft_size=64).size) == 64


def test_cr3_whose_raw_data_cannot_be_decoded_is_one_sentence(tmp_path):
    """With only a small preview clipdesk demosaics, and these raw bytes are not CRX-coded: LibRaw
    fails as on a damaged file, and that is a per-file error, not a crash."""
    path = write_cr3(tmp_path / "IMG_0002.CR3", halves(GREEN, YELLOW, 24, 16))
    with pytest.raises(ImageLoadError) as caught:
        open_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "RAW" in message and "\n" not in message


# -- RAW + JPEG pairs -----------------------------------------------------------------------------


@pytest.fixture
def pairs(tmp_path):
    folder = tmp_path / "card"
    jpeg = save_image(folder / "IMG_0042.JPG", seed=1)
    raw = write_dng(folder / "img_0042.dng", synth_array(1, 96, 64), 1)  # stem matches in any case
    lone_raw = write_dng(folder / "IMG_0043.DNG", synth_array(2, 96, 64), 1)
    other = save_image(tmp_path / "elsewhere" / "IMG_0043.jpg", seed=3)  # another folder: no pair
    return folder, jpeg, raw, lone_raw, other


def test_raw_jpeg_pair_counts_as_one_photo(pairs):
    folder, jpeg, raw, lone_raw, other = pairs
    scan = scan_images([folder, other])
    assert scan.files == [jpeg, lone_raw, other]
    assert scan.companions == {jpeg: [raw]}
    assert "1 RAW file paired with a JPEG" in " ".join(scan.notes())
    separate = scan_images([folder, other], pair_raw=False)
    assert separate.files == [*sorted([jpeg, raw, lone_raw]), other] and separate.companions == {}
    assert pair_raw_files([raw, jpeg]) == ([jpeg], {jpeg: [raw]})


def test_sorting_moves_the_raw_with_its_jpeg_and_undo_brings_both_back(pairs, tmp_path):
    folder, jpeg, raw, lone_raw, _ = pairs
    destination = tmp_path / "sorted"
    (destination / "cat").mkdir(parents=True)
    save_image(destination / "cat" / "IMG_0042.JPG", seed=9)  # a name clash: both get " (1)"
    plan = plan_sort([(jpeg, "cat"), (lone_raw, "dog")], destination)
    assert plan.moves == [(jpeg, destination / "cat" / "IMG_0042 (1).JPG"),
                          (raw, destination / "cat" / "IMG_0042 (1).dng"),
                          (lone_raw, destination / "dog" / "IMG_0043.DNG")]
    raw_bytes = raw.read_bytes()
    record = execute(plan, "move")
    assert not record.errors and not raw.exists() and not jpeg.exists()
    assert (destination / "cat" / "IMG_0042 (1).dng").read_bytes() == raw_bytes
    undo(record)
    assert raw.read_bytes() == raw_bytes and jpeg.exists() and lone_raw.exists()


def test_sorting_keeps_pairs_separate_when_asked_or_when_the_raw_is_sorted_itself(pairs, tmp_path):
    folder, jpeg, raw, _, _ = pairs
    destination = tmp_path / "sorted"
    assert [s for s, _ in plan_sort([(jpeg, "cat")], destination, pair_raw=False).moves] == [jpeg]
    plan = plan_sort([(jpeg, "cat"), (raw, "dog")], destination)  # classified separately
    assert plan.moves == [(jpeg, destination / "cat" / jpeg.name), (raw, destination / "dog" / raw.name)]


# -- the other front ends use the same path -------------------------------------------------------


def test_window_thumbnails_decode_heic_avif_and_raw(tmp_path):
    from clipdesk.qt.thumbnails import load_qimage

    paths = {"a.heic": save_with_orientation(tmp_path / "a.heic", halves(RED, BLUE), 6, "HEIF"),
             "b.avif": save_with_orientation(tmp_path / "b.avif", halves(RED, BLUE), 6, "AVIF"),
             "c.dng": write_dng(tmp_path / "c.dng", halves(RED, BLUE, 384, 256), 6,
                                preview=halves(GREEN, YELLOW, 384, 256))}
    for name, path in paths.items():
        qimage = load_qimage(path, 40)
        assert (qimage.width(), qimage.height()) in ((27, 40), (26, 40)), name  # upright: portrait
        top = qimage.pixelColor(13, 3)
        assert (top.red(), top.green(), top.blue()) != (0, 0, 0), name


def test_training_folders_take_heic_and_raw(tmp_path):
    from training.data import scan_dataset

    root = tmp_path / "pets"
    save_with_orientation(root / "cat" / "a.heic", synth_array(1), 1, "HEIF")
    write_dng(root / "cat" / "b.dng", synth_array(2, 96, 64), 1)
    save_with_orientation(root / "dog" / "c.avif", synth_array(3), 1, "AVIF")
    save_image(root / "dog" / "d.jpg", seed=4)
    save_image(root / "dog" / "IMG_1.JPG", seed=5)
    write_dng(root / "dog" / "IMG_1.dng", synth_array(5, 96, 64), 1)  # the same photo, not a third
    summary = scan_dataset(root)
    assert summary.classes == ["cat", "dog"]
    assert summary.counts == {"cat": 2, "dog": 3}
    assert [p.name for p in summary.files["dog"]] == ["IMG_1.JPG", "c.avif", "d.jpg"]
    assert any("RAW file(s) beside a JPEG" in line for line in summary.skipped)


@pytest.mark.parametrize("separate", [False, True])
def test_cli_classifies_every_format_and_notes_what_it_skipped(tmp_path, capsys, separate):
    from clipdesk.cli import main

    folder = tmp_path / "photos"
    save_with_orientation(folder / "photo.avif", halves(RED, RED), 1, "AVIF")
    save_image(folder / "photo.png", seed=1)
    save_with_orientation(folder / "phone.heic", halves(BLUE, BLUE), 6, "HEIF")
    save_image(folder / "IMG_0042.JPG", seed=2)
    write_dng(folder / "IMG_0042.dng", synth_array(3, 96, 64), 1)
    for name in ("a.mov", "b.mov", "c.psd.part"):
        (folder / name).write_bytes(b"x")
    argv = ["classify", str(folder), "--model", "demo", "--labels", "red circle,blue star",
            "--templates", "none", "--backend", "torch", "--format", "json"]
    code = main(argv + (["--keep-raw-pairs-separate"] if separate else []))
    out, err = capsys.readouterr()
    rows = json.loads(out)
    names = ["IMG_0042.JPG", "phone.heic", "photo.avif", "photo.png"]
    assert [Path(row["path"]).name for row in rows] == (sorted([*names, "IMG_0042.dng"]) if separate else names)
    assert code == 0 and all("error" not in row for row in rows)
    scores = {Path(row["path"]).name: row["cosines"] for row in rows}  # demo probs saturate
    assert scores["photo.avif"]["red circle"] > scores["phone.heic"]["red circle"]
    assert scores["phone.heic"]["blue star"] > scores["photo.avif"]["blue star"]
    assert "clipdesk: 3 files skipped: 2 .mov, 1 .part (no installed decoder reads them)." in err.splitlines()
    assert ("RAW file paired" in err) != separate
