"""Set label ▸ (right-click a card or row) and Training › Fine-tune on my corrections.

A label set by hand is kept as a correction (path → label). Fine-tune on my corrections re-fits
the quick head from the corrected images' embeddings (`training.corrections`, pure Python) on the
model worker, puts it in the loaded model, and re-scores: those images then get the labels the
user set, and new images are scored by the same head. Qt only collects and wires.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject

from clipdesk.core.errors import ClipdeskError

from .worker import Task


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


class CorrectionsController(QObject):
    """Owns the corrections and the re-fit task."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.labels: dict[Path, str] = {}
        self.task: Task | None = None
        self.last_fit = None  # training.corrections.CorrectionsFit of the last re-fit

    def set_label(self, paths: list[Path], label: str) -> None:
        """Right-click › Set label ▸ label: remembered until the next re-fit uses it."""
        for path in paths:
            self.labels[Path(path)] = label
        names = paths[0].name if len(paths) == 1 else _plural(len(paths), "image")
        self.window.show_message(
            f"{names}: set to “{label}” ({_plural(len(self.pending()), 'correction')}). "
            "Training › Fine-tune on my corrections applies them.", 10000)
        self.window.refit_action.setEnabled(True)

    def pending(self) -> list[tuple[Path, str]]:
        """Corrections whose image is still loaded and embedded and whose label is still listed."""
        labels = set(self.session.labels)
        pairs = []
        for path, label in self.labels.items():
            row = self.session.row_of(path)
            if row is not None and label in labels and self.session.items[row].vector is not None:
                pairs.append((path, label))
        return pairs

    def refit(self) -> Task | None:
        """Training › Fine-tune on my corrections: seconds, on the model worker."""
        pairs = self.pending()
        if not pairs:
            self.window.show_message("No corrections yet: right-click an image › Set label first.", 8000)
            return None
        if self.session.multi_label:
            self.window.show_message("Fine-tune on my corrections works with one label per image: "
                                     "turn Multi-label off first.", 8000)
            return None
        features = np.stack([self.session.items[self.session.row_of(p)].vector for p, _ in pairs])
        texts = list(self.session.labels)
        wanted = [texts.index(label) for _, label in pairs]  # label_set.names follow the texts' order
        templates = self.session.templates

        def factory(worker, _token):
            # Imported here, on the worker, where torch is loaded already: the window itself never
            # imports torch at start-up (training.probe does).
            from training.corrections import fit_corrections

            started = time.perf_counter()
            label_set = worker.engine.label_set(texts, templates)
            fit = fit_corrections(features, [label_set.names[i] for i in wanted], label_set.names,
                                  label_set.weights, worker.engine.encoder.logit_scale)
            worker.engine.loaded.head = fit.head  # Engine.score uses it for exactly these labels
            return fit, time.perf_counter() - started

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda result: self._fitted(task, result))
            task.signals.errored.connect(lambda error: self._failed(task, error))

        self.window.show_message(f"Re-fitting on {_plural(len(pairs), 'correction')}…")
        self.task = self.window.worker.submit("corrections", factory, connect=connect)
        return self.task

    def _fitted(self, task: Task, result) -> None:
        if task is not self.task:
            return
        self.task = None
        fit, seconds = result
        self.last_fit = fit
        classifier = self.window.classifier
        classifier.scores_signature = None  # same labels, new head: every score is stale
        classifier.schedule()
        missed = fit.total - fit.matched
        note = f" {missed} still differ: they look too much like other corrections." if missed else ""
        self.window.show_message(f"Re-fitted on {_plural(fit.total, 'correction')} in {seconds:.1f} s: "
                                 f"{fit.matched} of {fit.total} now get the label you set.{note}", 10000)

    def _failed(self, task: Task, error: Exception) -> None:
        if task is self.task:
            self.task = None
            text = str(error) if isinstance(error, (ClipdeskError, ImportError)) else f"Re-fitting failed: {error}"
            self.window.show_message(text, 8000)
