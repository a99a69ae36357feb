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

    def match(self, names: list[str]) -> list[int] | None:
        """Head rows for `names` (case, spacing and `_` ignored), or None if one is not a class.

        All classes in any order, or a subset of them: the head's logits are per class, so a
        softmax over a subset's columns is the head's answer among those classes only.
        """
        exact = {name: row for row, name in enumerate(self.class_names)}
        loose: dict[str, int | None] = {}
        for row, name in enumerate(self.class_names):  # two classes that differ only in case: exact only
            loose[_norm(name)] = None if _norm(name) in loose else row
        order = [exact[name] if name in exact else loose.get(_norm(name)) for name in names]
        if not order or None in order or len(set(order)) != len(order):
            return None
        return order

    def scores(self, features: np.ndarray, label_set) -> Scores:
        """Probabilities in `label_set`'s order; cosines stay the zero-shot ones for display."""
        order = self.match(list(label_set.names))
        if order is None:
            raise ValueError("the labels are not classes of this head")
        logits = self.logits(np.asarray(features, np.float32))[:, order]
        return Scores(list(label_set.names), softmax(logits), features @ label_set.weights.T)

    def check_dim(self, dim: int, where: str = "") -> None:
        """Refuse, when the model is loaded, a head made for another embedding size."""
        own = _dim(self)
        if dim and own and own != dim:
            raise ModelLoadError(f"The few-shot head{f' {where}' if where else ''} expects "
                                 f"{own}-d image embeddings, but the model gives {dim}-d ones.")

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


def load_head(folder: Path, metadata: dict, device=None, embed_dim: int | None = None) -> Head:
    """Read the head named in metadata.json and check it completely now, so that a damaged head
    is one sentence at load time (exit 1), never NaN or flat scores later."""
    info = metadata.get("head")
    info = info if isinstance(info, dict) else {}
    kind = info.get("kind")
    classes = metadata.get("class_names")
    if kind not in HEAD_KINDS or not _is_name_list(classes):
        raise ModelLoadError(f"{folder} names an unknown few-shot head '{kind}' or no class names.")
    file = info.get("file", HEAD_FILE)
    if not isinstance(file, str) or Path(file).name != file:
        raise ModelLoadError(f"{folder}: the few-shot head's file name {file!r} is not a plain file name.")
    path = Path(folder) / file
    tensors = _read_tensors(path)
    numbers = {key: _number(info, key, path) for key in _PARAMS[kind]}
    try:
        if kind == "linear":
            head = LinearHead(classes, tensors["weight"], tensors["bias"], numbers["scale"])
        else:
            head = TipAdapterHead(classes, tensors["zero_shot"], tensors["keys"], tensors["values"],
                                  numbers["alpha"], numbers["beta"], numbers["scale"])
    except KeyError as error:
        raise ModelLoadError(f"The few-shot head {path} has no tensor {error}.") from error
    _check_shapes(head, path)
    if embed_dim:
        head.check_dim(int(embed_dim), str(path))
    return head


_PARAMS = {"linear": ("scale",), "tip-adapter": ("alpha", "beta", "scale")}
# Bounds that keep every logit finite in float32; trained heads are far inside them.
_LIMITS = {"scale": (1e-6, 1e4), "alpha": (-1e4, 1e4), "beta": (0.0, 1e4)}


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").casefold().split())


def _is_name_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and v.strip() for v in value) and len(set(value)) == len(value)


def _number(info: dict, key: str, path: Path) -> float:
    value = info.get(key)
    low, high = _LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ModelLoadError(f"The few-shot head {path}: '{key}' is {value!r}, not a number "
                             f"between {low:g} and {high:g}.")
    return float(value)


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    """Through the file guard; float tensors of any width become float32, others are refused."""
    from safetensors.numpy import load_file

    from .safeio import check_regular

    check_regular(path, "checkpoint")
    try:
        raw = load_file(str(path))
    except Exception as error:  # noqa: BLE001 - bad header, unknown dtype (bf16): one sentence
        raise ModelLoadError(f"The few-shot head {path} could not be read ({error}).") from error
    tensors = {}
    for name, array in raw.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise ModelLoadError(f"The few-shot head {path}: tensor '{name}' holds {array.dtype} "
                                 "values; a head must be floating point.")
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ModelLoadError(f"The few-shot head {path}: tensor '{name}' holds NaN or "
                                 "infinite values; the head is damaged.")
        tensors[name] = array
    return tensors


def _check_shapes(head: Head, path: Path) -> None:
    classes = len(head.class_names)
    if isinstance(head, LinearHead):
        expected = {"weight": (classes, None), "bias": (classes,)}
    else:
        shots = head.keys.shape[0] if head.keys.ndim == 2 else -1
        expected = {"zero_shot": (classes, None), "keys": (shots, None), "values": (shots, classes)}
    dim = None
    for name, shape in expected.items():
        actual = head.tensors()[name].shape
        want = tuple(dim if s is None and dim is not None else s for s in shape)
        if len(actual) != len(want) or any(w is not None and a != w for a, w in zip(actual, want)) \
                or 0 in actual:
            raise ModelLoadError(f"The few-shot head {path}: tensor '{name}' has shape "
                                 f"{list(actual)}, which does not match its {classes} class names.")
        if None in shape:
            dim = actual[shape.index(None)]
    logits = head.logits(np.full((1, _dim(head)), 1.0 / np.sqrt(_dim(head)), np.float32))
    if logits.shape != (1, classes) or not np.isfinite(logits).all():
        raise ModelLoadError(f"The few-shot head {path} does not give finite scores for its "
                             f"{classes} class names.")


def _dim(head: Head) -> int:
    """The embedding width a head expects (0 if its kind does not say)."""
    for name in ("weight", "zero_shot"):
        tensor = getattr(head, name, None)
        if tensor is not None and getattr(tensor, "ndim", 0) == 2:
            return int(tensor.shape[1])
    return 0
