"""Hostile files: every read goes through one guard (regular file, size cap, time limit)."""

from __future__ import annotations

import os
import time

import pytest
from synth_images import save_image

from clipdesk.core.errors import ClipdeskError, ImageLoadError, LabelError, ModelLoadError
from clipdesk.core.images import find_images, read_bytes
from clipdesk.core.safeio import (
    UnsafeFileError,
    check_regular,
    is_regular_file,
    read_bytes_guarded,
    read_text_guarded,
)


@pytest.fixture
def odd_files(tmp_path):
    """A FIFO, a link to /dev/zero, a folder and a broken link, all named like images."""
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "broken.png").symlink_to(tmp_path / "nowhere.png")
    return tmp_path


@pytest.mark.parametrize("name, word", [("fifo.png", "pipe"), ("zero.png", "link to a device"),
                                        ("folder.png", "folder")])
def test_non_regular_files_are_refused_at_once(odd_files, name, word):
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match=word) as caught:
        read_bytes(odd_files / name)
    assert time.monotonic() - started < 2  # never blocks on the FIFO, never reads /dev/zero
    assert name in str(caught.value) and "\n" not in str(caught.value)
    assert not is_regular_file(odd_files / name)


@pytest.mark.parametrize("kind, error_type", [("image", ImageLoadError), ("labels", LabelError),
                                              ("metadata", ModelLoadError), ("checkpoint", ModelLoadError),
                                              ("settings", UnsafeFileError), ("json", UnsafeFileError)])
def test_each_kind_raises_the_projects_error_type(odd_files, kind, error_type):
    with pytest.raises(error_type):
        read_bytes_guarded(odd_files / "zero.png", kind)
    with pytest.raises(error_type, match="not found"):
        check_regular(odd_files / "missing.txt", kind)
    assert issubclass(error_type, ClipdeskError)


def test_size_cap_is_checked_before_reading(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\n" * 1000)
    with pytest.raises(LabelError, match="larger than"):
        read_bytes_guarded(path, "labels", max_bytes=100)
    assert read_bytes_guarded(path, "labels", max_bytes=4000) == b"cat\n" * 1000


def test_regular_files_and_links_to_them_read_whole(tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 7)  # more than one read chunk
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    (tmp_path / "link.bin").symlink_to(path)
    assert read_bytes_guarded(tmp_path / "link.bin", "image") == data
    assert check_regular(path, "checkpoint").st_size == len(data)


def test_text_decoding_error_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(UnsafeFileError, match="bad.json"):
        read_text_guarded(path, "json")


def test_folder_scan_skips_special_files_with_a_note(odd_files):
    good = save_image(odd_files / "good.png", seed=1)
    started = time.monotonic()
    files, errors = find_images([odd_files])
    assert time.monotonic() - started < 2
    assert files == [good.absolute()]
    skipped = {path.name for path in errors}
    assert {"fifo.png", "zero.png", "broken.png"} <= skipped
    assert all("not a regular file" in message for message in errors.values())


def test_named_special_file_is_an_error_not_a_hang(odd_files):
    files, errors = find_images([odd_files / "fifo.png", odd_files / "zero.png"])
    assert files == [] and len(errors) == 2
    assert all("not a regular file" in message for message in errors.values())
