"""The torch-free start: serve a model whose ONNX export is cached without importing torch.

`open_exported_job` names the model as the full loader would (`quick_identity`, no torch), finds
its verified export, and returns an `OnnxEncoder` over a `LazyLoadedModel` whose tokenizer and
transform are numpy (`onnx_lite`). torch is built only if something asks for `.model` later.
onnxruntime is imported inside `_open_exported` once its native libraries are preloaded
(`models.preload_native`, which keeps the window responsive); that is the point of the delay.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .demo import demo_model_dir
from .errors import Cancelled
from .heads import load_head
from .jobs import CancelToken, Job
from .models import (
    RANDOM_SEED,
    WEIGHTS_FILE,
    LoadedModel,
    file_fingerprint,
    gc_paused,
    is_path,
    load_model,
    preload_native,
    read_metadata,
    resolve_source,
)
from .onnx_backend import OnnxEncoder
from .onnx_export import clean_stale
from .onnx_lite import ClipBpeTokenizer, NumpyPreprocess
from .onnx_quantize import quantize_job
from .onnx_session import cpu_only, first_line, note_fallback
from .onnx_store import PRECISIONS, cached_export, shipped_identity

log = logging.getLogger(__name__)


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
        self._meta = meta
        self._full: LoadedModel | None = None
        self._build_lock = threading.Lock()
        super().__init__(arch, pretrained, identity, None, NumpyPreprocess(**meta["preprocess"]), None,
                         ClipBpeTokenizer(**meta["tokenizer"]), _CpuDevice("cpu"), metadata)

    def _materialise(self) -> LoadedModel:
        with self._build_lock:
            if self._full is None:
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
    try:
        arch, pretrained = resolve_source(arch, pretrained)
        if pretrained.lower() == "demo":
            pretrained = str(demo_model_dir())
        if pretrained.lower() in ("none", "random"):
            return f"{arch}/none-seed{RANDOM_SEED}", arch, "none", {}
        path = Path(pretrained).expanduser()
        if path.is_dir():
            metadata = read_metadata(path)
            weights = path / WEIGHTS_FILE
            if metadata.get("head"):
                return None
            if not weights.is_file():  # only its ONNX export (the bundle's demo): the export's name
                identity = shipped_identity(path, arch)
                return (identity, arch, str(path), metadata) if identity else None
            return f"{arch}/file-{file_fingerprint(weights)}", arch, str(path), metadata
        if path.is_file():
            return f"{arch}/file-{file_fingerprint(path)}", arch, str(path), {}
        if is_path(pretrained):
            return None
        return f"{arch}/{pretrained}", arch, pretrained, {}
    except Exception:  # noqa: BLE001 - anything odd: the full loader gives the proper message
        return None


def head_over_base(arch: str | None, pretrained: str | None) -> tuple[Path, dict, str, str] | None:
    """A few-shot head folder without weights of its own (the quick method's): (folder, its
    metadata, arch, its base model), as `models._load_folder` reads it; None for anything else."""
    try:
        arch, pretrained = resolve_source(arch, pretrained)
        folder = Path(pretrained).expanduser()
        if not folder.is_dir() or (folder / WEIGHTS_FILE).exists():
            return None
        metadata = read_metadata(folder)
        if not metadata.get("head"):
            return None
        base = (metadata.get("base_pretrained") or "none").strip() or "none"
        return folder, metadata, arch, str(folder / base) if (folder / base).exists() else base
    except Exception:  # noqa: BLE001 - anything odd: the full loader gives the proper message
        return None


def open_exported_job(arch: str, pretrained: str, device: str = "auto", backend: str = "auto",
                      precision: str = "fp32", cancel: CancelToken | None = None) -> Job[OnnxEncoder | None]:
    """The fast start: serve a model whose export is cached without importing torch or open_clip.

    Returns None (and the caller loads the model the usual way) unless the backend would be ONNX
    Runtime on the CPU and an fp32 export with torch-free tokenizer and transform exists. A
    missing int8 export is derived here from the fp32 one (no torch needed either).
    """
    with gc_paused():  # onnxruntime's and numpy's imports: no collector pauses holding the GIL
        return (yield from _open_exported(arch, pretrained, device, backend, precision, cancel))


def _open_exported(arch: str, pretrained: str, device: str, backend: str, precision: str,
                   cancel: CancelToken | None) -> Job[OnnxEncoder | None]:
    precision = (precision or "fp32").lower()
    name = (backend or "auto").lower()
    if name not in ("auto", "onnx") or precision not in PRECISIONS or not cpu_only(device):
        return None
    head_folder = head_over_base(arch, pretrained)
    if head_folder is not None:  # a head over a base: the base's export serves its embeddings
        _, _, arch, pretrained = head_folder
    found = quick_identity(arch, pretrained)
    if found is None:
        return None
    clean_stale()  # `.tmp-*` folders of exports that were killed
    identity, arch, pretrained, metadata = found
    found = cached_export(identity, "fp32", pretrained)  # the cache's, or the model folder's own
    if found is None:
        return None
    folder, meta = found
    if not meta.get("preprocess") or not meta.get("tokenizer") or meta.get("arch") != arch:
        return None
    try:
        preload_native("onnxruntime")  # its library loads without holding the GIL (window stays live)
        import onnxruntime  # noqa: F401
    except ImportError as error:
        log.info("ONNX Runtime cannot be imported (%s); loading the model with torch", error)
        return None
    if precision == "int8":
        try:
            folder, meta = yield from quantize_job(folder, meta, cancel)
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001
            note_fallback(f"could not quantise the ONNX export ({first_line(error)})")
            return None
    loaded = LazyLoadedModel(arch, pretrained, identity, meta, metadata)
    if head_folder is not None:  # its identity stays the base's, so the cache is shared
        head_path, head_metadata, _, _ = head_folder
        loaded.pretrained, loaded.metadata = str(head_path), head_metadata
        loaded.head = load_head(head_path, head_metadata, loaded.device)
    return OnnxEncoder(loaded, precision, folder=folder, meta=meta)
