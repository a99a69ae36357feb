"""Scale benchmark: single process against a local Ray, and ANN search against a brute-force scan.

    python benchmarks/bench_scale.py throughput --images 400          # demo model, generated JPEGs
    python benchmarks/bench_scale.py throughput --images 64           # a smoke run
    python benchmarks/bench_scale.py ann --sizes 5000 --queries 20    # a smoke run
    python benchmarks/bench_scale.py ann --sizes 10000 100000 1000000 # random unit vectors, dim 512
    python benchmarks/bench_scale.py ann --sizes 100000 --data clustered --library faiss usearch
    python benchmarks/bench_scale.py labels --images 200                # re-scoring vs re-encoding
    python benchmarks/bench_scale.py labels --images 100 --model ViT-B-32 --pretrained none

throughput: the same whole job in both legs: open the model, `index` the folder (decode, encode,
write the shards) into a new folder without an embedding cache — once in this process
(`clipdesk index`) and once through a local Ray with all cores (`clipdesk index --ray`, whose
actors load the model themselves). Interleaved rounds after one warm-up round each; `ray.init`
runs once before the rounds (like joining a running cluster) and is reported apart. On a 2-core
machine expect parity at best: the actors compete with the decode tasks for the same two cores;
Ray pays off with more cores, GPUs or machines.

labels: what a change of labels costs on an index (in-process, the per-image costs Ray's actors
pay too): the first run (decode + encode + score), a run with new labels (the stored embeddings
re-scored), the first multi-label run (the quarters encoded too: 5 images a picture) and one with
new labels again (stored whole + quarter embeddings re-scored), with the shards' size on disk.
Storing the quarters costs 4 × D × 4 bytes an image; recomputing them in the actors at every label
change would cost the multi-label run's encode time every time instead.

ann: exact top-10 by a batched matrix product is the ground truth; brute force is timed the way
`search` would run it (one query: a matrix-vector product and a partial sort); each library's
index is timed per single query at several efSearch (HNSW) or k_factor (PQ) values. Every leg
(brute force included) searches the same queries, one untimed warm-up pass each, then
interleaved timed passes. Reported: recall@10, ms/query, speed-up (brute/leg per round, median
and min–max), build time, index size on disk. Random unit vectors are the hardest case for any
graph index (every point is almost equally far from every other); `--data clustered` draws
vectors around 1,000 centres, closer to real CLIP embeddings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "core"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _compare import Sample, format_ratio, interleave, page_cache  # noqa: E402


# -- throughput ----------------------------------------------------------------------------------
def throughput(images: int, model: str, backend: str, rounds: int) -> None:
    """Both legs do the same whole job: open the model, index the folder, write the shards."""
    from synth_images import save_image

    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.jobs import run_job
    from clipdesk.scale.pipeline import IndexOptions, ModelSpec, connect, index_job

    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "photos"
        for i in range(images):
            save_image(folder / f"{i:05d}.jpg", seed=i, width=320, height=240, quality=90)
        files = sorted(folder.iterdir())
        spec = ModelSpec(model, "demo" if model == "demo" else "none", "cpu", backend)
        start = time.perf_counter()
        connect(None, num_cpus=os.cpu_count())  # once, like a running cluster; reported, not in the legs
        ray_start = time.perf_counter() - start

        def leg(use_ray: bool):
            def run() -> None:
                with tempfile.TemporaryDirectory(dir=temp) as out:
                    engine = run_job(open_engine_job(spec.arch, spec.pretrained, "cpu", backend, use_cache=False))
                    options = IndexOptions(shard_size=100, use_ray=use_ray)
                    result = run_job(index_job(spec, [str(folder)], Path(out) / "idx", engine, options))
                    assert result.complete and result.written == len(result.shards)
            return run

        results = interleave({"single process": leg(False), f"local Ray, {os.cpu_count()} CPUs": leg(True)},
                             rounds=rounds, warmup=1, between=lambda: page_cache(files, "warm"))
        print(f"{images} JPEGs 320×240, {model}, {backend}; each leg: open the model, `index` the folder "
              f"(decode, encode, write shards) into a new folder, no embedding cache; page cache warm for "
              f"both; ray.init once before the rounds: {ray_start:.1f} s, not in the Ray leg")
        print(results.table(base="single process", title="path"))
        for name in results.samples:
            print(f"{name}: {images / results.median(name):.1f} images/s (median)")


# -- labels: re-score or re-encode ------------------------------------------------------------------
def labels(images: int, model: str, pretrained: str, backend: str) -> None:
    from synth_images import save_image

    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.jobs import run_job
    from clipdesk.scale import shards as sh
    from clipdesk.scale.pipeline import IndexOptions, ModelSpec, index_job

    first, second = ["red circle", "blue star", "green square"], ["circle", "star", "square", "heart"]
    with tempfile.TemporaryDirectory() as temp:
        folder, out = Path(temp) / "photos", Path(temp) / "idx"
        for i in range(images):
            save_image(folder / f"{i:05d}.jpg", seed=i, width=640, height=480, quality=90)
        spec = ModelSpec(model, pretrained, "cpu", backend)
        engine = run_job(open_engine_job(model, pretrained, "cpu", backend, use_cache=False))
        run_job(engine.embed_job(sorted(folder.iterdir())[:8]))  # warm: first-call costs paid
        print(f"{images} images 640×480, {model} ({pretrained}), {backend}, cores={os.cpu_count()}")
        print("| run | wall s | CPU s | CPU ms/image | shards written / re-scored | shard MB |\n|---|---|---|---|---|---|")
        files = sorted(folder.iterdir())
        wall, cpu = time.perf_counter(), time.process_time()
        whole = run_job(engine.embed_job(files))
        run_job(engine.quarters_job(whole.paths, whole.features))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"| core, as `classify --multi-label` (embed_job + quarters_job) | {wall:.2f} | {cpu:.2f} "
              f"| {cpu / images * 1e3:.1f} | – | – |", flush=True)
        for name, labels_, multi in [("first run, labels A", first, False), ("new labels B", second, False),
                                     ("multi-label, labels B (encodes quarters)", second, True),
                                     ("multi-label, new labels A", first, True)]:
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_job(index_job(spec, [str(folder)], out, engine,
                                       IndexOptions(labels=labels_, multi_label=multi, shard_size=50, use_ray=False)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            size = sum((out / n).stat().st_size for n in sh.existing_shards(out)) / 1e6
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / images * 1e3:.1f} | {result.written} / {result.rescored} "
                  f"| {size:.1f} |", flush=True)


# -- ANN --------------------------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def vectors(n: int, dim: int, kind: str, rng) -> np.ndarray:
    if kind == "random":
        out = np.empty((n, dim), np.float32)
        for s in range(0, n, 100_000):  # in slices: 1M × 512 float64 would be 4 GB
            out[s : s + 100_000] = unit(rng.standard_normal((min(100_000, n - s), dim), dtype=np.float32))
        return out
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        out[s : s + m] = unit(centres[rng.integers(0, 1000, m)] + 0.5 * rng.standard_normal((m, dim), dtype=np.float32))
    return out


def exact_top(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    top = []
    for q in np.array_split(queries, max(1, len(queries) // 25)):
        scores = q @ x.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        top.append(np.take_along_axis(part, order, 1))
    return np.concatenate(top)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def timed(run, queries) -> tuple[float, float]:
    """(wall ms, CPU ms) per query; CPU time is the steadier figure on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    for q in queries:
        run(q)
    n = len(queries)
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def brute(x: np.ndarray, k: int):
    def run(q):
        scores = x @ q
        return np.argpartition(-scores, k)[:k]

    return run


