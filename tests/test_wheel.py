"""The package installs from a wheel, not only from a checkout: the wheel (built from an sdist, as
an index would) carries resources/, and in a brand-new virtualenv outside the checkout
`clipdesk classify --model demo` and the Python example work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a source distribution is made from; anything else the build needs must be added here.
PROJECT_FILES = ["pyproject.toml", "build_hooks.py", "MANIFEST.in", "README.md", "requirements.txt",
                 "requirements.lock", "clipdesk", "training", "resources"]
SHIPPED = ["clipdesk/_resources/models/demo/model.safetensors",
           "clipdesk/_resources/models/demo/metadata.json",
           "clipdesk/_resources/model_configs/clipdesk-demo.json",
           "clipdesk/_resources/model_configs/clipdesk-tiny.json",
           "clipdesk/api.py", "training/api.py"]


def run(*argv, **options) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **options)
    assert out.returncode == 0, f"{argv}\n{out.stdout}\n{out.stderr}"
    return out


def build_wheel(tmp_path: Path) -> Path:
    """sdist from a copy of the project files, then a wheel from the sdist (no network, no isolation)."""
    source, dist = tmp_path / "source", tmp_path / "dist"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PROJECT_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.is_file():
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    sdist = run(sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                "print(b.build_sdist(sys.argv[1]))", dist, cwd=source).stdout.strip().splitlines()[-1]
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", dist, dist / sdist, cwd=tmp_path)
    (wheel,) = dist.glob("clipdesk-*.whl")
    return wheel


def fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtualenv with only the wheel installed; the third-party packages of this interpreter
    are made visible by a .pth line (whose folder's own .pth files, among them the checkout's
    editable-install hook, are not processed), so the checkout's clipdesk cannot be imported."""
    run(sys.executable, "-m", "venv", "--without-pip", root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_outer_site_packages.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    return python


def test_wheel_carries_resources_and_runs_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [name for name in SHIPPED if name not in names]
    assert not [name for name in names if name.startswith(("resources/", "build_hooks"))]

    venv = tmp_path / "venv"
    python = fresh_venv(venv, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    where = run(python, "-c", "import clipdesk, clipdesk.core.paths as p; print(clipdesk.__file__); "
                "print(p.resources_dir())", cwd=elsewhere, env=env).stdout.split("\n")
    assert all(Path(line).resolve().is_relative_to(venv.resolve()) for line in where[:2]), where

    images = elsewhere / "images"
    images.mkdir()
    for name in ("01-red-circle.png", "02-blue-star.png"):
        shutil.copy(ROOT / "resources" / "models" / "demo" / "samples" / name, images / name)
    clipdesk = venv / ("Scripts/clipdesk.exe" if os.name == "nt" else "bin/clipdesk")
    out = run(clipdesk, "classify", images, "--model", "demo", "--labels", "red circle, blue star",
              "--format", "json", "--backend", "torch", cwd=elsewhere, env=env)
    assert [(Path(row["path"]).name, row["label"]) for row in json.loads(out.stdout)] == [
        ("01-red-circle.png", "red circle"), ("02-blue-star.png", "blue star")]

    example = elsewhere / "classify_demo.py"
    shutil.copy(ROOT / "examples" / "classify_demo.py", example)
    shown = run(python, example, cwd=elsewhere, env=env).stdout
    assert "01-red-circle.png" in shown and "Embeddings: 12 × " in shown
