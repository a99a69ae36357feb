"""The built-in demo model shipped in resources/models/demo, its labels and sample images.

The demo CLIP knows 8 colours and 8 shapes (see training/synthetic.py, which also draws the
sample images): enough to show zero-shot classification and search with no download at all.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError
from .metadata import read_metadata
from .paths import resources_dir

# (colour, shape) of each sample image: seen combinations, then four held out of training.
SAMPLE_SCENES: tuple[tuple[str, str], ...] = (
    ("red", "circle"), ("blue", "star"), ("yellow", "triangle"), ("green", "square"),
    ("purple", "cross"), ("orange", "heart"), ("white", "square"), ("pink", "star"),
    ("blue", "cross"), ("yellow", "star"), ("red", "square"), ("pink", "ring"),
)


def demo_model_dir() -> Path:
    folder = resources_dir() / "models" / "demo"
    if not (folder / "metadata.json").is_file():
        raise ModelLoadError(f"The demo model is missing from {folder}; reinstall clipdesk.")
    return folder


def demo_metadata() -> dict:
    return read_metadata(demo_model_dir())  # checked: a dict with the right types, or one sentence


def demo_arch() -> str:
    """The real architecture behind the `demo` alias (what a fine-tune of it must record)."""
    arch = demo_metadata().get("architecture")
    if not arch:
        raise ModelLoadError("The demo model's metadata.json names no architecture; reinstall clipdesk.")
    return arch


def demo_labels(limit: int | None = None) -> list[str]:
    """The suggested labels ("red circle", …), those of the sample images first, so a list cut
    to `limit` still covers what the samples show."""
    names = list(demo_metadata().get("class_names", []))
    wanted = [f"{c} {s}" for c, s in SAMPLE_SCENES if f"{c} {s}" in names]
    ordered = list(dict.fromkeys(wanted + names))
    return ordered[:limit] if limit else ordered


def demo_templates() -> str:
    return str(demo_metadata().get("templates", "none"))


def demo_sample_images() -> list[Path]:
    """The sample pictures shipped beside the demo weights, named after what they show.

    `python -m training.build_demo` draws them with the same generator the model learnt from
    (see `training.build_demo.write_samples`), so core needs no training code at run time."""
    paths = sorted((demo_model_dir() / "samples").glob("*.png"))
    if not paths:
        raise ModelLoadError(f"The demo sample images are missing from {demo_model_dir()}; reinstall clipdesk.")
    return paths
