"""Which model a (--model, --pretrained) pair means, and that its identity names its weights
(issue 9 §3, issue 10 items 1, 2, 10, 11): whole-content identity, aliases, contradictions,
malformed folders and base cycles as one sentence, eval mode after an export."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from clipdesk.core import models, onnx_convert, onnx_start, onnx_store
from clipdesk.core import onnx_backend as ob
from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import EmbeddingCache, NullCache
from clipdesk.core.demo import demo_model_dir
from clipdesk.core.engine import Engine
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.jobs import run_job
from clipdesk.core.models import TINY_ARCH, file_fingerprint, load_model, resolve_source


def _demo_arch() -> str:
    return json.loads((demo_model_dir() / "metadata.json").read_text())["architecture"]


# -- identity: the whole content ---------------------------------------------------------------------
def test_files_differing_only_in_the_middle_get_different_identities(tmp_path):
    size = 24 << 20  # larger than head + tail of the old fingerprint (4 MB each)
    data = bytearray(os.urandom(1024)) * (size // 1024)
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    first.write_bytes(data)
    data[size // 2] ^= 0xFF
    second.write_bytes(data)
    assert file_fingerprint(first) != file_fingerprint(second)


def test_identity_is_memoised_and_follows_edits(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x" * 1000)
    digest = file_fingerprint(path)
    memo = json.loads((models._memo_path()).read_text())
    assert memo[str(path.resolve())][2] == digest
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: reads.append(p) or real_open(p, *a, **k))
    assert file_fingerprint(path) == digest and str(path) not in map(str, reads)  # memo hit: not read
    monkeypatch.undo()
    path.write_bytes(b"y" * 1000)  # same size, new content and mtime
    os.utime(path, ns=(1, 1))
    assert file_fingerprint(path) != digest


def test_a_changed_layer_changes_the_model_identity(tmp_path):
    base = load_model(TINY_ARCH, "none", "cpu")
    weights = {k: v.clone().contiguous() for k, v in base.model.state_dict().items()}
    save_file(weights, str(tmp_path / "a.safetensors"))
    middle = sorted(weights)[len(weights) // 2]
    weights[middle] = weights[middle] + 0.01
    save_file(weights, str(tmp_path / "b.safetensors"))
    a = load_model(TINY_ARCH, str(tmp_path / "a.safetensors"), "cpu")
    b = load_model(TINY_ARCH, str(tmp_path / "b.safetensors"), "cpu")
    assert a.identity != b.identity
    assert onnx_start.quick_identity(TINY_ARCH, str(tmp_path / "b.safetensors"))[0] == b.identity


# -- aliases and contradictions -----------------------------------------------------------------------
def test_demo_alias_resolves_to_its_real_architecture(tmp_path):
    arch = _demo_arch()
    assert arch != "demo"
    assert resolve_source("demo", None) == (arch, "demo")
    assert resolve_source(None, "demo") == (arch, "demo")
    assert resolve_source("demo", "none") == (arch, "none")
    assert resolve_source(None, None) == (models.DEFAULT_ARCH, models.DEFAULT_PRETRAINED)
    assert resolve_source(None, str(demo_model_dir())) == (arch, str(demo_model_dir()))
    assert load_model("demo", None, "cpu").arch == arch
    with pytest.raises(ModelLoadError, match="leave out --model"):
        resolve_source("ViT-B-32", "demo")


def test_demo_with_a_checkpoint_path_uses_that_checkpoint(tmp_path):
    """`--model demo --pretrained FILE` (and a folder naming `demo` over a base file) load FILE."""
    weights = load_file(str(demo_model_dir() / "model.safetensors"))
    name = sorted(weights)[len(weights) // 2]
    weights[name] = weights[name] * 1.5
    changed = tmp_path / "changed.safetensors"
    save_file(weights, str(changed))
    demo = load_model("demo", None, "cpu")
    loaded = load_model("demo", str(changed), "cpu")
    assert loaded.identity != demo.identity and loaded.pretrained == str(changed)
    assert torch.equal(loaded.model.state_dict()[name], weights[name])
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"architecture": "demo", "base_pretrained": str(changed)}))
    legacy = load_model(None, str(folder), "cpu")
    assert legacy.identity == loaded.identity and legacy.arch == _demo_arch()
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("demo", str(tmp_path / "nonexistent.pt"), "cpu")


# -- malformed folders: one sentence ------------------------------------------------------------------
@pytest.mark.parametrize("content", [
    "[1, 2]", "null", '"text"', "42", "{not json",
    '{"architecture": 7}', '{"architecture": ""}', '{"architecture": "clipdesk-tiny", "class_names": "cat"}',
    '{"architecture": "clipdesk-tiny", "class_names": [null]}', '{"architecture": "clipdesk-tiny", "head": [1]}',
    '{"architecture": "clipdesk-tiny", "base_pretrained": 5}', '{"base_pretrained": "none"}',
])
def test_malformed_metadata_is_one_sentence(tmp_path, content):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "metadata.json").write_text(content)
    with pytest.raises(ModelLoadError) as error:
        load_model(None, str(folder), "cpu")
    assert str(folder) in str(error.value) and "\n" not in str(error.value)
    assert onnx_start.quick_identity(None, str(folder)) is None


def test_metadata_that_is_not_a_regular_small_file(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "metadata.json").mkdir()
    with pytest.raises(ModelLoadError, match="readable"):
        load_model(None, str(folder), "cpu")
    shutil.rmtree(folder / "metadata.json")
    (folder / "metadata.json").write_text(json.dumps({"architecture": TINY_ARCH, "pad": "x" * (2 << 20)}))
    with pytest.raises(ModelLoadError, match="readable"):
        load_model(None, str(folder), "cpu")


@pytest.mark.parametrize("shape", ["self", "pair", "relative"])
def test_base_pretrained_cycles_are_one_sentence(tmp_path, shape):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    meta = {"architecture": TINY_ARCH, "class_names": ["cat", "dog"]}
    if shape == "self":
        (a / "metadata.json").write_text(json.dumps({**meta, "base_pretrained": str(a)}))
    elif shape == "pair":
        (a / "metadata.json").write_text(json.dumps({**meta, "base_pretrained": str(b)}))
        (b / "metadata.json").write_text(json.dumps({**meta, "base_pretrained": str(a)}))
    else:
        (a / "metadata.json").write_text(json.dumps({**meta, "base_pretrained": "."}))
    with pytest.raises(ModelLoadError, match="loops back") as error:
        load_model(None, str(a), "cpu")
    assert "\n" not in str(error.value)


def test_contradicting_model_for_a_folder_is_an_error(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps({"architecture": TINY_ARCH, "base_pretrained": "none"}))
    assert load_model(None, str(folder), "cpu").arch == TINY_ARCH
    assert load_model(TINY_ARCH, str(folder), "cpu").arch == TINY_ARCH
    with pytest.raises(ModelLoadError, match=f"holds a {TINY_ARCH} model, but --model says ViT-B-32"):
        load_model("ViT-B-32", str(folder), "cpu")


# -- eval mode after an export, and the cache guard ---------------------------------------------------
def _in_eval(model) -> bool:
    return not any(module.training for module in model.modules())


def test_model_is_in_eval_mode_after_an_export_success_or_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_store, "SHIPPED", "no-shipped-export")  # export it here, not the demo's own
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "ok"))
    loaded = load_model("demo", None, "cpu")  # a ResNet tower: BatchNorm shows training mode
    run_job(onnx_convert.export_job(loaded))
    assert _in_eval(loaded.model)
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "broken"))
    marker = onnx_store.export_dir(loaded.identity, "fp32")
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"")  # a file where the export folder goes: the export "fails"
    with pytest.raises(Exception):  # noqa: B017 - whatever the exporter raises
        run_job(onnx_convert.export_job(loaded))
    assert _in_eval(loaded.model)


def test_failed_export_fallback_gives_no_cache_embeddings(tmp_path, monkeypatch, make_images):
    """Issue 10 item 1 as reported: the marker makes the export fail, torch carries on; the
    cached embeddings then equal a --no-cache run, on the next run as well."""
    monkeypatch.setattr(onnx_store, "SHIPPED", "no-shipped-export")  # not the demo's own export
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "cache"))
    images = make_images(4)
    loaded = load_model("demo", None, "cpu")
    marker = onnx_store.export_dir(loaded.identity, "fp32")
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"")
    cache = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite3")
    encoder = run_job(ob.make_onnx_encoder(loaded, "onnx").prepare_job())
    assert isinstance(encoder, TorchEncoder)
    first = run_job(Engine(encoder, cache).embed_job(images))
    reference = run_job(Engine(TorchEncoder(load_model("demo", None, "cpu")), NullCache()).embed_job(images))
    np.testing.assert_allclose(first.features, reference.features, atol=1e-5)
    marker.unlink()
    again = run_job(Engine(TorchEncoder(loaded), cache).embed_job(images))
    assert again.encoded == 0
    np.testing.assert_allclose(again.features, reference.features, atol=1e-5)
    cache.close()


def test_training_mode_encoder_never_writes_the_cache(tmp_path, make_images):
    loaded = load_model(TINY_ARCH, "none", "cpu")
    loaded.model.train()
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite3")
    encoder = TorchEncoder(loaded)
    assert not encoder.in_eval_mode
    result = run_job(Engine(encoder, cache).embed_job(make_images(2)))
    assert result.encoded == 2
    assert cache.get_images(loaded.identity, result.digests) == {}
    loaded.model.eval()
    assert encoder.in_eval_mode
    cache.close()


def test_legacy_fingerprint_paths_still_resolve(tmp_path):
    """quick_identity and load_model agree for a folder (the torch-free start keys exports alike)."""
    folder = tmp_path / "full"
    folder.mkdir()
    loaded = load_model(TINY_ARCH, "none", "cpu")
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "metadata.json").write_text(json.dumps({"architecture": TINY_ARCH, "base_pretrained": "none"}))
    full = load_model(None, str(folder), "cpu")
    assert onnx_start.quick_identity(None, str(folder))[:3] == (full.identity, TINY_ARCH, str(folder))
    assert Path(full.pretrained) == folder


def test_model_lists_skip_malformed_folders(tmp_path):
    from clipdesk.core.catalog import finetuned_models

    for name, content in {"list": "[1]", "null": "null", "types": '{"architecture": 3}',
                          "good": json.dumps({"architecture": TINY_ARCH, "class_names": ["cat"]})}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metadata.json").write_text(content)
    entries = finetuned_models(tmp_path)
    assert [(e.arch, Path(e.pretrained).name, e.class_names) for e in entries] == [(TINY_ARCH, "good", ("cat",))]
