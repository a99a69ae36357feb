"""clipdesk's ANN index against autofaiss (and compact FAISS indexes) on clustered CLIP-like vectors.

    PYTHONPATH=. python benchmarks/bench_peers_ann.py --n 100000 --rounds 3

Data: a mixture of `--clusters` (1,000) Gaussian clusters on the unit sphere in 512-d. The centres
are random unit vectors; a point is centre + noise, normalised. The noise has a power-law spectrum
(standard deviation of axis i ∝ i^-decay, `--decay 1`), like real CLIP embeddings whose variance
sits in a few directions; `--decay 0` gives isotropic noise, the hardest case (inside a cluster it
is uniform random data: the top-10 cosines differ by ~0.03 and every compact code fails).
Queries are fresh points from the same mixture.

Figures, per index: build time (one build each: too slow to repeat on two cores), bytes per vector
of the saved index file, 10-recall@10 (|ANN top-10 ∩ exact top-10| / 10, averaged over the
queries; exact = float32 brute-force inner product), and single-query latency with one thread —
how `clipdesk search --index` asks — timed in interleaved rounds against the brute-force scan
(benchmarks/_compare.py). The clipdesk leg is `VectorIndex.update` over real shard files and its
ANN's `search` (keys, before the shard path look-up every leg would need alike).

autofaiss needs numpy < 2, so it runs in its own venv (`benchmarks/_data/autofaiss-venv`, made on
first use) on the same vectors (.npy), twice: with its default memory budget, and held to 64 bytes
a vector (`max_index_memory_usage`). Its index file is read back here with our faiss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faiss  # noqa: E402
from _compare import Sample, interleave  # noqa: E402

from clipdesk.scale import shards as sh  # noqa: E402
from clipdesk.scale.ann import VectorIndex  # noqa: E402

HERE = Path(__file__).resolve().parent
AUTOFAISS_VENV = HERE / "_data" / "autofaiss-venv"
DIM = 512


def clustered(n: int, clusters: int, decay: float, spread: float, seed: int) -> np.ndarray:
    """Unit vectors from a mixture of Gaussian clusters on the sphere (centres fixed by one seed)."""
    centres = np.random.default_rng(12345).standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scale = np.arange(1, DIM + 1, dtype=np.float32) ** -decay
    scale *= np.sqrt(DIM / (scale**2).sum())  # same total noise energy whatever the decay
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # in blocks: 1M x 512 of float64 noise would be 4 GB
        m = min(100_000, n - start)
        noise = rng.standard_normal((m, DIM), dtype=np.float32) * scale
        x = centres[rng.integers(0, clusters, m)] + spread / np.sqrt(DIM) * noise
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """10-recall@10: the share of the exact top-10 that the index's top-10 holds."""
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))


def one_by_one(search, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Ids of each query's top 10, asked one query at a time, and seconds per query."""
    start = time.perf_counter()
    ids = np.stack([np.resize(search(q), 10) for q in queries])
    return ids, (time.perf_counter() - start) / len(queries)


def build_clipdesk(vectors: np.ndarray, folder: Path) -> tuple[VectorIndex, float, int]:
    """Shard files as `clipdesk index` writes them, then the ANN built the way it builds it."""
    names = []
    for n, start in enumerate(range(0, len(vectors), 50_000)):
        part = vectors[start : start + 50_000]
        name = f"shard-{n:04d}.parquet"
        sh.write_shard(folder, name, {"path": [f"{start + i}" for i in range(len(part))],
                                      "error": [None] * len(part), "embedding": part}, {})
        names.append(name)
    manifest = {"shards": names, "dim": DIM}
    sh.write_manifest(folder, manifest)
    start = time.perf_counter()
    index = VectorIndex(folder)
    index.update(manifest)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in (folder / "ann").iterdir() if p.name != "state.json")
    return index, seconds, size


AUTOFAISS_SCRIPT = """
import json, sys, time, numpy as np
from autofaiss import build_index
x = np.load(sys.argv[1]); out = sys.argv[2]; budget = sys.argv[3]
kw = {} if budget == "default" else {"max_index_memory_usage": budget}
t = time.perf_counter()
_, infos = build_index(x, save_on_disk=True, index_path=out, index_infos_path=out + ".json",
                       metric_type="ip", nb_cores=2, verbose=30, **kw)
print(json.dumps({"seconds": time.perf_counter() - t, "key": infos.get("index_key", "?"),
                  "param": infos.get("index_param", "")}))
"""


