"""Sort files into `<destination>/<label>/`: plan first, then copy or move, never overwrite, undo.

The plan is computed without touching anything so the user sees it; execution re-checks every
target (a file may have appeared since) and claims names exclusively, so nothing is ever
overwritten. The last run is journalled in the config folder so "undo" works after a restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

    def to_json(self) -> dict:
        return {"mode": self.mode, "done": [[str(a), str(b)] for a, b in self.done],
                "errors": self.errors, "created_dirs": [str(d) for d in self.created_dirs]}

    @classmethod
    def from_json(cls, data: dict) -> SortRecord:
        return cls(data["mode"], [(Path(a), Path(b)) for a, b in data.get("done", [])],
                   dict(data.get("errors", {})), [Path(d) for d in data.get("created_dirs", [])])


def _free_name(target: Path, taken: set[Path]) -> Path:
    """`name.jpg`, else `name (1).jpg`, `name (2).jpg`, … — never an existing or planned file."""
    candidate, n = target, 0
    while candidate in taken or candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
    return candidate


def plan_sort(assignments: Sequence[tuple[Path, str]], destination: Path) -> SortPlan:
    """Where each (file, label) would go; name clashes get a numbered suffix."""
    destination = Path(destination).expanduser().absolute()
    if destination.exists() and not destination.is_dir():
        raise SortError(f"{destination} is a file, not a folder; choose a folder to sort into.")
    plan, taken = SortPlan(destination), set()
    for source, label in assignments:
        target = _free_name(destination / folder_name(label) / Path(source).name, taken)
        taken.add(target)
        plan.moves.append((Path(source), target))
    return plan


def _claim(source: Path, target: Path, mode: str, base: Path | None = None) -> Path:
    """Copy or move without overwriting: the target name is created exclusively.

    If `target` was taken since planning, the next free `base (n)` name is used instead.
    """
    taken: set[Path] = set()
    while True:
        if target in taken or target.exists():
            target = _free_name(base or target, taken)
        try:
            if mode == "move":
                try:
                    os.link(source, target)  # fails if target exists: no overwrite race
                except OSError as error:
                    if isinstance(error, FileExistsError):
                        raise
                    _copy_exclusive(source, target)  # other filesystem, or no hard links
                os.unlink(source)
            else:
                _copy_exclusive(source, target)
            return target
        except FileExistsError:
            taken.add(target)


def _copy_exclusive(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "xb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    shutil.copystat(source, target)


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
            if not target.parent.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                record.created_dirs.append(target.parent)
            try:
                record.done.append((source, _claim(source, target, mode, target.parent / source.name)))
            except OSError as error:
                record.errors[str(source)] = f"{source}: {error.strerror or error}."
            yield Progress(i + 1, total, f"Sorting ({mode})", unit="file", started=started.started)
    finally:  # even a cancelled run can be undone
        save_journal(record)
    return record


def execute(plan: SortPlan, mode: str = "copy") -> SortRecord:
    from .jobs import run_job

    return run_job(execute_job(plan, mode))


def journal_path() -> Path:
    return config_dir() / JOURNAL_FILE


def save_journal(record: SortRecord) -> None:
    write_json_atomic(journal_path(), record.to_json())


def load_journal() -> SortRecord | None:
    try:
        return SortRecord.from_json(json.loads(journal_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return None


def undo(record: SortRecord | None = None) -> list[tuple[Path, Path]]:
    """Reverse the last run: moved files go back (never over a file that reappeared there),
    copies are deleted. Returns the (current, restored) moves so views can follow the files."""
    record = record or load_journal()
    if record is None or not record.done:
        raise SortError("There is no sort to undo.")
    restored, problems = [], []
    for source, target in reversed(record.done):
        if not target.exists():
            problems.append(f"{target} is gone")
            continue
        if record.mode == "move":
            if source.exists():
                problems.append(f"{source} exists again")
                continue
            source.parent.mkdir(parents=True, exist_ok=True)
            restored.append((target, _claim(target, source, "move")))
        else:
            target.unlink()
            restored.append((target, source))
    for folder in sorted(record.created_dirs, key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: files the user added since stay put
    journal_path().unlink(missing_ok=True)
    if problems and not restored:
        raise SortError("Nothing could be undone: " + "; ".join(problems[:3]) + ".")
    return restored
