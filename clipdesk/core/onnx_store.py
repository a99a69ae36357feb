"""Where ONNX exports live and when one counts as complete: folders, meta.json, atomic staging.

Exports live in `cache_dir()/onnx/<model identity>/<precision>/` (visual.onnx, textual.onnx and
their `.data` weights, meta.json), keyed by `LoadedModel.identity` so a fine-tuned checkpoint gets
its own export. Each is written into a temporary sibling folder and renamed into place
(`staging`), so a crash or a concurrent run never leaves a half export; `read_meta` accepts only
a complete, current export whose files still hash to what was verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from .models import file_fingerprint
from .paths import cache_dir
from .safeio import read_json_or_none

EXPORT_FORMAT = 2  # bump when the wrappers or the layout change: older exports are then redone
PRECISIONS = ("fp32", "int8")
VISUAL, TEXTUAL, META = "visual.onnx", "textual.onnx", "meta.json"
TOWERS = {"visual": VISUAL, "textual": TEXTUAL}
SHIPPED = "onnx"  # a model folder's own fp32 export (the demo ships one), used read-only


def export_root() -> Path:
    return cache_dir() / "onnx"


def sanitise(identity: str) -> str:
    """A folder name for an identity: readable, filesystem-safe, and still unique (hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity).strip("._")[:80] or "model"
    return f"{readable}-{hashlib.blake2b(identity.encode(), digest_size=4).hexdigest()}"


def export_dir(identity: str, precision: str = "fp32") -> Path:
    return export_root() / sanitise(identity) / precision


def read_meta(folder: Path, identity: str) -> dict | None:
    """The export's meta.json if the export is complete, current and for this identity."""
    meta = read_json_or_none(folder / META)
    if not isinstance(meta, dict):
        return None
    if meta.get("format") != EXPORT_FORMAT or meta.get("identity") != identity:
        return None
    if not all((folder / n).is_file() and (folder / f"{n}.data").is_file() for n in TOWERS.values()):
        return None
    if meta.get("files") != file_digests(folder):  # zeroed or edited weights: garbage, exit 0
        return None
    return meta


def file_digests(folder: Path) -> dict[str, str]:
    """Whole-content hashes of an export's files, recorded once it was verified against torch and
    checked at every use (memoised by path, size and mtime, so a later start pays nothing)."""
    return {name: file_fingerprint(folder / name)
            for tower in sorted(TOWERS.values()) for name in (tower, f"{tower}.data")}


def cached_export(identity: str, precision: str = "fp32",
                  source: str | Path | None = None) -> tuple[Path, dict] | None:
    """(folder, meta) of a complete, verified export at `precision`, if there is one.

    fp32 also looks in the model folder `source` itself (`<folder>/onnx`): the demo model ships
    its export there, so neither torch nor a first-run export is ever needed for it. int8 is
    always derived into the cache (a shipped folder may be read-only)."""
    folder = export_dir(identity, precision)
    meta = read_meta(folder, identity)
    if meta is None and precision == "fp32":
        return shipped_export(identity, source)
    return (folder, meta) if meta is not None else None


def shipped_identity(source: str | Path, arch: str) -> str | None:
    """The identity a model folder's own export records, for a folder that ships only the export
    (the desktop bundle leaves out the demo's torch weights). Trusted only as far as `read_meta`
    then finds the export's files as they were verified."""
    meta = read_json_or_none(Path(source).expanduser() / SHIPPED / META)
    identity = meta.get("identity") if isinstance(meta, dict) else None
    return identity if isinstance(identity, str) and identity.startswith(f"{arch}/") else None


def shipped_export(identity: str, source: str | Path | None) -> tuple[Path, dict] | None:
    """The fp32 export a model folder carries in `onnx/`, if it is complete and for `identity`
    (its meta.json names the identity, which hashes the folder's weights: a fine-tune that
    replaced them never matches the old export)."""
    if not source:
        return None
    folder = Path(source).expanduser() / SHIPPED
    if not folder.is_dir():
        return None
    meta = read_meta(folder, identity)
    return (folder, meta) if meta is not None else None


def write_meta(folder: Path, meta: dict) -> None:
    meta["files"] = file_digests(folder)
    (folder / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")


class staging:
    """Write an export into a temporary sibling folder, then rename it into place (atomic)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Path:
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                if self.folder.exists():  # a stale or concurrent export: ours is complete
                    shutil.rmtree(self.folder, ignore_errors=True)
                try:
                    os.replace(self.tmp, self.folder)
                except OSError:
                    if not self.folder.is_dir():  # lost a race to another process: theirs stands
                        raise
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
