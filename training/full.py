"""The full method: FLYP (Goyal et al., 2023) — fine-tune both towers like CLIP was pre-trained.

Batches of (image, class prompt) go through the contrastive loop (training.loop) with
same-class pairs masked, so a batch with repeated classes never pushes a cat photo away from
"a photo of a cat". The folder is split three ways: training images, validation images that
choose the epoch (lowest validation loss, with patience) and the WiSE-FT mix (Wortsman et al.,
2022: α from 0, the base model, to 1, fine-tuned), and test images that choose nothing and give
the reported accuracy. Tiny folders still get a minimum number of optimisation steps, and the
learning rate follows the model's size. Over the final embeddings, quick's candidates (the
fine-tuned text classifier, a logistic regression, …) are compared by cross-validation and the
winner is saved as a head beside the weights; the same is tried over the base model's
embeddings (α = 0), and the validation images keep whichever of the two answers them better. The forgetting guard compares the model's zero-shot
answers on a generic label set with the base model's, over the test images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipdesk.core.heads import head_metadata
from clipdesk.core.jobs import CancelToken, Job, Progress
from clipdesk.core.models import load_model_job

from . import probe
from .checkpoint import STATE_DIR, base_metadata, output_dir, portable_reference, write_model_folder
from .common import (
    GENERIC_LABELS,
    class_prompts,
    class_weights,
    default_full_lr,
    fingerprint,
    parameter_count,
    stratified_split,
    train_transform,
)
from .data import (
    DataError,
    ImageDataset,
    _load_or_blank,
    check_dataset,
    scan_dataset,
    split_dataset,
    verify_dataset,
    verify_job,
)
from .loop import (
    LoopConfig,
    TrainingError,
    amp_context,
    check_finite_state,
    clear_state,
    contrastive_train_job,
    cpu_state,
    dist_info,
    init_distributed,
    is_writer,
    loss_trend,
)
from .report import confusion_matrix, evaluation_record, per_class_accuracy, write_confusion_png

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

    def early_stopping(self, model) -> dict:
        """The loop's per-epoch score: minus the validation loss (smoother than accuracy on a few images)."""
        result = self.evaluate(model, generic=False)
        return {"metric": -result["loss"], "accuracy": result["accuracy"], "loss": result["loss"]}


MIN_STEPS = 150  # optimisation steps a default run makes at least, however small the folder
MIN_PATIENCE_STEPS = 40  # early stopping waits at least this many steps without a better loss


