"""Training data: labelled folders (one sub-folder per class) and captioned image/text pairs.

Every problem becomes a `DataError` with one sentence naming the folder or file; files that
are not images are skipped and reported, never fatal.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipdesk.core.errors import ClipdeskError
from clipdesk.core.images import IMAGE_SUFFIXES, open_image

MIN_IMAGES_PER_CLASS = 2  # one to train on and one to validate with, at the very least


class DataError(ClipdeskError):
    """The training folder, validation folder or captions file cannot be used as given."""


@dataclass
class DatasetSummary:
    """What a labelled folder holds: class names (sorted), images per class, and what was skipped."""

    classes: list[str]
    counts: dict[str, int]
    skipped: list[str]
    folder: Path | None = None
    files: dict[str, list[Path]] = field(default_factory=dict, repr=False)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def class_name(folder_name: str) -> str:
    """The class prompt is the folder name, with underscores read as spaces."""
    return " ".join(folder_name.replace("_", " ").split())


def scan_dataset(folder: str | os.PathLike) -> DatasetSummary:
    """List classes and their images; hidden and empty folders and non-images are skipped."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(f"The folder {root} does not exist.")
    if not root.is_dir():
        raise DataError(f"{root} is a file; give a folder with one sub-folder per class.")
    classes: list[str] = []
    counts: dict[str, int] = {}
    files: dict[str, list[Path]] = {}
    skipped: list[str] = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue  # hidden folders (.git, .thumbnails) are never classes; not worth a note
        if not child.is_dir():
            skipped.append(f"{child.name}: a file directly in the folder (images go in class sub-folders).")
            continue
        images, others = _class_images(child)
        skipped.extend(others)
        name = class_name(child.name)
        if not images:
            skipped.append(f"{child.name}/: no images; not used as a class.")
            continue
        name = next((c for c in classes if c.casefold() == name.casefold()), name)
        if name in files:
            skipped.append(f"{child.name}/: same class name as another folder; merged into '{name}'.")
            files[name].extend(images)
            counts[name] += len(images)
            continue
        classes.append(name)
        files[name] = images
        counts[name] = len(images)
    return DatasetSummary(classes, counts, skipped, root, files)


def _class_images(folder: Path) -> tuple[list[Path], list[str]]:
    images, skipped = [], []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(current, name)
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path.absolute())
            else:
                skipped.append(f"{path.relative_to(folder.parent)}: not an image; skipped.")
    return sorted(images), skipped


def check_dataset(summary: DatasetSummary, min_per_class: int = MIN_IMAGES_PER_CLASS) -> None:
    """Raise one clear sentence when the folder cannot train a classifier."""
    where = summary.folder
    if not summary.classes:
        raise DataError(
            f"{where} has no class sub-folders with images; put each class's images in its own "
            "sub-folder (e.g. pets/cat/*.jpg, pets/dog/*.jpg)."
        )
    if len(summary.classes) < 2:
        raise DataError(
            f"{where} has only one class ('{summary.classes[0]}'); at least two class sub-folders are needed."
        )
    small = [f"{name} ({summary.counts[name]})" for name in summary.classes if summary.counts[name] < min_per_class]
    if small:
        raise DataError(
            f"Each class needs at least {min_per_class} images; too few in: {', '.join(small)}."
        )


@dataclass
class LabelledSplit:
    """Train and validation files with integer labels into `classes`."""

    classes: list[str]
    train_paths: list[Path]
    train_labels: list[int]
    val_paths: list[Path]
    val_labels: list[int]


