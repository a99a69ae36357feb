"""Evaluate any model (a tag, a file, a fine-tuned folder) on a labelled folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipdesk.core.jobs import CancelToken, Job
from clipdesk.core.prompts import Label, default_templates

from .config import EvalReport
from .data import DataError, scan_dataset
from .report import accuracy, confusion_matrix, per_class_accuracy


def evaluation_labels(folder_classes: list[str], model_classes: list[str]) -> list[str]:
    """A fine-tuned model's own classes when the folder's are among them (so its head applies and
    every class it knows competes, as in use); otherwise the folder's classes."""
    known = {c.casefold(): c for c in model_classes}
    if model_classes and all(c.casefold() in known for c in folder_classes):
        return list(model_classes)
    return list(folder_classes)


def evaluate_folder_job(folder: Path | str, arch: str, pretrained: str, device: str = "auto",
                        cancel: CancelToken | None = None, templates: str | None = None,
                        batch_size: int = 32):
    from clipdesk.core.engine import open_engine_job

    summary = scan_dataset(folder)
    if not summary.classes:
        raise DataError(
            f"{summary.folder} has no class sub-folders with images; put each class's images in its "
            "own sub-folder (e.g. pets/cat/*.jpg)."
        )
    engine = yield from open_engine_job(arch, pretrained, device, backend="torch", cancel=cancel)
    loaded = engine.loaded
    templates = default_templates(templates, loaded.metadata)
    labels = evaluation_labels(summary.classes, loaded.class_names)
    index = {c.casefold(): i for i, c in enumerate(labels)}
    paths = [p for c in summary.classes for p in summary.files[c]]
    truth = {p: index[c.casefold()] for c in summary.classes for p in summary.files[c]}
    embedded = yield from _embed(engine, paths, batch_size, cancel)
    if not embedded.paths:
        raise DataError(f"None of the images in {summary.folder} could be read.")
    label_set = engine.label_set([Label(c) for c in labels], templates)
    scores = engine.score(embedded.features, label_set, templates=templates)
    pred = np.asarray(scores.probs).argmax(axis=1).tolist()
    true = [truth[p] for p in embedded.paths]
    confusion = confusion_matrix(true, pred, len(labels))
    skipped = list(summary.skipped)
    read = {truth[p] for p in embedded.paths}
    skipped += [f"class '{c}': none of its images could be read; it is not in the accuracy."
                for c in summary.classes if index[c.casefold()] not in read]
    return EvalReport(accuracy(true, pred), per_class_accuracy(labels, confusion), confusion, labels,
                      list(embedded.paths), true, pred, dict(embedded.errors), skipped)


def _embed(engine, paths, batch_size, cancel) -> Job:
    return (yield from engine.embed_job(paths, batch_size=batch_size, cancel=cancel))
