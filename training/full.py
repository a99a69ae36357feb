"""The full method: FLYP (Goyal et al., 2023) — fine-tune both towers like CLIP was pre-trained.

Batches of (image, class prompt) go through the contrastive loop (training.loop) with
same-class pairs masked, so a batch with repeated classes never pushes a cat photo away from
"a photo of a cat". The best validation epoch is then mixed with the starting weights
(WiSE-FT, Wortsman et al., 2022): α from 0 (the base model) to 1 (fine-tuned) in steps of 0.1,
picked on validation accuracy. The forgetting guard compares the model's zero-shot answers on a
generic label set with the base model's, over the validation images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipdesk.core.jobs import CancelToken, Job, Progress
from clipdesk.core.models import load_model_job

from .checkpoint import STATE_DIR, base_metadata, output_dir, portable_reference, write_model_folder
from .common import GENERIC_LABELS, class_prompts, class_weights, fingerprint, train_transform
from .data import (
    DataError,
    ImageDataset,
    _load_or_blank,
    check_dataset,
    scan_dataset,
    split_dataset,
)
from .loop import (
    LoopConfig,
    amp_context,
    clear_state,
    contrastive_train_job,
    cpu_state,
    dist_info,
    init_distributed,
    is_writer,
)
from .report import confusion_matrix, per_class_accuracy, write_confusion_png

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))


def wise_mix(base: dict, tuned: dict, alpha: float) -> dict:
    """(1 − α)·θ_base + α·θ_tuned for float tensors; other buffers come from the tuned model."""
    return {k: ((1 - alpha) * base[k] + alpha * v) if v.is_floating_point() else v
            for k, v in tuned.items()}


class Validator:
    """Validation images, preprocessed once when they fit in memory; accuracy/loss under any weights."""

    KEEP_DECODED = 1024  # beyond this many images, decode again per evaluation (memory over time)

    def __init__(self, loaded, paths: list[Path], labels: list[int], classes: list[str],
                 templates: str, device) -> None:
        self.loaded, self.classes, self.templates, self.device = loaded, classes, templates, device
        self.paths = list(paths)
        self.labels = torch.tensor(labels)
        self.images = self._decode(self.paths) if len(self.paths) <= self.KEEP_DECODED else None

    def _decode(self, paths) -> torch.Tensor:
        return torch.stack([self.loaded.preprocess(_load_or_blank(p)) for p in paths])

    @torch.no_grad()
    def features(self, model) -> torch.Tensor:
        out = []
        for start in range(0, len(self.paths), 64):
            images = self.images[start:start + 64] if self.images is not None else \
                self._decode(self.paths[start:start + 64])
            with amp_context(self.device):
                batch = model.encode_image(images.to(self.device), normalize=True)
            out.append(batch.float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def evaluate(self, model, generic: bool = True) -> dict:
        """Accuracy, loss and predictions on the user's classes (and on generic labels if asked)."""
        features = self.features(model)
        weights = class_weights(model, self.loaded, self.classes, self.templates, self.device)
        logits = float(model.logit_scale.exp()) * features @ weights.T
        pred = logits.argmax(1)
        result = {"accuracy": float((pred == self.labels).float().mean()),
                  "loss": float(F.cross_entropy(logits, self.labels)), "pred": pred.numpy()}
        if generic:
            labels = class_weights(model, self.loaded, GENERIC_LABELS, self.templates, self.device)
            result["generic"] = (features @ labels.T).argmax(1).numpy()
        return result


