"""The torch-free app: the demo model runs with ONNX Runtime + numpy + Pillow when torch,
torchvision and open_clip cannot be imported, and scores as the torch path does.

The torch-free runs are subprocesses whose `sitecustomize` puts an import blocker first on
`sys.meta_path` (`import torch` raises ImportError, as on a machine without it). The oracle is
torch: open_clip's own modules and transforms (in-process), or clipdesk's torch backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo"
SAMPLES = sorted((DEMO / "samples").glob("*.png"))
BLOCKED = ("torch", "torchvision", "open_clip")

BLOCKER = textwrap.dedent(f"""
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"No module named {{name!r}} (blocked: a torch-free test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.fixture
def torch_free_env(tmp_path):
    """Environment of a subprocess that cannot import torch, with its own empty user folders."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(blocker)]))
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"CLIPDESK_{name}_DIR"] = str(tmp_path / f"torch-free-{name.lower()}")
    return env


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=180, cwd=ROOT)


def cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipdesk", *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=ROOT)


def test_the_blocker_really_blocks_torch(torch_free_env):
    result = run_python("import torch", torch_free_env)
    assert result.returncode != 0 and "blocked" in result.stderr


# -- the shipped export ---------------------------------------------------------------------------
def test_shipped_demo_export_reproduces_torch():
    """resources/models/demo/onnx, run by ONNX Runtime directly, gives open_clip's embeddings."""
    import open_clip

    from clipdesk.core.models import load_model

    loaded = load_model("demo", "demo", "cpu")
    meta = json.loads((DEMO / "onnx" / "meta.json").read_text(encoding="utf-8"))
    assert meta["identity"] == loaded.identity  # it is the export of these very weights
    images = torch.stack([loaded.preprocess(Image.open(p)) for p in SAMPLES])
    tokens = open_clip.get_tokenizer(loaded.arch)(["red circle", "a blue star", "pink ring!"])
    with torch.no_grad():
        want_image = loaded.model.encode_image(images, normalize=True).numpy()
        want_text = loaded.model.encode_text(tokens, normalize=True).numpy()
    options = ort.SessionOptions()
    visual = ort.InferenceSession(str(DEMO / "onnx" / "visual.onnx"), options, providers=["CPUExecutionProvider"])
    textual = ort.InferenceSession(str(DEMO / "onnx" / "textual.onnx"), options, providers=["CPUExecutionProvider"])
    got_image = visual.run(None, {"input": images.numpy()})[0]
    got_text = textual.run(None, {"input": tokens.numpy()})[0]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(got_image), want_image, atol=1e-4)
    np.testing.assert_allclose(unit(got_text), want_text, atol=1e-4)
    assert meta["logit_scale"] == pytest.approx(float(loaded.model.logit_scale.detach().exp()), rel=1e-6)


def test_shipped_bpe_vocabulary_is_open_clips():
    import open_clip

    shipped = ROOT / "resources" / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
    theirs = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    assert hashlib.sha256(shipped.read_bytes()).digest() == hashlib.sha256(theirs.read_bytes()).digest()


# -- CLI and API without torch ----------------------------------------------------------------------
def scores_by_path(stdout: str) -> dict[str, dict[str, float]]:
    return {Path(row["path"]).name: row["scores"] for row in json.loads(stdout)}


def test_cli_classify_demo_without_torch_equals_torch(torch_free_env, tmp_path):
    args = ["classify", "--model", "demo", "--format", "json", "--top-k", "64", *map(str, SAMPLES)]
    free = cli(args, torch_free_env)
    assert free.returncode == 0, free.stderr
    assert "background" not in free.stderr  # the shipped export: nothing to prepare
    with_torch_env = {k: v for k, v in torch_free_env.items() if k != "PYTHONPATH"}
    with_torch_env["PYTHONPATH"] = str(ROOT)
    with_torch_env["CLIPDESK_CACHE_DIR"] = str(tmp_path / "torch-cache")
    reference = cli([*args, "--backend", "torch", "--no-cache"], with_torch_env)
    assert reference.returncode == 0, reference.stderr
    got, want = scores_by_path(free.stdout), scores_by_path(reference.stdout)
    assert got.keys() == want.keys() == {p.name for p in SAMPLES}
    for name in want:
        assert got[name].keys() == want[name].keys()
        np.testing.assert_allclose([got[name][k] for k in want[name]], list(want[name].values()), atol=1e-4)
    # and it is right: every sample is named after what it shows
    assert all(max(got[n], key=got[n].get) == n[3:-4].replace("-", " ") for n in got)


