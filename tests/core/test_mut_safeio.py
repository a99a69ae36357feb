"""The safe reader's guarantees, pinned down so that mutation testing (docs/mutation.md) can tell
a guard that works from one that is only called: the exact cap, a file that grows past the cap
while it is read, a file swapped for a FIFO or removed between the check and the open, the time
limit, and the one-sentence messages each refusal carries (kind, size and cause).

Oracles are the files themselves (sizes made with truncate, /proc files the kernel reports as
size 0), and the sentences the module promises, written out here in full.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading

import pytest

from clipdesk.core.errors import ImageLoadError, LabelError, ModelLoadError
from clipdesk.core.safeio import (
    UnsafeFileError,
    check_regular,
    read_bytes_guarded,
    read_json_or_none,
    read_text_guarded,
)

MB = 1024 * 1024


def sparse(path, size: int):
    """A file of `size` bytes that takes no disk space (never read in these tests)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


# -- the size cap -------------------------------------------------------------------------------
def test_a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(tmp_path):
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"x" * 100)
    assert read_bytes_guarded(exact, "json", max_bytes=100) == b"x" * 100
    exact.write_bytes(b"x" * 101)
    with pytest.raises(UnsafeFileError) as caught:
        read_bytes_guarded(exact, "json", max_bytes=100)
    assert str(caught.value) == (f"{exact}: 101 bytes is larger than the 100 bytes allowed for "
                                 "a JSON file; it was not read.")


def test_each_kind_has_its_own_cap_and_error_type(tmp_path):
    # 20 MB: over the 16 MB for labels, under the 64 MB for JSON.
    big = sparse(tmp_path / "labels.txt", 20 * MB)
    for reader in (check_regular, read_bytes_guarded, read_text_guarded):
        with pytest.raises(LabelError) as caught:
            reader(big, "labels")
        assert str(caught.value) == (f"{big}: 20.0 MB is larger than the 16.0 MB allowed for "
                                     "a labels file; it was not read.")
    assert check_regular(big, "json").st_size == 20 * MB


def test_an_unknown_kind_gets_the_json_cap_and_the_generic_words(tmp_path):
    big = sparse(tmp_path / "odd.bin", 65 * MB)
    with pytest.raises(UnsafeFileError) as caught:
        check_regular(big, "weird")
    assert type(caught.value) is UnsafeFileError
    assert str(caught.value) == (f"{big}: 65.0 MB is larger than the 64.0 MB allowed for "
                                 "a file; it was not read.")
    with pytest.raises(UnsafeFileError, match=r"larger than the 1 bytes allowed for a file;"):
        check_regular(big, "weird", max_bytes=1)
    (tmp_path / "odd.bin").unlink()
    with pytest.raises(UnsafeFileError) as caught:
        check_regular(tmp_path / "odd.bin", "weird")
    assert str(caught.value) == f"{tmp_path / 'odd.bin'}: file not found."


def test_sizes_are_written_in_gb_mb_or_bytes(tmp_path):
    image = sparse(tmp_path / "huge.tif", 2 * 1024 * MB)  # over the 1 GB allowed for an image
    with pytest.raises(ImageLoadError) as caught:
        check_regular(image, "image")
    assert str(caught.value) == (f"{image}: 2.0 GB is larger than the 1.0 GB allowed for "
                                 "a image; it was not read.")
    two_mb = sparse(tmp_path / "two.json", 2 * MB)
    with pytest.raises(UnsafeFileError, match=r"2\.0 MB is larger than the 1\.0 MB allowed"):
        check_regular(two_mb, "json", max_bytes=MB)


def test_max_bytes_overrides_the_kind_cap_in_every_reader(tmp_path):
    small = tmp_path / "small.json"
    small.write_bytes(b'{"a": 1}' + b" " * 92)  # 100 bytes
    with pytest.raises(UnsafeFileError):
        check_regular(small, "json", max_bytes=10)
    with pytest.raises(UnsafeFileError):
        read_text_guarded(small, "json", max_bytes=10)
    assert read_json_or_none(small, max_bytes=10) is None
    assert read_json_or_none(small, max_bytes=100) == {"a": 1}


# -- a file that grows while it is read -----------------------------------------------------------
def test_a_file_larger_than_its_reported_size_is_stopped_at_the_cap():
    """/proc files report size 0 and deliver ~4 KB a read: the cap must count every chunk."""
    whole = read_bytes_guarded("/proc/self/smaps", "text")
    assert len(whole) > 3 * 8192  # the oracle: this file really is bigger than the cap below
    with pytest.raises(UnsafeFileError) as caught:
        read_bytes_guarded("/proc/self/smaps", "text", max_bytes=8192)
    assert str(caught.value) == ("/proc/self/smaps: grew past the 8192 bytes allowed for a text "
                                 "file while it was read; it was not used.")
    with pytest.raises(LabelError, match="grew past the 8192 bytes allowed for a labels file"):
        read_text_guarded("/proc/self/smaps", "labels", max_bytes=8192)


