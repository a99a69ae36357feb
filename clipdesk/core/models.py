"""Load CLIP models: open_clip architecture + a pretrained source (tag, local file, folder, none).

A model's `identity` names its weights (not its path), so caches keyed by it stay valid when a
checkpoint moves and never mix two different sets of weights.

torch, open_clip and safetensors are imported inside the functions that use them, on purpose:
they cost about a second to import, and `clipdesk --help`, the catalog and the torch-free ONNX
start (`onnx_start`) use this module without ever needing them.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import json
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import decoders
from .atomic import atomic_write_text
from .demo import demo_arch, demo_model_dir
from .digest import file_digest
from .download import download_job
from .errors import ModelLoadError
from .heads import load_head
from .jobs import CancelToken, Job, Progress, run_job
from .metadata import METADATA_FILE, read_metadata
from .paths import cache_dir, resources_dir
from .safeio import check_regular, read_json_or_none

DEFAULT_ARCH = "ViT-B-32-256"
DEFAULT_PRETRAINED = "datacomp_s34b_b86k"
TINY_ARCH = "clipdesk-tiny"
RANDOM_SEED = 0  # `pretrained=none` is seeded so that caches and tests see the same weights
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
WEIGHTS_FILE = "model.safetensors"


@dataclass
class LoadedModel:
    """Everything inference needs, on one device."""

    arch: str
    pretrained: str
    identity: str
    model: Any  # open_clip.CLIP
    preprocess: Any  # eval transform: PIL image -> tensor
    preprocess_train: Any
    tokenizer: Any
    device: Any  # torch.device
    metadata: dict = field(default_factory=dict)
    head: Any = None  # a trained few-shot head (clipdesk.core.heads), if the checkpoint has one

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model, "context_length", 77))

    @property
    def use_amp(self) -> bool:
        """Mixed precision only on CUDA: CPU autocast is slower and changes results."""
        return self.device.type == "cuda"

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.get("class_names", []))

    @property
    def display_name(self) -> str:
        return f"{self.arch} ({Path(self.pretrained).name if is_path(self.pretrained) else self.pretrained})"


_NATIVE = {"torch": ("lib/libc10.so", "lib/libtorch_cpu.so", "lib/libtorch.so", "lib/libtorch_python.so"),
           "onnxruntime": ("capi/libonnxruntime_providers_shared.so", "capi/onnxruntime_pybind11_state*.so")}


def preload_native(package: str) -> None:
    """Load a package's big shared libraries before its import, without holding the GIL.

    An import loads them while holding the GIL (torch: ~0.6 s of static initialisers), which
    froze the window while the worker thread loaded a model. A ctypes *call* of libc's `dlopen`
    releases the GIL, and the import that follows finds the libraries already loaded. Linux and
    macOS only; anything unexpected is ignored (the import then simply does the work itself)."""
    if package in sys.modules or sys.platform == "win32" or package not in _NATIVE:
        return
    try:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            return
        root = Path(spec.origin).parent
        _import_decoders_first()
        libc = ctypes.CDLL(None)
        libc.dlopen.restype, libc.dlopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
        for pattern in _NATIVE[package]:
            for path in sorted(root.glob(pattern)):
                libc.dlopen(str(path).encode(), 2)  # RTLD_NOW | RTLD_LOCAL: the import decides scope
    except Exception:  # noqa: BLE001, S110 - an optimisation only
        pass


def _import_decoders_first() -> None:
    """Import the image decoders' C extensions before a big `dlopen`.

    `dlopen` holds the C library's loader lock for the whole load (libtorch: 0.3-0.6 s of static
    initialisers); another thread importing any C extension meanwhile waits for that lock while
    holding the GIL, and the window froze (its thumbnail threads import Pillow's, pillow-heif's
    and rawpy's extensions at just that moment). Imported first, they are already there."""
    with contextlib.suppress(Exception):
        decoders.registry()  # registering them imports their extensions


_GC_LOCK = threading.Lock()
_GC_STATE = {"depth": 0, "enabled": True, "modules": 0}
FREEZE_AFTER_MODULES = 100  # a load that imported this many modules froze what it created


@contextlib.contextmanager
def gc_paused():
    """Hold off Python's cyclic garbage collector during a model load (nestable, thread-safe).

    Importing torch and open_clip creates ~700k long-lived objects, and each full collection the
    collector starts meanwhile walks all of them while holding the GIL: 20-160 ms of CPU each,
    growing with every import — the window's longest stalls while the worker thread loaded a
    model. A load that imported many modules ends with `gc.freeze()`: those objects (modules,
    classes, functions) live as long as the process, so later collections skip them too. A
    model swap imports nothing new and freezes nothing (an old model's cycles stay collectable)."""
    with _GC_LOCK:
        if _GC_STATE["depth"] == 0:
            _GC_STATE.update(enabled=gc.isenabled(), modules=len(sys.modules))
            gc.disable()
        _GC_STATE["depth"] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_STATE["depth"] -= 1
            if _GC_STATE["depth"] == 0:
                if len(sys.modules) - _GC_STATE["modules"] >= FREEZE_AFTER_MODULES:
                    gc.freeze()
                if _GC_STATE["enabled"]:
                    gc.enable()


_REGISTRY_LOCK = threading.Lock()  # open_clip's rescan empties its config table for a moment
_REGISTERED: set[Path] = set()  # config folders given to open_clip (its own list is private)


TORCH_MISSING = ("{what} needs torch and open_clip, which this torch-free clipdesk does not include "
                 "(only the demo model and models with an ONNX export run without them): install the "
                 "full clipdesk with `pip install clipdesk` (torch, torchvision, open_clip_torch).")


def require_torch(what: str = "This model") -> None:
    """One sentence, not an ImportError traceback, where torch or open_clip is missing (the
    torch-free bundle, `pip install clipdesk[app]`)."""
    try:
        import open_clip  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        raise ModelLoadError(TORCH_MISSING.format(what=what)) from error


def register_configs() -> None:
    """Make the architectures shipped in resources/ known to open_clip (idempotent, thread-safe:
    the window's catalog and model load may both get here first)."""
    preload_native("torch")  # the GUI loads models on a worker thread: keep the window live
    require_torch()
    import open_clip

    folder = resources_dir() / "model_configs"
    with _REGISTRY_LOCK:
        if folder not in _REGISTERED:
            open_clip.add_model_config(folder)
            _REGISTERED.add(folder)


def list_architectures() -> list[str]:
    register_configs()  # first: without torch, its one sentence rather than an ImportError
    import open_clip

    with _REGISTRY_LOCK:
        return open_clip.list_models()


def list_pretrained_tags(arch: str) -> list[str]:
    require_torch("Listing pretrained tags")
    import open_clip

    return open_clip.list_pretrained_tags_by_model(arch)


def resolve_device(name: str = "auto"):
    """`auto` prefers CUDA, then Apple's MPS, then the CPU."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ModelLoadError("CUDA was requested but no CUDA GPU is available; use --device cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("MPS was requested but is not available on this machine; use --device cpu.")
    if name not in ("cpu", "cuda", "gpu", "mps"):
        raise ModelLoadError(f"Unknown device '{name}'; choose auto, cpu, cuda or mps.")
    return torch.device("cuda" if name == "gpu" else name)


def is_path(pretrained: str) -> bool:
    return bool(pretrained) and (Path(pretrained).exists() or any(
        pretrained.endswith(s) for s in CHECKPOINT_SUFFIXES) or "/" in pretrained or "\\" in pretrained)


IDENTITY_MEMO = "identities.json"  # in the cache folder: path -> (size, mtime_ns, digest)
MEMO_LIMIT = 512


def file_fingerprint(path: Path) -> str:
    """Hash of the WHOLE file: two checkpoints differing anywhere (one fine-tuned layer in the
    middle) never share caches or exports. Memoised by path + size + mtime_ns, so a 600 MB
    checkpoint is read once (~0.4 s), not on every start.

    A memo entry written before core/digest.py (a 24-hex BLAKE2b digest) is still answered for an
    unchanged file, so identities, cached embeddings and ONNX exports made then stay valid; a file
    the memo does not know (or that changed) is hashed with core/digest.py."""
    path = Path(path)
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    memo = _read_memo()
    entry = memo.get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp and isinstance(entry[2], str):
        return entry[2]
    value = file_digest(path)  # core/digest.py, the embedding cache's own hash
    memo[key] = [*stamp, value]
    _write_memo(memo)
    return value


def _memo_path() -> Path:
    return cache_dir() / IDENTITY_MEMO


def _read_memo() -> dict:
    memo = read_json_or_none(_memo_path())  # garbage, a FIFO or /dev/zero: re-hash, never hang
    return memo if isinstance(memo, dict) else {}


def _write_memo(memo: dict) -> None:
    """Atomic and best effort: a lost race or a read-only cache only costs a re-hash later."""
    with contextlib.suppress(OSError):
        atomic_write_text(_memo_path(), json.dumps(dict(list(memo.items())[-MEMO_LIMIT:])))


# -- which model a (--model, --pretrained) pair means -------------------------------------------------
def resolve_source(arch: str | None, pretrained: str | None) -> tuple[str, str]:
    """(real architecture, pretrained) for what a user typed, before anything is loaded or written.

    `arch` None means "not given": a model folder (or the demo) then names it. An alias resolves to
    the real architecture; a `--model` that contradicts the folder is an error, never ignored.
    """
    arch = (arch or "").strip() or None
    pretrained = (pretrained or "").strip() or None
    if arch is not None and arch.lower() == "demo":
        arch, pretrained = demo_arch(), pretrained or "demo"
    if pretrained is None:
        return (arch or DEFAULT_ARCH), DEFAULT_PRETRAINED
    folder = _folder_of(pretrained)
    if folder is None:
        return (arch or DEFAULT_ARCH), pretrained
    named = folder_arch(folder)
    if arch is not None and arch != named:
        raise ModelLoadError(f"{folder} holds a {named} model, but --model says {arch}; "
                             "leave out --model (the folder names its architecture).")
    return named, pretrained


def _folder_of(pretrained: str) -> Path | None:
    if pretrained.lower() == "demo":
        return demo_model_dir()
    path = Path(pretrained).expanduser()
    return path if path.is_dir() else None


def folder_arch(folder: Path) -> str:
    """The architecture a model folder's metadata names (legacy `demo` resolved)."""
    arch = read_metadata(folder).get("architecture")
    if not arch:
        raise ModelLoadError(f"{Path(folder) / METADATA_FILE} does not name an architecture.")
    return demo_arch() if arch.strip().lower() == "demo" else arch


def load_model_job(
    arch: str | None = DEFAULT_ARCH,
    pretrained: str | None = DEFAULT_PRETRAINED,
    device: str = "auto",
    cancel: CancelToken | None = None,
) -> Job[LoadedModel]:
    """Load a model, downloading a tag's weights first if needed (progress is yielded).

    `arch` None: whatever the pretrained folder names (else the default); see `resolve_source`."""
    with gc_paused():  # torch's imports: no collector pauses holding the GIL (see gc_paused)
        register_configs()
        arch, pretrained = resolve_source(arch, pretrained)
        torch_device = resolve_device(device)
        return (yield from _load_job(arch, pretrained, torch_device, cancel, ()))


def _load_job(arch: str, pretrained: str, torch_device, cancel, seen: tuple) -> Job[LoadedModel]:
    if pretrained.lower() == "demo":
        pretrained = str(demo_model_dir())
    if pretrained.lower() in ("none", "random"):
        return _build(arch, None, "none", f"{arch}/none-seed{RANDOM_SEED}", torch_device)
    path = Path(pretrained).expanduser()
    if path.is_dir():
        return (yield from _load_folder(path, torch_device, cancel, seen))
    if path.is_file():
        return _build(arch, path, str(path), f"{arch}/file-{file_fingerprint(path)}", torch_device)
    if is_path(pretrained):
        raise ModelLoadError(f"Checkpoint '{pretrained}' does not exist.")
    return (yield from _load_tag(arch, pretrained, torch_device, cancel))


def load_model(arch: str = DEFAULT_ARCH, pretrained: str = DEFAULT_PRETRAINED, device: str = "auto") -> LoadedModel:
    """Synchronous `load_model_job` for scripts and tests."""
    return run_job(load_model_job(arch, pretrained, device))


def _load_tag(arch: str, tag: str, device, cancel) -> Job[LoadedModel]:
    import open_clip

    _check_arch(arch)
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = ", ".join(list_pretrained_tags(arch)) or "none"
        raise ModelLoadError(
            f"'{tag}' is neither a pretrained tag of {arch} (known: {tags}) nor an existing file."
        )
    yield Progress(0, None, f"Looking for {arch} {tag} weights…")
    path = yield from download_job(arch, tag, cancel)
    return _build(arch, Path(path), tag, f"{arch}/{tag}", device, tag_cfg=cfg)


def _load_folder(folder: Path, device, cancel, seen: tuple = ()) -> Job[LoadedModel]:
    """A fine-tuned model folder: metadata.json + model.safetensors, or a head over a base model."""
    key = str(folder.resolve())
    if key in seen:
        raise ModelLoadError(f"{folder / METADATA_FILE}: 'base_pretrained' loops back to {folder}.")
    if len(seen) >= 8:
        raise ModelLoadError(f"{folder / METADATA_FILE}: the 'base_pretrained' chain is deeper than 8 models.")
    metadata = read_metadata(folder)
    arch = folder_arch(folder)
    weights = folder / WEIGHTS_FILE
    _check_weights_present(folder, weights, metadata)
    if weights.is_file():
        loaded = _build(arch, weights, str(folder), f"{arch}/file-{file_fingerprint(weights)}", device,
                        tag_cfg=_base_tag_cfg(arch, metadata.get("base_pretrained")))
    else:
        base = (metadata.get("base_pretrained") or "none").strip() or "none"
        base_path = (folder / base) if (folder / base).exists() else None
        base = str(base_path or base)
        base_folder = _folder_of(base)
        if base_folder is not None and folder_arch(base_folder) != arch:
            raise ModelLoadError(f"{folder / METADATA_FILE} names {arch}, but its base {base} "
                                 f"is a {folder_arch(base_folder)} model.")
        loaded = yield from _load_job(arch, base, device, cancel, (*seen, key))
        loaded.pretrained = str(folder)
    loaded.arch = arch
    loaded.metadata = metadata
    if metadata.get("head"):
        loaded.head = load_head(folder, metadata, loaded.device)
        # image embeddings are the base model's: keep its identity, so its cache is shared
    return loaded


def _check_weights_present(folder: Path, weights: Path, metadata: dict) -> None:
    """A folder whose weights are missing or unreadable is an error, never a silent fall back to
    its base model (random weights for a `base_pretrained: none` fine-tune: garbage, exit 0)."""
    if weights.is_symlink() or weights.exists():
        check_regular(weights, "checkpoint")  # a folder, FIFO or link to /dev/zero: one sentence
    elif str(metadata.get("method") or "").strip().lower() in ("full", "captions"):
        raise ModelLoadError(f"{folder} was fine-tuned ({metadata['method']}) but its "
                             f"{WEIGHTS_FILE} is missing; copy the whole model folder.")


def _base_tag_cfg(arch: str, base: str | None, depth: int = 0) -> dict | None:
    """A fine-tune of a tagged model keeps the tag's activation and preprocessing (QuickGELU, mean/std);
    a fine-tune of a fine-tuned folder inherits them from that folder's base."""
    import open_clip

    if not isinstance(base, str) or not base or depth > 8 or base.lower() in ("none", "random", "demo"):
        return None
    path = Path(base).expanduser()
    if path.is_dir() and (path / METADATA_FILE).is_file():
        try:
            return _base_tag_cfg(arch, read_metadata(path).get("base_pretrained"), depth + 1)
        except ModelLoadError:
            return None
    if is_path(base):
        return None
    return open_clip.get_pretrained_cfg(arch, base) or None


def _check_arch(arch: str) -> None:
    if arch not in list_architectures():
        raise ModelLoadError(f"Unknown architecture '{arch}'; `clipdesk models` lists them.")


def _build(arch: str, weights: Path | None, pretrained: str, identity: str, device,
           tag_cfg: dict | None = None) -> LoadedModel:
    import open_clip
    import torch

    _check_arch(arch)
    tag_cfg = tag_cfg or {}
    try:
        with torch.random.fork_rng(devices=[]), quiet_open_clip():
            torch.manual_seed(RANDOM_SEED)
            model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=None,
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                image_mean=tag_cfg.get("mean"),
                image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"),
                image_resize_mode=tag_cfg.get("resize_mode"),
            )
        if weights is not None:
            _load_weights(model, weights, arch)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - open_clip raises many types; one sentence out
        raise ModelLoadError(f"Could not build {arch}: {error}") from error
    model.eval().to(device)
    tokenizer = open_clip.get_tokenizer(arch)
    return LoadedModel(arch, pretrained, identity, model, preprocess, preprocess_train, tokenizer, device)


