"""Reproduce the built-in demo model: `python -m training.build_demo` (seeded; ~13 min on 1 core).

A tiny CLIP (resources/model_configs/clipdesk-demo.json) is trained from scratch on the
procedurally generated captioned shapes of `training.synthetic`, through the training module's
contrastive loop (`training.loop.contrastive_train_job`: CLIP's symmetric loss, learnable
temperature, AdamW, warm-up + cosine). Held-out (colour, shape) combinations never appear in
training, so the evaluation on them (training.evaluate_demo) measures true zero-shot naming.

Images are rendered once into a uint8 pool (fast, and the same pool for every epoch); each epoch
pairs every image with a fresh caption drawn under a seed of (seed, epoch, index), so the run
is deterministic and a resumed run sees the same data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipdesk.core.atomic import atomic_path, atomic_write_text
from clipdesk.core.paths import cache_dir, resources_dir

from . import synthetic
from .demo_pixels import normalisation, render_pool
from .evaluate_demo import quick_accuracy
from .loop import LoopConfig, clear_state, contrastive_train_job

ARCH = "clipdesk-demo"
OUT_DIR = resources_dir() / "models" / "demo"


@dataclass
class DemoConfig:
    seed: int = 0
    images: int = 30_000  # the rendered pool; each epoch gives every image a new caption
    epochs: int = 7
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    threads: int = 1  # one thread: the same weights run after run, and ~13 min of one core
    val_images: int = 512


class CaptionedShapes:
    """Items for `contrastive_train_job`: image tensor, caption tokens, and a caption group.

    The group is a hash of the caption text, so two items of a batch with the same caption are
    masked rather than pushed apart as negatives (the loop's GroupedClipLoss)."""

    def __init__(self, scenes: list[synthetic.Scene], pixels: torch.Tensor, tokenizer, seed: int) -> None:
        self.scenes = scenes
        self.pixels = pixels  # uint8 [N, 3, H, W]
        self.tokenizer = tokenizer
        self.seed = seed
        self.mean, self.std = normalisation()

    def __len__(self) -> int:
        return len(self.scenes)

    def caption(self, epoch: int, index: int) -> str:
        return synthetic.caption(self.scenes[index], np.random.default_rng([self.seed, 7, epoch, index]))

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        text = self.caption(epoch, index)
        image = (self.pixels[index].float() / 255.0 - self.mean) / self.std
        group = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "little")
        return {"image": image, "tokens": self.tokenizer([text])[0], "group": group}


def new_model(seed: int):
    """A freshly initialised demo CLIP (open_clip's own init, under `seed`)."""
    import open_clip

    from clipdesk.core.models import register_configs

    register_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    return model, open_clip.get_tokenizer(ARCH)


def build(config: DemoConfig, out_dir: Path = OUT_DIR, log=print, state_dir: Path | None = None) -> dict:
    """Train, evaluate and write model.safetensors + metadata.json into `out_dir`.

    The loop's resumable state goes to `state_dir` (default: the user cache), so an interrupted
    build picks up where it stopped when run again with the same settings."""
    torch.set_num_threads(config.threads)
    started_wall, started_cpu = time.time(), time.process_time()
    model, tokenizer = new_model(config.seed)
    size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
    rng = np.random.default_rng(config.seed)
    scenes = [synthetic.training_scene(rng) for _ in range(config.images)]
    pixels = render_pool(scenes, size)
    log(f"rendered {len(scenes)} training images in {time.time() - started_wall:.0f}s")
    train_set = CaptionedShapes(scenes, pixels, tokenizer, config.seed)

    def evaluate(m) -> float:
        # Model selection looks at seen combinations only: held-out ones stay a clean test.
        scores = quick_accuracy(m, tokenizer, seed=config.seed + 1, per_pair=config.val_images // 64)
        log(f"  val seen {scores['seen']:.3f}  held-out {scores['held_out']:.3f}  "
            f"T={1 / m.logit_scale.exp().item():.3f}  wall {time.time() - started_wall:.0f}s "
            f"cpu {time.process_time() - started_cpu:.0f}s")
        return scores["seen"]

    loop = LoopConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                      weight_decay=config.weight_decay, warmup_fraction=config.warmup_fraction,
                      seed=config.seed, patience=None, save_every=0)
    state_dir = state_dir or cache_dir() / "demo-build-state"
    fingerprint = hashlib.sha256(json.dumps(config.__dict__, sort_keys=True).encode()).hexdigest()
    job = contrastive_train_job(model, train_set, loop, torch.device("cpu"), evaluate=evaluate,
                                state_dir=state_dir, fingerprint=fingerprint)
    result = _drive(job, log)
    model.load_state_dict(result.state)
    model.eval()
    scores = quick_accuracy(model, tokenizer, seed=config.seed + 2, per_pair=16)
    log(f"final: seen {scores['seen']:.3f}  held-out {scores['held_out']:.3f}")
    metadata = write_demo(model, out_dir, config, scores, time.time() - started_wall,
                          time.process_time() - started_cpu)
    clear_state(state_dir)
    return metadata