API_RUN = """
import json, clipdesk
clf = clipdesk.load("demo")
labels = ["red circle", "blue star", "pink ring", "green square"]
rows = clf.classify(clipdesk.demo_images(), labels)
hits = clf.search("a blue star", clipdesk.demo_images(), top_k=3)
print(json.dumps({"backend": clf.backend, "scores": [r.scores for r in rows],
                  "hits": [[h.path, h.score] for h in hits]}))
"""


def test_api_classify_and_search_without_torch_equal_torch(torch_free_env):
    free = run_python(API_RUN, torch_free_env)
    assert free.returncode == 0, free.stderr
    got = json.loads(free.stdout.strip().splitlines()[-1])
    assert got["backend"] == "onnx"
    import clipdesk

    clf = clipdesk.load("demo", backend="torch", cache=False)
    labels = ["red circle", "blue star", "pink ring", "green square"]
    want = [r.scores for r in clf.classify(clipdesk.demo_images(), labels)]
    for mine, theirs in zip(got["scores"], want):
        np.testing.assert_allclose([mine[k] for k in labels], [theirs[k] for k in labels], atol=1e-4)
    hits = clf.search("a blue star", clipdesk.demo_images(), top_k=3)
    assert [Path(p).name for p, _ in got["hits"]] == [Path(h.path).name for h in hits]
    np.testing.assert_allclose([s for _, s in got["hits"]], [h.score for h in hits], atol=1e-4)


def test_other_model_without_torch_says_what_to_install(torch_free_env):
    result = cli(["classify", "--model", "ViT-B-32", "--pretrained", "none", "--labels", "a,b",
                  str(SAMPLES[0])], torch_free_env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pip install clipdesk" in lines[0] and "torch" in lines[0]


def test_a_damaged_shipped_export_is_not_used(torch_free_env, tmp_path):
    """A model folder's own export whose weights were edited is refused (its digests no longer
    match): without torch, that is the one-sentence error, never garbage scores."""
    import shutil

    folder = tmp_path / "demo-copy"
    shutil.copytree(DEMO, folder)
    data = folder / "onnx" / "visual.onnx.data"
    data.chmod(0o644)
    blob = bytearray(data.read_bytes())
    blob[1000:1004] = b"\x00\x00\x80\x7f"  # one weight becomes +inf
    data.write_bytes(bytes(blob))
    result = cli(["classify", "--pretrained", str(folder), "--labels", "red circle,blue star",
                  str(SAMPLES[0])], torch_free_env)
    assert result.returncode != 0 and "pip install clipdesk" in result.stderr, result.stderr


def test_a_folder_with_only_its_onnx_export_runs_without_torch(torch_free_env, tmp_path):
    """The bundle leaves out the demo's torch weights: the folder's export alone names and serves
    the model, with the same scores as the full folder."""
    import shutil

    folder = tmp_path / "demo-onnx-only"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    args = ["classify", "--format", "json", "--labels", "red circle,blue star,pink ring", *map(str, SAMPLES[:3])]
    only_export = cli([*args, "--pretrained", str(folder)], torch_free_env)
    full = cli([*args, "--model", "demo"], torch_free_env)
    assert only_export.returncode == 0 and full.returncode == 0, only_export.stderr + full.stderr
    got, want = scores_by_path(only_export.stdout), scores_by_path(full.stdout)
    for name, row in want.items():
        np.testing.assert_allclose([got[name][k] for k in row], list(row.values()), atol=1e-6)


def test_models_lists_the_demo_without_torch(torch_free_env):
    result = cli(["models"], torch_free_env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "clipdesk-demo" in result.stdout and "demo" in result.stdout
