"""`classify --multi-label` on the demo model: two-shape pictures list both shapes, the numbers equal
the Python API's and an engine computation with the quarters, and --threshold is checked."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

import clipdesk
from training.synthetic import render, sample_scene

LABELS = ["purple triangle", "pink star", "red ring", "blue circle", "green square", "yellow heart"]


@pytest.fixture
def two_shapes(tmp_path):
    """Pictures holding two of LABELS' shapes each (scenes drawn until they do)."""
    rng = np.random.default_rng(5)
    folder, truth = tmp_path / "two", {}
    folder.mkdir()
    pairs = [tuple(label.split()) for label in LABELS]
    while len(truth) < 4:
        scene = sample_scene(rng, pairs=pairs, n_objects=2)
        path = folder / f"{len(truth)}.png"
        render(scene, 128).save(path)
        truth[str(path)] = {f"{c} {s}" for c, s in scene.pairs}
    return folder, truth


def test_json_lists_the_labels_present_and_matches_the_api(cli, two_shapes):
    folder, truth = two_shapes
    code, out, _ = cli("classify", folder, "--model", "demo", "--labels", ",".join(LABELS),
                       "--multi-label", "--format", "json", "--no-cache")
    assert code == 0
    rows = {row["path"]: row for row in json.loads(out)}
    api = {p.path: p for p in clipdesk.load("demo").classify(sorted(truth), LABELS, multi_label=True)}
    both = 0
    for path, row in rows.items():
        assert row["labels"] == [name for name, p in sorted(row["scores"].items(), key=lambda kv: -kv[1])
                                 if p >= 0.05]
        assert row["labels"] == api[path].labels
        for name in LABELS:
            assert row["scores"][name] == pytest.approx(api[path].scores[name], abs=1e-6)
        both += set(row["labels"]) == truth[path]
    assert both >= 3, (rows, truth)  # on these pictures whole-image scoring finds both in 1 of 4


def test_threshold_changes_what_is_present(cli, two_shapes):
    folder, _ = two_shapes
    base = ["classify", folder, "--model", "demo", "--labels", ",".join(LABELS), "--multi-label",
            "--format", "csv", "--no-cache"]
    loose = list(csv.DictReader(io.StringIO(cli(*base, "--threshold", "1e-6")[1])))
    strict = list(csv.DictReader(io.StringIO(cli(*base, "--threshold", "1")[1])))
    for row in strict:
        assert row["label"] and ";" not in row["label"]  # only the best label scores 1
    assert sum(row["label"].count(";") for row in loose) > sum(row["label"].count(";") for row in strict)


def test_threshold_without_multi_label_is_one_usage_sentence(cli, two_shapes):
    code, _, err = cli("classify", two_shapes[0], "--model", "demo", "--labels", "pink star", "--threshold", "0.2")
    assert code == 2 and "--threshold applies to --multi-label" in err and "Traceback" not in err