def ann(sizes: list[int], dim: int, data: str, libraries: list[str], efs: list[int], k_factors: list[int],
        queries_n: int, rounds: int) -> None:
    """Per size: recall of each setting (untimed), then brute force and every setting timed on the
    same queries, interleaved, after one untimed pass each (warm-up alike)."""
    from clipdesk.scale import ann as lib

    rng = np.random.default_rng(0)
    print(f"data={data} dim={dim} queries={queries_n} (the same for every leg) HNSW M={lib.CONNECTIVITY} "
          f"efConstruction={lib.EXPANSION_ADD} cores={os.cpu_count()}; {rounds} interleaved rounds after "
          "one warm-up pass each; speed-up = brute/leg per round, median (min–max)")
    print("| vectors | method | build s | size MB | efSearch / k_factor | recall@10 | ms/query wall / CPU "
          "| speed-up wall | speed-up CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        x = vectors(n, dim, data, rng)
        queries = vectors(queries_n, dim, data, rng) if data == "random" else unit(x[rng.integers(0, n, queries_n)] + 0.1 * rng.standard_normal((queries_n, dim), dtype=np.float32))
        truth = exact_top(x, queries, 10)
        legs = {"brute force (numpy)": pass_over(brute(x, 10), queries)}
        rows = {"brute force (numpy)": ("–", f"{x.nbytes / 1e6:.0f}", "–", "1.000")}
        indexes = []
        for name in libraries:
            index = lib.LIBRARIES[name](dim)
            start = time.perf_counter()
            index.add(np.arange(n, dtype=np.int64), x)
            build = time.perf_counter() - start
            with tempfile.TemporaryDirectory() as temp:
                path = Path(temp) / index.file
                index.save(path)
                size = path.stat().st_size / 1e6
            kind = "PQ fast-scan + exact re-rank" if name == "faiss-pq" else "HNSW"
            for ef in (k_factors if name == "faiss-pq" else efs):
                _set_ef(index, ef)
                found = np.stack([_pad(index.search(q, 10)[0]) for q in queries])
                leg = f"{name} {kind}, {ef}"
                legs[leg] = pass_over(lambda q, index=index: index.search(q, 10), queries,
                                      setup=lambda index=index, ef=ef: _set_ef(index, ef))
                rows[leg] = (f"{build:.1f}", f"{size:.0f}", str(ef), f"{recall(found, truth):.3f}")
            indexes.append(index)
        results = interleave(legs, rounds=rounds, warmup=1)
        base = "brute force (numpy)"
        for leg, (build, size, ef, rec) in rows.items():
            wall, cpu = results.median(leg, "wall ms"), results.median(leg, "CPU ms")
            speed = ("1.0×" if leg == base else format_ratio(results.ratio(base, leg, "wall ms")),
                     "1.0×" if leg == base else format_ratio(results.ratio(base, leg, "CPU ms")))
            print(f"| {n:,} | {leg} | {build} | {size} | {ef} | {rec} | {wall:.2f} / {cpu:.2f} | {speed[0]} "
                  f"| {speed[1]} |", flush=True)
        del indexes


def pass_over(run, queries, setup=None):
    """A leg: `setup` (untimed: the setting this leg searches with), then `run` on every query
    once; (wall ms, CPU ms) per query."""
    def leg() -> Sample:
        if setup is not None:
            setup()
        wall, cpu = timed(run, queries)
        return Sample({"wall ms": wall, "CPU ms": cpu})
    return leg


def _pad(keys: np.ndarray) -> np.ndarray:
    return np.pad(keys[:10], (0, max(0, 10 - len(keys))), constant_values=-1)


def _set_ef(index, ef: int) -> None:
    """efSearch for HNSW; for PQ + refine, the re-ranked candidates per result (k_factor)."""
    if index.name == "faiss-pq":
        index.refine.k_factor = ef
    elif index.name == "faiss":
        import faiss

        faiss.downcast_index(index.index.index).hnsw.efSearch = ef
    else:
        index.index.expansion_search = ef


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tp = commands.add_parser("throughput")
    tp.add_argument("--images", type=int, default=400)
    tp.add_argument("--model", default="demo")
    tp.add_argument("--backend", default="auto")
    tp.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    lb = commands.add_parser("labels")
    lb.add_argument("--images", type=int, default=200)
    lb.add_argument("--model", default="demo")
    lb.add_argument("--pretrained", default="demo")
    lb.add_argument("--backend", default="torch")
    an = commands.add_parser("ann")
    an.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    an.add_argument("--dim", type=int, default=512)
    an.add_argument("--data", choices=["random", "clustered"], default="random")
    an.add_argument("--library", nargs="+", default=["faiss-pq"], choices=["faiss-pq", "faiss", "usearch"])
    an.add_argument("--ef", type=int, nargs="+", default=[64, 256, 1024], help="HNSW efSearch values")
    an.add_argument("--k-factor", type=int, nargs="+", default=[200, 1000, 2000],
                    help="faiss-pq: candidates re-ranked exactly, per result")
    an.add_argument("--queries", type=int, default=100)
    an.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    args = parser.parse_args()
    if args.command == "throughput":
        throughput(args.images, args.model, args.backend, args.rounds)
    elif args.command == "labels":
        labels(args.images, args.model, args.pretrained, args.backend)
    else:
        ann(args.sizes, args.dim, args.data, args.library, args.ef, args.k_factor, args.queries, args.rounds)


if __name__ == "__main__":
    main()
