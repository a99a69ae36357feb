"""Scale fixtures: a generated folder of tiny PNGs (and one broken file), the demo model's engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))  # shared image synthesiser

from synth_images import save_image  # noqa: E402

LABELS = ["red circle", "blue star", "green square", "yellow heart"]


def make_folder(root: Path, count: int) -> Path:
    for i in range(count):
        save_image(root / f"d{i % 3}" / f"{i:03d}.png", seed=i, width=40, height=32)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return make_folder(tmp_path / "photos", 40)


@pytest.fixture
def demo_engine():
    """The demo model on torch, without the user's cache (each test gets its own folders)."""
    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.jobs import run_job

    return run_job(open_engine_job("demo", "demo", "cpu", "torch", use_cache=False))
