"""`clipdesk index`: files → embeddings (and scores) in Parquet shards, on Ray Data or in-process.

The Ray pipeline is listing (driver) → read/decode tasks → encoder actors (`map_batches` with an
actor pool sized to the cluster's GPUs, or its CPUs) → rows streamed back in input order → one
Parquet shard written atomically per plan. Decoding, preprocessing and the encoders are
clipdesk.core's own (`decode_rgb`, the model's eval transform, `open_engine_job`), so the
embeddings equal the single-process path's. Without Ray the same decode and encode functions
run in this process, shard by shard.

Labels never name a shard: a run with other labels, prompts or multi-label setting reads the
stored embeddings and rewrites only the score columns (no image is read). Multi-label scoring
(core/multilabel.py) also needs each image's four quarter crops: the decode tasks cut them, the
actors embed them, and the shard keeps them in a `quarters` column, so later label changes
re-score them too. Measured with `benchmarks/bench_scale.py labels` (ViT-B-32, 2 CPU cores): the
quarters cost 4 more encodes an image (≈ 640 ms CPU) and 8 KB of shard per 512-D image, while
re-scoring stored ones takes under 1 ms an image — so they are stored, not recomputed per change.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..core.digest import content_digest
from ..core.embed import default_workers
from ..core.errors import ClipdeskError, ImageLoadError
from ..core.jobs import CancelToken, Job, Progress, check, run_job
from ..core.prompts import DEFAULT_TEMPLATES
from ..core.results import row_of
from . import shards as sh

DECODE_MEMORY = 256 * 2**20  # bytes a decode task reserves (a batch of preprocessed images)
REACH_TIMEOUT = 5.0  # seconds a cluster address gets to accept a TCP connection
INSTALL_HINT = "Ray is not installed; install the scale extra with `pip install 'clipdesk[scale]'`."


class RayMissingError(ClipdeskError):
    """`--ray` without Ray installed."""


class RayAddressError(ClipdeskError):
    """A `--ray` value that is not HOST:PORT (a usage error)."""


class RayJobError(ClipdeskError):
    """The cluster could not be reached, or the Ray job failed; shards already written stay."""

    exit_code = 1


@dataclass(frozen=True)
class ModelSpec:
    """How every worker opens the same model (picklable, sent to the encoder actors)."""

    arch: str
    pretrained: str
    device: str = "auto"
    backend: str = "auto"
    precision: str = "fp32"

    def open(self, use_cache: bool = False):
        from ..core.engine import open_engine_job

        return run_job(open_engine_job(self.arch, self.pretrained, self.device, self.backend,
                                       self.precision, use_cache=use_cache))


@dataclass
class IndexOptions:
    labels: list[str] | None = None
    templates: str = DEFAULT_TEMPLATES
    multi_label: bool = False
    exact: bool = False
    batch_size: int = 32
    shard_size: int = 1000
    workers: int | None = None  # encoder actors; default: the cluster's GPUs, else CPUs − 1
    use_ray: bool = True
    stop_after: int | None = None  # test hook: stop cleanly after writing this many shards


@dataclass
class IndexResult:
    folder: Path
    shards: list[str] = field(default_factory=list)
    written: int = 0
    rescored: int = 0  # shards whose stored embeddings were scored again for new labels
    skipped: int = 0
    images: int = 0
    failed: int = 0
    missing: dict[str, str] = field(default_factory=dict)
    entries: list[sh.Entry] = field(default_factory=list)
    complete: bool = True
    dim: int = 0


# -- decode and encode: the same functions in Ray tasks/actors and in-process ---------------------
@dataclass
class Decoder:
    """Read (local or fsspec), hash and decode a batch of paths into the model's input pixels
    (and, for multi-label, the pixels of each image's four quarters)."""

    preprocess: object
    draft_size: int | None
    shape: tuple[int, ...]
    quarters_draft: int | None = None  # set: also the quarters, from a decode at this draft size (0: full)

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        pixels = np.zeros((len(paths), *self.shape), np.float32)
        quarters = np.zeros((len(paths), 4, *self.shape), np.float32) if self.quarters_draft is not None else None
        digests, errors = [], []
        for row, path in enumerate(paths):
            digest, error = "", ""
            try:
                data = read_any(path)
                digest = content_digest(data)
                image = _decode(data, path, self.draft_size)
                pixels[row] = np.asarray(self.preprocess(image), np.float32)
                if quarters is not None:
                    quarters[row] = self._quarters(image, data, path)
            except ImageLoadError as failure:
                error = str(failure)
            except Exception as failure:  # noqa: BLE001 - a bad file is a row, not a failed job
                error = f"{path}: could not be processed ({type(failure).__name__}: {failure})."
            digests.append(digest)
            errors.append(error)
        out = {"path": np.asarray(paths, object), "shard": batch["shard"],
               "digest": np.asarray(digests, object), "error": np.asarray(errors, object), "pixels": pixels}
        if quarters is not None:
            out["quarter_pixels"] = quarters
        return out

    def _quarters(self, image, data: bytes, path: str) -> np.ndarray:
        """Core's quarter crops (Engine.quarters_job), cut from the same decode as the whole image."""
        from ..core.multilabel import quarter_crops

        if (self.draft_size or 0) != self.quarters_draft:
            image = _decode(data, path, self.quarters_draft)
        return np.stack([np.asarray(self.preprocess(crop), np.float32) for crop in quarter_crops(image)])


def _decode(data: bytes, path: str, draft_size: int | None):
    from ..core.images import decode_rgb

    return decode_rgb(data, Path(path), draft_size)  # for a URL, Path only names it in messages


def read_any(path: str) -> bytes:
    """Bytes of a local file (core's reader and messages) or of an fsspec URL."""
    from ..core.images import read_bytes

    if not sh.is_url(path):
        return read_bytes(Path(path))
    try:
        import fsspec

        with fsspec.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, ValueError, ImportError) as error:
        raise ImageLoadError(f"{path}: could not be read ({error}).") from error
    if not data:
        raise ImageLoadError(f"{path}: empty file (0 bytes).")
    return data


