"""Content identity and the cache's rows, checked independently of the hash under test
(docs/mutation.md): two contents that differ anywhere — one byte in the middle of a large file,
the length alone — must never share a key, and a key is the documented SHA-256 prefix computed
here with hashlib itself. The rows are checked against the vectors put in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import struct
import warnings

import numpy as np
import pytest

from clipdesk.core.cache import EmbeddingCache, NullCache, content_digest

SIZE = 3 * 1024 * 1024  # past any "first and last few KiB" shortcut


@pytest.fixture
def photo_bytes():
    return np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def test_the_key_is_the_first_160_bits_of_sha256(photo_bytes):
    assert content_digest(photo_bytes) == hashlib.sha256(photo_bytes).hexdigest()[:40]
    assert content_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4"  # SHA-256 of nothing


@pytest.mark.parametrize("at", [0, 63, 64, 4095, SIZE // 2, SIZE - 4097, SIZE - 1])
def test_one_changed_byte_anywhere_is_another_key(photo_bytes, at):
    assert content_digest(flipped(photo_bytes, at)) != content_digest(photo_bytes)


def test_the_same_bytes_with_one_more_at_the_end_are_another_key(photo_bytes):
    assert content_digest(photo_bytes + b"\0") != content_digest(photo_bytes)
    assert content_digest(photo_bytes[:-1]) != content_digest(photo_bytes)
    assert content_digest(bytes(photo_bytes)) == content_digest(photo_bytes)


def vector(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def test_rows_come_back_as_put_per_model_and_per_table(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    a, b = content_digest(b"a"), content_digest(b"b")
    cache.put_images("model-1", {a: vector(1), b: vector(2)})
    cache.put_images("model-2", {a: vector(3)})
    cache.put_texts("model-1", {"a photo of a cat": vector(4)})
    got = cache.get_images("model-1", [a, b, content_digest(b"c")])
    assert set(got) == {a, b}
    np.testing.assert_array_equal(got[a], vector(1))
    np.testing.assert_array_equal(got[b], vector(2))
    np.testing.assert_array_equal(cache.get_images("model-2", [a, b])[a], vector(3))
    assert list(cache.get_images("model-2", [a, b])) == [a]
    assert cache.get_texts("model-1", [a]) == {}  # an image key is not a text key
    np.testing.assert_array_equal(cache.get_texts("model-1", ["a photo of a cat"])["a photo of a cat"],
                                  vector(4))
    info = cache.info()
    assert info.images == {"model-1": 2, "model-2": 1} and info.texts == {"model-1": 1}
    assert info.size_bytes > 0 and info.note == ""
    cache.close()


def test_a_later_put_replaces_the_row_and_survives_reopening(tmp_path):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_images("m", {"k": vector(1)})
    cache.put_images("m", {"k": vector(2)})
    cache.close()
    again = EmbeddingCache(path)
    np.testing.assert_array_equal(again.get_images("m", ["k"])["k"], vector(2))
    assert again.info().images == {"m": 1}
    again.close()


def test_more_keys_than_sqlite_binds_at_once_all_come_back(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    items = {f"key-{i:04d}": np.full(4, i, np.float32) for i in range(1201)}
    cache.put_images("m", items)
    got = cache.get_images("m", list(items))
    assert len(got) == 1201
    assert all(float(got[key][0]) == i for i, key in enumerate(items))
    cache.close()


def test_keys_that_are_not_valid_unicode_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    odd = "label-\udcff"  # a name with an undecodable byte, as os.fsdecode gives it
    cache.put_texts("model-\udcfe", {odd: vector(5), "plain": vector(6)})
    got = cache.get_texts("model-\udcfe", [odd, "plain"])
    assert set(got) == {odd, "plain"}
    np.testing.assert_array_equal(got[odd], vector(5))
    cache.close()
    with sqlite3.connect(tmp_path / "cache.sqlite3") as db:  # SQLite text must be valid UTF-8
        rows = list(db.execute("SELECT model, key FROM texts"))
    assert len(rows) == 2 and ("model-\\xed\\xb3\\xbe", "plain") in rows
    for model, key in rows:
        model.encode("utf-8"), key.encode("utf-8")


def test_non_finite_and_empty_vectors_are_misses_not_rows(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    bad = vector(7)
    bad[3] = np.inf
    cache.put_images("m", {"inf": bad, "good": vector(8)})
    assert list(cache.get_images("m", ["inf", "good"])) == ["good"]
    assert cache.info().images == {"m": 1}
    cache.put_images("m", {})
    assert cache.info().images == {"m": 1}
    cache.close()


def test_clear_empties_the_cache_but_keeps_it_working(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    cache.put_images("m", {"k": vector(1)})
    cache.put_texts("m", {"t": vector(2)})
    cache.clear()
    assert cache.get_images("m", ["k"]) == {} and cache.get_texts("m", ["t"]) == {}
    assert cache.info().images == {} and cache.info().texts == {}
    cache.put_images("m", {"k": vector(3)})
    np.testing.assert_array_equal(cache.get_images("m", ["k"])["k"], vector(3))
    cache.close()
    reopened = EmbeddingCache(tmp_path / "cache.sqlite3")  # what was put after clear is on disk
    np.testing.assert_array_equal(reopened.get_images("m", ["k"])["k"], vector(3))
    reopened.close()


def test_the_null_cache_remembers_nothing(tmp_path):
    cache = NullCache()
    cache.put_images("m", {"k": vector(1)})
    assert cache.get_images("m", ["k"]) == {}
    info = cache.info()
    assert (info.images, info.texts, info.size_bytes) == ({}, {}, 0)
    assert not list(tmp_path.iterdir())


def test_a_cache_that_cannot_open_says_why_in_its_info(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = EmbeddingCache(blocker / "cache.sqlite3")
    info = cache.info()
    assert info.path == blocker / "cache.sqlite3" and info.size_bytes == 0
    assert (info.images, info.texts) == ({}, {}) and info.note == cache.disabled != ""
    cache.put_images("m", {"k": vector(1)})
    assert cache.get_images("m", ["k"]) == {}


# -- rows another writer damaged, vectors of other dtypes, a table gone mid-run -----------------
def stored_vectors(path) -> dict[str, bytes]:
    """The image rows on disk, read with sqlite3 itself (an independent reader)."""
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT digest, vector FROM images"))


def test_a_damaged_row_is_a_miss_and_the_cache_stays_on(tmp_path):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_images("m", {"good": vector(1)})
    with sqlite3.connect(path) as db:  # another writer's rows: not whole float32s, or not bytes
        db.executemany("INSERT INTO images VALUES ('m', ?, ?)",
                       [("torn", b"\0" * 5), ("text", "not a vector"), ("int", 7), ("real", 2.5)])
    for _ in range(2):  # the second read shows the cache was not turned off by the first
        got = cache.get_images("m", ["good", "torn", "text", "int", "real"])
        assert list(got) == ["good"] and cache.disabled == ""
        np.testing.assert_array_equal(got["good"], vector(1))
    cache.close()


def test_vectors_of_other_types_are_stored_as_float32(tmp_path):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_images("m", {"f64": np.array([0.5, -1.25, 3.0]), "list": [1.0, 2.0]})
    got = cache.get_images("m", ["f64", "list"])
    assert got["f64"].dtype == np.float32 and got["f64"].tolist() == [0.5, -1.25, 3.0]
    assert got["list"].tolist() == [1.0, 2.0]
    on_disk = stored_vectors(path)
    assert struct.unpack("<3f", on_disk["f64"]) == (0.5, -1.25, 3.0)
    assert struct.unpack("<2f", on_disk["list"]) == (1.0, 2.0)
    cache.close()


def test_a_value_too_large_for_float32_is_not_stored(tmp_path):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "overflow encountered in cast"
        cache.put_images("m", {"huge": np.array([1e39, 0.0]), "ok": np.array([1e38, 0.0])})
    assert set(stored_vectors(path)) == {"ok"}  # 1e39 is inf in float32: never a row
    assert list(cache.get_images("m", ["huge", "ok"])) == ["ok"]
    cache.close()


def files_size(path) -> int:
    return sum(os.stat(f"{path}{suffix}").st_size for suffix in ("", "-wal", "-shm")
               if os.path.exists(f"{path}{suffix}"))


def test_a_table_gone_mid_run_turns_the_cache_off_and_info_says_why(tmp_path, caplog):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_images("m", {"k": vector(1)})
    cache.put_texts("m", {"t": vector(2)})
    with sqlite3.connect(path) as db:  # another program (or an older clipdesk) drops a table
        db.execute("DROP TABLE texts")
    size = files_size(path)
    info = cache.info()  # the images count works, the texts count fails
    assert info.path == path and info.size_bytes == size > 0
    assert info.images == {} and info.texts == {}
    assert "no such table: texts" in info.note and info.note == cache.disabled
    assert sum("no such table" in r.getMessage() for r in caplog.records) == 1
    # Off for the rest of the run: no reads, and no writes (the images table would take them).
    assert cache.get_images("m", ["k"]) == {}
    cache.put_images("m", {"later": vector(3)})
    assert set(stored_vectors(path)) == {"k"}
    assert cache.info().note == info.note
    cache.close()


def test_many_keys_are_looked_up_in_batches_not_one_statement_each(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    items = {f"key-{i:04d}": np.full(4, i, np.float32) for i in range(1201)}
    cache.put_images("m", items)
    cache.close()  # the next read opens a fresh connection: the traced one below
    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", traced)
    assert len(cache.get_images("m", list(items))) == 1201
    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    # Up to 500 keys a statement (with the model, under SQLite's old limit of 999 binds).
    assert 1 < len(selects) <= 3
    cache.close()


def test_a_cache_that_cannot_be_emptied_in_place_is_deleted_with_one_note(tmp_path, caplog):
    path = tmp_path / "cache.sqlite3"
    cache = EmbeddingCache(path)
    cache.put_images("m", {"k": vector(1)})
    (tmp_path / "cache.sqlite3.broken-20260101-000000-1").write_bytes(b"an old broken copy")
    with sqlite3.connect(path) as db:  # another program drops a table: DELETE FROM images fails
        db.execute("DROP TABLE images")
    with caplog.at_level(logging.WARNING, logger="clipdesk.core.cache"):
        cache.clear()
    assert [record.getMessage() for record in caplog.records] == [
        "The embedding cache could not be emptied in place (no such table: images); its files "
        "are deleted instead."]
    assert sorted(tmp_path.iterdir()) == []  # the file, its WAL/SHM and the broken copy
