"""A platform without a wheel for pillow-heif or rawpy still runs: those formats are skipped with
one line saying so. Simulated in a fresh interpreter where importing them fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from synth_images import save_image
from synth_raw import write_dng

from clipdesk.core import decoders

BLOCK = "import sys; sys.modules['pillow_heif'] = None; sys.modules['rawpy'] = None\n"


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def make_folder(root: Path) -> Path:
    decoders.registry()  # this process has pillow-heif: write a real HEIC for the other one
    folder = root / "photos"
    save_image(folder / "a.png", seed=1)
    Image.fromarray(np.full((64, 64, 3), (200, 30, 30), np.uint8)).save(folder / "b.heic", "HEIF")
    write_dng(folder / "c.dng", np.full((64, 96, 3), 128, np.uint8))
    (folder / "d.mov").write_bytes(b"x")
    return folder


def test_missing_decoders_are_named_once_and_their_files_skipped(tmp_path):
    folder = make_folder(tmp_path)
    code = f"""
import json
from clipdesk.core.errors import ImageLoadError
from clipdesk.core.images import open_image, scan_images, supported_suffixes
scan = scan_images([{str(folder)!r}])
errors = {{}}
for name in ("b.heic", "c.dng"):
    try:
        open_image({str(folder)!r} + "/" + name)
    except ImageLoadError as error:
        errors[name] = str(error)
print(json.dumps({{"files": [p.name for p in scan.files], "notes": scan.notes(), "errors": errors,
                  "heic": ".heic" in supported_suffixes(), "dng": ".dng" in supported_suffixes(),
                  "avif": ".avif" in supported_suffixes()}}))
"""
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["files"] == ["a.png"]
    assert not got["heic"] and not got["dng"] and got["avif"]  # AVIF is Pillow's own
    assert got["notes"] == [
        "HEIC/HEIF and camera RAW files cannot be read on this system (decoder not installed); "
        "they are skipped.",
        "3 files skipped: 1 .dng, 1 .heic, 1 .mov (no installed decoder reads them).",
    ]
    heic, dng = folder / "b.heic", folder / "c.dng"
    assert got["errors"] == {"b.heic": f"{heic}: HEIC/HEIF files need a decoder (pillow-heif) that is not installed here.",
                             "c.dng": f"{dng}: camera RAW files need rawpy, which is not installed here."}


def test_cli_still_classifies_with_one_line_about_the_missing_formats(tmp_path):
    folder = make_folder(tmp_path)
    code = f"""
from clipdesk.cli import main
sys.exit(main(["classify", {str(folder)!r}, "--model", "demo", "--labels", "red circle,blue star",
               "--templates", "none", "--backend", "torch", "--no-cache", "--format", "json"]))
"""
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [row["path"] for row in json.loads(proc.stdout)] == [str(folder / "a.png")]
    lines = proc.stderr.splitlines()
    assert sum("cannot be read on this system" in line for line in lines) == 1
    assert "clipdesk: 3 files skipped: 1 .dng, 1 .heic, 1 .mov (no installed decoder reads them)." in lines
