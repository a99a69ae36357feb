"""The cache's record of files already read: an unchanged file is found by its stat, not re-read.

Re-opening or re-searching a folder used to read and hash every file again only to look its
embedding up (20,000 phone photos: ~60 GB of reads). Digests here are checked against SHA-256
computed in the test, reads are counted at `read_bytes`, and a file counts as unchanged only when
its size, both times, inode and device are.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pytest
from synth_images import save_image

import clipdesk.core.cache as cache_module
import clipdesk.core.embed as embed_module
from clipdesk.core.cache import file_stamp
from clipdesk.core.jobs import run_job


@pytest.fixture
def reads(monkeypatch):
    """Paths passed to read_bytes during embedding (decode threads: any order); the racy window closed (files made
    by a test are always seconds old at most: without this, none would ever be remembered)."""
    seen = []
    real = embed_module.read_bytes
    monkeypatch.setattr(embed_module, "read_bytes", lambda path, *a, **k: seen.append(path) or real(path, *a, **k))
    monkeypatch.setattr(cache_module, "RACY_S", 0.0)
    return seen


def embed(engine, paths):
    return run_job(engine.embed_job(paths, batch_size=2))


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:40]


def test_unchanged_files_are_not_read_again_and_clear_forgets_them(tiny_engine, make_images, reads):
    paths = make_images(5)
    cold = embed(tiny_engine, paths)
    assert sorted(reads) == paths and cold.encoded == 5
    reads.clear()
    warm = embed(tiny_engine, paths)
    assert reads == [] and warm.encoded == 0
    np.testing.assert_array_equal(warm.features, cold.features)
    assert warm.digests == [sha(p) for p in paths] and warm.paths == paths
    tiny_engine.cache.clear()
    assert embed(tiny_engine, paths).encoded == 5 and sorted(reads) == paths


def test_an_edited_file_is_read_and_encoded_again_a_touched_one_read_only(tiny_engine, make_images, reads):
    paths = make_images(3)
    cold = embed(tiny_engine, paths)
    save_image(paths[0], seed=99)  # new content in place
    later = time.time() + 5
    os.utime(paths[0], (later, later))  # a distinct mtime: the same-tick case is the racy rule's
    os.utime(paths[1], (later, later))  # touched: same bytes, new time
    reads.clear()
    warm = embed(tiny_engine, paths)
    assert sorted(reads) == sorted(paths[:2]) and warm.encoded == 1
    assert warm.digests == [sha(p) for p in paths]
    assert not np.allclose(warm.features[0], cold.features[0])
    np.testing.assert_array_equal(warm.features[1:], cold.features[1:])


def test_a_file_replaced_by_another_of_the_same_size_and_times_is_read(tiny_engine, make_images, reads):
    """Same size and mtime (a copy with preserved times, `cp -p` or a sync tool) but another inode
    (and change time): the record does not stand."""
    first, second = make_images(2, suffix=".bmp")  # uncompressed: two pictures, the same byte length
    assert first.stat().st_size == second.stat().st_size and first.read_bytes() != second.read_bytes()
    embed(tiny_engine, [first])
    replacement = first.with_suffix(".new")
    replacement.write_bytes(second.read_bytes())
    stat = first.stat()
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, first)
    reads.clear()
    result = embed(tiny_engine, [first])
    assert reads == [first] and result.digests == [sha(second)]


def test_file_stamp_names_every_field_and_leaves_racy_files_out(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 1234)
    info = os.stat(path)
    newest = max(info.st_mtime_ns, info.st_ctime_ns) / 1e9
    assert file_stamp(path, now=newest + 1.0) is None  # changed within RACY_S (2 s): not remembered
    expected = f"1234:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}:{info.st_dev}"
    assert file_stamp(path, now=newest + 3.0) == expected
    assert file_stamp(tmp_path, now=newest + 3.0) is None  # a folder
    assert file_stamp(tmp_path / "missing", now=newest + 3.0) is None


def test_no_cache_reads_every_time(tiny_engine_nocache, make_images, reads):
    paths = make_images(2)
    embed(tiny_engine_nocache, paths)
    embed(tiny_engine_nocache, paths)
    assert sorted(reads) == sorted(paths + paths)
