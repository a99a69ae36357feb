"""One guard for every file clipdesk reads: a regular file, of a bounded size, read in bounded time.

A FIFO named `x.png` would block `open()` forever, a symlink to `/dev/zero` would be read until
memory runs out, and a 40 GB "labels file" is a mistake, not a label list. Every reader goes through
`check_regular` (for libraries that open the path themselves) or `read_bytes_guarded` /
`read_text_guarded`, which refuse such files with one sentence naming the file, raised as the
project's exception type for that kind of file.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from .errors import ClipdeskError, ImageLoadError, LabelError, ModelLoadError

MiB = 1024 * 1024
GiB = 1024 * MiB

# Generous but bounded: the largest real file of each kind, with room to spare.
SIZE_LIMITS: dict[str, int] = {
    "image": 1 * GiB,  # a 200-MP 16-bit TIFF or a big RAW still fits
    "labels": 16 * MiB,  # ~1 million labels
    "metadata": 16 * MiB,  # metadata.json, a model's config
    "json": 64 * MiB,  # other JSON the program reads (undo journals, CSV manifests ...)
    "settings": 4 * MiB,  # the GUI's settings.json
    "text": 64 * MiB,  # captions, CSV files of pairs
    "checkpoint": 64 * GiB,  # a ViT-bigG fp32 checkpoint is ~10 GB
}

# What a reader of each kind raises: the caller's per-kind contract (an image error skips one
# file; a model error exits 1; a labels error is a usage problem).
ERROR_TYPES: dict[str, type[ClipdeskError]] = {
    "image": ImageLoadError,
    "labels": LabelError,
    "metadata": ModelLoadError,
    "checkpoint": ModelLoadError,
}

DEFAULT_TIMEOUT_S = 60.0
_CHUNK = 4 * MiB

_KIND_WORDS = {
    "image": "image",
    "labels": "labels file",
    "metadata": "model metadata file",
    "json": "JSON file",
    "settings": "settings file",
    "text": "text file",
    "checkpoint": "checkpoint",
}


class UnsafeFileError(ClipdeskError):
    """A file that is not a regular file, is too large, or could not be read in time."""


def _error(kind: str, message: str, cause: BaseException | None = None) -> ClipdeskError:
    error_type = ERROR_TYPES.get(kind, UnsafeFileError)
    error = error_type(message)
    if cause is not None:
        error.__cause__ = cause
    return error


def _word(kind: str) -> str:
    return _KIND_WORDS.get(kind, "file")


def _describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _limit(kind: str, max_bytes: int | None) -> int:
    return max_bytes if max_bytes is not None else SIZE_LIMITS.get(kind, SIZE_LIMITS["json"])


def _human(size: int) -> str:
    if size >= GiB:
        return f"{size / GiB:.1f} GB"
    if size >= MiB:
        return f"{size / MiB:.1f} MB"
    return f"{size} bytes"


def _os_message(path: Path, kind: str, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{path}: {_word(kind)} not found."
    if isinstance(error, PermissionError):
        return f"{path}: permission denied."
    if error.errno == errno.ELOOP:
        return f"{path}: too many levels of symbolic links."
    return f"{path}: could not be read ({error.strerror or error})."


def _check_mode(path: Path, kind: str, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        link = "a link to " if path.is_symlink() else ""
        raise _error(
            kind, f"{path}: is {link}{_describe_mode(info.st_mode)}, not a regular file; it was not read."
        )
    if info.st_size > limit:
        raise _error(
            kind,
            f"{path}: {_human(info.st_size)} is larger than the {_human(limit)} allowed for "
            f"a {_word(kind)}; it was not read.",
        )


def check_regular(
    path: str | os.PathLike, kind: str, max_bytes: int | None = None
) -> os.stat_result:
    """Refuse, before anything opens it, a path that is not a regular file or is too large.

    For libraries that take a path (safetensors, torch.load, Pillow plug-ins): call this first.
    Symlinks are followed, so a link to `/dev/zero` is refused as a device.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as error:
        raise _error(kind, _os_message(path, kind, error), error) from error
    _check_mode(path, kind, info, _limit(kind, max_bytes))
    return info


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file or a link to one; False (never blocking) for anything else."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_bytes_guarded(
    path: str | os.PathLike,
    kind: str,
    max_bytes: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """Read a whole regular file of at most `max_bytes` (default: the limit for `kind`).

    Opens with O_NONBLOCK (a FIFO swapped in after the check cannot block the open), checks the
    opened descriptor again, and stops reading past the size cap or the time limit.
    """
    path = Path(path)
    limit = _limit(kind, max_bytes)
    check_regular(path, kind, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise _error(kind, _os_message(path, kind, error), error) from error
    try:
        _check_mode(path, kind, os.fstat(fd), limit)  # the same file that was checked
        return _read_fd(fd, path, kind, limit, timeout_s)
    finally:
        os.close(fd)


def _read_fd(fd: int, path: Path, kind: str, limit: int, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        except BlockingIOError:
            chunk = None
        except OSError as error:
            raise _error(kind, _os_message(path, kind, error), error) from error
        if chunk == b"":
            return b"".join(chunks)
        if chunk:
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _error(
                    kind,
                    f"{path}: grew past the {_human(limit)} allowed for a {_word(kind)} "
                    "while it was read; it was not used.",
                )
        else:
            time.sleep(0.01)
        if time.monotonic() > deadline:
            raise _error(
                kind, f"{path}: could not be read within {timeout_s:g} s; it was not used."
            )


def read_text_guarded(
    path: str | os.PathLike,
    kind: str,
    max_bytes: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    encoding: str = "utf-8",
) -> str:
    """`read_bytes_guarded`, decoded; a decoding error is one sentence naming the file."""
    data = read_bytes_guarded(path, kind, max_bytes, timeout_s)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise _error(
            kind,
            f"{Path(path)}: not valid {encoding} text (byte {error.start}); save it as UTF-8.",
            error,
        ) from error


def read_json_or_none(path: str | os.PathLike, max_bytes: int = 8 * MiB, timeout_s: float = 5.0):
    """A memo, state or record file the program wrote itself (cache folder, index folder): anything
    wrong with it — missing, a FIFO or a link to /dev/zero put in its place, too big, garbage or
    nested too deeply — means "no record" (None), never a hang, a memory blow-up or a crash."""
    import json

    try:
        return json.loads(read_bytes_guarded(path, "json", max_bytes, timeout_s).decode("utf-8-sig"))
    except (ClipdeskError, OSError, ValueError, RecursionError):
        return None
