"""Interleaved legs and their ratio table: the one way every benchmark here compares things.

A comparison is fair only when its legs do the same work under the same conditions. On a shared
machine the conditions drift by the minute, so the legs run in rounds, one run of each leg per
round (A B, B A, A B, …: the order rotates so no leg always goes first and always pays a cold
file cache or rides a warm one), after warm-up rounds that every leg gets alike. Each leg is then
compared with the baseline *within the same round* and the table shows the median of those
per-round ratios with their min–max: a neighbour's burst moves one round's ratio, not the median.

    results = interleave({"numpy": run_a, "faiss": run_b}, rounds=3, warmup=1)
    print(results.table(base="numpy"))

A leg is a callable returning seconds (a float), or a `Sample` holding several named values
(`{"cold": 8.1, "rss": 560}`) and the label of what actually ran (e.g. the backend a run used).
A leg that returns None is timed by the harness.

`page_cache(paths, "cold"|"warm")` puts files in one known page-cache state before a leg, so
legs that read files start alike: "cold" asks the kernel to drop the files' cached pages
(posix_fadvise DONTNEED: no root needed, only these files); "warm" reads them once.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SECONDS = "seconds"


@dataclass
class Sample:
    """One run of one leg: named values (seconds, MB, …) and what actually ran."""

    values: dict[str, float]
    ran: str = ""  # e.g. "onnx" / "torch": shown beside the leg, so a label cannot hide a fallback


Leg = Callable[[], "float | Sample | None"]


@dataclass
class Results:
    """Per-leg samples, aligned by round (round i of every leg ran back to back)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def values(self, leg: str, key: str = SECONDS) -> list[float]:
        return [sample.values[key] for sample in self.samples[leg]]

    def ran(self, leg: str) -> str:
        """What ran in this leg over all rounds, e.g. "onnx" or "torch, onnx" if it changed."""
        seen = dict.fromkeys(sample.ran for sample in self.samples[leg] if sample.ran)
        return ", ".join(seen)

    def ratios(self, leg: str, base: str, key: str = SECONDS) -> list[float]:
        """leg / base within each round."""
        return [a / b for a, b in zip(self.values(leg, key), self.values(base, key)) if b]

    def ratio(self, leg: str, base: str, key: str = SECONDS) -> tuple[float, float, float]:
        """(median, min, max) of the per-round ratios leg / base."""
        ratios = self.ratios(leg, base, key)
        return statistics.median(ratios), min(ratios), max(ratios)

    def median(self, leg: str, key: str = SECONDS) -> float:
        return statistics.median(self.values(leg, key))

    def table(self, base: str, key: str = SECONDS, unit: str = "s", title: str = "leg",
              digits: int = 3) -> str:
        """Markdown: per leg, what ran, median and min–max of `key`, and leg/base as median (min–max)."""
        lines = [f"| {title} | ran | {key} median ({unit}) | min–max | ratio to {base} (min–max) |",
                 "|---|---|---|---|---|"]
        for leg in self.samples:
            values = self.values(leg, key)
            ratio = "1 (baseline)" if leg == base else format_ratio(self.ratio(leg, base, key))
            lines.append(f"| {leg} | {self.ran(leg) or '—'} | {number(statistics.median(values), digits)} | "
                         f"{number(min(values), digits)}–{number(max(values), digits)} | {ratio} |")
        rounds = min(len(samples) for samples in self.samples.values())
        lines.append(f"\n{rounds} interleaved rounds (order rotated each round); ratios are per round, "
                     "then the median (min–max).")
        return "\n".join(lines)


def number(value: float, digits: int = 3) -> str:
    """`digits` significant digits, but never an exponent (1460, not 1.46e+03)."""
    return f"{value:.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"


def format_ratio(summary: tuple[float, float, float]) -> str:
    median, low, high = summary
    return f"{median:.2f}× ({low:.2f}–{high:.2f})"


def interleave(legs: dict[str, Leg], rounds: int = 3, warmup: int = 1,
               log: Callable[[str], None] | None = None, between: Callable[[], None] | None = None) -> Results:
    """Run every leg once per round, `warmup` untimed rounds first, the order rotating each round.

    `between` runs (untimed) before every leg: e.g. to reset a cache or wait for a background job,
    so each leg starts from the same state whichever ran before it.
    """
    if rounds < 3:
        raise SystemExit(f"A comparison needs at least 3 rounds to show its spread (got {rounds}).")
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    names = list(legs)
    results = Results({name: [] for name in names})
    for turn in range(warmup + rounds):
        shift = turn % len(names)
        order = names[shift:] + names[:shift]
        tag = f"warm-up {turn + 1}/{warmup}" if turn < warmup else f"round {turn - warmup + 1}/{rounds}"
        for name in order:
            if between is not None:
                between()
            sample = _run(legs[name])
            shown = ", ".join(f"{k} {number(v)}" for k, v in sample.values.items())
            log(f"  {tag}  {name}: {shown}{f'  [{sample.ran}]' if sample.ran else ''}")
            if turn >= warmup:
                results.samples[name].append(sample)
    return results


def _run(leg: Leg) -> Sample:
    start = time.perf_counter()
    out = leg()
    elapsed = time.perf_counter() - start
    if out is None:
        return Sample({SECONDS: elapsed})
    if isinstance(out, Sample):
        return out
    return Sample({SECONDS: float(out)})


def page_cache(paths: Iterable[Path], state: str) -> None:
    """Put the files' pages in a known state: "cold" (dropped, where the OS allows) or "warm" (read)."""
    for path in paths:
        with open(path, "rb") as handle:
            if state == "warm":
                while handle.read(1 << 22):
                    pass
            elif state == "cold" and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def page_cache_note(state: str) -> str:
    """How the benchmark made the files' page-cache state, for the printed header."""
    if state == "warm":
        return "photos read once before every leg (page cache warm for every leg)"
    how = "posix_fadvise(DONTNEED)" if hasattr(os, "posix_fadvise") else "nothing (no posix_fadvise here)"
    return f"photos' cached pages dropped before every leg by {how} (page cache cold for every leg)"
