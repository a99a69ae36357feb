"""Build the torch-free desktop bundle: `python3 packaging/build_bundle.py`.

Makes dist/clipdesk-<version>-<os>-<arch>/ (one folder: the `clipdesk` executable, its libraries,
a .desktop file and the icon) and a .tar.gz of it. Steps, each skipped when already done:

1. a build venv in build/bundle-venv with the `app` extra of pyproject.toml (ONNX Runtime, numpy,
   Pillow, PySide6-Essentials, …) and PyInstaller, from PyPI — never torch: what is not in the
   venv cannot end up in the bundle, and the build does not depend on this machine's packages;
2. PyInstaller with packaging/clipdesk.spec (one-folder);
3. the folder renamed, the desktop file and icon added, the tarball written, sizes printed.

`--reuse-venv` skips reinstalling into an existing venv; `--python` picks the interpreter the
venv is made from (the bundle carries that Python).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "bundle-venv"
WORK = ROOT / "build" / "pyinstaller"
DIST = ROOT / "dist"


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def app_requirements() -> list[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    return [*extras["app"], *extras["bundle"]]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_venv(python: str, reuse: bool) -> None:
    ready = venv_python().is_file()
    if not ready:
        run([python, "-m", "venv", str(VENV)])
    if ready and reuse:
        return
    run([str(venv_python()), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(venv_python()), "-m", "pip", "install", "--quiet", *app_requirements()])
    check = subprocess.run([str(venv_python()), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, check=True)
    if check.stdout.strip() != "None":
        raise SystemExit(f"{VENV} has torch installed; delete it and build again (the bundle is torch-free).")


def platform_tag() -> str:
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    return f"{system}-{machine}"


def build(python: str, reuse: bool) -> Path:
    started = time.monotonic()
    make_venv(python, reuse)
    venv_s = time.monotonic() - started
    run([str(venv_python()), "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(DIST), "--workpath", str(WORK), str(ROOT / "packaging" / "clipdesk.spec")])
    name = f"clipdesk-{version()}-{platform_tag()}"
    target = DIST / name
    shutil.rmtree(target, ignore_errors=True)
    (DIST / "clipdesk").rename(target)
    finish_folder(target)
    strip_binaries(target)
    archive = DIST / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(target, arcname=name)
    print(f"built {target} in {time.monotonic() - started:.0f} s (venv {venv_s:.0f} s)")
    print(f"archive {archive}: {archive.stat().st_size / 1e6:.0f} MB")
    report_sizes(target)
    return target


def finish_folder(target: Path) -> None:
    """What a user's desktop needs beside the executable: a launcher entry and the icon."""
    shutil.copy2(ROOT / "resources" / "icons" / "clipdesk.svg", target / "clipdesk.svg")
    shutil.copy2(ROOT / "packaging" / "clipdesk.desktop", target / "clipdesk.desktop")
    shutil.copy2(ROOT / "packaging" / "install-desktop-entry.sh", target / "install-desktop-entry.sh")
    if os.name != "nt":
        (target / "clipdesk-gui").unlink(missing_ok=True)
        (target / "clipdesk-gui").symlink_to("clipdesk")  # the launcher opens the window by this name


STRIPPABLE = ("libpython3", "lib-dynload/", "PySide6/Qt/lib/")


def strip_binaries(target: Path) -> None:
    """Drop the symbol tables of the interpreter, its extension modules and Qt's libraries
    (`--strip-unneeded` keeps what dynamic linking needs): ~25 MB, 17 MB of it libpython's.

    Only those: the wheels' auditwheel-repaired libraries (`*.libs/`, numpy's, Pillow's, …) were
    rewritten by patchelf, and stripping them breaks them ("ELF load command address/offset not
    page-aligned": numpy's OpenBLAS, seen here). PyInstaller's `strip=True` would strip them all."""
    strip = shutil.which("strip")
    if strip is None or not sys.platform.startswith("linux"):
        return
    for path in (target / "_internal").rglob("*.so*"):
        relative = path.relative_to(target / "_internal").as_posix()
        if path.is_symlink() or not path.is_file() or not any(p in relative for p in STRIPPABLE):
            continue
        if path.read_bytes()[:4] == b"\x7fELF":
            subprocess.run([strip, "--strip-unneeded", str(path)], check=False, capture_output=True)


def folder_size(path: Path) -> int:
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def report_sizes(target: Path, top: int = 15) -> None:
    """The unpacked size, and the largest files and folders (what to trim next)."""
    print(f"unpacked: {folder_size(target) / 1e6:.0f} MB")
    internal = target / "_internal"
    parts = sorted(((folder_size(p), p) for p in internal.iterdir()), reverse=True)[:top]
    for size, path in parts:
        print(f"  {size / 1e6:7.1f} MB  {path.relative_to(target)}")


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter the bundle carries")
    parser.add_argument("--reuse-venv", action="store_true", help="do not reinstall into build/bundle-venv")
    args = parser.parse_args()
    build(args.python, args.reuse_venv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
