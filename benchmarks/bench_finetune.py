"""Does fine-tuning help on images it never saw, and is its own report honest?

For a labelled folder (one sub-folder per class), or a generated few-shot texture task the demo
model was never taught (stripes, checkers, dots, blocky noise in random colours, scales and angles, coarse enough to be
told apart by eye at the demo model's 64 px input; 30 training and 40 test images per class,
the issue's own few-shot size), the images
are split into train and test; every method sees only train, and each is measured on test:

    zero-shot · logistic-regression probe (standardised, cross-validated C) · 1-NN ·
    quick · full (the fine-tuned weights alone, α = 1) · full with its WiSE-FT mix

with the time each took, and for quick/full the "after" figure the method itself reported, with
its 95 % interval, to compare with the test figure. Targets: quick ≥ probe − 1 point, full ≥
quick, both ≥ zero-shot + 15 points, reported figure within its interval of the test figure.

    python benchmarks/bench_finetune.py --model demo                       # generated textures
    python benchmarks/bench_finetune.py FOLDER --model ViT-B-32 --pretrained openai --test-share 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTURES = ("stripes", "checkerboard", "polka dots", "noise")


# -- the generated task ----------------------------------------------------------------------------
def texture(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """One procedural texture with two random colours, a random scale and orientation."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    while np.abs(a - b).sum() < 150:  # keep the two colours apart
        b = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(16, 36)  # ≥ 10 px at the demo model's 64 px input: visible, not noise
    angle = rng.uniform(0, np.pi)
    if kind == "stripes":
        u = xx * np.cos(angle) + yy * np.sin(angle)
        mask = (u // (period / 2)) % 2 == 0
    elif kind == "checkerboard":
        u = xx * np.cos(angle) + yy * np.sin(angle)
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        mask = ((u // (period / 2)) + (v // (period / 2))) % 2 == 0
    elif kind == "polka dots":
        cx, cy = (xx % period) - period / 2, (yy % period) - period / 2
        mask = cx * cx + cy * cy < (period * rng.uniform(0.2, 0.35)) ** 2
    else:  # blocky noise
        cells = max(2, int(size / rng.uniform(6, 14)))  # blocks of 4–9 px at 64 px
        small = rng.random((cells, cells)) < 0.5
        mask = np.kron(small, np.ones((size // cells + 1, size // cells + 1)))[:size, :size].astype(bool)
    image = np.where(mask[..., None], a, b).astype(np.float32)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_texture_task(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part, count in (("train", train_per_class), ("test", test_per_class)):
        for kind in TEXTURES:
            folder = root / part / kind.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(texture(kind, rng)).save(folder / f"{i:03d}.png")
    return root / "train", root / "test"


def split_folder(folder: Path, root: Path, test_share: float, seed: int) -> tuple[Path, Path]:
    """Stratified train/test split of a labelled folder, as symbolic links."""
    from training.data import scan_dataset

    summary = scan_dataset(folder)
    rng = np.random.default_rng(seed)
    for name in summary.classes:
        files = list(summary.files[name])
        order = rng.permutation(len(files))
        n_test = min(len(files) - 2, max(1, round(test_share * len(files))))
        for rank, j in enumerate(order):
            part = root / ("test" if rank < n_test else "train") / name.replace(" ", "_")
            part.mkdir(parents=True, exist_ok=True)
            (part / f"{rank:04d}{files[j].suffix}").symlink_to(files[j])
    return root / "train", root / "test"


# -- the measurements --------------------------------------------------------------------------------
def embed_folder(engine, folder: Path):
    from clipdesk.core.jobs import run_job
    from training.data import scan_dataset

    summary = scan_dataset(folder)
    paths = [p for c in summary.classes for p in summary.files[c]]
    labels = {p: i for i, c in enumerate(summary.classes) for p in summary.files[c]}
    result = run_job(engine.embed_job(paths))
    return summary.classes, result.features, np.array([labels[p] for p in result.paths])


def baselines(args, train_dir: Path, test_dir: Path, rows: list[dict]):
    """Zero-shot, logistic-regression probe and 1-NN on frozen embeddings."""
    from clipdesk.core.backends import TorchEncoder
    from clipdesk.core.cache import NullCache
    from clipdesk.core.engine import Engine
    from clipdesk.core.models import load_model
    from clipdesk.core.prompts import Label
    from training.probe import fit_probe

    engine = Engine(TorchEncoder(load_model(args.model, args.pretrained, args.device)), NullCache())
    started = time.perf_counter()
    classes, x_train, y_train = embed_folder(engine, train_dir)
    _, x_test, y_test = embed_folder(engine, test_dir)
    embed_time = time.perf_counter() - started
    started = time.perf_counter()
    weights = engine.label_set([Label(c) for c in classes], args.templates).weights
    rows.append(row("zero-shot", np.mean((x_test @ weights.T).argmax(1) == y_test), time.perf_counter() - started,
                    note=f"+ {embed_time:.1f} s to embed both splits"))
    started = time.perf_counter()
    head, strength = fit_probe(x_train, y_train, classes, args.seed)  # the very fit quick keeps
    rows.append(row("logistic-regression probe", np.mean(head.predict(x_test) == y_test), time.perf_counter() - started,
                    note=f"training.probe.fit_probe, C = {strength:g}"))
    started = time.perf_counter()
    nearest = y_train[(x_test @ x_train.T).argmax(1)]
    rows.append(row("1-NN", np.mean(nearest == y_test), time.perf_counter() - started))
    return classes


def row(name: str, test: float, seconds: float, reported: dict | None = None, note: str = "") -> dict:
    entry = {"method": name, "test": float(test), "seconds": round(seconds, 2), "note": note}
    if reported:
        entry.update(reported=reported["accuracy"], interval=reported["interval_95"], images=reported["images"])
    return entry


def fine_tunes(args, train_dir: Path, test_dir: Path, out: Path, rows: list[dict]) -> None:
    from clipdesk.core.jobs import run_job
    from training.api import FinetuneConfig, evaluate_job, finetune_job

    common = dict(arch=args.model, pretrained=args.pretrained, device=args.device, templates=args.templates,
                  seed=args.seed)
    for method in args.methods:
        started = time.perf_counter()
        config = FinetuneConfig(train_dir, method=method, out=out / method, epochs=args.epochs if method == "full"
                                else None, lr=args.lr if method == "full" else None, **common)
        result = run_job(finetune_job(config))
        seconds = time.perf_counter() - started
        report = run_job(evaluate_job(test_dir, args.model, str(result.model_dir), args.device))
        if method == "quick":
            rows.append(row("quick", report.accuracy, seconds, result.evaluation,
                            note=result.evaluation.get("candidate", "")))
            continue
        rows.append(row("full, fine-tuned weights (α = 1)", unmixed_accuracy(args, result, test_dir), seconds))
        rows.append(row(f"full, WiSE-FT mix (α = {result.alpha:.1f})", report.accuracy, seconds, result.evaluation,
                        note="; ".join([result.evaluation.get("candidate", ""), *result.warnings])))


def unmixed_accuracy(args, result, test_dir: Path) -> float:
    """Test accuracy of the fine-tuned weights before the WiSE-FT mix."""
    from training.data import scan_dataset
    from training.full import Validator

    loaded = result.loaded
    loaded.model.load_state_dict(result.fine_tuned_state)
    summary = scan_dataset(test_dir)
    paths = [p for c in summary.classes for p in summary.files[c]]
    labels = [i for i, c in enumerate(summary.classes) for _ in summary.files[c]]
    return Validator(loaded, paths, labels, result.classes, args.templates, loaded.device).evaluate(
        loaded.model.eval(), generic=False)["accuracy"]


def verdict(rows: list[dict]) -> list[str]:
    by = {r["method"]: r for r in rows}
    zero, probe, quick = by["zero-shot"]["test"], by["logistic-regression probe"]["test"], by.get("quick")
    full = next((r for r in rows if r["method"].startswith("full, WiSE")), None)
    lines = []
    if quick:
        lines.append(f"quick ≥ probe − 1 point: {quick['test'] >= probe - 0.01}")
        lines.append(f"quick ≥ zero-shot + 15 points: {quick['test'] >= zero + 0.15}")
    if full and quick:
        lines.append(f"full ≥ quick: {full['test'] >= quick['test']}")
    if full:
        lines.append(f"full ≥ zero-shot + 15 points: {full['test'] >= zero + 0.15}")
    for r in rows:
        if "interval" in r:
            low, high = r["interval"]
            lines.append(f"{r['method']}: test {r['test']:.1%} inside its reported interval "
                         f"[{low:.1%}, {high:.1%}]: {low <= r['test'] <= high}")
    return lines


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}\n")
    print("| method | test accuracy | reported \"after\" (95 % interval, images) | time (s) | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        reported = ""
        if "reported" in r:
            reported = f"{r['reported']:.1%} ({r['interval'][0]:.0%}–{r['interval'][1]:.0%}, {r['images']})"
        print(f"| {r['method']} | {r['test']:.1%} | {reported} | {r['seconds']:.1f} | {r['note']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="a labelled folder; default: generated textures")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--pretrained", default=None, help="default: demo for --model demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--templates", default="photo")
    parser.add_argument("--train-per-class", type=int, default=30, help="generated task: training images")
    parser.add_argument("--test-per-class", type=int, default=40, help="generated task: test images")
    parser.add_argument("--test-share", type=float, default=0.5, help="a folder: share held out for testing")
    parser.add_argument("--methods", default="quick,full")
    parser.add_argument("--epochs", type=int, default=None, help="full: epochs (default: the method's)")
    parser.add_argument("--lr", type=float, default=None, help="full: learning rate (default: the method's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    args.pretrained = args.pretrained or ("demo" if args.model == "demo" else "openai")
    args.methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("CACHE", "CONFIG", "DATA"):
            os.environ[f"CLIPDESK_{name}_DIR"] = str(root / name.lower())  # the user's folders stay untouched
        if args.folder:
            train_dir, test_dir = split_folder(args.folder, root / "data", args.test_share, args.seed)
            title = f"{args.folder} ({args.model}/{args.pretrained})"
        else:
            train_dir, test_dir = make_texture_task(root / "data", args.train_per_class, args.test_per_class, args.seed)
            title = (f"generated textures, {len(TEXTURES)} classes, {args.train_per_class} training and "
                     f"{args.test_per_class} test images per class ({args.model}/{args.pretrained})")
        rows: list[dict] = []
        baselines(args, train_dir, test_dir, rows)
        fine_tunes(args, train_dir, test_dir, root / "models", rows)
    print_table(rows, title)
    print()
    for line in verdict(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
