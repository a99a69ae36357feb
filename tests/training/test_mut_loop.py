"""Resume, checked against the run that was never interrupted (docs/mutation.md).

A two-tower model small enough to train in milliseconds goes through the real
`contrastive_train_job`; one run is cancelled (or abandoned, as by `kill -9`) part-way and resumed
from its state folder, and its trained weights, best-epoch weights and history must equal, bit for
bit, those of a run that was never stopped. The weights must also have moved from the start: a
resume that restored nothing, or a run that trained nothing, cannot pass.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import pytest
import torch
import torch.nn.functional as F

from clipdesk.core.errors import Cancelled
from clipdesk.core.jobs import CancelToken
from training import loop
from training.loop import LoopConfig, StateStore, clear_state, contrastive_train_job

N_ITEMS, N_GROUPS, DIM = 24, 4, 6


class TinyClip(torch.nn.Module):
    """Image tower: one linear layer; text tower: an embedding per token; CLIP's logit scale."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.visual = torch.nn.Linear(DIM, 4)
        self.token_embedding = torch.nn.Embedding(N_GROUPS, 4)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, images, texts):
        image_features = F.normalize(self.visual(images), dim=-1)
        text_features = F.normalize(self.token_embedding(texts).mean(dim=1), dim=-1)
        return image_features, text_features, self.logit_scale.exp()


