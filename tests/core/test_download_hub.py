"""Model downloads over real HTTP, from a local stand-in for the Hugging Face hub (hub_server.py):
byte progress up to the file's size, the file as served, cancel mid-transfer without a file left
that could pass for the weights, and one sentence when the hub cannot be reached."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
import torch
from hub_server import (
    ARCH,
    REPO_ID,
    TAG,
    WEIGHTS_NAME,
    HubServer,
    blob_url,
    closed_port_url,
    point_hub_at,
    register_tag,
    tiny_weights,
)

from clipdesk.core.download import cached_weights, download_job
from clipdesk.core.errors import Cancelled, ModelLoadError
from clipdesk.core.jobs import CancelToken, run_job
from clipdesk.core.models import load_model
from clipdesk.core.paths import weights_dir


@pytest.fixture(scope="module")
def weights():
    return tiny_weights()


@pytest.fixture
def hub(monkeypatch, weights):
    with HubServer() as server:
        server.add(REPO_ID, WEIGHTS_NAME, weights[0])
        point_hub_at(monkeypatch, server.url)
        register_tag(monkeypatch)
        yield server


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _dirs, names in os.walk(folder) for name in names)


def test_download_reports_bytes_and_lands_the_served_file(hub, weights, monkeypatch):
    data, state = weights
    steps = []
    path = run_job(download_job(ARCH, TAG, CancelToken()), steps.append)
    assert steps and all(step.unit == "B" for step in steps)
    dones = [step.done for step in steps]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)  # strictly increasing
    steps_bytes = [b - a for a, b in zip([0, *dones], dones)]
    assert max(steps_bytes) <= 1 << 20  # a step each MiB at most, so a slow line still moves
    assert dones[-1] == len(data) and {step.total for step in steps} == {len(data)}
    assert path.is_relative_to(weights_dir()) and sha256(path.read_bytes()) == sha256(data)
    assert hub.transfers() == 1
    # Offline afterwards: the cache is used, no request is made, and the model has the served weights.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.close()
    assert cached_weights(ARCH, TAG) == path
    assert run_job(download_job(ARCH, TAG)) == path
    loaded = load_model(ARCH, TAG, device="cpu")
    got = loaded.model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[name], tensor) for name, tensor in state.items())


def test_cancel_mid_transfer_is_prompt_and_leaves_no_weights(hub, weights):
    data = weights[0]
    hub.delay = 0.02  # 64 KiB per 20 ms: ~3 MB/s, the whole file would take ~4 s
    token = CancelToken()
    job = download_job(ARCH, TAG, token)
    first = next(job)
    assert 0 < first.done < len(data)
    token.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        for _ in job:
            pass
    assert time.monotonic() - started < 3.0  # generous for a loaded machine; the job polls every 0.1 s
    assert cached_weights(ARCH, TAG) is None
    # Nothing whole is left behind once the transfer thread has given up: no blob of the file's
    # size, no snapshot entry (only huggingface_hub's refs/lock bookkeeping may stay).
    assert hub.aborted.wait(10)
    deadline = time.monotonic() + 5
    while any(n.endswith(".incomplete") for n in files_under(weights_dir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = files_under(weights_dir())
    assert not any(name.endswith(".incomplete") or "snapshots" in name or "blobs" in name for name in left), left
    # A second download afterwards completes.
    hub.delay = 0.0
    path = run_job(download_job(ARCH, TAG, CancelToken()))
    assert sha256(path.read_bytes()) == sha256(data)


def test_cancel_while_the_server_stalls(hub, weights):
    """No chunk arrives at all (a stalled line): the cancel still lands within a fraction of a second."""
    hub.delay = 30  # one 64 KiB piece, then silence
    hub.chunk = 64 * 1024
    token = CancelToken()
    job = download_job(ARCH, TAG, token)
    threading.Timer(0.5, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        for _ in job:
            pass
    assert time.monotonic() - started < 3.0  # the stall lasts 30 s
    assert cached_weights(ARCH, TAG) is None


def test_closing_the_job_stops_its_transfer(hub):
    """A job closed without a cancel (a window deleted mid-load, Ctrl-C in the API) stops its transfer
    thread too, instead of it downloading on in the background."""
    hub.delay = 0.02
    job = download_job(ARCH, TAG)  # no token at all
    next(job)
    job.close()
    assert hub.aborted.wait(10)
    assert cached_weights(ARCH, TAG) is None


def test_a_repo_without_safetensors_gives_the_bin(hub, weights):
    """open_clip's convention for a bare repo: the safetensors file, else the pickled .bin; the
    hub's 404 for the first is not an error."""
    data = weights[0] + b"as a .bin"  # other bytes, so the file cannot be mistaken for the first
    hub.files.clear()
    hub.add(REPO_ID, "open_clip_pytorch_model.bin", data)
    path = run_job(download_job(ARCH, TAG, CancelToken()))
    assert path.name == "open_clip_pytorch_model.bin" and sha256(path.read_bytes()) == sha256(data)
    assert cached_weights(ARCH, TAG) == path
    assert ("HEAD", f"/{REPO_ID}/resolve/main/{WEIGHTS_NAME}") in hub.requests


def test_plain_url_tag_downloads_whole_or_not_at_all(hub, weights, monkeypatch):
    """A tag with only a URL (no hf_hub): byte progress, and a cancel leaves no file under the
    name that `cached_weights` would take for the weights."""
    data = weights[0]
    register_tag(monkeypatch, hub_path="", url=blob_url(hub, data))
    hub.delay = 0.02
    token = CancelToken()
    job = download_job(ARCH, TAG, token)
    assert next(job).done == 1 << 20
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in job:
            pass
    assert hub.aborted.wait(10)
    deadline = time.monotonic() + 5
    while files_under(weights_dir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_under(weights_dir()) == [] and cached_weights(ARCH, TAG) is None
    hub.delay = 0.0
    steps = []
    path = run_job(download_job(ARCH, TAG, CancelToken()), steps.append)
    assert steps[-1].done == steps[-1].total == len(data)
    assert sha256(path.read_bytes()) == sha256(data) and cached_weights(ARCH, TAG) == path


def test_through_a_proxy_when_the_hub_is_not_directly_reachable(hub, weights, monkeypatch):
    """Behind a proxy, a direct connection to the hub may fail while the proxy gets through: the
    reachability check must not turn that into "no connection" (here the hub's own address is a
    closed port, and the proxy is the stand-in server)."""
    point_hub_at(monkeypatch, closed_port_url())
    monkeypatch.setenv("HTTP_PROXY", hub.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    path = run_job(download_job(ARCH, TAG, CancelToken()))
    assert sha256(path.read_bytes()) == sha256(weights[0])
    assert hub.proxied and hub.transfers() == 1


def test_unreachable_hub_is_one_sentence(monkeypatch):
    point_hub_at(monkeypatch, closed_port_url())
    register_tag(monkeypatch)
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as caught:
        run_job(download_job(ARCH, TAG, CancelToken()))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith(f"Could not download the weights for {ARCH} '{TAG}' (no connection to 127.0.0.1:")
    assert "\n" not in message and "Traceback" not in message
