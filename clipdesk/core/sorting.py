"""Sort files into `<destination>/<label>/`: plan first, then copy or move, never overwrite, undo.

The plan is computed without touching anything so the user sees it; execution re-checks every
target (a file may have appeared since) and claims names exclusively, so nothing is ever
overwritten. The last run is journalled in the config folder so "undo" works after a restart.

The journal records each file's content hash, so undo deletes or moves only files that are still
exactly what the sort wrote: a copy is deleted only while its original is still there with the
same content; a copy whose original is gone, and any file edited since, stays put.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .digest import Hasher, file_digest, is_current
from .errors import ClipdeskError
from .jobs import CancelToken, Job, Progress, check
from .paths import config_dir
from .settings import write_json_atomic

JOURNAL_FILE = "last_sort.json"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


class SortError(ClipdeskError):
    """The destination cannot be used, or an undo is not possible."""


def folder_name(label: str) -> str:
    """A label as a folder name every OS accepts ("cat/dog?" → "cat_dog_")."""
    name = _UNSAFE.sub("_", label).strip().strip(".")
    return name[:120] or "unnamed"


@dataclass
class SortPlan:
    destination: Path
    moves: list[tuple[Path, Path]] = field(default_factory=list)  # (source, target)

    def counts(self) -> dict[str, int]:
        """Files per destination folder, in first-seen order."""
        return dict(Counter(target.parent.name for _, target in self.moves))


@dataclass
class SortRecord:
    """What a run actually did; enough to undo it."""

    mode: str  # "copy" | "move"
    done: list[tuple[Path, Path]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    created_dirs: list[Path] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # str(target) -> content hash at sort time

    def to_json(self) -> dict:
        from .export import path_record  # names that are not UTF-8: strict JSON, exact bytes

        return {"mode": self.mode, "done": [[path_record(a), path_record(b)] for a, b in self.done],
                "errors": self.errors, "created_dirs": [path_record(d) for d in self.created_dirs],
                "digests": self.digests}

    @classmethod
    def from_json(cls, data: dict) -> SortRecord:
        """A journal read back; anything malformed raises ValueError/KeyError/TypeError."""
        if not isinstance(data, dict) or data.get("mode") not in ("copy", "move"):
            raise ValueError("not a sort journal")
        digests = data.get("digests", {})
        if not isinstance(digests, dict):
            raise ValueError("bad digests")
        from .export import path_from_record, valid_unicode

        done = [(Path(path_from_record(a)), Path(path_from_record(b))) for a, b in data.get("done", [])]
        digests = {str(k): str(v) for k, v in digests.items()}
        for exact in {str(b) for _, b in done}:  # a non-UTF-8 name's key was written as readable text
            if valid_unicode(exact) != exact and valid_unicode(exact) in digests:
                digests[exact] = digests.pop(valid_unicode(exact))
        return cls(data["mode"], done, dict(data.get("errors", {})),
                   [Path(path_from_record(d)) for d in data.get("created_dirs", [])], digests)


class UndoResult(list):
    """The (current, restored) moves of an undo — a list, so views follow the files — plus what
    was kept and why, so the caller can report honestly ("restored 3, kept 1: …")."""

    def __init__(self, moves=(), kept: list[str] | None = None) -> None:
        super().__init__(moves)
        self.kept: list[str] = kept or []

    @property
    def message(self) -> str:
        """One sentence for the status bar or the terminal."""
        text = f"Undid the last sort: {len(self)} file(s) restored"
        if self.kept:
            text += f", {len(self.kept)} kept where they are ({self.kept[0]}"
            text += f"; and {len(self.kept) - 1} more)" if len(self.kept) > 1 else ")"
        return text + "."


def _free_name(target: Path, taken: set[Path]) -> Path:
    """`name.jpg`, else `name (1).jpg`, `name (2).jpg`, … — never an existing or planned file."""
    candidate, n = target, 0
    while candidate in taken or candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
    return candidate


def plan_sort(assignments: Sequence[tuple[Path, str]], destination: Path,
              pair_raw: bool = True) -> SortPlan:
    """Where each (file, label) would go; name clashes get a numbered suffix. A JPEG's RAW twin
    (IMG_1.CR3 beside IMG_1.JPG) goes along under the same name unless it is sorted itself."""
    from .images import raw_companions

    destination = Path(destination).expanduser().absolute()
    if destination.exists() and not destination.is_dir():
        raise SortError(f"{destination} is a file, not a folder; choose a folder to sort into.")
    plan, taken = SortPlan(destination), set()
    sources = {Path(source) for source, _ in assignments}
    twins = raw_companions(sources) if pair_raw else {}
    for source, label in assignments:
        target = _free_name(destination / folder_name(label) / Path(source).name, taken)
        taken.add(target)
        plan.moves.append((Path(source), target))
        for raw in (r for r in twins.get(Path(source), ()) if r not in sources):
            raw_target = _free_name(target.with_name(target.stem + raw.suffix), taken)
            taken.add(raw_target)
            plan.moves.append((raw, raw_target))
    return plan


def _claim(source: Path, target: Path, mode: str, base: Path | None = None) -> tuple[Path, str]:
    """Copy or move without overwriting: the target name is created exclusively.

    If `target` was taken since planning, the next free `base (n)` name is used instead.
    Returns the target and the content hash of what landed there.
    """
    if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO would block, a device never ends
        raise OSError(f"{source.name} is not a regular file")
    taken: set[Path] = set()
    while True:
        if target in taken or target.exists():
            target = _free_name(base or target, taken)
        try:
            if mode == "move":
                try:
                    os.link(source, target)  # fails if target exists: no overwrite race
                    digest = file_digest(target)
                except OSError as error:
                    if isinstance(error, FileExistsError):
                        raise
                    digest = _copy_exclusive(source, target)  # other filesystem, or no hard links
                os.unlink(source)
            else:
                digest = _copy_exclusive(source, target)
            return target, digest
        except FileExistsError:
            taken.add(target)


def _copy_exclusive(source: Path, target: Path) -> str:
    """Copy into a new file (never over one), hashing the bytes as they pass."""
    digest = Hasher()
    try:
        with open(source, "rb") as src, open(target, "xb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
    except FileExistsError:
        raise
    except BaseException:
        target.unlink(missing_ok=True)  # a half-written copy is ours to remove
        raise
    shutil.copystat(source, target)
    return digest.hexdigest()


def execute_job(plan: SortPlan, mode: str = "copy", cancel: CancelToken | None = None) -> Job[SortRecord]:
    """Carry out a plan; per-file failures are recorded, the rest proceed. Journalled for undo."""
    if mode not in ("copy", "move"):
        raise SortError(f"Unknown sort mode '{mode}'; choose copy or move.")
    record = SortRecord(mode)
    total = len(plan.moves)
    started = Progress(0, total, f"Sorting ({mode})", unit="file")
    yield started
    try:
        for i, (source, target) in enumerate(plan.moves):
            check(cancel)
            try:
                _make_folders(target.parent, record)
                landed, digest = _claim(source, target, mode, target.parent / source.name)
                record.done.append((source, landed))
                record.digests[str(landed)] = digest
            except OSError as error:
                record.errors[str(source)] = f"{source}: {error.strerror or error}."
            yield Progress(i + 1, total, f"Sorting ({mode})", unit="file", started=started.started)
    finally:  # even a cancelled run can be undone
        try:
            save_journal(record)
        except (OSError, ClipdeskError) as error:
            record.errors["undo journal"] = (f"The undo journal could not be saved ({error}); undo works "
                                             "only until the program closes.")
    return record


def _make_folders(folder: Path, record: SortRecord) -> None:
    """Create `folder` and its missing parents, each recorded so undo removes them (if empty)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        record.created_dirs.append(new)


