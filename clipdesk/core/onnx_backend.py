"""ONNX Runtime backend: the loaded model's image and text towers, exported once, run without torch.

Why: on a laptop CPU, ONNX Runtime runs ViT encoders 1.5-1.8x faster than torch eager, and a run
whose export is already cached needs neither torch nor open_clip (about a second and ~500 MB of
resident memory saved before any work starts). See `open_exported_job` for that start.

Exports live in `cache_dir()/onnx/<model identity>/<precision>/` (visual.onnx, textual.onnx,
meta.json), keyed by `LoadedModel.identity` so a fine-tuned checkpoint gets its own export. Each is
written into a temporary folder, checked against torch on sample inputs, and renamed into place,
so a crash or a concurrent run never leaves a half export. int8 is ONNX Runtime's dynamic
quantisation of the MatMul (linear) weights, derived from the fp32 export without torch.

Any failure — onnxruntime missing, export error, a file that will not load, a runtime error — ends
in torch with one logged line, never a crash.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .backends import Encoder, TorchEncoder
from .errors import Cancelled
from .jobs import CancelToken, Job, Progress, check
from .models import LoadedModel, quiet_open_clip
from .paths import cache_dir

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2  # bump when the wrappers or the layout change: older exports are then redone
OPSET = 17
PRECISIONS = ("fp32", "int8")
VISUAL, TEXTUAL, META = "visual.onnx", "textual.onnx", "meta.json"
TOWERS = {"visual": VISUAL, "textual": TEXTUAL}
TEXT_CHUNK = 256  # prompts per text-encoder call: bounds memory for 1,000 labels x 80 templates
SPIN = False  # runtime threads spin-wait for work? (see open_session)
RUN_SLICE = {"visual": 8, "textual": 64}  # rows per session.run (see OnnxEncoder._session_run)
PENDING_NAME = "torch (preparing a faster ONNX version)"


# -- choosing the backend and the thread budget ---------------------------------------------------
def resolve_backend(backend: str | None, device_type: str) -> str:
    """`auto`: ONNX Runtime on the CPU, torch on a GPU (where torch's kernels and AMP win)."""
    name = (backend or "auto").lower()
    if name not in ("auto", "torch", "onnx"):
        from .errors import ModelLoadError

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


# -- where exports live -----------------------------------------------------------------------------
def export_root() -> Path:
    return cache_dir() / "onnx"


def sanitise(identity: str) -> str:
    """A folder name for an identity: readable, filesystem-safe, and still unique (hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", identity).strip("._")[:80] or "model"
    return f"{readable}-{hashlib.blake2b(identity.encode(), digest_size=4).hexdigest()}"


def export_dir(identity: str, precision: str = "fp32") -> Path:
    return export_root() / sanitise(identity) / precision


def read_meta(folder: Path, identity: str) -> dict | None:
    """The export's meta.json if the export is complete, current and for this identity."""
    from .safeio import read_json_or_none

    meta = read_json_or_none(folder / META)
    if not isinstance(meta, dict):
        return None
    if meta.get("format") != EXPORT_FORMAT or meta.get("identity") != identity:
        return None
    if not all((folder / n).is_file() and (folder / f"{n}.data").is_file() for n in TOWERS.values()):
        return None
    if meta.get("files") != _file_digests(folder):  # zeroed or edited weights: garbage, exit 0
        return None
    return meta


def _file_digests(folder: Path) -> dict[str, str]:
    """Whole-content hashes of an export's files, recorded once it was verified against torch and
    checked at every use (memoised by path, size and mtime, so a later start pays nothing)."""
    from .models import file_fingerprint

    return {name: file_fingerprint(folder / name)
            for tower in sorted(TOWERS.values()) for name in (tower, f"{tower}.data")}


def cached_export(identity: str, precision: str = "fp32") -> tuple[Path, dict] | None:
    """(folder, meta) of a complete, verified export at `precision`, if there is one."""
    folder = export_dir(identity, precision)
    meta = read_meta(folder, identity)
    return (folder, meta) if meta is not None else None


# -- export (needs torch: the first use of a model) -------------------------------------------------
def export_job(loaded: LoadedModel, precision: str = "fp32",
               cancel: CancelToken | None = None) -> Job[tuple[Path, dict]]:
    """Make sure the export for `loaded` at `precision` exists; return (folder, meta)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose fp32 or int8.")
    folder = export_dir(loaded.identity, "fp32")
    meta = read_meta(folder, loaded.identity)
    if meta is None:
        meta = yield from _export_fp32(loaded, folder, cancel)
    if precision == "int8":
        return (yield from quantize_job(folder, meta, cancel))
    return folder, meta


def _export_fp32(loaded: LoadedModel, folder: Path, cancel: CancelToken | None) -> Job[dict]:
    """The export, with the model put back in eval mode however it ends: the exporter restores
    the wrapper's (training) mode recursively, which would leave BatchNorm in training mode for
    every later torch use of this loaded model (the fallback) and poison the embedding cache."""
    try:
        return (yield from _export_fp32_steps(loaded, folder, cancel))
    finally:
        loaded.model.eval()


def _export_fp32_steps(loaded: LoadedModel, folder: Path, cancel: CancelToken | None) -> Job[dict]:
    import torch

    message = f"Exporting {loaded.arch} to ONNX (first use only)"
    yield Progress(0, 3, message, unit="step")
    model = loaded.model
    device = next(model.parameters()).device
    size = loaded.model.visual.image_size
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, height, width, generator=generator).to(device)
    tokens = loaded.tokenizer(["a photo of a cat.", "a diagram of an engine"]).to(device)
    with torch.no_grad():
        expected = {"visual": model.encode_image(images).float().cpu().numpy(),
                    "textual": model.encode_text(tokens).float().cpu().numpy()}
    with _staging(folder) as tmp:
        _export_module(_tower(model.encode_image), images, tmp / VISUAL, {0: "batch"})
        check(cancel)
        yield Progress(1, 3, message, unit="step")
        inputs = {"visual": images.cpu().numpy(), "textual": tokens.cpu().numpy()}
        trim = _text_trimmable(model) and _export_short_text(model, tokens, tmp / TEXTUAL)
        if trim:
            try:
                _verify(tmp, inputs, expected, trim, tolerance=1e-4)
            except RuntimeError as error:
                log.info("short-text export rejected (%s); exporting the full-length one", error)
                trim = False
        if not trim:
            _export_module(_tower(model.encode_text), tokens, tmp / TEXTUAL, {0: "batch"})
        check(cancel)
        yield Progress(2, 3, message, unit="step")
        _verify(tmp, inputs, expected, trim, tolerance=1e-4)
        for name in TOWERS.values():
            _externalise(tmp / name)
        meta = {**_base_meta(loaded, expected["visual"].shape[-1]), "text_trim": trim}
        _write_meta(tmp, meta)
    yield Progress(3, 3, message, unit="step")
    return read_meta(folder, loaded.identity) or meta


def _tower(method):
    """A module wrapping one encoder method, so that it exports as its own graph."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.owner = method.__self__  # registers the model's parameters for the exporter

        def forward(self, x):
            return method(x)  # unnormalised: one export serves normalize=True and False

    return Tower().eval()  # a new Module is in training mode; the exporter would restore that


def _text_trimmable(model) -> bool:
    """Can the text tower skip the padding? Only a causal, EOT-pooled open_clip CLIP text tower:
    there no position before the end-of-text token ever attends to the padding after it."""
    return (type(model).__name__ == "CLIP" and getattr(model, "text_pool_type", "") == "argmax"
            and getattr(model, "attn_mask", None) is not None and hasattr(model, "token_embedding"))


def _short_text_tower(model):
    """open_clip's `CLIP.encode_text` with the token axis left dynamic (positions and causal mask
    cut to the input's length), so callers can drop padding columns: "a photo of a cat." is 8
    tokens of 77, and the text tower's cost grows with the length."""
    import torch
    from open_clip.model import text_global_pool

    class ShortText(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.owner = model

        def forward(self, text):
            owner, length = self.owner, text.shape[1]
            cast = owner.transformer.get_cast_dtype()
            x = owner.token_embedding(text).to(cast) + owner.positional_embedding[:length].to(cast)
            x = owner.transformer(x, attn_mask=owner.attn_mask[:length, :length])
            x = text_global_pool(owner.ln_final(x), text, "argmax")
            projection = owner.text_projection
            if projection is None:
                return x
            return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    return ShortText().eval()


def _export_short_text(model, tokens, path: Path) -> bool:
    """Export `_short_text_tower` with a dynamic token axis; False if the exporter cannot.

    The TorchScript exporter bakes the sequence length into nn.MultiheadAttention's reshapes, so
    this one graph goes through the torch.export-based exporter (slower to export: ~15 s).
    """
    import torch

    short = tokens[:, : max(2, int(tokens.argmax(dim=1).max()) + 1)]  # a length below the maximum
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens", min=1, max=tokens.shape[1])},)
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            torch.onnx.export(_short_text_tower(model), (short,), str(path), input_names=["input"],
                              output_names=["features"], dynamic_shapes=dims, opset_version=18,
                              dynamo=True, external_data=False, optimize=True, verbose=False)
    except Exception as error:  # noqa: BLE001 - any exporter failure: use the full-length graph
        log.info("short-text export failed (%s): %s", _first_line(error), chatter.getvalue()[-500:])
        path.unlink(missing_ok=True)
        return False
    return True


def trim_tokens(tokens: np.ndarray) -> np.ndarray:
    """Drop the padding columns after the last end-of-text token (the largest id in each row)."""
    end = int(tokens.argmax(axis=1).max()) + 1 if tokens.size else tokens.shape[1]
    return tokens[:, :end]


def _export_module(module, sample, path: Path, dynamic: dict) -> None:
    import torch

    # Grad mode on (the default) on purpose: under no_grad, nn.MultiheadAttention takes its fused
    # fast path, which the exporter cannot express.
    chatter = io.StringIO()  # the exporter prints; stdout may be the CLI's JSON
    with warnings.catch_warnings(), torch.enable_grad(), contextlib.redirect_stdout(chatter):
        warnings.simplefilter("ignore")  # TracerWarnings about Python control flow in open_clip
        # The TorchScript-based exporter (dynamo=False) handles open_clip's ViTs and text
        # transformers as they are; `dynamo=True` needs onnxscript and fails on some variants.
        torch.onnx.export(
            module, (sample,), str(path), input_names=["input"], output_names=["features"],
            dynamic_axes={"input": dynamic, "features": {0: "batch"}}, opset_version=OPSET, dynamo=False,
        )


def _externalise(path: Path) -> None:
    """Move the weights out of the graph into `<name>.data`, which ONNX Runtime memory-maps.

    Measured on ViT-B-32-256: the text session opens in 0.3 s instead of 1.0 s and the image
    one in 0.9 s instead of 1.8 s, each with 100-200 MB less resident memory (no copy of the
    weights; the token-embedding rows a prompt does not use are never even read).
    """
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)


def _verify(folder: Path, inputs: dict, expected: dict, trim: bool, tolerance: float) -> None:
    """The export must reproduce torch on the sample inputs (and trimmed tokens), or it is not used."""
    runs = [("visual", inputs["visual"]), ("textual", inputs["textual"])]
    if trim:
        runs.append(("textual", trim_tokens(inputs["textual"])))
    sessions = {tower: open_session(folder / name, threads=1) for tower, name in TOWERS.items()}
    for tower, batch in runs:
        got = sessions[tower].run(None, {"input": batch})[0]
        error = float(np.abs(_normalise(got) - _normalise(expected[tower])).max())
        if not np.isfinite(error) or error > tolerance:
            raise RuntimeError(f"the ONNX {tower} encoder differs from torch by {error:.2g}")


def _base_meta(loaded: LoadedModel, embed_dim: int) -> dict:
    import onnxruntime
    import torch

    return {
        "format": EXPORT_FORMAT, "identity": loaded.identity, "arch": loaded.arch,
        "pretrained": loaded.pretrained, "precision": "fp32", "embed_dim": int(embed_dim),
        "image_size": loaded.image_size, "context_length": loaded.context_length,
        "logit_scale": float(loaded.model.logit_scale.detach().exp().cpu()),
        "preprocess": _lite_preprocess(loaded), "tokenizer": _lite_tokenizer(loaded),
        "opset": OPSET, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
    }


def _lite_preprocess(loaded: LoadedModel) -> dict | None:
    """The torch-free transform's settings, if it reproduces open_clip's on sample images."""
    from PIL import Image

    from .onnx_lite import NumpyPreprocess

    cfg = getattr(loaded.model.visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", loaded.image_size)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            return None
        size = size[0]
    try:
        lite = NumpyPreprocess(size, cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic"),
                               cfg.get("resize_mode", "shortest"))
    except (KeyError, ValueError):
        return None
    rng = np.random.default_rng(0)
    for width, height in ((97, 61), (61, 97), (size, size), (3 * size + 1, 2 * size)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        reference = np.asarray(loaded.preprocess(image))
        if reference.shape != (3, size, size) or np.abs(lite(image) - reference).max() > 1e-6:
            return None
    return lite.config()


_CLEAN_MODES = {"_clean_lower": "lower", "_clean_whitespace": "whitespace", "_clean_canonicalize": "canonicalize"}


def _lite_tokenizer(loaded: LoadedModel) -> dict | None:
    """The torch-free tokenizer's settings, if the model uses open_clip's plain CLIP BPE."""
    from .onnx_lite import ClipBpeTokenizer, open_clip_bpe_path

    tokenizer = loaded.tokenizer
    if type(tokenizer).__name__ != "SimpleTokenizer" or getattr(tokenizer, "reduction_fn", None):
        return None
    clean = _CLEAN_MODES.get(getattr(getattr(tokenizer, "clean_fn", None), "__name__", ""))
    if clean is None or len(tokenizer.encoder) != 49408:
        return None
    config = {"context_length": int(tokenizer.context_length or loaded.context_length), "clean": clean}
    lite = ClipBpeTokenizer(bpe_path=open_clip_bpe_path(), **config)
    samples = ["a photo of a cat.", "Ünïcødé café 東京 😀 &amp;  spaces", "it's 42 dogs' toys " * 12]
    if not np.array_equal(lite(samples), np.asarray(tokenizer(samples))):
        return None
    return config


def _write_meta(folder: Path, meta: dict) -> None:
    meta["files"] = _file_digests(folder)
    (folder / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")


class _staging:
    """Write an export into a temporary sibling folder, then rename it into place (atomic)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Path:
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                if self.folder.exists():  # a stale or concurrent export: ours is complete
                    shutil.rmtree(self.folder, ignore_errors=True)
                try:
                    os.replace(self.tmp, self.folder)
                except OSError:
                    if not self.folder.is_dir():  # lost a race to another process: theirs stands
                        raise
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def quantize_job(fp32_folder: Path, meta: dict, cancel: CancelToken | None = None) -> Job[tuple[Path, dict]]:
    """int8 towers from the fp32 export (no torch needed): dynamic quantisation of MatMul weights."""
    folder = fp32_folder.parent / "int8"
    existing = read_meta(folder, meta["identity"])
    if existing is not None:
        return folder, existing
    from onnxruntime.quantization import QuantType, quantize_dynamic

    message = "Quantising the encoders to int8 (first use only)"
    yield Progress(0, 2, message, unit="step")
    with _staging(folder) as tmp:
        for done, name in enumerate(TOWERS.values(), start=1):
            # MatMul only: the linear layers hold almost all weights and time; Gather (token
            # embedding) and the attention's activation x activation products stay fp32.
            with quiet_open_clip():  # it advises pre-processing on the root logger; not needed
                quantize_dynamic(fp32_folder / name, tmp / name, op_types_to_quantize=["MatMul"],
                                 weight_type=QuantType.QInt8, per_channel=True,
                                 use_external_data_format=True)  # <name>.data, memory-mapped
            check(cancel)
            yield Progress(done, 2, message, unit="step")
        int8_meta = {**meta, "precision": "int8"}
        _write_meta(tmp, int8_meta)
    return folder, read_meta(folder, meta["identity"]) or int8_meta


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


def _normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def _as_numpy(value, dtype) -> np.ndarray:
    if _is_torch(value):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=dtype)


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
        self.background = background
        self.note = ""  # one line for a status bar, e.g. while a background export runs
        self._pending, self._polled, self._process, self._export_due = False, 0.0, None, False

    # -- preparation --------------------------------------------------------------------------
    def prepare_job(self, cancel: CancelToken | None = None) -> Job[Encoder]:
        """A cached export: use it. Otherwise, with `background` (backend `auto`), serve torch now
        and export in a background process; else export here with progress. On failure, torch."""
        if self.folder is not None:
            return self
        ready = cached_export(self.loaded.identity, self.precision)
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
            _note_fallback(f"could not export {self.loaded.arch} to ONNX ({_first_line(error)})")
            return TorchEncoder(self.loaded)
        return self

    def _serve_torch_meanwhile(self) -> Encoder:
        """First use: results come from torch at once; the export runs in its own low-priority
        process (clipdesk.core.onnx_export) and this encoder switches to it once it is verified."""
        from . import onnx_export as bg

        identity = self.loaded.identity
        try:
            root = export_root()
            root.mkdir(parents=True, exist_ok=True)
            bg.clean_stale(identity)
        except OSError:  # an unusable cache folder: torch, and no promise of an export
            return TorchEncoder(self.loaded)
        failure = bg.recent_failure(identity)
        if failure is not None:
            _note_fallback(f"the ONNX export of {self.loaded.arch} failed ({failure}); it is retried "
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
        from .onnx_export import start_background_export

        self._process = start_background_export(self.loaded.arch, self.loaded.pretrained,
                                                self.loaded.identity, self.precision)

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
            from .jobs import run_job

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
        as_torch = _is_torch(batch)
        array = _as_numpy(batch, dtype)
        features = None
        if self._pending:
            self._poll_pending()
        if self._fallback is None:
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
            features = _normalise(features)
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

    def _fall_back(self, error: Exception) -> None:
        _note_fallback(f"ONNX Runtime failed ({_first_line(error)})")
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
        features = np.concatenate([_as_numpy(c, np.float32) for c in chunks])
        per_name = features.reshape(len(names), len(templates), -1).mean(axis=1)
        return _normalise(per_name).T

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0][:160] if text else type(error).__name__)


def _note_fallback(reason: str) -> None:
    log.warning("%s; using torch instead.", reason)  # the CLI adds `clipdesk: `


def make_onnx_encoder(loaded: LoadedModel, backend: str, precision: str = "fp32", **options) -> Encoder:
    """`auto`/`onnx` → an OnnxEncoder (export deferred to its `prepare_job`), or torch.

    `auto` keeps torch on a GPU. Without onnxruntime, the torch encoder with a one-line note.
    """
    precision = (precision or "fp32").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision '{precision}'; choose fp32 or int8.")
    if resolve_backend(backend, loaded.device.type) == "torch":
        if precision == "int8":
            _note_fallback("int8 precision needs the ONNX Runtime backend")
        return TorchEncoder(loaded)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        _note_fallback(f"onnxruntime is not installed ({error})")
        return TorchEncoder(loaded)
    background = (backend or "auto").lower() == "auto"  # an explicit `onnx` exports at once, with progress
    return OnnxEncoder(loaded, precision, threads=options.get("threads"), background=background)


# -- the torch-free start ---------------------------------------------------------------------------
class _CpuDevice(str):
    """Stands in for torch.device('cpu') without importing torch ('cpu' as a str, with .type)."""

    type = "cpu"


class LazyLoadedModel(LoadedModel):
    """A LoadedModel served from an export: numpy tokenizer and transform, no torch.

    The torch model is built only if something asks for `.model` (fine-tuning, the torch
    fallback); then the open_clip tokenizer and transform take over too, so torch callers get the
    tensors they expect.
    """

    def __init__(self, arch: str, pretrained: str, identity: str, meta: dict, metadata: dict) -> None:
        from .onnx_lite import ClipBpeTokenizer, NumpyPreprocess

        self._meta = meta
        self._full: LoadedModel | None = None
        self._build_lock = threading.Lock()
        super().__init__(arch, pretrained, identity, None, NumpyPreprocess(**meta["preprocess"]), None,
                         ClipBpeTokenizer(**meta["tokenizer"]), _CpuDevice("cpu"), metadata)

    def _materialise(self) -> LoadedModel:
        with self._build_lock:
            if self._full is None:
                from .models import load_model

                full = load_model(self.arch, self.pretrained, "cpu")
                self.preprocess, self.tokenizer, self.device = full.preprocess, full.tokenizer, full.device
                self._full = full
        return self._full

    model = property(lambda self: self._materialise().model, lambda self, value: None)
    __eq__ = object.__eq__  # the dataclass versions would build the model to compare or print it
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"LazyLoadedModel({self.identity!r}, materialised={self.materialised})"
    preprocess_train = property(lambda self: self._materialise().preprocess_train, lambda self, value: None)

    @property
    def materialised(self) -> bool:
        return self._full is not None

    @property
    def image_size(self) -> int:
        return int(self._meta["image_size"])

    @property
    def context_length(self) -> int:
        return int(self._meta["context_length"])


def quick_identity(arch: str | None, pretrained: str | None) -> tuple[str, str, str, dict] | None:
    """(identity, arch, pretrained, folder metadata) as `load_model_job` names them, without torch.

    None where only the full loader can tell (few-shot heads, head-over-base folders, odd paths,
    contradictions, which it reports). Mirrors clipdesk.core.models; a test checks the two agree.
    """
    from .models import (
        RANDOM_SEED,
        WEIGHTS_FILE,
        _is_path,
        file_fingerprint,
        read_metadata,
        resolve_source,
    )

    try:
        arch, pretrained = resolve_source(arch, pretrained)
        if pretrained.lower() == "demo":
            from .demo import demo_model_dir

            pretrained = str(demo_model_dir())
        if pretrained.lower() in ("none", "random"):
            return f"{arch}/none-seed{RANDOM_SEED}", arch, "none", {}
        path = Path(pretrained).expanduser()
        if path.is_dir():
            metadata = read_metadata(path)
            weights = path / WEIGHTS_FILE
            if metadata.get("head") or not weights.is_file():
                return None
            return f"{arch}/file-{file_fingerprint(weights)}", arch, str(path), metadata
        if path.is_file():
            return f"{arch}/file-{file_fingerprint(path)}", arch, str(path), {}
        if _is_path(pretrained):
            return None
        return f"{arch}/{pretrained}", arch, pretrained, {}
    except Exception:  # noqa: BLE001 - anything odd: the full loader gives the proper message
        return None


def _cpu_only(device: str | None) -> bool:
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


def open_exported_job(arch: str, pretrained: str, device: str = "auto", backend: str = "auto",
                      precision: str = "fp32", cancel: CancelToken | None = None) -> Job[OnnxEncoder | None]:
    """The fast start: serve a model whose export is cached without importing torch or open_clip.

    Returns None (and the caller loads the model the usual way) unless the backend would be ONNX
    Runtime on the CPU and an fp32 export with torch-free tokenizer and transform exists. A
    missing int8 export is derived here from the fp32 one (no torch needed either).
    """
    from .models import gc_paused

    with gc_paused():  # onnxruntime's and numpy's imports: no collector pauses holding the GIL
        return (yield from _open_exported(arch, pretrained, device, backend, precision, cancel))


def _open_exported(arch: str, pretrained: str, device: str, backend: str, precision: str,
                   cancel: CancelToken | None) -> Job[OnnxEncoder | None]:
    precision = (precision or "fp32").lower()
    name = (backend or "auto").lower()
    if name not in ("auto", "onnx") or precision not in PRECISIONS or not _cpu_only(device):
        return None
    found = quick_identity(arch, pretrained)
    if found is None:
        return None
    from .onnx_export import clean_stale

    clean_stale()  # `.tmp-*` folders of exports that were killed
    identity, arch, pretrained, metadata = found
    folder = export_dir(identity, "fp32")
    meta = read_meta(folder, identity)
    if meta is None or not meta.get("preprocess") or not meta.get("tokenizer") or meta.get("arch") != arch:
        return None
    try:
        from .models import preload_native

        preload_native("onnxruntime")  # its library loads without holding the GIL (window stays live)
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if precision == "int8":
        try:
            folder, meta = yield from quantize_job(folder, meta, cancel)
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001
            _note_fallback(f"could not quantise the ONNX export ({_first_line(error)})")
            return None
    loaded = LazyLoadedModel(arch, pretrained, identity, meta, metadata)
    return OnnxEncoder(loaded, precision, folder=folder, meta=meta)
