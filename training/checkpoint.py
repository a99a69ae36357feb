"""Fine-tuned model folders: safetensors weights (or a small head) + metadata.json, written atomically.

The core reads them back by path (`clipdesk.core.models.load_model(pretrained=FOLDER)`).
`metadata.json` is written last, so a folder interrupted mid-write never looks complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import uuid
from pathlib import Path

from clipdesk.core.models import METADATA_FILE, WEIGHTS_FILE
from clipdesk.core.paths import finetuned_models_dir

from .loop import write_json_atomic

HEAD_FILE = "head.safetensors"
STATE_DIR = ".resume"  # resumable training state, inside the output folder until it completes


def default_name(folder: Path, method: str) -> str:
    stem = re.sub(r"[^\w.-]+", "-", Path(folder).expanduser().resolve().name).strip("-.") or "model"
    return f"{stem}-{method}"


def output_dir(folder: Path, method: str, out: Path | None, name: str | None) -> Path:
    """`--out` as given; else models/<name>/ in the user data dir, keeping finished models:
    a folder holding a completed model gets a numbered sibling, one with resumable state is reused."""
    if out is not None:
        return Path(out).expanduser().absolute()
    base = name or default_name(folder, method)
    root = finetuned_models_dir()
    candidate, number = root / base, 2
    while (candidate / METADATA_FILE).exists() and not (candidate / STATE_DIR).exists():
        candidate, number = root / f"{base}-{number}", number + 1
    return candidate


def save_safetensors_atomic(tensors: dict, path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tensors = {k: (torch.from_numpy(v) if not isinstance(v, torch.Tensor) else v).contiguous()
               for k, v in tensors.items()}
    save_file(tensors, str(tmp))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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
    write_json_atomic(folder / METADATA_FILE, metadata)
    return folder


def portable_reference(pretrained: str) -> str:
    """Tags stay tags; files and folders become absolute paths so the head finds its base."""
    text = (pretrained or "none").strip()
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve())
    return text
