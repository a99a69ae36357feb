"""Labelled folders a tiny random-initialised model can learn in seconds: flat noisy colours
(quick), and hues behind a random-coloured block (full: fine-tuning beats the base model there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ft_helpers import TINY, full_config, make_colour_folder, make_occluded_hue_folder

from clipdesk.core.jobs import run_job


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is several times faster."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def colours(tmp_path_factory) -> Path:
    return make_colour_folder(tmp_path_factory.mktemp("colours") / "colours")


@pytest.fixture(scope="session")
def occluded(tmp_path_factory) -> Path:
    return make_occluded_hue_folder(tmp_path_factory.mktemp("occluded") / "occluded")


def _isolated_run(tmp_path_factory, job_factory):
    """Session-wide results still keep the user's real cache and data folders untouched."""
    import torch

    root = tmp_path_factory.mktemp("session-userdirs")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CACHE", "CONFIG", "DATA"):
            patch.setenv(f"CLIPDESK_{name}_DIR", str(root / name.lower()))
        history = []
        result = run_job(job_factory(), on_progress=lambda p: history.append(p.payload))
    torch.set_num_threads(previous)
    return result, [h for h in history if isinstance(h, dict)]


@pytest.fixture(scope="session")
def quick_run(colours, tmp_path_factory):
    from training.api import FinetuneConfig, finetune_job

    out = tmp_path_factory.mktemp("quick") / "model"
    config = FinetuneConfig(colours, method="quick", arch=TINY, pretrained="none", out=out, device="cpu")
    return _isolated_run(tmp_path_factory, lambda: finetune_job(config))


@pytest.fixture(scope="session")
def full_run(occluded, tmp_path_factory):
    from training.api import finetune_job

    out = tmp_path_factory.mktemp("full") / "model"
    return _isolated_run(tmp_path_factory, lambda: finetune_job(full_config(occluded, out)))


@pytest.fixture(scope="session")
def base_weights() -> dict:
    """The random base model `full` starts from (pretrained none is seeded: the same every load)."""
    from clipdesk.core.models import load_model

    return {k: v.detach().clone() for k, v in load_model(TINY, "none", "cpu").model.state_dict().items()}
