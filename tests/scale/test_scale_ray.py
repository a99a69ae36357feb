"""Ray Data end to end on a local 2-CPU Ray (started once for the module): same numbers as the
single-process CLI, and a resumed run gives the same shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scale_helpers import LABELS, _assert_same, make_folder, spoil_images, table

from clipdesk.cli import main
from clipdesk.core.jobs import run_job
from clipdesk.scale import shards as sh
from clipdesk.scale.pipeline import IndexOptions, ModelSpec, index_job


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray for the module; its workers get their own cache folders, never the user's."""
    ray = pytest.importorskip("ray")
    root = tmp_path_factory.mktemp("ray-user")
    patch = pytest.MonkeyPatch()
    for name in ("CACHE", "CONFIG", "DATA"):
        patch.setenv(f"CLIPDESK_{name}_DIR", str(root / name.lower()))
    patch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
    patch.undo()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("scale") / "photos", 200)


def cli_json(capsys, *argv) -> list[dict]:
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_ray_classify_equals_single_process(local_ray, folder, tmp_path, capsys, demo_engine):
    common = ["classify", folder, "--labels", ",".join(LABELS), "--model", "demo", "--backend", "torch",
              "--device", "cpu", "--format", "json", "--no-cache"]
    single = cli_json(capsys, *common)
    scaled = cli_json(capsys, *common, "--ray", "--out", tmp_path / "idx", "--shard-size", "40")
    assert [row["path"] for row in scaled] == [row["path"] for row in single]
    assert len(single) == 201 and sum("error" in row for row in scaled) == 1
    for ours, theirs in zip(scaled, single):
        assert ours.keys() == theirs.keys()
        if "error" in theirs:
            continue
        assert ours["label"] == theirs["label"]
        for label in LABELS:
            assert abs(ours["scores"][label] - theirs["scores"][label]) < 1e-5
    # The shards hold the embeddings core computes in one process.
    shards = table(tmp_path / "idx")
    rows = {p: v for c in shards.values() for p, v, e in zip(c["path"], c["embedding"], c["error"]) if not e}
    paths = sorted(rows)
    from pathlib import Path

    reference = run_job(demo_engine.embed_job([Path(p) for p in paths], batch_size=16)).features
    np.testing.assert_allclose(np.stack([rows[p] for p in paths]), reference, atol=1e-5)

    # Killed and resumed: stop after two shards, drop another, run again — the same shards.
    spec = ModelSpec("demo", "demo", "cpu", "torch")
    options = dict(labels=LABELS, shard_size=40, use_ray=True)
    out = tmp_path / "resumed"
    stopped = run_job(index_job(spec, [str(folder)], out, demo_engine, IndexOptions(**options, stop_after=2)))
    assert not stopped.complete and len(sh.existing_shards(out)) == 2
    resumed = run_job(index_job(spec, [str(folder)], out, demo_engine, IndexOptions(**options)))
    assert resumed.skipped == 2 and resumed.written == len(resumed.shards) - 2
    _assert_same(shards, table(out))



def assert_same_rows(ours: list[dict], theirs: list[dict]) -> None:
    assert [row["path"] for row in ours] == [row["path"] for row in theirs]
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        if "error" not in b:
            assert a["label"] == b["label"]
            assert max(abs(a["scores"][k] - v) for k, v in b["scores"].items()) < 1e-5


def test_ray_multi_label_equals_single_process(local_ray, tmp_path, capsys):
    """--multi-label on Ray: whole image and quarters, the scores of `classify --multi-label`; new
    labels re-score the stored quarters too."""
    folder = make_folder(tmp_path / "photos", 24)
    common = ["classify", folder, "--model", "demo", "--backend", "torch", "--device", "cpu", "--format", "json",
              "--no-cache", "--multi-label", "--batch-size", "8"]
    scaled = [*common, "--ray", "--out", tmp_path / "idx", "--shard-size", "6"]
    first = cli_json(capsys, *common, "--labels", ",".join(LABELS))
    assert_same_rows(cli_json(capsys, *scaled, "--labels", ",".join(LABELS)), first)
    assert sum("error" in row for row in first) == 1
    assert all("quarters" in columns for columns in table(tmp_path / "idx").values())
    new = "circle,star,square,heart"
    single = cli_json(capsys, *common, "--labels", new)
    spoil_images(folder)
    assert_same_rows(cli_json(capsys, *scaled, "--labels", new), single)


def test_ray_rows_judge_nan_and_presence_like_the_cli(local_ray, tmp_path, capsys, monkeypatch):
    """`classify --ray` prints core/results.py's rows: a NaN score is an error entry (never a label),
    and --threshold decides the labels present (it used to be dropped on Ray)."""
    from clipdesk.core.classify import Scores
    from clipdesk.core.engine import Engine

    folder = make_folder(tmp_path / "photos", 6)
    fixed = np.array([1.0, 0.5, 0.25, 0.04], np.float32)
    nan_rows = {"rows": slice(0, 1)}

    def score(self, features, label_set, multi_label=False, *args, **kwargs):
        probs = np.tile(fixed, (len(features), 1))
        probs[nan_rows["rows"]] = np.nan
        return Scores(label_set.names, probs, np.zeros_like(probs), multi_label=multi_label)

    monkeypatch.setattr(Engine, "score", score)
    common = ["classify", folder, "--labels", ",".join(LABELS), "--model", "demo", "--backend", "torch",
              "--device", "cpu", "--format", "json", "--no-cache", "--multi-label", "--ray",
              "--out", tmp_path / "idx", "--shard-size", "100"]
    rows = [row for row in cli_json(capsys, *common) if not row["path"].endswith("broken.png")]
    assert rows[0] == {"path": rows[0]["path"], "error": f"{rows[0]['path']}: the model gave no valid score (NaN)."}
    assert all(row["labels"] == LABELS[:3] for row in rows[1:])  # default cut 0.05: 0.04 is out
    nan_rows["rows"] = slice(0, 0)
    rows = [row for row in cli_json(capsys, *common, "--threshold", "0.5") if "error" not in row]
    assert len(rows) == 6 and all(row["labels"] == LABELS[:2] for row in rows)
    nan_rows["rows"] = slice(None)  # NaN for every image: the model is broken, exit 1 as without Ray
    assert main([str(a) for a in common]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no valid score" in captured.err
