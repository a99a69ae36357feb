"""Contracts of the project itself: layering, and the README's promises that CI relies on."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _package_of(path: Path) -> list[str]:
    """The dotted package a file's relative imports start from: `clipdesk/core/export.py` and
    `clipdesk/core/__init__.py` are both in `clipdesk.core`."""
    return list(path.relative_to(ROOT).with_suffix("").parts[:-1])


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Every module a file imports, relative imports resolved to absolute names; for `from x import
    y` both `x` and `x.y` (y may be a submodule: `from .. import qt` imports clipdesk.qt)."""
    names: set[str] = set()
    source = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path)
                base = package[:len(package) - (node.level - 1)]
                assert len(base) == len(package) - (node.level - 1), f"{path}: import beyond the top"
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def test_relative_imports_are_resolved():
    """The checker itself: a relative Qt import must be seen, or the layering test passes on it."""
    source = "from ..qt import main_window\nfrom .. import qt\nfrom . import atomic\nfrom .x.y import z\n"
    names = _imports(ROOT / "clipdesk" / "core" / "export.py", source)
    assert names == {"clipdesk.qt", "clipdesk.qt.main_window", "clipdesk", "clipdesk.core",
                     "clipdesk.core.atomic", "clipdesk.core.x.y", "clipdesk.core.x.y.z"}
    assert _imports(ROOT / "clipdesk" / "core" / "__init__.py", "from .engine import Engine\n") == {
        "clipdesk.core.engine", "clipdesk.core.engine.Engine"}


def test_core_training_and_cli_never_import_qt():
    layers = [*(ROOT / "clipdesk" / "core").rglob("*.py"), *(ROOT / "training").rglob("*.py"),
              ROOT / "clipdesk" / "cli.py"]
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] in ("PySide6", "shiboken6") or n == "clipdesk.qt" or n.startswith("clipdesk.qt."))
        for path in layers
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_core_does_not_import_qt():
    code = "import sys, clipdesk.core.engine, clipdesk.cli; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(commands) == 2
    test_command = commands[1].split("#")[0].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    install = commands[0].split("&&")[0].strip()
    assert install in ci_lines


def _requirement_names(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_ci_builds_a_brand_new_virtualenv_and_shuffles_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv" in ci and "activate" in ci
    assert ci.index("python3 -m venv") < ci.index("pip install")
    assert "pytest-randomly" in (ROOT / "pyproject.toml").read_text()


def test_install_uses_a_lock_that_pins_every_dependency():
    import tomllib

    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-c requirements.lock" in requirements
    lock_lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = _requirement_names(lock_lines)
    assert pins and all(re.fullmatch(r"[\w.+!]+", v) for v in pins.values()), "every lock line is name==version"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    extras = re.search(r"\.\[([\w,]+)\]", " ".join(requirements)).group(1).split(",")
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    for spec in wanted:
        name = re.sub(r"[-_.]+", "-", re.match(r"[\w.\-]+", spec).group(0)).lower()
        assert name in pins, f"{name} is a dependency but is not pinned in requirements.lock"


def test_lock_refresh_command_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lock = (ROOT / "requirements.lock").read_text()
    command = re.search(r"^#\s+(pip-compile .*)$", lock, re.M).group(1).strip()
    assert command in readme
