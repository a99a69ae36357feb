"""Test-wide isolation: no network, no user folders, Qt offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"  # a test must never reach for the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CLIPDESK_BACKGROUND_EXPORT", "0")  # no export processes behind tests' backs

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, config and data folders instead of the user's."""
    root = tmp_path_factory.mktemp("userdirs")
    for name in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"CLIPDESK_{name}_DIR", str(root / name.lower()))
    return root


def pytest_terminal_summary(terminalreporter, config):
    """Print the random-order seed even under -q, so a failure seen once can be replayed."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(
            f"Test order: pytest-randomly seed {seed}; replay with: python3 -m pytest -q --randomly-seed={seed}")