def split_dataset(summary: DatasetSummary, val_split: float = 0.2, seed: int = 0,
                  val_summary: DatasetSummary | None = None) -> LabelledSplit:
    """Stratified, seeded split (every class keeps ≥1 image on each side), or a separate folder."""
    classes = summary.classes
    if val_summary is not None:
        unknown = [c for c in val_summary.classes if c not in classes]
        if unknown:
            raise DataError(
                f"The validation folder has classes the training folder lacks: {', '.join(unknown)}."
            )
        train = [(p, i) for i, c in enumerate(classes) for p in summary.files[c]]
        val = [(p, classes.index(c)) for c in val_summary.classes for p in val_summary.files[c]]
    else:
        if not 0.0 < val_split < 1.0:
            raise DataError(f"The validation split must be between 0 and 1 (got {val_split}).")
        rng = np.random.default_rng(seed)
        train, val = [], []
        for index, name in enumerate(classes):
            paths = list(summary.files[name])
            order = rng.permutation(len(paths))
            n_val = min(len(paths) - 1, max(1, round(val_split * len(paths))))
            val += [(paths[j], index) for j in order[:n_val]]
            train += [(paths[j], index) for j in order[n_val:]]
    if not val:
        raise DataError("The validation folder holds no images of the training classes.")
    return LabelledSplit(classes, [p for p, _ in train], [y for _, y in train],
                         [p for p, _ in val], [y for _, y in val])


def read_caption_pairs(source: str | os.PathLike) -> list[tuple[Path, str]]:
    """Captioned pairs from a CSV (`filepath,caption`, open_clip's format) or a folder of images
    with same-name `.txt` files. Relative CSV paths are read from the CSV's folder."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    pairs = _pairs_from_csv(path) if path.is_file() else _pairs_from_folder(path)
    if len(pairs) < 2:
        raise DataError(f"{path} holds {len(pairs)} captioned image(s); at least two are needed.")
    return pairs


def _pairs_from_csv(path: Path) -> list[tuple[Path, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"Could not read captions from {path}: {error}.") from error
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    rows = list(csv.reader(text.splitlines(), dialect=dialect))
    if not rows:
        raise DataError(f"{path} is empty; expected a header 'filepath,caption' and one row per image.")
    header = [cell.strip().lower() for cell in rows[0]]
    if "filepath" in header and "caption" in header:
        file_col, caption_col, rows = header.index("filepath"), header.index("caption"), rows[1:]
    elif len(header) >= 2:
        file_col, caption_col = 0, 1  # no header: the first two columns
    else:
        raise DataError(f"{path} needs two columns, filepath and caption.")
    pairs = []
    for row in rows:
        if len(row) <= max(file_col, caption_col) or not row[caption_col].strip():
            continue
        image = Path(row[file_col].strip()).expanduser()
        pairs.append((image if image.is_absolute() else (path.parent / image).absolute(), row[caption_col].strip()))
    return pairs


def _pairs_from_folder(folder: Path) -> list[tuple[Path, str]]:
    pairs = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            image = Path(current, name)
            caption_file = image.with_suffix(".txt")
            if image.suffix.lower() in IMAGE_SUFFIXES and caption_file.is_file():
                caption = caption_file.read_text(encoding="utf-8", errors="replace").strip()
                if caption:
                    pairs.append((image.absolute(), caption))
    return pairs


class ImageDataset:
    """Indexable (image tensor, group id) items; `index` may be `(epoch, i)` for seeded augmentation.

    Augmentation draws from torch's global RNG, so each item is transformed under a seed derived
    from (seed, epoch, i): the same item gets the same crop whichever process, worker or resumed
    run loads it — what makes a 2-process run match a 1-process run exactly.
    """

    def __init__(self, paths: Sequence[Path], groups: Sequence[int], transform: Callable,
                 tokens=None, seed: int = 0) -> None:
        self.paths = list(paths)
        self.groups = list(groups)
        self.transform = transform
        self.tokens = tokens  # optional LongTensor [N, context]: one text per item (captions)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        import torch

        epoch, i = index if isinstance(index, tuple) else (0, index)
        image = _load_or_blank(self.paths[i])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch * 10_007 + i) % (2**63))
            tensor = self.transform(image)
        item = {"image": tensor, "group": self.groups[i], "index": i}
        if self.tokens is not None:
            item["tokens"] = self.tokens[i]
        return item


def _load_or_blank(path: Path):
    """A file that broke since the scan must not end a long run: it becomes a grey image."""
    from PIL import Image

    from clipdesk.core.errors import ImageLoadError

    try:
        return open_image(path, draft_size=512)
    except ImageLoadError:
        return Image.new("RGB", (64, 64), (128, 128, 128))
