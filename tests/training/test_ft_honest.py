"""Honest numbers: Wilson intervals, the logistic-regression head, selection and the "after"
figure on images that chose nothing, and the training loop's guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ft_helpers import TINY, make_colour_folder

from clipdesk.core.classify import softmax
from clipdesk.core.heads import Head, LinearHead
from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from training import probe
from training.common import default_full_lr, train_transform
from training.data import ImageDataset, scan_dataset
from training.loop import (
    LoopConfig,
    TrainingError,
    contrastive_train_job,
    epoch_batches,
    loss_trend,
)
from training.report import accuracy_text, evaluation_record, wilson_interval


# -- Wilson interval ----------------------------------------------------------------------------------
@pytest.mark.parametrize("correct,total", [(14, 18), (0, 10), (10, 10), (37, 62), (1, 1)])
def test_wilson_interval_matches_scipy_and_the_formula(correct, total):
    from scipy.stats import binomtest

    low, high = wilson_interval(correct, total)
    reference = binomtest(correct, total).proportion_ci(0.95, method="wilson")
    assert low == pytest.approx(reference.low, abs=1e-6) and high == pytest.approx(reference.high, abs=1e-6)
    p, z = correct / total, 1.959964  # by hand: (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total ** 2)) / (1 + z * z / total)
    assert (low + high) / 2 == pytest.approx(centre, abs=1e-9) or low == 0.0 or high == 1.0
    assert high - low == pytest.approx(2 * half, abs=1e-9) or low == 0.0 or high == 1.0


def test_wilson_14_of_18_by_hand():
    low, high = wilson_interval(14, 18)  # the 77.8 % on 18 images
    assert (round(low, 3), round(high, 3)) == (0.548, 0.910)


def test_small_evaluations_show_the_interval_and_the_count():
    small = evaluation_record([0, 1, 1, 0, 1], [0, 1, 0, 0, 1], "a test")
    assert small["accuracy"] == 0.8 and small["images"] == 5 and small["small"]
    assert "95 % interval" in accuracy_text(small) and "5 images" in accuracy_text(small)
    large = evaluation_record([0] * 150, [0] * 120 + [1] * 30, "a test")
    assert not large["small"] and accuracy_text(large) == "80.0% on 150 images"
    assert "evaluate" in large["gold_standard"]


# -- the logistic-regression head ---------------------------------------------------------------------
def _unit(a):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_folded_logistic_head_equals_sklearn_predict_proba(n_classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(n_classes)
    x = _unit(rng.normal(size=(60, 16)) + np.repeat(rng.normal(size=(n_classes, 16)), 60 // n_classes, axis=0))
    y = np.repeat(np.arange(n_classes), 60 // n_classes)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=1000)).fit(x, y)
    scaler, model = pipeline.named_steps.values()
    weight, bias = probe.fold_standardised_logistic(scaler.mean_, scaler.scale_, model.coef_, model.intercept_,
                                                    model.classes_, n_classes)
    head = LinearHead([str(c) for c in range(n_classes)], weight, bias, 1.0)
    test = _unit(rng.normal(size=(25, 16)))
    np.testing.assert_allclose(softmax(head.logits(test)), pipeline.predict_proba(test), atol=2e-5)


def test_a_class_missing_from_a_fold_is_never_predicted():
    rng = np.random.default_rng(0)
    x, y = _unit(rng.normal(size=(20, 8))), np.repeat([0, 2], 10)  # class 1 of 3 has no images here
    ctx = probe.Context(["a", "b", "c"], _unit(rng.normal(size=(3, 8))), 50.0)
    for _, head in probe.logistic_family(x, y, ctx):
        assert 1 not in head.predict(_unit(rng.normal(size=(50, 8))))


# -- choosing, and the figure from images that chose nothing -------------------------------------------
class _Memoriser(Head):
    """Right on the images it was fitted on, wrong on every other: a leak detector."""

    kind = "memoriser"

    def __init__(self, seen: set, n_classes: int) -> None:
        super().__init__([str(c) for c in range(n_classes)])
        self.seen, self.n = seen, n_classes

    def logits(self, features):
        label = features[:, : self.n].argmax(1)  # the true label is written into the features
        ids = features[:, -1]
        pred = np.where(np.isin(ids, list(self.seen)), label, (label + 1) % self.n)
        return np.eye(self.n, dtype=np.float32)[pred] * 10


def _memoriser_family(x, y, ctx):
    return [("memoriser", _Memoriser(set(x[:, -1].tolist()), len(ctx.classes)))]


def _constant_family(x, y, ctx):
    n = len(ctx.classes)
    return [("always the first class", LinearHead(ctx.classes, np.zeros((n, x.shape[1]), np.float32),
                                                  np.eye(n, dtype=np.float32)[0], 1.0))]


def _leak_data(n_per_class=10, n_classes=3):
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = np.zeros((len(y), n_classes + 1), np.float32)
    x[np.arange(len(y)), y] = 1
    x[:, -1] = np.arange(len(y))  # a unique id per image
    return x, y, probe.Context([str(c) for c in range(n_classes)], np.eye(n_classes, n_classes + 1,
                                                                           dtype=np.float32), 1.0)


def test_selection_scores_candidates_on_images_they_were_not_fitted_on():
    x, y, ctx = _leak_data()
    scores = probe.cross_validate(x, y, ctx, families=(_memoriser_family, _constant_family))
    assert scores["memoriser"][0] == 0.0  # scored on training images, it would be 1.0
    assert scores["always the first class"][0] == pytest.approx(1 / 3)
    name, head, _ = probe.select_and_fit(x, y, ctx, families=(_memoriser_family, _constant_family))
    assert name == "always the first class"


def test_nested_figure_comes_from_images_that_chose_nothing():
    x, y, ctx = _leak_data()
    pred, chosen = probe.nested_predictions(x, y, ctx, families=(_memoriser_family,))
    assert len(chosen) >= 2 and np.mean(pred == y) == 0.0  # any leak would make some answer right


def _records(right_a, right_b, n=100):
    """Per-image records of two candidates: the probe right on `right_a` images, the other on `right_b`."""
    a, b = np.zeros((n, 2)), np.zeros((n, 2))
    a[:right_a, 0] = 1
    b[n - right_b:, 0] = 1  # a different set of images: the paired difference is noisy
    return {probe.PREFERRED: a, "zero-shot": b}


def test_logistic_regression_is_kept_unless_clearly_beaten():
    assert probe.choose(_records(60, 62)) == probe.PREFERRED  # 2 points, far below one standard error
    assert probe.choose(_records(60, 80)) == "zero-shot"  # 20 points, well above one paired SE (7.5)
    records = _records(60, 60)
    records["zero-shot"][:, 0] = records[probe.PREFERRED][:, 0]
    records["zero-shot"][60:63, 0] = 1  # right on every image the probe gets, and on 3 more
    assert probe.choose(records) == "zero-shot"  # +3 points > margin, paired SE ≈ 1.7 points
    records["zero-shot"][61:63, 0] = 0  # +1 point: below the 2-point margin
    assert probe.choose(records) == probe.PREFERRED


def _blobs(n_per_class=15, n_classes=3, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = _unit(rng.normal(size=(len(y), dim)) + 1.5 * rng.normal(size=(n_classes, dim))[y])
    ctx = probe.Context([str(c) for c in range(n_classes)], _unit(rng.normal(size=(n_classes, dim))), 50.0)
    return x, y, ctx


def test_fit_probe_is_cross_validated_then_refitted_on_all_images():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, ctx = _blobs()
    head, strength = probe.fit_probe(x, y, ctx.classes, seed=3)
    assert strength == probe.choose_strength(x.astype(np.float64), y, 3) and strength in probe.LR_STRENGTHS
    # The oracle is scikit-learn run to convergence on the same float64 features: at its default
    # tolerance it stops after 11 iterations here, 0.05 away from the optimum of its own objective.
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=strength, max_iter=100_000, tol=1e-12))
    reference.fit(x.astype(np.float64), y)
    test = _unit(np.random.default_rng(9).normal(size=(30, 12)))
    np.testing.assert_allclose(softmax(head.logits(test)), reference.predict_proba(test.astype(np.float64)),
                               atol=1e-3)


def test_quick_keeps_the_very_probe_fit_when_the_probe_wins():
    x, y, ctx = _blobs(seed=1)
    name, head, _ = probe.select_and_fit(x, y, ctx, families=(probe.zero_shot_family, probe.logistic_family))
    probe_head, strength = probe.fit_probe(x, y, ctx.classes, ctx.seed)
    assert name == f"{probe.PREFERRED} (C={strength:.3g})"
    np.testing.assert_array_equal(head.logits(x), probe_head.logits(x))
    order = np.random.default_rng(5).permutation(len(y))  # the same images in another order: the same fit
    np.testing.assert_array_equal(probe.fit_probe(x[order], y[order], ctx.classes, ctx.seed)[0].logits(x),
                                  probe_head.logits(x))


def test_repeated_cross_validation_interval_rests_on_distinct_images():
    true = np.repeat([0, 1], 20)
    pred = np.stack([true, np.where(np.arange(40) < 10, 1 - true, true)])  # 40/40 and 30/40 right
    record = evaluation_record(true, pred, "nested")
    assert record["images"] == 40 and record["repeats"] == 2 and record["accuracy"] == pytest.approx(35 / 40)
    assert record["interval_95"] == list(wilson_interval(35, 40))  # not 70 of 80


def test_quick_reports_nested_cross_validation_on_a_small_folder(quick_run):
    result, _ = quick_run
    record = result.evaluation
    assert record["method"].startswith("nested") and record["images"] == 32 == len(result.val_true)
    assert record["accuracy"] == result.accuracy_after and 0 <= record["accuracy"] <= 1
    if record.get("repeats", 1) == 1:
        assert record["accuracy"] == np.mean(np.array(result.val_true) == np.array(result.val_pred))
    assert record["small"] and record["interval_95"] == list(wilson_interval(record["accuracy"] * 32, 32))


# -- the loop's guards ----------------------------------------------------------------------------------
def _tiny_loop(tmp_path, per_class=2, **loop):
    loaded = load_model(TINY, "none", "cpu")
    summary = scan_dataset(make_colour_folder(tmp_path / "data", per_class=per_class, size=16))
    paths = [p for c in summary.classes for p in summary.files[c]]
    labels = [i for i, c in enumerate(summary.classes) for _ in summary.files[c]]
    dataset = ImageDataset(paths, labels, train_transform(loaded))
    job = contrastive_train_job(loaded.model, dataset, LoopConfig(**loop), torch.device("cpu"),
                                group_tokens=loaded.tokenizer(summary.classes))
    return loaded, job


def test_batch_size_one_still_makes_steps(tmp_path):
    assert epoch_batches(5, 1, epoch=0, seed=0, world=1) != []
    assert sum(map(len, epoch_batches(5, 2, epoch=0, seed=0, world=1))) == 5  # the odd one rides along
    _, job = _tiny_loop(tmp_path, epochs=1, lr=1e-4, batch_size=1)
    assert run_job(job).steps >= 1


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0])
def test_non_finite_learning_rate_is_one_sentence_before_any_step(tmp_path, lr):
    _, job = _tiny_loop(tmp_path, epochs=1, lr=lr, batch_size=4)
    with pytest.raises(TrainingError, match="learning rate"):
        run_job(job)


def test_a_loss_that_explodes_stops_training_and_keeps_no_weights(tmp_path):
    from ft_helpers import full_config

    from training.api import finetune_job

    out = tmp_path / "model"
    folder = make_colour_folder(tmp_path / "colours", per_class=5, size=16)
    with pytest.raises(TrainingError, match="non-finite|became"):
        run_job(finetune_job(full_config(folder, out, lr=1e30, epochs=2, batch_size=4)))
    assert not (out / "model.safetensors").exists() and not (out / "metadata.json").exists()


def test_loss_trend_warns_only_when_the_loss_does_not_fall():
    falling = [{"kind": "train", "loss": 2.0 - 0.1 * i} for i in range(12)]
    flat = [{"kind": "train", "loss": 1.1 + 0.01 * (i % 2)} for i in range(12)]
    assert loss_trend(falling) is None
    assert "did not fall" in loss_trend(flat)


def test_learning_rate_follows_model_size():
    assert default_full_lr(150_000_000) == pytest.approx(1e-5)
    assert default_full_lr(5_000_000) > default_full_lr(150_000_000) == default_full_lr(1_000_000_000)
    assert default_full_lr(4_772_313) == pytest.approx(3.14e-4, rel=0.01)  # the demo model
    assert default_full_lr(1000) == 1e-3


def test_cli_and_metadata_report_the_interval_and_the_gold_standard(tmp_path, monkeypatch, capsys):
    import json

    from training.cli import main

    for name in ("CACHE", "CONFIG", "DATA"):
        monkeypatch.setenv(f"CLIPDESK_{name}_DIR", str(tmp_path / name.lower()))
    folder = make_colour_folder(tmp_path / "colours", per_class=5, size=16)
    out = tmp_path / "model"
    assert main(["finetune", str(folder), "--method", "quick", "--model", TINY, "--pretrained", "none",
                 "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "metadata.json").read_text())["validation"]["evaluation"]
    low, high = record["interval_95"]
    assert record["images"] == 20 and record["method"].startswith("nested")
    assert f"95 % interval {low:.0%}–{high:.0%}, 20 images" in printed
    assert "clipdesk evaluate" in printed and "separate labelled folder" in printed
