"""Files → normalised image embeddings, with decoding overlapped with inference.

Decoding (read, hash, JPEG draft decode, preprocess) runs on a small thread pool a few batches
ahead of the encoder; Pillow and torch both release the GIL, so the encoder rarely waits.
Cached files are only read and hashed, never decoded or encoded.

`views="quarters"` embeds the four quarter crops of each image instead of the whole image
(multi-label scoring, core/multilabel.py): (N, 4, D), cached under their own identity.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import Encoder
from .cache import EmbeddingCache, file_stamp
from .digest import content_digest
from .errors import ImageLoadError
from .images import decode_rgb, read_bytes
from .jobs import CancelToken, Job, Progress, check
from .preprocess import thread_friendly

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """Embeddings in input order for the files that worked, and one message per file that did not."""

    paths: list[Path] = field(default_factory=list)
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    digests: list[str] = field(default_factory=list)
    errors: dict[Path, str] = field(default_factory=dict)
    encoded: int = 0  # how many images went through the encoder (the rest were cache hits)


@dataclass
class _Item:
    path: Path
    digest: str = ""
    tensor: object = None
    cached: np.ndarray | None = None
    error: str = ""
    stamp: str | None = None  # file_stamp when it was read (None: not to be remembered)
    known: bool = False  # its digest came from the cache's record of the file, not from a read


def default_workers() -> int:
    """Decode threads: the encoder's intra-op threads need the cores most of the time."""
    return max(1, min(4, (os.cpu_count() or 2)))


VIEWS = ("whole", "quarters")


_all_cores: int | None = None  # torch's own thread count before share_cores first lowered it


def share_cores(encoder: Encoder) -> None:
    """While a background ONNX export runs beside torch (`export_running`), torch in this thread
    leaves it a core; before it starts (after the first batch) and once it is gone, every core.

    torch's intra-op threads meet after every operator, so when another process (the export) or
    a decode thread preempts one of them the whole batch waits for it. On 2 busy cores a
    ViT-B/32 label took 1.1 s through the text tower with 2 threads beside the export, 0.3 s
    with 1; the demo model's images 35-80 ms each against 5 (issue 21). Called per batch: the
    export starts and ends in the middle of a run. Keyed on the process, not on the encoder's
    note: the note is up from the load, and the first photos on one thread made first results
    1.17x the CLI's.
    """
    global _all_cores
    torch = sys.modules.get("torch")
    device = getattr(getattr(encoder, "loaded", None), "device", None)
    if torch is None or getattr(device, "type", device) not in (None, "cpu"):
        return
    if _all_cores is None:
        _all_cores = torch.get_num_threads()
    wanted = max(1, _all_cores - 1) if getattr(encoder, "export_running", False) else _all_cores
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def cache_identity(encoder: Encoder, views: str = "whole") -> str:
    """Quarter-crop embeddings of a file must never be mistaken for its whole-image one."""
    return encoder.cache_identity if views == "whole" else f"{encoder.cache_identity}|{views}"


class _Loader:
    def __init__(self, encoder: Encoder, cache: EmbeddingCache, exact: bool, views: str = "whole") -> None:
        self.encoder = encoder
        self.cache = cache
        self.views = views
        self.identity = cache_identity(encoder, views)
        size = encoder.loaded.image_size
        self.draft_size = None if exact else 2 * size  # never below twice the model's input
        self.warm_up = getattr(encoder, "warm_up_images", None)
        self.preprocess = thread_friendly(encoder.loaded.preprocess)  # no torch ops off the main thread

    def __call__(self, path: Path) -> _Item:
        item = _Item(path)
        try:
            item.stamp = file_stamp(path)
            known = self.cache.known_digest(os.path.abspath(path), item.stamp) if item.stamp else None
            if known:  # unchanged since it was read: its embedding, without reading it again
                hit = self.cache.get_images(self.identity, [known])
                if hit:
                    item.digest, item.known = known, True
                    item.cached = _unflatten(hit[known], self.views)
                    return item
            data = read_bytes(path)
            item.digest = content_digest(data)
            hit = self.cache.get_images(self.identity, [item.digest])
            if hit:
                item.cached = _unflatten(hit[item.digest], self.views)
                return item
            if self.warm_up is not None:  # e.g. ONNX Runtime opens its image session meanwhile
                self.warm_up()
            image = decode_rgb(data, path, self.draft_size)
            if self.views == "quarters":
                from .multilabel import quarter_crops

                item.tensor = [self.preprocess(crop) for crop in quarter_crops(image)]
            else:
                item.tensor = self.preprocess(image)
        except ImageLoadError as error:
            item.error = str(error)
        except Exception as error:  # noqa: BLE001 - one odd file must not end the run
            item.error = f"{path}: could not be processed ({type(error).__name__}: {error})."
        return item


