"""The embedding cache: keyed by model identity + content, persistent, crash- and process-safe,
and the per-label text cache behind `Engine.label_set`."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image
from synth_images import save_image, synth_array

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import EmbeddingCache, NullCache, content_digest
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.paths import cache_dir


def embed(engine, paths, **kwargs):
    return run_job(engine.embed_job(paths, **kwargs))


def test_second_run_is_all_hits_with_equal_vectors(tiny_engine, make_images):
    paths = make_images(5)
    cold = embed(tiny_engine, paths, batch_size=2)
    calls = tiny_engine.encoder.encoder_calls
    warm = embed(tiny_engine, paths, batch_size=2)
    assert (cold.encoded, warm.encoded) == (5, 0)
    assert tiny_engine.encoder.encoder_calls == calls  # the encoder was not called at all
    np.testing.assert_array_equal(warm.features, cold.features)
    assert warm.paths == cold.paths == paths
    assert warm.digests == [content_digest(p.read_bytes()) for p in paths]


def test_renamed_file_hits_edited_file_misses(tiny_engine, make_images, tmp_path):
    paths = make_images(3)
    cold = embed(tiny_engine, paths)
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    paths[0].rename(moved)
    save_image(paths[1], seed=99)  # edited in place: same name, new content
    warm = embed(tiny_engine, [moved, paths[1], paths[2]])
    assert warm.encoded == 1
    np.testing.assert_array_equal(warm.features[0], cold.features[0])
    np.testing.assert_array_equal(warm.features[2], cold.features[2])
    assert not np.allclose(warm.features[1], cold.features[1])


def test_duplicate_content_in_one_run(tiny_engine, make_images, tmp_path):
    (path,) = make_images(1)
    copy = tmp_path / "copy.png"
    copy.write_bytes(path.read_bytes())
    result = embed(tiny_engine, [path, copy])
    assert result.paths == [path, copy]
    np.testing.assert_allclose(result.features[0], result.features[1], atol=1e-6)


def test_cache_persists_across_engines(tiny_loaded, make_images):
    paths = make_images(3)
    first = Engine(TorchEncoder(tiny_loaded), EmbeddingCache())  # default: the user cache folder
    assert first.cache.path.parent == cache_dir()
    cold = embed(first, paths)
    first.cache.close()
    second = Engine(TorchEncoder(tiny_loaded), EmbeddingCache())
    warm = embed(second, paths)
    assert warm.encoded == 0
    np.testing.assert_array_equal(warm.features, cold.features)


def test_cache_is_keyed_by_model_identity(tiny_loaded, make_images, tmp_path):
    paths = make_images(2)
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    encoder = TorchEncoder(tiny_loaded)
    embed(Engine(encoder, cache), paths)
    other = TorchEncoder(tiny_loaded)
    other.cache_identity = "clipdesk-tiny/file-0123"  # e.g. a fine-tuned checkpoint
    assert embed(Engine(other, cache), paths).encoded == 2
    assert embed(Engine(encoder, cache), paths).encoded == 0
    info = cache.info()
    assert info.images == {encoder.cache_identity: 2, "clipdesk-tiny/file-0123": 2}


def test_no_cache_encodes_every_time(tiny_engine_nocache, make_images):
    paths = make_images(3)
    first = embed(tiny_engine_nocache, paths)
    second = embed(tiny_engine_nocache, paths)
    assert first.encoded == second.encoded == 3
    np.testing.assert_allclose(first.features, second.features, atol=1e-6)
    assert NullCache().info().images == {}


def test_info_and_clear(tiny_engine, make_images):
    paths = make_images(4)
    embed(tiny_engine, paths)
    tiny_engine.label_set(["cat", "dog"])
    info = tiny_engine.cache.info()
    identity = tiny_engine.encoder.cache_identity
    assert info.images == {identity: 4} and info.texts == {identity: 2}
    assert info.size_bytes > 0 and info.path == tiny_engine.cache.path
    tiny_engine.cache.clear()
    assert tiny_engine.cache.info().images == {}
    fresh = Engine(tiny_engine.encoder, tiny_engine.cache)
    assert embed(fresh, paths).encoded == 4


def test_get_many_keys_beyond_sqlite_parameter_limit(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    vectors = {f"d{i}": np.full(4, i, np.float32) for i in range(1200)}
    cache.put_images("m", vectors)
    found = cache.get_images("m", list(vectors) + ["absent"])
    assert len(found) == 1200
    np.testing.assert_array_equal(found["d1100"], np.full(4, 1100, np.float32))


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from clipdesk.core.cache import EmbeddingCache
    path, name = sys.argv[1], sys.argv[2]
    cache = EmbeddingCache(path)
    for batch in range(60):
        cache.put_images("m", {f"{name}-{batch}-{i}": np.full(8, batch, np.float32) for i in range(10)})
        cache.get_images("m", [f"{name}-{batch}-0"])
    print("ok")
""")


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "shared.sqlite3"
    EmbeddingCache(path).close()  # schema exists before both start, as after a first run
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    cache = EmbeddingCache(path)
    assert cache.info().images == {"m": 2 * 60 * 10}
    assert cache.get_images("m", ["b-59-9"])["b-59-9"][0] == 59


