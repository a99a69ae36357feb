"""Few-shot head candidates over frozen embeddings, and choosing among them by cross-validation.

Each *family* fits on (features, labels) and returns named heads; every family returns the same
names on every fold, so a candidate's cross-validated accuracy is the pooled accuracy of the
same recipe refitted on each fold. Families: the zero-shot text classifier, class-mean
prototypes, a logistic regression on standardised features (training.logistic: numpy, a grid of
strengths C) folded into a linear head, and training-free Tip-Adapter (a cache of the training embeddings on
top of zero-shot; large β ≈ nearest neighbour) over an α × β grid.

Choosing: by cross-validated accuracy (ties: lower cross-entropy), within a family and across
families, keeping the logistic regression unless another family beats it by
more than one standard error: with dozens of images, picking the luckiest of many candidates
is how a head that validated at 78 % tests at 51 %.

`nested_predictions` is the honest estimate: every image is predicted by a head whose kind and
settings were chosen without it (inner cross-validation on the other folds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from clipdesk.core.heads import Head, LinearHead, TipAdapterHead

from .logistic import Logistic, Standardiser, fit_logistic, stratified_folds
from .threads import single_thread

MAX_FOLDS = 5
OUTER_FOLDS = 10  # the honest estimate trains on 90 %: less pessimistic than 5 folds on tiny sets
LR_STRENGTHS = tuple(float(c) for c in np.logspace(-3, 1, 5))  # C: inverse L2 strength
PROBE_REPEATS = 3  # repeated 5-fold when the probe chooses its C
SELECT_REPEATS = 3  # repeated k-fold when choosing: one split's luck decides less
MARGIN = 0.02  # another family replaces the probe only if it beats it by > 2 points and > 1 SE
TIP_ALPHA = (1.0, 3.0, 10.0)  # Tip-Adapter's residual ratio
TIP_BETA = (5.5, 20.0)  # sharpness of the cache affinities (large: nearest neighbour)
PREFERRED = "logistic regression"  # the family kept unless clearly beaten
ABSENT = -1e4  # logit of a class a fold never saw in training


@dataclass
class Context:
    """What every family needs besides the data."""

    classes: list[str]
    zero_shot: np.ndarray  # [C, D] normalised text classifier
    scale: float  # the model's logit scale
    steps: int = 200  # optimiser steps of the gradient-fitted families
    lr: float = 1e-3
    seed: int = 0


Family = Callable[[np.ndarray, np.ndarray, Context], list[tuple[str, Head]]]


# -- families --------------------------------------------------------------------------------------
def zero_shot_family(x, y, ctx: Context) -> list[tuple[str, Head]]:
    n = len(ctx.classes)
    return [("zero-shot", LinearHead(ctx.classes, ctx.zero_shot, np.zeros(n, np.float32), ctx.scale))]


def prototype_family(x, y, ctx: Context) -> list[tuple[str, Head]]:
    """Nearest class mean (cosine); a class without images keeps its text embedding."""
    means = ctx.zero_shot.copy()
    for c in np.unique(y):
        mean = x[y == c].mean(0)
        means[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return [("class means", LinearHead(ctx.classes, means, np.zeros(len(ctx.classes), np.float32), ctx.scale))]


def fold_standardised_logistic(mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                               present: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A logistic regression on (x − μ)/σ as a linear head on x: W' = W/σ, b' = b − W·(μ/σ).

    Binary models keep one row z (scikit-learn's layout); softmax([−z/2, z/2]) equals its [1 − σ(z), σ(z)].
    Classes the model never saw get weight 0 and a very low bias.
    """
    coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
    if coef.shape[0] == 1 and len(present) == 2:
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((n_classes, coef.shape[1]))
    bias = np.full(n_classes, ABSENT, dtype=np.float64)
    weight[present] = coef / std
    bias[present] = intercept - (coef / std) @ mean
    return weight.astype(np.float32), bias.astype(np.float32)


