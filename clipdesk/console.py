"""Drive core jobs on a terminal: one tqdm bar per phase on stderr (stdout stays for results)."""

from __future__ import annotations

import sys
import unicodedata
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


_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def safe_text(text: object) -> str:
    """Text fit for a terminal: control characters (ESC sequences, newlines in file names),
    bidirectional overrides and undecodable file-name bytes are shown escaped, never obeyed."""
    text = str(text)
    if text.isprintable() and text.isascii():  # the common case, fast
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or char in _BIDI:
            out.append(f"\\u{code:04x}")
        elif unicodedata.category(char) == "Cc":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)