def embed_job(
    encoder: Encoder,
    paths: Sequence[Path],
    cache: EmbeddingCache,
    batch_size: int = 32,
    exact: bool = False,
    cancel: CancelToken | None = None,
    workers: int | None = None,
    views: str = "whole",
) -> Job[EmbedResult]:
    """Embed `paths`; yields Progress whose payload is the list of (path, vector|None, error)."""
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, not {views!r}")
    result = EmbedResult()
    vectors: list[np.ndarray] = []
    total = len(paths)
    message = "Embedding images" if views == "whole" else "Embedding image quarters (multi-label)"
    started = Progress(0, total, message, unit="img")
    yield started
    loader = _Loader(encoder, cache, exact, views)
    lookahead = max(2 * batch_size, 8)
    workers = workers or getattr(encoder, "decode_workers", None) or default_workers()
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending: deque[Future] = deque()
        queue = iter(paths)
        done = 0
        batch: list[_Item] = []
        try:
            while True:
                while len(pending) < lookahead:
                    path = next(queue, None)
                    if path is None:
                        break
                    pending.append(pool.submit(loader, Path(path)))
                if not pending and not batch:
                    break
                if pending:
                    batch.append(pending.popleft().result())
                if len(batch) < batch_size and pending:
                    continue
                check(cancel)
                payload = _encode_batch(encoder, cache, batch, result, vectors, loader)
                done += len(batch)
                batch = []
                yield Progress(done, total, message, unit="img",
                               started=started.started, payload=payload)
        finally:
            for future in pending:
                future.cancel()
    # With no vector at all (every file failed) keep the width, so scoring gives (0, labels).
    dim = vectors[0].shape[-1] if vectors else output_dim(encoder)
    empty_shape = (0, 4, dim) if views == "quarters" else (0, dim)
    result.features = np.stack(vectors).astype(np.float32) if vectors else np.zeros(empty_shape, np.float32)
    return result


def _unflatten(vector: np.ndarray, views: str) -> np.ndarray:
    """The cache stores one flat row per file: quarters are 4 × D laid end to end."""
    return vector.reshape(4, -1) if views == "quarters" else vector


def output_dim(encoder: Encoder) -> int:
    """The width of the encoder's image embeddings (what a head or an index must match)."""
    known = getattr(encoder, "embed_dim", 0)  # ONNX: from the export, without building torch
    return int(known or getattr(encoder.loaded.model.visual, "output_dim", 0))


def _stack(tensors: list):
    """Preprocessed images are torch tensors, or numpy arrays on the torch-free ONNX path."""
    if all(type(t).__module__.startswith("torch") for t in tensors):
        import torch

        return torch.stack(tensors)
    return np.stack([np.asarray(t, np.float32) for t in tensors])


def _encode_batch(encoder, cache, batch, result, vectors, loader: _Loader) -> list[tuple]:
    to_encode = [item for item in batch if item.tensor is not None]
    if to_encode:
        quarters = loader.views == "quarters"
        tensors = [t for item in to_encode for t in item.tensor] if quarters else [item.tensor for item in to_encode]
        share_cores(encoder)
        features = np.asarray(encoder.encode_image(_stack(tensors)))
        if quarters:
            features = features.reshape(len(to_encode), 4, -1)
        fresh = {}
        for item, vector in zip(to_encode, features):
            item.cached = vector
            fresh[item.digest] = vector.reshape(-1)
        if getattr(encoder, "in_eval_mode", True):  # guard: never cache a training-mode encoder's output
            cache.put_images(loader.identity, fresh)
        else:
            log.warning("The model is in training mode; its embeddings are not cached.")
        result.encoded += len(to_encode)
    read = {os.path.abspath(item.path): (item.stamp, item.digest) for item in batch
            if item.stamp and item.digest and not item.known and not item.error}
    cache.remember_digests(read)
    payload = []
    for item in batch:
        if item.error:
            result.errors[item.path] = item.error
        else:
            result.paths.append(item.path)
            result.digests.append(item.digest)
            vectors.append(item.cached)
        payload.append((item.path, item.cached if not item.error else None, item.error))
        item.tensor = None  # free the decoded batch early: 2,000 images must fit in 2 GB
    return payload
