"""Training data: labelled folders (one sub-folder per class) and captioned image/text pairs.

Every problem becomes a `DataError` with one sentence naming the folder or file; files that
are not images are skipped and reported, never fatal. Nothing is ever trained on that could not
be read: pipes, devices and links to them are skipped at the scan (they would hang or never end),
corrupt images are dropped with a note by `verify_job`, and a class none of whose images can be
read is an error, not a class learnt from nothing.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipdesk.core.errors import ClipdeskError
from clipdesk.core.export import valid_unicode
from clipdesk.core.images import open_image, pair_raw_files
from clipdesk.core.jobs import CancelToken, Job, Progress, check
from clipdesk.core.safeio import SIZE_LIMITS, read_bytes_guarded, read_text_guarded

MIN_IMAGES_PER_CLASS = 2  # one to train on and one to validate with, at the very least
CAPTION_LIMIT = 1 << 20  # a caption .txt beyond 1 MB is not a caption
VERIFY_DRAFT = 64  # decoding every image once at a small scale still reads all of its data


def _image_suffixes() -> frozenset[str]:
    from clipdesk.core import images

    return frozenset(images.IMAGE_SUFFIXES)


class DataError(ClipdeskError):
    """The training folder, validation folder or captions file cannot be used as given."""


class ImageChangedError(DataError):
    """An image that passed the check broke during training. A DataLoader worker re-raises it with
    its whole traceback as the message; only our own sentence (the last line) is kept."""

    def __init__(self, message: str) -> None:
        text = str(message)
        if "Traceback" in text:
            last = text.strip().splitlines()[-1]
            for prefix in (f"{type(self).__module__}.{type(self).__qualname__}: ", f"{type(self).__qualname__}: "):
                if last.startswith(prefix):
                    text = last[len(prefix):]
                    break
        super().__init__(text)


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
    """The class prompt is the folder name, with underscores read as spaces; a name that would
    read as nothing (`___`) stays as it is, and one of only blanks is refused."""
    folder_name = valid_unicode(folder_name)  # bytes that are not UTF-8 as \xNN: the same in metadata.json
    name = " ".join(folder_name.replace("_", " ").split())
    if name:
        return name
    if folder_name.strip():
        return folder_name.strip()
    raise DataError(f"The class folder {folder_name!r} has a blank name; rename it to the class it holds.")


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an image, without opening it (a FIFO would block the open)."""
    try:
        info = os.stat(path)
    except OSError as error:
        return f"{path.name}: could not be read ({error.strerror or error}); skipped."
    if not stat.S_ISREG(info.st_mode):
        return f"{path.name}: not a regular file (a pipe, device or link to one); skipped."
    if info.st_size == 0:
        return f"{path.name}: empty file (0 bytes); skipped."
    if info.st_size > SIZE_LIMITS["image"]:
        return f"{path.name}: {info.st_size / 2**30:.1f} GB is too large for an image; skipped."
    return None


