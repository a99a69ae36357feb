"""Cancel and resume: a cancelled or killed run picks up its saved state and ends where an
uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ft_helpers import TINY, full_config
from safetensors.torch import load_file

from clipdesk.core.errors import Cancelled
from clipdesk.core.jobs import CancelToken, run_job
from training.api import FinetuneConfig, finetune_job

REPO = Path(__file__).resolve().parents[2]


def differs_from_base(state: dict, base: dict) -> bool:
    """Most float tensors moved away from the base model's (the trained towers, not one buffer)."""
    floats = [k for k in base if base[k].is_floating_point()]
    moved = [k for k in floats if not torch.allclose(state[k].float(), base[k].float(), atol=1e-6)]
    return len(moved) > 0.8 * len(floats)


CANCEL_EPOCH = 2


def test_cancelled_run_resumes_to_the_same_weights(full_run, occluded, base_weights, tmp_path):
    reference, _ = full_run
    metadata = json.loads((reference.model_dir / "metadata.json").read_text())["validation"]
    # Not vacuous: full keeps fine-tuned weights (α > 0) from an epoch after the cancel, so a
    # resume that lost the weights or the optimizer's moments ends somewhere else.
    assert metadata["kept"]["kept"] == "fine-tuned mix" and reference.alpha > 0
    assert metadata["best_epoch"] > CANCEL_EPOCH
    out = tmp_path / "model"
    cancel = CancelToken()

    def stop_in_epoch_two(progress):
        payload = progress.payload or {}
        if payload.get("kind") == "train" and payload["epoch"] == CANCEL_EPOCH:
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_job(finetune_job(full_config(occluded, out), cancel), on_progress=stop_in_epoch_two)
    assert not (out / "metadata.json").exists()  # a cancelled run leaves no half model
    state = json.loads((out / ".resume" / "state.json").read_text())
    assert state["epoch"] == CANCEL_EPOCH - 1 and state["batch"] > 0  # saved mid-epoch, at the cancel

    seen = []
    result = run_job(finetune_job(full_config(occluded, out)), on_progress=lambda p: seen.append(p.payload))
    assert result.resumed_from == state["step"]
    assert next(s for s in seen if s)["kind"] == "resume"
    first_train = next(s for s in seen if s and s.get("kind") == "train")
    assert first_train["step"] == state["step"] + 1  # no step was repeated
    # The fine-tuned weights (α = 1, best epoch) and the saved mix both equal the uninterrupted run's.
    assert differs_from_base(reference.fine_tuned_state, base_weights)
    assert reference.fine_tuned_state.keys() == result.fine_tuned_state.keys()
    assert all(torch.equal(result.fine_tuned_state[k], reference.fine_tuned_state[k]) for k in base_weights)
    mine = load_file(str(out / "model.safetensors"))
    theirs = load_file(str(reference.model_dir / "model.safetensors"))
    assert differs_from_base(theirs, base_weights)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert result.alpha == reference.alpha and result.accuracy_after == reference.accuracy_after


def test_kill_9_then_resume(colours, tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "training", "finetune", str(colours), "--method", "full",
               "--model", TINY, "--pretrained", "none", "--epochs", "6", "--lr", "5e-4",
               "--batch-size", "8", "--out", str(out), "--device", "cpu"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / ".resume" / "state.json"
    deadline = time.monotonic() + 90
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), process.stderr.read().decode()[-2000:]
    if (out / "metadata.json").exists():
        pytest.skip("the run finished before it could be killed")
    saved = json.loads(state.read_text())

    config = FinetuneConfig(colours, method="full", arch=TINY, pretrained="none", epochs=6, lr=5e-4,
                            batch_size=8, out=out, device="cpu")
    result = run_job(finetune_job(config))
    assert result.resumed_from == saved["step"] > 0
    assert (out / "metadata.json").exists() and not (out / ".resume").exists()


def test_cancel_quick_before_it_starts(colours, tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    config = FinetuneConfig(colours, method="quick", arch=TINY, pretrained="none", out=tmp_path / "q",
                            device="cpu")
    with pytest.raises(Cancelled):
        run_job(finetune_job(config, cancel))
    assert not (tmp_path / "q" / "metadata.json").exists()
