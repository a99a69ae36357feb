"""The quick fine-tune without torch (issue 22): embeddings from the demo's shipped ONNX export, the
head fitted in numpy, the checkpoint written with safetensors' numpy API, and `classify` using it,
all in subprocesses that cannot import torch, torchvision, open_clip, scikit-learn or scipy (the
`app` install has none of them). full and captions say in one sentence how to add torch.

Oracles: torch itself (open_clip's image tower, in this process) with the saved head applied by
its formula, and the same quick fine-tune run through the torch backend in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[2]
# What the torch-free `app` install lacks: torch and everything that came with the full install's
# fine-tuning (scikit-learn and its scipy used to fit the probe).
BLOCKED = ("torch", "torchvision", "open_clip", "sklearn", "scipy")
INSTALL = "pip install 'clipdesk[train]'"  # the extra pyproject.toml defines for this

BLOCKER = textwrap.dedent(f"""
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"No module named {{name!r}} (blocked: a torch-free test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
""")

COLOURS = {"red": (170, 80, 80), "green": (80, 170, 80), "blue": (80, 80, 170)}


def write_classes(folder: Path, per_class: int, seed: int, spread: float = 0.0) -> Path:
    """FOLDER/<colour>/*.png: noisy squares of each colour (the demo model tells colours apart);
    `spread` varies each image's mean colour, so that the classes overlap."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            mean = np.array(colour) + rng.normal(0, spread, 3)
            pixels = np.clip(mean + rng.normal(0, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}-{i}.png")
    return folder


@pytest.fixture
def app_env(tmp_path):
    """A subprocess environment without torch (nor scikit-learn, scipy), with its own user folders."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(blocker)]))
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"CLIPDESK_{name}_DIR"] = str(tmp_path / f"app-{name.lower()}")
    return env


def cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clipdesk", *args], env=env, capture_output=True,
                          text=True, timeout=400, cwd=ROOT)


def test_the_blocker_blocks_torch_and_scikit_learn(app_env):
    for name in ("torch", "sklearn"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], env=app_env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode != 0 and "blocked" in result.stderr


def torch_probabilities(model_dir: Path, images: list[Path]) -> np.ndarray:
    """The oracle: open_clip's own image tower (torch) and the saved linear head by its formula,
    softmax(scale · x Wᵀ + b), in the head's class order."""
    import torch

    from clipdesk.core.models import load_model

    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["head"]["kind"] == "linear"  # the probe: it stays unless clearly beaten
    tensors = load_file(str(model_dir / "head.safetensors"))
    loaded = load_model("demo", "demo", "cpu")
    with torch.no_grad():
        batch = torch.stack([loaded.preprocess(Image.open(p).convert("RGB")) for p in images])
        x = loaded.model.encode_image(batch, normalize=True).double().numpy()
    logits = metadata["head"]["scale"] * x @ tensors["weight"].astype(np.float64).T + tensors["bias"]
    logits -= logits.max(1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_quick_finetune_and_classify_with_it_without_torch(app_env, tmp_path):
    data = write_classes(tmp_path / "colours", per_class=8, seed=0)
    out = tmp_path / "colours-quick"
    trained = cli(["finetune", str(data), "--model", "demo", "--out", str(out), "--format", "json"], app_env)
    assert trained.returncode == 0, trained.stderr
    assert "Traceback" not in trained.stderr
    report = json.loads(trained.stdout)
    assert report["method"] == "quick" and report["classes"] == sorted(COLOURS)
    metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["method"] == "quick" and metadata["head"]["file"] == "head.safetensors"
    assert not (out / "model.safetensors").exists()  # a head over the demo, no copy of its weights
    # classify with the checkpoint, still without torch: the demo's export + the saved head
    probes = [data / name / f"{name}-{i}.png" for name in COLOURS for i in (0, 5)]
    classified = cli(["classify", "--pretrained", str(out), "--format", "json", *map(str, probes)], app_env)
    assert classified.returncode == 0, classified.stderr
    rows = json.loads(classified.stdout)
    got = np.array([[row["scores"][c] for c in metadata["class_names"]] for row in rows])
    want = torch_probabilities(out, [Path(row["path"]) for row in rows])
    np.testing.assert_allclose(got, want, atol=1e-4)  # the JSON's 6 decimals; ONNX ≈ torch to ~1e-6
    assert [row["label"] for row in rows] == [p.parent.name for p in probes]


def test_the_torch_free_head_equals_the_torch_paths(app_env, tmp_path, monkeypatch):
    """The same quick fine-tune (a separate validation folder: a plain held-out split) through
    torch in this process and through ONNX Runtime + numpy in a torch-free one: the same head
    chosen, the same held-out answers, and probabilities on the held-out images within 1e-4.
    The classes overlap (60 % after, probabilities 0.4-0.9), so that the probabilities say
    something: on separable classes both saturate at 1.

    Why 1e-4: the two runtimes' embeddings differ by float32 rounding (~1e-6, see
    test_torch_free); the probe is a smooth function of them at a fixed strength C, and its
    solver stops at a gradient of 1e-6, so its probabilities agree to ~1e-5 (measured: 9e-8).
    Another strength C or candidate moves them by 1e-2 or more.
    """
    from clipdesk.core.jobs import run_job
    from training.api import FinetuneConfig, finetune_job

    train = write_classes(tmp_path / "train", per_class=10, seed=1, spread=50)
    val = write_classes(tmp_path / "val", per_class=6, seed=2, spread=50)
    free_out, torch_out = tmp_path / "free", tmp_path / "torch"
    args = ["finetune", str(train), "--model", "demo", "--val-folder", str(val), "--format", "json"]
    free = cli([*args, "--out", str(free_out)], app_env)
    assert free.returncode == 0, free.stderr
    free_report = json.loads(free.stdout)
    monkeypatch.setenv("CLIPDESK_CACHE_DIR", str(tmp_path / "torch-cache"))  # never the other's embeddings
    result = run_job(finetune_job(FinetuneConfig(train, arch="demo", pretrained="demo", val_folder=val,
                                                 out=torch_out, backend="torch")))
    assert type(result.loaded).__name__ == "LoadedModel"  # really the torch path
    assert free_report["evaluation"]["candidate"] == result.evaluation["candidate"]
    assert np.array_equal(free_report["confusion"], result.confusion)  # the same held-out answers
    assert free_report["accuracy_after"] == result.accuracy_after < 1
    images = sorted(val.rglob("*.png"))
    free_p, torch_p = torch_probabilities(free_out, images), torch_probabilities(torch_out, images)
    assert free_p.max(1).min() < 0.9  # not saturated
    np.testing.assert_allclose(free_p, torch_p, atol=1e-4)


@pytest.mark.parametrize("method", ["full", "captions"])
def test_full_and_captions_without_torch_say_how_to_add_it(app_env, tmp_path, method):
    data = write_classes(tmp_path / "colours", per_class=2, seed=3)
    result = cli(["finetune", str(data), "--model", "demo", "--method", method], app_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "needs torch" in lines[0] and INSTALL in lines[0] and method in lines[0]
    assert not (tmp_path / "colours-full").exists() and not list(tmp_path.glob("*-" + method))


def test_quick_on_a_model_without_an_export_says_what_to_install(app_env, tmp_path):
    data = write_classes(tmp_path / "colours", per_class=2, seed=4)
    result = cli(["finetune", str(data), "--model", "ViT-B-32", "--pretrained", "none"], app_env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "torch" in lines[0] and "pip install clipdesk" in lines[0]