def execute(plan: SortPlan, mode: str = "copy") -> SortRecord:
    from .jobs import run_job

    return run_job(execute_job(plan, mode))


def journal_path() -> Path:
    return config_dir() / JOURNAL_FILE


def save_journal(record: SortRecord) -> None:
    write_json_atomic(journal_path(), record.to_json())


def load_journal() -> SortRecord | None:
    from .safeio import read_text_guarded

    try:
        return SortRecord.from_json(json.loads(read_text_guarded(journal_path(), "json")))
    except (OSError, ValueError, KeyError, TypeError, ClipdeskError):
        return None  # no journal, or one nobody can trust: nothing to undo


def undo(record: SortRecord | None = None) -> UndoResult:
    """Reverse the last run, touching only files that are still exactly what the sort wrote.

    Copy: a copy is deleted only while its original is still there with the recorded content
    (a copy whose original is gone may be the only one left: it stays). Move: a file goes back
    only if its content still matches and its old place is free. Anything else stays where it is
    and is listed in `kept`; when nothing could be undone, SortError says why in one sentence. Returns the (current, restored) moves so views can follow the files.
    """
    record = record or load_journal()
    if record is None or not record.done:
        raise SortError("There is no sort to undo.")
    result = UndoResult()
    for source, target in reversed(record.done):
        problem = _undo_one(record, Path(source), Path(target), result)
        if problem:
            result.kept.append(problem)
    for folder in sorted(record.created_dirs, key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: files the user added since stay put
    if result.kept and not result:  # a refusal changes nothing: the journal stays for a later try
        raise SortError(f"Nothing was undone, to lose no data: {result.kept[0]}"
                        + (f" (and {len(result.kept) - 1} more)." if len(result.kept) > 1 else "."))
    journal_path().unlink(missing_ok=True)
    return result


def _undo_one(record: SortRecord, source: Path, target: Path, result: UndoResult) -> str | None:
    """Undo one entry; returns why it was kept, or None when it was restored."""
    current = _regular_digest(target, follow=False)
    if current is None:
        return f"{target} is gone or is no longer a plain file"
    expected = record.digests.get(str(target))
    if not is_current(expected):  # a journal from before core/digest.py: treated as one without hashes
        expected = None
    if expected is None and record.mode == "copy":
        expected = _regular_digest(source)  # a journal from before hashes: the original decides
    if record.mode == "copy":
        if not os.path.lexists(source):  # the copy may be the only one left: it stays
            return f"the original {source} is gone, so its copy {target} was kept"
        if current != expected:
            return f"{target} was changed since the sort"
        if _regular_digest(source) != expected:
            return f"the original {source} was changed, so its copy {target} was kept"
        if os.path.samefile(source, target):
            return f"{source} and {target} are the same file"
        target.unlink()  # verified: an identical original remains
        result.append((target, source))
        return None
    if current != expected:
        return f"{target} was changed since the sort"
    if os.path.lexists(source):
        return f"{source} exists again"
    try:  # moving back, never over anything: nothing can be lost
        source.parent.mkdir(parents=True, exist_ok=True)
        landed, _ = _claim(target, source, "move")
    except OSError as error:
        return f"{target} could not be moved back ({error.strerror or error})"
    result.append((target, landed))  # `landed` is next to `source` if that name was taken just now
    return None


def _regular_digest(path: Path, follow: bool = True) -> str | None:
    """The content hash of a regular file; None for anything missing, special or a symlink
    (unless `follow`): undo never deletes what it did not create."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
        return file_digest(path) if stat.S_ISREG(info.st_mode) else None
    except OSError:
        return None
