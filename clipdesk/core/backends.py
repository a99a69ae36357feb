"""Inference backends behind one small interface, so ONNX Runtime can stand in for torch.

An encoder turns preprocessed image batches and token batches into L2-normalised float32 CPU
tensors. It also quacks like an open_clip model for `build_zero_shot_classifier`
(`encode_text(tokens, normalize=True)`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from .models import LoadedModel

log = logging.getLogger(__name__)


class Encoder(Protocol):
    loaded: LoadedModel
    cache_identity: str  # the key under which this encoder's embeddings are cached
    name: str

    def encode_image(self, images, normalize: bool = True): ...

    def encode_text(self, tokens, normalize: bool = True): ...

    @property
    def logit_scale(self) -> float: ...


class TorchEncoder:
    """The reference path: open_clip's own modules, eager, AMP on CUDA."""

    name = "torch"

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.cache_identity = loaded.identity
        self.encoder_calls = 0  # images batches encoded; tests count re-encoding with it

    def _context(self):
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.loaded.use_amp:
            stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
        return stack

    def encode_image(self, images, normalize: bool = True):
        import torch

        self.encoder_calls += 1
        images = torch.as_tensor(images)  # decode threads hand over numpy batches (no copy)
        with self._context():
            features = self.loaded.model.encode_image(images.to(self.loaded.device), normalize=normalize)
        return features.float().cpu()

    def encode_text(self, tokens, normalize: bool = True):
        from .fast_text import encode_text  # same vectors, without encoding the padding

        with self._context():
            features = encode_text(self.loaded.model, tokens.to(self.loaded.device), normalize=normalize)
        return features.float().cpu()

    @property
    def logit_scale(self) -> float:
        return float(self.loaded.model.logit_scale.detach().exp().cpu())

    @property
    def in_eval_mode(self) -> bool:
        """Only embeddings of a model in eval mode may be cached: in training mode BatchNorm and
        dropout give other (wrong for inference) vectors, which the cache would then serve forever."""
        return not any(module.training for module in self.loaded.model.modules())


def make_encoder(loaded: LoadedModel, backend: str = "torch", **options) -> Encoder:
    """Pick a backend by name; `auto` and `onnx` are resolved by the ONNX module when present."""
    if backend in ("torch", None, ""):
        if options.get("precision", "fp32") != "fp32":
            log.warning("int8 needs the ONNX Runtime backend; torch runs in fp32.")
        return TorchEncoder(loaded)
    try:
        from .onnx_backend import make_onnx_encoder
    except ImportError:
        return TorchEncoder(loaded)
    return make_onnx_encoder(loaded, backend, **options)
