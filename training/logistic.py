"""The linear probe's numerics in numpy alone: stratified folds, standardisation, and an
L2-regularised logistic regression fitted by L-BFGS.

The torch-free app (ONNX Runtime + numpy, no scikit-learn, no scipy) fits the quick method's head
with these. They reproduce scikit-learn's definitions, which the tests use as the oracle:
`stratified_folds` is `StratifiedKFold(shuffle=True, random_state=seed)` fold for fold (the same
legacy RandomState draws), `standardise` is `StandardScaler`, and `fit_logistic` minimises
`LogisticRegression(C)`'s objective, C·Σ cross-entropy + ½‖W‖² with the intercept free (multinomial
for three or more classes; for two, one row of coefficients, as scikit-learn keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

GRADIENT_TOL = 1e-6  # max |gradient| of the per-image objective at which a fit stops
MAX_ITER = 500  # L-BFGS iterations (warm starts across strengths usually need tens)
MEMORY = 10  # L-BFGS correction pairs


def stratified_folds(y: np.ndarray, n_splits: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays: each class's images dealt round-robin over the folds, the
    deal shuffled per class by RandomState(seed) (scikit-learn's StratifiedKFold, shuffled)."""
    y = np.asarray(y)
    rng = np.random.RandomState(seed)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, order_of_appearance = np.unique(first, return_inverse=True)
    encoded = order_of_appearance[inverse]  # classes numbered by first appearance
    n_classes = len(first)
    ordered = np.sort(encoded)
    allocation = np.asarray([np.bincount(ordered[i::n_splits], minlength=n_classes) for i in range(n_splits)])
    test_fold = np.empty(len(y), dtype=np.int64)
    for k in range(n_classes):
        deal = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(deal)
        test_fold[encoded == k] = deal
    indices = np.arange(len(y))
    for fold in range(n_splits):
        mask = test_fold == fold
        yield indices[~mask], indices[mask]


@dataclass
class Standardiser:
    """(x − mean) / scale per feature; a constant feature keeps scale 1 (as StandardScaler)."""

    mean_: np.ndarray
    scale_: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        x = np.asarray(x, np.float64)
        scale = x.std(0)
        scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
        return cls(x.mean(0), scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean_) / self.scale_


@dataclass
class Logistic:
    """A fitted model in scikit-learn's layout: classes_, coef_ [1 or K, D], intercept_."""

    classes_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray

    def decision(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, np.float64) @ self.coef_.T + self.intercept_

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        raw = self.decision(z)
        if len(self.classes_) == 2:  # one row: P(second class) = σ(raw)
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        raw -= raw.max(1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(1, keepdims=True)


def _softmax_loss(params: np.ndarray, z: np.ndarray, onehot: np.ndarray, penalty: float):
    """Mean multinomial cross-entropy + penalty/2·‖W‖², and its gradient; params = [W (K×D), b (K)]."""
    k, d = onehot.shape[1], z.shape[1]
    w, b = params[:k * d].reshape(k, d), params[k * d:]
    raw = z @ w.T + b
    raw -= raw.max(1, keepdims=True)
    log_norm = np.log(np.exp(raw).sum(1, keepdims=True))
    log_p = raw - log_norm
    n = len(z)
    loss = -float((log_p * onehot).sum()) / n + 0.5 * penalty * float((w * w).sum())
    diff = (np.exp(log_p) - onehot) / n
    grad = np.concatenate([(diff.T @ z + penalty * w).ravel(), diff.sum(0)])
    return loss, grad


def _binary_loss(params: np.ndarray, z: np.ndarray, target: np.ndarray, penalty: float):
    """Mean binary cross-entropy of σ(z·w + b) + penalty/2·‖w‖², and its gradient."""
    w, b = params[:-1], params[-1]
    raw = z @ w + b
    n = len(z)
    loss = float((np.logaddexp(0.0, raw) - target * raw).sum()) / n + 0.5 * penalty * float(w @ w)
    diff = (1.0 / (1.0 + np.exp(-raw)) - target) / n
    grad = np.concatenate([z.T @ diff + penalty * w, [diff.sum()]])
    return loss, grad


def lbfgs(func, x0: np.ndarray, tol: float = GRADIENT_TOL, max_iter: int = MAX_ITER) -> np.ndarray:
    """Minimise a smooth convex `func(x) -> (value, gradient)`: L-BFGS with a backtracking
    (Armijo) line search; strict convexity keeps every curvature pair positive."""
    x = x0.astype(np.float64, copy=True)
    value, grad = func(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(max_iter):
        if np.abs(grad).max() <= tol:
            break
        direction = -grad  # two-loop recursion: direction = −H·grad
        alphas = []
        for s, yv, rho in reversed(steps):
            a = rho * (s @ direction)
            alphas.append(a)
            direction -= a * yv
        if steps:
            s, yv, _ = steps[-1]
            direction *= (s @ yv) / (yv @ yv)
        else:
            direction /= max(1.0, float(np.abs(grad).max()))  # a cautious first step
        for (s, yv, rho), a in zip(steps, reversed(alphas)):
            direction += (a - rho * (yv @ direction)) * s
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): restart from the gradient
            steps.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0
        for _ in range(50):
            new_x = x + step * direction
            new_value, new_grad = func(new_x)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break  # no decrease left at double precision: as good as it gets
        s, yv = new_x - x, new_grad - grad
        curvature = float(s @ yv)
        if curvature > 1e-12:
            steps.append((s, yv, 1.0 / curvature))
            del steps[:-MEMORY]
        x, value, grad = new_x, new_value, new_grad
    return x


def fit_logistic(z: np.ndarray, y: np.ndarray, strength: float, warm: Logistic | None = None) -> Logistic:
    """L2-regularised logistic regression (C = `strength`) on standardised features `z`; `warm`
    (a fit on the same images and classes) starts the solver near the answer."""
    z = np.ascontiguousarray(z, np.float64)
    y = np.asarray(y)
    classes = np.unique(y)
    penalty = 1.0 / (strength * len(z))  # C·Σ loss + ½‖W‖², divided by C·n
    binary = len(classes) == 2
    rows = 1 if binary else len(classes)
    start = np.zeros(rows * z.shape[1] + rows)
    if warm is not None and np.array_equal(warm.classes_, classes):
        start = np.concatenate([warm.coef_.ravel(), warm.intercept_])
    if binary:
        target = (y == classes[1]).astype(np.float64)
        params = lbfgs(lambda p: _binary_loss(p, z, target, penalty), start)
        return Logistic(classes, params[:-1][None, :], params[-1:].copy())
    onehot = (y[:, None] == classes[None, :]).astype(np.float64)
    params = lbfgs(lambda p: _softmax_loss(p, z, onehot, penalty), start)
    d = z.shape[1]
    coef, intercept = params[:rows * d].reshape(rows, d), params[rows * d:]
    return Logistic(classes, coef, intercept - intercept.mean())  # softmax ignores a common shift
