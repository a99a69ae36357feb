"""torchrun with 2 CPU processes (gloo) trains the same model as one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from ft_helpers import TINY, full_cli_options
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def test_two_gloo_processes_match_a_single_process_run(full_run, occluded, base_weights, tmp_path):
    reference, _ = full_run
    # Not vacuous: the single-process run kept fine-tuned weights (α > 0), so the weights compared
    # below come out of the training the two processes share, not the base model both start from.
    assert reference.alpha > 0
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "training", "finetune", str(occluded), "--method", "full", "--model", TINY,
               "--pretrained", "none", *full_cli_options(), "--out", str(out), "--device", "cpu",
               "--format", "json"]
    # Its own process group, so a hang cannot leave the worker processes behind.
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)  # rank 0 alone prints (and writes)
    assert report["model_dir"] == str(out)

    mine = load_file(str(out / "model.safetensors"))
    theirs = load_file(str(reference.model_dir / "model.safetensors"))
    assert mine.keys() == theirs.keys()
    moved = [k for k in theirs if theirs[k].is_floating_point()
             and not torch.allclose(theirs[k], base_weights[k].to(theirs[k].dtype), atol=1e-6)]
    assert len(moved) > 0.8 * sum(v.is_floating_point() for v in theirs.values())
    # Same global batches, same gradients: only the order of float sums differs across ranks.
    worst = max(float((mine[k].double() - theirs[k].double()).abs().max()) for k in mine)
    assert worst < 1e-3
    assert report["alpha"] == reference.alpha
    assert report["accuracy_after"] == reference.accuracy_after
