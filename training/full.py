"""The full method: FLYP (Goyal et al., 2023) — fine-tune both towers like CLIP was pre-trained.

Batches of (image, class prompt) go through the contrastive loop (training.loop) with
same-class pairs masked, so a batch with repeated classes never pushes a cat photo away from
"a photo of a cat". The folder is split three ways: training images, validation images that
choose the epoch (lowest validation loss, with patience) and the WiSE-FT mix (Wortsman et al.,
2022: α from 0, the base model, to 1, fine-tuned), and test images that choose nothing and give
the reported accuracy. Tiny folders still get a minimum number of optimisation steps, and the
learning rate follows the model's size. Then quick's recipe over the embeddings of the chosen mix
and of the base model (α = 0), each fitted on the training images, is judged image by image on the
validation images; the fine-tuned mix is kept only if it wins by a clear margin, and its head is
then refitted on training + validation images (the test split gives the figure). Otherwise full
says so and keeps the base weights with quick's head and quick's honest figure over the same
images, so full never ends below quick because its head saw fewer images. The forgetting guard
compares the model's zero-shot answers on a generic label set with the base model's.
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
    numpy_state,
    parameter_count,
    stratified_split,
    train_transform,
)
from .config import FinetuneResult
from .data import (
    DataError,
    ImageDataset,
    check_dataset,
    load_training_image,
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
from .quick import honest_after, plan_evaluation
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
        return torch.stack([self.loaded.preprocess(load_training_image(p)) for p in paths])

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


def full_splits(config, summary) -> tuple[list[str], tuple, tuple, tuple, str, tuple]:
    """train (fit) / val (early stopping, α) / test (the honest figure: it chooses nothing)."""
    val_summary = verify_dataset(scan_dataset(config.val_folder)) if config.val_folder else None
    outer = split_dataset(summary, config.val_split, config.seed, val_summary)
    train_p, train_y, val_p, val_y = stratified_split(outer.train_paths, outer.train_labels, 0.2, config.seed + 1)
    how = "a separate validation folder" if val_summary else \
        f"a held-out {len(outer.val_paths)}-image split never used for training or choosing"
    return (outer.classes, (train_p, train_y), (val_p, val_y), (outer.val_paths, outer.val_labels), how,
            (outer.train_paths, outer.train_labels))


def _features(loaded, model, paths, labels, classes, config, device) -> np.ndarray:
    return Validator(loaded, paths, labels, classes, config.templates, device).features(model).numpy()


def _context(loaded, model, classes, config, device) -> probe.Context:
    text = class_weights(model, loaded, classes, config.templates, device).numpy()
    return probe.Context(classes, text, float(model.logit_scale.detach().exp()), seed=config.seed)


def _without_payload(job: Job):
    """Re-yield a sub-job's progress without its payloads (full's live plot shows training epochs)."""
    import dataclasses

    while True:
        try:
            progress = next(job)
        except StopIteration as stop:
            return stop.value
        yield dataclasses.replace(progress, payload=None)


def tuned_beats_base(loaded, model, base: dict, tuned: dict, alpha: float, splits, classes, config,
                     device) -> tuple[bool, dict]:
    """Quick's recipe over the embeddings of the WiSE-FT mix and of the base model, each fitted on
    the training images and judged image by image on the validation images: the mix is kept only
    if it answers them better by more than probe.MARGIN and one standard error (paired), so
    weights that learnt a tiny folder by heart never replace the base model by luck."""
    (train_p, train_y), (val_p, val_y) = splits
    right = {}
    for a in sorted({0.0, alpha}):
        model.load_state_dict(wise_mix(base, tuned, a))
        model.eval()
        x = _features(loaded, model, train_p, train_y, classes, config, device)
        _, head, _ = probe.select_and_fit(x, np.asarray(train_y, np.int64), _context(loaded, model, classes,
                                                                                       config, device))
        pred = head.predict(_features(loaded, model, val_p, val_y, classes, config, device))
        right[a] = (pred == np.asarray(val_y)).astype(np.float64)
    diff = right[alpha] - right[0.0]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 1.0
    keep = alpha > 0 and float(diff.mean()) > max(probe.MARGIN, se)
    return keep, {"val_accuracy_tuned": float(right[alpha].mean()), "val_accuracy_base": float(right[0.0].mean()),
                  "val_images": len(val_y), "kept": "fine-tuned mix" if keep else "base weights"}


def full_job(config, cancel: CancelToken | None = None):
    """scan → split → FLYP training (resumable) → WiSE-FT sweep → model folder + honest report."""
    device_name = init_distributed(config.device)
    summary = scan_dataset(config.folder)
    check_dataset(summary, config.min_per_class)
    summary = yield from verify_job(summary, cancel)  # training never meets an unreadable file
    check_dataset(summary, config.min_per_class)  # again: corrupt files may leave a class too small
    classes, (train_p, train_y), (val_p, val_y), (test_p, test_y), how, outer_train = full_splits(config, summary)
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
    keep, decision = tuned_beats_base(loaded, model, base_state, loop.state, alpha,
                                      ((train_p, train_y), (val_p, val_y)), classes, config, device)
    alpha = alpha if keep else 0.0
    if not keep:
        warnings.append(f"the fine-tuned weights did not beat the base model's on the {len(val_p)} validation "
                        "images; the base weights are kept (the result equals quick's).")
    final_state = wise_mix(base_state, loop.state, alpha)
    model.load_state_dict(final_state)
    model.eval()
    ctx = _context(loaded, model, classes, config, device)
    if not keep and plan_evaluation(summary.total, config.val_split, config.val_folder) == "nested":
        # The base weights stay: the head and the honest figure are quick's, over the same images.
        eval_p, eval_y = outer_train[0] + test_p, outer_train[1] + test_y
        evaluator = Validator(loaded, eval_p, eval_y, classes, config.templates, device)
        x_all, y_all = evaluator.features(model).numpy(), np.asarray(eval_y, np.int64)
        true, pred, how, _ = yield from _without_payload(honest_after(x_all, y_all, ctx, "nested", cancel=cancel))
        head_name, head, _ = probe.select_and_fit(x_all, y_all, ctx)
        before = after = evaluator.evaluate(model)
    else:  # the head sees every image but the test split (train + validation)
        fit_p, fit_y = train_p + val_p, train_y + val_y
        x_fit = _features(loaded, model, fit_p, fit_y, classes, config, device)
        head_name, head, _ = probe.select_and_fit(x_fit, np.asarray(fit_y, np.int64), ctx)
        eval_p, eval_y, after = test_p, test_y, tester.evaluate(model)
        true, pred = test_y, head.predict(tester.features(model).numpy())
    record = evaluation_record(true, pred, how)
    after = dict(after, pred=np.atleast_2d(pred)[0], accuracy=record["accuracy"])
    record["candidate"] = head_name
    record.update(selected_on=f"{len(val_p)} validation images (best epoch by loss, WiSE-FT α, and whether "
                  f"the fine-tuned weights beat the base model's: {decision['kept']} kept)",
                  train_images=len(train_p), weights_kept=decision)
    confusion = confusion_matrix(eval_y, after["pred"], len(classes))
    before_confusion = confusion_matrix(eval_y, before["pred"], len(classes))
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
            "train_images": len(train_p), "val_images": len(val_p), "test_images": len(test_p), "kept": decision,
            "warnings": warnings,
        }
        write_model_folder(out, metadata, weights=numpy_state(final_state), head=head.tensors())
        png = write_confusion_png(out / "confusion.png", classes, confusion)
        clear_state(out / STATE_DIR)
        loaded.metadata, loaded.pretrained, loaded.head = metadata, str(out), head
    return FinetuneResult(
        model_dir=out, classes=classes, accuracy_before=before["accuracy"],
        accuracy_after=after["accuracy"], per_class=per_class_accuracy(classes, confusion),
        confusion=confusion, val_paths=list(eval_p), val_true=list(eval_y),
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
