"""The command line against a red-team pass (subprocesses, as a user runs it): closed streams,
Ctrl-C, a folder with a FIFO beside an unsupported file, a file name that is not UTF-8, a model
folder whose weights are missing. Always exit 0/1/2/130, never a traceback, JSON that parses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from synth_images import save_image  # noqa: E402

TINY = ["--model", "clipdesk-tiny", "--pretrained", "none", "--backend", "torch", "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "clipdesk"]


def _checked(proc: subprocess.CompletedProcess, codes=(0, 1, 2)) -> subprocess.CompletedProcess:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in codes, (proc.returncode, proc.stderr)
    for line in proc.stderr.splitlines():
        assert line.startswith("clipdesk: "), proc.stderr
    return proc


def shell(command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """A command line through bash, for redirections Python's subprocess cannot express (`>&-`)."""
    return subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def clipdesk(*argv, timeout: float = 180) -> subprocess.CompletedProcess:
    return _checked(subprocess.run([*CLI, *map(str, argv)], cwd=ROOT, capture_output=True, text=True,
                                   timeout=timeout, env=dict(os.environ)))


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for i, name in enumerate(["a.png", "b.png"]):
        save_image(root / name, seed=i, width=48, height=40)
    return root


def _q(path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def test_closed_stdout_fails_in_one_sentence_and_closed_stderr_still_gives_results(photos):
    argv = " ".join([_q(sys.executable), "-m", "clipdesk", "classify", _q(photos), "--labels", "cat,dog",
                     "--format", "json", *TINY])
    closed_out = _checked(shell(f"{argv} >&-"))  # results must not vanish behind exit 0
    assert closed_out.returncode == 1 and "standard output is closed" in closed_out.stderr
    closed_err = shell(f"{argv} 2>&-")  # used to crash on the first note (sys.stderr is None)
    assert closed_err.returncode == 0, closed_err.stdout
    assert [Path(row["path"]).name for row in json.loads(closed_err.stdout)] == ["a.png", "b.png"]


def test_ctrl_c_while_classifying_exits_130_without_a_traceback(tmp_path):
    root = tmp_path / "many"
    for i in range(40):
        save_image(root / f"{i:02d}.png", seed=i, width=64, height=48)
    proc = subprocess.Popen([*CLI, "classify", str(root), "--labels", "cat,dog", "--format", "json", *TINY],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    time.sleep(1.5)  # importing torch or loading the model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode == 0:  # a very fast machine finished first: the output must be whole
        json.loads(out)
    else:
        # 130, or death by SIGINT itself (which a shell also shows as 130) when the signal lands
        # while the interpreter is starting or shutting down; either way one line, no traceback.
        assert proc.returncode in (130, -signal.SIGINT), err
        assert err.strip() in ("clipdesk: interrupted.", ""), err
    after = clipdesk("classify", root, "--labels", "cat,dog", "--format", "json", *TINY)
    fresh = clipdesk("classify", root, "--labels", "cat,dog", "--format", "json", "--no-cache", *TINY)
    assert json.loads(after.stdout) == json.loads(fresh.stdout)  # the cache stayed consistent


def test_folder_with_a_fifo_a_dangling_link_and_unsupported_files(photos):
    """The walk crashed ('PosixPath' object is not subscriptable) once a FIFO was followed by a
    file no decoder reads."""
    os.mkfifo(photos / "a0-pipe.png")
    (photos / "a1-dangling.jpg").symlink_to(photos / "gone.jpg")
    (photos / "notes.txt").write_text("not an image")
    proc = clipdesk("classify", photos, "--labels", "cat,dog", "--format", "json", *TINY)
    assert proc.returncode == 0
    rows = {Path(row["path"]).name: row for row in json.loads(proc.stdout)}
    assert set(rows) == {"a.png", "b.png", "a0-pipe.png", "a1-dangling.jpg"}
    assert "error" in rows["a0-pipe.png"] and "error" in rows["a1-dangling.jpg"]
    assert "label" in rows["a.png"] and "label" in rows["b.png"]


def test_index_with_a_file_name_that_is_not_utf8(tmp_path, photos):
    """Parquet strings are UTF-8: one such name failed the whole index (UnicodeEncodeError)."""
    save_image(Path(os.fsdecode(bytes(photos) + b"/bad\xff\xfe.png")), seed=5, width=48, height=40)
    proc = clipdesk("index", photos, "--out", tmp_path / "index", *TINY)
    assert proc.returncode == 0 and "not valid UTF-8" in proc.stderr
    hits = clipdesk("search", "--index", tmp_path / "index", "--query", "a cat", "--format", "json", *TINY)
    assert sorted(Path(hit["path"]).name for hit in json.loads(hits.stdout)) == ["a.png", "b.png"]


def test_fine_tuned_folder_without_its_weights_is_exit_1_not_random_weights(tmp_path, photos):
    folder = tmp_path / "pets-full"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({
        "architecture": "clipdesk-tiny", "base_pretrained": "none", "method": "full",
        "class_names": ["cat", "dog"]}), encoding="utf-8")
    proc = clipdesk("classify", photos, "--format", "json", "--pretrained", folder,
                    "--backend", "torch", "--device", "cpu")
    assert proc.returncode == 1 and "model.safetensors is missing" in proc.stderr and not proc.stdout


def test_a_validation_folder_overlapping_the_training_folder_is_refused(tmp_path):
    """Validating on the training images reported "100 %" for a model that learnt them by heart."""
    for cls in ("cat", "dog"):
        for i in range(2):
            save_image(tmp_path / "pets" / cls / f"{i}.png", seed=i, width=32, height=32)
    for val in (tmp_path / "pets", tmp_path / "pets" / "cat"):
        proc = clipdesk("finetune", tmp_path / "pets", "--method", "quick", "--val-folder", val,
                        "--out", tmp_path / "out", *TINY[:4])
        assert proc.returncode == 2 and "overlaps" in proc.stderr
        assert not (tmp_path / "out").exists()
