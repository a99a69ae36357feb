"""The encoder interface every backend implements, and its reference implementation (torch).

An encoder turns preprocessed image batches and token batches into L2-normalised float32 CPU
tensors. It also quacks like an open_clip model for `build_zero_shot_classifier`
(`encode_text(tokens, normalize=True)`). A floor below `backends` and the ONNX modules, which all
fall back to `TorchEncoder`. torch is imported inside the methods, on purpose: the torch-free
ONNX start imports this module (for the fallback it may never need) without paying ~1 s for it.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from .fast_text import encode_text  # same vectors as open_clip's, without encoding the padding
from .models import LoadedModel


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
