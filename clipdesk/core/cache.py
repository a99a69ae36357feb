"""Persistent embedding cache in SQLite: crash-safe (journalled) and safe for several processes.

Image rows are keyed by (model identity, content hash): a moved or renamed file is a hit, an
edited one a miss. Text rows are keyed by (model identity, prompt key) so that editing one label
re-encodes only that label.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .digest import content_digest  # noqa: F401 - still importable from here (tests, older callers)
from .paths import cache_dir
from .safeio import is_regular_file

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    model TEXT NOT NULL, digest TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (model, digest));
CREATE TABLE IF NOT EXISTS texts (
    model TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (model, key));
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, stamp TEXT NOT NULL, digest TEXT NOT NULL);
"""


@dataclass
class CacheInfo:
    path: Path
    size_bytes: int
    images: dict[str, int]
    texts: dict[str, int]
    note: str = ""  # why the cache is not in use, when it is not


class CacheUnavailable(Exception):
    """Internal: the cache file cannot be used; the caller degrades to no cache."""


_EXPECTED_COLUMNS = {"images": ["model", "digest", "vector"], "texts": ["model", "key", "vector"],
                     "files": ["path", "stamp", "digest"]}
RACY_S = 2.0  # a file changed this recently may change again within one clock tick: not remembered
LOCK_TIMEOUT_S = 10.0  # a writer in another process is done in milliseconds; 10 s is a stuck lock