def scan_dataset(folder: str | os.PathLike) -> DatasetSummary:
    """List classes and their images; hidden and empty folders, special files and non-images are
    skipped (non-image and hidden files as one count per class folder)."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(f"The folder {root} does not exist.")
    if not root.is_dir():
        raise DataError(f"{root} is a file; give a folder with one sub-folder per class.")
    classes: list[str] = []
    counts: dict[str, int] = {}
    files: dict[str, list[Path]] = {}
    skipped: list[str] = []
    try:
        children = sorted(root.iterdir())
    except OSError as error:
        raise DataError(f"The folder {root} cannot be read ({error.strerror or error}).") from error
    for child in children:
        if child.name.startswith("."):
            continue  # hidden folders (.git, .thumbnails) are never classes; not worth a note
        if not child.is_dir():
            skipped.append(f"{child.name}: a file directly in the folder (images go in class sub-folders).")
            continue
        images, others = _class_images(child)
        skipped.extend(others)
        if not images:
            skipped.append(f"{child.name}/: no images; not used as a class.")
            continue
        name = class_name(child.name)
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
    """Image files of one class folder, and notes: one per unusable image file, one count of the
    non-image and hidden files (with a few example names)."""
    suffixes = _image_suffixes()
    images, notes, others, hidden = [], [], [], 0
    for current, dirs, names in os.walk(folder, onerror=lambda error: notes.append(
            f"{error.filename}: could not be read ({error.strerror}); skipped.")):
        hidden += sum(d.startswith(".") for d in dirs)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(current, name)
            if name.startswith("."):
                hidden += 1
            elif path.suffix.lower() not in suffixes:
                others.append(path.relative_to(folder).as_posix())
            elif problem := file_problem(path):
                notes.append(f"{folder.name}/{problem}")
            else:
                images.append(path.absolute())
    if others:
        examples = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        notes.append(f"{folder.name}/: {len(others)} file(s) that are not images ignored ({examples}).")
    if hidden:
        notes.append(f"{folder.name}/: {hidden} hidden file(s) or folder(s) ignored.")
    images, twins = pair_raw_files(sorted(images))  # one photo, not two (nor one in each split)
    if twins:
        notes.append(f"{folder.name}/: {len(twins)} RAW file(s) beside a JPEG of the same name; "
                     "the JPEG is used.")
    return images, notes


def verify_job(summary: DatasetSummary, cancel: CancelToken | None = None,
               allow_empty: bool = False) -> Job[DatasetSummary]:
    """Decode every image once (at a small draft scale) and drop those that fail, with a note per
    file; a class left with no readable image is an error (unless `allow_empty`). Training then
    never meets a bad file."""
    total = summary.total
    started = Progress(0, total, "Checking the images", unit="image")
    yield started
    files, counts, skipped, done = {}, {}, list(summary.skipped), 0
    for name in summary.classes:
        readable = []
        for path in summary.files[name]:
            check(cancel)
            try:
                open_image(path, draft_size=VERIFY_DRAFT)
                readable.append(path)
            except ClipdeskError as error:  # ImageLoadError, or the file guard's refusal
                skipped.append(f"{error} It was not used for training.")
            done += 1
            if done % 32 == 0 or done == total:
                yield Progress(done, total, "Checking the images", unit="image", started=started.started)
        if not readable and not allow_empty:
            raise DataError(f"None of the {len(summary.files[name])} images of class '{name}' could be "
                            f"read (in {summary.folder}); fix or remove that folder.")
        files[name], counts[name] = readable, len(readable)
    return DatasetSummary(list(summary.classes), counts, skipped, summary.folder, files)


def verify_dataset(summary: DatasetSummary, cancel: CancelToken | None = None) -> DatasetSummary:
    """`verify_job` for callers that are not generators (a validation folder, say)."""
    from clipdesk.core.jobs import run_job

    return run_job(verify_job(summary, cancel))


def require_every_class(classes: Sequence[str], folder, *label_arrays) -> None:
    """After decoding: every class must have kept at least one readable image."""
    seen = {int(y) for labels in label_arrays for y in np.asarray(labels).ravel()}
    missing = [c for i, c in enumerate(classes) if i not in seen]
    if missing:
        raise DataError(f"None of the images of class '{missing[0]}' in {folder} could be read; "
                        "fix or remove that folder.")


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


def read_caption_pairs(source: str | os.PathLike, notes: list[str] | None = None) -> list[tuple[Path, str]]:
    """Captioned pairs from a CSV (`filepath,caption`, open_clip's format) or a folder of images
    with same-name `.txt` files. Relative CSV paths are read from the CSV's folder. Pairs whose
    image is missing or not a regular file are left out, each with a line in `notes`."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    notes = notes if notes is not None else []
    pairs = _pairs_from_folder(path, notes) if path.is_dir() else _pairs_from_csv(path)
    usable = []
    for image, caption in pairs:
        problem = file_problem(image)
        if problem:
            notes.append(f"{image.parent}/{problem}")
        else:
            usable.append((image, caption))
    if len(usable) < 2:
        raise DataError(f"{path} holds {len(usable)} usable captioned image(s); at least two are needed.")
    return usable


def _pairs_from_csv(path: Path) -> list[tuple[Path, str]]:
    try:
        text = read_text_guarded(path, "text", encoding="utf-8-sig")
    except ClipdeskError as error:
        raise DataError(f"Could not read captions from {error}") from error
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    try:
        rows = list(csv.reader(text.splitlines(), dialect=dialect))
    except csv.Error as error:
        raise DataError(f"{path} is not a valid CSV file ({error}).") from error
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
        if len(row) <= max(file_col, caption_col) or not row[caption_col].strip() or "\0" in row[file_col]:
            continue
        image = Path(row[file_col].strip()).expanduser()
        pairs.append((image if image.is_absolute() else (path.parent / image).absolute(), row[caption_col].strip()))
    return pairs


def _pairs_from_folder(folder: Path, notes: list[str]) -> list[tuple[Path, str]]:
    suffixes = _image_suffixes()
    pairs = []
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            image = Path(current, name)
            caption_file = image.with_suffix(".txt")
            if name.startswith(".") or image.suffix.lower() not in suffixes or not caption_file.exists():
                continue
            try:
                data = read_bytes_guarded(caption_file, "text", max_bytes=CAPTION_LIMIT)
                caption = data.decode("utf-8", errors="replace").replace("\0", "").strip()
            except ClipdeskError as error:
                notes.append(f"{error} Its image was not used.")
                continue
            if caption:
                pairs.append((image.absolute(), caption))
    return pairs


def verify_pairs_job(pairs: Sequence[tuple[Path, str]], notes: list[str],
                     cancel: CancelToken | None = None) -> Job[list[tuple[Path, str]]]:
    """Captioned pairs whose image decodes; the others are dropped with a note each."""
    summary = DatasetSummary(["pairs"], {"pairs": len(pairs)}, [], None, {"pairs": [p for p, _ in pairs]})
    checked = yield from verify_job(summary, cancel, allow_empty=True)
    notes.extend(checked.skipped)
    readable = set(checked.files["pairs"])
    kept = [(p, c) for p, c in pairs if p in readable]
    if len(kept) < 2:
        raise DataError(f"Only {len(kept)} of the captioned images could be read; at least two are needed.")
    return kept


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
        image = load_training_image(self.paths[i])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch * 10_007 + i) % (2**63))
            tensor = self.transform(image)
        item = {"image": tensor, "group": self.groups[i], "index": i}
        if self.tokens is not None:
            item["tokens"] = self.tokens[i]
        return item


def load_training_image(path: Path):
    """An image for training or validation. Every file was checked before training began, so a
    failure here means it broke since: stop with one sentence (the run resumes) rather than learn
    from a made-up image."""
    try:
        return open_image(path, draft_size=512)
    except ClipdeskError as error:
        raise ImageChangedError(f"{error} It changed since the images were checked; fix or remove it and run "
                        "the same command again (training resumes).") from error
