"""The import contracts in pyproject.toml (run by `lint-imports` in .ci/run) hold, and each one
catches the import it forbids: planted in a copy of the sources, relative imports and imports
inside functions included (the old hand-written check missed both)."""

from __future__ import annotations

import ast
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
    ("clipdesk/core/paths.py", "from .. import console", "layers: each imports only those below it"),
    ("training/common.py", "from clipdesk import api", "layers: each imports only those below it"),
    ("clipdesk/qt/thumbnails.py", "from .. import api", "layers: each imports only those below it"),
])
def test_a_planted_import_breaks_its_contract(tmp_path, module, statement, contract):
    root = copy_of_the_sources(tmp_path)
    with open(root / module, "a", encoding="utf-8") as source:
        source.write(PLANT.format(statement=statement))
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract} BROKEN" in result.stdout, result.stdout


# -- no private name crosses a module boundary -------------------------------------------------------
# Private imports other branches remove with the circles they break (cli <-> scale/cli: branch
# `dedup`; training: branch `train`). Delete each entry once it is gone: the test says which.
WAITING_FOR_OTHER_BRANCHES: set[tuple[str, str]] = set()


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imported_module(package: list[str], node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, relative imports resolved against `package`."""
    if not node.level:
        return node.module or ""
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def private_names_used_across_modules(root: Path) -> set[tuple[str, str]]:
    """(file, module.name) for each `from m import _x`, and each `m._x` where `m` is a module
    of the project bound by an import, in clipdesk/ and training/ (files under `root`)."""
    found = set()
    for path in sorted([*root.glob("clipdesk/**/*.py"), *root.glob("training/**/*.py")]):
        relative = path.relative_to(root).as_posix()
        package = relative.split("/")[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound: dict[str, str] = {}  # local name -> what it was imported as
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = imported_module(package, node)
                for alias in node.names:
                    if private(alias.name):
                        found.add((relative, f"{module}.{alias.name}"))
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not private(node.attr):
                continue
            chain = dotted(node.value)
            if chain and chain[0] in bound and bound[chain[0]].startswith(("clipdesk", "training")):
                found.add((relative, ".".join([bound[chain[0]], *chain[1:], node.attr])))
    return found


def test_no_private_name_is_imported_across_modules():
    found = private_names_used_across_modules(ROOT)
    assert found - WAITING_FOR_OTHER_BRANCHES == set(), "make these public, or move them down a floor"
    assert WAITING_FOR_OTHER_BRANCHES - found == set(), "gone: delete them from WAITING_FOR_OTHER_BRANCHES"


@pytest.mark.parametrize("statement", ["from .export import _cell", "from . import export\nx = export._cell",
                                       "import clipdesk.core.export\nx = clipdesk.core.export._cell"])
def test_the_private_name_check_sees_a_planted_one(tmp_path, statement):
    root = copy_of_the_sources(tmp_path)
    (root / "clipdesk/core/planted.py").write_text(statement + "\n", encoding="utf-8")
    assert ("clipdesk/core/planted.py", "clipdesk.core.export._cell") in private_names_used_across_modules(root)