def _drive(job, log):
    """Run the loop's generator, logging the loss now and then."""
    losses: list[float] = []
    while True:
        try:
            progress = next(job)
        except StopIteration as stop:
            return stop.value
        payload = progress.payload or {}
        if payload.get("kind") == "train":
            losses.append(payload["loss"])
            if payload["step"] % 50 == 0:
                log(f"step {payload['step']}/{progress.total} loss {np.mean(losses[-50:]):.3f}")


def write_demo(model, out_dir: Path, config: DemoConfig, scores: dict, wall: float, cpu: float) -> dict:
    """model.safetensors (fp32; BatchNorm counters stay int64) + metadata.json, written atomically."""
    from safetensors.torch import save_file

    state = {k: (v.float() if v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items()}
    with atomic_path(out_dir / "model.safetensors") as temp:
        save_file(state, str(temp))
    # A shipped resource, readable by everyone like the rest of the package, whatever the umask.
    os.chmod(out_dir / "model.safetensors", 0o644)
    metadata = {
        "architecture": ARCH,
        "method": "captions",
        "base_pretrained": "none",
        "class_names": synthetic.class_names(),
        "templates": "none",
        "colours": list(synthetic.COLOUR_NAMES),
        "shapes": list(synthetic.SHAPES),
        "held_out": [synthetic.label_prompt(c, s) for c, s in synthetic.HELD_OUT],
        "description": "A tiny CLIP trained from scratch on generated images of coloured shapes; "
                       "it knows 8 colours and 8 shapes and nothing else.",
        "training": {**config.__dict__, "seconds_wall": round(wall), "seconds_cpu": round(cpu),
                     "command": "python -m training.build_demo"},
        "accuracy": {k: round(float(v), 4) for k, v in scores.items()},
    }
    atomic_write_text(out_dir / "metadata.json", json.dumps(metadata, indent=2) + "\n")
    return metadata


def write_samples(folder: Path, size: int = 160) -> list[Path]:
    """Draw the app's demo sample images (`clipdesk.core.demo.SAMPLE_SCENES`), one per scene.

    Larger than the model's 64 px so they look right as thumbnails; seeded, so a rebuild
    draws the same pictures."""
    from clipdesk.core.demo import SAMPLE_SCENES

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (colour, shape) in enumerate(SAMPLE_SCENES):
        path = folder / f"{index + 1:02d}-{colour}-{shape}.png"
        scene = synthetic.sample_scene(np.random.default_rng([1, index]), [(colour, shape)], n_objects=1)
        with atomic_path(path) as temp:
            synthetic.render(scene, size).save(temp, format="PNG")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in defaults.__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--state-dir", type=Path, default=None, help="resumable state (default: user cache)")
    parser.add_argument("--samples-only", action="store_true", help="only redraw the app's sample images")
    args = vars(parser.parse_args(argv))
    out, state_dir = args.pop("out"), args.pop("state_dir")
    write_samples(out / "samples")
    if args.pop("samples_only"):
        return
    metadata = build(DemoConfig(**args), out, state_dir=state_dir)
    print(json.dumps(metadata["accuracy"]), "->", out)


if __name__ == "__main__":
    main()
