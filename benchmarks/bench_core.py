"""Core engine speed and memory, against baselines measured in the same run (issue 2).

    python benchmarks/bench_core.py                 # 64 photos, 3 rounds
    python benchmarks/bench_core.py --quick         # 8 photos: a smoke run
    python benchmarks/bench_core.py --page-cache cold   # every leg reads the photos from disk
    python benchmarks/bench_core.py --memory 2000   # also peak RSS for 2,000 photos

ViT-B-32 with seeded random weights (speed does not depend on the weights), fp32, CPU,
10 labels, synthetic 12-MP JPEGs (benchmarks/_images.py). Legs, all on the same N photos:

  (a) naive   open_clip's README loop per image: Image.open, preprocess, encode_image,
              encode_text of the 10 labels, softmax
  (b) encoder batched `encode_image` on N ready-made tensors (no decoding at all)
  (c) cold    clipdesk Engine end to end, embedding cache EMPTY (a new cache file each run):
              label_set + embed_job + score
  (d) warm    the same photos through a new Engine whose embedding cache already holds every
              photo (filled once before the rounds), with 10 labels never seen before

What is warm or cold, alike for every leg: the model is loaded once before all legs (in memory
for every leg; its load is in none); the photos' page cache is put in the same state before every
leg (`--page-cache warm`, the default: read once; `cold`: their pages dropped with
posix_fadvise), so (c) and (d) differ only in the embedding cache. The legs run in interleaved
rounds (order rotated) after one warm-up round each (benchmarks/_compare.py); ratios are taken
within each round, then the median (min–max).

  (e) memory  peak RSS (VmHWM) of a separate process doing (c) on N photos (one run, not a ratio)

Prints the ratios the issue sets targets for: c/a ≥ 5 (a's time / c's), c/b ≥ 0.75 (b's time /
c's), d/c ≤ 0.05, peak < 2 GB for 2,000 photos. `--markdown` also prints README table rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _compare import format_ratio, interleave, page_cache, page_cache_note  # noqa: E402
from _images import DATA, ensure_photos, unique_copies  # noqa: E402

ARCH = "ViT-B-32"
LABELS = ["cat", "dog", "car", "bicycle", "beach", "mountain", "city street", "forest",
          "a plate of food", "a group of people"]
# (d) gets labels never seen before in every run (never in the text cache), like (c)'s fresh cache.
NEW_WORDS = ["bird", "horse", "boat", "train", "lake", "desert", "night sky", "snow", "a bowl of fruit",
             "a child playing"]
TEMPLATE = "a photo of a {}."  # the same prompt clipdesk's default `photo` set builds


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux, VmHWM: getrusage's ru_maxrss survives fork + exec, so a
    child spawned by a process holding a loaded model would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB


# -- (a) the naive loop --------------------------------------------------------------------------
def naive_loop(loaded, paths: list[Path]) -> float:
    """open_clip README, verbatim in spirit: every image re-encodes the labels too."""
    import torch
    from PIL import Image

    model, preprocess, tokenizer = loaded.model, loaded.preprocess, loaded.tokenizer
    start = time.perf_counter()
    for path in paths:
        image = preprocess(Image.open(path)).unsqueeze(0)
        text = tokenizer([TEMPLATE.format(label) for label in LABELS])
        with torch.no_grad():
            image_features = model.encode_image(image)
            text_features = model.encode_text(text)
            image_features /= image_features.norm(dim=-1, keepdim=True)
            text_features /= text_features.norm(dim=-1, keepdim=True)
            probs = (100.0 * image_features @ text_features.T).softmax(dim=-1)
        assert probs.shape == (1, len(LABELS))
    return time.perf_counter() - start


# -- (b) the encoder alone -----------------------------------------------------------------------
def encoder_only(loaded, count: int, batch_size: int) -> float:
    """Seconds to encode `count` ready-made 224×224 tensors in batches (warmed like every leg: by
    the harness's warm-up round, not here)."""
    import torch

    size = loaded.image_size
    batch = torch.randn(batch_size, 3, size, size)
    with torch.inference_mode():
        start = time.perf_counter()
        for done in range(0, count, batch_size):
            loaded.model.encode_image(batch[: min(batch_size, count - done)])
    return time.perf_counter() - start


# -- (c) and (d) clipdesk ------------------------------------------------------------------------
def clipdesk_run(loaded, paths: list[Path], cache_path: Path, labels: list[str],
                 batch_size: int) -> dict:
    """label_set + embed_job + score through a fresh Engine; returns timings and counts."""
    from clipdesk.core.backends import TorchEncoder
    from clipdesk.core.cache import EmbeddingCache
    from clipdesk.core.engine import Engine
    from clipdesk.core.jobs import run_job

    cache = EmbeddingCache(cache_path)
    engine = Engine(TorchEncoder(loaded), cache)
    first_batch: list[float] = []
    start = time.perf_counter()

    def on_progress(progress) -> None:
        if progress.done and not first_batch:
            first_batch.append(time.perf_counter() - start)

    label_set = engine.label_set(labels)
    result = run_job(engine.embed_job(paths, batch_size=batch_size), on_progress)
    scores = engine.score(result.features, label_set)
    seconds = time.perf_counter() - start
    cache.close()
    assert scores.probs.shape == (len(paths), len(labels)) and not result.errors
    return {"seconds": seconds, "encoded": result.encoded, "text_encodes": engine.text_encodes,
            "first_batch_s": first_batch[0] if first_batch else None}


# -- (e) memory, in its own process -------------------------------------------------------------
def memory_child(folder: Path, count: int, batch_size: int) -> None:
    """Runs in a subprocess: load, embed `count` photos with a cold cache, score; print JSON."""
    from clipdesk.core.models import load_model

    loaded = load_model(ARCH, "none", "cpu")
    after_load = peak_rss_mb()
    paths = sorted(folder.glob("*.jpg"))[:count]
    with tempfile.TemporaryDirectory() as tmp:
        run = clipdesk_run(loaded, paths, Path(tmp) / "cache.sqlite3", LABELS, batch_size)
    print(json.dumps({"images": len(paths), "after_load_mb": after_load, "peak_mb": peak_rss_mb(),
                      "seconds": run["seconds"]}))


def measure_memory(pool: list[Path], count: int, batch_size: int) -> dict:
    folder = pool[0].parent
    copies = None
    if count > len(pool):  # distinct contents, so every file is a real cache miss
        copies = DATA / "memory_copies"
        log(f"  writing {count} distinct copies for the memory run…")
        unique_copies(pool, count, copies)
        folder = copies
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(count), "--data", str(folder),
             "--batch-size", str(batch_size)],
            capture_output=True, text=True, check=False,
        )
    finally:
        if copies is not None:
            shutil.rmtree(copies, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"memory run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 photos: a smoke run")
    parser.add_argument("--images", type=int, help="photos every leg works on (default 64, quick 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--page-cache", choices=["warm", "cold"], default="warm",
                        help="the photos' page-cache state before every leg")
    parser.add_argument("--memory", type=int, help="photos for (e) (default: --images)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--markdown", action="store_true", help="also print README table rows")
    parser.add_argument("--json", type=Path, help="write the numbers to this file")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.data, args.memory_child, args.batch_size)
        return 0

    import torch

    from clipdesk.core.embed import default_workers
    from clipdesk.core.models import load_model

    n_images = args.images or (8 if args.quick else 64)
    n_memory = args.memory or n_images
    load_before = os.getloadavg()[0]
    log(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {default_workers()} decode workers")
    paths = ensure_photos(n_images, log=log)
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    log(f"{n_images} photos of 4000×3000, {mb:.1f} MB each on average")

    loaded = load_model(ARCH, "none", "cpu")
    runs = [0]

    def fresh_labels() -> list[str]:
        runs[0] += 1
        return [f"{word} {runs[0]}" for word in NEW_WORDS]

    with tempfile.TemporaryDirectory() as tmp:
        warm_cache = Path(tmp) / "warm.sqlite3"
        clipdesk_run(loaded, paths, warm_cache, fresh_labels(), args.batch_size)  # fills (d)'s cache

        def cold() -> float:
            cache = Path(tmp) / f"cold-{runs[0]}.sqlite3"
            run = clipdesk_run(loaded, paths, cache, LABELS, args.batch_size)
            cache.unlink()
            assert run["encoded"] == n_images and run["text_encodes"] == len(LABELS)
            return run["seconds"]

        def warm() -> float:
            labels = fresh_labels()
            run = clipdesk_run(loaded, paths, warm_cache, labels, args.batch_size)
            assert run["encoded"] == 0 and run["text_encodes"] == len(labels)
            return run["seconds"]

        legs = {"(a) naive README loop": lambda: naive_loop(loaded, paths),
                "(b) encode_image alone": lambda: encoder_only(loaded, n_images, args.batch_size),
                "(c) clipdesk, empty cache": cold,
                "(d) clipdesk, cache warm, new labels": warm}
        results = interleave(legs, rounds=args.rounds, warmup=1, log=log,
                             between=lambda: page_cache(paths, args.page_cache))
    log(f"(e) peak memory, {n_memory} photos in a separate process…")
    memory = measure_memory(paths, n_memory, args.batch_size)
    load_after = os.getloadavg()[0]

    a, b, c, d = legs
    ratios = {"c/a": results.ratio(a, c), "c/b": results.ratio(b, c), "d/c": results.ratio(d, c)}
    lines = [
        f"{n_images} photos in every leg; model loaded once before all legs (no leg pays its load); "
        f"{page_cache_note(args.page_cache)}; (c) empty embedding cache, (d) every photo cached, new labels",
        results.table(base=c, title=f"leg ({n_images} photos)"),
        "",
        f"(e) peak RSS, {memory['images']} photos  {memory['peak_mb']:.0f} MB  "
        f"(after model load {memory['after_load_mb']:.0f} MB)",
        "",
        f"c/a = {format_ratio(ratios['c/a'])}   target ≥ 5×      {'PASS' if ratios['c/a'][0] >= 5 else 'MISS'}",
        f"c/b = {format_ratio(ratios['c/b'])}   target ≥ 0.75×   {'PASS' if ratios['c/b'][0] >= 0.75 else 'MISS'}",
        f"d/c = {ratios['d/c'][0]:.1%} ({ratios['d/c'][1]:.1%}–{ratios['d/c'][2]:.1%})   target ≤ 5%   "
        f"{'PASS' if ratios['d/c'][0] <= 0.05 else 'MISS'}",
        f"peak = {memory['peak_mb'] / 1024:.2f} GB for {memory['images']} photos   target < 2 GB "
        f"for 2,000   {'PASS' if memory['peak_mb'] < 2048 else 'MISS'}"
        + ("" if memory["images"] >= 2000 else " (run --memory 2000 for the real check)"),
        f"load average {load_before:.1f} before, {load_after:.1f} after (other processes share the cores)",
    ]
    print("\n".join(lines))
    if args.markdown:
        print()
        print(markdown_rows(results, legs, ratios, memory, n_images))
    if args.json:
        args.json.write_text(json.dumps({"seconds": {leg: results.values(leg) for leg in legs}, "ratios": ratios,
                                         "memory": memory, "load": [load_before, load_after],
                                         "page_cache": args.page_cache}, indent=1))
    return 0


def markdown_rows(results, legs, ratios, memory, n_images) -> str:
    a, b, c, d = legs
    rate = {leg: n_images / results.median(leg) for leg in legs}
    return "\n".join([
        f"| {n_images} photos, median of {len(results.values(a))} interleaved rounds | result | target |",
        "|---|---|---|",
        f"| (a) naive README loop | {rate[a]:.2f} img/s | |",
        f"| (b) `encode_image` alone, ready tensors | {rate[b]:.2f} img/s | |",
        f"| (c) clipdesk end to end, empty embedding cache | {rate[c]:.2f} img/s | |",
        f"| c / a | **{format_ratio(ratios['c/a'])}** | ≥ 5× |",
        f"| c / b | **{format_ratio(ratios['c/b'])}** | ≥ 0.75× |",
        f"| (d) / (c): same photos, cache warm, new labels | **{ratios['d/c'][0]:.1%}** "
        f"({ratios['d/c'][1]:.1%}–{ratios['d/c'][2]:.1%}) | ≤ 5% |",
        f"| (e) peak RSS, {memory['images']} photos | **{memory['peak_mb']:.0f} MB** "
        f"(model loaded: {memory['after_load_mb']:.0f} MB) | < 2 GB for 2,000 |",
    ])


if __name__ == "__main__":
    sys.exit(main())
