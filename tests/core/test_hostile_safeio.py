"""Hostile files: every read goes through one guard (regular file, size cap, time limit)."""

from __future__ import annotations

import errno
import os
import stat
import time

import pytest
from synth_images import save_image

from clipdesk.core import safeio
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


# -- races and slow sources: the guards that act after the first check ---------------------------
# Each test makes the hostile event happen at one exact moment by wrapping the call just before it
# (the file really grows, is really swapped, the read is really slow); a guard removed from
# `read_bytes_guarded` lets the read succeed, and the test fails.


def test_file_growing_after_the_check_is_cut_at_the_cap(tmp_path, monkeypatch):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\n" * 10)  # 40 bytes: passes the 100-byte cap when checked
    real_fstat = os.fstat
    grown = []

    def fstat_then_grow(fd):
        info = real_fstat(fd)
        if not grown:  # a writer appends right after the opened file was checked
            with open(path, "ab") as handle:
                handle.write(b"dog\n" * 5000)
            grown.append(True)
        return info

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    with pytest.raises(LabelError, match="grew past") as caught:
        read_bytes_guarded(path, "labels", max_bytes=100)
    assert grown and path.stat().st_size == 40 + 20000
    assert "labels.txt" in str(caught.value) and "\n" not in str(caught.value)


def test_file_swapped_for_a_fifo_after_the_check_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG not really")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_check = safeio.check_regular

    def check_then_swap(*args, **kwargs):
        info = real_check(*args, **kwargs)
        os.replace(fifo, path)  # between the check and the open, a FIFO takes the file's name
        return info

    monkeypatch.setattr(safeio, "check_regular", check_then_swap)
    with pytest.raises(ImageLoadError, match="pipe") as caught:
        read_bytes_guarded(path, "image")
    assert stat.S_ISFIFO(os.stat(path).st_mode)  # the swap really happened
    assert "not a regular file" in str(caught.value)


def test_file_swapped_for_a_bigger_one_after_the_check_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\n")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 5000)
    real_check = safeio.check_regular

    def check_then_swap(*args, **kwargs):
        info = real_check(*args, **kwargs)
        os.replace(big, path)
        return info

    monkeypatch.setattr(safeio, "check_regular", check_then_swap)
    with pytest.raises(LabelError, match="larger than"):  # refused before a byte is read
        read_bytes_guarded(path, "labels", max_bytes=100)


def slow_reads(monkeypatch, path, stalls: int, bytes_per_read: int):
    """Make reads of `path` slow for real: `stalls` reads with no data yet (as a pipe or a hung
    network share gives), then `bytes_per_read` bytes at a time, each after 20 ms."""
    real_read, real_fstat = os.read, os.fstat
    inode = os.stat(path).st_ino
    calls = {"stalled": 0, "reads": 0}

    def read(fd, size):
        if real_fstat(fd).st_ino != inode:
            return real_read(fd, size)
        time.sleep(0.02)
        if calls["stalled"] < stalls:
            calls["stalled"] += 1
            raise BlockingIOError(errno.EAGAIN, "no data yet")
        calls["reads"] += 1
        return real_read(fd, min(size, bytes_per_read))

    monkeypatch.setattr(os, "read", read)
    return calls


def test_a_source_that_never_delivers_hits_the_time_limit(tmp_path, monkeypatch):
    path = tmp_path / "photo.png"
    path.write_bytes(b"x" * 50)
    calls = slow_reads(monkeypatch, path, stalls=150, bytes_per_read=50)  # ~3 s of nothing
    with pytest.raises(ImageLoadError, match="within 0.2 s") as caught:
        read_bytes_guarded(path, "image", timeout_s=0.2)
    assert calls["reads"] == 0 and calls["stalled"] < 150  # gave up before any data came
    assert "photo.png" in str(caught.value)


def test_a_trickling_source_hits_the_time_limit(tmp_path, monkeypatch):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"c" * 150)
    calls = slow_reads(monkeypatch, path, stalls=0, bytes_per_read=1)  # 150 reads, ~3 s in all
    with pytest.raises(LabelError, match="within 0.2 s"):
        read_bytes_guarded(path, "labels", timeout_s=0.2)
    assert 0 < calls["reads"] < 150


def test_a_slow_but_timely_source_is_read_whole(tmp_path, monkeypatch):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\n" * 3)
    calls = slow_reads(monkeypatch, path, stalls=3, bytes_per_read=4)
    assert read_bytes_guarded(path, "labels", timeout_s=30) == b"cat\n" * 3
    assert calls == {"stalled": 3, "reads": 4}  # three chunks and the end of file
