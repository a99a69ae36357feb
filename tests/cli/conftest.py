"""CLI fixtures: a small folder of PNGs (plus one broken file) and a runner around `main(argv)`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))  # shared image synthesiser

from synth_images import save_image  # noqa: E402

from clipdesk.cli import main  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for i, name in enumerate(["b.png", "a.png", "sub/c.png"]):
        save_image(root / name, seed=i, width=96, height=72)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    return root


@pytest.fixture
def cli(capsys):
    """`cli(*argv)` -> (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