# -- the time limit -------------------------------------------------------------------------------
def test_the_time_limit_stops_a_read_that_is_not_done_in_time(tmp_path):
    data = tmp_path / "labels.txt"
    data.write_text("cat\ndog\n")
    assert read_text_guarded(data, "labels", timeout_s=5) == "cat\ndog\n"
    with pytest.raises(LabelError) as caught:
        read_bytes_guarded(data, "labels", timeout_s=-1)  # already late after the first chunk
    assert str(caught.value) == f"{data}: could not be read within -1 s; it was not used."
    with pytest.raises(ModelLoadError, match="could not be read within -1 s"):
        read_text_guarded(data, "metadata", timeout_s=-1)
    assert read_json_or_none(data, timeout_s=-1) is None


# -- the file changes between the check and the open ----------------------------------------------
@pytest.fixture
def swap_before_open(monkeypatch):
    """Make `os.open` of one path see a different file than the check before it did."""
    real_open = os.open

    def install(path, swap):
        def patched(target, flags, *args, **kwargs):
            if os.fspath(target) == os.fspath(path):
                swap()
            return real_open(target, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", patched)

    return install


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path, swap_before_open):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG")

    def to_fifo():
        path.unlink()
        os.mkfifo(path)

    swap_before_open(path, to_fifo)
    outcome: list = []
    reader = threading.Thread(target=lambda: outcome.append(_call(read_bytes_guarded, path, "image")),
                              daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): give it a writer so the thread can end
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("opening a FIFO swapped in after the check blocked")
    error = outcome[0]
    assert isinstance(error, ImageLoadError), error
    assert str(error) == f"{path}: is a pipe (FIFO), not a regular file; it was not read."


def test_a_file_removed_after_the_check_is_one_sentence_of_its_kind(tmp_path, swap_before_open):
    path = tmp_path / "labels.txt"
    path.write_text("cat\n")
    swap_before_open(path, path.unlink)
    with pytest.raises(LabelError) as caught:
        read_text_guarded(path, "labels")
    assert str(caught.value) == f"{path}: labels file not found."
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_an_io_error_while_reading_names_the_file_and_keeps_the_cause(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    path.write_text("{}")

    def failing_read(fd, size):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(ModelLoadError) as caught:
        read_bytes_guarded(path, "metadata")
    assert str(caught.value) == f"{path}: could not be read (Input/output error)."
    assert isinstance(caught.value.__cause__, OSError)


# -- what each refusal says ---------------------------------------------------------------------
def test_each_kind_of_special_file_is_named(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    link = tmp_path / "null.txt"
    link.symlink_to("/dev/null")
    sock_path = tmp_path / "sock.txt"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        expected = {fifo: "is a pipe (FIFO)", folder: "is a folder", link: "is a link to a device",
                    sock_path: "is a socket"}
        for path, words in expected.items():
            with pytest.raises(LabelError) as caught:
                read_text_guarded(path, "labels")
            assert str(caught.value) == f"{path}: {words}, not a regular file; it was not read."
    finally:
        server.close()


def test_missing_files_and_link_loops_and_other_errors_read_as_one_sentence(tmp_path):
    missing = tmp_path / "gone.safetensors"
    with pytest.raises(ModelLoadError) as caught:
        check_regular(missing, "checkpoint")
    assert str(caught.value) == f"{missing}: checkpoint not found."
    assert isinstance(caught.value.__cause__, FileNotFoundError)

    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(UnsafeFileError) as caught:
        check_regular(loop, "json")
    assert str(caught.value) == f"{loop}: too many levels of symbolic links."

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    below_a_file = plain / "child.json"
    with pytest.raises(UnsafeFileError) as caught:
        check_regular(below_a_file, "settings")
    assert str(caught.value) == f"{below_a_file}: could not be read (Not a directory)."
    assert caught.value.__cause__.errno == errno.ENOTDIR


def test_text_that_is_not_utf8_is_one_sentence_with_the_byte(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"cat\xff\n")
    with pytest.raises(LabelError) as caught:
        read_text_guarded(path, "labels")
    assert str(caught.value) == f"{path}: not valid utf-8 text (byte 3); save it as UTF-8."
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)
    assert read_text_guarded(path, "labels", encoding="latin-1") == "cat\xff\n"


# -- read_json_or_none: anything wrong means "no record" -------------------------------------------
def test_read_json_or_none_reads_what_the_program_wrote_and_nothing_else(tmp_path):
    record = tmp_path / "state.json"
    record.write_bytes(b"\xef\xbb\xbf" + json.dumps({"shards": [1, 2]}).encode())  # with a BOM
    assert read_json_or_none(record) == {"shards": [1, 2]}
    record.write_text("{not json")
    assert read_json_or_none(record) is None
    record.write_text("[" * 100_000 + "]" * 100_000)  # nested too deeply for the parser
    assert read_json_or_none(record) is None
    assert read_json_or_none(tmp_path / "missing.json") is None
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert read_json_or_none(fifo) is None


def _call(function, *args):
    try:
        return function(*args)
    except Exception as error:  # the test inspects what was raised
        return error
