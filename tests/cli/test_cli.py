"""The `clipdesk` command line contract: output shapes, exit codes, cache and models commands."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipdesk.core.models import RANDOM_SEED, register_configs
from clipdesk.core.paths import weights_dir

LABELS = ["cat", "dog", "car"]
# The tiny architecture with seeded random weights on the torch backend: fast, offline, exact.
TINY = ["--model", "clipdesk-tiny", "--pretrained", "none", "--backend", "torch", "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[2]


def reference_probs(paths: list[Path], labels: list[str]) -> np.ndarray:
    """open_clip's README recipe on the same seeded tiny model, no clipdesk code involved."""
    register_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model, _, preprocess = open_clip.create_model_and_transforms("clipdesk-tiny", pretrained=None)
    tokenizer = open_clip.get_tokenizer("clipdesk-tiny")
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths]))
        text = model.encode_text(tokenizer([f"a photo of a {label}." for label in labels]))
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return (model.logit_scale.exp() * image @ text.T).softmax(dim=-1).numpy()


def good_paths(folder: Path) -> list[Path]:
    return [folder / "a.png", folder / "b.png", folder / "sub" / "c.png"]


# -- classify -----------------------------------------------------------------------------------


def test_classify_json_contract(cli, folder):
    code, out, err = cli("classify", folder, "--labels", "cat, dog,car", "--format", "json", *TINY)
    assert code == 0, err
    rows = json.loads(out)  # stdout is exactly one JSON array: progress went to stderr
    assert isinstance(rows, list)
    assert [Path(row["path"]).name for row in rows] == ["a.png", "b.png", "broken.jpg", "c.png"]
    failed = [row for row in rows if "error" in row]
    assert len(failed) == 1 and set(failed[0]) == {"path", "error"}
    assert "broken.jpg" in failed[0]["error"]
    assert "could not be read" in err  # a note on stderr, yet exit 0: the run completed

    ok = [row for row in rows if "error" not in row]
    expected = reference_probs(good_paths(folder), LABELS)
    for row, probs in zip(ok, expected):
        assert {"path", "label", "score", "scores"} <= set(row)
        assert list(row["scores"]) == LABELS
        np.testing.assert_allclose([row["scores"][label] for label in LABELS], probs, atol=1e-4)
        assert row["label"] == LABELS[int(np.argmax(probs))]
        assert row["score"] == pytest.approx(float(probs.max()), abs=1e-4)
        assert Path(row["path"]).is_absolute()


def test_classify_csv(cli, folder):
    code, out, _ = cli("classify", folder, "--labels", ",".join(LABELS), "--format", "csv", *TINY)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "label", "score", "error", *LABELS]
    assert len(rows) == 4
    broken = [row for row in rows if row["error"]]
    assert len(broken) == 1 and broken[0]["label"] == "" and broken[0]["cat"] == ""
    expected = reference_probs(good_paths(folder), LABELS)
    for row, probs in zip([row for row in rows if not row["error"]], expected):
        np.testing.assert_allclose([float(row[label]) for label in LABELS], probs, atol=1e-4)
        assert row["label"] == LABELS[int(np.argmax(probs))]


def test_classify_table_and_top_k(cli, folder):
    code, out, _ = cli("classify", folder / "a.png", "--labels", "cat,dog,car,tree", "--top-k", "2",
                       *TINY)
    assert code == 0
    (line,) = out.strip().splitlines()
    assert "a.png" in line and line.count("%") == 2


def test_classify_labels_file_and_templates(cli, folder, tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# animals\ncat\ndog | puppy\n猫\n", encoding="utf-8")
    code, out, err = cli("classify", folder / "a.png", "--labels-file", labels_file,
                         "--templates", "ensemble", "--format", "json", *TINY)
    assert code == 0, err
    (row,) = json.loads(out)
    assert list(row["scores"]) == ["cat", "dog", "猫"]
    assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_classify_options_exact_batch_size_no_cache(cli, folder):
    base = ["classify", folder, "--labels", "cat,dog", "--format", "json", *TINY]
    code, first, _ = cli(*base, "--batch-size", "1", "--exact", "--no-cache")
    assert code == 0
    assert cli("cache", "info")[1].count("images") == 0  # --no-cache wrote nothing
    code, second, _ = cli(*base, "--batch-size", "7")
    assert code == 0
    for a, b in zip(json.loads(first), json.loads(second)):
        assert a.keys() == b.keys()
        if "scores" in a:
            assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)  # PNGs: --exact is moot
    assert "3 images" in cli("cache", "info")[1]


def test_duplicate_and_overlong_labels_are_noted(cli, folder):
    long_label = " ".join(["word"] * 100)
    code, out, err = cli("classify", folder / "a.png", "--labels", f"cat,Cat,{long_label}",
                         "--format", "json", *TINY)
    assert code == 0
    (row,) = json.loads(out)
    assert list(row["scores"]) == ["cat", long_label]
    assert "Duplicate label 'Cat'" in err and "longer than" in err


