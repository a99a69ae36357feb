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
