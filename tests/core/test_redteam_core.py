"""Hostile and careless inputs found by a red-team pass, at the core level: model folders that
loaded "fine" and scored garbage, files in the cache folder that hung or filled memory, slice
bounds that silently dropped labels, an empty path that scanned the working folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from synth_images import save_image

from clipdesk.core.classify import Scores, rank
from clipdesk.core.demo import demo_model_dir
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.images import find_images, scan_images
from clipdesk.core.models import TINY_ARCH, file_fingerprint, load_model
from clipdesk.core.safeio import read_json_or_none


def _demo_copy(tmp_path: Path, name: str, tensors: dict | None = None, metadata: str | None = None) -> Path:
    """A copy of the demo model folder, its weights replaced by `tensors` or its metadata by text."""
    folder = tmp_path / name
    folder.mkdir()
    source = demo_model_dir()
    (folder / "metadata.json").write_text(metadata if metadata is not None
                                          else (source / "metadata.json").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    if tensors is None:
        shutil.copyfile(source / "model.safetensors", folder / "model.safetensors")
    else:
        save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def demo_tensors() -> dict[str, np.ndarray]:
    return load_file(str(demo_model_dir() / "model.safetensors"))


def _int_table(t):
    return {**t, "positional_embedding": t["positional_embedding"].astype(np.int32)}


def _short_table(t):
    return {**t, "positional_embedding": t["positional_embedding"][:-1]}


@pytest.mark.parametrize(("case", "expect"), [
    ("int tensor", "is I32"),  # load_state_dict would cast it into the float parameter
    ("resized tensor", "the model needs float32"),  # open_clip would interpolate a position table
    ("weights missing", "model.safetensors is missing"),  # fell back to random weights, exit 0
    ("weights a folder", "is a folder"),
    ("weights a FIFO", "pipe"),
    ("weights /dev/zero", "device"),
])
def test_model_folders_that_used_to_load_garbage_are_refused(tmp_path, demo_tensors, case, expect):
    folder = _demo_copy(tmp_path, "model", {"int tensor": _int_table, "resized tensor": _short_table}
                        .get(case, lambda t: t)(demo_tensors))
    weights = folder / "model.safetensors"
    if case != "int tensor" and case != "resized tensor":
        weights.unlink()
        if case == "weights a folder":
            weights.mkdir()
        elif case == "weights a FIFO":
            os.mkfifo(weights)
        elif case == "weights /dev/zero":
            weights.symlink_to("/dev/zero")
    with pytest.raises(ModelLoadError) as caught:
        load_model(None, str(folder), "cpu")
    message = str(caught.value)
    assert expect in message and str(folder) in message and "\n" not in message


def test_a_quick_model_without_weights_still_loads_over_its_base(tmp_path):
    """The positive control: a head-only folder has no weights file by design."""
    folder = tmp_path / "quick"
    folder.mkdir()
    (folder / "metadata.json").write_text(json.dumps(
        {"architecture": TINY_ARCH, "base_pretrained": "none", "method": "quick"}), encoding="utf-8")
    loaded = load_model(None, str(folder), "cpu")
    assert loaded.arch == TINY_ARCH and loaded.pretrained == str(folder)


def test_metadata_with_a_bom_loads_and_deep_nesting_is_one_sentence(tmp_path):
    text = (demo_model_dir() / "metadata.json").read_text(encoding="utf-8")
    folder = _demo_copy(tmp_path, "bom", metadata="\ufeff" + text)  # saved by Windows Notepad
    loaded = load_model(None, str(folder), "cpu")
    assert loaded.metadata["class_names"] == json.loads(text)["class_names"]
    deep = _demo_copy(tmp_path, "deep", metadata="[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelLoadError, match="nests too deeply"):
        load_model(None, str(deep), "cpu")


def test_top_k_below_one_is_refused_not_sliced():
    probs = np.array([[0.1, 0.6, 0.3]])
    scores = Scores(["a", "b", "c"], probs, probs)
    assert [name for name, _ in scores.top(0, None)] == ["b", "c", "a"]  # all, best first
    assert [name for name, _ in scores.top(0, 2)] == ["b", "c"]
    for bad in (0, -1, 1.5, True):  # -1 used to mean "all but the last", 0 "all"
        with pytest.raises(ValueError, match="top_k"):
            scores.top(0, bad)
        with pytest.raises(ValueError, match="top_k"):
            rank(np.ones(4, np.float32), np.eye(4, dtype=np.float32), bad)
    assert [i for i, _ in rank(np.array([0, 1, 0, 0], np.float32), np.eye(4, dtype=np.float32), 1)] == [1]


def test_an_empty_path_is_an_error_not_the_working_folder(tmp_path, monkeypatch):
    save_image(tmp_path / "here.png", seed=0, width=16, height=16)
    monkeypatch.chdir(tmp_path)
    files, errors = find_images(["", "  "])
    assert files == [] and all("empty path" in message for message in errors.values())


def test_a_fifo_beside_an_unsupported_file_does_not_break_the_walk(tmp_path):
    """The walk reused the suffix counter's name for the FIFO's path: the next unsupported
    file crashed the scan with a TypeError."""
    root = tmp_path / "photos"
    save_image(root / "b.png", seed=1, width=16, height=16)
    os.mkfifo(root / "a.png")
    (root / "c.txt").write_text("notes")
    (root / "d.png").symlink_to(root / "missing.png")
    (root / "e.doc").write_text("more notes")
    scan = scan_images([root])
    assert [p.name for p in scan.files] == ["b.png"]
    assert {p.name for p in scan.errors} == {"a.png", "d.png"}
    assert scan.skipped == {".txt": 1, ".doc": 1}


def _bounded(call, seconds: float = 20.0):
    """Run `call` in a thread; fail (instead of hanging the suite) when it does not return."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "hung"
    return result[0]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "deep", "garbage"])
