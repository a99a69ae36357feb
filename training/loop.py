"""The contrastive training loop shared by the `full` (FLYP) and `captions` methods.

One readable function, `contrastive_train_job`, in the nanoGPT spirit: warm-up + cosine
learning rate, AdamW with open_clip's no-decay groups, CLIP's symmetric loss (open_clip's
`ClipLoss`, features gathered across ranks under torchrun), `logit_scale` clamped to ln 100,
gradient accumulation, AMP on CUDA only, evaluation once per epoch with early stopping, and an
atomic resumable state every epoch and every `save_every` optimizer steps.

Items of the training set are dicts {"image": tensor, "group": int[, "tokens": LongTensor]}.
The text of an item is its own `tokens` (captions) or `group_tokens[group]` (class prompts).
Items that share a group share their text: the loss masks those pairs instead of pushing them
apart as negatives (with 5 classes and a batch of 32, most "negatives" would be positives).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from clipdesk.core import atomic
from clipdesk.core.errors import ClipdeskError
from clipdesk.core.jobs import CancelToken, Job, Progress, check

MAX_LOGIT_SCALE = math.log(100)  # CLIP's clamp: temperature never below 0.01


class TrainingError(ClipdeskError):
    """Training cannot go on (a non-finite loss, no optimisation step possible); one sentence."""


@dataclass
class LoopConfig:
    epochs: int = 5
    lr: float = 1e-5
    batch_size: int = 32  # global batch across all processes
    accum_steps: int = 1  # micro-batches per optimizer step (each is its own contrastive batch)
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    seed: int = 0
    patience: int | None = None  # epochs without validation gain before stopping early
    save_every: int = 50  # optimizer steps between resumable saves (plus one per epoch)
    num_workers: int = 0


@dataclass
class LoopResult:
    state: dict  # the weights to keep (best validation epoch, else last), on the CPU
    history: list[dict] = field(default_factory=list)  # the train/val payloads, in order
    best_metric: float | None = None
    best_epoch: int | None = None
    steps: int = 0
    resumed_from: int | None = None  # the optimizer step a resumed run started at


# -- distributed ---------------------------------------------------------------------------------
def dist_info() -> tuple[int, int]:
    """(rank, world_size); (0, 1) outside torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(device_name: str = "auto") -> str:
    """Join the torchrun process group (gloo on CPU, NCCL on GPU); returns the device to use."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return device_name
    import warnings

    # open_clip's gather uses torch.distributed.nn.all_gather, which newer torch marks deprecated.
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather")
    use_cuda = device_name in ("auto", "cuda", "gpu") and torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return "cuda" if use_cuda else "cpu"  # "cuda" now means this rank's GPU (set_device above)


def is_writer() -> bool:
    """Rank 0 alone writes files."""
    return dist_info()[0] == 0


# -- pieces --------------------------------------------------------------------------------------
def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """open_clip's groups: no weight decay on gains, biases, norms, logit_scale and embeddings."""
    def no_decay(name: str, param) -> bool:
        return (param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name
                or "logit_scale" in name or "embedding" in name)

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": weight_decay},
    ]


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero (open_clip's `cosine_lr`)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * base_lr


class GroupedClipLoss(ClipLoss):
    """open_clip's ClipLoss, with pairs that share a text (same class/caption) masked out."""

    def forward(self, image_features, text_features, logit_scale, groups=None, output_dict=False):
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        if groups is not None:
            if self.world_size > 1:
                gathered = [torch.zeros_like(groups) for _ in range(self.world_size)]
                torch.distributed.all_gather(gathered, groups)
                groups = torch.cat(gathered)
            same = groups[:, None] == groups[None, :]
            same.fill_diagonal_(False)
            low = torch.finfo(logits_per_image.dtype).min
            logits_per_image = logits_per_image.masked_fill(same, low)
            logits_per_text = logits_per_text.masked_fill(same, low)  # symmetric mask
        labels = self.get_ground_truth(image_features.device, logits_per_image.shape[0])
        loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
        return {"contrastive_loss": loss} if output_dict else loss


def make_loss(groups_masked: bool = True) -> ClipLoss:
    rank, world = dist_info()
    # gather_with_grad: every rank's features get the gradient of the global batch's loss.
    cls = GroupedClipLoss if groups_masked else ClipLoss
    return cls(local_loss=False, gather_with_grad=world > 1, rank=rank, world_size=world)


def check_finite_state(state: dict, what: str) -> None:
    """Never keep or save weights with NaN/inf in them."""
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise TrainingError(f"The {what} hold non-finite values (first: {bad[0]}); lower the learning rate "
                            "and train again.")


def loss_trend(history: list[dict]) -> str | None:
    """A warning when the training loss did not fall (last quarter of steps vs the first)."""
    losses = [h["loss"] for h in history if h.get("kind") == "train"]
    if len(losses) < 4:
        return None
    quarter = max(1, len(losses) // 4)
    first, last = float(np.mean(losses[:quarter])), float(np.mean(losses[-quarter:]))
    if last < 0.97 * first:
        return None
    return (f"the training loss did not fall ({first:.3f} → {last:.3f} over {len(losses)} steps); "
            "the learning rate may be too low or too high for this model.")


def batch_texts(batch: dict, group_tokens):
    """Unique texts of a batch and each item's group id (first item of a group supplies the text)."""
    groups = batch["group"]
    unique, inverse = torch.unique(groups, return_inverse=True)
    if "tokens" in batch:
        first = torch.full((len(unique),), len(groups), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(groups)), reduce="amin")
        texts = batch["tokens"][first]
    else:
        texts = group_tokens[unique]
    return texts, inverse, groups


def contrastive_loss(model, loss_fn, images, texts, inverse, groups):
    """Forward both towers (through DDP when wrapped) and the masked symmetric CLIP loss."""
    image_features, text_features, logit_scale = model(images, texts)[:3]
    return loss_fn(image_features, text_features[inverse], logit_scale, groups)


def amp_context(device: torch.device):
    """bf16 autocast on CUDA (fp16 where bf16 is missing); full precision elsewhere."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def clamp_logit_scale(model) -> None:
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def cpu_state(model) -> dict:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


# -- the schedule of batches --------------------------------------------------------------------
def epoch_batches(n_items: int, batch_size: int, epoch: int, seed: int, world: int) -> list[list[int]]:
    """Seeded shuffled global batches; a partial last batch is cut to a multiple of the world size.

    A contrastive batch needs negatives, so batches hold at least two items per process (batch
    size 1 becomes 2) and a last batch too small for that joins the one before it; a set with a
    single item has no batch at all.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n_items).tolist()
    size = max(batch_size, 2 * world) if batch_size < 2 else batch_size
    batches = []
    for start in range(0, n_items, size):
        batch = order[start:start + size]
        batch = batch[: len(batch) - len(batch) % world]
        if len(batch) >= max(2, world):
            batches.append(batch)
        elif batches and batch:  # too small alone: ride along with the previous batch
            batches[-1] = batches[-1] + batch
    return batches


