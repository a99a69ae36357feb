"""The built-in demo model shipped in resources/models/demo."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError
from .paths import resources_dir


def demo_model_dir() -> Path:
    folder = resources_dir() / "models" / "demo"
    if not (folder / "metadata.json").is_file():
        raise ModelLoadError(f"The demo model is missing from {folder}; reinstall clipdesk.")
    return folder
