"""Evaluate the demo model on freshly generated images: `python -m training.evaluate_demo`.

Reports top-1 accuracy over all 64 colour×shape labels on combinations seen in training and on
held-out ones (true zero-shot), and text→image search for held-out combinations, through the
same path as the app (clipdesk.core: Engine, TorchEncoder, the model's own preprocessing and
tokenizer). Writes a small picture of predictions to docs/demo_predictions.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipdesk.core.atomic import atomic_path

from . import synthetic
from .demo_pixels import normalisation, render_pool

DOCS_PICTURE = Path(__file__).resolve().parents[1] / "docs" / "demo_predictions.png"


def eval_scenes(seed: int, per_pair: int, pairs=synthetic.ALL_PAIRS) -> list[synthetic.Scene]:
    """`per_pair` single-shape scenes of each combination, from their own seeded generator."""
    rng = np.random.default_rng([seed, 99])
    return [synthetic.sample_scene(rng, [pair], n_objects=1) for pair in pairs for _ in range(per_pair)]


def _is_held_out(scene: synthetic.Scene) -> bool:
    return scene.pairs[0] in synthetic.HELD_OUT


# -- fast path used during training (the model in memory, no files) ---------------------------
def quick_accuracy(model, tokenizer, seed: int = 1, per_pair: int = 8) -> dict:
    """Seen / held-out top-1 accuracy of an in-memory model (for model selection and logs)."""
    scenes = eval_scenes(seed, per_pair)
    mean, std = normalisation()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = (render_pool(scenes, size).float() / 255.0 - mean) / std
    was_training = model.training
    model.eval()
    with torch.no_grad():
        text = model.encode_text(tokenizer(synthetic.class_names()), normalize=True)
        image = torch.cat([model.encode_image(b, normalize=True) for b in images.split(256)])
    model.train(was_training)
    predicted = (image @ text.T).argmax(1).numpy()
    truth = np.array([synthetic.ALL_PAIRS.index(s.pairs[0]) for s in scenes])
    held = np.array([_is_held_out(s) for s in scenes])
    correct = predicted == truth
    return {"seen": float(correct[~held].mean()), "held_out": float(correct[held].mean())}


# -- the real path: files through clipdesk.core ------------------------------------------------
@dataclass
class DemoReport:
    seen: float
    held_out: float
    search_top1: float  # share of held-out queries whose best image matches
    search_queries: int
    n_seen: int
    n_held_out: int
    examples: list  # (PIL image, true label, predicted label, probability) for the picture
    by_templates: dict  # {"photo": (seen, held_out), ...}: the CLI's default prompts too
    per_held_out: dict  # {"red square": accuracy, ...}: which zero-shot combinations are hard

    def as_dict(self) -> dict:
        return {"seen": round(self.seen, 4), "held_out": round(self.held_out, 4),
                "search_top1_held_out": round(self.search_top1, 4),
                "search_queries": self.search_queries, "n_seen": self.n_seen,
                "n_held_out": self.n_held_out,
                **{f"{k}_templates": {"seen": round(a, 4), "held_out": round(b, 4)}
                   for k, (a, b) in self.by_templates.items()},
                "per_held_out": {k: round(v, 3) for k, v in self.per_held_out.items()}}


def open_demo_engine(device: str = "cpu"):
    """The demo model behind an Engine, exactly as the app and the CLI open it."""
    from clipdesk.core.backends import TorchEncoder
    from clipdesk.core.cache import NullCache
    from clipdesk.core.engine import Engine
    from clipdesk.core.models import load_model

    loaded = load_model("demo", "demo", device)
    return Engine(TorchEncoder(loaded), NullCache())


def evaluate(engine=None, seed: int = 12345, per_pair: int = 10, search_gallery: int = 4,
             folder: Path | None = None) -> DemoReport:
    """Write fresh images to files, embed them through the Engine and score all 64 labels."""
    from clipdesk.core.jobs import run_job

    engine = engine or open_demo_engine()
    metadata = engine.loaded.metadata
    templates = metadata.get("templates", "none")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(folder or tmp)
        scenes = eval_scenes(seed, per_pair)
        paths = _write(scenes, root / "eval", seed)
        result = run_job(engine.embed_job(paths, batch_size=128))
        if result.errors:
            raise RuntimeError(f"could not embed: {result.errors}")
        truth = np.array([synthetic.ALL_PAIRS.index(s.pairs[0]) for s in scenes])
        held = np.array([_is_held_out(s) for s in scenes])
        by_templates = {}
        for name in dict.fromkeys([templates, "photo"]):
            scores = engine.score(result.features, engine.label_set(synthetic.class_names(), name))
            correct = np.asarray(scores.probs).argmax(1) == truth
            by_templates[name] = (float(correct[~held].mean()), float(correct[held].mean()))
        scores = engine.score(result.features, engine.label_set(synthetic.class_names(), templates))
        predicted = np.asarray(scores.probs).argmax(1)
        correct = predicted == truth
        search, queries = _search(engine, seed, search_gallery, root / "gallery")
        examples = _examples(paths, scenes, predicted, np.asarray(scores.probs), held)
        pairs = [s.pairs[0] for s in scenes]
        per_held_out = {synthetic.label_prompt(*p): float(np.mean([correct[i] for i, q in enumerate(pairs) if q == p]))
                        for p in synthetic.HELD_OUT}
    return DemoReport(float(correct[~held].mean()), float(correct[held].mean()), search, queries,
                      int((~held).sum()), int(held.sum()), examples, by_templates, per_held_out)


def _write(scenes: list[synthetic.Scene], folder: Path, seed: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene in enumerate(scenes):
        path = folder / f"{seed}-{i:05d}.png"
        synthetic.render(scene, size).save(path)
        paths.append(path)
    return paths


def _search(engine, seed: int, per_pair: int, folder: Path) -> tuple[float, int]:
    """A gallery with `per_pair` images of every combination; each held-out query's top hit."""
    from clipdesk.core.jobs import run_job

    scenes = eval_scenes(seed + 1, per_pair)
    paths = _write(scenes, folder, seed + 1)
    features = run_job(engine.embed_job(paths, batch_size=128)).features
    hits = 0
    for colour, shape in synthetic.HELD_OUT:
        (index, _score), = engine.search_text(f"a {colour} {shape}", features, top_k=1)
        hits += scenes[index].pairs[0] == (colour, shape)
    return hits / len(synthetic.HELD_OUT), len(synthetic.HELD_OUT)