class EmbeddingCache:
    """Vectors are stored as float32 bytes; reads return numpy arrays.

    A cache is an optimisation, never a reason to fail: a corrupt file, an old schema or a
    non-file in its place is moved aside and rebuilt (one logged note); a folder that cannot be
    written, a full disk or a lock held too long turns the cache off for this process (one note)
    and every run carries on computing embeddings.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self.disabled = ""  # the one-sentence reason, once the cache is off
        try:
            self.path = Path(path) if path else cache_dir() / "embeddings.sqlite3"
        except OSError as error:  # the cache folder is a file, or cannot be created (FolderError)
            self.path = Path(os.environ.get("CLIPDESK_CACHE_DIR") or "(cache folder)") / "embeddings.sqlite3"
            self.disabled = " ".join(str(error).split())
            log.warning("%s. Continuing without the embedding cache.", self.disabled.rstrip("."))
            return
        self._open()

    # -- opening, with repair -------------------------------------------------------------------
    def _open(self) -> None:
        repaired = False
        deadline = time.monotonic() + _RACE_WINDOW_S
        for attempt in range(_OPEN_ATTEMPTS):
            started = time.monotonic()
            try:
                self._open_once()
                return
            except CacheUnavailable as reason:
                problem, repairable = str(reason), False
            except sqlite3.OperationalError as error:
                problem, repairable = _describe(error), self._is_corruption(error)
            except sqlite3.DatabaseError as error:  # "file is not a database", "malformed"
                problem, repairable = _describe(error), True
            except _SchemaMismatch as mismatch:
                problem, repairable = str(mismatch), True
            except OSError as error:
                problem, repairable = str(error.strerror or error), False
            if attempt + 1 < _OPEN_ATTEMPTS and time.monotonic() < deadline and (
                    repaired or (_is_transient(problem, time.monotonic() - started)
                                 and os.access(self.path.parent, os.W_OK))):
                # Another opener is repairing or creating the same file right now (its rename or
                # schema write made ours fail at once): wait a moment and open again. On a
                # loaded machine that other opener may need a while, hence a window, not a count.
                time.sleep(min(0.2, 0.02 * (attempt + 1)))
                continue
            if not repairable or repaired:
                self._disable(problem)
                return
            failure = self._move_aside(problem)
            repaired = True
            if failure:
                self._disable(failure)
                return

    def _open_once(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheUnavailable(f"its folder cannot be created ({error.strerror or error})") from error
        self._seen = _file_id(self.path)  # what a repair may move aside: this file, not a newer one
        if (self.path.exists() or self.path.is_symlink()) and not is_regular_file(self.path):
            raise _SchemaMismatch("it is not a regular file")
        self.close()
        db = self._connect()
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the header: garbage fails here
        with db:
            db.executescript(SCHEMA)
        for table, expected in _EXPECTED_COLUMNS.items():
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            if columns != expected:
                raise _SchemaMismatch(f"it has an older layout ({table}: {', '.join(columns)})")

    def _is_corruption(self, error: sqlite3.Error) -> bool:
        text = str(error).lower()
        return any(word in text for word in ("not a database", "malformed", "no such column", "disk image"))

    def _move_aside(self, reason: str) -> str:
        """Rename the broken file (and its WAL/SHM) to `<name>.broken-<time>`, to rebuild afresh."""
        self.close()
        # One mover at a time in this process: between another thread's "is it still the broken
        # file?" and its rename, this thread could otherwise rebuild a fresh cache that the other
        # then moves aside (and its WAL removed under an open connection: "disk I/O error").
        with _MOVE_ASIDE_LOCK:
            return self._move_aside_locked(reason)

    def _move_aside_locked(self, reason: str) -> str:
        seen = getattr(self, "_seen", None)
        if seen is not None and _file_id(self.path) != seen:
            return ""  # another process already replaced it with a fresh cache: just reopen
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = self.path
        for n in range(100):
            aside = self.path.with_name(f"{self.path.name}.broken-{stamp}{f'-{n}' if n else ''}")
            if not (aside.exists() or aside.is_symlink()):
                break
        # The broken file's WAL/SHM go first, while the name is still the broken file's: once it
        # is renamed, another thread may create a fresh cache under the same name at once, and
        # removing "its" -wal/-shm then would pull them from under that open connection.
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                Path(f"{self.path}{suffix}").unlink()
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return ""  # another process moved it already
        except OSError as error:
            return f"{reason}, and it could not be moved aside ({error.strerror or error})"
        log.warning("The embedding cache %s was unusable (%s); it was moved to %s and is rebuilt.",
                    self.path, reason, aside.name)
        return ""

    def _fail(self, error: BaseException) -> None:
        """A read or write failed mid-run: a damaged file is moved aside (the next run rebuilds
        it); anything else (lock, full disk, I/O) turns the cache off for this process."""
        corrupt = isinstance(error, sqlite3.DatabaseError) and not isinstance(
            error, sqlite3.OperationalError) or (
            isinstance(error, sqlite3.Error) and self._is_corruption(error))
        with self._lock:
            if self.disabled:
                return
            if corrupt:
                self.disabled = _describe(error)  # claimed before moving: one note, one mover
        if not corrupt:
            self._disable(_describe(error))
            return
        failure = self._move_aside(self.disabled)
        if failure:
            log.warning("The embedding cache %s cannot be used (%s); continuing without it.",
                        self.path, failure)

    def _disable(self, reason: str) -> None:
        with self._lock:
            if self.disabled:
                return
            self.disabled = reason
        self.close()
        log.warning("The embedding cache %s cannot be used (%s); continuing without it.",
                    self.path, reason)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            timeout = _env_float("CLIPDESK_CACHE_TIMEOUT", LOCK_TIMEOUT_S)
            db = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    # -- reads and writes: an error turns the cache off, never fails the run ---------------------
    def get_images(self, model: str, digests: Iterable[str]) -> dict[str, np.ndarray]:
        return self._get("images", "digest", model, list(digests))

    def put_images(self, model: str, items: dict[str, np.ndarray]) -> None:
        self._put("images", model, items)

    def get_texts(self, model: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        return self._get("texts", "key", model, list(keys))

    def put_texts(self, model: str, items: dict[str, np.ndarray]) -> None:
        self._put("texts", model, items)

    def known_digest(self, path: str, stamp: str) -> str | None:
        """The content digest recorded for `path` when its stat was `stamp` (file_stamp): a file
        unchanged since it was read is not read and hashed again just to find its embedding."""
        if self.disabled:
            return None
        try:
            row = self._connect().execute("SELECT digest FROM files WHERE path=? AND stamp=?",
                                          (_storable(path), stamp)).fetchone()
        except (sqlite3.Error, OSError) as error:
            self._fail(error)
            return None
        return row[0] if row and isinstance(row[0], str) else None

    def remember_digests(self, items: dict[str, tuple[str, str]]) -> None:
        """path → (stamp, digest) of files just read; one transaction."""
        if not items or self.disabled:
            return
        rows = [(_storable(path), stamp, digest) for path, (stamp, digest) in items.items()]
        try:
            with self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", rows)
        except (sqlite3.Error, OSError) as error:
            self._fail(error)

    def _get(self, table: str, column: str, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        if self.disabled:
            return {}
        try:
            return self._select(table, column, model, keys)
        except (sqlite3.Error, OSError, ValueError) as error:
            self._fail(error)
            return {}

    def _select(self, table: str, column: str, model: str, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        originals = {_storable(key): key for key in keys}
        keys, model = list(originals), _storable(model)
        db = self._connect()
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT {column}, vector FROM {table} WHERE model=? AND {column} IN ({marks})",
                [model, *chunk],
            )
            for key, blob in rows:
                # Another writer's damaged row (not bytes, or not whole 4-byte float32s) is a miss;
                # it must not reach frombuffer, whose ValueError would turn the whole cache off.
                whole = isinstance(blob, bytes) and len(blob) % 4 == 0
                vector = np.frombuffer(blob, dtype=np.float32) if whole else None
                if vector is not None and len(vector) and np.isfinite(vector).all():
                    found[originals.get(key, key)] = vector.copy()  # a damaged row: a miss, not NaN
        return found

    def _put(self, table: str, model: str, items: dict[str, np.ndarray]) -> None:
        if not items or self.disabled:
            return
        rows = [(_storable(model), _storable(key), np.asarray(v, dtype=np.float32).tobytes())
                for key, v in items.items() if np.isfinite(np.asarray(v, dtype=np.float32)).all()]
        try:
            with self._connect() as db:  # one transaction: all rows land or none do
                db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", rows)
        except (sqlite3.Error, OSError) as error:
            self._fail(error)

    def info(self) -> CacheInfo:
        size = _files_size(self.path)
        if self.disabled:
            return CacheInfo(self.path, size, {}, {}, note=self.disabled)
        try:
            db = self._connect()
            images = dict(db.execute("SELECT model, COUNT(*) FROM images GROUP BY model"))
            texts = dict(db.execute("SELECT model, COUNT(*) FROM texts GROUP BY model"))
        except (sqlite3.Error, OSError) as error:
            self._fail(error)
            return CacheInfo(self.path, size, {}, {}, note=self.disabled)
        return CacheInfo(self.path, size, images, texts)

    def clear(self) -> None:
        """Empty the cache (and drop broken copies moved aside); if it cannot be emptied in
        place, e.g. it is disabled because it is damaged or locked, its files are deleted."""
        if not self.disabled:
            try:
                with self._connect() as db:
                    db.execute("DELETE FROM images")
                    db.execute("DELETE FROM texts")
                    db.execute("DELETE FROM files")
                self._connect().execute("VACUUM")
                self._remove_files(broken_only=True)
                return
            except (sqlite3.Error, OSError) as error:
                log.warning("The embedding cache could not be emptied in place (%s); its files "
                            "are deleted instead.", _describe(error))
        self.close()
        self._remove_files()

    def _remove_files(self, broken_only: bool = False) -> None:
        """The cache's files, and copies of broken ones moved aside earlier."""
        targets = [] if broken_only else [
            Path(f"{self.path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")]
        with contextlib.suppress(OSError):
            targets += list(self.path.parent.glob(f"{self.path.name}.broken-*"))
        for target in targets:
            with contextlib.suppress(OSError):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            self._local.db = None


