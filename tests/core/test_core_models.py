"""Model loading: architectures, seeded random weights, one-sentence errors, offline downloads and
device choice. Nothing here reaches the network: sockets are blocked where a download could start."""

from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from clipdesk.core import models
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.jobs import Progress
from clipdesk.core.models import (
    TINY_ARCH,
    list_architectures,
    list_pretrained_tags,
    load_model,
    load_model_job,
    resolve_device,
)
from clipdesk.core.paths import weights_dir


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly instead of downloading."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"test blocked a network connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: refuse(None, address))
    return attempts


def one_sentence(message: str) -> bool:
    return "\n" not in message and "Traceback" not in message and len(message) < 800


def test_tiny_architecture_registered():
    assert TINY_ARCH in list_architectures()
    assert "ViT-B-32" in list_architectures()
    assert "laion2b_s34b_b79k" in list_pretrained_tags("ViT-B-32")


def test_random_weights_are_seeded_and_identified(tiny_loaded):
    again = load_model(TINY_ARCH, "none", "cpu")
    for (name, a), (_, b) in zip(tiny_loaded.model.state_dict().items(),
                                 again.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert tiny_loaded.identity == again.identity == f"{TINY_ARCH}/none-seed0"
    assert tiny_loaded.image_size == 64 and tiny_loaded.context_length == 77
    assert not tiny_loaded.use_amp and tiny_loaded.device == torch.device("cpu")
    assert not tiny_loaded.model.training


def test_loading_does_not_disturb_global_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_model(TINY_ARCH, "none", "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_load_job_reports_progress_for_none():
    job = load_model_job(TINY_ARCH, "none", "cpu")
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        loaded = stop.value
    assert all(isinstance(step, Progress) for step in steps)
    assert loaded.arch == TINY_ARCH


def test_unknown_architecture():
    with pytest.raises(ModelLoadError, match="Unknown architecture 'ViT-Q-99'") as info:
        load_model("ViT-Q-99", "none", "cpu")
    assert one_sentence(str(info.value))


def test_unknown_tag_lists_known_tags(no_network):
    with pytest.raises(ModelLoadError, match="'not_a_tag' is neither a pretrained tag") as info:
        load_model("ViT-B-32", "not_a_tag", "cpu")
    assert "laion2b_s34b_b79k" in str(info.value) and one_sentence(str(info.value))
    assert no_network == []


@pytest.mark.parametrize("name", ["missing.safetensors", "missing.pt", "sub/missing"])
def test_missing_checkpoint_file(tmp_path, name):
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_model(TINY_ARCH, str(tmp_path / name), "cpu")
    assert one_sentence(str(info.value))


def test_wrong_architecture_checkpoint(tmp_path, tiny_loaded):
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_loaded.model.state_dict().items()}, str(path))
    with pytest.raises(ModelLoadError, match="does not hold weights for the ViT-B-32") as info:
        load_model("ViT-B-32", str(path), "cpu")
    assert one_sentence(str(info.value)) and str(path) in str(info.value)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_garbage_checkpoint_file(tmp_path):
    for name, data in (("junk.safetensors", b"not a safetensors file" * 10), ("junk.pt", b"\x80junk")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelLoadError) as info:
            load_model(TINY_ARCH, str(path), "cpu")
        assert one_sentence(str(info.value)) and name in str(info.value)


def test_pickled_objects_are_not_unpickled(tmp_path):
    """A .pt holding arbitrary Python objects is refused (weights_only), never executed."""
    path = tmp_path / "evil.pt"
    marker = tmp_path / "executed"
    torch.save({"state_dict": Exploit(str(marker))}, path)
    with pytest.raises(ModelLoadError):
        load_model(TINY_ARCH, str(path), "cpu")
    assert not marker.exists()


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_folder_without_metadata(tmp_path):
    with pytest.raises(ModelLoadError, match="metadata.json") as info:
        load_model(TINY_ARCH, str(tmp_path), "cpu")
    assert one_sentence(str(info.value))


def test_offline_tag_download_gives_clear_message(monkeypatch, no_network):
    """HF_HUB_OFFLINE=1, empty cache: one message naming the model, the cache folder and the way out."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    tag = "laion2b_s34b_b79k"  # a real, downloadable tag: the point is that it is NOT downloaded
    assert not list(weights_dir().rglob("*.safetensors"))
    with pytest.raises(ModelLoadError) as info:
        load_model("ViT-B-32", tag, "cpu")
    message = str(info.value)
    assert "ViT-B-32" in message and tag in message
    assert str(weights_dir()) in message
    assert "--pretrained" in message
    assert one_sentence(message)
    assert no_network == []


# -- devices -----------------------------------------------------------------------------------


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    mps = getattr(torch.backends, "mps", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: True)
        assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("gpu") == torch.device("cuda")


def test_explicit_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="CUDA") as info:
        resolve_device("cuda")
    assert "--device cpu" in str(info.value)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
        with pytest.raises(ModelLoadError, match="MPS"):
            resolve_device("mps")
    with pytest.raises(ModelLoadError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


def test_amp_only_on_cuda(tiny_loaded, monkeypatch):
    assert models.LoadedModel.use_amp.fget(tiny_loaded) is False
    fake = models.LoadedModel(**{**tiny_loaded.__dict__, "device": torch.device("cuda")})
    assert fake.use_amp is True
    fake = models.LoadedModel(**{**tiny_loaded.__dict__, "device": torch.device("mps")})
    assert fake.use_amp is False