def _rank_slice(batch: list[int], rank: int, world: int) -> list[int]:
    share = len(batch) // world
    return batch[rank * share:(rank + 1) * share]


def _loader(dataset, batches: list[list[int]], epoch: int, rank: int, world: int, workers: int):
    from torch.utils.data import DataLoader

    sampler = [[(epoch, i) for i in _rank_slice(b, rank, world)] for b in batches]
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                      persistent_workers=False, pin_memory=False)


# -- resumable state ----------------------------------------------------------------------------
class StateStore:
    """Crash-safe training state: new files first, then `state.json` replaced atomically.

    `state.json` is the commit point, so a `kill -9` at any moment leaves the previous complete
    state (or none). Optimizer tensors are read back with `weights_only=True`.
    """

    def __init__(self, folder: Path | None, fingerprint: str) -> None:
        self.folder = Path(folder) if folder else None
        self.fingerprint = fingerprint

    def load(self) -> dict | None:
        if self.folder is None or not (self.folder / "state.json").is_file():
            return None
        try:
            info = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if info.get("fingerprint") != self.fingerprint:
            return None  # a different run (data, method or settings): start fresh
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            info["model"] = load_file(str(self.folder / info["model_file"]))
            info["best"] = load_file(str(self.folder / info["best_file"])) if info.get("best_file") else None
            info["optimizer"] = torch.load(self.folder / info["optimizer_file"], weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError, SafetensorError):
            return None  # a file gone, damaged or not plain tensors: start fresh, as for state.json
        return info

    def save(self, info: dict, model_state: dict, optimizer_state: dict, best_state: dict | None,
             best_changed: bool) -> None:
        if self.folder is None or not is_writer():
            return
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        previous = self._current_files()
        info = dict(info, fingerprint=self.fingerprint, model_file=f"model-{tag}.safetensors",
                    optimizer_file=f"optimizer-{tag}.pt")
        save_file(model_state, str(self.folder / info["model_file"]))
        torch.save(optimizer_state, self.folder / info["optimizer_file"])
        if best_state is not None and (best_changed or not previous.get("best_file")):
            info["best_file"] = f"best-{tag}.safetensors"
            save_file(best_state, str(self.folder / info["best_file"]))
        elif best_state is not None:
            info["best_file"] = previous["best_file"]
        write_json_atomic(self.folder / "state.json", info, fsync_files=list(self.folder.glob(f"*-{tag}.*")))
        keep = {info["model_file"], info["optimizer_file"], info.get("best_file")}
        for path in self.folder.iterdir():
            if path.name != "state.json" and path.name not in keep:
                path.unlink(missing_ok=True)

    def _current_files(self) -> dict:
        try:
            return json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def clear(self) -> None:
        if self.folder is not None and self.folder.is_dir() and is_writer():
            for path in self.folder.iterdir():
                path.unlink(missing_ok=True)
            self.folder.rmdir()