def test_memo_files_in_the_cache_folder_never_hang_or_crash(tmp_path, kind):
    """identities.json, open_clip_registry.json, an export's meta.json, an index's state.json:
    a FIFO or a link to /dev/zero in their place hung or filled memory."""
    memo = Path(os.environ["CLIPDESK_CACHE_DIR"]) / "identities.json"
    memo.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(memo)
    elif kind == "dev-zero":
        memo.symlink_to("/dev/zero")
    else:
        memo.write_text("[" * 100_000 if kind == "deep" else "not json {", encoding="utf-8")
    assert _bounded(lambda: read_json_or_none(memo)) is None
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(os.urandom(1000))
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()[:40]  # core/digest.py's algorithm
    assert _bounded(lambda: file_fingerprint(weights)) == expected

    from clipdesk.core.catalog import open_clip_registry

    registry = Path(os.environ["CLIPDESK_CACHE_DIR"]) / "open_clip_registry.json"
    registry.unlink(missing_ok=True)
    os.mkfifo(registry) if kind == "fifo" else registry.symlink_to("/dev/zero")
    assert TINY_ARCH in _bounded(open_clip_registry)["architectures"]


def test_index_listing_keeps_going_past_a_non_utf8_name_and_a_device_list(tmp_path):
    from clipdesk.scale.shards import list_inputs

    root = tmp_path / "photos"
    save_image(root / "good.png", seed=0, width=16, height=16)
    save_image(Path(os.fsdecode(bytes(root) + b"/bad\xff.png")), seed=1, width=16, height=16)
    listing = tmp_path / "list.txt"
    listing.symlink_to("/dev/zero")
    entries, errors = _bounded(lambda: list_inputs([str(root), str(listing)]))
    assert [Path(e.path).name for e in entries] == ["good.png"]
    assert any("not valid UTF-8" in message for message in errors.values())
    assert any("list.txt" in message for message in errors.values())


def test_saved_weights_get_the_umask_mode_not_safetensors_private_0600(tmp_path):
    """A fine-tuned model shared with another user: metadata.json readable, its head not."""
    from training.checkpoint import save_safetensors_atomic

    old = os.umask(0o022)
    try:
        save_safetensors_atomic({"weight": np.ones((2, 3), np.float32)}, tmp_path / "head.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "head.safetensors").stat().st_mode & 0o777 == 0o644
    assert load_file(str(tmp_path / "head.safetensors"))["weight"].tolist() == [[1.0] * 3] * 2


def test_an_export_whose_weights_changed_since_it_was_verified_is_not_used(tiny_loaded, tmp_path, monkeypatch):
    """visual.onnx.data zeroed in place (same size, same names): ONNX Runtime ran it happily and
    scored garbage with exit 0, and stored the garbage in the embedding cache."""
    from clipdesk.core import onnx_convert, onnx_store
    from clipdesk.core.jobs import run_job

    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "cache"))
    folder, meta = run_job(onnx_convert.export_job(tiny_loaded))
    assert onnx_store.read_meta(folder, meta["identity"]) == meta
    for name, damage in [("visual.onnx.data", lambda b: bytes(len(b))),
                         ("textual.onnx", lambda b: b[:-1] + bytes([b[-1] ^ 1]))]:
        copy = tmp_path / f"copy-{name}"
        shutil.copytree(folder, copy)
        assert onnx_store.read_meta(copy, meta["identity"]) is not None  # an intact copy is still good
        target = copy / name
        target.write_bytes(damage(target.read_bytes()))
        assert onnx_store.read_meta(copy, meta["identity"]) is None
