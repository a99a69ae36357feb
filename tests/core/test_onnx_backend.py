"""The ONNX Runtime backend against the torch path it stands in for (issue 6).

Exports are made once per module (tiny: a few seconds; ViT-B-32: the slow one) into their own
cache folders; each test then builds encoders over those folders.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from clipdesk.core import onnx_backend as ob
from clipdesk.core import onnx_convert, onnx_lite, onnx_session, onnx_start, onnx_store
from clipdesk.core.backends import TorchEncoder, make_encoder
from clipdesk.core.cache import EmbeddingCache, NullCache
from clipdesk.core.engine import Engine, open_engine_job
from clipdesk.core.errors import Cancelled
from clipdesk.core.jobs import CancelToken, Progress, run_job
from clipdesk.core.models import TINY_ARCH, load_model
from clipdesk.core.onnx_lite import ClipBpeTokenizer, NumpyPreprocess

LABELS = ["cat", "dog | puppy", "a red car", "mountain"]


def _export(loaded, root: Path, precision: str = "fp32"):
    """Run the export job with the cache pointed at `root`; return (folder, meta, progress)."""
    seen: list[Progress] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLIPDESK_CACHE_DIR", str(root))
        folder, meta = run_job(onnx_convert.export_job(loaded, precision), seen.append)
    return folder, meta, seen


@pytest.fixture(scope="module")
def tiny_root(tiny_loaded, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("onnx-tiny")
    _export(tiny_loaded, root)
    return root


@pytest.fixture(scope="module")
def tiny_export(tiny_loaded, tiny_root):
    folder, meta, _ = _export(tiny_loaded, tiny_root)
    return folder, meta


def _probabilities(encoder, images, labels=LABELS, templates="photo"):
    if isinstance(encoder, ob.OnnxEncoder):
        encoder.open_text_session()  # else labels go through the torch model in memory
    engine = Engine(encoder, NullCache())
    label_set = engine.label_set(labels, templates)
    embedded = run_job(engine.embed_job(images, batch_size=4))
    return embedded.features, engine.score(embedded.features, label_set).probs


# -- equivalence ------------------------------------------------------------------------------------
def test_tiny_onnx_probabilities_equal_torch(tiny_loaded, tiny_export, make_images):
    folder, meta = tiny_export
    images = make_images(6, size=(120, 80))
    torch_features, torch_probs = _probabilities(TorchEncoder(tiny_loaded), images)
    onnx_features, onnx_probs = _probabilities(ob.OnnxEncoder(tiny_loaded, folder=folder, meta=meta), images)
    assert onnx_probs.shape == (6, len(LABELS))
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_features, torch_features, atol=1e-5, rtol=0)


def test_vitb32_onnx_probabilities_equal_torch(vitb32_loaded, make_images, tmp_path_factory, monkeypatch):
    # The padding-free text graph (torch.export, ~15 s more) is covered on the tiny model; here
    # the full-length text export keeps this test's time down.
    monkeypatch.setattr(onnx_convert, "_text_trimmable", lambda model: False)
    folder, meta, progress = _export(vitb32_loaded, tmp_path_factory.mktemp("onnx-b32"))
    assert progress and progress[0].message.startswith("Exporting ViT-B-32") and progress[-1].done == 3
    assert meta["text_trim"] is False
    images = make_images(5, size=(300, 200))
    labels = ["cat", "dog", "a photo of {} at night | car | bus", "tree"]
    _, torch_probs = _probabilities(TorchEncoder(vitb32_loaded), images, labels)
    _, onnx_probs = _probabilities(ob.OnnxEncoder(vitb32_loaded, folder=folder, meta=meta), images, labels)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4, rtol=0)


def test_text_tower_ignores_padding_like_torch(tiny_loaded, tiny_export):
    """Trimmed tokens (what the encoder runs) and torch's full 77 give the same text features."""
    folder, meta = tiny_export
    assert meta["text_trim"] is True
    tokens = tiny_loaded.tokenizer(["a cat", "a much longer caption about a dog on a beach " * 3, ""])
    with torch.inference_mode():
        expected = tiny_loaded.model.encode_text(tokens, normalize=True).numpy()
    encoder = ob.OnnxEncoder(tiny_loaded, folder=folder, meta=meta)
    encoder.open_text_session()
    got = encoder.encode_text(tokens)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    assert onnx_session.trim_tokens(tokens.numpy()).shape[1] < 77
    unnormalised = encoder.encode_text(tokens.numpy(), normalize=False)
    assert isinstance(unnormalised, np.ndarray) and not np.allclose(np.linalg.norm(unnormalised, axis=1), 1)


