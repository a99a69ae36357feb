"""Inference backends behind one small interface, so ONNX Runtime can stand in for torch.

The interface (`Encoder`) and the torch backend live in `encoder`, the ONNX Runtime one in
`onnx_backend`; both stay importable from here, where callers pick a backend by name.
"""

from __future__ import annotations

import logging

from .encoder import Encoder, TorchEncoder
from .models import LoadedModel
from .onnx_backend import make_onnx_encoder

__all__ = ["Encoder", "TorchEncoder", "make_encoder"]

log = logging.getLogger(__name__)


def make_encoder(loaded: LoadedModel, backend: str = "torch", **options) -> Encoder:
    """Pick a backend by name; `auto` and `onnx` are resolved by the ONNX module (which itself
    falls back to torch, with one logged line, when onnxruntime is not installed)."""
    if backend in ("torch", None, ""):
        if options.get("precision", "fp32") != "fp32":
            log.warning("int8 needs the ONNX Runtime backend; torch runs in fp32.")
        return TorchEncoder(loaded)
    return make_onnx_encoder(loaded, backend, **options)