def encode_rows(encoder, batch: dict) -> dict:
    """Embed the rows that decoded (and their quarters, when decoded); failed rows keep zeros."""
    ok = np.asarray([not e for e in batch["error"]], bool)
    dim = _embed_dim(encoder)
    embeddings = np.zeros((len(ok), dim), np.float32)
    if ok.any():
        embeddings[ok] = np.asarray(encoder.encode_image(np.ascontiguousarray(batch["pixels"][ok])), np.float32)
    out = {"path": batch["path"], "shard": batch["shard"], "digest": batch["digest"],
           "error": batch["error"], "embedding": embeddings}
    if "quarter_pixels" in batch:
        out["quarters"] = _encode_quarters(encoder, batch["quarter_pixels"], ok, dim, len(batch["pixels"]))
    return out


def _encode_quarters(encoder, pixels: np.ndarray, ok: np.ndarray, dim: int, batch_size: int) -> np.ndarray:
    """(N, 4, D): the crops go through the encoder `batch_size` at a time, as core's quarters_job."""
    quarters = np.zeros((len(ok), 4, dim), np.float32)
    crops = pixels[ok].reshape(-1, *pixels.shape[2:])
    step = 4 * max(1, batch_size // 4)
    parts = [np.asarray(encoder.encode_image(np.ascontiguousarray(crops[i : i + step])), np.float32)
             for i in range(0, len(crops), step)]
    if parts:
        quarters[ok] = np.concatenate(parts).reshape(-1, 4, dim)
    return quarters


def _embed_dim(encoder) -> int:
    from ..core.embed import output_dim

    return output_dim(encoder)


class EncodeActor:
    """One model per actor, opened once; `threads` caps ONNX Runtime's intra-op threads."""

    def __init__(self, spec: ModelSpec, threads: int | None = None) -> None:
        self.encoder = spec.open().encoder
        if threads and hasattr(self.encoder, "threads"):
            self.encoder.threads = threads  # sessions open lazily, after this

    def __call__(self, batch: dict) -> dict:
        return encode_rows(self.encoder, batch)


# -- the job ------------------------------------------------------------------------------------
def index_job(spec: ModelSpec, inputs: Sequence[str], folder: Path, engine, options: IndexOptions,
              address: str | None = None, cancel: CancelToken | None = None) -> Job[IndexResult]:
    """Index `inputs` into `folder`; yields Progress per shard written. Re-runs skip done shards
    and re-score, from their stored embeddings, the shards scored for other labels."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries, missing = sh.list_inputs(inputs)
    if not entries:
        detail = "; ".join(missing.values()) if missing else f"no images in {', '.join(map(str, inputs))}."
        raise sh.IndexFolderError(f"Nothing to do: {detail}")
    result = IndexResult(folder, missing=missing, entries=entries, dim=_embed_dim(engine.encoder))
    label_set = engine.label_set(options.labels, options.templates) if options.labels else None
    # Shards are named by what their embeddings depend on; labels only change the score columns.
    config = sh.config_key(identity=engine.encoder.cache_identity, exact=options.exact)
    metadata = {"config": config, "scoring": scoring_key(label_set, options),
                "labels": label_set.names if label_set else None}
    plans = sh.plan_shards(entries, config, options.shard_size)
    quarters = options.multi_label and label_set is not None  # multi-label scoring needs them stored
    current, rescore, todo = _sort_plans(folder, plans, metadata["scoring"], quarters)
    result.shards, result.skipped = [plan.name for plan in plans], len(current)
    progress = Progress(sum(len(plan.entries) for plan in current), len(entries), "Indexing images", unit="img")
    yield progress
    store = partial(_store, folder, engine=engine, label_set=label_set, options=options, metadata=metadata)
    for plan in rescore:  # stored embeddings, new labels: no image is read or encoded again
        check(cancel)
        columns = sh.read_shard(folder / plan.name, ["path", "digest", "error", "embedding", "quarters"])
        progress = yield from store(plan, columns, progress=progress)
        result.rescored += 1
        if _stop(options, result):
            break
    if todo and not _stop(options, result):
        runner = _ray_shards(spec, engine, todo, options, address, quarters) if options.use_ray \
            else _local_shards(engine, todo, options, quarters)
        try:
            for plan, columns in _guarded(runner):
                check(cancel)
                progress = yield from store(plan, columns, progress=progress)
                result.written += 1
                if _stop(options, result):
                    break
        finally:
            runner.close()
    result.complete = result.written + result.rescored == len(rescore) + len(todo)
    if result.complete:
        _finish(folder, result, spec, engine, options, label_set, config)
    return result


def _sort_plans(folder: Path, plans: list[sh.ShardPlan], scoring: str | None,
                quarters: bool) -> tuple[list[sh.ShardPlan], list[sh.ShardPlan], list[sh.ShardPlan]]:
    """(current, to re-score, to encode): a shard on disk is re-scored when its labels differ, and
    encoded again when it cannot be read or lacks the quarters a multi-label run needs."""
    existing = sh.existing_shards(folder)
    current, rescore, todo = [], [], []
    for plan in plans:
        found = sh.shard_metadata(folder / plan.name) if plan.name in existing else None
        if found is None or (quarters and not found.get("quarters")):
            todo.append(plan)
        else:
            (current if found.get("scoring") == scoring else rescore).append(plan)
    return current, rescore, todo


def scoring_key(label_set, options: IndexOptions) -> str | None:
    """What a shard's score columns depend on besides its embeddings (None: no scores)."""
    if label_set is None:
        return None
    prompts = [label.key(options.templates) for label in label_set.labels]
    return sh.config_key(prompts=prompts, multi_label=options.multi_label)


def _store(folder: Path, plan: sh.ShardPlan, columns: dict, *, engine, label_set, options: IndexOptions,
           metadata: dict, progress: Progress) -> Job[Progress]:
    """Score one shard's rows (if labels are given) and write it; yields the progress after it."""
    _add_scores(engine, columns, label_set, options)
    sh.write_shard(folder, plan.name, columns, {**metadata, "quarters": "quarters" in columns})
    progress = Progress(progress.done + len(plan.entries), progress.total, "Indexing images",
                        unit="img", started=progress.started)
    yield progress
    return progress


def _stop(options: IndexOptions, result: IndexResult) -> bool:
    """The test hook: stop cleanly once `stop_after` shards were written or re-scored."""
    return options.stop_after is not None and result.written + result.rescored >= options.stop_after


def _guarded(runner: Iterator[tuple]) -> Iterator[tuple]:
    """Ray's failures (a worker that died, a model that would not load in an actor) as one sentence."""
    while True:
        try:
            item = next(runner)
        except StopIteration:
            return
        except ClipdeskError:
            raise
        except Exception as error:  # noqa: BLE001 - RayTaskError, ActorDiedError, ...
            raise RayJobError(f"The indexing job failed ({_first_line(error)}); the shards "
                              "already written are kept: run the same command again to resume.") from error
        yield item


def _finish(folder, result, spec, engine, options, label_set, config) -> None:
    """The manifest lists the current shards; shards of earlier inputs or options are removed."""
    counts = [sh.read_shard(folder / name, ["error"])["error"] for name in result.shards]
    result.images = sum(len(c) for c in counts)
    result.failed = sum(1 for c in counts for e in c if e)
    sh.write_manifest(folder, {
        "version": 1, "model": spec.__dict__, "identity": engine.encoder.cache_identity,
        "dim": _embed_dim(engine.encoder), "config": config, "shards": result.shards,
        "scoring": scoring_key(label_set, options),
        "labels": label_set.names if label_set else None, "templates": options.templates,
        "multi_label": options.multi_label, "images": result.images, "failed": result.failed,
    })
    sh.remove_stale(folder, set(result.shards))


def _add_scores(engine, columns: dict, label_set, options: IndexOptions) -> None:
    """label, score and per-label scores from the embeddings (the single-process scoring)."""
    if label_set is None:
        return
    scores = engine.score(columns["embedding"], label_set, multi_label=options.multi_label,
                          templates=options.templates, quarters=columns.get("quarters"))
    # core/results.py decides label and score, as for the CLI and the API: none from NaN scores.
    rows = [None if error else row_of(scores, i, where=path)
            for i, (path, error) in enumerate(zip(columns["path"], columns["error"]))]
    columns["label"] = [row.label if row is not None else None for row in rows]
    columns["score"] = [row.score if row is not None else None for row in rows]
    columns["scores"] = scores.probs.astype(np.float32)


def _shard_columns(plan: sh.ShardPlan, rows: list[dict]) -> dict:
    by_path = {}
    for batch in rows:
        for i, path in enumerate(batch["path"]):
            by_path[str(path)] = (batch["digest"][i], batch["error"][i], batch["embedding"][i],
                                  batch["quarters"][i] if "quarters" in batch else None)
    ordered = [by_path[e.path] for e in plan.entries]
    columns = {"path": [e.path for e in plan.entries], "digest": [o[0] or None for o in ordered],
               "error": [o[1] or None for o in ordered],
               "embedding": np.stack([o[2] for o in ordered]).astype(np.float32)}
    if ordered and ordered[0][3] is not None:
        columns["quarters"] = np.stack([o[3] for o in ordered]).astype(np.float32)
    return columns


def _decoder(engine, options: IndexOptions, quarters: bool = False) -> Decoder:
    from PIL import Image

    from ..core.preprocess import thread_friendly

    loaded = engine.encoder.loaded
    preprocess = thread_friendly(loaded.preprocess)
    probe = np.asarray(preprocess(Image.new("RGB", (8, 8))), np.float32)
    draft = 2 * loaded.image_size  # core's draft decode: never below twice the model's input
    size = 0 if options.exact else draft
    return Decoder(preprocess, size or None, probe.shape, size if quarters else None)


def _local_shards(engine, plans: list[sh.ShardPlan], options: IndexOptions, quarters: bool = False) -> Iterator[tuple]:
    """In-process: images decode on a few threads, up to two batches ahead of the encoder, as
    core's embed_job does. Decoding one after another in the encoder's thread left it idle for
    the decode time of every batch: `clipdesk index` of 40 12-MP photos took 1.7× the wall time
    of `clipdesk search` over the same folder (benchmarks/bench_peers_rclip4.py, 2 cores)."""
    decoder = _decoder(engine, options, quarters)
    workers = getattr(engine.encoder, "decode_workers", None) or default_workers()
    warm_up = getattr(engine.encoder, "warm_up_images", None)
    if warm_up is not None and plans:  # ONNX: its image session opens while the first batch decodes
        warm_up()  # (opened at the first encode, the first batch waited for it: 40 12-MP photos 4.34 -> 4.16 s)
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        for plan in plans:
            rows = [encode_rows(engine.encoder, batch)
                    for batch in _decoded_batches(decoder, pool, plan, options.batch_size)]
            yield plan, _shard_columns(plan, rows)


def _decoded_batches(decoder: Decoder, pool: ThreadPoolExecutor, plan: sh.ShardPlan,
                     batch_size: int) -> Iterator[dict]:
    """The plan's batches in input order, each image decoded as a task of its own on `pool`."""
    shard = np.asarray([plan.name], object)
    entries = iter(plan.entries)
    pending: deque[Future] = deque()

    def top_up() -> None:
        while len(pending) < 2 * batch_size:
            entry = next(entries, None)
            if entry is None:
                return
            pending.append(pool.submit(decoder, {"path": [entry.path], "shard": shard}))

    try:
        while True:
            top_up()
            if not pending:
                return
            parts = [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
            top_up()  # the next batch decodes while this one is encoded
            yield {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    finally:  # closed early (cancel, error): no decode left running for nothing
        for future in pending:
            future.cancel()


# -- Ray ----------------------------------------------------------------------------------------
def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise RayMissingError(INSTALL_HINT) from error
    return ray


def check_reachable(address: str | None = None, timeout: float = REACH_TIMEOUT) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing answers at `address`
    (or RAY_ADDRESS): a TCP connect to its GCS (or Ray Client) port."""
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    if not address or address in ("local", "auto"):
        return  # a local Ray, or `auto` (Ray finds the cluster this node belongs to)
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        why = f"no answer within {timeout:g} s" if isinstance(error, TimeoutError) \
            else (error.strerror or type(error).__name__).lower()
        raise RayJobError(f"Could not join the Ray cluster at {address}: {host}:{port} does not answer ({why}); "
                          f"start it there with `ray start --head --port {port}`, or check the address.") from error


def _host_port(address: str) -> tuple[str, int]:
    """`host:port`, `ray://host:port` or `[v6]:port` → (host, port); Ray's default port 6379."""
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError as error:
        raise RayAddressError(f"--ray {address}: not a Ray address; give HOST:PORT, e.g. 10.0.0.5:6379.") from error
    default = 10001 if address.startswith("ray://") else 6379
    return parts.hostname or "127.0.0.1", port or default


def connect(address: str | None = None, num_cpus: int | None = None):
    """Join `address` (or RAY_ADDRESS), or start a local Ray on this machine's cores."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_reachable(address)
    try:
        if address and address != "local":
            ray.init(address=address, logging_level="WARNING")
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     logging_level="WARNING")
    except Exception as error:  # noqa: BLE001 - Ray raises several kinds; one sentence for all
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RayJobError(f"Could not start or join {where} ({_first_line(error)}).") from error
    return ray


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _pool(ray, spec: ModelSpec, options: IndexOptions) -> tuple[int, dict]:
    """Actors and their resources: one per GPU when the model runs on GPUs, else CPUs − 1
    (one core is left to the decode tasks)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and spec.device in ("auto", "cuda", "gpu"):
        return options.workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    cpus = int(resources.get("CPU", 1))
    return options.workers or max(1, cpus - 1), {"num_cpus": 1}


def _ray_shards(spec: ModelSpec, engine, plans: list[sh.ShardPlan], options: IndexOptions,
                address: str | None, quarters: bool = False) -> Iterator[tuple]:
    ray = connect(address)
    import pyarrow as pa

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # shards complete one after another
    context.enable_progress_bars = False  # clipdesk's own bar counts images written to shards
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    block = max(8, options.batch_size)
    paths = [(e.path, plan.name) for plan in plans for e in plan.entries]
    tables = [pa.table({"path": [p for p, _ in paths[i : i + block]], "shard": [s for _, s in paths[i : i + block]]})
              for i in range(0, len(paths), block)]
    size, resources = _pool(ray, spec, options)
    dataset = (
        ray.data.from_arrow(tables)
        # Decode tasks reserve some memory for their pixel batches; the different resources
        # also keep Ray from fusing them into the actors, so they run as tasks of their own.
        .map_batches(_decoder(engine, options, quarters), batch_size=block, batch_format="numpy",
                     memory=DECODE_MEMORY * (5 if quarters else 1))
        .map_batches(EncodeActor, fn_constructor_kwargs={"spec": spec, "threads": resources["num_cpus"]},
                     batch_size=options.batch_size, batch_format="numpy",
                     compute=ray.data.ActorPoolStrategy(size=size), **resources)
    )
    pending: dict[str, list[dict]] = {}
    counts: dict[str, int] = {}
    wanted = {plan.name: plan for plan in plans}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for name in dict.fromkeys(batch["shard"]):
            mask = batch["shard"] == name
            part = {key: value[mask] for key, value in batch.items()}
            pending.setdefault(name, []).append(part)
            counts[name] = counts.get(name, 0) + int(mask.sum())
            if counts[name] == len(wanted[name].entries):
                yield wanted[name], _shard_columns(wanted[name], pending.pop(name))
