"""Few-shot heads trained by `training` (the quick method), applied over normalised image embeddings.

A head replaces the zero-shot softmax when the labels asked for are exactly its classes
(`Engine.score`); any other label set still gets plain zero-shot scores, so the base model's
behaviour is untouched. Heads are pure numpy: the same arithmetic in training and at load time
gives identical logits.

- `linear`: logits = scale · f·Wᵀ + b, W initialised from the zero-shot text classifier.
- `tip-adapter`: Tip-Adapter-F (Zhang et al., 2022) — zero-shot logits plus a cache model over
  the training embeddings: scale · f·W₀ᵀ + α · exp(−β(1 − f·Kᵀ)) · V.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .classify import Scores, softmax
from .errors import ModelLoadError

HEAD_FILE = "head.safetensors"


class Head:
    kind = "head"

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)

    def logits(self, features: np.ndarray) -> np.ndarray:  # [N, C] in class_names order
        raise NotImplementedError

    def tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def params(self) -> dict:
        return {}

    def scores(self, features: np.ndarray, label_set) -> Scores:
        """Probabilities in `label_set`'s order; cosines stay the zero-shot ones for display."""
        order = [self.class_names.index(name) for name in label_set.names]
        probs = softmax(self.logits(np.asarray(features, np.float32)))[:, order]
        return Scores(list(label_set.names), probs, features @ label_set.weights.T)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(np.asarray(features, np.float32)).argmax(axis=1)


class LinearHead(Head):
    kind = "linear"

    def __init__(self, class_names, weight: np.ndarray, bias: np.ndarray, scale: float) -> None:
        super().__init__(class_names)
        self.weight = np.asarray(weight, np.float32)
        self.bias = np.asarray(bias, np.float32)
        self.scale = float(scale)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.float32(self.scale) * (features @ self.weight.T) + self.bias

    def tensors(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def params(self) -> dict:
        return {"scale": self.scale}


class TipAdapterHead(Head):
    kind = "tip-adapter"

    def __init__(self, class_names, zero_shot: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 alpha: float, beta: float, scale: float) -> None:
        super().__init__(class_names)
        self.zero_shot = np.asarray(zero_shot, np.float32)
        self.keys = np.asarray(keys, np.float32)
        self.values = np.asarray(values, np.float32)
        self.alpha, self.beta, self.scale = float(alpha), float(beta), float(scale)

    def logits(self, features: np.ndarray) -> np.ndarray:
        affinity = np.exp(np.float32(-self.beta) * (np.float32(1.0) - features @ self.keys.T))
        clip_logits = np.float32(self.scale) * (features @ self.zero_shot.T)
        return clip_logits + np.float32(self.alpha) * (affinity @ self.values)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"zero_shot": self.zero_shot, "keys": self.keys, "values": self.values}

    def params(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "scale": self.scale}


HEAD_KINDS = {cls.kind: cls for cls in (LinearHead, TipAdapterHead)}


def head_metadata(head: Head) -> dict:
    """The `metadata["head"]` entry that `load_head` reads back."""
    return {"kind": head.kind, "file": HEAD_FILE, **head.params()}


def load_head(folder: Path, metadata: dict, device=None) -> Head:
    """Read the head named in metadata.json; one clear sentence if it is missing or malformed."""
    from safetensors.numpy import load_file

    info = metadata.get("head") or {}
    kind = info.get("kind")
    classes = metadata.get("class_names") or []
    if kind not in HEAD_KINDS or not classes:
        raise ModelLoadError(f"{folder} names an unknown few-shot head '{kind}' or no class names.")
    path = Path(folder) / info.get("file", HEAD_FILE)
    try:
        tensors = load_file(str(path))
        if kind == "linear":
            head = LinearHead(classes, tensors["weight"], tensors["bias"], info["scale"])
        else:
            head = TipAdapterHead(classes, tensors["zero_shot"], tensors["keys"], tensors["values"],
                                  info["alpha"], info["beta"], info["scale"])
    except Exception as error:  # noqa: BLE001 - missing file, bad header, missing keys: one sentence
        raise ModelLoadError(f"The few-shot head {path} could not be read ({error}).") from error
    if head.logits(np.zeros((1, _dim(head)), np.float32)).shape[1] != len(classes):
        raise ModelLoadError(f"The few-shot head {path} does not match its {len(classes)} class names.")
    return head


def _dim(head: Head) -> int:
    return (head.weight if isinstance(head, LinearHead) else head.zero_shot).shape[1]
