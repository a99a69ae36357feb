"""The import contracts in pyproject.toml (run by `lint-imports` in .ci/run) hold, and each one
catches the import it forbids: planted in a copy of the sources, relative imports and imports
inside functions included (the old hand-written check missed both)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLANT = "\n\ndef planted_for_the_contract_test():\n    {statement}  # noqa\n"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` over the packages under `root` (a subprocess: its own import path)."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo", "pyproject.toml"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def copy_of_the_sources(tmp_path: Path) -> Path:
    for name in ("clipdesk", "training"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_every_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    ("clipdesk/core/export.py", "from ..qt import thumbnails", "core never imports Qt"),
    ("clipdesk/core/cache.py", "import PySide6.QtCore", "core never imports Qt"),
    ("clipdesk/core/cache.py", "import ray", "core never imports Ray or clipdesk.scale"),
    ("clipdesk/core/cache.py", "from ..scale import ann", "core never imports Ray or clipdesk.scale"),
    ("clipdesk/core/paths.py", "import training.data", "core never imports training"),
    ("training/common.py", "from PySide6 import QtCore", "training never imports Qt"),
    ("clipdesk/qt/thumbnails.py", "from ..scale import ann", "the window never imports Ray or clipdesk.scale"),
    ("clipdesk/core/atomic.py", "from .export import csv_cell", "no import circles among core's modules"),
    ("clipdesk/core/jobs.py", "from . import session", "no import circles among core's modules"),
    ("clipdesk/core/paths.py", "from .. import cli", "no import circles anywhere in clipdesk or training"),
])
def test_a_planted_import_breaks_its_contract(tmp_path, module, statement, contract):
    root = copy_of_the_sources(tmp_path)
    with open(root / module, "a", encoding="utf-8") as source:
        source.write(PLANT.format(statement=statement))
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout, result.stdout