# -- exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["classify", "{folder}", "--labels", " , ,"],  # no labels left after cleaning
    ["classify", "{folder}"],  # neither --labels nor --labels-file
    ["classify", "{folder}", "--labels", "a", "--labels-file", "x.txt"],
    ["classify", "{folder}", "--labels-file", "{folder}/missing.txt"],
    ["classify", "{folder}/nothing-here", "--labels", "cat"],
    ["classify", "{empty}", "--labels", "cat"],
    ["classify", "{folder}", "--labels", "cat", "--templates", "fancy"],
    ["classify", "{folder}", "--labels", "cat", "--top-k", "0"],
    ["classify", "{folder}", "--labels", "cat", "--format", "xml"],
    ["search", "{folder}"],
    ["search", "{folder}", "--query", "   "],
    ["search", "{folder}", "--image", "{folder}/broken.jpg"],
    ["cache", "explode"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(cli, folder, tmp_path, argv):
    (tmp_path / "empty").mkdir()
    argv = [a.format(folder=folder, empty=tmp_path / "empty") for a in argv]
    if argv and argv[0] in ("classify", "search"):
        argv += TINY
    code, out, err = cli(*argv)
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err and err.strip()


@pytest.mark.parametrize("model_args", [
    ["--model", "ViT-Q-99", "--pretrained", "none"],
    ["--model", "clipdesk-tiny", "--pretrained", "no_such_tag"],
    ["--model", "clipdesk-tiny", "--pretrained", "/nonexistent/weights.safetensors"],
    ["--model", "ViT-B-32", "--pretrained", "{tiny_checkpoint}"],
])
def test_model_errors_exit_1(cli, folder, tmp_path, model_args):
    from safetensors.torch import save_file

    from clipdesk.core.models import load_model

    tiny_checkpoint = tmp_path / "tiny.safetensors"
    if "{tiny_checkpoint}" in model_args:
        state = load_model("clipdesk-tiny", "none", "cpu").model.state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(tiny_checkpoint))
    model_args = [a.format(tiny_checkpoint=tiny_checkpoint) for a in model_args]
    code, out, err = cli("classify", folder, "--labels", "cat", "--backend", "torch", *model_args)
    assert code == 1
    assert out == ""
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("clipdesk: ") and "Traceback" not in err


def test_default_model_offline_exit_1_with_clear_message(cli, folder, monkeypatch):
    """The default tag, nothing cached, no network: exit 1 naming the model and the cache folder."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise AssertionError("the CLI tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    from clipdesk.core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED

    code, out, err = cli("classify", folder, "--labels", "cat", "--backend", "torch")
    assert code == 1 and out == ""
    assert DEFAULT_ARCH in err and DEFAULT_PRETRAINED in err and str(weights_dir()) in err


# -- search -------------------------------------------------------------------------------------


def test_search_text_json(cli, folder):
    code, out, err = cli("search", folder, "--query", "a red car", "--top-k", "2", "--format", "json",
                         *TINY)
    assert code == 0, err
    rows = json.loads(out)
    hits = [row for row in rows if "rank" in row]
    assert [hit["rank"] for hit in hits] == [1, 2]
    assert hits[0]["score"] >= hits[1]["score"]
    assert [row for row in rows if "error" in row][0]["path"].endswith("broken.jpg")


def test_search_image_finds_itself(cli, folder):
    query = folder / "sub" / "c.png"
    code, out, _ = cli("search", folder, "--image", query, "--format", "json", *TINY)
    assert code == 0
    hits = [row for row in json.loads(out) if "rank" in row]
    assert len(hits) == 3
    assert hits[0]["path"] == str(query) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    code, out, _ = cli("search", folder, "--image", query, "--format", "csv", *TINY)
    assert out.splitlines()[0] == "rank,path,score,error"


# -- cache and models ---------------------------------------------------------------------------


def test_cache_info_and_clear(cli, folder):
    code, out, _ = cli("cache", "info")
    assert code == 0 and "(empty)" in out and os.environ["CLIPDESK_CACHE_DIR"] in out
    assert cli("classify", folder, "--labels", "cat,dog", *TINY)[0] == 0
    code, out, _ = cli("cache", "info")
    assert "clipdesk-tiny/none-seed0: 3 images, 2 labels" in out
    code, out, _ = cli("cache", "clear")
    assert code == 0 and "Cleared 3 image and 2 label" in out
    assert "(empty)" in cli("cache", "info")[1]


def fake_download(arch: str, tag: str) -> None:
    """Lay out a Hugging Face cache entry the way hf_hub_download would leave it."""
    from clipdesk.core.download import _hf_location

    repo_id, filenames = _hf_location(arch, tag)
    repo = weights_dir() / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filenames[0]).write_bytes(b"weights")


def test_models_lists_tags_and_marks_downloaded(cli):
    fake_download("ViT-B-32", "laion2b_s34b_b79k")
    code, out, _ = cli("models", "--format", "json")
    assert code == 0
    entries = json.loads(out)
    pairs = {(e["arch"], e["pretrained"]): e["available"] for e in entries}
    assert pairs[("ViT-B-32", "laion2b_s34b_b79k")] is True
    assert pairs[("ViT-B-32", "openai")] is False
    assert set(open_clip.list_pretrained()) <= set(pairs)
    code, out, _ = cli("models")
    marked = [line for line in out.splitlines() if line.startswith("✓")]
    assert any("ViT-B-32 " in line and "laion2b_s34b_b79k" in line for line in marked)
    assert not any("openai" in line for line in marked)


def test_models_all_includes_tiny(cli):
    code, out, _ = cli("models", "--all", "--format", "json")
    assert code == 0
    assert ("clipdesk-tiny", "none") in {(e["arch"], e["pretrained"]) for e in json.loads(out)}


# -- the real entry point ----------------------------------------------------------------------


def test_python_m_clipdesk_process(folder):
    """A whole process: stdout is parseable JSON, progress on stderr, exit code 0."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "clipdesk", "classify", str(folder), "--labels", "cat,dog",
         "--format", "json", *TINY],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 4
