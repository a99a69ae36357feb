"""What a fine-tuning run is asked to do and what it hands back: the settings, the result and the
evaluation report. Every method (quick, full, captions) and `training.api` import these from here,
so the entry point can import the methods and the methods their types without a circle."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipdesk.core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED

METHODS = ("quick", "full", "captions")
TORCH_METHODS = ("full", "captions")  # they train the encoders: torch; quick needs ONNX Runtime and numpy
TORCH_PACKAGES = ("torch", "torchvision", "open_clip")
TRAIN_INSTALL = "pip install 'clipdesk[train]'"  # pyproject's `train` extra: torch, torchvision, open_clip_torch


def torch_available() -> bool:
    """Whether torch, torchvision and open_clip can be found, without importing them (a second
    of start-up; the window asks while a menu is open)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in TORCH_PACKAGES)
    except (ImportError, ValueError):  # a blocked or half-removed package
        return False


def torch_needed(method: str) -> str | None:
    """The one sentence for a method that needs torch where it is missing; None where it can run."""
    if method not in TORCH_METHODS or torch_available():
        return None
    return (f"Fine-tuning with the {method} method needs torch, which this clipdesk does not include; "
            f"add it with `{TRAIN_INSTALL}`, or use the quick method, which runs without it.")
DEFAULT_EPOCHS = {"quick": 200, "full": 10, "captions": 10}  # quick: optimiser steps on embeddings
DEFAULT_LR = {"quick": 1e-3, "full": 1e-5, "captions": 1e-5}
SCRATCH_LR = 5e-4  # captions from random weights (pretrained none) need a far larger rate


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
    backend: str = "auto"  # quick's embeddings: "auto" (the ONNX export where served torch-free) or "torch"
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
