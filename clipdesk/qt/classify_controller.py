"""Classification scheduling: pending images are embedded in chunks on the model worker, stale
scores are re-scored, and Cancel pauses the scheduler.

A chunk is sized to about CHUNK_SECONDS at the measured rate, so images added meanwhile join soon
while the per-task overhead stays small. A label edit never waits for the chunk or restarts it
(issue 21): the running chunk scores its next batches with the new labels (a `LabelBox`), and the
images done so far are re-scored at once by an urgent task, which the model worker runs beside
the chunk's running batch; only the rows neither of them covered are re-scored after it. Cancel
(Esc, the button) stops the running chunk within one batch and nothing queued starts after it,
until File › Classify pending images resumes.

Multi-label scores also need each image's quarter crops (core/multilabel.py). New images get them
in the same chunk; images embedded before multi-label was turned on are pending work of their own
("Scoring regions for multi-label"), scheduled, shown and cancelled exactly like new images, after
one quick re-score that shows whole-image scores for all of them at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer

from clipdesk.core.errors import Cancelled
from clipdesk.core.session import LabelBox, classify_job, regions_job, rescore

from .worker import Task

PROGRESS_MS = 200  # the most often the progress bar and message follow a run

CHUNK_MIN, CHUNK_MAX, CHUNK_SECONDS = 64, 2048, 0.75


@dataclass
class Run:
    """Progress of one classification run across its chunks (for the bar, img/s and ETA)."""

    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    what: str = "Classifying"  # or "Scoring regions for multi-label"

    def rate(self) -> float:
        return self.done / max(1e-6, time.monotonic() - self.started) if self.done else 0.0


class ClassifyController(QObject):
    """Owns the classify and re-score tasks, the pause state and the progress of the run."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.task: Task | None = None
        self.rescore_task: Task | None = None
        self.paused = False
        self.scores_signature: tuple | None = None
        self.run: Run | None = None
        self.in_flight: set[Path] = set()
        self.live: LabelBox | None = None  # the labels the running classify chunk scores with
        # The bar and message follow a run at most every PROGRESS_MS: QProgressBar.setValue
        # repaints at once (and with it whatever else in the window waits to be painted).
        self._progress_cooldown = QTimer(self, singleShot=True, interval=PROGRESS_MS)
        self._progress_cooldown.timeout.connect(self._progress_if_due)
        self._progress_due = False
        self.timer = QTimer(self, singleShot=True)
        self.timer.timeout.connect(self.next_job)

    def signature(self) -> tuple:
        """What the current scores must have been computed with to be shown."""
        return (tuple(self.session.labels), self.session.templates, self.session.multi_label)

    def schedule(self) -> None:
        self.timer.start(0)  # coalesces: many edits in one event-loop turn, one job

    def resume(self) -> None:
        """File › Classify pending images (and after a load or an add): unpause and schedule."""
        self.paused = False
        self.schedule()

    def forget_run(self) -> None:
        """A model load: chunks in flight are dropped with the old engine."""
        self.in_flight.clear()
        self.run, self.live = None, None

    def cancel(self) -> None:
        """Stops the running chunk within one batch; the scheduler starts nothing after it."""
        if self.task is not None or self.run is not None:
            self.paused = True  # no further chunk until File › Classify pending images
        self.timer.stop()
        if self.task is not None:
            self.task.cancel()
        self.window.worker.cancel("classify")

    def next_job(self) -> None:
        """Start what is due: embed pending images in chunks, else re-score if scores are stale."""
        window = self.window
        if window._closing or not window.model_ready:
            return
        if self.task is None and not self.paused:
            chunk = self.session.pending_paths(skip=self.in_flight, limit=self.chunk_size())
            if chunk:
                self._start(chunk, self._pending_not_in_flight())
            elif self._start_regions():
                return
        if self.task is not None:
            self._rescore_beside()
            return
        if self.rescore_task is None:
            self.run = None
            window._set_busy(window.searching.task is not None)
            if self.needs_rescore():
                self._start_rescore()
            else:
                window._refresh_counts()
                if not window._message_timer.isActive():  # a timed message (a failed load) stays up
                    window._idle_message()
                    self._mention_regions()
                window.idle.emit()

    def _rescore_beside(self) -> None:
        """Labels edited while images are classified: the running chunk scores its next batches
        with them, and what is done is re-scored now, between two of its batches."""
        if self.live is None:  # a regions chunk re-scores rows itself: a re-score would race it
            return
        self.live.set(list(self.session.labels), self.session.templates)
        if (self.rescore_task is None and self.needs_rescore()  # labels all gone: scores cleared
                and any(item.vector is not None for item in self.session.items)):
            self._start_rescore(urgent=True)

    def _start_regions(self) -> bool:
        """Quarter crops for images embedded before multi-label was on; True when work is due.

        Stale scores are re-scored first (whole-image scores for every image at once), and no
        chunk runs beside a re-score: its result would overwrite the chunk's region scores.
        """
        if self.rescore_task is not None:
            return True  # `_rescored` calls next_job again
        regions = [(p, v) for p, v in self.session.region_pending() if p not in self.in_flight]
        if not regions:
            return False
        if self.needs_rescore():
            self._start_rescore()
        else:
            self._start(regions[:self.chunk_size()], len(regions), regions=True)
        return True

    def _mention_regions(self) -> None:
        """Paused with crops still to compute: "2000 of 2000 classified" must not read as done."""
        waiting = len(self.session.region_pending()) if self.paused else 0
        if waiting:
            text = self.window.status_label.text().rstrip(".")
            self.window.show_message(f"{text}; {waiting} not yet scored for multi-label "
                                     "(File › Classify pending images).")

    def chunk_size(self) -> int:
        rate = self.run.rate() if self.run else 0.0
        return int(min(CHUNK_MAX, max(CHUNK_MIN, rate * CHUNK_SECONDS)))

    def _pending_not_in_flight(self) -> int:
        """Counted from the cached row states: no pass over every image after each chunk."""
        session = self.session
        flying = sum(1 for path in self.in_flight
                     if (row := session.row_of(path)) is not None and session.items[row].status == "pending")
        return session.pending_count() - flying

    def needs_rescore(self) -> bool:
        if not self.session.labels:
            if self.session.score_labels:
                self.session.clear_scores()
                self.window._refresh_filter()
            self.scores_signature = self.signature()
            return False
        if self.scores_signature != self.signature():
            return True
        return self.session.unscored_embedded()

    def _start(self, paths: list, remaining: int, regions: bool = False) -> None:
        """One chunk: `paths` to embed, or with `regions` (path, vector) pairs to crop."""
        what = "Scoring regions for multi-label" if regions else "Classifying"
        if self.run is None or self.run.what != what:
            self.run = Run(total=remaining, what=what)
            self._progress_cooldown.stop()  # a new run's first batch shows at once
            self._progress_due = False
        else:
            self.run.total = max(self.run.total, self.run.done + remaining)
        vectors = [vector for _, vector in paths] if regions else []
        paths = [path for path, _ in paths] if regions else paths
        self.in_flight.update(paths)
        signature = self.signature()
        labels, templates, multi = list(self.session.labels), self.session.templates, self.session.multi_label
        batch_size = self.window.batch_size
        bar = self.window.progress_bar
        bar.setRange(0, self.run.total)
        bar.setValue(self.run.done)
        self.window._set_busy(True)

        live = None if regions else LabelBox(labels, templates)

        def factory(worker, token):
            if regions:
                return regions_job(worker.engine, paths, vectors, labels, templates, batch_size, token)
            return classify_job(worker.engine, paths, live, templates, multi, batch_size, token)

        def connect(task: Task) -> None:
            task.signals.yielded.connect(lambda progress: self._progress(task, progress, signature))
            task.signals.finished.connect(lambda result: self._done(task, paths, result))
            task.signals.errored.connect(lambda error: self._done(task, paths, None, error))

        # A label typed meanwhile is re-scored beside the chunk, not after its current batch.
        self.task = self.window.worker.submit("classify", factory, connect=connect, hosts_urgent=not regions)
        self.live = live

    def _progress(self, task: Task, progress, signature: tuple) -> None:
        batch = progress.payload
        if batch is None or task is not self.task:
            return
        probs = batch.probs
        signature = batch.signature or signature  # a classify batch says which labels it used
        if probs is not None and signature == self.signature():
            if self.scores_signature != signature:
                self.session.set_scores([], np.zeros((0, len(batch.labels))), batch.labels)
                self.scores_signature = signature
        else:
            probs = None
        self.session.set_embeddings(batch.items, probs, batch.labels, batch.quarters)
        if self.run is not None:
            self.run.done += len(batch.items)
            if self._progress_cooldown.isActive() and self.run.done < self.run.total:
                self._progress_due = True  # the last batch always shows: the bar ends full
            else:
                self._show_progress(self.run)
                self._progress_cooldown.start()
        self.window.results_updated.emit()
        self.window.refresh_counts_later()

    def _progress_if_due(self) -> None:
        if self._progress_due and self.run is not None:
            self._show_progress(self.run)
            self._progress_cooldown.start()
        self._progress_due = False

    def _show_progress(self, run: Run) -> None:
        rate = run.rate()
        eta = (run.total - run.done) / rate if rate > 0 else 0
        bar = self.window.progress_bar
        # QProgressBar.setValue repaints at once, and a synchronous repaint paints everything
        # else waiting in the window too (the table asks Python for every cell): with updates
        # off it becomes an ordinary update, painted with the rest in the next pass.
        bar.setUpdatesEnabled(False)
        bar.setRange(0, run.total)
        bar.setValue(run.done)
        bar.setFormat(f"%v/%m · {rate:.0f} img/s")
        bar.setUpdatesEnabled(True)
        self.window.show_message(f"{run.what} {run.done}/{run.total} images · {rate:.1f} img/s · "
                                 f"ETA {eta:.0f} s")

    def _done(self, task: Task, paths: list[Path], result, error=None) -> None:
        self.in_flight.difference_update(paths)
        if task is not self.task:
            return
        self.task, self.live = None, None
        self.window.models.refresh_backend()  # the background ONNX export may have landed
        if error is not None or self.paused:
            self.paused = True
            self.run = None
            self.window._set_busy(False)
            if error is None or isinstance(error, Cancelled):
                self.window.show_message(self._cancelled_message())
            else:
                self.window.show_message(f"Classification stopped: {error}")
            return
        self.next_job()

    def _cancelled_message(self) -> str:
        left = self.session.pending_count()
        regions = len(self.session.region_pending())
        text = f"Cancelled; {left} images not classified"
        if regions:
            text = (f"Cancelled; {regions} images not scored for multi-label" if not left
                    else f"{text}, {regions} not scored for multi-label")
        return f"{text} (File › Classify pending images)."

    def _start_rescore(self, urgent: bool = False) -> None:
        """Scores for the embedded images from their stored vectors (a text encoding for new
        labels, then a matrix product); when the stored scores already follow the current
        labels, only the rows still without a score. `urgent`: between a chunk's batches."""
        paths, features = self.session.features()
        quarters = self.session.feature_quarters() if self.session.multi_label else None
        signature = self.signature()
        merge = self.scores_signature == signature
        if merge:
            paths, features, quarters = self._unscored(paths, features, quarters)
        labels, templates, multi = list(self.session.labels), self.session.templates, self.session.multi_label

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda result: self._rescored(task, result, signature, merge))
            task.signals.errored.connect(lambda error: self._rescore_failed(task, error))

        self.rescore_task = self.window.worker.submit(
            "rescore", lambda worker, _t: rescore(worker.engine, paths, features, labels, templates, multi,
                                                  quarters),
            connect=connect, cancellable=False, urgent=urgent)

    def _unscored(self, paths: list, features: np.ndarray, quarters: list | None) -> tuple:
        """The `features()` rows without scores (same order as `features()`: embedded items)."""
        embedded = [item for item in self.session.items if item.vector is not None]
        missing = [row for row, item in enumerate(embedded) if item.probs is None]
        return ([paths[i] for i in missing], features[missing],
                [quarters[i] for i in missing] if quarters is not None else None)

    def _rescored(self, task: Task, result, signature: tuple, merge: bool = False) -> None:
        if task is not self.rescore_task:
            return
        self.rescore_task = None
        window = self.window
        if signature == self.signature():
            # Rows a running chunk scored with these labels meanwhile are kept: merged, not reset.
            merge = merge or self.scores_signature == signature
            self.session.set_scores(result.paths, result.probs, result.labels, merge=merge)
            self.scores_signature = signature
            window.notes = [*window.scan_notes, *result.notes]
            window._update_badge()
            window._refresh_filter()
            window.results_updated.emit()
        self.next_job()

    def _rescore_failed(self, task: Task, error: Exception) -> None:
        if task is self.rescore_task:
            self.rescore_task = None
            self.window.show_message(str(error))
            self.scores_signature = self.signature()  # do not retry the same labels in a loop
