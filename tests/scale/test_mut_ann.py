"""ANN search checked against a brute-force numpy scan (docs/mutation.md): the PQ index's answers
are re-ranked by the exact inner product (their scores are true cosines, not code distances),
the exact scan merges shards into one global top k, decode errors are never returned, and every
key maps back to its own shard's path.
"""

from __future__ import annotations

import numpy as np
import pytest

from clipdesk.scale import shards as sh
from clipdesk.scale.ann import VectorIndex


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    x = centres[rng.integers(0, 12, n)] + 0.7 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def index_folder(folder, vectors: np.ndarray, per_shard: int, bad=lambda i: i % 9 == 4) -> dict:
    """Shards of `vectors` named img<row>; rows where `bad(row)` failed to decode."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n, start in enumerate(range(0, len(vectors), per_shard)):
        part = vectors[start:start + per_shard]
        rows = range(start, start + len(part))
        name = f"shard-{n:04d}.parquet"
        sh.write_shard(folder, name, {"path": [f"img{i}" for i in rows],
                                      "error": ["bad" if bad(i) else None for i in rows],
                                      "embedding": part}, {})
        names.append(name)
    manifest = {"shards": names, "dim": vectors.shape[1]}
    sh.write_manifest(folder, manifest)
    return manifest


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int, bad=lambda i: i % 9 == 4):
    cosines = vectors.astype(np.float64) @ query.astype(np.float64)
    order = [i for i in np.argsort(-cosines, kind="stable") if not bad(i)][:k]
    return [f"img{i}" for i in order], cosines[order]


def test_pq_answers_are_reranked_to_exact_cosines(tmp_path):
    vectors = unit(1200, 16, seed=3)
    manifest = index_folder(tmp_path / "idx", vectors, per_shard=400)
    index = VectorIndex(tmp_path / "idx", library="faiss-pq", exact_below=0)
    index.update(manifest)
    assert (tmp_path / "idx" / "ann" / "pq-refine.faiss").exists()  # the ANN path, not the scan
    for query in unit(8, 16, seed=4):
        hits = index.search(query, 10)
        paths, cosines = brute_force(vectors, query, 10)
        assert [p for p, _ in hits] == paths
        np.testing.assert_allclose([s for _, s in hits], cosines, rtol=0, atol=1e-5)


@pytest.mark.parametrize("k", [1, 7, 450, 5000])
def test_the_exact_scan_is_one_global_top_k_over_all_shards(tmp_path, k):
    vectors = unit(900, 8, seed=5)
    manifest = index_folder(tmp_path / "idx", vectors, per_shard=300)
    index = VectorIndex(tmp_path / "idx", exact_below=10**9)  # always the scan
    index.update(manifest)
    assert not (tmp_path / "idx" / "ann" / "pq-refine.faiss").exists()
    query = unit(1, 8, seed=6)[0]
    paths, cosines = brute_force(vectors, query, k)
    for exact in (False, True):
        hits = index.search(query, k, exact=exact)
        assert [p for p, _ in hits] == paths
        np.testing.assert_allclose([s for _, s in hits], cosines, rtol=0, atol=1e-5)
    assert len(index.search(query, 5000)) == 800  # every row but the 100 that failed to decode


def test_each_row_maps_back_to_its_own_shard_and_a_shard_of_errors_is_skipped(tmp_path):
    vectors = unit(30, 8, seed=7)
    manifest = index_folder(tmp_path / "idx", vectors, per_shard=10, bad=lambda i: 10 <= i < 20)
    index = VectorIndex(tmp_path / "idx", exact_below=10**9)
    index.update(manifest)
    for row in (0, 9, 20, 29):
        assert index.search(vectors[row], 1)[0][0] == f"img{row}"
    found = [p for p, _ in index.search(vectors[15], 30)]
    assert len(found) == 20 and not {f"img{i}" for i in range(10, 20)} & set(found)


def test_an_index_with_nothing_valid_finds_nothing(tmp_path):
    vectors = unit(6, 4, seed=8)
    manifest = index_folder(tmp_path / "idx", vectors, per_shard=3, bad=lambda i: True)
    index = VectorIndex(tmp_path / "idx")
    index.update(manifest)
    assert index.search(vectors[0], 5) == []


# -- which source answers ---------------------------------------------------------------------
# The ANN file keeps the vectors as they were indexed; the scan reads the shards as they are now.
# Shards rewritten with negated vectors after indexing (and not re-indexed) tell the two apart:
# the old top hits are the new bottom ones.

def assert_hits(hits, expected) -> None:
    paths, cosines = expected
    assert [p for p, _ in hits] == paths
    np.testing.assert_allclose([s for _, s in hits], cosines, rtol=0, atol=1e-5)


def test_the_ann_file_answers_from_exact_below_valid_rows_and_the_scan_otherwise(tmp_path):
    vectors = unit(600, 8, seed=9)
    folder = tmp_path / "idx"
    manifest = index_folder(folder, vectors, per_shard=200)
    valid = sum(1 for i in range(600) if i % 9 != 4)  # 533: brute_force's default `bad`
    index = VectorIndex(folder, library="faiss-pq", exact_below=valid)  # exactly at the threshold: the ANN is built
    index.update(manifest)
    assert (folder / "ann" / "pq-refine.faiss").exists()
    index_folder(folder, -vectors, per_shard=200)
    query = unit(1, 8, seed=10)[0]
    indexed, current = brute_force(vectors, query, 6), brute_force(-vectors, query, 6)
    assert not set(indexed[0]) & set(current[0])

    assert_hits(index.search(query, 6), indexed)
    assert_hits(index.search(query, 6, exact=True), current)  # exact: the shards, not the file
    assert_hits(VectorIndex(folder, exact_below=valid).search(query, 6), indexed)
    assert_hits(VectorIndex(folder, exact_below=valid + 1).search(query, 6), current)


def test_without_an_ann_file_the_scan_answers_whatever_the_threshold(tmp_path):
    vectors = unit(300, 8, seed=13)
    folder = tmp_path / "idx"
    VectorIndex(folder, exact_below=10**9).update(index_folder(folder, vectors, per_shard=100))
    assert not (folder / "ann" / "pq-refine.faiss").exists()
    query = unit(1, 8, seed=14)[0]
    # A threshold the index now passes, before any update builds the file: still answered.
    assert_hits(VectorIndex(folder, exact_below=0).search(query, 5), brute_force(vectors, query, 5))


@pytest.mark.parametrize("library", ["faiss-pq", "faiss", "usearch"])
def test_a_new_index_object_answers_from_the_saved_ann_file(tmp_path, library):
    """Another process (the CLI's `search --index`) opens the saved file without updating it."""
    vectors = unit(300, 8, seed=11)
    folder = tmp_path / "idx"
    VectorIndex(folder, library=library, exact_below=0).update(
        index_folder(folder, vectors, per_shard=100))
    index_folder(folder, -vectors, per_shard=100)
    index = VectorIndex(folder, library=library, exact_below=0)
    for query in unit(3, 8, seed=12):
        hits = index.search(query)  # k defaults to 10
        assert len(hits) == 10
        # HNSW is approximate: its best hit and its scores (true cosines of the indexed vectors)
        # are checked; the PQ index re-ranks exactly, so its whole list is.
        paths, _ = brute_force(vectors, query, 10)
        assert hits[0][0] == paths[0]
        np.testing.assert_allclose([s for _, s in hits],
                                   [vectors[int(p[3:])] @ query for p, _ in hits], atol=1e-5)
        if library == "faiss-pq":
            assert_hits(hits, brute_force(vectors, query, 10))


def test_a_query_given_as_one_row_is_a_vector(tmp_path):
    """An encoder's output for one image is (1, D): both paths accept it as the vector."""
    vectors = unit(300, 8, seed=15)
    folder = tmp_path / "idx"
    manifest = index_folder(folder, vectors, per_shard=100)
    query = unit(1, 8, seed=16)
    expected = brute_force(vectors, query[0], 7)
    scan = VectorIndex(folder, exact_below=10**9)
    scan.update(manifest)
    assert_hits(scan.search(query, 7), expected)
    assert_hits(scan.search(query.astype(np.float64).tolist(), 7), expected)
    ann = VectorIndex(folder, exact_below=0)
    ann.update(manifest)
    assert_hits(ann.search(query, 7), expected)


def test_equal_scores_come_back_in_row_order_within_and_across_shards(tmp_path):
    """Duplicate images score alike: the scan's answer is still one order (stable, by row), the
    same as a brute-force stable sort. Components of ±0.5, 0 and 1 make every product exact, so
    ties are exact whatever order the sums run in."""
    kinds = np.array([[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 0], [0.5, -0.5, 0.5, -0.5]],
                     np.float32)
    vectors = kinds[np.random.default_rng(17).integers(0, 4, 900)]
    folder = tmp_path / "idx"
    index = VectorIndex(folder, exact_below=10**9)
    index.update(index_folder(folder, vectors, per_shard=300))
    for k in (40, 400, 900):  # inside the 1.0 tie, into the 0.5 tie, everything
        assert_hits(index.search(kinds[1], k), brute_force(vectors, kinds[1], k))