class _SchemaMismatch(Exception):
    """Internal: the file is a database, but not one this version wrote."""


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def file_stamp(path: Path | str, now: float | None = None) -> str | None:
    """Size, modification and change times (ns), inode and device of a regular file, as text:
    what must all be unchanged for its recorded digest to stand. None for a file that cannot be
    stat'ed, is not a regular file, or changed within RACY_S of `now` (a write in the same clock
    tick could leave every field equal: git's "racily clean" case), so it is read as usual."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    now_ns = int((time.time() if now is None else now) * 1e9)
    if not stat.S_ISREG(info.st_mode) or now_ns - max(info.st_mtime_ns, info.st_ctime_ns) < RACY_S * 1e9:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}:{info.st_dev}"


def _storable(text: str) -> str:
    """SQLite text must be valid UTF-8: a label or path with undecodable bytes is stored escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if 0 <= value < 1e6 else default


_MOVE_ASIDE_LOCK = threading.Lock()
_OPEN_ATTEMPTS = 30
_RACE_WINDOW_S = 3.0  # how long an opener waits out another one's repair before giving up


def _is_transient(problem: str, seconds: float) -> bool:
    """An I/O error, a file that vanished while it was being opened (another opener moved it
    aside or removed its WAL), or a lock refused at once (not after the busy timeout). `_open`
    retries these only while the folder is writable: a read-only cache is disabled at once."""
    text = problem.lower()
    return ("disk i/o error" in text or "unable to open database file" in text
            or ("locked" in text and seconds < 1.0))


def _is_locked(error: sqlite3.Error) -> bool:
    return "locked" in str(error).lower() or "busy" in str(error).lower()


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    if _is_locked(error if isinstance(error, sqlite3.Error) else sqlite3.Error(text)):
        return f"{text}: another process holds its lock"
    return text


def _files_size(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            info = os.stat(f"{path}{suffix}")
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


class NullCache(EmbeddingCache):
    """`--no-cache`: same interface, remembers nothing, opens no file."""

    def __init__(self) -> None:  # noqa: D401 - no file at all
        self.path = Path("(disabled)")
        self.disabled = "--no-cache"
        self._local = threading.local()
        self._lock = threading.Lock()

    def _get(self, table, column, model, keys):
        return {}

    def _put(self, table, model, items):
        return None

    def info(self) -> CacheInfo:
        return CacheInfo(self.path, 0, {}, {})

    def clear(self) -> None:
        return None

    def close(self) -> None:
        return None
