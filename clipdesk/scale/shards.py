"""Inputs → shard plans → Parquet shards on disk, and the manifest that says which are current.

A shard is named by a hash of what its embeddings depend on (the model and decode options, then
each file's path, size and modification time; never the labels, whose scores are rewritten in
place from the stored embeddings), so a re-run finds the shards it already wrote and skips them: a killed
job loses only the shards in flight. Shard boundaries are content-defined (a path whose hash is
0 modulo the target size ends a shard), so adding or editing one file re-encodes only the shard
that holds it, not every shard after it. Every file is written through core/atomic.py (a temporary
name, fsynced, then renamed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import images
from ..core.atomic import atomic_path, atomic_write_text
from ..core.errors import ClipdeskError

MANIFEST = "manifest.json"
SHARD_PREFIX, SHARD_SUFFIX = "shard-", ".parquet"
LIST_SUFFIXES = {".txt", ".lst", ".list"}  # a text file of paths, one a line


class IndexFolderError(ClipdeskError):
    """An index folder that cannot be read or written (missing manifest, foreign files, ...)."""


@dataclass(frozen=True)
class Entry:
    """One input file: where it is (local path or fsspec URL) and a stamp that changes when it does."""

    path: str
    stamp: str


@dataclass
class ShardPlan:
    name: str
    entries: list[Entry]


def is_url(path: str) -> bool:
    return "://" in path


# -- listing ------------------------------------------------------------------------------------
def list_inputs(paths: Iterable[str]) -> tuple[list[Entry], dict[str, str]]:
    """Folders, files, text files of paths and fsspec URLs → sorted unique entries, and errors."""
    entries: dict[str, Entry] = {}
    errors: dict[str, str] = {}
    for raw in paths:
        raw = str(raw)
        if is_url(raw):
            found = _list_url(raw, errors)
        elif Path(raw).suffix.lower() in LIST_SUFFIXES and Path(raw).is_file():
            found = _list_file_of_paths(Path(raw), errors)
        else:
            found = _list_local([raw], errors)
        for entry in found:
            if _utf8(entry.path):
                entries.setdefault(entry.path, entry)
            else:  # Parquet strings are UTF-8: one such name must not fail the whole index
                shown = entry.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                errors[shown] = f"{shown}: its name is not valid UTF-8; rename the file to index it."
    return sorted(entries.values(), key=lambda e: e.path), errors


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _list_local(paths: Sequence[str], errors: dict[str, str]) -> list[Entry]:
    scan = getattr(images, "scan_images", None)  # RAW+JPEG pairs as one photo, like classify
    if scan is not None:
        found = scan(paths)
        files, missing = found.files, found.errors
    else:
        files, missing = images.find_images(paths)
    errors.update({str(path): message for path, message in missing.items()})
    found = []
    for path in files:
        try:
            stat = path.stat()
            found.append(Entry(str(path), f"{stat.st_size}:{stat.st_mtime_ns}"))
        except OSError:
            found.append(Entry(str(path), "?"))  # decoding will report it, as a row
    return found


def _list_file_of_paths(listing: Path, errors: dict[str, str]) -> list[Entry]:
    from ..core.safeio import read_text_guarded

    try:  # a list.txt that is a FIFO or a link to /dev/zero must not hang or fill memory
        lines = [line.strip() for line in read_text_guarded(listing, "text").splitlines()]
    except ClipdeskError as error:
        errors[str(listing)] = str(error)
        return []
    found: list[Entry] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            found += _list_url(line, errors)
        else:
            path = Path(line).expanduser()
            found += _list_local([str(path if path.is_absolute() else listing.parent / path)], errors)
    return found


def _list_url(url: str, errors: dict[str, str]) -> list[Entry]:
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise IndexFolderError(f"{url}: reading URLs needs fsspec and the filesystem's package ({error}).") from error
    except ValueError as error:  # unknown protocol
        raise IndexFolderError(f"{url}: {error}.") from error
    try:
        if not fs.isdir(root):
            info = fs.info(root)
            return [Entry(fs.unstrip_protocol(root), _stamp(info))]
        listing = fs.find(root, detail=True)
    except (OSError, ValueError) as error:
        errors[url] = f"{url}: could not be listed ({error})."
        return []
    return [
        Entry(fs.unstrip_protocol(name), _stamp(info))
        for name, info in sorted(listing.items())
        if Path(name).suffix.lower() in _suffixes()
        and not any(part.startswith(".") for part in Path(name).parts)
    ]


def _suffixes() -> frozenset[str]:
    known = getattr(images, "supported_suffixes", None)
    return known() if known else images.IMAGE_SUFFIXES


def _stamp(info: dict) -> str:
    changed = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("etag") or ""
    return f"{info.get('size', '')}:{changed}"


# -- planning -----------------------------------------------------------------------------------
def plan_shards(entries: Sequence[Entry], config: str, target: int) -> list[ShardPlan]:
    """Content-defined shards of about `target` files (at most 4×), named by what they hold."""
    plans: list[ShardPlan] = []
    chunk: list[Entry] = []
    for entry in entries:
        chunk.append(entry)
        cut = int(hashlib.sha1(entry.path.encode()).hexdigest()[:8], 16) % max(1, target) == 0
        if cut or len(chunk) >= 4 * target:
            plans.append(_plan(chunk, config))
            chunk = []
    if chunk:
        plans.append(_plan(chunk, config))
    return plans


def _plan(chunk: list[Entry], config: str) -> ShardPlan:
    digest = hashlib.sha256(config.encode())
    for entry in chunk:
        digest.update(f"\n{entry.path}\t{entry.stamp}".encode())
    return ShardPlan(f"{SHARD_PREFIX}{digest.hexdigest()[:24]}{SHARD_SUFFIX}", list(chunk))


def config_key(**options) -> str:
    """What makes two runs' embeddings and scores interchangeable (model, precision, labels...)."""
    return json.dumps(options, sort_keys=True, default=str)


