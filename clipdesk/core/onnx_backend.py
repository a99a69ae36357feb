"""ONNX Runtime backend: the loaded model's image and text towers, exported once, run without torch.

Why: on a laptop CPU, ONNX Runtime runs ViT encoders 1.5-1.8x faster than torch eager, and a run
whose export is already cached needs neither torch nor open_clip (about a second and ~500 MB of
resident memory saved before any work starts; see `onnx_start`).

This module is the `Encoder` over two ONNX Runtime sessions. Its neighbours, one concern each:
`onnx_session` (backend choice, threads, session options), `onnx_store` (where exports live),
`onnx_convert` (torch to ONNX, verified), `onnx_quantize` (int8), `onnx_export` (the one-time
background export process), `onnx_lite` (torch-free tokenizer and transform), `onnx_start` (the
torch-free start from a cached export).

Any failure — onnxruntime missing, export error, a file that will not load, a runtime error — ends
in torch with one logged line, never a crash. torch is imported only where a torch tensor comes in
or goes out (and onnxruntime only to ask whether it is installed): neither is needed to import this.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import onnx_export as bg
from .encoder import Encoder, TorchEncoder
from .errors import Cancelled
from .jobs import CancelToken, Job, run_job
from .models import LoadedModel, is_path
from .onnx_convert import export_job
from .onnx_session import (
    as_numpy,
    first_line,
    is_torch,
    normalise,
    note_fallback,
    open_session,
    resolve_backend,
    thread_budget,
    trim_tokens,
)
from .onnx_store import PRECISIONS, TOWERS, cached_export, export_root

log = logging.getLogger(__name__)

TEXT_CHUNK = 256  # prompts per text-encoder call: bounds memory for 1,000 labels x 80 templates
RUN_SLICE = {"visual": 8, "textual": 64}  # rows per session.run (see OnnxEncoder._session_run)
PENDING_NAME = "torch (preparing a faster ONNX version)"


class OnnxEncoder:
    """The `Encoder` interface over two ONNX Runtime sessions (opened lazily, in the background).

    Inputs may be torch tensors or numpy arrays; outputs come back as the same kind, float32 on
    the CPU, so the embed pipeline and `build_zero_shot_classifier` work unchanged, and the
    torch-free start never needs torch.
    """

    def __init__(self, loaded: LoadedModel, precision: str = "fp32", threads: int | None = None,
                 folder: Path | None = None, meta: dict | None = None, background: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision '{precision}'; choose fp32 or int8.")
        self.loaded = loaded
        self.precision = precision
        self.name = "onnx" if precision == "fp32" else "onnx-int8"
        # fp32 embeddings equal torch's to ~1e-6, so they share its cache; int8 ones do not.
        self.cache_identity = loaded.identity if precision == "fp32" else f"{loaded.identity}#onnx-int8"
        self.threads, self.decode_workers = thread_budget()
        self.threads = threads or self.threads
        self.folder, self.meta = folder, meta
        self.encoder_calls = 0
        self._sessions: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._loader: ThreadPoolExecutor | None = None
        self._fallback: TorchEncoder | None = None
        self._text_torch: TorchEncoder | None = None  # labels while the text session is closed
        self.background = background
        self.note = ""  # one line for a status bar, e.g. while a background export runs
        self._pending, self._polled, self._process, self._export_due = False, 0.0, None, False

    # -- preparation --------------------------------------------------------------------------
    def prepare_job(self, cancel: CancelToken | None = None) -> Job[Encoder]:
        """A cached export: use it. Otherwise, with `background` (backend `auto`), serve torch now
        and export in a background process; else export here with progress. On failure, torch."""
        if self.folder is not None:
            return self
        ready = cached_export(self.loaded.identity, self.precision, self._source())
        if ready is not None:
            self.folder, self.meta = ready
            return self
        if self.background:
            return self._serve_torch_meanwhile()
        try:
            self.folder, self.meta = yield from export_job(self.loaded, self.precision, cancel)
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001 - exporters fail in many ways; torch still works
            note_fallback(f"could not export {self.loaded.arch} to ONNX ({first_line(error)})")
            return TorchEncoder(self.loaded)
        return self

    def _source(self) -> str | None:
        """The model folder this model came from, which may carry its own export (the demo's)."""
        pretrained = self.loaded.pretrained
        return pretrained if is_path(pretrained) else None

    def _serve_torch_meanwhile(self) -> Encoder:
        """First use: results come from torch at once; the export runs in its own low-priority
        process (clipdesk.core.onnx_export) and this encoder switches to it once it is verified."""
        identity = self.loaded.identity
        try:
            root = export_root()
            root.mkdir(parents=True, exist_ok=True)
            bg.clean_stale(identity)
        except OSError:  # an unusable cache folder: torch, and no promise of an export
            return TorchEncoder(self.loaded)
        failure = bg.recent_failure(identity)
        if failure is not None:
            note_fallback(f"the ONNX export of {self.loaded.arch} failed ({failure}); it is retried "
                          "after a day")
            return TorchEncoder(self.loaded)
        if not bg.background_enabled() or not os.access(root, os.W_OK):
            return TorchEncoder(self.loaded)  # turned off (CLIPDESK_BACKGROUND_EXPORT=0), read-only cache
        if not bg.export_running(identity):
            # Started after the first batch of results (or when the program ends, as `git gc --auto`
            # does), so that it never competes with the first result for the cores.
            self._export_due = True
            atexit.register(self.start_export)
        log.warning("%s", bg.NOTE)  # the CLI prints core's notes as `clipdesk: …` lines
        self.note = bg.NOTE
        self._fallback = TorchEncoder(self.loaded)
        # The window's status bar shows the backend's name: it says what is going on.
        self.name, self.cache_identity = PENDING_NAME, self._fallback.cache_identity
        self._pending = True
        return self

    def start_export(self) -> None:
        """Start the background export process now (once)."""
        if not self._export_due:
            return
        self._export_due = False
        atexit.unregister(self.start_export)
        self._process = bg.start_background_export(self.loaded.arch, self.loaded.pretrained,
                                                self.loaded.identity, self.precision)

    @property
    def export_running(self) -> bool:
        """The background export process is at work now. It starts only after the first batch
        of results, so until then (a note already says it is coming) torch keeps every core."""
        process = self._process
        return process is not None and process.poll() is None

    def _poll_pending(self) -> None:
        """Between batches, at most once a second: switch to ONNX Runtime once the background
        export is complete and verified (fp32 only: its embeddings are torch's to ~1e-6, so the
        cache and the label vectors stay valid; an int8 export is used from the next start)."""
        now = time.monotonic()
        if now - self._polled < 1.0:
            return
        self._polled = now
        ready = cached_export(self.loaded.identity, self.precision)
        if ready is not None:
            self._pending = False
            if self.precision == "fp32":
                self.folder, self.meta = ready
                self._fallback, self.name, self.note = None, "onnx", ""
                self.cache_identity = self.loaded.identity
            return
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is not None:  # exited without an export
            self._pending = False
            self.name, self.note = "torch", ""  # nothing is being prepared any more

    def poll_background(self) -> str:
        """Check the background export now (the window asks while idle, when no batch polls);
        returns the backend's name, "onnx" once switched."""
        if self._pending:
            self._polled = 0.0
            self._poll_pending()
        return self.name

    @property
    def in_eval_mode(self) -> bool:
        """Exports are traced in eval mode; only the torch fallback can be in training mode."""
        return True if self._fallback is None else self._fallback.in_eval_mode

    def _ensure_ready(self) -> None:
        if self.folder is None:  # used without prepare_job: export now, silently
            self.folder, self.meta = run_job(export_job(self.loaded, self.precision))

    def warm_up_images(self) -> None:
        """The embed loop's first cache miss: open the image session in the background (it
        overlaps the decoding) and let go of the text session, so that only one big session is
        resident at a time (≈ 300 MB less at peak for ViT-B/32; a later label reloads it in
        well under a second)."""
        if self._fallback is not None:  # torch serves (export pending or failed): nothing to open
            return
        with self._lock:
            if "visual" in self._sessions:
                return
            self._sessions.pop("textual", None)
        self._future("visual")

    def open_text_session(self) -> None:
        """Open the text session now and wait for it: later labels run on ONNX Runtime, not on the
        torch model (see `_text_by_torch`)."""
        if self._fallback is None:
            self._future("textual").result()

    def _future(self, tower: str) -> Future:
        with self._lock:
            future = self._sessions.get(tower)
            if future is None:
                if self._loader is None:
                    self._loader = ThreadPoolExecutor(2, thread_name_prefix="onnx-load")
                future = self._loader.submit(self._open, tower)
                self._sessions[tower] = future
            return future

    def _open(self, tower: str):
        self._ensure_ready()
        return open_session(self.folder / TOWERS[tower], self.threads, self._device_type(),
                            prepack=tower == "visual")

    def _device_type(self) -> str:
        return str(getattr(self.loaded.device, "type", "cpu"))

    # -- encoding ---------------------------------------------------------------------------------
    def encode_image(self, images, normalize: bool = True):
        self.encoder_calls += 1
        return self._run("visual", images, np.float32, normalize)

    def encode_text(self, tokens, normalize: bool = True):
        return self._run("textual", tokens, np.int64, normalize)

    def _run(self, tower: str, batch, dtype, normalize: bool):
        as_torch = is_torch(batch)
        array = as_numpy(batch, dtype)
        features = None
        if self._pending:
            self._poll_pending()
        if self._fallback is None and tower == "textual" and self._text_by_torch():
            features = self._torch_text(array)
        elif self._fallback is None:
            try:
                features = self._session_run(self._future(tower).result(), tower, array)
            except Exception as error:  # noqa: BLE001 - a runtime failure ends in torch, not a crash
                self._fall_back(error)
        if features is None:
            features = self._torch_run(tower, array)
            if self._export_due and tower == "visual":
                self.start_export()  # the first results are out: now the one-time work
        features = np.asarray(features, dtype=np.float32)
        if normalize:
            features = normalise(features)
        if as_torch:
            import torch

            return torch.from_numpy(features)
        return features

    def _session_run(self, session, tower: str, array: np.ndarray) -> np.ndarray:
        """Run in slices: ViT activations for 8 images keep the runtime's arena ~100 MB smaller
        than for 32, at the same speed per image."""
        if tower == "textual" and self.meta and self.meta.get("text_trim"):
            array = trim_tokens(array)
        step = RUN_SLICE[tower]
        parts = [session.run(None, {"input": array[i : i + step]})[0] for i in range(0, len(array), step)]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]

    def _text_by_torch(self) -> bool:
        """Labels while the text session is closed — dropped for the image session's memory
        (`warm_up_images`), or never opened since the background export landed: the torch model,
        already in memory, encodes a few labels in tens of milliseconds, where opening the session
        takes a second or more on a busy CPU (issue 21's 3 s re-score). fp32 only: its text
        vectors equal torch's to ~1e-6; a torch-free start (no model in memory) opens the session."""
        if self.precision != "fp32" or not getattr(self.loaded, "materialised", True):
            return False
        with self._lock:
            future = self._sessions.get("textual")
        return future is None or not future.done()

    def _torch_text(self, array: np.ndarray) -> np.ndarray:
        import torch

        if self._text_torch is None:
            self._text_torch = TorchEncoder(self.loaded)
        return self._text_torch.encode_text(torch.from_numpy(array), normalize=False).numpy()

    def _fall_back(self, error: Exception) -> None:
        note_fallback(f"ONNX Runtime failed ({first_line(error)})")
        self._fallback = TorchEncoder(self.loaded)
        self.cache_identity = self._fallback.cache_identity
        self.name = "torch"

    def _torch_run(self, tower: str, array: np.ndarray) -> np.ndarray:
        import torch

        method = self._fallback.encode_image if tower == "visual" else self._fallback.encode_text
        return method(torch.from_numpy(array), normalize=False).numpy()

    def zero_shot_columns(self, names: list[str], templates: list) -> np.ndarray:
        """open_clip's `build_zero_shot_classifier` in numpy: (dim, len(names)), unit columns.

        Per name: the mean of its normalised prompt embeddings, renormalised.
        """
        texts = [t.format(name) if isinstance(t, str) else t(name) for name in names for t in templates]
        tokens = self.loaded.tokenizer(texts)
        chunks = [self.encode_text(tokens[i : i + TEXT_CHUNK]) for i in range(0, len(texts), TEXT_CHUNK)]
        features = np.concatenate([as_numpy(c, np.float32) for c in chunks])
        per_name = features.reshape(len(names), len(templates), -1).mean(axis=1)
        return normalise(per_name).T

    @property
    def logit_scale(self) -> float:
        if self.meta is not None and self._fallback is None:
            return float(self.meta["logit_scale"])
        return TorchEncoder(self.loaded).logit_scale

    @property
    def embed_dim(self) -> int:
        return int(self.meta["embed_dim"]) if self.meta else 0

    def close(self) -> None:
        """Drop the sessions (their memory) and the loader thread."""
        with self._lock:
            self._sessions.clear()
            if self._loader is not None:
                self._loader.shutdown(wait=False)
                self._loader = None


def make_onnx_encoder(loaded: LoadedModel, backend: str, precision: str = "fp32", **options) -> Encoder:
    """`auto`/`onnx` → an OnnxEncoder (export deferred to its `prepare_job`), or torch.

    `auto` keeps torch on a GPU. Without onnxruntime, the torch encoder with a one-line note.
    """
    precision = (precision or "fp32").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose fp32 or int8.")
    if resolve_backend(backend, loaded.device.type) == "torch":
        if precision == "int8":
            note_fallback("int8 precision needs the ONNX Runtime backend")
        return TorchEncoder(loaded)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        note_fallback(f"onnxruntime is not installed ({error})")
        return TorchEncoder(loaded)
    background = (backend or "auto").lower() == "auto"  # an explicit `onnx` exports at once, with progress
    return OnnxEncoder(loaded, precision, threads=options.get("threads"), background=background)
