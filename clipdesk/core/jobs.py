"""Long jobs are generators that yield `Progress` and check a `CancelToken` between steps.

The GUI worker, the CLI (tqdm) and tests drive the same generator; the job's result is the
generator's return value (superqt's worker pattern, without Qt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import Cancelled

T = TypeVar("T")


@dataclass
class Progress:
    """One step of a long job: `done` of `total` units (total None when unknown)."""

    done: int
    total: int | None
    message: str = ""
    unit: str = "it"
    started: float = field(default_factory=time.monotonic)
    payload: Any = None  # job-specific data for live views (e.g. a batch of results)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


class CancelToken:
    """A thread-safe flag; jobs call `check()` between batches so cancel lands within one batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("Cancelled.")


Job = Generator[Progress, None, T]


def run_job(job: Job[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a job to completion synchronously and return its result."""
    while True:
        try:
            progress = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(progress)


def check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.check()