@contextlib.contextmanager
def quiet_open_clip():
    """open_clip warns and advises on the root logger (random init, quantisation); we asked for those."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _load_weights(model, weights: Path, arch: str) -> None:
    from open_clip.factory import load_checkpoint

    if weights.suffix not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(
            f"{weights.name} is not a checkpoint clipdesk reads ({', '.join(CHECKPOINT_SUFFIXES)})."
        )
    check_regular(weights, "checkpoint")  # a FIFO or a link to /dev/zero is refused, not read
    if weights.suffix == ".safetensors":
        _check_tensor_kinds(model, weights, arch)
    try:
        # weights_only=True: a .pt/.bin is never unpickled into arbitrary objects.
        load_checkpoint(model, str(weights), strict=True, weights_only=True)
    except Exception as error:  # noqa: BLE001
        if "weights only load failed" in str(error).lower() or type(error).__name__ == "UnpicklingError":
            raise ModelLoadError(  # not torch's advice to unpickle it anyway: that is how code runs
                f"{weights} was refused: it holds pickled Python objects, not just tensors, and "
                "clipdesk never unpickles them (they can run code); use a .safetensors file."
            ) from error
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelLoadError(
            f"{weights} does not hold weights for the {arch} architecture ({first})."
        ) from error


def _check_tensor_kinds(model, weights: Path, arch: str) -> None:
    """torch's load_state_dict casts an int tensor into a float parameter and open_clip resizes a
    position table of another length: both load "fine" and score garbage. Read only the header
    and refuse, naming the first tensor whose kind or shape is not the architecture's."""
    from safetensors import safe_open

    expected = model.state_dict()
    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = handle.keys()  # safe_open's handle is not iterable
            for key in names:
                want = expected.get(key)
                if want is None:
                    continue  # a missing or extra key is load_state_dict(strict=True)'s sentence
                piece = handle.get_slice(key)
                dtype, shape = piece.get_dtype(), list(piece.get_shape())
                if want.is_floating_point() != dtype.startswith(("F", "BF")) or shape != list(want.shape):
                    raise ModelLoadError(
                        f"{weights} does not hold weights for the {arch} architecture (tensor '{key}' "
                        f"is {dtype} {shape}, the model needs {str(want.dtype).removeprefix('torch.')} "
                        f"{list(want.shape)}).")
    except ModelLoadError:
        raise
    except Exception:  # noqa: BLE001 - a damaged header: load_checkpoint says so in one sentence
        return
