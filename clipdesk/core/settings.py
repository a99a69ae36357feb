"""Desktop-app settings as one JSON file in the appdirs config folder, written atomically.

Plain JSON (not QSettings) keeps the settings readable, testable without Qt, and shared by any
front end. Unknown keys from newer versions are kept; bad or missing files fall back to defaults.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic
from .errors import ClipdeskError
from .paths import config_dir
from .prompts import DEFAULT_TEMPLATES, TEMPLATE_SET_NAMES

log = logging.getLogger(__name__)
__all__ = ["DEFAULTS", "Settings", "settings_path", "validate_setting", "write_json_atomic"]
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
    "templates": DEFAULT_TEMPLATES,
    "labels": [],
    "recent_label_sets": [],
    "threshold": 0.0,  # 0 disables the unsure bucket's confidence test
    "margin": 0.0,
    "multi_label": False,
    "last_folder": "",
    "keep_raw_pairs_separate": False,  # True: IMG_1.CR3 beside IMG_1.JPG are two photos
    "sort_destination": "",
}


_INVALID = object()
DEVICES = ("auto", "cpu", "cuda", "gpu", "mps")
BACKENDS = ("auto", "torch", "onnx")
TEMPLATES = TEMPLATE_SET_NAMES
MAX_TEXT = 4096  # a path, an architecture name or a label; geometry blobs are longer


def validate_setting(key: str, value: Any) -> Any:
    """The value to use for `key`, or `_INVALID`: a hand-edited or older file must never make
    the app fail to start, so every field is checked on its own and falls back to its default."""
    checker = _CHECKS.get(key)
    if checker is None:
        return value
    try:
        return checker(value)
    except (TypeError, ValueError, OverflowError):
        return _INVALID


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise ValueError("not a short string")
    return value


def _choice(options: tuple[str, ...]):
    def check(value: Any) -> str:
        if _text(value) not in options:
            raise ValueError(f"not one of {options}")
        return value

    return check


def _base64(value: Any) -> str:
    """Qt's saveGeometry()/saveState() blobs; restoring garbage would raise in the window."""
    import base64
    import binascii

    text = _text(value, limit=1 << 20)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64") from error
    return text


def _splitters(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return {k: v for k, v in value.items()
            if isinstance(k, str) and validate_setting("geometry", v) is not _INVALID}


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # also refuses NaN
        raise ValueError("out of range")
    return number


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not true/false")
    return value


def _label_list(value: Any) -> list[str]:
    """Labels: non-string entries (`null`, numbers, objects) are dropped, not the whole list."""
    if not isinstance(value, list):
        raise TypeError("not a list")
    from .prompts import strip_controls

    return [strip_controls(v).strip() for v in value
            if isinstance(v, str) and len(v) <= MAX_TEXT and strip_controls(v).strip()]


def _label_sets(value: Any) -> list[list[str]]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    sets = [_label_list(item) for item in value if isinstance(item, list)]
    return [labels for labels in sets if labels][:MAX_RECENT_LABEL_SETS]


_CHECKS = {
    "geometry": _base64, "window_state": _base64, "splitters": _splitters,
    "arch": _text, "pretrained": _text, "last_folder": _text, "sort_destination": _text,
    "device": _choice(DEVICES), "backend": _choice(BACKENDS), "templates": _choice(TEMPLATES),
    "labels": _label_list, "recent_label_sets": _label_sets,
    "threshold": _fraction, "margin": _fraction, "multi_label": _flag,
}


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


class Settings:
    """A dict of settings with defaults; `save()` persists, `load()` never raises."""

    def __init__(self, values: dict[str, Any] | None = None, path: Path | None = None) -> None:
        self.path = Path(path) if path else settings_path()
        self.values: dict[str, Any] = {**DEFAULTS, **(values or {})}

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        try:
            path = Path(path) if path else settings_path()
        except OSError as error:  # the config folder is a file, or cannot be created
            log.warning("Settings cannot be kept: %s", error)
            return cls(path=Path(os.devnull) / SETTINGS_FILE)
        settings = cls(path=path)
        if not path.exists() and not path.is_symlink():
            return settings
        try:
            from .safeio import read_text_guarded

            data = json.loads(read_text_guarded(path, "settings"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, RecursionError, ClipdeskError) as error:
            log.warning("Ignoring unreadable settings file %s: %s", path, error)
            return settings
        for key, value in data.items():
            if not isinstance(key, str):
                continue
            if key not in DEFAULTS:  # a newer version's setting: kept as it is
                settings.values[key] = value
                continue
            valid = validate_setting(key, value)
            if valid is _INVALID:
                log.warning("Settings file %s: ignoring a bad value for '%s'.", path, key)
            else:
                settings.values[key] = valid
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