class Items:
    """Item i: a noisy copy of its group's direction; indexed by (epoch, i) as the loader asks."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        centres = torch.randn(N_GROUPS, DIM, generator=generator)
        self.groups = [i % N_GROUPS for i in range(N_ITEMS)]
        self.images = [centres[g] + 0.3 * torch.randn(DIM, generator=generator) for g in self.groups]

    def __len__(self) -> int:
        return N_ITEMS

    def __getitem__(self, key):
        _, i = key
        return {"image": self.images[i], "group": self.groups[i]}


GROUP_TOKENS = torch.arange(N_GROUPS).reshape(N_GROUPS, 1)
METRICS = [0.50, 0.70, 0.65, 0.60]  # epoch 2 is the best: the result is not the last weights


def run(state_dir, config: LoopConfig, stop_after: int | None = None, how: str = "cancel",
        evaluated: list | None = None):
    """Train a fresh TinyClip; returns (result or None, model, payload kinds seen).

    `evaluated` counts the epochs evaluated so far across a stopped run and its resumption, so
    epoch e always scores METRICS[e - 1], as a real validation of that epoch's weights would.
    """
    torch.manual_seed(0)
    model = TinyClip()
    evaluated = [] if evaluated is None else evaluated

    def evaluate(_model) -> float:
        evaluated.append(True)
        return METRICS[len(evaluated) - 1]

    cancel = CancelToken()
    job = contrastive_train_job(model, Items(), config, torch.device("cpu"), GROUP_TOKENS,
                                evaluate=evaluate, state_dir=state_dir, fingerprint="run-1",
                                cancel=cancel)
    kinds = []
    try:
        while True:
            progress = next(job)
            payload = progress.payload or {}
            kinds.append(payload.get("kind"))
            if stop_after is not None and payload.get("kind") == "train" and payload["step"] == stop_after:
                if how == "abandon":  # kill -9: nothing more runs, not even a save
                    job.close()
                    return None, model, kinds
                cancel.cancel()
    except StopIteration as stop:
        return stop.value, model, kinds
    except Cancelled:
        return None, model, kinds


def config(**overrides) -> LoopConfig:
    settings = dict(epochs=4, lr=0.05, batch_size=6, weight_decay=0.1, warmup_fraction=0.25,
                    seed=3, save_every=3)
    settings.update(overrides)
    return LoopConfig(**settings)


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# 4 steps an epoch. Cancelled: saved where it stopped. Abandoned at step 10 (epoch 3, after the
# best epoch 2): the last save was step 9 (save_every=3), and the best weights come from the state.
@pytest.mark.parametrize("accum, stop_after, how, saved_at", [(1, 5, "cancel", 5), (1, 10, "abandon", 9),
                                                              (2, 3, "cancel", 3)])
def test_a_stopped_run_resumes_to_exactly_the_uninterrupted_weights(tmp_path, accum, stop_after, how,
                                                                    saved_at):
    settings = config(accum_steps=accum)
    whole, whole_model, _ = run(tmp_path / "whole", settings)
    start = TinyClip().state_dict()
    moved = [n for n in start if not torch.equal(start[n], whole.state[n])]
    assert moved, "training must change the weights, or equal weights prove nothing"
    assert whole.best_epoch == 2 and whole.best_metric == pytest.approx(0.70)

    evaluated: list = []
    stopped, _, _ = run(tmp_path / "resumed", settings, stop_after=stop_after, how=how,
                        evaluated=evaluated)
    assert stopped is None
    resumed, resumed_model, kinds = run(tmp_path / "resumed", settings, evaluated=evaluated)
    assert kinds[0] == "resume"
    assert resumed.resumed_from == saved_at
    assert resumed.steps == whole.steps
    assert_same_state(resumed.state, whole.state)  # the best epoch's weights
    assert_same_state(resumed_model.state_dict(), whole_model.state_dict())  # the last weights
    assert (resumed.best_epoch, resumed.best_metric) == (whole.best_epoch, whole.best_metric)
    assert resumed.history == whole.history  # the losses of every step, in order


def test_a_state_from_another_run_is_not_resumed(tmp_path):
    settings = config()
    run(tmp_path / "state", settings, stop_after=5)
    store = StateStore(tmp_path / "state", "another-run")
    assert store.load() is None
    info = StateStore(tmp_path / "state", "run-1").load()
    assert info is not None and info["step"] == 5 and info["epoch"] == 1


def test_the_state_folder_holds_one_complete_state_and_clear_removes_it(tmp_path):
    settings = config()
    folder = tmp_path / "state"
    run(folder, settings, stop_after=5)
    state = json.loads((folder / "state.json").read_text())
    names = {p.name for p in folder.iterdir()}
    assert names == {"state.json", state["model_file"], state["optimizer_file"], state["best_file"]}
    clear_state(folder)
    assert not folder.exists()


def test_a_damaged_state_file_means_a_fresh_start(tmp_path):
    settings = config()
    folder = tmp_path / "state"
    run(folder, settings, stop_after=5)
    (folder / "state.json").write_text("{broken")
    fresh, _, kinds = run(folder, settings)  # evaluated from epoch 1 again, as a fresh run is
    whole, _, _ = run(tmp_path / "whole", settings)
    assert "resume" not in kinds and fresh.resumed_from is None
    assert_same_state(fresh.state, whole.state)


# -- the state store through its own API, read back with json/os/safetensors ------------------------

def tensors(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=generator), "b": torch.randn(2, generator=generator)}


def optimizer_state(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"state": {0: {"step": torch.tensor(float(seed)), "exp_avg": torch.randn(2, generator=generator)}},
            "param_groups": [{"lr": 0.01 * seed, "params": [0]}]}


def save(store: StateStore, seed: int, best: int | None, best_changed: bool) -> None:
    store.save({"epoch": seed, "step": 10 * seed}, tensors(seed), optimizer_state(seed),
               None if best is None else tensors(100 + best), best_changed)


def state_json(folder) -> dict:
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


def test_without_a_folder_nothing_is_saved_loaded_or_cleared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a None folder must not turn into the working directory
    store = StateStore(None, "run-1")
    save(store, 1, best=1, best_changed=True)
    assert store.load() is None
    store.clear()
    clear_state(None)
    assert list(tmp_path.iterdir()) == []


def test_clearing_a_folder_that_is_not_there_does_nothing(tmp_path):
    clear_state(tmp_path / "never")
    StateStore(tmp_path / "never", "run-1").clear()
    assert list(tmp_path.iterdir()) == []


def test_a_state_saved_under_missing_folders_loads_back_exactly(tmp_path):
    folder = tmp_path / "out" / "run" / "state"
    save(StateStore(folder, "run-1"), 2, best=None, best_changed=False)
    state = state_json(folder)
    assert (state["fingerprint"], state["epoch"], state["step"]) == ("run-1", 2, 20)
    assert "best_file" not in state  # nothing evaluated yet: no best weights
    info = StateStore(folder, "run-1").load()
    assert info["best"] is None and info["step"] == 20
    assert_same_state(info["model"], tensors(2))
    expected = optimizer_state(2)
    assert info["optimizer"]["param_groups"] == expected["param_groups"]
    assert_same_state(info["optimizer"]["state"][0], expected["state"][0])


def test_the_best_weights_are_written_once_until_they_change(tmp_path):
    folder = tmp_path / "state"
    store = StateStore(folder, "run-1")
    save(store, 1, best=1, best_changed=False)  # a first save writes the best it is given
    first = state_json(folder)["best_file"]
    written = os.stat(folder / first)
    assert_same_state(StateStore(folder, "run-1").load()["best"], tensors(101))

    save(store, 2, best=1, best_changed=False)  # unchanged: the same file, not written again
    state = state_json(folder)
    assert state["best_file"] == first
    again = os.stat(folder / first)
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert {p.name for p in folder.iterdir()} == {"state.json", state["model_file"],
                                                  state["optimizer_file"], first}

    save(store, 3, best=3, best_changed=True)  # a new best: a new file, the old one gone
    state = state_json(folder)
    assert state["best_file"] != first and not (folder / first).exists()
    assert_same_state(StateStore(folder, "run-1").load()["best"], tensors(103))


def test_a_save_that_dies_before_its_commit_leaves_the_previous_state_whole(tmp_path, monkeypatch):
    """kill -9 after the new files are written but before state.json is replaced: the committed
    state still loads, with its own weights (the new save wrote files of its own names)."""
    folder = tmp_path / "state"
    store = StateStore(folder, "run-1")
    save(store, 1, best=1, best_changed=True)

    def killed(*_args, **_kwargs):
        raise OSError("killed at the commit point")

    monkeypatch.setattr(loop, "write_json_atomic", killed)
    with pytest.raises(OSError):
        save(store, 2, best=2, best_changed=True)
    monkeypatch.undo()
    info = StateStore(folder, "run-1").load()
    assert info["step"] == 10
    assert_same_state(info["model"], tensors(1))
    assert_same_state(info["best"], tensors(101))
    assert_same_state(info["optimizer"]["state"][0], optimizer_state(1)["state"][0])


class Planted:
    """Unpickling this object creates the file `marker`: code run by loading a state."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("forced", [False, True])
def test_an_optimizer_file_that_is_not_plain_tensors_is_never_unpickled(tmp_path, monkeypatch, forced):
    """The optimizer file is read with weights_only=True, even where the environment tells torch
    to default to full unpickling; such a state means a fresh start, and its code never runs."""
    if forced:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    folder = tmp_path / "state"
    save(StateStore(folder, "run-1"), 1, best=1, best_changed=True)
    marker = tmp_path / "code-ran"
    torch.save({"state": Planted(marker), "param_groups": []}, folder / state_json(folder)["optimizer_file"])
    assert StateStore(folder, "run-1").load() is None
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["model gone", "best damaged", "optimizer truncated"])
def test_a_state_whose_files_are_gone_or_damaged_means_a_fresh_start(tmp_path, damage):
    folder = tmp_path / "state"
    save(StateStore(folder, "run-1"), 1, best=1, best_changed=True)
    state = state_json(folder)
    if damage == "model gone":
        (folder / state["model_file"]).unlink()
    elif damage == "best damaged":
        (folder / state["best_file"]).write_bytes(b"not a safetensors file")
    else:
        path = folder / state["optimizer_file"]
        path.write_bytes(path.read_bytes()[:60])
    assert StateStore(folder, "run-1").load() is None