CRASHER = textwrap.dedent("""
    import os, sys
    import numpy as np
    from clipdesk.core.cache import EmbeddingCache
    cache = EmbeddingCache(sys.argv[1])
    cache.put_images("m", {"kept": np.ones(8, np.float32)})
    db = cache._connect()
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)",
                   [("m", f"lost{i}", np.zeros(8, np.float32).tobytes()) for i in range(100)])
    os._exit(1)  # the process dies mid-transaction, like a crash or a kill -9
""")


def test_crash_mid_write_leaves_a_usable_cache(tmp_path):
    path = tmp_path / "c.sqlite3"
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 1
    cache = EmbeddingCache(path)
    assert cache.info().images == {"m": 1}
    cache.put_images("m", {"after": np.ones(8, np.float32)})
    assert set(cache.get_images("m", ["kept", "after", "lost0"])) == {"kept", "after"}


# -- label text cache ---------------------------------------------------------------------------


def test_editing_one_label_reencodes_only_that_label(tiny_engine):
    first = tiny_engine.label_set(["cat", "dog", "car"])
    assert tiny_engine.text_encodes == 3
    second = tiny_engine.label_set(["cat", "dog", "truck"])
    assert tiny_engine.text_encodes == 4
    np.testing.assert_array_equal(second.weights[:2], first.weights[:2])
    tiny_engine.label_set(["truck", "cat"])  # reordering and removing: nothing new
    assert tiny_engine.text_encodes == 4


def test_text_cache_persists_and_depends_on_templates(tiny_engine):
    tiny_engine.label_set(["cat", "dog"], "photo")
    again = Engine(tiny_engine.encoder, tiny_engine.cache)  # a new session, same cache file
    weights = again.label_set(["cat", "dog"], "photo").weights
    assert again.text_encodes == 0
    ensemble = again.label_set(["cat", "dog"], "ensemble").weights
    assert again.text_encodes == 2
    assert not np.allclose(weights, ensemble)


def test_text_cache_keyed_by_synonyms(tiny_engine):
    tiny_engine.label_set(["car"])
    tiny_engine.label_set(["car | automobile"])
    assert tiny_engine.text_encodes == 2


@pytest.mark.parametrize("cache_kind", ["null", "sqlite"])
def test_label_vectors_same_with_or_without_cache(tiny_loaded, tmp_path, cache_kind):
    cache = NullCache() if cache_kind == "null" else EmbeddingCache(tmp_path / "c.sqlite3")
    engine = Engine(TorchEncoder(tiny_loaded), cache)
    reference = Engine(TorchEncoder(tiny_loaded), NullCache()).label_set(["cat", "dog"]).weights
    engine.label_set(["cat", "dog"])
    if cache_kind == "sqlite":
        engine = Engine(engine.encoder, cache)  # read back from disk
    np.testing.assert_allclose(engine.label_set(["cat", "dog"]).weights, reference, atol=1e-6)


# -- content identity: the whole file, not a sample of it ----------------------------------------


def expected_digest(path) -> str:
    """The documented identity, computed here independently: SHA-256 of every byte of the file,
    hex, first 160 bits (40 hex digits)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:40]


def save_bmp_with_middle(path, middle_value: int):
    """A 128×128 BMP (uncompressed, ~48 KiB) whose rows 32..95 are a flat grey of
    `middle_value`: two such files share their first and last 4 KiB, their length and their
    header, and differ only in the middle of the file."""
    array = synth_array(7, 128, 128)
    array[32:96] = middle_value
    Image.fromarray(array).save(path, format="BMP")
    return path


def test_digest_is_sha256_of_the_whole_file(tiny_engine, make_images):
    paths = make_images(3)
    result = embed(tiny_engine, paths)
    assert result.digests == [expected_digest(p) for p in paths]
    assert all(len(d) == 40 for d in result.digests)


def test_files_differing_only_in_the_middle_are_different_entries(tiny_engine, tmp_path):
    dark = save_bmp_with_middle(tmp_path / "dark.bmp", 10)
    light = save_bmp_with_middle(tmp_path / "light.bmp", 245)
    a, b = dark.read_bytes(), light.read_bytes()
    # The premise: same length, same first and last 4 KiB; only the middle differs.
    assert len(a) == len(b) > 3 * 8192 and a[:8192] == b[:8192] and a[-8192:] == b[-8192:]
    assert a != b
    first = embed(tiny_engine, [dark])
    second = embed(tiny_engine, [light])
    assert (first.encoded, second.encoded) == (1, 1)  # no false hit on a sampled hash
    assert first.digests == [expected_digest(dark)] and second.digests == [expected_digest(light)]
    assert first.digests != second.digests
    assert not np.allclose(first.features[0], second.features[0])
    fresh = Engine(tiny_engine.encoder, NullCache())
    np.testing.assert_allclose(second.features[0], embed(fresh, [light]).features[0], atol=1e-5)


def test_one_byte_flip_anywhere_changes_the_identity(tmp_path):
    base = save_bmp_with_middle(tmp_path / "base.bmp", 128).read_bytes()
    digests = {content_digest(base)}
    for position in (70, len(base) // 2, len(base) - 5000, len(base) - 1):
        flipped = bytearray(base)
        flipped[position] ^= 0x01
        digests.add(content_digest(bytes(flipped)))
        assert content_digest(bytes(flipped)) == hashlib.sha256(flipped).hexdigest()[:40]
    assert len(digests) == 5
