"""The stable entry points the GUI, the CLI and tests drive (generator jobs, see clipdesk.core.jobs).

    summary = scan_dataset("pets/")                        # classes, counts, skipped
    result = run_job(finetune_job(FinetuneConfig("pets/", method="quick",
                                                 arch="ViT-B-32", pretrained="openai")))
    report = run_job(evaluate_job("pets-test/", "ViT-B-32", str(result.model_dir)))

Progress payloads during training: {"kind": "train", "step", "epoch", "loss"} per optimizer
step and {"kind": "val", "epoch", "accuracy"} per validation (for live plots).
"""

from __future__ import annotations

from pathlib import Path

from clipdesk.core.errors import ModelLoadError
from clipdesk.core.jobs import CancelToken, Job
from clipdesk.core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED, resolve_source

from .checkpoint import output_dir
from .config import METHODS, TORCH_METHODS, EvalReport, FinetuneConfig, FinetuneResult, torch_needed
from .data import DataError, DatasetSummary, scan_dataset
from .evaluate import evaluate_folder_job
from .quick import quick_job

__all__ = [
    "DataError", "DatasetSummary", "EvalReport", "FinetuneConfig", "FinetuneResult", "METHODS",
    "TORCH_METHODS", "evaluate_job", "finetune_job", "scan_dataset", "torch_needed",
]


def finetune_job(config: FinetuneConfig, cancel: CancelToken | None = None) -> Job[FinetuneResult]:
    """Train with `config.method` and write the model folder; the result carries the report."""
    if config.method not in METHODS:
        raise DataError(f"Unknown method '{config.method}'; choose quick, full or captions.")
    output_dir(Path(config.folder), config.method, config.out, config.name, config.overwrite)  # fail now, not after training
    # An alias such as "demo" becomes the real architecture before metadata.json is written.
    config.arch, config.pretrained = resolve_source(config.arch, config.pretrained)
    if config.method == "quick":  # frozen embeddings and a numpy head: no torch needed
        return (yield from quick_job(config, cancel))
    return (yield from torch_method_job(config, cancel))


def torch_method_job(config: FinetuneConfig, cancel: CancelToken | None = None) -> Job[FinetuneResult]:
    """full and captions train torch models: without torch, one sentence saying how to add it."""
    missing = torch_needed(config.method)
    if missing:
        raise ModelLoadError(missing)
    # torch is optional (the `app` install, the bundle, has none), so the methods that train torch
    # models are imported here, when one is chosen: the one place they load, not to dodge a circle.
    from .captions import captions_finetune_job
    from .full import full_job
    from .loop import init_distributed

    config.device = init_distributed(config.device)  # joins torchrun's process group, if any
    job = full_job if config.method == "full" else captions_finetune_job
    return (yield from job(config, cancel))


def evaluate_job(folder: Path | str, arch: str = DEFAULT_ARCH, pretrained: str = DEFAULT_PRETRAINED,
                 device: str = "auto", cancel: CancelToken | None = None,
                 templates: str | None = None, batch_size: int = 32) -> Job[EvalReport]:
    """Classify every image of a labelled folder with the model (its head if it has one)."""
    return (yield from evaluate_folder_job(folder, arch, pretrained, device, cancel, templates, batch_size))
