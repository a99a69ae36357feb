"""The quick method: frozen encoders, a few-shot head on cached image embeddings.

Candidates (training.probe: zero-shot, class means, the linear probe `probe.fit_probe`,
Tip-Adapter) are compared by repeated cross-validation on the training images; the probe stays
unless another beats it clearly, and then the head is exactly `fit_probe` on all the images (the
same fit the benchmark's "probe" row makes). It is saved as head.safetensors beside a reference
to the base model. Nothing here needs torch: the embeddings come from the model's ONNX export
where one is served torch-free (the demo ships one), the head is numpy (training.logistic), and the
checkpoint is written with safetensors' numpy API. The reported "after" accuracy comes from images that chose nothing: a
held-out split when it holds ≥ 100 images (or a separate folder), otherwise repeated nested
10-fold cross-validation over the whole folder, its interval resting on the distinct images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdesk.core.backends import Encoder, TorchEncoder
from clipdesk.core.cache import EmbeddingCache
from clipdesk.core.engine import Engine
from clipdesk.core.heads import head_metadata
from clipdesk.core.jobs import CancelToken, Job, Progress, check
from clipdesk.core.models import load_model_job
from clipdesk.core.onnx_start import open_exported_job
from clipdesk.core.prompts import Label

from . import probe
from .checkpoint import base_metadata, output_dir, portable_reference, write_model_folder
from .config import FinetuneResult
from .data import DataError, check_dataset, require_every_class, scan_dataset, split_dataset
from .report import (
    SMALL_EVALUATION,
    accuracy,
    confusion_matrix,
    evaluation_record,
    per_class_accuracy,
    write_confusion_png,
)


@dataclass
class Embedded:
    features: np.ndarray
    labels: np.ndarray
    paths: list[Path]


def embed_split(engine, paths, labels, batch_size, cancel, skipped: list[str]) -> Job[Embedded]:
    """Cached embeddings for `paths`; unreadable files are dropped and reported."""
    result = yield from engine.embed_job(paths, batch_size=batch_size, cancel=cancel)
    by_path = dict(zip(paths, labels))
    skipped.extend(result.errors.values())
    return Embedded(result.features, np.array([by_path[p] for p in result.paths], dtype=np.int64),
                    list(result.paths))


def plan_evaluation(n_images: int, val_split: float, val_folder) -> str:
    """"folder", "split" (the held-out share is ≥ 100 images) or "nested" (small: cross-validate)."""
    if val_folder:
        return "folder"
    return "split" if n_images * val_split >= SMALL_EVALUATION else "nested"


OUTER_REPEATS = 3  # repeats of the outer 10-fold cross-validation on a small folder ...
NESTED_BUDGET_S = 90.0  # ... as long as another repeat is expected to fit in this time


def honest_after(x, y, ctx, plan: str, test=None,
                 cancel: CancelToken | None = None) -> Job[tuple[np.ndarray, np.ndarray, str, list[str]]]:
    """Predictions on images that chose nothing: (true, predicted — one row per repeat when
    nested —, how, heads chosen per fold)."""
    if plan != "nested":
        _, head, _ = probe.select_and_fit(x, y, ctx)
        how = "a separate validation folder" if plan == "folder" else \
            f"a held-out {len(test.labels)}-image split never used for fitting or choosing"
        return test.labels, head.predict(test.features), how, []
    pred, chosen, started = [], [], time.perf_counter()
    for repeat in range(OUTER_REPEATS):
        if repeat and (time.perf_counter() - started) * (repeat + 1) / repeat > NESTED_BUDGET_S:
            break
        row = np.zeros(len(y), np.int64)
        splits = probe.outer_splits(y, ctx.seed + repeat, 1)
        for fold, (_, inner, held_out) in enumerate(splits, start=1):
            check(cancel)
            name, head, _ = probe.select_and_fit(x[inner], y[inner], ctx, repeats=1)  # chosen without `held_out`
            row[held_out] = head.predict(x[held_out])
            chosen.append(name)
            yield Progress(repeat * len(splits) + fold, OUTER_REPEATS * len(splits), "Nested cross-validation",
                           unit="fold", payload={
                               "kind": "val", "epoch": len(chosen),
                               "accuracy": float(np.mean(row[held_out] == y[held_out])),
                               "candidate": f"held-out fold {fold}/{len(splits)} ({name})"})
        pred.append(row)
    how = (f"nested {len(splits)}-fold cross-validation over all {len(y)} images"
           + (f", repeated {len(pred)}×" if len(pred) > 1 else ""))
    return y, np.array(pred), how, chosen


def frozen_encoder_job(config, cancel: CancelToken | None = None) -> Job[Encoder]:
    """The image encoder the head sits on: the model's ONNX export where it is served without
    torch (backend "auto"; fp32 embeddings equal torch's to ~1e-6, and share its cache), else
    torch (backend "torch", or no export: `load_model_job` says in one sentence when torch is
    missing too)."""
    if config.backend != "torch":
        encoder = yield from open_exported_job(config.arch, config.pretrained, config.device, "auto",
                                               "fp32", cancel)
        if encoder is not None:
            return encoder
    loaded = yield from load_model_job(config.arch, config.pretrained, config.device, cancel)
    return TorchEncoder(loaded)


def quick_job(config, cancel: CancelToken | None = None):
    """scan → cached embeddings → candidates chosen by cross-validation → honest figure → model folder."""
    summary = scan_dataset(config.folder)
    check_dataset(summary, config.min_per_class)
    val_summary = scan_dataset(config.val_folder) if config.val_folder else None
    plan = plan_evaluation(summary.total, config.val_split, config.val_folder)
    split = split_dataset(summary, config.val_split, config.seed, val_summary)
    classes = split.classes
    encoder = yield from frozen_encoder_job(config, cancel)
    engine, loaded = Engine(encoder, EmbeddingCache()), encoder.loaded
    skipped = list(summary.skipped)
    paths, labels = split.train_paths, split.train_labels
    if plan == "nested":  # every image is used: to fit, to choose, and (out of fold) to judge
        paths, labels = paths + split.val_paths, labels + split.val_labels
    train = yield from embed_split(engine, paths, labels, config.batch_size, cancel, skipped)
    test = None
    if plan != "nested":
        test = yield from embed_split(engine, split.val_paths, split.val_labels, config.batch_size, cancel, skipped)
    if len(train.labels) < 2 or (test is not None and len(test.labels) == 0):
        raise DataError(f"Too few of the images in {summary.folder} could be read.")
    require_every_class(classes, summary.folder, train.labels, *([] if test is None else [test.labels]))
    ctx = probe.Context(classes, engine.label_set([Label(c) for c in classes], config.templates).weights,
                        engine.encoder.logit_scale, config.resolved_epochs, config.resolved_lr, config.seed)
    yield Progress(0, None, "Choosing a few-shot head by cross-validation")
    check(cancel)
    true, pred_after, how, chosen = yield from honest_after(train.features, train.labels, ctx, plan, test,
                                                                 cancel)
    check(cancel)
    name, head, scores = probe.select_and_fit(train.features, train.labels, ctx)
    evaluated = train if plan == "nested" else test
    pred_before = (evaluated.features @ ctx.zero_shot.T).argmax(1)
    record = evaluation_record(true, pred_after, how)
    pred_after = np.atleast_2d(pred_after)[0]  # the confusion matrix: the first repeat's answers
    record.update(train_images=len(train.labels), candidate=name, cv_accuracy_of_choice=scores[name][0], folds_chose=chosen,
                  selected_on=f"cross-validation over the {len(train.labels)} training images")
    yield Progress(1, 1, "Few-shot head chosen", payload={
        "kind": "val", "epoch": len(chosen) + 1, "accuracy": record["accuracy"], "candidate": f"chosen: {name}"})
    return _finish(config, summary, classes, loaded, head, name, evaluated, true, pred_before, pred_after,
                   record, skipped, FinetuneResult)


def _finish(config, summary, classes, loaded, head, name, evaluated, true, pred_before, pred_after, record,
            skipped, result_type):
    """Write the model folder and build the report."""
    confusion = confusion_matrix(true, pred_after, len(classes))
    before_confusion = confusion_matrix(true, pred_before, len(classes))
    acc_before, acc_after = accuracy(true, pred_before), record["accuracy"]
    out = output_dir(Path(config.folder), "quick", config.out, config.name, config.overwrite)
    metadata = base_metadata(config.arch, portable_reference(config.pretrained), "quick", classes,
                             config.templates)
    metadata["head"] = dict(head_metadata(head), candidate=name)
    metadata["validation"] = {
        "accuracy_before": acc_before, "accuracy_after": acc_after, "val_images": len(true),
        "per_class": per_class_accuracy(classes, confusion), "evaluation": record,
    }
    write_model_folder(out, metadata, head=head.tensors())
    loaded.head, loaded.metadata, loaded.pretrained = head, metadata, str(out)
    png = write_confusion_png(out / "confusion.png", classes, confusion)
    return result_type(
        model_dir=out, classes=classes, accuracy_before=acc_before, accuracy_after=acc_after,
        per_class=per_class_accuracy(classes, confusion), confusion=confusion,
        val_paths=list(evaluated.paths), val_true=np.asarray(true).tolist(), val_pred=np.asarray(pred_after).tolist(),
        method="quick", per_class_before=per_class_accuracy(classes, before_confusion),
        confusion_png=png, head_kind=head.kind, evaluation=record,
        forgetting={"generic_agreement": 1.0, "note": "encoders are frozen; other labels score as before"},
        skipped=skipped, loaded=loaded,
    )
