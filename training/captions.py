"""Contrastive training on captioned images (the `captions` method), from a tag or from scratch.

How to call it (e.g. to train a small model on generated pairs):

    from clipdesk.core.jobs import run_job
    from training.captions import train_captions_job

    pairs = [(Path("img/0001.png"), "a red circle"), ...]   # or read_caption_pairs("pairs.csv")
    result = run_job(train_captions_job(
        pairs, arch="clipdesk-tiny", pretrained="none", epochs=20, lr=5e-4, batch_size=32,
        device="cpu", seed=0, out=Path("resources/models/demo"), cancel=None,
        val_fraction=0.1,             # held-out pairs for image→text recall (0: no validation)
        class_names=["red", ...],     # optional: written to metadata.json for the GUI's labels
        extra_metadata={"note": ...}, # optional: merged into metadata.json
    ))
    result.model_dir, result.recall_before, result.recall_after, result.history

`out` receives model.safetensors + metadata.json (atomically; `load_model(arch,
pretrained=str(out))` reads it back). Identical captions in one batch are treated as the same
text, not as negatives. Progress payloads: {"kind": "train", "step", "epoch", "loss"} and
{"kind": "val", "epoch", "accuracy"} (accuracy = image→text recall@1 on the held-out pairs).
An interrupted run with the same arguments resumes from `out/.resume/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from clipdesk.core.jobs import CancelToken, Job, Progress
from clipdesk.core.models import load_model_job

from .checkpoint import STATE_DIR, base_metadata, output_dir, portable_reference, write_model_folder
from .common import encode_paths, fingerprint, numpy_state, train_transform
from .config import FinetuneResult
from .data import DataError, ImageDataset, read_caption_pairs, verify_pairs_job
from .loop import LoopConfig, amp_context, clear_state, contrastive_train_job, dist_info, is_writer


@dataclass
class CaptionsResult:
    model_dir: Path
    recall_before: float | None
    recall_after: float | None
    history: list[dict] = field(default_factory=list)
    train_pairs: int = 0
    val_pairs: int = 0
    resumed_from: int | None = None
    skipped: list[str] = field(default_factory=list)  # images left out, one note each
    loaded: object = field(default=None, repr=False)  # the trained LoadedModel, in memory


def split_pairs(pairs: Sequence[tuple[Path, str]], val_fraction: float, seed: int):
    pairs = list(pairs)
    if val_fraction <= 0 or len(pairs) < 4:
        return pairs, []
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = max(2, round(val_fraction * len(pairs)))
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


@torch.no_grad()
def retrieval_recall(model, loaded, pairs, device) -> float:
    """Image→text recall@1 over the held-out pairs (an identical caption counts as a hit)."""
    if not pairs:
        return 0.0
    images = encode_paths(model, [p for p, _ in pairs], loaded.preprocess, device)
    captions = [c for _, c in pairs]
    with amp_context(device):
        texts = model.encode_text(loaded.tokenizer(captions).to(device), normalize=True).float().cpu()
    best = (images @ texts.T).argmax(dim=1).tolist()
    return float(np.mean([captions[b] == captions[i] for i, b in enumerate(best)]))


def train_captions_job(
    pairs: Sequence[tuple[Path, str]],
    arch: str,
    pretrained: str = "none",
    epochs: int = 10,
    lr: float = 1e-5,
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    out: Path | None = None,
    cancel: CancelToken | None = None,
    val_pairs: Sequence[tuple[Path, str]] | None = None,
    val_fraction: float = 0.1,
    class_names: Sequence[str] = (),
    extra_metadata: dict | None = None,
    accum_steps: int = 1,
    patience: int | None = None,
    workers: int = 0,
    resume: bool = True,
) -> Job[CaptionsResult]:
    """Train both towers on (image, caption) pairs and write the model folder to `out`."""
    if out is None:
        raise DataError("An output folder is needed for the trained model.")
    out = Path(out)
    if len(pairs) < 2:
        raise DataError("At least two captioned images are needed for contrastive training.")
    skipped: list[str] = []
    pairs = yield from verify_pairs_job(pairs, skipped, cancel)  # never train on an unreadable image
    if val_pairs is not None:
        val_pairs = yield from verify_pairs_job(val_pairs, skipped, cancel)
    train, val = (list(pairs), list(val_pairs)) if val_pairs is not None else split_pairs(pairs, val_fraction, seed)
    loaded = yield from load_model_job(arch, pretrained, device, cancel)
    torch_device = loaded.device
    model = loaded.model

    captions = [c for _, c in train]
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}  # identical captions share a group
    dataset = ImageDataset([p for p, _ in train], [ids[c] for c in captions], train_transform(loaded),
                           tokens=loaded.tokenizer(captions), seed=seed)
    _, world = dist_info()
    config = LoopConfig(epochs=epochs, lr=lr, batch_size=min(batch_size, _round_down(len(train), world)),
                        accum_steps=accum_steps, seed=seed, patience=patience, num_workers=workers)
    evaluate = (lambda m: retrieval_recall(m, loaded, val, torch_device)) if val else None
    yield Progress(0, None, "Measuring the starting model")
    recall_before = retrieval_recall(model.eval(), loaded, val, torch_device) if val else None
    run_id = fingerprint(method="captions", arch=arch, pretrained=pretrained, pairs=train, val=val,
                         epochs=epochs, lr=lr, batch=config.batch_size, seed=seed, accum=accum_steps,
                         world=world)
    state_dir = out / STATE_DIR if resume else None
    if not resume:
        clear_state(out / STATE_DIR)
    loop = yield from contrastive_train_job(model, dataset, config, torch_device, evaluate=evaluate,
                                            state_dir=state_dir, fingerprint=run_id, cancel=cancel)
    model.load_state_dict(loop.state)
    model.eval()
    recall_after = retrieval_recall(model, loaded, val, torch_device) if val else None
    if is_writer():
        metadata = base_metadata(arch, portable_reference(pretrained), "captions", list(class_names), "photo")
        metadata["validation"] = {"recall_at_1_before": recall_before, "recall_at_1_after": recall_after,
                                  "train_pairs": len(train), "val_pairs": len(val),
                                  "epochs_run": loop.best_epoch, "steps": loop.steps}
        metadata.update(extra_metadata or {})
        write_model_folder(out, metadata, weights=numpy_state(loop.state))
        clear_state(out / STATE_DIR)
        loaded.metadata, loaded.pretrained = metadata, str(out)
    return CaptionsResult(out, recall_before, recall_after, loop.history, len(train), len(val),
                          loop.resumed_from, skipped, loaded)


def _round_down(n: int, world: int) -> int:
    return max(world, n - n % world)


def captions_finetune_job(config, cancel: CancelToken | None = None):
    """`finetune --method captions`: FOLDER is a CSV (filepath,caption) or images with .txt files."""
    notes: list[str] = []
    pairs = read_caption_pairs(config.folder, notes)
    val_pairs = read_caption_pairs(config.val_folder, notes) if config.val_folder else None
    out = output_dir(Path(config.folder), "captions", config.out, config.name, config.overwrite)
    result = yield from train_captions_job(
        pairs, config.arch, config.pretrained, config.resolved_epochs, config.resolved_lr,
        config.batch_size, config.device, config.seed, out, cancel, val_pairs=val_pairs,
        val_fraction=config.val_split, accum_steps=config.accum_steps, patience=config.patience,
        workers=config.resolved_workers(len(pairs)), resume=config.resume,
    )
    return FinetuneResult(
        model_dir=result.model_dir, classes=[], accuracy_before=result.recall_before or 0.0,
        accuracy_after=result.recall_after or 0.0, per_class={}, confusion=[], val_paths=[],
        val_true=[], val_pred=[], method="captions", history=result.history,
        resumed_from=result.resumed_from, skipped=notes + result.skipped, loaded=result.loaded,
    )
