"""Set-up for bench_rclip.py (rclip 3.3) and bench_peers_rclip4.py (rclip 4.0.8): rclip in a venv
of its own, fed random-weight ONNX towers, no download.

Both versions look for `$RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/{visual,textual}.onnx` and
`$RCLIP_DATADIR/tokenizer/bpe_simple_vocab_16e6.txt.gz` and download only what is missing
(rclip/model_download.py). rclip 4 also wants the model repository's four legal files
(LICENSE, OPENAI-CLIP-MIT.txt, README.md, THIRD_PARTY_NOTICES.md) in `$RCLIP_DATADIR` itself:
without any one of them it calls huggingface_hub's `snapshot_download` even when the model files
are there (and fails offline), so the benchmark writes placeholders that say what they are. Its
sessions feed one input named "input" (float32 pixels or int64 tokens; rclip 4 casts to float16
only for a float16 model) and normalise the first output themselves — exactly the towers clipdesk
exports, so the tools run the very same seeded ViT-B-32-256 weights.
"""

from __future__ import annotations

import glob
import json
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
# rclip 4 declares Requires-Python >=3.12,<3.14: its venv is made with such an interpreter.
RCLIP4_REQUIREMENT, RCLIP4_PYTHON = "rclip==4.0.8", ((3, 12), (3, 13))
VENV4 = HERE / "_data" / "rclip4-venv"
RCLIP4_LEGAL_FILES = ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md")


class SetupError(RuntimeError):
    """A peer cannot be set up here (no suitable Python, no package index): one sentence."""


def _bin(venv_dir: Path, name: str) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def rclip_executable(log=print, venv_dir: Path = VENV, requirement: str = RCLIP_REQUIREMENT,
                     python: str | None = None) -> Path:
    """The venv's `rclip`, installing `requirement` from the package index on first use (with
    `python`'s venv module when given: rclip 4 needs a newer interpreter than clipdesk's)."""
    exe = _bin(venv_dir, "rclip")
    if exe.is_file():
        return exe
    log(f"  installing {requirement} into {venv_dir} (once)")
    if python is None:
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    else:
        subprocess.run([python, "-m", "venv", "--clear", str(venv_dir)], check=True)
    subprocess.run([str(_bin(venv_dir, "python")), "-m", "pip", "install", "-q", requirement], check=True)
    return exe


def rclip4_executable(log=print) -> Path:
    """rclip 4.0.8 in `_data/rclip4-venv`, made with a Python 3.12/3.13 found on this machine."""
    if _bin(VENV4, "rclip").is_file():
        return _bin(VENV4, "rclip")
    return rclip_executable(log, VENV4, RCLIP4_REQUIREMENT, find_python(RCLIP4_PYTHON))


def python_candidates(versions=RCLIP4_PYTHON, home: Path | None = None) -> list[str]:
    """Where an interpreter of `versions` may be: $RCLIP_PYTHON, `python3.X` on PATH, pyenv's."""
    home = home or Path.home()
    found = [os.environ["RCLIP_PYTHON"]] if os.environ.get("RCLIP_PYTHON") else []
    for major, minor in versions:
        on_path = shutil.which(f"python{major}.{minor}")
        if on_path:
            found.append(on_path)
        pattern = str(home / ".pyenv" / "versions" / f"{major}.{minor}.*" / "bin" / "python3")
        found.extend(sorted(glob.glob(pattern), reverse=True))
    return found


def find_python(versions=RCLIP4_PYTHON) -> str:
    """The first candidate that runs and reports one of `versions` (sys.version_info[:2])."""
    for candidate in python_candidates(versions):
        try:
            out = subprocess.run([candidate, "-c", "import sys, venv; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if tuple(map(int, out or (0, 0))) in versions:
            return candidate
    wanted = " or ".join(f"{a}.{b}" for a, b in versions)
    raise SetupError(f"rclip 4 needs Python {wanted} and none was found (set RCLIP_PYTHON to one, "
                     "or install python3.12).")


def rclip_version(exe: Path) -> str:
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()


def install_towers(export_folder: Path, datadir: Path, legal_files: bool = False) -> None:
    """Copy clipdesk's fp32 export (same seeded weights) and open_clip's BPE file where rclip looks
    (and, for rclip 4, placeholders for the legal files it checks before trusting them)."""
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
    if legal_files:
        write_legal_placeholders(datadir)


def write_legal_placeholders(datadir: Path) -> list[Path]:
    """rclip 4's model_download trusts local model files only when these four files sit beside
    them; the real ones come with rclip's weights, which this benchmark does not use."""
    written = []
    for name in RCLIP4_LEGAL_FILES:
        path = datadir / name
        if not path.is_file():
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(f"Placeholder written by clipdesk's benchmarks/_rclip_setup.py: the models here are "
                           f"clipdesk's seeded random-weight ViT-B-32-256 export, not rclip's ({name}).\n",
                           encoding="utf-8")
            tmp.replace(path)
        written.append(path)
    return written


def rclip4_offline_paths(exe: Path, datadir: Path) -> dict:
    """Ask rclip 4's own code, offline, which files it will load: proves the layout is complete
    (a missing piece makes it try huggingface_hub, which fails with HF_HUB_OFFLINE=1)."""
    script = ("import json; from rclip import model_download as m; m.ensure_downloaded(); "
              "print(json.dumps({'visual': m.download_visual_query_model(), "
              "'textual': m.download_textual_model(), 'vocab': m.download_tokenizer_vocab()}))")
    env = dict(os.environ, RCLIP_DATADIR=str(datadir), HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    run = subprocess.run([str(_bin(exe.parent.parent, "python")), "-c", script],
                         capture_output=True, text=True, env=env)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise SetupError(f"rclip 4 does not find its model files offline: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def photo_folder(sources: list[Path], name: str, base: Path = DATA) -> Path:
    """A folder holding exactly `sources` (hard links when possible): rclip indexes its cwd."""
    folder = base / name
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


def ensure_small_photos(count: int, size: tuple[int, int], quality: int = 90) -> list[Path]:
    """`count` distinct small JPEGs (same synthetic scenes as the 12-MP ones, at `size`)."""
    from _images import synth_photo

    folder = HERE / "_data" / "core" / f"jpeg_{size[0]}x{size[1]}_q{quality}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:05d}.jpg" for i in range(count)]
    for n, path in enumerate(paths):
        if not path.is_file():
            if n % 250 == 0:
                print(f"  synthesising {size[0]}×{size[1]} JPEGs: {n}/{count}", file=sys.stderr, flush=True)
            tmp = path.with_suffix(".tmp")
            synth_photo(n, size).save(tmp, "JPEG", quality=quality)
            tmp.replace(path)
    return paths


if __name__ == "__main__":  # python _rclip_setup.py photos N | small N W H | towers EXPORT DATADIR [legal]
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    if sys.argv[1] == "photos":
        from _images import ensure_photos

        ensure_photos(int(sys.argv[2]))
    elif sys.argv[1] == "small":
        ensure_small_photos(int(sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4])))
    elif sys.argv[1] == "towers":
        install_towers(Path(sys.argv[2]), Path(sys.argv[3]), legal_files=sys.argv[4:] == ["legal"])
