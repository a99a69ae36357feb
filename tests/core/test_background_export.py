"""The first use of a model is served by torch at once; the ONNX export runs in a separate,
low-priority process, one per model, and later uses switch to it (issue 9 §2, issue 10 item 7)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from clipdesk.core import onnx_backend as ob
from clipdesk.core import onnx_export as bg
from clipdesk.core import onnx_store
from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.models import TINY_ARCH, load_model


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(bg.BACKGROUND_ENV, "1")
    return tmp_path / "cache"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_first_use_serves_torch_and_switches_once_the_export_is_verified(cache_root, make_images, caplog):
    loaded = load_model(TINY_ARCH, "none", "cpu")
    images = make_images(3)
    with caplog.at_level(logging.WARNING):
        encoder = run_job(ob.make_onnx_encoder(loaded, "auto").prepare_job())
    assert isinstance(encoder, ob.OnnxEncoder) and encoder.name == ob.PENDING_NAME
    assert encoder.note == bg.NOTE and sum(bg.NOTE in r.getMessage() for r in caplog.records) == 1
    assert encoder._process is None  # not before the first results
    engine = Engine(encoder, NullCache())
    first = run_job(engine.embed_job(images))  # served now, by torch; then the export starts
    assert encoder._process is not None
    assert encoder._process.wait(timeout=240) == 0
    assert onnx_store.cached_export(loaded.identity) is not None and not (bg.model_root(loaded.identity) / bg.LOCK_FILE).exists()
    encoder._polled = 0.0
    second = run_job(engine.embed_job(images))
    assert encoder.name == "onnx" and encoder._fallback is None and encoder.encoder_calls >= 1
    np.testing.assert_allclose(second.features, first.features, atol=1e-5)
    later = run_job(ob.make_onnx_encoder(loaded, "auto").prepare_job())  # the next run: ONNX at once
    assert isinstance(later, ob.OnnxEncoder) and later.name == "onnx" and later._process is None


def test_one_export_per_model_and_stale_locks_are_taken_over(cache_root):
    identity = "x/none-seed0"
    with bg.export_lock(identity) as held:
        assert held and bg.export_running(identity)
        with bg.export_lock(identity) as second:
            assert not second
        assert bg.start_background_export(TINY_ARCH, "none", identity) is None  # one is running
    assert not bg.export_running(identity)
    (bg.model_root(identity) / bg.LOCK_FILE).write_text(f"{_dead_pid()}\n")  # owner was kill -9'd
    assert not bg.export_running(identity)
    with bg.export_lock(identity) as held:
        assert held


def test_killed_export_folders_are_removed_on_the_next_run(cache_root):
    loaded = load_model(TINY_ARCH, "none", "cpu")
    root = bg.model_root(loaded.identity)
    dead = root / f".tmp-fp32-{_dead_pid()}-0123abcd"
    legacy = root / ".tmp-fp32-deadbeef"  # older name, no pid
    alive = root / f".tmp-fp32-{os.getpid()}-89abcdef"  # an export in progress: kept
    for folder in (dead, legacy, alive):
        folder.mkdir(parents=True)
        (folder / "visual.onnx.data").write_bytes(b"\0" * 1024)
    os.environ[bg.BACKGROUND_ENV] = "0"  # the run itself must not start one here
    try:
        encoder = run_job(ob.make_onnx_encoder(loaded, "auto").prepare_job())
    finally:
        os.environ[bg.BACKGROUND_ENV] = "1"
    assert isinstance(encoder, TorchEncoder)
    assert not dead.exists() and not legacy.exists() and alive.exists()


def test_a_failed_export_is_recorded_and_not_retried_every_run(cache_root, caplog):
    loaded = load_model(TINY_ARCH, "none", "cpu")
    assert bg.run_export(TINY_ARCH, "none", "not/the-identity") == 1  # the weights "changed"
    assert bg.recent_failure("not/the-identity")
    bg.record_failure(loaded.identity, "RuntimeError: exporter exploded")
    with caplog.at_level(logging.WARNING):
        encoder = run_job(ob.make_onnx_encoder(loaded, "auto").prepare_job())
    assert isinstance(encoder, TorchEncoder) and "exporter exploded" in caplog.text
    assert not bg.export_running(loaded.identity)
    marker = bg.model_root(loaded.identity) / bg.FAILED_FILE
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, "time": time.time() - bg.RETRY_AFTER_S - 1}))
    assert bg.recent_failure(loaded.identity) is None  # a day later: tried again
    marker.write_text(json.dumps({**record, "version": "0.0.0/format-1"}))
    assert bg.recent_failure(loaded.identity) is None  # a new version: tried again
    assert not list(bg.model_root(loaded.identity).glob("fp32"))  # nothing half-written


def test_explicit_onnx_backend_still_exports_at_once(cache_root):
    loaded = load_model(TINY_ARCH, "none", "cpu")
    encoder = run_job(ob.make_onnx_encoder(loaded, "onnx").prepare_job())
    assert encoder.name == "onnx" and encoder.folder is not None and encoder._process is None
