"""Nearest-neighbour search over an index folder's embeddings: exact when small, compact IVF codes when large.

The ANN index lives in `INDEX_DIR/ann/` next to the shards. `VectorIndex.update` compares the
shards it already holds with the manifest: new shards are added to the index (no rebuild);
when a shard it holds has gone (files edited or removed), it rebuilds. A hit maps back to its
global row number (shard offset + row), so to its shard and path without a second table. Rows
that failed to decode are never added.

Method, by measurement (benchmarks/bench_peers_ann.py, clustered 512-d vectors like CLIP's, and
benchmarks/bench_scale.py on random ones; figures in benchmarks/README.md): HNSW needs ~256 B of
links a vector and on random data cannot reach recall 0.95 without visiting most of it. 4-bit
fast-scan PQ plus an exact float32 re-rank (`faiss-pq`) is exact but keeps 2 KB a vector. With
≤ 64 B a vector, a 16- or 32-byte PQ alone re-ranked by a second PQ of the *raw* vector stays
under recall 0.5 on clustered data; the best compact code measured is FAISS's IVFPQR: an IVF
cell, a 16-byte PQ of the residual to scan, and a 32-byte PQ of what that PQ missed to re-rank
(48 B of codes + an 8-byte id; 0.77 at 100k where the raw-vector re-rank gave 0.47), behind an
OPQ rotation learnt for the 16 sub-spaces (0.81 → 0.89 at 100k, 0.55 → 0.79 at 1M: CLIP-like
vectors keep most of their variance in a few directions, which plain PQ's fixed slices waste bits
on). It is the default (`faiss-ivfpqr`); nprobe and the re-rank depth are chosen at build time on
a sample of the collection's own vectors, so the depth grows with the collection. `faiss-pq` (the
CLI's `search --index --ann rerank`) and both HNSWs stay selectable (`library=`) where recall
matters more than bytes.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path, atomic_write_text
from .shards import read_shard

EXACT_BELOW = 20_000  # vectors: under this a brute-force scan takes under a millisecond or two
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 32, 128, 256
DEFAULT_LIBRARY = "faiss-ivfpqr"
TRAIN_SAMPLE = 65_536  # vectors the PQ codebook is learnt from
FORMAT = 2  # of ann/state.json: 2 added "format", "skipped" and "tuned"; 1 (no "format") is still read
RECALL_TARGET = 0.95  # 10-recall@10 against exact search that the build-time tuning aims for
TUNE_QUERIES = 200  # sample vectors the tuning asks with (each one's own hit is left out)
NPROBES = (4, 8, 16, 32, 64, 128, 256)  # IVF cells visited, tried in this order
K_FACTORS = (2, 4, 8, 16, 32, 64)  # re-rank depth as a multiple of k, tried in this order
OPQ_ITERATIONS = 25  # rounds of the rotation's training (FAISS's default 50 doubles its time; 25 is what was measured)


class HnswUsearch:
    name = "usearch"
    file = "hnsw.usearch"

    def __init__(self, dim: int, path: Path | None = None) -> None:
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                           expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        if path is not None:
            self.index.load(str(path))
            self.index.expansion_search = EXPANSION_SEARCH

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(keys.astype(np.uint64), vectors, threads=os.cpu_count() or 1)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self.index.search(query.astype(np.float32), k)
        return np.asarray(matches.keys, np.int64), 1.0 - np.asarray(matches.distances, np.float64)

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    def __len__(self) -> int:
        return len(self.index)


class HnswFaiss:
    name = "faiss"
    file = "hnsw.faiss"

    def __init__(self, dim: int, path: Path | None = None) -> None:
        import faiss

        if path is not None:
            self.index = faiss.read_index(str(path))
        else:
            inner = faiss.IndexHNSWFlat(dim, CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = EXPANSION_ADD
            self.index = faiss.IndexIDMap(inner)
        faiss.downcast_index(self.index.index).hnsw.efSearch = EXPANSION_SEARCH

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), keys.astype(np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one query: OpenMP's thread hand-offs only add latency
        try:
            scores, keys = self.index.search(query.reshape(1, -1).astype(np.float32), k)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = keys[0] >= 0
        return keys[0][keep], scores[0][keep].astype(np.float64)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return self.index.ntotal


class PqRefineFaiss:
    """FAISS product quantisation with 4-bit fast-scan codes (dim/4 bytes a vector, scanned with
    SIMD lookups), then the best `K_FACTOR × k` candidates re-ranked by exact inner product.

    Chosen by measurement over HNSW (see the module docstring): it scans every code, so it needs no
    neighbourhood structure in the data, and its cost is a fixed fraction of a brute-force scan.
    """

    name = "faiss-pq"
    file = "pq-refine.faiss"
    K_FACTOR = 1000

    def __init__(self, dim: int, path: Path | None = None) -> None:
        import faiss

        if path is not None:
            self.index = faiss.read_index(str(path))
        else:
            inner = faiss.index_factory(dim, f"PQ{dim // 4}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
            self.index = faiss.IndexIDMap(inner)
        self.refine = faiss.downcast_index(self.index.index)
        self.refine.k_factor = self.K_FACTOR

    def train(self, vectors: np.ndarray, size: int = 0) -> None:
        """The codebook: learnt once, from a sample of the first shards, kept for later adds."""
        self.index.train(np.ascontiguousarray(vectors, np.float32))

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, np.float32)
        if not self.index.is_trained:
            self.train(vectors[:TRAIN_SAMPLE])
        self.index.add_with_ids(vectors, keys.astype(np.int64))

    search = HnswFaiss.search
    save = HnswFaiss.save
    __len__ = HnswFaiss.__len__


def inner_ivf(index):
    """The IVFPQR itself: inside its rotation, or bare (a file from before the rotation)."""
    import faiss

    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index


def largest_divisor(n: int, at_most: int) -> int:
    return max(m for m in range(1, min(n, at_most) + 1) if n % m == 0)


class IvfPqrFaiss:
    """FAISS IVFPQR in ≤ 64 B a vector, behind an OPQ rotation: an IVF cell, a 16-byte PQ of the
    vector's residual to its cell centre (scanned), and a 32-byte PQ of what the first PQ missed,
    used to re-rank the best `k_factor × k` (an 8-byte id each; the centres, the rotation and the
    codebooks are a fixed few MB).

    Chosen by measurement (module docstring). The rotation (OPQ, learnt for the 16 sub-spaces)
    spreads the few directions that hold most of CLIP-like vectors' variance over all sub-spaces,
    which plain PQ's fixed slices of the axes cannot; it is orthonormal, so distances are kept.
    L2 on unit vectors ranks as cosine does (|q - x|² = 2 - 2 q·x): FAISS has IVFPQR for L2 only.
    Ids are the order vectors were added in (IVFPQR finds a re-rank code by its id), so
    VectorIndex maps them to row keys. Files written before the rotation (a bare IVFPQR) are read
    and grown as they are.
    """

    name = "faiss-ivfpqr"
    file = "ivfpqr.faiss"
    positional = True

    def __init__(self, dim: int, path: Path | None = None) -> None:
        import faiss

        self.dim = dim
        self.index = faiss.read_index(str(path)) if path is not None else None
        self.ivf = inner_ivf(self.index) if path is not None else None
        self.nprobe, self.k_factor = NPROBES[2], K_FACTORS[2]

    def train(self, vectors: np.ndarray, size: int = 0) -> None:
        """Cells scale with the collection (≈ 2√n), but their centres (dim floats each) cost at most
        4 B a vector, so the file stays ≤ 64 B a vector; each cell gets ≥ 39 training vectors, as
        FAISS asks. Codes are 8-bit once the sample can fill 256 centroids, fewer bits below that."""
        import faiss

        vectors = np.ascontiguousarray(vectors, np.float32)
        size = max(size, len(vectors))
        cap = min(4096, size // self.dim, len(vectors) // 39)
        nlist = int(min(2 ** round(np.log2(2 * np.sqrt(size))), 2 ** int(np.log2(max(1, cap)))))
        nbits = int(np.clip(np.log2(max(2, len(vectors) // 39)), 4, 8))
        scanned = largest_divisor(self.dim, 16)
        quantizer = faiss.IndexFlatL2(self.dim)
        ivf = faiss.IndexIVFPQR(quantizer, self.dim, max(1, nlist), scanned, nbits,
                                largest_divisor(self.dim, 32), nbits)
        quantizer.this.disown()  # each index owns and frees what it wraps
        ivf.own_fields = True
        rotation = faiss.OPQMatrix(self.dim, scanned)
        rotation.niter = OPQ_ITERATIONS
        rotation_pq = faiss.ProductQuantizer(self.dim, scanned, nbits)  # as many centroids as the sample can fill
        rotation.pq = rotation_pq  # borrowed while training only: this name keeps it alive till then
        index = faiss.IndexPreTransform(rotation, ivf)
        rotation.this.disown()
        ivf.this.disown()
        index.own_fields = True
        index.train(vectors)
        rotation.pq = None
        self.index, self.ivf = index, inner_ivf(index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors, np.float32))

    def configure(self, tuned: dict | None) -> None:
        if tuned:
            self.nprobe, self.k_factor = int(tuned["nprobe"]), int(tuned["k_factor"])

    def _set(self, nprobe: int, k_factor: int) -> None:
        self.ivf.nprobe = min(nprobe, self.ivf.nlist)
        self.ivf.k_factor = k_factor

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        self._set(self.nprobe, self.k_factor)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one query: OpenMP's thread hand-offs only add latency
        try:
            distances, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k)
        finally:
            faiss.omp_set_num_threads(threads)
        keep = ids[0] >= 0
        return ids[0][keep], 1.0 - distances[0][keep].astype(np.float64) / 2  # unit vectors: cosine

    def tune(self, queries: np.ndarray, own: np.ndarray, truth: np.ndarray) -> dict:
        """The cheapest (nprobe, k_factor) whose 10-recall@10 on `queries` reaches RECALL_TARGET;
        if none does, the cheapest within 0.005 of the best. `truth`: each query's exact top ids,
        its own id `own` left out (it is in the index); cost ≈ codes scanned + codes re-ranked."""
        k = truth.shape[1]
        nlist = self.ivf.nlist
        per_cell = self.index.ntotal / nlist
        tried = []
        for nprobe in [p for p in NPROBES if p <= max(NPROBES[0], nlist)]:
            for k_factor in K_FACTORS:
                self._set(nprobe, k_factor)
                ids = self.index.search(np.ascontiguousarray(queries, np.float32), k + 1)[1]
                found = [[i for i in row if i != me][:k] for row, me in zip(ids, own)]
                recall = float(np.mean([len(set(f) & set(t.tolist())) / k for f, t in zip(found, truth)]))
                tried.append((min(nprobe, nlist) * per_cell + 2 * k * k_factor, nprobe, k_factor, recall))
        best = max(t[3] for t in tried)
        enough = [t for t in tried if t[3] >= min(RECALL_TARGET, best - 0.005)]
        _, nprobe, k_factor, recall = min(enough)
        self.nprobe, self.k_factor = nprobe, k_factor
        return {"nprobe": nprobe, "k_factor": k_factor, "recall_at_10": round(recall, 4), "queries": len(queries)}

    save = HnswFaiss.save
    __len__ = HnswFaiss.__len__


LIBRARIES = {"faiss-ivfpqr": IvfPqrFaiss, "faiss-pq": PqRefineFaiss, "faiss": HnswFaiss, "usearch": HnswUsearch}


class VectorIndex:
    """The embeddings of an index folder, searchable by cosine (all vectors are unit length).

    `library=None` keeps the kind of index the folder already has (an older `faiss-pq` index
    stays readable and grows as it is) and builds DEFAULT_LIBRARY for a new or rebuilt one.
    """

    def __init__(self, folder: Path, library: str | None = None, exact_below: int = EXACT_BELOW) -> None:
        self.folder = Path(folder)
        self.dir = self.folder / "ann"
        self.requested = library
        self.exact_below = exact_below
        self.state = self._read_state()
        held = self.state.get("library")
        self.library = LIBRARIES[library or (held if held in LIBRARIES else DEFAULT_LIBRARY)]
        self.ann = None
        self._paths: dict[str, list[str]] = {}  # shard name → its path column, read on first hit

    # -- keeping it current -------------------------------------------------------------------
    def update(self, manifest: dict) -> dict:
        """Bring the ANN state in line with the manifest's shards; returns {"added", "rebuilt"}."""
        shards = list(manifest["shards"])
        held = self.state["shards"]
        self._paths.clear()  # a shard may have been written again under its name
        rebuilt = not set(held) <= set(shards) or self.state.get("library") != self.library.name
        if rebuilt:
            if self.requested is None:
                self.library = LIBRARIES[DEFAULT_LIBRARY]  # a rebuild is the moment to move to the default
            self.state = self._empty_state(manifest.get("dim", 0))
            held = []
        elif "skipped" not in self.state:  # format 1: the failed rows were not listed
            self.state["skipped"] = self._skipped_rows(held, self.state["offsets"])
        new = [name for name in shards if name not in set(held)]
        if not new and not rebuilt:
            return {"added": 0, "rebuilt": False}
        saved = None if rebuilt else self._load()  # before the counts below change
        for name in new:
            errors = read_shard(self.folder / name, ["error"])["error"]
            self.state["offsets"].append(self.state["rows"])
            self.state["shards"].append(name)
            self.state["skipped"] += [self.state["rows"] + i for i, e in enumerate(errors) if e]
            self.state["rows"] += len(errors)
        self.state["valid"] = self.state["rows"] - len(self.state["skipped"])
        if self.state["valid"] >= self.exact_below:
            self._grow(new if saved is not None else self.state["shards"])  # none usable: rebuild
        self.state["format"] = FORMAT
        self._write_state()
        return {"added": len(new), "rebuilt": rebuilt}

    def _grow(self, names: list[str]) -> None:
        fresh = names == self.state["shards"]
        ann = self.library(self.state["dim"], None) if fresh else self.ann
        needs_sample = hasattr(ann, "tune") or (fresh and hasattr(ann, "train"))
        sample = self._sample(self.state["shards"]) if needs_sample else None
        own = self._tuning_ids(len(sample)) if sample is not None else None
        if fresh and hasattr(ann, "train"):  # held out from training: the tuning queries
            ann.train(np.delete(sample, own, axis=0) if len(sample) > 2 * len(own) else sample,
                      self.state["valid"])
        for name in names:
            keys, vectors = self._shard_vectors(name)
            if len(keys):
                ann.add(keys, vectors)
        if hasattr(ann, "tune"):  # the re-rank depth and cells to visit, for this collection size
            self.state["tuned"] = ann.tune(*self._tuning_set(sample, own))
        self.dir.mkdir(exist_ok=True)
        with atomic_path(self._ann_file()) as temp:  # fsynced, then renamed: never half an index
            ann.save(temp)
        self.ann = ann

    @staticmethod
    def _tuning_ids(size: int) -> np.ndarray:
        return np.sort(np.random.default_rng(0).choice(size, min(TUNE_QUERIES, size), replace=False))

    def _tuning_set(self, sample: np.ndarray, own: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The queries `own` drawn from the sample (the first valid vectors, so ids 0…len-1), and
        their exact top-k ids over the whole collection by float32 inner product, own id left out."""
        queries = sample[own]
        best_ids = np.zeros((len(own), 0), np.int64)
        best_scores = np.zeros((len(own), 0), np.float32)
        position = 0
        for name in self.state["shards"]:  # one shard at a time, merged into a running top k+1
            vectors = self._shard_vectors(name)[1]
            scores = queries @ vectors.T
            ids = np.broadcast_to(np.arange(position, position + len(vectors)), scores.shape)
            best_scores = np.concatenate([best_scores, scores], axis=1)
            best_ids = np.concatenate([best_ids, ids], axis=1)
            top = np.argsort(-best_scores, axis=1, kind="stable")[:, : k + 1]
            best_scores, best_ids = np.take_along_axis(best_scores, top, 1), np.take_along_axis(best_ids, top, 1)
            position += len(vectors)
        truth = np.stack([[i for i in row if i != me][:k] for row, me in zip(best_ids, own)])
        return queries, own, truth

    def _shard_vectors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        columns = read_shard(self.folder / name, ["error", "embedding"])
        ok = np.asarray([not e for e in columns["error"]], bool)
        offset = self.state["offsets"][self.state["shards"].index(name)]
        return np.flatnonzero(ok).astype(np.int64) + offset, columns["embedding"][ok]

    def _sample(self, names: list[str], size: int = TRAIN_SAMPLE) -> np.ndarray:
        """Vectors to learn a codebook from: from the first shards, up to `size` of them."""
        parts, count = [], 0
        for name in names:
            vectors = self._shard_vectors(name)[1]
            parts.append(vectors[: size - count])
            count += len(parts[-1])
            if count >= size:
                break
        return np.concatenate(parts)

    def _skipped_rows(self, names: list[str], offsets: list[int]) -> list[int]:
        return [offset + i for name, offset in zip(names, offsets)
                for i, e in enumerate(read_shard(self.folder / name, ["error"])["error"]) if e]

    # -- searching ------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int = 10, exact: bool = False) -> list[tuple[str, float]]:
        """(path, cosine) best first: the ANN index when there is one, else a brute-force scan.
        From `faiss-ivfpqr` the cosine is the codes' estimate (within ~0.01), not the exact one."""
        query = np.asarray(query, np.float32).reshape(-1)
        if exact or self.state["valid"] < self.exact_below or self._load() is None:
            keys, scores = self._exact(query, k)
        else:
            keys, scores = self.ann.search(query, k)
            if getattr(self.ann, "positional", False):
                keys = self._keys(keys)
        return [(self._path(int(key)), float(score)) for key, score in zip(keys, scores)]

    def _load(self):
        """The saved ANN index, or None when there is none this code can use (missing, written for
        another library, by a newer format, unreadable, or holding other rows than the state says)."""
        if self.ann is None and self._ann_file().exists() and self.state.get("format", 1) <= FORMAT \
                and self.state.get("library") == self.library.name:
            try:
                ann = self.library(self.state["dim"], self._ann_file())
            except RuntimeError:  # FAISS's word for a truncated or foreign file
                return None
            if len(ann) == self.state["valid"]:
                if hasattr(ann, "configure"):
                    ann.configure(self.state.get("tuned"))
                self.ann = ann
        return self.ann

    def _keys(self, positions: np.ndarray) -> np.ndarray:
        """Insertion order → global row: each failed row before a vector shifts it by one."""
        skipped = np.asarray(self.state.get("skipped", []), np.int64)
        thresholds = skipped - np.arange(len(skipped))
        return positions + np.searchsorted(thresholds, positions, side="right")

    def _exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        keys, scores = [], []
        for name in self.state["shards"]:  # one shard at a time: memory stays at one shard
            shard_keys, vectors = self._shard_vectors(name)
            if not len(shard_keys):
                continue
            cosines = vectors @ query
            top = np.argsort(-cosines, kind="stable")[:k]
            keys.append(shard_keys[top])
            scores.append(cosines[top])
        if not keys:
            return np.zeros(0, np.int64), np.zeros(0)
        keys_all, scores_all = np.concatenate(keys), np.concatenate(scores)
        order = np.argsort(-scores_all, kind="stable")[:k]
        return keys_all[order], scores_all[order]

    def _path(self, key: int) -> str:
        slot = bisect.bisect_right(self.state["offsets"], key) - 1
        name = self.state["shards"][slot]
        if name not in self._paths:  # one read per shard, not one per hit
            self._paths[name] = read_shard(self.folder / name, ["path"])["path"]
        return self._paths[name][key - self.state["offsets"][slot]]

    # -- state on disk ---------------------------------------------------------------------------
    def _ann_file(self) -> Path:
        return self.dir / self.library.file

    def _empty_state(self, dim: int) -> dict:
        for old in LIBRARIES.values():
            (self.dir / old.file).unlink(missing_ok=True)
        self.ann = None
        return {"format": FORMAT, "library": self.library.name, "dim": int(dim), "shards": [], "offsets": [],
                "rows": 0, "valid": 0, "skipped": []}

    def _read_state(self) -> dict:
        from ..core.safeio import read_json_or_none

        state = read_json_or_none(self.dir / "state.json", 256 << 20)
        if isinstance(state, dict) and isinstance(state.get("shards"), list):
            return state
        return {"library": None, "dim": 0, "shards": [], "offsets": [], "rows": 0, "valid": 0, "skipped": []}

    def _write_state(self) -> None:
        self.dir.mkdir(exist_ok=True)
        atomic_write_text(self.dir / "state.json", json.dumps(self.state))
