"""One short run on a CUDA machine that proves clipdesk's GPU paths (not part of the test suite:
CI has no GPU). Prints one line per check and a JSON summary; exits 1 if a check fails.

Checks: `auto` picks CUDA; the demo model on CUDA (mixed precision) gives the CPU's probabilities;
the API's torch backend on CUDA embeds a ViT-B-32 (random weights: same FLOPs) faster than the CPU
on the same images; a `full` fine-tune runs its steps on the GPU under bf16 autocast, changes the
weights and reports a held-out accuracy; the quick head trains on the GPU.

    python benchmarks/gpu_check.py [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS: dict = {}
FAILED: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    RESULTS[name] = {"ok": bool(ok), "detail": detail}
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        FAILED.append(name)


def device_selection() -> None:
    import torch

    from clipdesk.core.models import resolve_device

    chosen = resolve_device("auto")
    check("auto picks cuda", chosen.type == "cuda",
          f"auto -> {chosen}; {torch.cuda.get_device_name(0)}; torch {torch.__version__}")


def demo_cuda_equals_cpu() -> None:
    import clipdesk

    images = clipdesk.demo_images()
    labels = ["red circle", "blue star", "green triangle", "yellow square", "purple heart"]
    rows = {}
    for device in ("cpu", "cuda"):
        clf = clipdesk.load("demo", device=device, backend="torch", cache=False)
        result = clf.classify(images, labels)
        rows[device] = (np.array([[r.scores[label] for label in labels] for r in result]),
                        [r.label for r in result], clf.device)
    gap = float(np.abs(rows["cpu"][0] - rows["cuda"][0]).max())
    same = rows["cpu"][1] == rows["cuda"][1]
    check("demo on cuda equals cpu", same and gap < 2e-2 and rows["cuda"][2].startswith("cuda"),
          f"{len(images)} images, same labels: {same}, max |p_cpu - p_cuda| = {gap:.2e} "
          f"(cuda runs under autocast), device reported: {rows['cuda'][2]}")


def embed_speed() -> None:
    import clipdesk

    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)) for _ in range(512)]
    speeds: dict[str, list[float]] = {"cpu": [], "cuda": []}
    models = {d: clipdesk.load("ViT-B-32", "none", device=d, backend="torch", cache=False,
                               batch_size=128) for d in ("cpu", "cuda")}
    first = {d: m.embed(pictures[:128]) for d, m in models.items()}  # warm-up alike
    for _ in range(3):  # interleaved pairs
        for device, model in models.items():
            start = time.perf_counter()
            model.embed(pictures)
            speeds[device].append(len(pictures) / (time.perf_counter() - start))
    agree = float(np.min(np.sum(first["cpu"] * first["cuda"], axis=1)))
    ratio = statistics.median(c / p for c, p in zip(speeds["cuda"], speeds["cpu"]))
    check("ViT-B-32 embeds on cuda", ratio > 1.0 and agree > 0.99,
          f"cuda {statistics.median(speeds['cuda']):.0f} img/s vs cpu {statistics.median(speeds['cpu']):.0f} "
          f"img/s (median of 3 interleaved, in-memory 224 px, decode+preprocess included): {ratio:.1f}x; "
          f"min cosine cpu vs cuda embedding {agree:.4f}")


def colour_folder(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(1)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (200, 190, 20)}
    for name, rgb in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (48, 48, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def finetune_on_cuda(folder: Path, out: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from clipdesk.core.jobs import run_job
    from training.api import FinetuneConfig, finetune_job

    seen_autocast = []
    original = torch.autocast.__init__

    def spy(self, device_type, *args, **kwargs):
        seen_autocast.append((device_type, str(kwargs.get("dtype"))))
        original(self, device_type, *args, **kwargs)

    torch.autocast.__init__ = spy
    try:
        start = time.perf_counter()
        config = FinetuneConfig(folder, method="full", arch="clipdesk-tiny", pretrained="none",
                                out=out / "full", device="cuda", epochs=6, lr=5e-4, batch_size=16,
                                patience=None)
        result = run_job(finetune_job(config))
        seconds = time.perf_counter() - start
    finally:
        torch.autocast.__init__ = original
    weights = load_file(str(next((out / "full").glob("*.safetensors"))))
    n_val = len(result.val_paths)
    check("full fine-tune on cuda", any(d == "cuda" for d, _ in seen_autocast) and n_val > 0,
          f"{seconds:.1f} s; autocast {sorted(set(seen_autocast))}; held-out accuracy "
          f"{result.accuracy_before:.2f} -> {result.accuracy_after:.2f} on {n_val} images; "
          f"{len(weights)} tensors saved")
    quick = run_job(finetune_job(FinetuneConfig(folder, method="quick", arch="clipdesk-tiny",
                                                pretrained="none", out=out / "quick", device="cuda")))
    check("quick head on cuda", len(quick.val_paths) > 0,
          f"held-out accuracy {quick.accuracy_before:.2f} -> {quick.accuracy_after:.2f} "
          f"on {len(quick.val_paths)} images")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("CACHE", "CONFIG", "DATA"):
            import os

            os.environ[f"CLIPDESK_{name}_DIR"] = str(root / name.lower())
        for step in (device_selection, demo_cuda_equals_cpu, embed_speed,
                     lambda: finetune_on_cuda(colour_folder(root / "colours"), root / "models")):
            try:
                step()
            except Exception as error:  # one failed check must not hide the others
                check(getattr(step, "__name__", "finetune"), False, f"{type(error).__name__}: {error}")
    if args.out:
        args.out.write_text(json.dumps(RESULTS, indent=2))
    print(json.dumps({"failed": FAILED}))
    return 1 if FAILED else 0


if __name__ == "__main__":
    raise SystemExit(main())
