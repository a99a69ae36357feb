"""clipdesk's ANN index against autofaiss (and compact FAISS indexes) on clustered CLIP-like vectors.

    PYTHONPATH=. nice python benchmarks/bench_peers_ann.py --n 100000 --rounds 3
    PYTHONPATH=. nice python benchmarks/bench_peers_ann.py --n 1000000 --rounds 3 --autofaiss 64B

Data: a mixture of `--clusters` (1,000) Gaussian clusters on the unit sphere in 512-d. The centres
are random unit vectors; a point is centre + noise, normalised. The noise has a power-law spectrum
(standard deviation of axis i ∝ i^-decay, `--decay 1`), like real CLIP embeddings whose variance
sits in a few directions; `--decay 0` gives isotropic noise, the hardest case (inside a cluster it
is uniform random data: the top-10 cosines differ by ~0.03 and every compact code fails).
Queries are fresh points from the same mixture.

Figures, per index: build time and the build's peak RSS (one build each, in a child process of
its own: too slow to repeat on two cores), bytes per vector of the saved index file, 10-recall@10 (|ANN top-10 ∩ exact top-10| / 10, averaged over the
queries; exact = float32 brute-force inner product), and single-query latency with one thread —
how `clipdesk search --index` asks — timed in interleaved rounds against the brute-force scan
(benchmarks/_compare.py), with queries/s = 1000 / ms per query. The clipdesk leg is
`VectorIndex.update` over real shard files (build time includes its nprobe / re-rank tuning) and
its ANN's `search` (ids, before the shard path look-up every leg would need alike; no row failed
to decode, so ids are row numbers). `--libraries faiss-pq` adds the older exact re-rank index.

autofaiss needs numpy < 2, so it runs in its own venv (`benchmarks/_data/autofaiss-venv`, made on
first use) on the same vectors (.npy), twice: with its default memory budget, and held to 64 bytes
a vector (`max_index_memory_usage`); `--autofaiss 64B` runs only the latter (at 1M its default
picks HNSW, hours to build here). Its index file is read back here with our faiss.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def write_shards(vectors: np.ndarray, folder: Path) -> dict:
    """Shard files as `clipdesk index` writes them, and their manifest."""
    names = []
    for n, start in enumerate(range(0, len(vectors), 50_000)):
        part = vectors[start : start + 50_000]
        name = f"shard-{n:04d}.parquet"
        sh.write_shard(folder, name, {"path": [f"{start + i}" for i in range(len(part))],
                                      "error": [None] * len(part), "embedding": part}, {})
        names.append(name)
    manifest = {"shards": names, "dim": DIM}
    sh.write_manifest(folder, manifest)
    return manifest


def build_clipdesk_child(folder: str, library: str) -> None:
    """In a child process: the ANN built the way `clipdesk index` builds it; time and peak RSS."""
    faiss.omp_set_num_threads(min(2, os.cpu_count() or 1))
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    start = time.perf_counter()
    VectorIndex(Path(folder), library=library).update(manifest)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_mb": own_peak_mb()}))


def own_peak_mb() -> float:
    """This process's own peak RSS (VmHWM, reset by exec). ru_maxrss is not: a child forked
    from this benchmark reported the parent's 1M vectors as its own build's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_clipdesk(folder: Path, library: str) -> tuple[VectorIndex, float, int, float]:
    done = subprocess.run([sys.executable, __file__, "--build-child", str(folder), library],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"clipdesk build failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    index = VectorIndex(folder, library=library)
    size = sum(p.stat().st_size for p in (folder / "ann").iterdir() if p.name != "state.json")
    return index, info["seconds"], size, info["peak_mb"]


AUTOFAISS_SCRIPT = """
import json, sys, time, numpy as np
from autofaiss import build_index
x = np.load(sys.argv[1]); out = sys.argv[2]; budget = sys.argv[3]
kw = {} if budget == "default" else {"max_index_memory_usage": budget}
def own_peak_mb():  # VmHWM: reset by exec, unlike ru_maxrss (which carries the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t = time.perf_counter()
_, infos = build_index(x, save_on_disk=True, index_path=out, index_infos_path=out + ".json",
                       metric_type="ip", nb_cores=2, verbose=30, **kw)
print(json.dumps({"seconds": time.perf_counter() - t, "key": infos.get("index_key", "?"),
                  "param": infos.get("index_param", ""), "peak_mb": own_peak_mb()}))
"""


def autofaiss_python() -> Path:
    python = AUTOFAISS_VENV / "bin" / "python"
    if not python.is_file():
        print(f"  installing autofaiss into {AUTOFAISS_VENV} (once)", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(AUTOFAISS_VENV)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "autofaiss", "faiss-cpu==1.8.0", "pyarrow<16",
                        "packaging"],
                       check=True)  # autofaiss pins numpy < 2 (pyarrow too, then) and calls OPQMatrix(M=) as faiss <= 1.8 spells it
    return python


