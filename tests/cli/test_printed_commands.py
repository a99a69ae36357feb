"""Every command line clipdesk prints for users works when copied literally (issue 9 §3).

Each command runs as a subprocess, exactly as printed (placeholders such as PATH filled in), and
the test checks it uses what it claims: a fine-tuned model's scores are not its base model's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdesk.core.paths import resources_dir

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _env(root: Path) -> dict:
    env = dict(os.environ)
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"CLIPDESK_{name}_DIR"] = str(root / name.lower())
    env["CLIPDESK_BACKGROUND_EXPORT"] = "0"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run(command: list[str] | str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a `clipdesk …` line as the user would (the console script = `python -m clipdesk.cli`)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    assert argv[0] == "clipdesk", argv
    return subprocess.run([sys.executable, "-m", "clipdesk.cli", *argv[1:]], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _colour_folder(root: Path, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (40, 40, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """`clipdesk finetune FOLDER --model demo --method quick`, once: (env, folder, stdout, model dir)."""
    root = tmp_path_factory.mktemp("printed")
    env = _env(root)
    pets = _colour_folder(root / "pets")
    done = run(["clipdesk", "finetune", str(pets), "--model", "demo", "--method", "quick", "--epochs", "30"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("Use it with: "))
    model_dir = Path(shlex.split(line)[-1])
    return env, pets, line.removeprefix("Use it with: "), model_dir


def _scores(stdout: str) -> np.ndarray:
    rows = sorted(json.loads(stdout), key=lambda row: row["path"])
    return np.array([[row["scores"][name] for name in sorted(COLOURS)] for row in rows])


def test_finetune_names_the_real_architecture(finetuned):
    _, _, _, model_dir = finetuned
    metadata = json.loads((model_dir / "metadata.json").read_text())
    demo = json.loads((resources_dir() / "models" / "demo" / "metadata.json").read_text())
    assert metadata["architecture"] == demo["architecture"] != "demo"
    assert sorted(metadata["class_names"]) == sorted(COLOURS)


def test_use_it_with_line_runs_the_finetuned_model(finetuned):
    env, pets, command, model_dir = finetuned
    assert "PATH" in command and "--model" not in command  # the folder names its architecture
    literal = run(command.replace("PATH", shlex.quote(str(pets))), env)
    assert literal.returncode == 0, literal.stderr[-2000:]
    assert "Traceback" not in literal.stderr
    rows = [line.split() for line in literal.stdout.splitlines() if line.strip()]
    assert len(rows) == 12, literal.stdout
    for path, top, _, *rest in rows:  # path, best label and its score, then the other labels
        # the model's own classes (no --labels), in every row, and the right one first: a colour
        # in a file path is not enough, the label columns must name them
        assert sorted([top, *rest[::2]]) == sorted(COLOURS), rows
        assert top == Path(path).parent.name, rows
    tuned = run(command.replace("PATH", shlex.quote(str(pets))) + " --format json", env)
    templates = json.loads((model_dir / "metadata.json").read_text()).get("templates", "photo")
    base = run(["clipdesk", "classify", str(pets), "--model", "demo", "--labels", ",".join(sorted(COLOURS)),
                "--templates", templates, "--format", "json"], env)
    assert tuned.returncode == 0 and base.returncode == 0, tuned.stderr + base.stderr
    tuned_scores, base_scores = _scores(tuned.stdout), _scores(base.stdout)
    assert tuned_scores.shape == base_scores.shape == (12, 3)
    assert np.abs(tuned_scores - base_scores).max() > 1e-3  # not silently the base model
    truth = np.array([sorted(COLOURS).index(p.parent.name) for p in sorted(pets.rglob("*.png"))])
    assert (tuned_scores.argmax(1) == truth).mean() >= (base_scores.argmax(1) == truth).mean()


def test_evaluate_and_search_take_the_folder_without_model(finetuned):
    env, pets, _, model_dir = finetuned
    evaluated = run(["clipdesk", "evaluate", str(pets), "--pretrained", str(model_dir), "--format", "json"], env)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert sorted(json.loads(evaluated.stdout)["classes"]) == sorted(COLOURS)
    found = run(["clipdesk", "search", str(pets), "--pretrained", str(model_dir), "--query", "red",
                 "--format", "json", "--top-k", "3"], env)
    assert found.returncode == 0, found.stderr[-2000:]
    assert len(json.loads(found.stdout)) == 3


def test_model_that_contradicts_the_folder_is_one_sentence(finetuned):
    env, pets, _, model_dir = finetuned
    done = run(["clipdesk", "classify", str(pets), "--model", "ViT-B-32", "--pretrained", str(model_dir)], env)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ViT-B-32" in lines[0] and str(model_dir) in lines[0]


def test_missing_checkpoint_is_an_error_not_the_demo(tmp_path):
    env = _env(tmp_path)
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 20, 20)).save(image)
    done = run(["clipdesk", "classify", str(image), "--model", "demo", "--pretrained", "/nonexistent.pt",
                "--labels", "red,blue"], env)
    assert done.returncode == 1 and "/nonexistent.pt" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_offline_hints_work_as_printed(tmp_path):
    env = _env(tmp_path)
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (200, 20, 20)).save(image)
    base = f"clipdesk classify {shlex.quote(str(image))} --labels 'red circle,blue star'"
    offline = run(base, env)
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    hints = re.findall(r"`([^`]+)`", offline.stderr)
    assert "--model demo" in hints and "--pretrained FILE" in hints, offline.stderr
    demo = run(f"{base} --model demo --format json", env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert json.loads(demo.stdout)[0]["label"] == "red circle"
    weights = resources_dir() / "models" / "demo" / "model.safetensors"
    arch = json.loads((weights.parent / "metadata.json").read_text())["architecture"]
    from_file = run(f"{base} --model {arch} " + "--pretrained FILE".replace("FILE", shlex.quote(str(weights)))
                    + " --format json", env)
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    np.testing.assert_allclose(json.loads(from_file.stdout)[0]["score"], json.loads(demo.stdout)[0]["score"],
                               atol=1e-5)


def test_cache_and_models_hints_run(tmp_path):
    """`clipdesk models` (named by the unknown-architecture error) and `clipdesk cache info | clear`."""
    env = _env(tmp_path)
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (20, 20, 200)).save(image)
    unknown = run(["clipdesk", "classify", str(image), "--model", "no-such-arch", "--pretrained", "none",
                   "--labels", "a,b"], env)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    hints = re.findall(r"`(clipdesk [^`]+)`", unknown.stderr)
    assert len(hints) > 0, unknown.stderr  # the error names a command to run
    for hint in hints:
        listed = run(hint, env)
        assert listed.returncode == 0 and "clipdesk-demo" in listed.stdout, listed.stderr[-2000:]
    assert run(["clipdesk", "classify", str(image), "--model", "demo", "--labels", "a,b"], env).returncode == 0
    info = run("clipdesk cache info", env)
    assert info.returncode == 0 and "1 images" in info.stdout, info.stdout
    cleared = run("clipdesk cache clear", env)
    assert cleared.returncode == 0 and "Cleared 1 image" in cleared.stdout, cleared.stdout
    assert "(empty)" in run("clipdesk cache info", env).stdout
