"""The quick method: frozen encoders, a few-shot head on cached image embeddings.

Two heads start from the zero-shot text classifier and are fitted on the training embeddings
(seconds on a CPU, since the images are encoded once and cached by the core): a linear probe
pulled towards the zero-shot weights, and a Tip-Adapter-F cache model. The one with the better
validation accuracy is saved as head.safetensors beside a reference to the base model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipdesk.core.heads import Head, LinearHead, TipAdapterHead, head_metadata
from clipdesk.core.jobs import CancelToken, Job, Progress, check
from clipdesk.core.prompts import Label

from .checkpoint import base_metadata, output_dir, portable_reference, write_model_folder
from .common import single_thread
from .data import DataError, check_dataset, scan_dataset, split_dataset
from .report import accuracy, confusion_matrix, per_class_accuracy, write_confusion_png

PROBE_PULL = (1e-3, 1e-1, 10.0)  # strength of the pull towards the zero-shot weights
TIP_ALPHA = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # Tip-Adapter's residual ratio, searched on validation
TIP_BETA = (1.0, 3.0, 5.5, 10.0)  # sharpness of the cache affinities


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


def _val_score(head: Head, val: Embedded) -> tuple[float, float]:
    """(accuracy, −cross-entropy): ties on accuracy go to the more confident, better calibrated head."""
    logits = torch.from_numpy(head.logits(val.features))
    target = torch.from_numpy(val.labels)
    acc = float((logits.argmax(1) == target).float().mean())
    return acc, -float(F.cross_entropy(logits, target))


def fit_linear(train: Embedded, zero_shot: np.ndarray, scale: float, steps: int, lr: float,
               pull: float, classes: list[str]) -> LinearHead:
    """Full-batch AdamW on cross-entropy + pull·‖W − W₀‖² (the zero-shot weights as a prior)."""
    x = torch.from_numpy(train.features)
    y = torch.from_numpy(train.labels)
    w0 = torch.from_numpy(zero_shot)
    weight = torch.nn.Parameter(w0.clone())
    bias = torch.nn.Parameter(torch.zeros(len(classes)))
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        loss = F.cross_entropy(scale * x @ weight.T + bias, y) + pull * (weight - w0).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return LinearHead(classes, weight.detach().numpy(), bias.detach().numpy(), scale)


def fit_tip_adapter(train: Embedded, zero_shot: np.ndarray, scale: float, steps: int, lr: float,
                    classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tip-Adapter-F: the cache keys (training embeddings) are fine-tuned at α=1, β=5.5."""
    x = torch.from_numpy(train.features)
    y = torch.from_numpy(train.labels)
    values = F.one_hot(y, len(classes)).float()
    keys = torch.nn.Parameter(x.clone())
    clip_logits = scale * x @ torch.from_numpy(zero_shot).T
    optimizer = torch.optim.AdamW([keys], lr=lr * 0.1, weight_decay=0.0)
    for _ in range(steps):
        affinity = torch.exp(-5.5 * (1 - x @ F.normalize(keys, dim=-1).T))
        loss = F.cross_entropy(clip_logits + affinity @ values, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return F.normalize(keys.detach(), dim=-1).numpy(), values.numpy()


def choose_head(train: Embedded, val: Embedded, zero_shot: np.ndarray, scale: float, steps: int,
                lr: float, classes: list[str], cancel: CancelToken | None) -> Job[Head]:
    """Fit both kinds over a small grid and keep the best on validation."""
    candidates: list[tuple[tuple[float, float], Head]] = []
    for n, pull in enumerate(PROBE_PULL):
        check(cancel)
        with single_thread():
            head = fit_linear(train, zero_shot, scale, steps, lr, pull, classes)
        candidates.append((_val_score(head, val), head))
        yield Progress(n + 1, len(PROBE_PULL) + 1, "Fitting few-shot heads",
                       payload={"kind": "val", "epoch": n + 1, "accuracy": candidates[-1][0][0],
                                "candidate": f"linear probe (pull {pull:g})"})
    check(cancel)
    with single_thread():
        keys, values = fit_tip_adapter(train, zero_shot, scale, steps, lr, classes)
    for alpha in TIP_ALPHA:
        for beta in TIP_BETA:
            head = TipAdapterHead(classes, zero_shot, keys, values, alpha, beta, scale)
            candidates.append((_val_score(head, val), head))
    best = max(candidates, key=lambda pair: pair[0])
    yield Progress(len(PROBE_PULL) + 1, len(PROBE_PULL) + 1, "Fitting few-shot heads",
                   payload={"kind": "val", "epoch": len(PROBE_PULL) + 1, "accuracy": best[0][0],
                            "candidate": f"best: {best[1].kind}"})
    return best[1]


def quick_job(config, cancel: CancelToken | None = None):
    """scan → split → cached embeddings → zero-shot baseline → head → model folder + report."""
    from clipdesk.core.backends import TorchEncoder
    from clipdesk.core.cache import EmbeddingCache
    from clipdesk.core.engine import Engine
    from clipdesk.core.models import load_model_job

    from .api import FinetuneResult

    summary = scan_dataset(config.folder)
    check_dataset(summary, config.min_per_class)
    val_summary = scan_dataset(config.val_folder) if config.val_folder else None
    split = split_dataset(summary, config.val_split, config.seed, val_summary)
    classes = split.classes
    loaded = yield from load_model_job(config.arch, config.pretrained, config.device, cancel)
    engine = Engine(TorchEncoder(loaded), EmbeddingCache())
    skipped = list(summary.skipped)
    train = yield from embed_split(engine, split.train_paths, split.train_labels, config.batch_size, cancel, skipped)
    val = yield from embed_split(engine, split.val_paths, split.val_labels, config.batch_size, cancel, skipped)
    if len(train.labels) == 0 or len(val.labels) == 0:
        raise DataError(f"None of the images in {summary.folder} could be read.")
    zero_shot = engine.label_set([Label(c) for c in classes], config.templates).weights
    scale = engine.encoder.logit_scale
    torch.manual_seed(config.seed)
    head = yield from choose_head(train, val, zero_shot, scale, config.resolved_epochs,
                                  config.resolved_lr, classes, cancel)

    pred_before = (val.features @ zero_shot.T).argmax(1)
    pred_after = head.predict(val.features)
    confusion = confusion_matrix(val.labels, pred_after, len(classes))
    before_confusion = confusion_matrix(val.labels, pred_before, len(classes))
    acc_before, acc_after = accuracy(val.labels, pred_before), accuracy(val.labels, pred_after)
    out = output_dir(Path(config.folder), "quick", config.out, config.name)
    metadata = base_metadata(config.arch, portable_reference(config.pretrained), "quick", classes,
                             config.templates)
    metadata["head"] = head_metadata(head)
    metadata["validation"] = {
        "accuracy_before": acc_before, "accuracy_after": acc_after, "val_images": len(val.labels),
        "train_images": len(train.labels), "per_class": per_class_accuracy(classes, confusion),
    }
    write_model_folder(out, metadata, head=head.tensors())
    loaded.head, loaded.metadata, loaded.pretrained = head, metadata, str(out)
    png = write_confusion_png(out / "confusion.png", classes, confusion)
    return FinetuneResult(
        model_dir=out, classes=classes, accuracy_before=acc_before, accuracy_after=acc_after,
        per_class=per_class_accuracy(classes, confusion), confusion=confusion,
        val_paths=val.paths, val_true=val.labels.tolist(), val_pred=pred_after.tolist(),
        method="quick", per_class_before=per_class_accuracy(classes, before_confusion),
        confusion_png=png, head_kind=head.kind,
        forgetting={"generic_agreement": 1.0, "note": "encoders are frozen; other labels score as before"},
        skipped=skipped, loaded=loaded,
    )
