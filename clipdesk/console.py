"""Drive core jobs on a terminal: one tqdm bar per phase on stderr (stdout stays for results)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .core.jobs import Job, Progress, T


def drive(job: Job[T], quiet: bool = False,
          on_progress: Callable[[Progress, object], None] | None = None) -> T:
    """Run `job` to its result. A new bar starts whenever the phase message changes;
    `on_progress(progress, bar)` may add a postfix or write a line for job-specific payloads."""
    from tqdm import tqdm

    bar, message = None, None
    try:
        while True:
            try:
                progress = next(job)
            except StopIteration as stop:
                return stop.value
            if quiet:
                continue
            if progress.message != message:
                if bar is not None:
                    bar.close()
                message = progress.message
                bar = tqdm(total=progress.total, desc=message, unit=progress.unit, file=sys.stderr,
                           unit_scale=progress.unit == "B", dynamic_ncols=True, leave=False,
                           disable=None)
            bar.total = progress.total
            bar.n = progress.done
            if on_progress is not None:
                on_progress(progress, bar)
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()