def _examples(paths, scenes, predicted, probs, held, per_group: int = 8) -> list:
    """Eight held-out and eight seen images for the README picture, as many colours as possible."""
    from PIL import Image

    names = synthetic.class_names()
    order = np.random.default_rng(0).permutation(len(scenes))
    chosen: list[int] = []
    for want_held in (True, False):
        colours: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for i in order:
            colour = scenes[i].pairs[0][0]
            if held[i] == want_held and colour not in colours and scenes[i].pairs[0] not in pairs:
                colours.add(colour)
                pairs.add(scenes[i].pairs[0])
                chosen.append(int(i))
            if len(colours) == per_group:
                break
    return [(Image.open(paths[i]).convert("RGB"), names[synthetic.ALL_PAIRS.index(scenes[i].pairs[0])],
             names[predicted[i]], float(probs[i, predicted[i]]), bool(held[i])) for i in chosen]


def write_picture(report: DemoReport, path: Path = DOCS_PICTURE, tile: int = 120) -> Path:
    """Rows of images with the true label and the model's guess (green right, red wrong):
    held-out combinations first, then seen ones."""
    from PIL import Image, ImageDraw

    cols, title_h, text_h = 8, 20, 34
    groups = [("Held out of training (zero-shot)", [e for e in report.examples if e[4]]),
              ("Seen in training", [e for e in report.examples if not e[4]])]
    groups = [(title, items[:cols]) for title, items in groups if items]
    sheet = Image.new("RGB", (cols * tile, len(groups) * (title_h + tile + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (title, items) in enumerate(groups):
        top = row * (title_h + tile + text_h)
        draw.text((4, top + 4), title, fill="black")
        for k, (image, true, guess, prob, _held) in enumerate(items):
            x, y = k * tile, top + title_h
            sheet.paste(image.resize((tile - 4, tile - 4), Image.NEAREST), (x + 2, y))
            draw.text((x + 4, y + tile), true, fill="black")
            draw.text((x + 4, y + tile + 15), f"-> {guess} {prob:.0%}",
                      fill=(0, 130, 0) if guess == true else (200, 0, 0))
    with atomic_path(path) as temp:
        sheet.save(temp, format="PNG")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--per-pair", type=int, default=25)
    parser.add_argument("--picture", type=Path, default=DOCS_PICTURE)
    parser.add_argument("--no-picture", action="store_true")
    args = parser.parse_args(argv)
    report = evaluate(seed=args.seed, per_pair=args.per_pair)
    print(json.dumps(report.as_dict(), indent=2))
    if not args.no_picture:
        print("picture:", write_picture(report, args.picture))


if __name__ == "__main__":
    main()
