"""Core engine speed and memory, against baselines measured in the same run (issue 2).

    python benchmarks/bench_core.py            # 200 photos, ≈ 5 min once the photos exist
    python benchmarks/bench_core.py --quick    # a smoke run, ≈ 1 min
    python benchmarks/bench_core.py --memory 2000   # also peak RSS for 2,000 photos

ViT-B-32 with seeded random weights (speed does not depend on the weights), fp32, CPU,
10 labels, synthetic 12-MP JPEGs (benchmarks/_images.py). Measured:

  (a) naive   open_clip's README loop per image: Image.open, preprocess, encode_image,
              encode_text of the 10 labels, softmax
  (b) encoder batched `encode_image` on ready-made tensors (no decoding at all); measured
              before and after (c) and averaged, because the machine is shared
  (c) clipdesk Engine end to end with a cold cache: label_set + embed_job + score
  (d) warm    the same photos again with 10 new labels, cache warm (a new Engine, as a new
              session would), model load excluded; median of 3 runs with different labels
  (e) memory  peak RSS (VmHWM) of a separate process doing (c) on N photos

Prints img/s and the ratios the issue sets targets for: c/a ≥ 5, c/b ≥ 0.75, d/c ≤ 0.05,
peak < 2 GB for 2,000 photos. `--markdown` also prints the rows for benchmarks/README.md.
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

from _images import DATA, ensure_photos, unique_copies  # noqa: E402

ARCH = "ViT-B-32"
LABELS = ["cat", "dog", "car", "bicycle", "beach", "mountain", "city street", "forest",
          "a plate of food", "a group of people"]
# (d) runs three times with fresh labels each time (never in the text cache); the median counts,
# as one short run on a shared machine can land on someone else's burst.
NEW_LABEL_SETS = [
    ["bird", "horse", "boat", "train", "lake", "desert", "night sky", "snow", "a bowl of fruit",
     "a child playing"],
    ["owl", "cow", "canoe", "tram", "river", "canyon", "sunset", "fog", "a cup of coffee",
     "an old man reading"],
    ["parrot", "sheep", "yacht", "bus", "waterfall", "glacier", "rainbow", "storm", "a birthday cake",
     "two friends talking"],
]
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
    """Seconds to encode `count` ready-made 224×224 tensors in batches (after one warm-up batch)."""
    import torch

    size = loaded.image_size
    batch = torch.randn(batch_size, 3, size, size)
    with torch.inference_mode():
        loaded.model.encode_image(batch[:2])
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
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--images", type=int, help="photos for (c) and (d) (default 200, quick 24)")
    parser.add_argument("--naive-images", type=int, help="photos for (a) (default 20, quick 4)")
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

    n_images = args.images or (24 if args.quick else 200)
    n_naive = args.naive_images or (4 if args.quick else 20)
    n_memory = args.memory or n_images
    n_tensors = 32 if args.quick else 96
    load_before = os.getloadavg()[0]
    log(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), {default_workers()} decode workers")
    pool = ensure_photos(max(n_images, n_naive), log=log)
    mb = sum(p.stat().st_size for p in pool[:n_images]) / len(pool[:n_images]) / 1e6
    log(f"{n_images} photos of 4000×3000, {mb:.1f} MB each on average")

    loaded = load_model(ARCH, "none", "cpu")
    encoder_only(loaded, 4, 2)  # warm up allocator and kernels for everyone alike

    log("(a) naive loop…")
    naive_s = naive_loop(loaded, pool[:n_naive])
    log("(b) encoder alone…")
    encoder_s = [encoder_only(loaded, n_tensors, args.batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        cache_path = Path(tmp) / "cache.sqlite3"
        log("(c) clipdesk, cold cache…")
        cold = clipdesk_run(loaded, pool[:n_images], cache_path, LABELS, args.batch_size)
        log("(b) encoder alone, again…")
        encoder_s.append(encoder_only(loaded, n_tensors, args.batch_size))
        log("(d) clipdesk, warm cache, new labels (3 runs)…")
        warm_runs = [clipdesk_run(loaded, pool[:n_images], cache_path, labels, args.batch_size)
                     for labels in NEW_LABEL_SETS]
    warm = sorted(warm_runs, key=lambda run: run["seconds"])[1]
    warm["runs_s"] = [run["seconds"] for run in warm_runs]
    assert cold["encoded"] == n_images and all(run["encoded"] == 0 for run in warm_runs)
    log(f"(e) peak memory, {n_memory} photos in a separate process…")
    memory = measure_memory(pool, n_memory, args.batch_size)
    load_after = os.getloadavg()[0]

    rates = {
        "naive": n_naive / naive_s,
        "encoder": n_tensors * len(encoder_s) / sum(encoder_s),
        "clipdesk": n_images / cold["seconds"],
    }
    ratios = {
        "c/a": rates["clipdesk"] / rates["naive"],
        "c/b": rates["clipdesk"] / rates["encoder"],
        "d/c": warm["seconds"] / cold["seconds"],
    }
    lines = [
        f"(a) naive README loop      {rates['naive']:6.2f} img/s  ({n_naive} photos, {naive_s:.1f} s)",
        f"(b) encode_image alone     {rates['encoder']:6.2f} img/s  (batch {args.batch_size}; runs: "
        + ", ".join(f"{n_tensors / s:.2f}" for s in encoder_s) + ")",
        f"(c) clipdesk, cold cache   {rates['clipdesk']:6.2f} img/s  ({n_images} photos, "
        f"{cold['seconds']:.1f} s; first batch after {cold['first_batch_s']:.1f} s)",
        f"(d) clipdesk, warm + new labels  {warm['seconds']:.2f} s median  "
        f"({warm['encoded']} images and {warm['text_encodes']} labels encoded; runs: "
        + ", ".join(f"{s:.2f}" for s in warm["runs_s"]) + " s)",
        f"(e) peak RSS, {memory['images']} photos  {memory['peak_mb']:.0f} MB  "
        f"(after model load {memory['after_load_mb']:.0f} MB)",
        "",
        f"c/a = {ratios['c/a']:.2f}×   target ≥ 5×      {'PASS' if ratios['c/a'] >= 5 else 'MISS'}",
        f"c/b = {ratios['c/b']:.2f}×   target ≥ 0.75×   {'PASS' if ratios['c/b'] >= 0.75 else 'MISS'}",
        f"d/c = {ratios['d/c']:.1%}   target ≤ 5%      {'PASS' if ratios['d/c'] <= 0.05 else 'MISS'}",
        f"peak = {memory['peak_mb'] / 1024:.2f} GB for {memory['images']} photos   target < 2 GB "
        f"for 2,000   {'PASS' if memory['peak_mb'] < 2048 else 'MISS'}"
        + ("" if memory["images"] >= 2000 else " (run --memory 2000 for the real check)"),
        f"load average {load_before:.1f} before, {load_after:.1f} after (other processes share the cores)",
    ]
    print("\n".join(lines))
    if args.markdown:
        print()
        print(markdown_rows(rates, ratios, cold, warm, memory, n_naive, n_images))
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "ratios": ratios, "cold": cold, "warm": warm,
                                         "memory": memory, "load": [load_before, load_after]}, indent=1))
    return 0


def markdown_rows(rates, ratios, cold, warm, memory, n_naive, n_images) -> str:
    return "\n".join([
        "| measurement | result | target |",
        "|---|---|---|",
        f"| (a) naive README loop, {n_naive} photos | {rates['naive']:.2f} img/s | |",
        f"| (b) `encode_image` alone, ready tensors | {rates['encoder']:.2f} img/s | |",
        f"| (c) clipdesk end to end, cold cache, {n_images} photos | {rates['clipdesk']:.2f} img/s | |",
        f"| c / a | **{ratios['c/a']:.1f}×** | ≥ 5× |",
        f"| c / b | **{ratios['c/b']:.2f}×** | ≥ 0.75× |",
        f"| (d) same photos, new labels, warm cache | {warm['seconds']:.2f} s vs {cold['seconds']:.1f} s cold "
        f"= **{ratios['d/c']:.1%}** | ≤ 5% |",
        f"| (e) peak RSS, {memory['images']} photos | **{memory['peak_mb']:.0f} MB** "
        f"(model loaded: {memory['after_load_mb']:.0f} MB) | < 2 GB for 2,000 |",
    ])


if __name__ == "__main__":
    sys.exit(main())