# -- writing and reading ------------------------------------------------------------------------
def write_shard(folder: Path, name: str, columns: dict[str, object], metadata: dict) -> Path:
    """Write one shard atomically (core/atomic.py: a temporary file in the same folder, fsynced,
    then renamed), so a killed run leaves whole shards or none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({key: _arrow(value) for key, value in columns.items()})
    table = table.replace_schema_metadata({b"clipdesk": json.dumps(metadata).encode()})
    final = folder / name
    with atomic_path(final) as temp:
        pq.write_table(table, temp)
    return final


def _arrow(value):
    import pyarrow as pa

    if isinstance(value, np.ndarray) and value.ndim >= 2:  # (N, D), or quarters (N, 4, D) as N × 4D
        flat = pa.array(value.reshape(-1).astype(np.float32))
        return pa.FixedSizeListArray.from_arrays(flat, int(np.prod(value.shape[1:])))
    return value


def read_shard(path: Path, columns: Sequence[str] | None = None) -> dict[str, object]:
    """A shard's columns (those of `columns` it has); `embedding` and `scores` come back as 2-D
    float32 arrays, `quarters` (stored for multi-label) as (N, 4, D)."""
    import pyarrow.parquet as pq

    # ParquetFile, not pq.read_table: read_table goes through pyarrow.dataset, which imports
    # pandas: 0.2-0.3 s of every `search --index` (a shard is one file; nothing else differs).
    with pq.ParquetFile(path) as handle:
        if columns is not None:
            present = set(handle.schema_arrow.names)
            columns = [name for name in columns if name in present]
        table = handle.read(columns=list(columns) if columns is not None else None)
    out: dict[str, object] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name in ("embedding", "scores", "quarters"):
            width = column.type.list_size
            values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            out[name] = values.reshape(-1, 4, width // 4) if name == "quarters" else values.reshape(-1, width)
        else:
            out[name] = column.to_pylist()
    return out


def shard_metadata(path: Path) -> dict | None:
    """The clipdesk metadata a shard was written with (read from its footer); None if unreadable."""
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(b"clipdesk", b"{}")
        metadata = json.loads(raw)
    except (OSError, ValueError):  # e.g. a truncated file: the caller writes it again
        return None
    return metadata if isinstance(metadata, dict) else None


def existing_shards(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}")}


def write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    from ..core.safeio import read_text_guarded

    try:
        return json.loads(read_text_guarded(path, "json"))
    except ClipdeskError as error:
        if not (path.exists() or path.is_symlink()):
            raise IndexFolderError(f"{folder}: not a clipdesk index (no {MANIFEST}); run `clipdesk index` first.") from error
        raise IndexFolderError(str(error)) from error
    except FileNotFoundError as error:
        raise IndexFolderError(f"{folder}: not a clipdesk index (no {MANIFEST}); run `clipdesk index` first.") from error
    except (OSError, ValueError) as error:
        raise IndexFolderError(f"{path}: unreadable ({error}).") from error


def remove_stale(folder: Path, keep: set[str]) -> int:
    """Delete shards (and leftovers of killed writes) that the current manifest no longer lists."""
    removed = 0
    for name in existing_shards(folder) - keep:
        (folder / name).unlink(missing_ok=True)
        removed += 1
    for temp in folder.glob(f".{SHARD_PREFIX}*.tmp"):
        temp.unlink(missing_ok=True)
    return removed