def probe_folds(x: np.ndarray, y: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probe's own repeated stratified folds for choosing C, the same for the same images in
    any order (empty when a class has a single image)."""
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if len(counts) < 2 or counts.min() < 2:
        return []
    order = np.lexsort((np.round(x.sum(1), 4), y))  # a canonical order: the caller's order is no choice
    return [(order[train], order[test]) for r in range(PROBE_REPEATS)
            for train, test in folds(y[order], seed + 7919 * r, MAX_FOLDS)]


def _fit_scaled(z, y, strengths) -> list[tuple[float, Logistic]]:
    """One logistic regression per strength C (increasing), each warm-started from the last."""
    fitted, model = [], None
    for strength in strengths:
        model = fit_logistic(z, y, strength, warm=model)
        fitted.append((strength, model))
    return fitted


def choose_strength(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """C by repeated stratified cross-validation over LR_STRENGTHS (accuracy; ties: log-loss, then
    smaller C): on a flat landscape one 5-fold split's luck picks anything from 0.1 to 100."""
    splits = probe_folds(x, y, seed)
    if not splits:
        return 1.0
    correct, loss = np.zeros(len(LR_STRENGTHS)), np.zeros(len(LR_STRENGTHS))
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            continue
        scaler = Standardiser.fit(x[train])
        z_test = scaler.transform(x[test])
        for i, (_, model) in enumerate(_fit_scaled(scaler.transform(x[train]), y[train], LR_STRENGTHS)):
            proba = np.full((len(test), y.max() + 1), 1e-12)
            proba[:, model.classes_] = np.maximum(model.predict_proba(z_test), 1e-12)
            correct[i] += (proba.argmax(1) == y[test]).sum()
            loss[i] -= np.log(proba[np.arange(len(test)), y[test]]).sum()
    best = min(range(len(LR_STRENGTHS)), key=lambda i: (-correct[i], round(loss[i], 6), i))
    return LR_STRENGTHS[best]


def fit_probe(x: np.ndarray, y: np.ndarray, classes: list[str], seed: int = 0) -> tuple[LinearHead, float]:
    """THE linear probe (quick's logistic-regression candidate and the benchmark's "probe" row):
    standardised features, L2 strength C chosen by stratified cross-validation, then refitted on
    all the images, folded into a linear head. Returns (head, C)."""
    x = np.ascontiguousarray(x, np.float64)
    y = np.asarray(y, np.int64)
    order = np.lexsort((np.round(x.sum(1), 4), y))  # the same images in any order: the same fit
    x, y = x[order], y[order]
    with single_thread():
        strength = choose_strength(x, y, seed)
        scaler = Standardiser.fit(x)
        _, model = _fit_scaled(scaler.transform(x), y, [strength])[0]
    weight, bias = fold_standardised_logistic(scaler.mean_, scaler.scale_, model.coef_, model.intercept_,
                                              model.classes_, len(classes))
    return LinearHead(classes, weight, bias, 1.0), strength


def logistic_family(x, y, ctx: Context) -> list[tuple[str, Head]]:
    """The linear probe (fit_probe: its strength C chosen by its own inner cross-validation)."""
    if len(np.unique(y)) < 2:  # a degenerate fold: keep the name, answer zero-shot
        return [(PREFERRED, zero_shot_family(x, y, ctx)[0][1])]
    head, _ = fit_probe(x, y, ctx.classes, ctx.seed)
    return [(PREFERRED, head)]


def tip_family(x, y, ctx: Context) -> list[tuple[str, Head]]:
    values = np.eye(len(ctx.classes), dtype=np.float32)[y]
    return [(f"Tip-Adapter (α={alpha:g}, β={beta:g})",
             TipAdapterHead(ctx.classes, ctx.zero_shot, x, values, alpha, beta, ctx.scale))
            for alpha in TIP_ALPHA for beta in TIP_BETA]


FAMILIES: tuple[Family, ...] = (zero_shot_family, prototype_family, logistic_family, tip_family)


def fit_all(x, y, ctx: Context, families=FAMILIES) -> dict[str, Head]:
    x = np.ascontiguousarray(x, np.float32)
    y = np.asarray(y, np.int64)
    with single_thread():
        return {name: head for family in families for name, head in family(x, y, ctx)}


# -- cross-validation ------------------------------------------------------------------------------
def folds(y: np.ndarray, seed: int, max_folds: int = MAX_FOLDS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded folds: as many as the rarest class allows (2 to `max_folds`); a class
    rarer than that misses some folds, which the families handle."""
    counts = np.bincount(y)
    k = int(np.clip(counts[counts > 0].min(), 2, max_folds)) if len(y) >= 2 else 2
    yield from stratified_folds(y, min(k, len(y)), seed)


def score(head: Head, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """(correct answers, summed cross-entropy) of a head on labelled features."""
    logits = head.logits(x).astype(np.float64)
    logits -= logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return int((logits.argmax(1) == y).sum()), float(-log_probs[np.arange(len(y)), y].sum())


def cv_records(x, y, ctx: Context, families=FAMILIES, repeats: int = 1) -> dict[str, np.ndarray]:
    """Per candidate, per image: [share of repeats it was answered right, mean cross-entropy], out of fold."""
    records: dict[str, np.ndarray] = {}
    for r in range(repeats):
        for train, test in folds(y, ctx.seed + 1000 * r):
            for name, head in fit_all(x[train], y[train], ctx, families).items():
                logits = head.logits(x[test]).astype(np.float64)
                logits -= logits.max(1, keepdims=True)
                log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
                entry = records.setdefault(name, np.zeros((len(y), 2)))
                entry[test, 0] += (logits.argmax(1) == y[test]) / repeats
                entry[test, 1] -= log_probs[np.arange(len(test)), y[test]] / repeats
    return records


def cross_validate(x, y, ctx: Context, families=FAMILIES, repeats: int = 1) -> dict[str, tuple[float, float]]:
    """Every candidate's pooled cross-validated (accuracy, mean cross-entropy)."""
    return {name: (float(r[:, 0].mean()), float(r[:, 1].mean()))
            for name, r in cv_records(x, y, ctx, families, repeats).items()}


def family_of(name: str) -> str:
    return name.split(" (")[0]


def choose(records: dict[str, np.ndarray]) -> str:
    """Per family the best cross-validated accuracy (ties: lower cross-entropy), then across
    families; but the probe stays unless the winner beats it, image by image (paired), by more
    than MARGIN and more than one standard error of the difference."""
    def key(name: str) -> tuple[float, float]:
        return float(records[name][:, 0].mean()), -float(records[name][:, 1].mean())

    best_of: dict[str, str] = {}
    for name in records:
        family = family_of(name)
        if family not in best_of or key(name) > key(best_of[family]):
            best_of[family] = name
    winner = max(best_of.values(), key=key)
    preferred = best_of.get(PREFERRED)
    if preferred is None or winner == preferred:
        return winner
    diff = records[winner][:, 0] - records[preferred][:, 0]
    standard_error = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 1.0
    return winner if diff.mean() > max(MARGIN, standard_error) else preferred


def select_and_fit(x, y, ctx: Context, families=FAMILIES, repeats: int = SELECT_REPEATS) -> tuple[str, Head, dict]:
    """Choose by repeated cross-validation on (x, y), then refit the winner on all of it (the probe
    is then exactly fit_probe(x, y))."""
    records = cv_records(x, y, ctx, families, repeats)
    scores = {n: (float(r[:, 0].mean()), float(r[:, 1].mean())) for n, r in records.items()}
    name = choose(records)
    if name == PREFERRED and len(np.unique(y)) >= 2:
        head, strength = fit_probe(x, y, ctx.classes, ctx.seed)
        name = f"{PREFERRED} (C={strength:.3g})"
        scores[name] = scores[PREFERRED]
    else:
        head = fit_all(x, y, ctx, families)[name]
    return name, head, scores


def outer_splits(y: np.ndarray, seed: int, repeats: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(repeat, train, held out) of repeated stratified k-fold (k = OUTER_FOLDS: each model sees 90 %)."""
    return [(r, train, test) for r in range(repeats) for train, test in folds(y, seed + 1 + 7919 * r, OUTER_FOLDS)]


def nested_predictions(x, y, ctx: Context, families=FAMILIES, repeats: int = 1,
                       on_fold: Callable[[int, int, str, float], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold predictions of the whole recipe (selection included), one row per repeat:
    every answer comes from a head whose kind and settings were chosen without that image."""
    splits = outer_splits(y, ctx.seed, repeats)
    pred = np.zeros((repeats, len(y)), np.int64)
    chosen = []
    for index, (r, train, test) in enumerate(splits):
        name, head, _ = select_and_fit(x[train], y[train], ctx, families, repeats=1)
        pred[r, test] = head.predict(x[test])
        chosen.append(name)
        if on_fold is not None:
            on_fold(index + 1, len(splits), name, float(np.mean(pred[r, test] == y[test])))
    return pred, chosen
