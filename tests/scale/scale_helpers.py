"""Shared by the scale tests (a module of its own: `from conftest import` is ambiguous across folders)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))  # shared image synthesiser

import numpy as np  # noqa: E402
from synth_images import save_image  # noqa: E402

from clipdesk.core.jobs import run_job  # noqa: E402
from clipdesk.scale import shards as sh  # noqa: E402
from clipdesk.scale.pipeline import IndexOptions, ModelSpec, index_job  # noqa: E402

LABELS = ["red circle", "blue star", "green square", "yellow heart"]


def make_folder(root: Path, count: int) -> Path:
    """`count` tiny PNGs in three sub-folders, plus one file that is not an image."""
    for i in range(count):
        save_image(root / f"d{i % 3}" / f"{i:03d}.png", seed=i, width=40, height=32)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def spoil_images(folder) -> int:
    """Overwrite every image with bytes no decoder reads, keeping its size and mtime (its stamp)."""
    count = 0
    for path in folder.rglob("*.png"):
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        count += 1
    return count


SPEC = ModelSpec("demo", "demo", "cpu", "torch")


def run_index(engine, inputs, out, **options):
    options = {"labels": LABELS, "shard_size": 8, "use_ray": False, **options}
    return run_job(index_job(SPEC, [str(p) for p in inputs], out, engine, IndexOptions(**options)))


def table(folder: Path) -> dict[str, dict]:
    return {name: sh.read_shard(folder / name) for name in sorted(sh.existing_shards(folder))}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name]["path"] == b[name]["path"] and a[name]["error"] == b[name]["error"]
        np.testing.assert_allclose(a[name]["embedding"], b[name]["embedding"], atol=1e-6)
