"""Every user path comes from appdirs; environment variables redirect them (tests, portable installs)."""

from __future__ import annotations

import os
from pathlib import Path

import appdirs

APP_NAME = "clipdesk"


def _dir(env_var: str, default: str) -> Path:
    path = Path(os.environ.get(env_var) or default)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in its place, a read-only parent: one sentence, not a traceback
        from .errors import FolderError

        raise FolderError(f"{path} cannot be used as a clipdesk folder ({error.strerror or error}); "
                          f"set {env_var} to a writable folder.") from error
    return path


def cache_dir() -> Path:
    """Embedding cache, downloaded weights, ONNX exports: safe to delete."""
    return _dir("CLIPDESK_CACHE_DIR", appdirs.user_cache_dir(APP_NAME))


def config_dir() -> Path:
    """Settings and label sets."""
    return _dir("CLIPDESK_CONFIG_DIR", appdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """Things the user made and would miss: fine-tuned models."""
    return _dir("CLIPDESK_DATA_DIR", appdirs.user_data_dir(APP_NAME))


def weights_dir() -> Path:
    path = cache_dir() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def finetuned_models_dir() -> Path:
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def resources_dir() -> Path:
    """The shipped `resources/` (model configs, demo model): inside the package when installed
    from a wheel (`clipdesk/_resources`, see build_hooks.py), else the checkout's top-level folder."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_resources"
    return packaged if packaged.is_dir() else package.parent / "resources"
