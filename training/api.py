"""The stable entry points the GUI, the CLI and tests drive (generator jobs, see clipdesk.core.jobs).

    summary = scan_dataset("pets/")                        # classes, counts, skipped
    result = run_job(finetune_job(FinetuneConfig("pets/", method="quick",
                                                 arch="ViT-B-32", pretrained="openai")))
    report = run_job(evaluate_job("pets-test/", "ViT-B-32", str(result.model_dir)))

Progress payloads during training: {"kind": "train", "step", "epoch", "loss"} per optimizer
step and {"kind": "val", "epoch", "accuracy"} per validation (for live plots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipdesk.core.jobs import CancelToken, Job
from clipdesk.core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED

from .data import DataError, DatasetSummary, scan_dataset

METHODS = ("quick", "full", "captions")
DEFAULT_EPOCHS = {"quick": 200, "full": 10, "captions": 10}  # quick: optimiser steps on embeddings
DEFAULT_LR = {"quick": 1e-3, "full": 1e-5, "captions": 1e-5}
SCRATCH_LR = 5e-4  # captions from random weights (pretrained none) need a far larger rate

__all__ = [
    "DataError", "DatasetSummary", "EvalReport", "FinetuneConfig", "FinetuneResult", "METHODS",
    "evaluate_job", "finetune_job", "scan_dataset",
]


@dataclass
class FinetuneConfig:
    folder: Path | str
    method: str = "quick"
    arch: str = DEFAULT_ARCH
    pretrained: str = DEFAULT_PRETRAINED
    epochs: int | None = None  # None: the method's default
    lr: float | None = None  # None: the method's default
    batch_size: int = 32
    val_split: float = 0.2
    val_folder: Path | str | None = None
    out: Path | str | None = None  # None: <user data dir>/models/<name>/
    device: str = "auto"
    seed: int = 0
    name: str | None = None
    templates: str = "photo"
    patience: int | None = 3  # early stopping (full, captions): epochs without validation gain
    accum_steps: int = 1
    min_per_class: int = 2
    workers: int | None = None  # decoding processes (full, captions); None: by dataset size
    resume: bool = True  # pick up the saved state of an interrupted identical run
    overwrite: bool = False  # replace a model already in `out` (nothing else is ever written over)

    @property
    def resolved_epochs(self) -> int:
        return int(self.epochs or DEFAULT_EPOCHS[self.method])

    def resolved_workers(self, n_images: int) -> int:
        """Worker processes pay off once decoding outweighs their start-up (per epoch)."""
        if self.workers is not None:
            return self.workers
        import os

        return 0 if n_images < 256 else max(0, min(4, (os.cpu_count() or 1) - 1))

    @property
    def resolved_lr(self) -> float:
        if self.lr:
            return float(self.lr)
        if self.method == "captions" and str(self.pretrained).lower() in ("none", "random"):
            return SCRATCH_LR
        return DEFAULT_LR[self.method]


@dataclass
class FinetuneResult:
    model_dir: Path
    classes: list[str]
    accuracy_before: float
    accuracy_after: float
    per_class: dict
    confusion: list[list[int]]
    val_paths: list[Path]
    val_true: list[int]
    val_pred: list[int]
    method: str = "quick"
    per_class_before: dict = field(default_factory=dict)
    confusion_png: Path | None = None
    alpha: float | None = None  # WiSE-FT mix (full)
    head_kind: str | None = None  # quick: "linear" or "tip-adapter"
    forgetting: dict = field(default_factory=dict)  # zero-shot agreement with the base model
    history: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed_from: int | None = None
    # The honest "after" figure: accuracy, images, how they were held out, 95 % interval
    # (training.report.evaluation_record); accuracy_after equals its accuracy.
    evaluation: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. the training loss did not fall
    fine_tuned_state: Any = field(default=None, repr=False, compare=False)  # full: the weights at α = 1
    # The trained model in memory (a clipdesk LoadedModel, head attached for quick), so "Use this
    # model" needs no reload; loading `model_dir` gives identical logits.
    loaded: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {
            "model_dir": str(self.model_dir), "method": self.method, "classes": self.classes,
            "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
            "per_class": self.per_class, "per_class_before": self.per_class_before,
            "confusion": self.confusion, "alpha": self.alpha, "head": self.head_kind,
            "forgetting": self.forgetting, "evaluation": self.evaluation, "warnings": self.warnings,
            "confusion_png": str(self.confusion_png) if self.confusion_png else None,
        }


@dataclass
class EvalReport:
    accuracy: float
    per_class: dict
    confusion: list[list[int]]
    classes: list[str]
    paths: list[Path] = field(default_factory=list)
    true: list[int] = field(default_factory=list)
    pred: list[int] = field(default_factory=list)
    errors: dict = field(default_factory=dict)  # path -> message for files that could not be read
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "per_class": self.per_class,
                "confusion": self.confusion, "classes": self.classes}


def finetune_job(config: FinetuneConfig, cancel: CancelToken | None = None) -> Job[FinetuneResult]:
    """Train with `config.method` and write the model folder; the result carries the report."""
    if config.method not in METHODS:
        raise DataError(f"Unknown method '{config.method}'; choose quick, full or captions.")
    from .checkpoint import output_dir

    output_dir(Path(config.folder), config.method, config.out, config.name, config.overwrite)  # fail now, not after training
    from clipdesk.core.models import resolve_source

    # An alias such as "demo" becomes the real architecture before metadata.json is written.
    config.arch, config.pretrained = resolve_source(config.arch, config.pretrained)
    if config.method == "quick":
        from .quick import quick_job as job
    elif config.method == "full":
        from .full import full_job as job
    else:
        from .captions import captions_finetune_job as job
    return (yield from job(config, cancel))


def evaluate_job(folder: Path | str, arch: str = DEFAULT_ARCH, pretrained: str = DEFAULT_PRETRAINED,
                 device: str = "auto", cancel: CancelToken | None = None,
                 templates: str | None = None, batch_size: int = 32) -> Job[EvalReport]:
    """Classify every image of a labelled folder with the model (its head if it has one)."""
    from .evaluate import evaluate_folder_job

    return (yield from evaluate_folder_job(folder, arch, pretrained, device, cancel, templates, batch_size))
