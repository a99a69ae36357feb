"""training.logistic, the quick head's numpy numerics, against scikit-learn (the oracle: the
definitions it reproduces, run to convergence)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from training.logistic import Standardiser, fit_logistic, stratified_folds


def _data(n_classes: int, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)  # unsorted labels, as folders give them after a split
    x = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(n_classes, d))[y]
    return x, y


@pytest.mark.parametrize("seed", [0, 7, 1234])
@pytest.mark.parametrize("n_splits", [2, 3, 5])
def test_folds_are_stratifiedkfolds(seed, n_splits):
    _, y = _data(4, 37, 3, seed)
    y[:5] = 3  # uneven class sizes
    theirs = list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    mine = list(stratified_folds(y, n_splits, seed))
    assert len(mine) == len(theirs) == n_splits
    for (train, test), (want_train, want_test) in zip(mine, theirs):
        assert np.array_equal(train, want_train) and np.array_equal(test, want_test)


def test_standardiser_is_standardscaler_with_a_constant_feature():
    x, _ = _data(3, 20, 6, 1)
    x[:, 2] = 5.0  # constant: scale 1, not a division by zero
    theirs = StandardScaler().fit(x)
    mine = Standardiser.fit(x)
    np.testing.assert_allclose(mine.mean_, theirs.mean_, rtol=1e-12)
    np.testing.assert_allclose(mine.scale_, theirs.scale_, rtol=1e-12)
    np.testing.assert_allclose(mine.transform(x), theirs.transform(x), atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 6])
@pytest.mark.parametrize("strength", [1e-3, 0.1, 10.0])
def test_fit_is_scikit_learns_logistic_regression(n_classes, strength):
    x, y = _data(n_classes, 60, 24, n_classes)
    z = Standardiser.fit(x).transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = LogisticRegression(C=strength, max_iter=100_000, tol=1e-12).fit(z, y)
    mine = fit_logistic(z, y, strength)
    assert mine.coef_.shape == theirs.coef_.shape  # binary: one row, as scikit-learn keeps it
    assert np.array_equal(mine.classes_, theirs.classes_)
    np.testing.assert_allclose(mine.predict_proba(z), theirs.predict_proba(z), atol=1e-5)
    # Away from the training data a coefficient's last digits count for more: at C = 10 the
    # objective is flat (penalty 1/(C·n) ≈ 2e-3), and stopping at a gradient of 1e-6 leaves
    # coefficients ~5e-4 off the optimum: 1.7e-4 in probability measured on these points.
    probe = np.random.default_rng(99).normal(size=(40, 24))
    np.testing.assert_allclose(mine.predict_proba(probe), theirs.predict_proba(probe), atol=1e-3)


def test_a_warm_start_reaches_the_same_fit():
    x, y = _data(4, 50, 16, 3)
    z = Standardiser.fit(x).transform(x)
    cold = fit_logistic(z, y, 1.0)
    warm = fit_logistic(z, y, 1.0, warm=fit_logistic(z, y, 0.01))
    np.testing.assert_allclose(warm.predict_proba(z), cold.predict_proba(z), atol=1e-5)
