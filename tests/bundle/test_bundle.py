"""The torch-free desktop bundle as a user meets it (slow: it builds the bundle first).

    python -m pytest -m slow tests/bundle -s          # builds with packaging/build_bundle.py
    CLIPDESK_BUNDLE=dist/clipdesk-0.1.0-linux-x86_64.tar.gz python -m pytest -m slow tests/bundle -s

The tarball is unpacked into a temporary folder outside the checkout and run with `env -i` (HOME
in a temporary folder, no PYTHONPATH, no virtual environment): only what the bundle carries can
be imported. Its CLI's scores must equal the checkout's torch scores to 1e-4, and its window,
under `xvfb-run`, must classify the demo images by itself (screenshot path printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "resources" / "models" / "demo" / "samples").glob("*.png"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle's folder, unpacked from its tarball into a temporary folder."""
    archive = os.environ.get("CLIPDESK_BUNDLE")
    if not archive:
        subprocess.run([sys.executable, str(ROOT / "packaging" / "build_bundle.py"), "--reuse-venv"],
                       check=True, cwd=ROOT, timeout=3600)
        archive = str(next((ROOT / "dist").glob("clipdesk-*-linux-*.tar.gz")))
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="tar")
    folder = next(where.iterdir())
    assert not (Path(folder) / "_internal" / "torch").exists()
    return folder


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def clean_env(home: Path, **extra: str) -> list[str]:
    """`env -i` with only what a desktop session has: nothing of this checkout or its venv."""
    pairs = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra}
    return ["env", "-i", *(f"{k}={v}" for k, v in pairs.items())]


def scores(stdout: str) -> dict[str, dict[str, float]]:
    return {Path(row["path"]).name: row["scores"] for row in json.loads(stdout)}


def test_bundled_cli_scores_equal_the_checkouts(bundle, home, tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    for path in SAMPLES:
        shutil.copy2(path, images / path.name)
    args = ["classify", "--model", "demo", "--format", "json", "--top-k", "64"]
    run = subprocess.run([*clean_env(home), str(bundle / "clipdesk"), *args, *map(str, sorted(images.iterdir()))],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT), CLIPDESK_CACHE_DIR=str(tmp_path / "checkout-cache"))
    checkout = subprocess.run([sys.executable, "-m", "clipdesk", *args, "--backend", "torch", "--no-cache",
                               *map(str, SAMPLES)], capture_output=True, text=True, env=env, timeout=300)
    assert checkout.returncode == 0, checkout.stderr
    got, want = scores(run.stdout), scores(checkout.stdout)
    assert got.keys() == want.keys() and len(got) == len(SAMPLES)
    for name, row in want.items():
        np.testing.assert_allclose([got[name][k] for k in row], list(row.values()), atol=1e-4)
    # first run: caches in the platform's folder (appdirs), and no ONNX export was made
    cache = home / ".cache" / "clipdesk"
    assert (cache / "embeddings.sqlite3").is_file()
    assert not any((cache / "onnx").glob("*/fp32")) if (cache / "onnx").exists() else True


def test_bundled_window_classifies_the_demo_images(bundle, home, tmp_path):
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is missing: apt-get install -y xvfb libxcb-cursor0 libxkbcommon-x11-0")
    shot = tmp_path / "bundle-window.png"
    command = [*clean_env(home, CLIPDESK_SELF_TEST=str(shot)), "xvfb-run", "-a",
               str(bundle / "clipdesk-gui"), "--demo"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [line for line in run.stdout.splitlines() if line.startswith("CLIPDESK_SELF_TEST ")]
    assert run.returncode == 0 and lines, run.stdout + run.stderr
    report = json.loads(lines[-1].split(" ", 1)[1])
    print(f"\nbundle window: shown after {report['shown_s']:.2f} s, scored after "
          f"{report['scored_s']:.2f} s; screenshot {shot}")
    names = [Path(row["path"]).stem for row in report["rows"]]
    assert len(names) == len(SAMPLES)
    assert [row["label"] for row in report["rows"]] == [n[3:].replace("-", " ") for n in names]
    assert shot.is_file() and shot.stat().st_size > 1000
    assert (home / ".config" / "clipdesk").is_dir()  # settings in the platform's folder


def test_bundled_quick_finetune_runs_torch_free_and_its_model_classifies(bundle, home, tmp_path):
    """The quick fine-tune (embeddings + a numpy head) in the bundle, then the command it prints,
    copied literally; `full` says in one sentence what to install."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.full((64, 64, 3), rng.integers(0, 80), np.uint8)
            pixels[16:48, 16:48] = colour
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "model"
    run = subprocess.run([*clean_env(home), str(bundle / "clipdesk"), "finetune", "data", "--model", "demo",
                          "--method", "quick", "--out", str(out)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "head.safetensors").is_file()
    hint = next(line for line in run.stdout.splitlines() if line.startswith("Use it with: "))
    command = hint.removeprefix("Use it with: ").replace("clipdesk ", f"{bundle / 'clipdesk'} ", 1)
    command = command.replace("PATH", "data/red/0.png data/blue/1.png")
    classified = subprocess.run([*clean_env(home), "sh", "-c", command], capture_output=True, text=True,
                                timeout=300, cwd=tmp_path)
    assert classified.returncode == 0, classified.stderr
    lines = classified.stdout.splitlines()
    assert lines[0].split()[1] == "red" and lines[1].split()[1] == "blue", classified.stdout
    full = subprocess.run([*clean_env(home), str(bundle / "clipdesk"), "finetune", "data", "--model", "demo",
                           "--method", "full", "--out", str(tmp_path / "full")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert full.returncode != 0
    message = full.stderr.strip().splitlines()
    assert len(message) == 1 and "pip install 'clipdesk[train]'" in message[0], full.stderr
