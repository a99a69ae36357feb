"""The command line under hostile conditions, as a user runs it (a subprocess): special files,
broken caches, odd labels files, damaged heads and checkpoints. Always exit 0/1/2 with one
`clipdesk:` line per problem, never a traceback, and JSON output that parses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from synth_images import save_image  # noqa: E402

from clipdesk.cli import main  # noqa: E402
from clipdesk.core.classify import Scores  # noqa: E402

TINY = ["--model", "clipdesk-tiny", "--pretrained", "none", "--backend", "torch", "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[2]


def clipdesk(*argv, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m clipdesk ARGV`, with the test's isolated user folders; a hang fails the test."""
    proc = subprocess.run([sys.executable, "-m", "clipdesk", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2), proc.stderr
    for line in proc.stderr.splitlines():  # notes and errors: one escaped `clipdesk:` line each
        assert line.startswith("clipdesk: ") and "\x1b" not in line, proc.stderr
    return proc


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for i, name in enumerate(["a.png", "b.png"]):
        save_image(root / name, seed=i, width=64, height=48)
    return root


def cache_file() -> Path:
    return Path(os.environ["CLIPDESK_CACHE_DIR"]) / "embeddings.sqlite3"


def test_special_files_and_a_garbage_cache(photos):
    os.mkfifo(photos / "fifo.png")
    (photos / "zero.png").symlink_to("/dev/zero")
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    cache_file().write_bytes(b"garbage, not sqlite" * 100)
    proc = clipdesk("classify", photos, "--labels", "cat,dog", "--format", "json", *TINY, timeout=120)
    assert proc.returncode == 0
    rows = {Path(row["path"]).name: row for row in json.loads(proc.stdout)}
    assert set(rows) == {"a.png", "b.png", "fifo.png", "zero.png"}
    assert "not a regular file" in rows["fifo.png"]["error"] and "error" in rows["zero.png"]
    assert rows["a.png"]["label"] in ("cat", "dog")
    assert "moved to" in proc.stderr and "rebuilt" in proc.stderr


def test_cache_folder_that_is_a_file(tmp_path, photos):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    env = {"CLIPDESK_CACHE_DIR": str(blocker)}
    for action in ("info", "clear"):
        assert clipdesk("cache", action, env=env).returncode == 0
    proc = clipdesk("classify", photos, "--labels", "cat,dog", "--format", "json", "--no-cache", *TINY, env=env)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 2


def test_old_schema_and_escape_codes_in_file_names(photos):
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(cache_file()) as db:
        db.execute("CREATE TABLE images (model TEXT, digest TEXT, vec BLOB)")
    evil = photos / "x\x1b[2J\x1b]0;owned\x07.png"
    save_image(evil, seed=5, width=64, height=48)
    proc = clipdesk("classify", photos, "--labels", "cat,dog", *TINY)
    assert proc.returncode == 0
    assert "could not be processed" not in proc.stdout + proc.stderr
    assert "\x1b" not in proc.stdout and "\\x1b[2J" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 3  # one line per image, none of them an error


def test_labels_files_that_are_not_lists(tmp_path, photos):
    os.mkfifo(tmp_path / "fifo.txt")
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for source in ("/dev/zero", tmp_path / "fifo.txt", binary, tmp_path / "missing.txt"):
        proc = clipdesk("classify", photos, "--labels-file", source, *TINY, timeout=60)
        assert proc.returncode == 2 and proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1 and Path(source).name in proc.stderr


def test_utf16_labels_formula_cells_and_a_held_lock(tmp_path, photos):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("\ufeffcafé\r\n=1+1\r\n@SUM(A1)\r\n".encode("utf-16-le"))
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(cache_file()).close()
    holder = sqlite3.connect(cache_file())
    holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another process sits on the lock for the whole run
    try:
        proc = clipdesk("classify", photos, "--labels-file", labels, "--format", "csv", *TINY,
                        env={"CLIPDESK_CACHE_TIMEOUT": "0.5"})
    finally:
        holder.rollback()
        holder.close()
    assert proc.returncode == 0
    header = proc.stdout.splitlines()[0].split(",")
    assert header[-3:] == ["café", "'=1+1", "'@SUM(A1)"]
    assert len(proc.stdout.splitlines()) == 3
    assert "locked" in proc.stderr and "continuing without it" in proc.stderr


def test_search_example_image_that_is_a_device(photos):
    proc = clipdesk("search", photos, "--image", "/dev/zero", *TINY, timeout=120)
    assert proc.returncode == 2 and "/dev/zero" in proc.stderr and "device" in proc.stderr


def test_damaged_head_exits_1_at_load(tmp_path, photos):
    folder = tmp_path / "pets-quick"
    folder.mkdir()
    weight = np.ones((2, 64), np.float32)
    weight[1, 7] = np.nan
    save_file({"weight": weight, "bias": np.zeros(2, np.float32)}, str(folder / "head.safetensors"))
    (folder / "metadata.json").write_text(json.dumps({
        "architecture": "clipdesk-tiny", "base_pretrained": "none", "class_names": ["cat", "dog"],
        "head": {"kind": "linear", "file": "head.safetensors", "scale": 10.0}}))
    proc = clipdesk("classify", photos, "--labels", "cat,dog", "--format", "json", "--model",
                    "clipdesk-tiny", "--pretrained", folder, "--backend", "torch", "--device", "cpu")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "head.safetensors" in proc.stderr and "NaN" in proc.stderr


def test_pickled_checkpoint_is_refused_without_torchs_advice(tmp_path, photos):
    import torch

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": _Exploit()}}, evil)
    proc = clipdesk("classify", photos, "--labels", "cat,dog", "--model", "clipdesk-tiny",
                    "--pretrained", evil, "--backend", "torch", "--device", "cpu")
    assert proc.returncode == 1 and "refused" in proc.stderr
    assert "weights_only" not in proc.stderr and "can still be loaded" not in proc.stderr
    assert not (tmp_path / "pwned").exists()


class _Exploit:
    def __reduce__(self):
        return (open, (str(Path(os.environ["CLIPDESK_DATA_DIR"]) / "pwned"), "w"))


# -- in-process: the error wrapper and strict JSON --------------------------------------------


def test_unexpected_errors_are_one_line_with_a_hint(monkeypatch, capsys):
    import clipdesk.cli as cli

    def broken(args):
        raise RuntimeError("something odd\nsecond line")

    monkeypatch.setattr(cli, "cmd_cache", broken)
    assert main(["cache", "info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "something odd" in err and "--debug" in err
    assert len(err.strip().splitlines()) == 2
    assert main(["--debug", "cache", "info"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("CLIPDESK_DEBUG", "1")
    assert main(["cache", "info"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.fixture
def nan_scores(monkeypatch):
    """Scores as a damaged model gives them: NaN for chosen images."""
    from clipdesk.core.engine import Engine

    real = Engine.score
    bad_rows: list[int] = []

    def score(self, features, label_set, **kwargs):
        scores = real(self, features, label_set, **kwargs)
        probs = scores.probs.copy()
        probs[bad_rows] = np.nan
        return Scores(scores.labels, probs, scores.cosines, scores.multi_label)

    monkeypatch.setattr(Engine, "score", score)
    return bad_rows


def test_nan_scores_are_never_a_label_and_json_stays_valid(photos, nan_scores, capsys):
    nan_scores.append(0)
    assert main(["classify", str(photos), "--labels", "cat,dog", "--format", "json", *TINY]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out, parse_constant=lambda token: pytest.fail(f"{token} in the JSON"))
    assert "error" in rows[0] and "label" not in rows[0]
    assert rows[1]["label"] in ("cat", "dog")
    nan_scores.append(1)
    assert main(["classify", str(photos), "--labels", "cat,dog", "--format", "json", *TINY]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no valid score" in captured.err
