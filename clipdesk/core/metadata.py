"""A model folder's metadata.json, read and checked (a floor below `models` and `demo`).

Both the loader (`models`) and the demo model (`demo`) read it; here neither imports the other
for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

METADATA_FILE = "metadata.json"
METADATA_LIMIT = 1 << 20  # a metadata.json is a few KB; never read gigabytes (a link to /dev/zero)


def read_metadata(folder: Path) -> dict:
    """A model folder's metadata.json, checked: a dict whose known keys have the right types."""
    path = Path(folder) / METADATA_FILE
    try:
        if not path.is_file():
            raise OSError("missing or not a regular file")
        if path.stat().st_size > METADATA_LIMIT:
            raise ValueError(f"larger than {METADATA_LIMIT >> 10} KB")
        with open(path, "rb") as handle:  # utf-8-sig: a file saved by Windows Notepad starts with a BOM
            metadata = json.loads(handle.read(METADATA_LIMIT + 1).decode("utf-8-sig"))
    except RecursionError as error:
        raise ModelLoadError(f"{path} nests too deeply to be a model's metadata.") from error
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{folder} has no readable {METADATA_FILE} ({_short(error)}).") from error
    return check_metadata(metadata, path)


_METADATA_TYPES = {"architecture": str, "base_pretrained": (str, type(None)), "class_names": list,
                   "templates": (str, type(None)), "head": (dict, type(None)), "method": (str, type(None))}


def check_metadata(metadata: Any, path: Path) -> dict:
    """One sentence naming the file and the field, instead of a traceback later."""
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, not {type(metadata).__name__}.")
    for key, kind in _METADATA_TYPES.items():
        if key in metadata and not isinstance(metadata[key], kind):
            raise ModelLoadError(f"{path}: '{key}' has the wrong type ({type(metadata[key]).__name__}).")
    names = metadata.get("class_names", [])
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise ModelLoadError(f"{path}: 'class_names' must be a list of non-empty strings.")
    if "architecture" in metadata and not metadata["architecture"].strip():
        raise ModelLoadError(f"{path}: 'architecture' is empty.")
    return metadata


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__
