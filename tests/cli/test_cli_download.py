"""`clipdesk classify` on a model it has to download, from a local stand-in for the Hugging Face hub
(tests/core/hub_server.py): a whole process whose stderr is a terminal shows a byte progress bar,
then classifies with the downloaded weights; an unreachable hub is one sentence."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import numpy as np
import open_clip
import torch
from hub_server import (
    ARCH,
    REPO_ID,
    TAG,
    WEIGHTS_NAME,
    HubServer,
    closed_port_url,
    tag_cfg,
    tiny_weights,
)
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["cat", "dog", "car"]
# The real CLI entry point, after the tag has been added to open_clip's registry (a test-only tag).
LAUNCHER = (
    "import sys, pytest; sys.path.insert(0, {core!r}); import hub_server; "
    "hub_server.register_tag(pytest.MonkeyPatch()); from clipdesk.cli import main; sys.exit(main(sys.argv[1:]))"
).format(core=str(ROOT / "tests" / "core"))


def run_on_terminal(args: list[str], endpoint: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (tqdm draws bars only there), stdout on a pipe."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(ROOT)}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 wide
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], stdout=subprocess.PIPE,
                            stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    reader.join(10)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


def screen_lines(text: str) -> list[str]:
    """What stays on the terminal: each line as its last carriage return left it (an erased
    progress bar leaves nothing)."""
    shown = (line.rstrip("\r").split("\r")[-1].strip() for line in text.split("\n"))
    return [line for line in shown if line]


def reference_probs(state: dict, paths: list[Path]) -> np.ndarray:
    """open_clip's README recipe with the served state dict and the tag's preprocessing."""
    cfg = tag_cfg()
    model, _, preprocess = open_clip.create_model_and_transforms(
        ARCH, pretrained=None, image_mean=cfg["mean"], image_std=cfg["std"],
        image_interpolation=cfg["interpolation"], image_resize_mode=cfg["resize_mode"])
    model.load_state_dict(state)
    model.eval()
    tokenizer = open_clip.get_tokenizer(ARCH)
    with torch.no_grad():
        image = model.encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths]))
        text = model.encode_text(tokenizer([f"a photo of a {label}." for label in LABELS]))
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return (model.logit_scale.exp() * image @ text.T).softmax(dim=-1).numpy()


def test_classify_downloads_with_a_progress_bar_then_classifies(folder):
    data, state = tiny_weights()
    args = ["classify", str(folder / "a.png"), str(folder / "b.png"), "--labels", ",".join(LABELS),
            "--format", "json", "--model", ARCH, "--pretrained", TAG, "--backend", "torch", "--device", "cpu"]
    with HubServer(delay=0.005) as hub:  # ~13 MB in ~1 s: the bar is drawn a few times
        hub.add(REPO_ID, WEIGHTS_NAME, data)
        code, out, err = run_on_terminal(args, hub.url)
        assert hub.transfers() == 1
    assert code == 0, err
    assert f"Downloading {ARCH} {TAG}" in err
    assert "13.7M/13.7M" in err  # tqdm's byte units: the whole file, with its size
    assert "Traceback" not in err
    rows = json.loads(out)
    expected = reference_probs(state, [folder / "a.png", folder / "b.png"])
    for row, probs in zip(rows, expected):
        np.testing.assert_allclose([row["scores"][label] for label in LABELS], probs, atol=1e-4)


def test_classify_with_the_hub_unreachable_is_one_sentence(folder):
    args = ["classify", str(folder / "a.png"), "--labels", "cat,dog", "--model", ARCH, "--pretrained", TAG,
            "--backend", "torch", "--device", "cpu"]
    code, out, err = run_on_terminal(args, closed_port_url())
    assert code != 0 and out == ""
    lines = screen_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith(f"clipdesk: Could not download the weights for {ARCH} '{TAG}' (no connection")
