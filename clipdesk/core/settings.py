"""Desktop-app settings as one JSON file in the appdirs config folder, written atomically.

Plain JSON (not QSettings) keeps the settings readable, testable without Qt, and shared by any
front end. Unknown keys from newer versions are kept; bad or missing files fall back to defaults.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .paths import config_dir

log = logging.getLogger(__name__)
SETTINGS_FILE = "settings.json"
MAX_RECENT_LABEL_SETS = 10

DEFAULTS: dict[str, Any] = {
    "geometry": "",  # the window's saveGeometry(), base64
    "window_state": "",
    "splitters": {},
    "arch": "",  # empty: the app picks (default tag if downloaded, else the demo model)
    "pretrained": "",
    "device": "auto",
    "backend": "auto",
    "templates": "photo",
    "labels": [],
    "recent_label_sets": [],
    "threshold": 0.0,  # 0 disables the unsure bucket's confidence test
    "margin": 0.0,
    "multi_label": False,
    "last_folder": "",
}


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file in the same folder, then os.replace: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class Settings:
    """A dict of settings with defaults; `save()` persists, `load()` never raises."""

    def __init__(self, values: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.path = Path(path) if path else settings_path()
        self.values: dict[str, Any] = {**DEFAULTS, **(values or {})}

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = Path(path) if path else settings_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as error:
            log.warning("Ignoring unreadable settings file %s: %s", path, error)
            data = {}
        settings = cls(path=path)
        for key, value in data.items():  # a wrongly-typed value falls back to its default
            default = DEFAULTS.get(key)
            if default is None or isinstance(value, type(default)) or (
                isinstance(default, float) and isinstance(value, int)
            ):
                settings.values[key] = value
        return settings

    def save(self) -> None:
        write_json_atomic(self.path, self.values)

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key, DEFAULTS.get(key))

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def remember_label_set(self, labels: list[str]) -> None:
        """The current labels become the newest recent set (deduplicated, at most ten kept)."""
        labels = [str(label) for label in labels if str(label).strip()]
        self.values["labels"] = labels
        if not labels:
            return
        recent = [s for s in self.values.get("recent_label_sets", []) if s != labels]
        self.values["recent_label_sets"] = [labels, *recent][:MAX_RECENT_LABEL_SETS]
