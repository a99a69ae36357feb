"""Write a file so that readers see the old content or the new one, never half of either.

The one implementation behind every file clipdesk writes whole (exports, settings, the image list,
the sort journal, training state and metadata, checkpoints, pictures): a temporary file in the same
folder (so the rename cannot cross file systems), flushed to disk, given the mode a new file would
get (the umask — not mkstemp's private 0600) or the replaced file's own mode, then `os.replace`d
over the target. On any failure, a full disk or a Ctrl+C included, the temporary file is removed
and the old file is left as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .strict_json import json_safe

# Temporary names are `.<name>.<6 hex>.tmp`: training/checkpoint.py recognises what an
# interrupted write leaves behind by that pattern.
_TEMP_ATTEMPTS = 100


def current_umask() -> int:
    """The process umask, read without the set-and-restore race of os.umask where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mode_for(path: Path) -> int:
    """Overwriting keeps the file's own permissions; a new file gets what the umask allows."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _create_temp(path: Path) -> Path:
    """A new, empty, private file beside `path` (O_EXCL: never someone else's file)."""
    for _ in range(_TEMP_ATTEMPTS):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return temp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}.")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on every platform."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except (OSError, AttributeError):
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write by name (Pillow, safetensors, torch.save); when the block
    ends normally it replaces `path`, otherwise it is removed and `path` is untouched.

    The folder is created if needed. The temporary file exists (empty, mode 0600) when yielded.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = mode_for(path)
    temp = _create_temp(path)
    try:
        yield temp
        _fsync_file(temp)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically (see the module docstring)."""
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        stream.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`text` as UTF-8, line endings as given (no newline translation), atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2,
                      ensure_ascii: bool = False) -> None:
    """Strict JSON (RFC 8259, UTF-8) written atomically.

    Passed through `strict_json.json_safe` first: NaN/inf become null and text that is not valid
    Unicode (a file name with undecodable bytes) becomes `\\xNN` text, so every JSON parser
    reads the file; a `path` field that is not UTF-8 gets an exact `path_bytes_b64` beside it.
    """
    text = json.dumps(json_safe(data), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
    atomic_write_text(path, text + "\n")