def autofaiss_python() -> Path:
    python = AUTOFAISS_VENV / "bin" / "python"
    if not python.is_file():
        print(f"  installing autofaiss into {AUTOFAISS_VENV} (once)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(AUTOFAISS_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "autofaiss", "faiss-cpu==1.8.0", "pyarrow<16"],
                       check=True)  # autofaiss pins numpy < 2 (pyarrow too, then) and calls OPQMatrix(M=) as faiss <= 1.8 spells it
    return python


def build_autofaiss(npy: Path, out: Path, budget: str) -> tuple[faiss.Index, float, int, str]:
    done = subprocess.run([str(autofaiss_python()), "-c", AUTOFAISS_SCRIPT, str(npy), str(out), budget],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"autofaiss failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    index = faiss.read_index(str(out))
    if info["param"]:  # the search parameters autofaiss tuned are not in the file: set them
        faiss.ParameterSpace().set_index_parameters(index, info["param"])
    return index, info["seconds"], out.stat().st_size, f"{info['key']} {info['param']}"


def faiss_searcher(index: faiss.Index):
    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q.reshape(1, -1), 10)[1][0]
    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--decay", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-autofaiss", action="store_true")
    parser.add_argument("--compact", nargs="*", default=["OPQ64,IVF1024,PQ64"],
                        help="extra FAISS factory strings to measure (≤ 64 B/vector candidates)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(min(2, os.cpu_count() or 1))
    vectors = clustered(args.n, args.clusters, args.decay, args.spread, seed=1)
    queries = clustered(args.queries, args.clusters, args.decay, args.spread, seed=2)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    truth = flat.search(queries, 10)[1]
    gaps = (queries[:, None, :] @ vectors[truth[:, [0, 9]]].transpose(0, 2, 1))[:, 0]
    print(f"# {args.n} vectors, {args.clusters} clusters, decay {args.decay}, spread {args.spread}; "
          f"median cosine of the exact 1st / 10th neighbour: {np.median(gaps[:, 0]):.3f} / {np.median(gaps[:, 1]):.3f}\n")

    searchers, builds = {"brute force (float32 scan)": faiss_searcher(flat)}, {}
    builds["brute force (float32 scan)"] = (0.0, DIM * 4, "Flat")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        index, seconds, size = build_clipdesk(vectors, tmp / "idx")
        ann = index.ann
        searchers["clipdesk index"] = lambda q: ann.search(q, 10)[0]
        builds["clipdesk index"] = (seconds, size / args.n, index.library.name)
        for key in args.compact:
            compact = faiss.index_factory(DIM, key, faiss.METRIC_INNER_PRODUCT)
            start = time.perf_counter()
            compact.train(vectors[:65_536])
            compact.add(vectors)
            faiss.extract_index_ivf(compact).nprobe = 64 if "IVF" in key else 1
            builds[key] = (time.perf_counter() - start, len(faiss.serialize_index(compact)) / args.n, key + " nprobe 64")
            searchers[key] = faiss_searcher(compact)
        if not args.no_autofaiss:
            npy = tmp / "x.npy"
            np.save(npy, vectors)
            budgets = {"autofaiss (default budget)": "default",
                       "autofaiss (64 B/vector)": f"{64 * args.n / 1e6:.1f}MB"}
            for name, budget in budgets.items():
                auto, seconds, size, key = build_autofaiss(npy, tmp / f"{budget}.index", budget)
                builds[name] = (seconds, size / args.n, key)
                searchers[name] = faiss_searcher(auto)
        faiss.omp_set_num_threads(1)  # one query at a time, as `clipdesk search --index` asks

        def leg(search):
            def run() -> Sample:
                ids, per_query = one_by_one(search, queries)
                return Sample({"ms/query": per_query * 1e3, "recall@10": recall_at_10(ids, truth)})
            return run

        results = interleave({name: leg(s) for name, s in searchers.items()}, rounds=args.rounds)
    base = "brute force (float32 scan)"
    print("| index | what | build (s) | bytes/vector | 10-recall@10 | ms/query median (min–max) | × brute force (min–max) |")
    print("|---|---|---|---|---|---|---|")
    for name in searchers:
        seconds, per_vector, what = builds[name]
        times = results.values(name, "ms/query")
        speed = [1 / r for r in results.ratios(name, base, "ms/query")]
        print(f"| {name} | {what} | {seconds:.1f} | {per_vector:.0f} | {results.median(name, 'recall@10'):.3f} | "
              f"{np.median(times):.3f} ({min(times):.3f}–{max(times):.3f}) | "
              f"{np.median(speed):.1f}× ({min(speed):.1f}–{max(speed):.1f}) |")
    print(f"\n{args.rounds} interleaved rounds of {args.queries} single queries, one thread; builds with 2 threads, once each.")


if __name__ == "__main__":
    main()
