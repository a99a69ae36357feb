"""ONNX Runtime sessions: which backend, how many threads, the session options, array plumbing.

The floor every other ONNX module stands on (it imports nothing of clipdesk's but its errors).
onnxruntime itself is imported inside `open_session`, on purpose: importing it costs ~0.3 s,
and nothing that merely chooses a backend or shapes arrays needs it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np

from .errors import ModelLoadError

log = logging.getLogger(__name__)

SPIN = False  # runtime threads spin-wait for work? (see open_session)


# -- choosing the backend and the thread budget ---------------------------------------------------
def resolve_backend(backend: str | None, device_type: str) -> str:
    """`auto`: ONNX Runtime on the CPU, torch on a GPU (where torch's kernels and AMP win)."""
    name = (backend or "auto").lower()
    if name not in ("auto", "torch", "onnx"):
        raise ModelLoadError(f"Unknown backend '{backend}'; choose auto, torch or onnx.")
    if name == "auto":
        return "onnx" if device_type == "cpu" else "torch"
    return name


def available_cores() -> int:
    """Cores this process may use (affinity-aware: containers and `taskset` limit it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_budget(cores: int | None = None) -> tuple[int, int]:
    """(runtime intra-op threads, decode workers) for this many cores.

    The encoder is most of the work (≈ 60-80 ms per ViT-B/32 image against ≈ 30 ms of draft JPEG
    decode), so it gets every core; decode workers are few and the runtime does not spin-wait, so
    the two interleave instead of starving each other (measured in benchmarks/bench_rclip.py).
    """
    cores = cores or available_cores()
    return cores, max(1, min(4, cores // 2 if cores >= 4 else cores))


def cpu_only(device: str | None) -> bool:
    """Would `resolve_device(device)` pick the CPU? Answered without importing torch."""
    name = (device or "auto").lower()
    if name == "cpu":
        return True
    if name != "auto":
        return False
    if sys.platform == "darwin":
        return False  # Apple silicon has MPS: let torch decide
    nvidia = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvidiactl")
    if any(os.path.exists(p) for p in nvidia):
        return False
    if sys.platform == "win32":
        return not os.path.exists(os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32", "nvcuda.dll"))
    return True


# -- sessions and what goes in and out of them ------------------------------------------------------
def open_session(path: Path, threads: int | None = None, device_type: str = "cpu", prepack: bool = True):
    """An InferenceSession tuned for sharing a small CPU with the decode threads.

    `prepack=False` skips re-laying out the MatMul weights: the session opens ~4x faster and
    stays memory-mapped, worth it for the text tower whose trimmed prompts are little work.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or thread_budget()[0]
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spin-waiting runtime threads would burn the cores the JPEG decoders need between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPIN else "0")
    options.log_severity_level = 3
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    providers = ["CPUExecutionProvider"]
    if device_type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


def normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def as_numpy(value, dtype) -> np.ndarray:
    if is_torch(value):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=dtype)


def trim_tokens(tokens: np.ndarray) -> np.ndarray:
    """Drop the padding columns after the last end-of-text token (the largest id in each row)."""
    end = int(tokens.argmax(axis=1).max()) + 1 if tokens.size else tokens.shape[1]
    return tokens[:, :end]


def first_line(error: BaseException) -> str:
    """An error's first line, short enough for a status bar or a one-line note."""
    text = str(error).strip().splitlines()
    return (text[0][:160] if text else type(error).__name__)


def note_fallback(reason: str) -> None:
    """The one line a fallback to torch leaves in the log (the CLI prints it as `clipdesk: …`)."""
    log.warning("%s; using torch instead.", reason)