def test_labels_use_the_torch_model_in_memory_while_the_text_session_is_closed(tiny_loaded, tiny_export,
                                                                                 monkeypatch):
    """Issue 21: a label typed after the background export landed (or after the image session
    pushed the text session out) must not wait for a text session to open: the torch model in
    memory encodes it, to the same vectors; a torch-free start opens the session."""
    folder, meta = tiny_export
    opened: list[str] = []
    real_open = ob.open_session
    monkeypatch.setattr(ob, "open_session", lambda path, *a, **k: opened.append(Path(path).name) or
                        real_open(path, *a, **k))
    tokens = tiny_loaded.tokenizer(["a cat", "a red car"])
    with torch.inference_mode():
        expected = tiny_loaded.model.encode_text(tokens, normalize=True).numpy()
    encoder = ob.OnnxEncoder(tiny_loaded, folder=folder, meta=meta)
    got = encoder.encode_text(tokens.numpy())
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not any("text" in name for name in opened)
    encoder.open_text_session()
    assert any("text" in name for name in opened)
    np.testing.assert_allclose(encoder.encode_text(tokens.numpy()), expected, atol=1e-5)


def test_int8_is_close_to_fp32_with_its_own_cache_identity(tiny_loaded, tiny_root, tiny_export, make_images):
    folder8, meta8, progress = _export(tiny_loaded, tiny_root, "int8")
    assert folder8.name == "int8" and meta8["precision"] == "int8"
    assert any("Quantising" in p.message for p in progress)
    fp32 = ob.OnnxEncoder(tiny_loaded, folder=tiny_export[0], meta=tiny_export[1])
    int8 = ob.OnnxEncoder(tiny_loaded, "int8", folder=folder8, meta=meta8)
    assert int8.cache_identity != fp32.cache_identity == tiny_loaded.identity
    assert (folder8 / "visual.onnx.data").stat().st_size < (tiny_export[0] / "visual.onnx.data").stat().st_size
    images = make_images(4)
    f32, _ = _probabilities(fp32, images)
    f8, _ = _probabilities(int8, images)
    cosines = np.sum(f32 * f8, axis=1)
    assert np.all(cosines > 0.98), cosines


# -- caching, identity, atomic writes ---------------------------------------------------------------
def test_second_use_reuses_the_export_without_progress(tiny_loaded, tiny_root, tiny_export):
    folder, meta, progress = _export(tiny_loaded, tiny_root)
    assert (folder, meta) == tiny_export and progress == []
    siblings = [p.name for p in folder.parent.parent.iterdir()]
    assert not [name for name in siblings if name.startswith(".tmp")]


def test_export_folders_are_keyed_by_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path))
    a, b = onnx_store.export_dir("ViT-B-32/file-abc"), onnx_store.export_dir("ViT-B-32_file-abc")
    assert a != b and a.parent.parent == b.parent.parent == tmp_path / "onnx"
    assert "/" not in a.parent.name and ":" not in onnx_store.sanitise("C:\\models\\x.pt")
    assert onnx_store.export_dir("x", "int8").name == "int8"


def test_read_meta_rejects_other_identities_and_partial_exports(tiny_export, tmp_path):
    folder, meta = tiny_export
    assert onnx_store.read_meta(folder, meta["identity"]) == meta
    assert onnx_store.read_meta(folder, "someone-else") is None
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "textual.onnx").unlink()
    assert onnx_store.read_meta(partial, meta["identity"]) is None


