"""Shared by the issue-21 GUI tests: count decodes and classification starts, type labels like a
person, and compute the expected scores without clipdesk's scoring code."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import Qt

import clipdesk.core.embed as embed_module
import clipdesk.qt.classify_controller as classify_module


class Counts:
    """Every decode (per file) and every classification job started (its paths), and whether
    any classification task was cancelled: what a restart would leave behind."""

    def __init__(self, monkeypatch, window) -> None:
        self.decodes: Counter[Path] = Counter()
        self.classify_calls: list[list[Path]] = []
        self.cancelled: list[str] = []
        decode, classify_job, submit = embed_module.decode_rgb, classify_module.classify_job, window.worker.submit

        def counting_decode(data, path, *args, **kwargs):
            self.decodes[Path(path)] += 1
            return decode(data, path, *args, **kwargs)

        def counting_classify(engine, paths, *args, **kwargs):
            self.classify_calls.append(list(paths))
            return classify_job(engine, paths, *args, **kwargs)

        def watching_submit(name, factory, connect=None, **options):
            task = submit(name, factory, connect=connect, **options)
            task.signals.errored.connect(lambda _error: self.cancelled.append(name))
            return task

        monkeypatch.setattr(embed_module, "decode_rgb", counting_decode)
        monkeypatch.setattr(classify_module, "classify_job", counting_classify)
        monkeypatch.setattr(window.worker, "submit", watching_submit)

    def assert_each_image_once(self, paths) -> None:
        started = Counter(path for call in self.classify_calls for path in call)
        assert started == Counter(Path(p) for p in paths), "classification restarted on some images"
        assert self.decodes == Counter(Path(p) for p in paths), "an image was decoded twice (or never)"
        assert self.cancelled == [], "a task was cancelled"


def type_label(qtbot, window, text: str) -> None:
    """Typed in the label box and Enter, as a person would."""
    qtbot.keyClicks(window.label_editor.input, text)
    qtbot.keyClick(window.label_editor.input, Qt.Key.Key_Return)


def expected_probs(model, tokenizer, preprocess, paths, labels) -> np.ndarray:
    """open_clip's own forward passes on freshly decoded files, prompts as typed (templates
    "none"), softmax of the scaled cosines: no clipdesk decoding, cache or scoring involved."""
    with torch.inference_mode():
        images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        image = model.encode_image(images, normalize=True)
        text = model.encode_text(tokenizer(list(labels)), normalize=True)
        logits = model.logit_scale.exp() * image @ text.T
    return logits.softmax(dim=1).numpy()
