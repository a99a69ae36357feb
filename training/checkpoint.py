"""Fine-tuned model folders: safetensors weights (or a small head) + metadata.json, written atomically.

The core reads them back by path (`clipdesk.core.models.load_model(pretrained=FOLDER)`).
`metadata.json` is written last, so a folder interrupted mid-write never looks complete.
Every file is written to a temporary name and renamed, and only into a folder that is new, empty,
or holds an interrupted run of ours: an existing model is replaced only when asked (`overwrite`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from clipdesk.core.atomic import atomic_path, write_json_atomic
from clipdesk.core.models import METADATA_FILE, WEIGHTS_FILE
from clipdesk.core.paths import finetuned_models_dir

from .data import DataError

HEAD_FILE = "head.safetensors"
STATE_DIR = ".resume"  # resumable training state, inside the output folder until it completes
MODEL_FILES = frozenset({METADATA_FILE, WEIGHTS_FILE, HEAD_FILE, "confusion.png", STATE_DIR})
_TEMP = re.compile(r"^\..+\.[0-9a-f]{6}\.tmp$")  # what save_safetensors_atomic / write_json_atomic leave
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def default_name(folder: Path, method: str) -> str:
    stem = re.sub(r"[^\w.-]+", "-", Path(folder).expanduser().resolve().name).strip("-.") or "model"
    return f"{stem}-{method}"


def check_name(name: str) -> str:
    """`--name` is one folder inside the models folder: no separators, `..` or control codes."""
    text = str(name).strip()
    if not text or text.startswith(".") or _BAD_NAME.search(text) or len(text) > 120:
        raise DataError(f"The model name {text!r} must be a plain folder name (no '/', '\\', leading "
                        "'.' or control characters, at most 120 characters).")
    return text


def output_dir(folder: Path, method: str, out: Path | None, name: str | None,
               overwrite: bool = False) -> Path:
    """`--out` as given; else models/<name>/ in the user data dir, keeping finished models:
    a folder holding anything else gets a numbered sibling, one with resumable state is reused.

    An `--out` folder must be new, empty or hold an interrupted run of ours; with `overwrite` it
    may also hold a model, whose files are then replaced. Nothing else is ever written over."""
    if out is not None:
        target = Path(out).expanduser().absolute()
        if os.path.lexists(target) and not target.exists():
            raise DataError(f"--out {target} is a link to nothing; give a folder for the model.")
        if target.exists() and not target.is_dir():
            raise DataError(f"--out {target} is a file; give a folder for the model (it is created if missing).")
        problem = _occupied(target, overwrite) or _unwritable(target) or _inside_data(target, folder)
        if problem:
            raise DataError(problem)
        return target
    base = check_name(name) if name is not None else default_name(folder, method)
    root = finetuned_models_dir()
    candidate, number = root / base, 2
    while _occupied(candidate, overwrite):
        candidate, number = root / f"{base}-{number}", number + 1
    problem = _unwritable(candidate)
    if problem:
        raise DataError(problem)
    return candidate


def _inside_data(target: Path, data: Path) -> str | None:
    """A model folder inside the training folder would be scanned as a class next time."""
    data = Path(data).expanduser()
    if not data.is_dir():
        return None
    if target.resolve().is_relative_to(data.resolve()):
        return f"--out {target} is inside the training folder {data}; choose a folder outside it."
    return None


def _unwritable(folder: Path) -> str | None:
    """Found out before training, not after: the folder (or the nearest one that exists) must be
    a folder we may write in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"The output folder {folder} cannot be created: {existing} is a file."
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"The output folder {folder} cannot be written: {existing} is not writable."
    return None


def _occupied(folder: Path, overwrite: bool) -> str | None:
    """Why a model may not be written into `folder`, or None when it may."""
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder} is a file."
    try:
        names = {entry.name for entry in folder.iterdir()}
    except OSError as error:
        return f"The output folder {folder} cannot be read ({error.strerror or error})."
    names = {n for n in names if not _TEMP.match(n)}  # half-written files of an interrupted run
    if not names or (folder / STATE_DIR).is_dir():
        return None  # new, or an interrupted run of ours that resumes here
    if overwrite and (METADATA_FILE in names or names <= MODEL_FILES):
        return None
    if overwrite:
        return (f"{folder} holds files that are not a clipdesk model ({sorted(names)[0]}, ...); "
                "choose a new or empty folder.")
    return (f"{folder} already holds files ({sorted(names)[0]}, ...); choose a new or empty folder, "
            "or add --overwrite to replace the model in it.")


def save_safetensors_atomic(arrays: dict[str, np.ndarray], path: Path) -> None:
    """numpy arrays to safetensors (numpy's API: the quick head is written without torch; full
    and captions hand over their weights as arrays, `common.numpy_state`)."""
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # not ascontiguousarray: it makes 0-d 1-d
    bad = [k for k, v in arrays.items() if v.dtype.kind in "fc" and not bool(np.isfinite(v).all())]
    if bad:  # the last line of defence: a model with NaN weights would score garbage with exit 0
        raise DataError(f"The trained weights hold non-finite values ({bad[0]}); nothing was saved to {path.parent}; "
                        "lower the learning rate and train again.")
    with atomic_path(path) as temp:  # the umask's mode, not safetensors' 0600; no half file on a full disk
        save_file(arrays, str(temp))


def base_metadata(arch: str, base_pretrained: str, method: str, class_names: list[str],
                  templates: str) -> dict:
    return {
        "format": "clipdesk-finetuned/1",
        "architecture": arch,
        "base_pretrained": base_pretrained,
        "method": method,
        "class_names": list(class_names),
        "templates": templates,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_model_folder(folder: Path, metadata: dict, weights: dict | None = None,
                       head: dict | None = None) -> Path:
    """Full weights → model.safetensors; a few-shot head → head.safetensors (no base weights)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METADATA_FILE).unlink(missing_ok=True)  # incomplete until the new metadata lands
    if weights is not None:
        save_safetensors_atomic(weights, folder / WEIGHTS_FILE)
        (folder / HEAD_FILE).unlink(missing_ok=True)
    if head is not None:
        save_safetensors_atomic(head, folder / HEAD_FILE)
        if weights is None:  # an older full model here would be loaded instead of the head's base
            (folder / WEIGHTS_FILE).unlink(missing_ok=True)
    write_json_atomic(folder / METADATA_FILE, finite_json(metadata), indent=1)
    return folder


def finite_json(value):
    """NaN/inf are not JSON: a figure that could not be computed is stored as null."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return finite_json(value.item())
    return value


def portable_reference(pretrained: str) -> str:
    """Tags stay tags; files and folders become absolute paths so the head finds its base."""
    text = (pretrained or "none").strip()
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    return text