def test_quick_identity_matches_the_loader(tiny_loaded, tmp_path):
    """The torch-free start names weights exactly as load_model_job does."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in tiny_loaded.model.state_dict().items()}
    checkpoint = tmp_path / "tiny.safetensors"
    save_file(state, str(checkpoint))
    folder = tmp_path / "finetuned"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "metadata.json").write_text(json.dumps({"architecture": TINY_ARCH}))
    for pretrained in ("none", str(checkpoint), str(folder)):
        identity, arch, _, _ = onnx_start.quick_identity(TINY_ARCH, pretrained)
        loaded = tiny_loaded if pretrained == "none" else load_model(TINY_ARCH, pretrained, "cpu")
        assert (identity, arch) == (loaded.identity, loaded.arch)
    assert onnx_start.quick_identity(TINY_ARCH, str(tmp_path / "missing.pt")) is None


def test_cancel_during_export_leaves_nothing(tiny_loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_job(onnx_convert.export_job(tiny_loaded, cancel=token))
    onnx = tmp_path / "onnx"
    assert not onnx.exists() or not any(p.is_file() for p in onnx.rglob("*"))


# -- backend choice and fallbacks ---------------------------------------------------------------------
def test_auto_means_onnx_on_cpu_and_torch_on_gpu(tiny_loaded):
    assert onnx_session.resolve_backend("auto", "cpu") == "onnx"
    assert onnx_session.resolve_backend("auto", "cuda") == "torch"
    assert onnx_session.resolve_backend("onnx", "cuda") == "onnx"
    assert isinstance(make_encoder(tiny_loaded, "auto"), ob.OnnxEncoder)
    assert isinstance(make_encoder(tiny_loaded, "torch"), TorchEncoder)
    threads, workers = onnx_session.thread_budget(2)
    assert threads == 2 and 1 <= workers <= 2
    assert onnx_session.thread_budget(16) == (16, 4)


def test_without_onnxruntime_torch_is_used_with_one_line_note(tiny_loaded, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with caplog.at_level(logging.WARNING):
        encoder = make_encoder(tiny_loaded, "onnx")
    assert isinstance(encoder, TorchEncoder)
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notes) == 1 and "onnxruntime" in notes[0] and "\n" not in notes[0]


def test_export_failure_falls_back_to_torch(tiny_loaded, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded\nwith a long traceback")

    monkeypatch.setattr(onnx_convert, "_export_module", broken)
    with caplog.at_level(logging.WARNING):
        engine = run_job(open_engine_job(TINY_ARCH, "none", "cpu", "onnx"))
    assert isinstance(engine.encoder, TorchEncoder)
    assert any("exporter exploded" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    assert not any(p.is_file() for p in (tmp_path / "onnx").rglob("*"))


def test_runtime_failure_falls_back_to_torch(tiny_loaded, tiny_export, tmp_path, caplog):
    folder, meta = tiny_export
    broken = tmp_path / "fp32"
    shutil.copytree(folder, broken)
    (broken / "visual.onnx").write_bytes(b"not a model")
    encoder = ob.OnnxEncoder(tiny_loaded, folder=broken, meta=meta)
    images = torch.randn(3, 3, 64, 64)
    with caplog.at_level(logging.WARNING):
        got = encoder.encode_image(images)
    with torch.inference_mode():
        expected = tiny_loaded.model.encode_image(images, normalize=True)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)
    assert encoder.name == "torch" and "using torch instead" in caplog.text


# -- the torch-free start -----------------------------------------------------------------------------
def test_lite_tokenizer_and_transform_match_open_clip(tiny_loaded):
    from PIL import Image

    texts = ["a photo of a cat.", "Ünïcødé café — naïve 東京 😀", " WHITE  space &amp; html ",
             "x " * 100, "", "it's 42 dogs' toys", "{}"]
    ours = ClipBpeTokenizer()
    assert np.array_equal(ours(texts), tiny_loaded.tokenizer(texts).numpy())
    assert ours.encode("a red car") == tiny_loaded.tokenizer.encode("a red car")
    preprocess = NumpyPreprocess(**onnx_lite.matching_preprocess_config(tiny_loaded))
    rng = np.random.default_rng(1)
    for (width, height), mode in [((640, 480), "RGB"), ((50, 300), "L"), ((64, 64), "RGBA"), ((65, 129), "P")]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)
        np.testing.assert_array_equal(preprocess(image), tiny_loaded.preprocess(image).numpy())


@pytest.mark.parametrize("clean", ["lower", "whitespace", "canonicalize"])
def test_lite_tokenizer_cleans_text_as_open_clip_does(clean):
    """Each clean mode against open_clip's own SimpleTokenizer (the oracle), on text each mode
    treats differently: case, runs of spaces, underscores and punctuation."""
    from open_clip.tokenizer import SimpleTokenizer

    texts = ["Hello_World, foo!", "A  Photo of a CAT.", "it's  42 dogs' toys;", "snake_case-name"]
    ours = ClipBpeTokenizer(clean=clean)(texts)
    assert np.array_equal(ours, SimpleTokenizer(clean=clean)(texts).numpy())
    assert not np.array_equal(ours, ClipBpeTokenizer(clean="lower" if clean != "lower" else "canonicalize")(texts))


def test_cached_export_serves_a_run_without_importing_torch(tiny_loaded, tiny_root, make_images):
    """A fresh process with the export cached: torch and open_clip never imported, same answer."""
    images = make_images(5, size=(90, 120))
    _, torch_probs = _probabilities(TorchEncoder(tiny_loaded), images)
    script = textwrap.dedent(f"""
        import json, sys
        from clipdesk.core.engine import open_engine_job
        from clipdesk.core.jobs import run_job
        engine = run_job(open_engine_job({TINY_ARCH!r}, "none", "cpu", "auto"))
        paths = {[str(p) for p in images]!r}
        result = run_job(engine.embed_job(paths, batch_size=4))
        probs = engine.score(result.features, engine.label_set({LABELS!r}, "photo")).probs
        print(json.dumps({{"encoder": type(engine.encoder).__name__, "probs": probs.tolist(),
                          "torch": "torch" in sys.modules, "open_clip": "open_clip" in sys.modules}}))
    """)
    env = dict(os.environ, CLIPDESK_CACHE_DIR=str(tiny_root))
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["encoder"] == "OnnxEncoder"
    assert report["torch"] is False and report["open_clip"] is False
    np.testing.assert_allclose(np.array(report["probs"]), torch_probs, atol=1e-4)


def test_fp32_onnx_shares_the_torch_cache(tiny_loaded, tiny_root, make_images, tmp_path, monkeypatch):
    """Embeddings agree to ~1e-6, so torch-cached images are cache hits for ONNX fp32."""
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tiny_root))
    images = make_images(4)
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite3")
    first = run_job(Engine(TorchEncoder(tiny_loaded), cache).embed_job(images))
    encoder = run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cpu", "onnx"))
    assert isinstance(encoder, ob.OnnxEncoder) and isinstance(encoder.loaded, onnx_start.LazyLoadedModel)
    second = run_job(Engine(encoder, cache).embed_job(images))
    assert second.encoded == 0 and encoder.encoder_calls == 0
    np.testing.assert_array_equal(second.features, first.features)
    cache.close()


def test_lazy_loaded_model_builds_torch_only_when_asked(tiny_loaded, tiny_root, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tiny_root))
    encoder = run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cpu", "auto"))
    loaded = encoder.loaded
    assert not loaded.materialised and loaded.image_size == 64 and "materialised=False" in repr(loaded)
    tokens = loaded.tokenizer(["a cat"])
    assert isinstance(tokens, np.ndarray)
    model = loaded.model  # e.g. fine-tuning asks for it
    assert loaded.materialised and loaded.device.type == "cpu"
    for name, value in tiny_loaded.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert isinstance(loaded.tokenizer(["a cat"]), torch.Tensor)  # torch callers get tensors now


def test_no_export_means_no_fast_start(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path))
    assert run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cpu", "onnx")) is None
    assert run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cpu", "torch")) is None
    assert run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cuda", "auto")) is None


def test_cli_onnx_run_imports_no_torch(tiny_loaded, tiny_root, make_images):
    """`clipdesk classify --backend onnx` with the export cached: torch is never imported."""
    images = make_images(3)
    env = dict(os.environ, CLIPDESK_CACHE_DIR=str(tiny_root))
    command = [sys.executable, "-X", "importtime", "-m", "clipdesk.cli", "classify", str(images[0].parent),
               "--model", TINY_ARCH, "--pretrained", "none", "--backend", "onnx", "--device", "cpu",
               "--labels", "cat,dog", "--format", "json"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(run.stdout)
    assert len(rows) == 3 and all(set(row["scores"]) == {"cat", "dog"} for row in rows)
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported
    assert not {"torch", "open_clip", "torchvision"} & imported


def test_torch_free_start_falls_back_when_the_runtime_fails(tiny_loaded, tiny_root, make_images, tmp_path,
                                                           monkeypatch, caplog):
    """A damaged weights file under a cached export: torch is built on demand, same answer."""
    root = tmp_path / "cache"
    shutil.copytree(tiny_root / "onnx", root / "onnx")
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(root))
    for data in (root / "onnx").glob("*/fp32/visual.onnx.data"):
        data.write_bytes(b"\0" * 64)
        meta = json.loads((data.parent / "meta.json").read_text())  # damage the recorded hashes miss
        (data.parent / "meta.json").write_text(json.dumps({**meta, "files": onnx_store.file_digests(data.parent)}))
    images = make_images(3)
    _, expected = _probabilities(TorchEncoder(tiny_loaded), images)
    encoder = run_job(onnx_start.open_exported_job(TINY_ARCH, "none", "cpu", "auto"))
    with caplog.at_level(logging.WARNING):
        _, got = _probabilities(encoder, images)
    assert "using torch instead" in caplog.text and encoder.loaded.materialised
    np.testing.assert_allclose(got, expected, atol=1e-5)
