"""Few-shot head candidates over frozen embeddings, and choosing among them by cross-validation.

Each *family* fits on (features, labels) and returns named heads; every family returns the same
names on every fold, so a candidate's cross-validated accuracy is the pooled accuracy of the
same recipe refitted on each fold. Families: the zero-shot text classifier, class-mean
prototypes, a logistic regression on standardised features (scikit-learn, a grid of strengths C)
folded into a linear head, and training-free Tip-Adapter (a cache of the training embeddings on
top of zero-shot; large β ≈ nearest neighbour) over an α × β grid.

Choosing: by cross-validated accuracy (ties: lower cross-entropy), within a family and across
families, keeping the logistic regression unless another family beats it by
more than one standard error: with dozens of images, picking the luckiest of many candidates
is how a head that validated at 78 % tests at 51 %.

`nested_predictions` is the honest estimate: every image is predicted by a head whose kind and
settings were chosen without it (inner cross-validation on the other folds).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from clipdesk.core.heads import Head, LinearHead, TipAdapterHead

from .common import single_thread

MAX_FOLDS = 5
OUTER_FOLDS = 10  # the honest estimate trains on 90 %: less pessimistic than 5 folds on tiny sets
LR_STRENGTHS = tuple(float(c) for c in np.logspace(-3, 1, 5))  # C: inverse L2 strength
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

    Binary scikit-learn models keep one row z; softmax([−z/2, z/2]) equals its [1 − σ(z), σ(z)].
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


def logistic_family(x, y, ctx: Context) -> list[tuple[str, Head]]:
    """L2 logistic regression on standardised features, one head per strength C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    names = [f"logistic regression (C={c:.3g})" for c in LR_STRENGTHS]
    present = np.unique(y)
    if len(present) < 2:  # a degenerate fold: keep the names, answer zero-shot
        return [(name, zero_shot_family(x, y, ctx)[0][1]) for name in names]
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    model = LogisticRegression(max_iter=200, warm_start=True)
    heads = []
    for name, strength in zip(names, LR_STRENGTHS):
        model.set_params(C=strength)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes at weak regularisation
            model.fit(z, y)
        weight, bias = fold_standardised_logistic(scaler.mean_, scaler.scale_, model.coef_, model.intercept_,
                                                  model.classes_, len(ctx.classes))
        heads.append((name, LinearHead(ctx.classes, weight, bias, 1.0)))
    return heads


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
    """Stratified, seeded folds: as many as the rarest class allows (2 to `max_folds`)."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    k = int(np.clip(counts[counts > 0].min(), 2, max_folds)) if len(y) >= 2 else 2
    k = min(k, len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class rarer than k: some folds miss it, handled by the families
        yield from StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)


def score(head: Head, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """(correct answers, summed cross-entropy) of a head on labelled features."""
    logits = head.logits(x).astype(np.float64)
    logits -= logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return int((logits.argmax(1) == y).sum()), float(-log_probs[np.arange(len(y)), y].sum())


def cross_validate(x, y, ctx: Context, families=FAMILIES) -> dict[str, tuple[float, float]]:
    """Every candidate's pooled cross-validated (accuracy, mean cross-entropy)."""
    totals: dict[str, list[float]] = {}
    for train, test in folds(y, ctx.seed):
        for name, head in fit_all(x[train], y[train], ctx, families).items():
            correct, loss = score(head, x[test], y[test])
            entry = totals.setdefault(name, [0, 0.0])
            entry[0] += correct
            entry[1] += loss
    return {name: (c / len(y), loss / len(y)) for name, (c, loss) in totals.items()}


def family_of(name: str) -> str:
    return name.split(" (")[0]


def choose(scores: dict[str, tuple[float, float]], n_images: int) -> str:
    """Per family and then across families the best cross-validated accuracy (ties: lower
    cross-entropy), but the logistic regression stays unless beaten by more than a standard error."""
    def key(name: str) -> tuple[float, float]:
        return scores[name][0], -scores[name][1]

    best_of: dict[str, str] = {}
    for name in scores:
        family = family_of(name)
        if family not in best_of or key(name) > key(best_of[family]):
            best_of[family] = name
    winner = max(best_of.values(), key=key)
    preferred = best_of.get(PREFERRED)
    if preferred is not None:
        top = scores[winner][0]
        standard_error = (top * (1 - top) / max(n_images, 1)) ** 0.5
        if top - scores[preferred][0] <= standard_error:
            return preferred
    return winner


def select_and_fit(x, y, ctx: Context, families=FAMILIES) -> tuple[str, Head, dict]:
    """Choose by cross-validation on (x, y), then refit the winner on all of it."""
    scores = cross_validate(x, y, ctx, families)
    name = choose(scores, len(y))
    return name, fit_all(x, y, ctx, families)[name], scores


def nested_predictions(x, y, ctx: Context, families=FAMILIES,
                       on_fold: Callable[[int, int, str, float], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold predictions of the whole recipe (selection included): honest accuracy."""
    pred = np.zeros(len(y), np.int64)
    chosen = []
    splits = list(folds(y, ctx.seed + 1, OUTER_FOLDS))
    for index, (train, test) in enumerate(splits):
        name, head, _ = select_and_fit(x[train], y[train], ctx, families)
        pred[test] = head.predict(x[test])
        chosen.append(name)
        if on_fold is not None:
            on_fold(index + 1, len(splits), name, float(np.mean(pred[test] == y[test])))
    return pred, chosen
