"""The ONNX export as one-time background work, like `git gc --auto`.

The first CPU use of a model is served by torch at once; meanwhile `python -m
clipdesk.core.onnx_export` exports (and, for int8, quantises) it in a separate, low-priority
process — out of the app's memory and GIL. At most one such process runs per model (a lock file
beside the export). The export itself is staged in a temporary folder, verified and renamed into
place (`onnx_store.staging`), so a killed export leaves no half export; its `.tmp-*` folder is
removed by the next run. A failed export is recorded and not retried for a day, or until clipdesk
or the export format changes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .atomic import atomic_write_text
from .errors import ClipdeskError
from .jobs import run_job
from .models import load_model
from .onnx_convert import export_job
from .onnx_store import EXPORT_FORMAT, export_root, sanitise
from .safeio import read_json_or_none, read_text_guarded
from .version import __version__

BACKGROUND_ENV = "CLIPDESK_BACKGROUND_EXPORT"  # "0": never start one (tests, scripted runs)
LOCK_FILE, FAILED_FILE = ".export.lock", "failed.json"
RETRY_AFTER_S = 24 * 3600
NOTE = "Preparing a faster ONNX version of this model in the background; later runs will use it."


def model_root(identity: str) -> Path:
    """The folder holding one model's exports (fp32/, int8/), its lock and its failure marker."""
    return export_root() / sanitise(identity)


def _version() -> str:
    return f"{__version__}/format-{EXPORT_FORMAT}"


# -- process bookkeeping ----------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or the platform cannot tell: assume alive)
    return True


def _lock_owner(lock: Path) -> int:
    try:  # a FIFO put in its place must not hang the export
        return int(read_text_guarded(lock, "json", 4096, 2.0, "ascii").split()[0])
    except (OSError, ValueError, IndexError, ClipdeskError):
        return 0


def export_running(identity: str) -> bool:
    lock = model_root(identity) / LOCK_FILE
    return lock.exists() and pid_alive(_lock_owner(lock))


@contextlib.contextmanager
def export_lock(identity: str):
    """Yields True when this process holds the model's export lock, False when another live one does."""
    root = model_root(identity)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_FILE
    held = False
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if pid_alive(_lock_owner(lock)):
                break
            lock.unlink(missing_ok=True)  # its owner was killed: take over
            continue
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        held = True
        break
    try:
        yield held
    finally:
        if held and _lock_owner(lock) == os.getpid():
            lock.unlink(missing_ok=True)


def clean_stale(identity: str | None = None) -> int:
    """Remove `.tmp-*` export folders whose writer is gone (killed, crashed); returns how many.

    New ones are named `.tmp-<precision>-<pid>-<hex>`; an older name without a pid is stale."""
    roots = [model_root(identity)] if identity else [p for p in export_root().glob("*") if p.is_dir()]
    removed = 0
    for root in roots:
        for tmp in root.glob(".tmp-*"):
            parts = tmp.name.split("-")
            pid = int(parts[2]) if len(parts) >= 4 and parts[2].isdigit() else 0
            if pid and pid_alive(pid):
                continue
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


# -- failure memory -----------------------------------------------------------------------------------
def recent_failure(identity: str) -> str | None:
    """The error of a failed export still within its back-off (same version), else None."""
    try:
        record = read_json_or_none(model_root(identity) / FAILED_FILE)
        if (isinstance(record, dict) and record.get("version") == _version()
                and time.time() - float(record.get("time", 0)) < RETRY_AFTER_S):
            return str(record.get("error", "failed"))
    except (OSError, ValueError, TypeError):
        pass
    return None


def record_failure(identity: str, error: str) -> None:
    atomic_write_text(model_root(identity) / FAILED_FILE,
                      json.dumps({"time": time.time(), "version": _version(), "error": error[:300]}))


# -- starting one -------------------------------------------------------------------------------------
def background_enabled() -> bool:
    return os.environ.get(BACKGROUND_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def start_background_export(arch: str, pretrained: str, identity: str,
                            precision: str = "fp32") -> subprocess.Popen | None:
    """Start the export process unless one runs, a recent attempt failed, or it is turned off."""
    if not background_enabled() or export_running(identity) or recent_failure(identity):
        return None
    clean_stale(identity)
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "clipdesk.core.onnx_export", f"--arch={arch}", f"--pretrained={pretrained}",
               f"--identity={identity}", f"--precision={precision}"]  # `=`: values may start with '-'
    options: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                     "env": env, "close_fds": True}
    if sys.platform == "win32":
        options["creationflags"] = 0x00004000 | 0x00000200  # BELOW_NORMAL_PRIORITY, NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True  # outlives the CLI run that started it; no Ctrl-C
    try:
        return subprocess.Popen(command, **options)  # noqa: S603 - our own module, fixed arguments
    except OSError:
        return None


# -- the export process ---------------------------------------------------------------------------------
def run_export(arch: str, pretrained: str, identity: str, precision: str = "fp32") -> int:
    """Load, export, verify, rename into place; 0 done (or another process is on it), 1 failed."""
    with export_lock(identity) as held:
        if not held:
            return 0
        clean_stale(identity)
        try:
            loaded = load_model(arch, pretrained, "cpu")
            if loaded.identity != identity:
                raise RuntimeError(f"the weights changed since ({loaded.identity} is not {identity})")
            run_job(export_job(loaded, precision))
        except Exception as error:  # noqa: BLE001 - recorded, so the next runs do not retry at once
            text = str(error).strip().splitlines()
            with contextlib.suppress(OSError):  # a full or read-only disk: nothing more to do
                record_failure(identity, f"{type(error).__name__}: {text[0] if text else ''}")
            return 1
        (model_root(identity) / FAILED_FILE).unlink(missing_ok=True)
    return 0


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.nice(19)
    try:
        import torch  # only in the export process, which loads the model anyway

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // 2))  # leave the foreground a core even when niceness is ignored
    except Exception:  # noqa: BLE001, S110 - best effort
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipdesk.core.onnx_export",
                                     description="Export a model to ONNX (clipdesk's background job).")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--foreground", action="store_true", help="keep the normal priority")
    args = parser.parse_args(argv)
    if not args.foreground:
        _lower_priority()
    return run_export(args.arch, args.pretrained, args.identity, args.precision)


if __name__ == "__main__":
    sys.exit(main())