def write_json_atomic(path: Path, data: dict, fsync_files: list[Path] = ()) -> None:
    """Flush the files `data` refers to, then write it atomically: state never names a half file."""
    for other in fsync_files:
        with open(other, "rb+") as handle:
            os.fsync(handle.fileno())
    atomic.write_json_atomic(path, data, indent=1)


# -- the loop -----------------------------------------------------------------------------------
def contrastive_train_job(
    model: torch.nn.Module,
    train_set,
    config: LoopConfig,
    device: torch.device,
    group_tokens: torch.Tensor | None = None,
    evaluate: Callable[[torch.nn.Module], float] | None = None,
    state_dir: Path | None = None,
    fingerprint: str = "",
    cancel: CancelToken | None = None,
) -> Job[LoopResult]:
    """Train both towers contrastively; yields train/val `Progress` payloads, returns `LoopResult`.

    `evaluate(model)` runs after every epoch in eval mode and returns a metric (higher is
    better) or a dict {"metric", "accuracy", "loss"}; the best epoch's weights are returned, and
    `config.patience` epochs without gain stop the run early. A non-finite loss stops the run
    with a `TrainingError`; a run that could make no optimisation step is refused up front.
    Under torchrun every rank runs this with the same arguments; rank 0 alone writes state.
    """
    rank, world = dist_info()
    if config.batch_size % world:
        raise TrainingError(f"The batch size ({config.batch_size}) must be a multiple of the {world} processes.")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise TrainingError(f"The learning rate must be a positive number (got {config.lr}).")
    model.to(device)
    if group_tokens is not None:
        group_tokens = group_tokens.to(device)
    loss_fn = make_loss()
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr,
                                  betas=(0.9, 0.98), eps=1e-6)  # CLIP's betas and eps for ViTs
    use_scaler = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    wrapped = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None)

    per_epoch = [len(epoch_batches(len(train_set), config.batch_size, e, config.seed, world))
                 for e in range(config.epochs)]
    steps_per_epoch = [math.ceil(n / config.accum_steps) for n in per_epoch]
    if sum(steps_per_epoch) == 0:
        raise TrainingError(f"{len(train_set)} training item(s) make no contrastive batch of two; "
                            "add images or lower the validation share.")
    total_steps = sum(steps_per_epoch)
    warmup = max(1, int(config.warmup_fraction * total_steps))

    store = StateStore(state_dir, fingerprint)
    result = LoopResult(state={})
    start_epoch, start_batch, step, bad_epochs = 0, 0, 0, 0
    best_state = None
    saved = store.load()
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_epoch, start_batch, step = saved["epoch"], saved["batch"], saved["step"]
        result.history, bad_epochs = saved["history"], saved["bad_epochs"]
        result.best_metric, result.best_epoch = saved["best_metric"], saved["best_epoch"]
        best_state = saved["best"]
        result.resumed_from = step
        yield Progress(step, total_steps, f"Resuming from epoch {start_epoch + 1}, step {step}",
                       unit="step", payload={"kind": "resume", "epoch": start_epoch, "step": step})

    def save(epoch: int, batch: int, best_changed: bool = False) -> None:
        info = {"epoch": epoch, "batch": batch, "step": step, "history": result.history,
                "bad_epochs": bad_epochs, "best_metric": result.best_metric,
                "best_epoch": result.best_epoch, "saved": time.time()}
        store.save(info, cpu_state(model), optimizer.state_dict(), best_state, best_changed)

    started = Progress(step, total_steps, "Training", unit="step")
    for epoch in range(start_epoch, config.epochs):
        if config.patience is not None and bad_epochs >= config.patience:
            break
        model.train()
        batches = epoch_batches(len(train_set), config.batch_size, epoch, config.seed, world)
        first = start_batch if epoch == start_epoch else 0
        loader = _loader(train_set, batches[first:], epoch, rank, world, config.num_workers)
        running = 0.0
        for index, batch in enumerate(loader, start=first):
            micro = index % config.accum_steps
            if cancel is not None and cancel.cancelled:
                save(epoch, index - micro)  # redo a half-accumulated step from its first micro-batch
                check(cancel)
            last_micro = micro == config.accum_steps - 1 or index == len(batches) - 1
            texts, inverse, groups = batch_texts(batch, group_tokens)
            images = batch["image"].to(device, non_blocking=True)
            n_micro = min(config.accum_steps, len(batches) - (index - micro))
            # Under DDP, gradients are all-reduced only on the last micro-batch of a step.
            with wrapped.no_sync() if (world > 1 and not last_micro) else _null():
                with amp_context(device):
                    loss = contrastive_loss(wrapped, loss_fn, images, texts.to(device),
                                            inverse.to(device), groups.to(device))
                if not torch.isfinite(loss.detach()):
                    raise TrainingError(f"The training loss became {float(loss.detach())} at step {step + 1}; lower the "
                                        "learning rate and train again (nothing was saved).")
                scaled = loss / n_micro
                (scaler.scale(scaled) if scaler else scaled).backward()
            running += float(loss.detach()) / n_micro
            if not last_micro:
                continue
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, config.lr, warmup)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clamp_logit_scale(model)
            step += 1
            payload = {"kind": "train", "step": step, "epoch": epoch + 1, "loss": running}
            result.history.append(payload)
            running = 0.0
            yield Progress(step, total_steps, "Training", unit="step", started=started.started,
                           payload=payload)
            if config.save_every and step % config.save_every == 0 and index + 1 < len(batches):
                save(epoch, index + 1)
        best_changed = False
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                scores = evaluate(model)
            scores = scores if isinstance(scores, dict) else {"metric": float(scores)}
            metric = float(scores["metric"])
            payload = {"kind": "val", "epoch": epoch + 1, "accuracy": scores.get("accuracy", metric)}
            if "loss" in scores:
                payload["loss"] = scores["loss"]
            result.history.append(payload)
            if result.best_metric is None or metric > result.best_metric:
                result.best_metric, result.best_epoch = metric, epoch + 1
                best_state, bad_epochs, best_changed = cpu_state(model), 0, True
            else:
                bad_epochs += 1
            yield Progress(step, total_steps, "Training", unit="step", started=started.started,
                           payload=payload)
        check_finite_state(model.state_dict(), "weights after this epoch")
        save(epoch + 1, 0, best_changed)
    model.eval()
    result.state = best_state if best_state is not None else cpu_state(model)
    check_finite_state(result.state, "trained weights")
    result.steps = step
    return result


def _null():
    import contextlib

    return contextlib.nullcontext()


def clear_state(state_dir: Path | None) -> None:
    """Remove the resumable state once the final checkpoint is safely written."""
    StateStore(state_dir, "").clear()
