"""A broken embedding cache never fails a run: it is moved aside and rebuilt, or turned off."""

from __future__ import annotations

import logging
import os
import sqlite3

import numpy as np
import pytest

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import EmbeddingCache, NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job

VECTOR = np.arange(8, dtype=np.float32) / 10


def notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "clipdesk.core.cache"]


def works(cache: EmbeddingCache) -> bool:
    cache.put_images("m", {"d": VECTOR})
    found = cache.get_images("m", ["d"])
    return "d" in found and np.array_equal(found["d"], VECTOR)


def aside(path) -> list:
    return sorted(path.parent.glob(path.name + ".broken-*"))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "cache" / "embeddings.sqlite3"


def test_garbage_file_is_moved_aside_and_rebuilt(path, caplog):
    path.parent.mkdir()
    path.write_bytes(b"this is not sqlite" * 500)
    cache = EmbeddingCache(path)
    assert not cache.disabled and works(cache)
    (moved,) = aside(path)
    assert moved.read_bytes().startswith(b"this is not sqlite")  # kept for a post-mortem, not lost
    (message,) = notes(caplog)
    assert "moved to" in message and "rebuilt" in message and "\n" not in message


def test_old_schema_is_moved_aside_not_reported_per_image(path, caplog):
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE images (model TEXT, digest TEXT, vec BLOB)")
    cache = EmbeddingCache(path)
    assert works(cache) and len(aside(path)) == 1
    assert "older layout" in notes(caplog)[0]


@pytest.mark.parametrize("make", [os.mkdir, os.mkfifo, lambda p: os.symlink("/dev/zero", p)])
def test_something_else_in_its_place_is_moved_aside(path, make, caplog):
    path.parent.mkdir()
    make(path)
    cache = EmbeddingCache(path)
    assert works(cache) and path.is_file() and len(aside(path)) == 1


def test_cache_folder_that_is_a_file_turns_the_cache_off(tmp_path, caplog):
    (tmp_path / "cache").write_text("not a folder")
    cache = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite3")
    assert cache.disabled and not works(cache)
    assert cache.info().note and cache.info().images == {}
    cache.clear()  # never raises
    assert len(notes(caplog)) == 1 and "continuing without it" in notes(caplog)[0]


def test_unopenable_file_turns_the_cache_off(tmp_path, monkeypatch, caplog):
    assert works(EmbeddingCache(tmp_path / "new" / "x" / "embeddings.sqlite3"))  # folders made as needed
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK):  # root ignores permissions: give sqlite's answer
            def refuse(*args, **kwargs):
                raise sqlite3.OperationalError("unable to open database file")

            monkeypatch.setattr(sqlite3, "connect", refuse)
        cache = EmbeddingCache(tmp_path / "ro" / "embeddings.sqlite3")
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert cache.disabled and not works(cache)
    assert "continuing without it" in notes(caplog)[-1]


def test_full_disk_turns_writes_off_with_one_note(path, caplog):
    cache = EmbeddingCache(path)
    cache._connect().execute("PRAGMA max_page_count=4")  # SQLite's own "database or disk is full"
    cache.put_images("m", {str(i): np.ones(512, np.float32) for i in range(50)})
    assert "full" in cache.disabled
    cache.put_images("m", {"x": VECTOR})  # no second note, no exception
    assert cache.get_images("m", ["x"]) == {}
    assert len(notes(caplog)) == 1


def test_lock_held_by_another_process_turns_the_cache_off(path, monkeypatch, caplog):
    monkeypatch.setenv("CLIPDESK_CACHE_TIMEOUT", "0.2")
    EmbeddingCache(path).close()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a `sqlite3` shell left open
    try:
        cache = EmbeddingCache(path)
        cache.put_images("m", {"d": VECTOR})
        assert "locked" in cache.disabled
        assert "another process" in notes(caplog)[0]
    finally:
        holder.rollback()
        holder.close()


def test_damaged_pages_found_mid_run_are_moved_aside(path, caplog):
    cache = EmbeddingCache(path)
    cache.put_images("m", {f"{i:04d}": np.full(256, i, np.float32) for i in range(400)})
    cache.close()
    data = bytearray(path.read_bytes())
    with sqlite3.connect(path) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data[2 * page:] = b"\xa5" * (len(data) - 2 * page)  # header and schema intact, rows destroyed
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    cache = EmbeddingCache(path)
    assert cache.get_images("m", ["0001", "0300"]) == {}  # a miss, not an exception
    assert cache.disabled and len(aside(path)) == 1
    assert works(EmbeddingCache(path))  # the next run starts afresh


def test_clear_always_works_and_drops_broken_copies(path):
    path.parent.mkdir()
    path.write_bytes(b"garbage" * 100)
    cache = EmbeddingCache(path)
    assert works(cache) and aside(path)
    cache.clear()
    assert aside(path) == [] and cache.get_images("m", ["d"]) == {}
    NullCache().clear()


def test_nan_vectors_are_never_stored_or_returned(path):
    cache = EmbeddingCache(path)
    cache.put_images("m", {"nan": np.full(4, np.nan, np.float32), "ok": VECTOR})
    assert list(cache.get_images("m", ["nan", "ok"])) == ["ok"]
    with sqlite3.connect(path) as db:  # a row damaged by someone else is a miss too
        db.execute("INSERT INTO images VALUES ('m', 'bad', ?)", [np.full(4, np.inf, np.float32).tobytes()])
    assert cache.get_images("m", ["bad"]) == {}


def test_run_with_broken_cache_gives_the_no_cache_embeddings(tiny_loaded, make_images, path, caplog):
    caplog.set_level(logging.WARNING)
    images = make_images(3)
    path.parent.mkdir()
    path.write_bytes(b"\x00garbage" * 64)
    broken = run_job(Engine(TorchEncoder(tiny_loaded), EmbeddingCache(path)).embed_job(images))
    plain = run_job(Engine(TorchEncoder(tiny_loaded), NullCache()).embed_job(images))
    assert broken.errors == {} and broken.paths == images
    np.testing.assert_allclose(broken.features, plain.features, atol=1e-6)
    again = run_job(Engine(TorchEncoder(tiny_loaded), EmbeddingCache(path)).embed_job(images))
    assert again.encoded == 0  # the rebuilt cache serves the next run


def test_several_openers_of_one_garbage_cache_all_end_up_working(path):
    from concurrent.futures import ThreadPoolExecutor

    path.parent.mkdir()
    for _ in range(10):  # the race (one opener renaming or rebuilding under another) is timing-bound
        for stale in path.parent.iterdir():
            stale.unlink()
        path.write_bytes(b"garbage" * 1000)
        with ThreadPoolExecutor(4) as pool:
            caches = list(pool.map(lambda _: EmbeddingCache(path), range(4)))
        assert [cache.disabled for cache in caches] == [""] * 4
        assert len(aside(path)) == 1  # moved once: a second mover never takes the rebuilt cache
        assert all(works(cache) for cache in caches)
        for cache in caches:
            cache.close()
    assert works(EmbeddingCache(path)) and path.is_file()
