"""Decode speed of the new photo formats against JPEG, through clipdesk's one decoding path (issue 14).

    python benchmarks/bench_formats.py            # 6 photos per kind, ≈ 2 min once they exist
    python benchmarks/bench_formats.py --count 3  # a smoke run

Synthetic 12-MP (4000×3000) photos from benchmarks/_images.py, written once into
benchmarks/_data/formats/ (git-ignored): JPEG q90, HEIC q50 (pillow-heif, x265), and DNGs made
with tifffile (tests/core/synth_raw.py; 12-bit RGGB mosaic, uncompressed ≈ 24 MB) with and
without an embedded full-size JPEG preview (q90). Real camera RAWs are compressed (≈ 15-30 MB) and
their demosaic runs on more varied data; the preview path is the same. Each file is decoded with `open_image` — read,
decode, upright, RGB — one at a time on one thread, at `--draft` (the default 2 × 256 px of
ViT-B-32-256, what classify/search use) and exact (`--exact`, full size). RAW files go through
the preview path (LibRaw's `extract_thumb`, JPEG draft decode) or, without a preview, LibRaw's
half-size demosaic. Prints images/s per kind; the cores are shared with other work, so the
numbers are noisy (each is the best of `--repeat` passes over the files).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests" / "core"))

from _images import DATA, QUALITY, synth_photo  # noqa: E402
from synth_raw import write_dng  # noqa: E402

from clipdesk.core import decoders  # noqa: E402
from clipdesk.core.images import open_image  # noqa: E402

FOLDER = DATA.parent / "formats"
# pillow-heif's default: ≈ 3 MB for these 12-MP scenes, like a phone's HEIC. HEVC decode time
# grows with the bitrate, so a q90 file (≈ 9.5 MB) decodes slower than what phones write.
HEIC_QUALITY = 50


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make(kind: str, seed: int) -> Path:
    """One 12-MP photo of `kind`, made on first use (atomic rename: an interrupted run is safe)."""
    suffix = {"jpeg": ".jpg", "heic": ".heic"}.get(kind, ".dng")
    path = FOLDER / kind / f"photo_{seed:04d}{suffix}"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = synth_photo(seed)
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == "jpeg":
        photo.save(tmp, "JPEG", quality=QUALITY)
    elif kind == "heic":
        decoders.registry()
        photo.save(tmp, "HEIF", quality=HEIC_QUALITY)
    else:
        pixels = np.asarray(photo)
        write_dng(tmp, pixels, preview=pixels if kind == "raw_preview" else None, quality=QUALITY)
    tmp.replace(path)
    return path


def rate(paths: list[Path], draft: int | None, repeat: int) -> tuple[float, float]:
    """Images/s (wall) and CPU ms per image, each the best of `repeat` passes. CPU time is the
    steadier number on a shared machine: it does not count the time other processes had the core."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for path in paths:
            open_image(path, draft_size=draft)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return len(paths) / wall, 1000 * cpu / len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6, help="photos per kind")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--draft", type=int, default=512)
    args = parser.parse_args(argv)

    kinds = ["jpeg", "heic", "raw_preview", "raw_demosaic"]
    files = {}
    for kind in kinds:
        log(f"preparing {args.count} × 12-MP {kind} …")
        files[kind] = [make(kind, seed) for seed in range(args.count)]
    rows = []
    for kind in kinds:
        for draft in (args.draft, None):
            value, cpu = rate(files[kind], draft, args.repeat)
            mb = sum(p.stat().st_size for p in files[kind]) / len(files[kind]) / 1e6
            rows.append((kind, "draft" if draft else "exact", value, cpu, mb))
            log(f"{kind:13s} {'draft ' + str(draft) if draft else 'exact':10s} {value:6.2f} img/s "
                f"{cpu:7.0f} CPU ms/img  ({mb:.1f} MB/file)")
    jpeg = {mode: cpu for kind, mode, _, cpu, _ in rows if kind == "jpeg"}
    print(f"# {platform.machine()}, {os.cpu_count()} cores shared with other work (noisy), "
          f"{args.count} files/kind, best of {args.repeat}, one decode call at a time")
    print("| kind | mode | img/s | CPU ms/img | CPU vs JPEG | MB/file |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, mode, value, cpu, mb in rows:
        print(f"| {kind} | {mode} | {value:.2f} | {cpu:.0f} | {cpu / jpeg[mode]:.1f}× | {mb:.1f} |")
    summary = ", ".join(f"{kind} {value:.1f} img/s ({cpu:.0f} CPU ms)"
                        for kind, mode, value, cpu, _ in rows if mode == "draft")
    print(f"\n12-MP decode at draft {args.draft}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
