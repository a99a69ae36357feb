"""`clipdesk finetune|evaluate` and `python -m training`: output formats and exit codes."""

from __future__ import annotations

import json

import pytest
from ft_helpers import TINY, make_colour_folder

from clipdesk import cli as clipdesk_cli
from clipdesk.core.jobs import run_job
from training import cli as training_cli
from training.api import evaluate_job


@pytest.mark.parametrize("main", [clipdesk_cli.main, training_cli.main])
def test_evaluate_json(main, quick_run, colours, capsys):
    result, _ = quick_run
    code = main(["evaluate", str(colours), "--model", TINY, "--pretrained", str(result.model_dir),
                 "--device", "cpu", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert set(report) == {"accuracy", "per_class", "confusion", "classes"}
    expected = run_job(evaluate_job(colours, TINY, str(result.model_dir), device="cpu"))
    assert report == json.loads(json.dumps(expected.as_dict()))
    assert report["classes"] == ["blue", "dark yellow", "green", "red"]


def test_evaluate_table_and_png(quick_run, colours, capsys, tmp_path):
    result, _ = quick_run
    png = tmp_path / "confusion.png"
    code = training_cli.main(["evaluate", str(colours), "--model", TINY, "--pretrained",
                              str(result.model_dir), "--device", "cpu", "--png", str(png)])
    out = capsys.readouterr().out
    assert code == 0 and "Accuracy:" in out and "dark yellow" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_finetune_quick_json(tmp_path, capsys):
    folder = make_colour_folder(tmp_path / "data", per_class=4)
    code = clipdesk_cli.main(["finetune", str(folder), "--method", "quick", "--model", TINY,
                              "--pretrained", "none", "--device", "cpu", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["method"] == "quick" and report["accuracy_after"] >= report["accuracy_before"]
    # no --out: the model lands in the user data dir (redirected for tests) under <folder>-quick
    assert report["model_dir"].endswith("models/data-quick")


@pytest.mark.parametrize("argv, code, message", [
    (["finetune", "MISSING"], 2, "does not exist"),
    (["finetune", "EMPTY"], 2, "no class sub-folders"),
    (["evaluate", "DATA", "--pretrained", "NOPE/model.safetensors"], 1, "does not exist"),
    (["finetune", "DATA", "--val-split", "1.5"], 2, "between 0 and 1"),
])
def test_errors_are_one_sentence_with_exit_codes(argv, code, message, tmp_path, capsys):
    (tmp_path / "EMPTY").mkdir()
    make_colour_folder(tmp_path / "DATA", per_class=2, colours={"red": (255, 0, 0), "blue": (0, 0, 255)})
    argv = [str(tmp_path / a) if a in ("MISSING", "EMPTY", "DATA") or a.startswith("NOPE") else a for a in argv]
    got = training_cli.main([*argv, "--model", TINY, "--device", "cpu"] if "--pretrained" in argv
                            else [*argv, "--model", TINY, "--pretrained", "none", "--device", "cpu"])
    err = capsys.readouterr().err
    assert got == code
    assert message in err and "Traceback" not in err
