"""One result row, one present rule, one prompt default — checked through every caller.

Each test drives a real caller (the CLI's `main`, `clipdesk.load(...).classify`, the window's export,
`clipdesk index`'s shards, evaluation) and compares with expectations written out here, not with
core/results.py or core/multilabel.py: a caller that builds its own row again fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import clipdesk
from clipdesk.cli import main
from clipdesk.core.classify import Scores
from clipdesk.core.demo import demo_sample_images
from clipdesk.core.engine import Engine
from clipdesk.core.export import result_rows
from clipdesk.core.session import Session, decide, decision_arrays

LABELS = ["red circle", "blue star", "yellow triangle", "pink ring"]
DEMO_MODEL = ["--model", "demo", "--backend", "torch", "--device", "cpu"]  # index has no cache to skip
DEMO = [*DEMO_MODEL, "--no-cache"]


@pytest.fixture(scope="module")
def clf():
    return clipdesk.load("demo", cache=False, backend="torch", device="cpu")


@pytest.fixture
def shapes(tmp_path) -> Path:
    """a.png, b.png, c.png: three demo pictures; a.png sorts (and is embedded) first."""
    root = tmp_path / "shapes"
    root.mkdir()
    for sample, name in zip(demo_sample_images()[:3], ["a.png", "b.png", "c.png"]):
        (root / name).write_bytes(sample.read_bytes())
    return root


@pytest.fixture
def nan_first_row(monkeypatch):
    """Every Engine.score call answers NaN for its first image, as damaged weights would."""
    real = Engine.score

    def score(self, features, label_set, *args, **kwargs):
        scores = real(self, features, label_set, *args, **kwargs)
        probs = np.array(scores.probs, np.float32)
        probs[:1] = np.nan
        return Scores(scores.labels, probs, scores.cosines, scores.multi_label)

    monkeypatch.setattr(Engine, "score", score)


FIXED = np.array([1.0, 0.5, 0.25, 0.04], np.float32)  # relative multi-label scores, best = 1 (exact in binary)


@pytest.fixture
def fixed_multi_label_scores(monkeypatch):
    """Multi-label scoring answers FIXED for every image, so the present rule alone decides."""
    def score(self, features, label_set, multi_label=False, *args, **kwargs):
        assert multi_label
        probs = np.tile(FIXED[: len(label_set.names)], (len(features), 1))
        return Scores(label_set.names, probs, np.zeros_like(probs), multi_label=True)

    monkeypatch.setattr(Engine, "score", score)


def nan_error(path) -> str:
    return f"{path}: the model gave no valid score (NaN)."


def cli_json(capsys, *argv) -> list[dict]:
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))


# -- NaN scores: an error row in every caller ----------------------------------------------------
def test_nan_is_an_error_row_in_the_cli(shapes, nan_first_row, capsys):
    rows = cli_json(capsys, "classify", shapes, "--labels", ",".join(LABELS), "--format", "json", *DEMO)
    assert rows[0] == {"path": str(shapes / "a.png"), "error": nan_error(shapes / "a.png")}
    assert [row["label"] for row in rows[1:]] == ["blue star", "yellow triangle"]


def test_nan_is_an_error_prediction_in_the_api(clf, shapes, nan_first_row):
    first, *rest = clf.classify(sorted(shapes.iterdir()), LABELS)
    assert (first.label, first.score, first.scores) == (None, None, {})
    assert first.error == nan_error(shapes / "a.png")
    assert [p.label for p in rest] == ["blue star", "yellow triangle"] and all(p.error is None for p in rest)
    memory = clf.classify([np.asarray(Image_open(shapes / "a.png"))], LABELS)[0]  # in memory: named by index
    assert (memory.label, memory.error) == (None, "Image 0: the model gave no valid score (NaN).")


def Image_open(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def test_nan_is_an_error_row_in_the_window_export(tmp_path):
    session = Session()
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    session.add_paths(paths)
    session.set_scores(paths, np.array([[np.nan, 0.5], [0.8, 0.2]], np.float32), ["cat", "dog"])
    rows = result_rows(session)
    assert rows[0] == {"path": str(paths[0]), "error": nan_error(paths[0])}
    assert rows[1]["label"] == "cat" and rows[1]["scores"] == pytest.approx({"cat": 0.8, "dog": 0.2})


def test_nan_never_labels_a_shard_row(shapes, tmp_path, nan_first_row, capsys):
    from clipdesk.scale.shards import read_shard

    assert main(["index", str(shapes), "--out", str(tmp_path / "idx"), "--labels", ",".join(LABELS), *DEMO_MODEL]) == 0
    capsys.readouterr()
    shards = sorted((tmp_path / "idx").glob("shard-*.parquet"))
    rows = {}
    for shard in shards:
        columns = read_shard(shard, ["path", "label", "score"])
        rows.update({Path(p).name: (label, score) for p, label, score in
                     zip(columns["path"], columns["label"], columns["score"])})
    nan_rows = [name for name, (label, score) in rows.items() if label is None]
    assert len(nan_rows) == len(shards) >= 1  # each shard's first image got NaN: no label, no score
    assert all(rows[name][1] is None or np.isnan(rows[name][1]) for name in nan_rows)
    assert {rows[n][0] for n in rows if n not in nan_rows} <= set(LABELS)


# -- the multi-label present rule: the same labels from every caller ------------------------------
# FIXED = 1.0, 0.5, 0.25, 0.04: the default cut 0.05 keeps the first three (0.04 is below it; a
# cut of 0.5, as an old docstring said, would keep two); at 0.25 the first three too (0.25 itself
# counts: "at least"); at 0.5 the first two.
DEFAULT_PRESENT = LABELS[:3]
CUTS = [(None, LABELS[:3]), ("0.25", LABELS[:3]), ("0.5", LABELS[:2])]


def test_present_rule_in_the_cli(shapes, fixed_multi_label_scores, capsys):
    base = ["classify", shapes, "--labels", ",".join(LABELS), "--multi-label", "--format", "json", *DEMO]
    for cut, expected in CUTS:
        rows = cli_json(capsys, *base, *(["--threshold", cut] if cut else []))
        assert [row["labels"] for row in rows] == [expected] * 3, cut


def test_present_rule_in_the_api(clf, shapes, fixed_multi_label_scores):
    for cut, expected in CUTS:
        results = clf.classify(shapes, LABELS, multi_label=True, threshold=float(cut) if cut else None)
        assert [p.labels for p in results] == [expected] * 3, cut


@pytest.mark.parametrize(("cut", "expected"), CUTS)
def test_present_rule_in_the_window(tmp_path, cut, expected):
    threshold = float(cut) if cut else 0.0  # the window's "not set"
    assert decide(FIXED, LABELS, threshold, multi_label=True).labels == expected
    session = Session()
    session.add_paths([tmp_path / "a.png"])
    session.set_scores([tmp_path / "a.png"], FIXED[None], LABELS)
    arrays = decision_arrays(session.items, len(LABELS), threshold, multi_label=True)
    assert [name for name, on in zip(LABELS, arrays.present[0]) if on] == expected


# -- the default prompt style: the model's own (the demo's is "none") unless one is given ----------
@pytest.fixture
def templates_used(monkeypatch) -> list[str]:
    used: list[str] = []
    real = Engine.label_set

    def label_set(self, raw_labels, templates="photo"):
        used.append(templates)
        return real(self, raw_labels, templates)

    monkeypatch.setattr(Engine, "label_set", label_set)
    return used


def test_default_templates_in_the_cli_and_index(shapes, tmp_path, templates_used, capsys):
    cli_json(capsys, "classify", shapes, "--labels", "red circle,blue star", "--format", "json", *DEMO)
    cli_json(capsys, "classify", shapes, "--labels", "red circle,blue star", "--format", "json",
             "--templates", "photo", *DEMO)
    assert main(["index", str(shapes), "--out", str(tmp_path / "idx"), "--labels", "red circle", *DEMO_MODEL]) == 0
    assert templates_used == ["none", "photo", "none"]


def test_default_templates_in_the_api_and_evaluation(clf, shapes, tmp_path, templates_used):
    clf.classify(shapes, ["red circle", "blue star"])
    clf.classify(shapes, ["red circle", "blue star"], templates="ensemble")
    folder = tmp_path / "eval"
    for sample in demo_sample_images()[:2]:
        label = " ".join(sample.stem.split("-")[1:])
        (folder / label).mkdir(parents=True)
        (folder / label / sample.name).write_bytes(sample.read_bytes())
    clipdesk.evaluate(folder, "demo")
    assert templates_used == ["none", "ensemble", "none"]
