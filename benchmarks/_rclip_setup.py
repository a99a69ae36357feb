"""Set-up for bench_rclip.py: rclip 3.3 in its own venv, fed random-weight ONNX towers, no download.

rclip looks for `$RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/{visual,textual}.onnx` and
`$RCLIP_DATADIR/tokenizer/bpe_simple_vocab_16e6.txt.gz` and downloads only what is missing
(rclip/model_download.py). Its sessions feed one input named "input" (float32 pixels or int64
tokens) and normalise the first output themselves — exactly the towers clipdesk exports, so the
two tools run the very same seeded ViT-B-32-256 weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "rclip"
VENV = HERE / "_data" / "rclip-venv"
RCLIP_MODEL_DIR = "ViT-B-32-256-datacomp_s34b_b86k"
RCLIP_REQUIREMENT = "rclip==3.3.*"  # rclip depends on onnxruntime, not torch: a small venv


def rclip_executable(log=print) -> Path:
    """The venv's `rclip`, installing it from the package index on first use."""
    exe = VENV / ("Scripts/rclip.exe" if os.name == "nt" else "bin/rclip")
    if exe.is_file():
        return exe
    log(f"  installing {RCLIP_REQUIREMENT} into {VENV} (once)")
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run([str(python), "-m", "pip", "install", "-q", RCLIP_REQUIREMENT], check=True)
    return exe


def rclip_version(exe: Path) -> str:
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()


def install_towers(export_folder: Path, datadir: Path) -> None:
    """Copy clipdesk's fp32 export (same seeded weights) and open_clip's BPE file where rclip looks."""
    from clipdesk.core.onnx_lite import open_clip_bpe_path

    models = datadir / RCLIP_MODEL_DIR
    models.mkdir(parents=True, exist_ok=True)
    import onnx

    for name in ("visual.onnx", "textual.onnx"):
        # clipdesk keeps weights in a memory-mapped `<name>.data`; rclip gets single-file models,
        # as it downloads them, so it runs exactly as shipped.
        model = onnx.load(str(export_folder / name))
        tmp = models / f".{name}.tmp"
        onnx.save_model(model, str(tmp))
        tmp.replace(models / name)
    vocab = datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
    vocab.parent.mkdir(parents=True, exist_ok=True)
    if not vocab.is_file():
        shutil.copyfile(open_clip_bpe_path(), vocab)


def photo_folder(sources: list[Path], name: str) -> Path:
    """A folder holding exactly `sources` (hard links when possible): rclip indexes its cwd."""
    folder = DATA / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for source in sources:
        target = folder / source.name
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return folder


def in_child(*args: str) -> None:
    """Run a set-up step in a child process: on Linux a child's peak RSS (wait4) starts from its
    parent's at exec time, so the measuring process itself must never hold models or photos."""
    subprocess.run([sys.executable, str(Path(__file__)), *args], check=True)


if __name__ == "__main__":  # python _rclip_setup.py photos N | towers EXPORT_FOLDER DATADIR
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    if sys.argv[1] == "photos":
        from _images import ensure_photos

        ensure_photos(int(sys.argv[2]))
    elif sys.argv[1] == "towers":
        install_towers(Path(sys.argv[2]), Path(sys.argv[3]))
