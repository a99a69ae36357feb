"""Labels → prompts, using open_clip's template lists.

A label may carry synonyms (all their prompts are averaged into one class vector). A label that
contains `{}` is its own template: the template set is not applied to it, and `{}` is filled with
each synonym (or removed when there are none).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import LabelError

log = logging.getLogger(__name__)
TEMPLATE_SET_NAMES = ("none", "photo", "ensemble", "imagenet80")
DEFAULT_TEMPLATES = "photo"


def model_templates(metadata: Mapping | None) -> str | None:
    """The prompt style a model was fine-tuned with (its metadata's "templates", e.g. the demo
    model's "none"), or None when it names no known set: prompts like its training ones score best."""
    own = (metadata or {}).get("templates")
    return own if isinstance(own, str) and own in TEMPLATE_SET_NAMES else None


def default_templates(given: str | None, metadata: Mapping | None = None) -> str:
    """The one rule for which prompts to use: the caller's choice when given, else the model's own
    (`model_templates`), else DEFAULT_TEMPLATES. The CLI, the API, Ray, the window and evaluation
    all ask this."""
    return given or model_templates(metadata) or DEFAULT_TEMPLATES


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
            text = _tidy(strip_controls(str(item)))
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
    """One label per line (`#` comments skipped), through the file guard.

    UTF-8 (with or without BOM), UTF-16/32 with a BOM, and BOM-less UTF-16 decode as such; other
    text that is not UTF-8 is read as Windows-1252/Latin-1 with a note. A binary file is refused.
    """
    from .safeio import read_bytes_guarded

    try:
        text = decode_text(read_bytes_guarded(path, "labels"), path)
    except LabelError as error:
        raise LabelError(f"Could not read labels: {error}") from error
    lines = (strip_controls(line).strip() for line in re.split(r"[\n\r]+", text))
    return [line for line in lines if line and not line.startswith("#")]


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
)


def decode_text(data: bytes, path) -> str:
    """Bytes of a user's text file → str, guessing the encodings editors actually write."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec.replace("-sig", ""))
            except UnicodeDecodeError as error:
                raise LabelError(f"{path}: starts like {codec} text but is not; save it as UTF-8.") from error
    if len(data) >= 2 and data.count(b"\x00") * 3 >= len(data):  # UTF-16 without a BOM
        codec = "utf-16-le" if data[1:2] == b"\x00" else "utf-16-be"
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise LabelError(f"{path}: contains NUL bytes, so it is a binary file, not a list of labels.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    log.warning("%s is not UTF-8; it was read as Windows-1252/Latin-1 (save it as UTF-8 to be sure).",
                path)
    return text


def strip_controls(text: str) -> str:
    """Control characters (NUL, ESC, BEL ...) never reach a label, a prompt or a terminal."""
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
