"""Labels → prompts, using open_clip's template lists.

A label may carry synonyms (all their prompts are averaged into one class vector). A label that
contains `{}` is its own template: the template set is not applied to it, and `{}` is filled with
each synonym (or removed when there are none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import LabelError

TEMPLATE_SET_NAMES = ("none", "photo", "ensemble", "imagenet80")
DEFAULT_TEMPLATES = "photo"


def _template_sets() -> dict[str, tuple]:
    """Built on first use: open_clip imports torch (seconds), and the GUI parses labels at start-up."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    return {
        "none": ("{}",),
        "photo": ("a photo of a {}.",),
        # open_clip's "simple" ImageNet set: seven of the 80 OpenAI prompts, nearly as accurate.
        "ensemble": SIMPLE_IMAGENET_TEMPLATES,
        "imagenet80": OPENAI_IMAGENET_TEMPLATES,
    }


def __getattr__(name: str):
    if name == "TEMPLATE_SETS":  # still importable as before, just lazily
        return _template_sets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Label:
    name: str
    synonyms: tuple[str, ...] = field(default=())

    def prompts(self, templates: str) -> list[str]:
        """Every text whose embedding is averaged into this label's class vector."""
        if "{}" in self.name:
            fills = self.synonyms or ("",)
            return [_tidy(self.name.replace("{}", fill)) for fill in fills]
        return [_format(t, term) for term in (self.name, *self.synonyms) for t in template_set(templates)]

    def key(self, templates: str) -> str:
        return "\x1f".join(self.prompts(templates))


def _format(template, term: str) -> str:
    return template(term) if callable(template) else template.format(term)


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def template_set(name: str) -> tuple:
    if name not in TEMPLATE_SET_NAMES:
        raise LabelError(
            f"Unknown template set '{name}'; choose one of {', '.join(TEMPLATE_SET_NAMES)}."
        )
    if name in ("none", "photo"):  # no open_clip import (so no torch) for the common sets
        return {"none": ("{}",), "photo": ("a photo of a {}.",)}[name]
    return _template_sets()[name]


def split_labels(text: str) -> list[str]:
    """A typed or pasted list: commas or new lines separate labels."""
    return [part.strip() for part in re.split(r"[,\n\r]+", text) if part.strip()]


def parse_label(text: str) -> Label:
    """`car | automobile | auto` is one label named "car" with two synonyms."""
    parts = [p.strip() for p in text.split("|") if p.strip()]
    if not parts:
        raise LabelError("A label cannot be empty.")
    return Label(parts[0], tuple(parts[1:]))


def clean_labels(raw: list[str | Label]) -> tuple[list[Label], list[str]]:
    """Drop empty and duplicate labels (case-insensitive), returning notes about what was dropped."""
    labels: list[Label] = []
    notes: list[str] = []
    seen: set[str] = set()
    for item in raw:
        label = item if isinstance(item, Label) else None
        if label is None:
            text = _tidy(str(item))
            if not text or not text.strip("|").strip():
                continue
            label = parse_label(text)
        key = label.name.casefold()
        if key in seen:
            notes.append(f"Duplicate label '{label.name}' ignored.")
            continue
        seen.add(key)
        labels.append(label)
    return labels, notes


def read_labels_file(path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"Could not read labels from {path}: {error}.") from error
    return [line.strip() for line in re.split(r"[\n\r]+", text) if line.strip() and not line.startswith("#")]