def build_autofaiss(npy: Path, out: Path, budget: str) -> tuple[faiss.Index, float, int, str, float]:
    done = subprocess.run([str(autofaiss_python()), "-c", AUTOFAISS_SCRIPT, str(npy), str(out), budget],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"autofaiss failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    index = faiss.read_index(str(out))
    if info["param"]:  # the search parameters autofaiss tuned are not in the file: set them
        faiss.ParameterSpace().set_index_parameters(index, info["param"])
    return index, info["seconds"], out.stat().st_size, f"{info['key']} {info['param']}", info["peak_mb"]


def faiss_searcher(index: faiss.Index):
    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q.reshape(1, -1), 10)[1][0]
    return search


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--build-child":
        return build_clipdesk_child(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--decay", type=float, default=1.0)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--libraries", nargs="*", default=["faiss-ivfpqr"],
                        help="clipdesk ANN libraries to build (faiss-ivfpqr is the default; faiss-pq keeps float32)")
    parser.add_argument("--autofaiss", choices=["both", "64B", "none"], default="both")
    parser.add_argument("--compact", nargs="*", default=[],
                        help="extra FAISS factory strings to measure (≤ 64 B/vector candidates)")
    args = parser.parse_args()
    loads = [os.getloadavg()]
    started = time.strftime("%H:%M", time.gmtime())
    faiss.omp_set_num_threads(min(2, os.cpu_count() or 1))
    vectors = clustered(args.n, args.clusters, args.decay, args.spread, seed=1)
    queries = clustered(args.queries, args.clusters, args.decay, args.spread, seed=2)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    truth = flat.search(queries, 10)[1]
    gaps = (queries[:, None, :] @ vectors[truth[:, [0, 9]]].transpose(0, 2, 1))[:, 0]
    print(f"# {args.n} vectors, {args.clusters} clusters, decay {args.decay}, spread {args.spread}; "
          f"median cosine of the exact 1st / 10th neighbour: {np.median(gaps[:, 0]):.3f} / {np.median(gaps[:, 1]):.3f}\n",
          flush=True)

    base = "brute force (float32 scan)"
    searchers = {base: faiss_searcher(flat)}
    builds = {base: (0.0, DIM * 4, "Flat", float("nan"))}  # (seconds, bytes/vector, what, peak MB)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_shards(vectors, tmp / "idx")
        for library in args.libraries:
            folder = tmp / f"idx-{library}"
            shutil.copytree(tmp / "idx", folder)  # each library builds from the same shard files
            index, seconds, size, peak = build_clipdesk(folder, library)
            name = f"clipdesk index ({library})"
            tuned = index.state.get("tuned") or {}
            what = library + (f" nprobe {tuned['nprobe']}, k_factor {tuned['k_factor']} (tuning recall "
                              f"{tuned['recall_at_10']})" if tuned else "")
            builds[name] = (seconds, size / args.n, what, peak)
            searchers[name] = clipdesk_searcher(index)
            print(f"  built {name}: {seconds:.1f} s, {size / args.n:.1f} B/vector, {what}", flush=True)
        for key in args.compact:
            compact = faiss.index_factory(DIM, key, faiss.METRIC_INNER_PRODUCT)
            start = time.perf_counter()
            compact.train(vectors[:65_536])
            compact.add(vectors)
            faiss.extract_index_ivf(compact).nprobe = 64 if "IVF" in key else 1
            builds[key] = (time.perf_counter() - start, len(faiss.serialize_index(compact)) / args.n,
                           key + " nprobe 64", float("nan"))
            searchers[key] = faiss_searcher(compact)
        if args.autofaiss != "none":
            npy = tmp / "x.npy"
            np.save(npy, vectors)
            budgets = {"autofaiss (64 B/vector asked)": f"{64 * args.n / 1e6:.1f}MB"}
            if args.autofaiss == "both":
                budgets = {"autofaiss (default budget)": "default", **budgets}
            for name, budget in budgets.items():
                auto, seconds, size, key, peak = build_autofaiss(npy, tmp / f"{budget}.index", budget)
                builds[name] = (seconds, size / args.n, key, peak)
                searchers[name] = faiss_searcher(auto)
                print(f"  built {name}: {seconds:.1f} s, {size / args.n:.1f} B/vector, {key}", flush=True)
        faiss.omp_set_num_threads(1)  # one query at a time, as `clipdesk search --index` asks
        loads.append(os.getloadavg())

        def leg(search):
            def run() -> Sample:
                ids, per_query = one_by_one(search, queries)
                return Sample({"ms/query": per_query * 1e3, "recall@10": recall_at_10(ids, truth)})
            return run

        results = interleave({name: leg(s) for name, s in searchers.items()}, rounds=args.rounds)
    loads.append(os.getloadavg())
    print("| index | what | build (s) | build peak RSS (MB) | bytes/vector | 10-recall@10 | ms/query median (min–max) "
          "| queries/s | × brute force (min–max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in searchers:
        seconds, per_vector, what, peak = builds[name]
        times = results.values(name, "ms/query")
        speed = [1 / r for r in results.ratios(name, base, "ms/query")]
        print(f"| {name} | {what} | {seconds:.1f} | {peak:.0f} | {per_vector:.1f} | {results.median(name, 'recall@10'):.3f} | "
              f"{np.median(times):.3f} ({min(times):.3f}–{max(times):.3f}) | {1e3 / np.median(times):.0f} | "
              f"{np.median(speed):.1f}× ({min(speed):.1f}–{max(speed):.1f}) |")
    print(f"\n{args.rounds} interleaved rounds of {args.queries} single queries, one thread; builds with 2 threads, "
          f"once each, in child processes (peak RSS = the child's). Started {started} UTC, ended "
          f"{time.strftime('%H:%M', time.gmtime())}; load average (1/5/15 min) at start "
          f"{'/'.join(f'{x:.1f}' for x in loads[0])}, after the builds {'/'.join(f'{x:.1f}' for x in loads[1])}, "
          f"at the end {'/'.join(f'{x:.1f}' for x in loads[2])}.")


def clipdesk_searcher(index: VectorIndex):
    """The index's ANN asked for ids; without decode errors an id is its row number."""
    index.search(np.zeros(DIM, np.float32), 1)  # loads the saved index, as the first search does
    ann = index.ann
    return lambda q: ann.search(q, 10)[0]


if __name__ == "__main__":
    main()