def plan_loop(config, n_train: int, world: int, n_parameters: int) -> LoopConfig:
    """Defaults that fit the data and the model: enough steps for tiny folders (a minimum number
    of steps, not epochs), patience in steps, the learning rate by model size."""
    batch = max(2 * world, min(config.batch_size, n_train - n_train % world))
    batch -= batch % world
    steps_per_epoch = max(1, -(-n_train // batch) // max(1, config.accum_steps))
    epochs = config.epochs or max(config.resolved_epochs, -(-MIN_STEPS // steps_per_epoch))
    patience = config.patience
    if patience is not None:
        patience = max(patience, -(-MIN_PATIENCE_STEPS // steps_per_epoch))
    lr = float(config.lr) if config.lr is not None else default_full_lr(n_parameters)
    return LoopConfig(epochs=epochs, lr=lr, batch_size=batch, accum_steps=config.accum_steps, seed=config.seed,
                      patience=patience, num_workers=config.resolved_workers(n_train))


def full_splits(config, summary) -> tuple[list[str], tuple, tuple, tuple, str]:
    """train (fit) / val (early stopping, α) / test (the honest figure: it chooses nothing)."""
    val_summary = verify_dataset(scan_dataset(config.val_folder)) if config.val_folder else None
    outer = split_dataset(summary, config.val_split, config.seed, val_summary)
    train_p, train_y, val_p, val_y = stratified_split(outer.train_paths, outer.train_labels, 0.2, config.seed + 1)
    how = "a separate validation folder" if val_summary else \
        f"a held-out {len(outer.val_paths)}-image split never used for training or choosing"
    return outer.classes, (train_p, train_y), (val_p, val_y), (outer.val_paths, outer.val_labels), how


def _head_on(loaded, model, paths, labels, classes, config, device) -> tuple[str, object]:
    features = Validator(loaded, paths, labels, classes, config.templates, device).features(model).numpy()
    text = class_weights(model, loaded, classes, config.templates, device).numpy()
    ctx = probe.Context(classes, text, float(model.logit_scale.detach().exp()), seed=config.seed)
    name, head, _ = probe.select_and_fit(features, np.asarray(labels, np.int64), ctx)
    return name, head


def choose_mix_and_head(loaded, model, base: dict, tuned: dict, alpha: float, splits, classes, config,
                        device) -> tuple[float, str, object]:
    """Quick's candidates over the embeddings of the WiSE-FT mix and of the base model (α = 0), each
    chosen by cross-validation on the training images and judged on the validation images; the
    better pair is refitted on both. Fine-tuning then never ends below a probe on the base model's
    features because it learnt the training images by heart (tiny folders)."""
    (train_p, train_y), (val_p, val_y) = splits
    results = []
    for a in sorted({0.0, alpha}, reverse=True):
        model.load_state_dict(wise_mix(base, tuned, a))
        model.eval()
        _, head = _head_on(loaded, model, train_p, train_y, classes, config, device)
        features = Validator(loaded, val_p, val_y, classes, config.templates, device).features(model).numpy()
        correct, loss = probe.score(head, features, np.asarray(val_y, np.int64))
        results.append(((correct, -loss), a))
    chosen = max(results)[1]
    model.load_state_dict(wise_mix(base, tuned, chosen))
    model.eval()
    name, head = _head_on(loaded, model, train_p + val_p, train_y + val_y, classes, config, device)
    return chosen, name, head


def full_job(config, cancel: CancelToken | None = None):
    """scan → split → FLYP training (resumable) → WiSE-FT sweep → model folder + honest report."""
    from .api import FinetuneResult

    device_name = init_distributed(config.device)
    summary = scan_dataset(config.folder)
    check_dataset(summary, config.min_per_class)
    summary = yield from verify_job(summary, cancel)  # training never meets an unreadable file
    check_dataset(summary, config.min_per_class)  # again: corrupt files may leave a class too small
    classes, (train_p, train_y), (val_p, val_y), (test_p, test_y), how = full_splits(config, summary)
    _, world = dist_info()
    if len(train_p) < 2 * world:
        raise DataError(f"Too few training images ({len(train_p)}) for contrastive fine-tuning.")
    loaded = yield from load_model_job(config.arch, config.pretrained, device_name, cancel)
    model, device = loaded.model, loaded.device
    base_state = cpu_state(model)
    out = output_dir(Path(config.folder), "full", config.out, config.name, config.overwrite)

    yield Progress(0, None, "Measuring the zero-shot baseline")
    validator = Validator(loaded, val_p, val_y, classes, config.templates, device)
    tester = Validator(loaded, test_p, test_y, classes, config.templates, device)
    before = tester.evaluate(model.eval())
    group_tokens = loaded.tokenizer(class_prompts(classes, config.templates))
    dataset = ImageDataset(train_p, train_y, train_transform(loaded), seed=config.seed)
    loop_config = plan_loop(config, len(dataset), world, parameter_count(model))
    run_id = fingerprint(method="full", arch=config.arch, pretrained=config.pretrained, train=train_p, val=val_p,
                         classes=classes, config=loop_config.__dict__, templates=config.templates, world=world)
    if not config.resume:
        clear_state(out / STATE_DIR)
    loop = yield from contrastive_train_job(
        model, dataset, loop_config, device, group_tokens=group_tokens, evaluate=validator.early_stopping,
        state_dir=out / STATE_DIR, fingerprint=run_id, cancel=cancel)
    if loop.steps == 0:
        raise TrainingError("No optimisation step was made; nothing to save.")
    warnings = [w for w in [loss_trend(loop.history)] if w]

    alpha, _, sweep = yield from wise_ft_sweep(model, validator, base_state, loop.state, cancel)
    check_finite_state(loop.state, "fine-tuned weights")
    yield Progress(0, None, "Choosing a head over the fine-tuned embeddings")
    alpha, head_name, head = choose_mix_and_head(loaded, model, base_state, loop.state, alpha,
                                                 ((train_p, train_y), (val_p, val_y)), classes, config, device)
    final_state = wise_mix(base_state, loop.state, alpha)
    after = tester.evaluate(model)
    after["pred"] = head.predict(tester.features(model).numpy())
    after["accuracy"] = float(np.mean(after["pred"] == np.asarray(test_y)))
    record = evaluation_record(test_y, after["pred"], how)
    record["candidate"] = head_name
    record.update(selected_on=f"{len(val_p)} validation images (best epoch by loss, WiSE-FT α)",
                  train_images=len(train_p))
    confusion = confusion_matrix(test_y, after["pred"], len(classes))
    before_confusion = confusion_matrix(test_y, before["pred"], len(classes))
    forgetting = {"generic_agreement": float(np.mean(after["generic"] == before["generic"])),
                  "generic_labels": len(GENERIC_LABELS)}
    png = None
    if is_writer():
        metadata = base_metadata(config.arch, portable_reference(config.pretrained), "full", classes,
                                 config.templates)
        metadata["alpha"] = alpha
        metadata["head"] = dict(head_metadata(head), candidate=head_name)
        metadata["validation"] = {
            "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "evaluation": record, "wise_ft": sweep, "per_class": per_class_accuracy(classes, confusion),
            "forgetting": forgetting, "best_epoch": loop.best_epoch, "steps": loop.steps, "lr": loop_config.lr,
            "train_images": len(train_p), "val_images": len(val_p), "test_images": len(test_p),
            "warnings": warnings,
        }
        write_model_folder(out, metadata, weights=final_state, head=head.tensors())
        png = write_confusion_png(out / "confusion.png", classes, confusion)
        clear_state(out / STATE_DIR)
        loaded.metadata, loaded.pretrained, loaded.head = metadata, str(out), head
    return FinetuneResult(
        model_dir=out, classes=classes, accuracy_before=before["accuracy"],
        accuracy_after=after["accuracy"], per_class=per_class_accuracy(classes, confusion),
        confusion=confusion, val_paths=list(test_p), val_true=list(test_y),
        val_pred=after["pred"].tolist(), method="full",
        per_class_before=per_class_accuracy(classes, before_confusion), confusion_png=png,
        alpha=alpha, forgetting=forgetting, history=loop.history, skipped=list(summary.skipped),
        resumed_from=loop.resumed_from, evaluation=record, warnings=warnings, loaded=loaded,
        fine_tuned_state=loop.state,
    )


def wise_ft_sweep(model, validator: Validator, base: dict, tuned: dict,
                  cancel: CancelToken | None) -> Job[tuple[float, dict, list[dict]]]:
    """Validation loss and accuracy for each α; the lowest loss wins (ties: accuracy, then less α)."""
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
    # Loss first: on a few validation images accuracy ties often; the loss tells mixes apart.
    best = min(ALPHAS, key=lambda a: (round(results[a]["loss"], 4), -results[a]["accuracy"], a))
    return best, results[best], sweep
