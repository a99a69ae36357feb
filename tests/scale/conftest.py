"""Scale fixtures: a generated folder of tiny PNGs (and one broken file), the demo model's engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_helpers import make_folder  # noqa: E402


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return make_folder(tmp_path / "photos", 40)


@pytest.fixture
def demo_engine():
    """The demo model on torch, without the user's cache (each test gets its own folders)."""
    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.jobs import run_job

    return run_job(open_engine_job("demo", "demo", "cpu", "torch", use_cache=False))