def full_job(config, cancel: CancelToken | None = None):
    """scan → split → FLYP training (resumable) → WiSE-FT sweep → model folder + report."""
    from .api import FinetuneResult

    device_name = init_distributed(config.device)
    summary = scan_dataset(config.folder)
    check_dataset(summary, config.min_per_class)
    val_summary = scan_dataset(config.val_folder) if config.val_folder else None
    split = split_dataset(summary, config.val_split, config.seed, val_summary)
    classes = split.classes
    _, world = dist_info()
    if len(split.train_paths) < 2 * world:
        raise DataError(f"Too few training images ({len(split.train_paths)}) for contrastive fine-tuning.")
    loaded = yield from load_model_job(config.arch, config.pretrained, device_name, cancel)
    model, device = loaded.model, loaded.device
    base_state = cpu_state(model)
    out = output_dir(Path(config.folder), "full", config.out, config.name)

    yield Progress(0, None, "Measuring the zero-shot baseline")
    validator = Validator(loaded, split.val_paths, split.val_labels, classes, config.templates, device)
    before = validator.evaluate(model.eval())
    group_tokens = loaded.tokenizer(class_prompts(classes, config.templates))
    dataset = ImageDataset(split.train_paths, split.train_labels, train_transform(loaded), seed=config.seed)
    batch = min(config.batch_size, len(dataset) - len(dataset) % world)
    batch -= batch % world
    loop_config = LoopConfig(epochs=config.resolved_epochs, lr=config.resolved_lr, batch_size=batch,
                             accum_steps=config.accum_steps, seed=config.seed, patience=config.patience,
                             num_workers=config.resolved_workers(len(dataset)))
    run_id = fingerprint(method="full", arch=config.arch, pretrained=config.pretrained,
                         train=split.train_paths, val=split.val_paths, classes=classes,
                         config=loop_config.__dict__, templates=config.templates, world=world)
    if not config.resume:
        clear_state(out / STATE_DIR)
    loop = yield from contrastive_train_job(
        model, dataset, loop_config, device, group_tokens=group_tokens,
        evaluate=lambda m: validator.evaluate(m, generic=False)["accuracy"], state_dir=out / STATE_DIR,
        fingerprint=run_id, cancel=cancel)

    alpha, after, sweep = yield from wise_ft_sweep(model, validator, base_state, loop.state, cancel)
    final_state = wise_mix(base_state, loop.state, alpha)
    model.load_state_dict(final_state)
    model.eval()
    true = split.val_labels
    confusion = confusion_matrix(true, after["pred"], len(classes))
    before_confusion = confusion_matrix(true, before["pred"], len(classes))
    forgetting = {"generic_agreement": float(np.mean(after["generic"] == before["generic"])),
                  "generic_labels": len(GENERIC_LABELS)}
    png = None
    if is_writer():
        metadata = base_metadata(config.arch, portable_reference(config.pretrained), "full", classes,
                                 config.templates)
        metadata["alpha"] = alpha
        metadata["validation"] = {
            "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "accuracy_fine_tuned": sweep[-1]["accuracy"], "wise_ft": sweep,
            "per_class": per_class_accuracy(classes, confusion), "forgetting": forgetting,
            "best_epoch": loop.best_epoch, "steps": loop.steps,
            "train_images": len(split.train_paths), "val_images": len(split.val_paths),
        }
        write_model_folder(out, metadata, weights=final_state)
        png = write_confusion_png(out / "confusion.png", classes, confusion)
        clear_state(out / STATE_DIR)
        loaded.metadata, loaded.pretrained = metadata, str(out)
    return FinetuneResult(
        model_dir=out, classes=classes, accuracy_before=before["accuracy"],
        accuracy_after=after["accuracy"], per_class=per_class_accuracy(classes, confusion),
        confusion=confusion, val_paths=list(split.val_paths), val_true=list(true),
        val_pred=after["pred"].tolist(), method="full",
        per_class_before=per_class_accuracy(classes, before_confusion), confusion_png=png,
        alpha=alpha, forgetting=forgetting, history=loop.history, skipped=list(summary.skipped),
        resumed_from=loop.resumed_from, loaded=loaded,
    )


def wise_ft_sweep(model, validator: Validator, base: dict, tuned: dict,
                  cancel: CancelToken | None) -> Job[tuple[float, dict, list[dict]]]:
    """Validation accuracy for each α; the best wins (ties: lower validation loss)."""
    from clipdesk.core.jobs import check

    results, sweep = {}, []
    reference = None
    for n, alpha in enumerate(ALPHAS):
        check(cancel)
        model.load_state_dict(wise_mix(base, tuned, alpha))
        model.eval()
        results[alpha] = validator.evaluate(model)
        reference = results[alpha]["generic"] if reference is None else reference  # α=0: the base
        sweep.append({"alpha": alpha, "accuracy": results[alpha]["accuracy"], "loss": results[alpha]["loss"],
                      "generic_agreement": float(np.mean(results[alpha]["generic"] == reference))})
        yield Progress(n + 1, len(ALPHAS), "WiSE-FT: choosing the weight mix", unit="α",
                       payload={"kind": "wise", "alpha": alpha, "accuracy": results[alpha]["accuracy"]})
    best = max(ALPHAS, key=lambda a: (results[a]["accuracy"], -results[a]["loss"]))
    return best, results[best], sweep
