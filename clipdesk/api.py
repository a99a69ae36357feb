"""The Python API: load a model once, then classify, embed and search images from scripts and notebooks.

A thin layer over the engine the CLI and the window drive (`clipdesk.core.engine.Engine`): the same
model loading, embedding cache, prompts and scoring, so scores equal `clipdesk classify`'s. Core jobs
run to completion here; callers only see an optional progress callback and a `CancelToken`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

import numpy as np

from .core.errors import ImageLoadError, LabelError
from .core.jobs import CancelToken, Job, Progress, T, check, run_job
from .core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED
from .core.results import row_of

if TYPE_CHECKING:
    from PIL import Image

    from training.api import EvalReport, FinetuneResult

    from .core.engine import Engine, LabelSet

#: One image: a file or folder path, a PIL image, or an H×W×3 uint8 numpy array.
ImageInput = Union[str, os.PathLike, "Image.Image", np.ndarray]
#: `progress=` takes False (silent), True (a tqdm bar on stderr) or `callback(done, total, message)`.
ProgressArg = bool | Callable[[int, int | None, str], None]

__all__ = [
    "Classifier", "ImageInput", "Prediction", "ProgressArg", "Results", "SearchHit",
    "demo_images", "evaluate", "finetune", "load",
]


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """One image's scores: `path` for a file, `index` (position in the input) for an in-memory image.

    `scores` maps label → probability, best first (only the `top_k` best when asked); `error` is one
    sentence when the image could not be read or the model gave no valid score (NaN; core/results.py
    decides this for the CLI too), and then `label` and `score` are None.
    """

    path: str | None = None
    index: int | None = None
    label: str | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    cosines: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    labels: list[str] | None = None  # multi-label: the labels present, best first

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape: path (or index) and either error, or label, score, scores, cosines."""
        where = {"path": self.path} if self.path is not None else {"index": self.index}
        if self.error is not None:
            return {**where, "error": self.error}
        present = {"labels": list(self.labels)} if self.labels is not None else {}
        return {**where, "label": self.label, "score": self.score, **present, "scores": dict(self.scores),
                "cosines": dict(self.cosines)}


@dataclass(frozen=True)
class SearchHit:
    """One ranked image: `rank` from 1, its cosine similarity to the query as `score`.

    An image that could not be read comes after the ranked ones, with `rank` and `score` None.
    """

    rank: int | None = None
    path: str | None = None
    index: int | None = None
    score: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "path": self.path, "index": self.index, "score": self.score,
                "error": self.error}


R = TypeVar("R", Prediction, SearchHit)


class Results(list, Generic[R]):
    """A plain list of `Prediction` or `SearchHit`, plus `.to_pandas()` and the `labels` scored."""

    def __init__(self, rows: Iterable = (), labels: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.labels = list(labels)

    def to_pandas(self):
        """A DataFrame, one row per image, one column per label's probability (pandas is optional)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("Results.to_pandas() needs pandas: pip install pandas") from error
        return pd.DataFrame.from_records([self._record(row) for row in self])

    def _record(self, row) -> dict[str, Any]:
        if isinstance(row, SearchHit):
            return row.as_dict()
        record = {"path": row.path, "index": row.index, "label": row.label, "score": row.score,
                  "error": row.error}
        for name in self.labels:
            column = name if name not in record else f"score:{name}"
            record[column] = row.scores.get(name, float("nan")) if row.error is None else float("nan")
        return record


# -- running core jobs ----------------------------------------------------------------------------
def _run(job: Job[T], progress: ProgressArg = False) -> T:
    """Drive a core job to its result; Ctrl-C or a cancelled token stops it and frees its threads."""
    if progress is True:
        from .console import drive

        try:
            return drive(job)
        finally:
            job.close()
    report = (lambda step: progress(step.done, step.total, step.message)) if callable(progress) else None
    try:
        return run_job(job, report)
    finally:
        job.close()  # a KeyboardInterrupt in the callback still shuts the decode threads down


# -- inputs ---------------------------------------------------------------------------------------
@dataclass
class _Source:
    """One image to score: a file (path) or an in-memory image (index), or why it cannot be."""

    path: Path | None = None
    index: int | None = None
    image: Any = None  # an RGB PIL image for in-memory inputs
    error: str = ""


def _is_path(item: object) -> bool:
    return isinstance(item, (str, os.PathLike))


def _expand(images: ImageInput | Iterable[ImageInput]) -> list[_Source]:
    """Flatten the caller's input: folders into their images (sorted, recursively), in input order."""
    from PIL import Image

    if _is_path(images) or isinstance(images, Image.Image) or (
            isinstance(images, np.ndarray) and images.ndim < 4):
        items = [images]
    elif isinstance(images, Iterable):
        items = list(images)
    else:
        raise TypeError(f"images must be a path, a folder, a PIL image, an array or a list of them, "
                        f"not {type(images).__name__}.")
    sources: list[_Source] = []
    for index, item in enumerate(items):
        if _is_path(item):
            sources.extend(_path_sources(item))
        elif isinstance(item, Image.Image):
            sources.append(_memory_source(item, index))
        elif isinstance(item, np.ndarray):
            sources.append(_array_source(item, index))
        else:
            sources.append(_Source(index=index, error=f"Item {index} ({type(item).__name__}) is not "
                                                      "an image, a path or an array."))
    return sources


def _path_sources(item: str | os.PathLike) -> list[_Source]:
    from .core.images import find_images

    files, missing = find_images([item])
    return [_Source(path=path) for path in files] + [
        _Source(path=path, error=message) for path, message in missing.items()]


def _memory_source(image: Image.Image, index: int) -> _Source:
    from .core.images import require_pixels, to_rgb

    try:
        return _Source(index=index, image=to_rgb(require_pixels(image, f"Image {index}")))
    except ImageLoadError as error:  # 0×N: one sentence, not a ZeroDivisionError from the resize
        return _Source(index=index, error=str(error))
    except Exception as error:  # noqa: BLE001 - one odd image must not end the call
        return _Source(index=index, error=f"Image {index} could not be converted to RGB ({error}).")


def _array_source(array: np.ndarray, index: int) -> _Source:
    from PIL import Image

    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        return _Source(index=index, error=f"Array {index} must be H×W×3 uint8 (got {array.dtype} "
                                          f"{'×'.join(map(str, array.shape))}).")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return _memory_source(Image.fromarray(np.ascontiguousarray(array)), index)


def _stack(tensors: list):
    """Preprocessed images are torch tensors, or numpy arrays on the torch-free ONNX path."""
    if all(type(t).__module__.startswith("torch") for t in tensors):
        import torch

        return torch.stack(tensors)
    return np.stack([np.asarray(t, np.float32) for t in tensors])


# -- the classifier -------------------------------------------------------------------------------
class Classifier:
    """A loaded model with its caches, ready to classify, embed and search; make one with `load`.

    Labels are encoded once per Classifier (and cached on disk), so calling it image by image in a
    loop costs one image encoding per call.

        >>> import clipdesk
        >>> clf = clipdesk.load("demo")
        >>> clf.classify(clipdesk.demo_images()[0], ["red circle", "blue star"])[0].label
        'red circle'
    """

    def __init__(self, engine: Engine, batch_size: int = 32, exact: bool = False) -> None:
        self.engine = engine  # the core engine, for anything this API does not cover
        self.batch_size = batch_size
        self.exact = exact

    def __repr__(self) -> str:
        loaded = self.engine.loaded
        return f"<clipdesk.Classifier {loaded.display_name} on {self.device}, {self.backend}>"

    @property
    def model(self) -> str:
        """The open_clip architecture name."""
        return self.engine.loaded.arch

    @property
    def pretrained(self) -> str:
        """The weights: a tag, a checkpoint file or a model folder."""
        return self.engine.loaded.pretrained

    @property
    def device(self) -> str:
        return str(getattr(self.engine.loaded.device, "type", self.engine.loaded.device))

    @property
    def backend(self) -> str:
        """The inference backend: "torch", "onnx" or "onnx-int8"."""
        return self.engine.encoder.name

    @property
    def class_names(self) -> list[str]:
        """The classes a fine-tuned (or the demo) model was trained on; empty for plain CLIP weights."""
        return self.engine.loaded.class_names

    # -- classify -------------------------------------------------------------------------------
    def classify(self, images: ImageInput | Iterable[ImageInput], labels: str | Sequence[str],
                 templates: str | None = None, multi_label: bool = False, top_k: int | None = None,
                 progress: ProgressArg = False, cancel: CancelToken | None = None,
                 threshold: float | None = None) -> Results[Prediction]:
        """Score every image against the candidate labels; one `Prediction` per image, in input order.

        `images`: a path, a folder, a PIL image, an H×W×3 uint8 array (N×H×W×3: N images) or a list
        of them. `labels`: a list, or one string split at commas ("cat, dog"); "car | automobile"
        averages synonyms. `templates`: "none", "photo", "ensemble" or "imagenet80"; None uses the
        prompt style the model was trained with (the demo model's is "none"), else "photo".
        `multi_label`: several labels can be present; each is scored against the image's best one
        from the whole picture and its four quarters (core/multilabel.py), and `labels` lists those
        scoring at least `threshold` (default 0.05).
        A file that cannot be read becomes a Prediction with `error`; the call goes on.

            >>> import clipdesk
            >>> clf = clipdesk.load("demo")
            >>> results = clf.classify(clipdesk.demo_images()[:2], "red circle, blue star")
            >>> [(r.label, round(r.score, 2)) for r in results]
            [('red circle', 1.0), ('blue star', 1.0)]
        """
        templates = self._templates(templates)
        label_set = self._label_set(labels, templates)
        sources = _expand(images)
        vectors = _run(self._embed_job(sources, cancel), progress)
        ok = [i for i, vector in enumerate(vectors) if vector is not None]
        features = np.stack([vectors[i] for i in ok]) if ok else np.zeros((0, self._dim()), np.float32)
        quarters = _run(self._quarters_job([sources[i] for i in ok], features, cancel), progress) \
            if multi_label else None
        scores = self.engine.score(features, label_set, multi_label=multi_label, templates=templates,
                                   quarters=quarters)
        rows = {source_index: row for row, source_index in enumerate(ok)}
        predictions = []
        for i, source in enumerate(sources):
            where = {"path": str(source.path) if source.path is not None else None, "index": source.index}
            if i not in rows:
                predictions.append(Prediction(**where, error=source.error))
                continue
            named = where["path"] if source.path is not None else f"Image {source.index}"
            row = row_of(scores, rows[i], where=named, top_k=top_k, threshold=threshold)  # core/results.py
            if row.error is not None:  # e.g. NaN scores from a damaged model: never a label
                predictions.append(Prediction(**where, error=row.error))
                continue
            predictions.append(Prediction(**where, label=row.label, score=row.score, scores=dict(row.top),
                                          labels=row.labels, cosines=row.cosines))
        return Results(predictions, label_set.names)

    __call__ = classify  # `clf(image, labels)`, as with a Hugging Face pipeline

    def _templates(self, templates: str | None) -> str:
        from .core.prompts import default_templates

        return default_templates(templates, self.engine.loaded.metadata)

    def _label_set(self, labels: str | Sequence[str], templates: str) -> LabelSet:
        from .core.prompts import split_labels

        if isinstance(labels, str):
            labels = split_labels(labels)
        elif labels is None or not all(isinstance(label, str) for label in _as_list(labels)):
            raise LabelError("labels must be a string such as \"cat, dog\" or a list of strings.")
        label_set = self.engine.label_set(list(labels), templates)
        for note in label_set.notes:
            warnings.warn(note, UserWarning, stacklevel=3)
        return label_set

    # -- embeddings -----------------------------------------------------------------------------
    def embed(self, images: ImageInput | Iterable[ImageInput], progress: ProgressArg = False,
              cancel: CancelToken | None = None) -> np.ndarray:
        """Normalised image embeddings, N×D float32, one row per image in input order.

        An image that cannot be read gets a row of NaN and a warning naming it.

            >>> import clipdesk
            >>> clf = clipdesk.load("demo")
            >>> vectors = clf.embed(clipdesk.demo_images()[:3])
            >>> vectors.shape[0], round(float((vectors[0] ** 2).sum()), 4)
            (3, 1.0)
        """
        sources = _expand(images)
        vectors = _run(self._embed_job(sources, cancel), progress)
        out = np.full((len(sources), self._dim()), np.nan, np.float32)
        for i, (source, vector) in enumerate(zip(sources, vectors)):
            if vector is None:
                warnings.warn(source.error, UserWarning, stacklevel=2)
            else:
                out[i] = vector
        return out

    def embed_text(self, texts: str | Sequence[str], templates: str = "none") -> np.ndarray:
        """Normalised text embeddings, N×D float32 (`templates="photo"` wraps each in "a photo of a …").

            >>> import clipdesk
            >>> clf = clipdesk.load("demo")
            >>> text = clf.embed_text(["red circle", "blue star"])
            >>> image = clf.embed(clipdesk.demo_images()[0])
            >>> int((image @ text.T).argmax())
            0
        """
        from .core.prompts import Label

        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or any(not str(text).strip() for text in texts):
            raise LabelError("Texts to embed cannot be empty.")
        return self.engine.label_weights([Label(str(text).strip()) for text in texts], templates)

    def search(self, query: str | ImageInput, images: ImageInput | Iterable[ImageInput],
               top_k: int | None = 10, progress: ProgressArg = False,
               cancel: CancelToken | None = None) -> Results[SearchHit]:
        """Rank images by likeness to a text query (a str) or an example image (a Path, PIL image or
        array; a str that names an existing image file counts as one too), best first.

            >>> import clipdesk
            >>> clf = clipdesk.load("demo")
            >>> hits = clf.search("blue star", clipdesk.demo_images(), top_k=1)
            >>> Path(hits[0].path).name
            '02-blue-star.png'
        """
        if query is None or (isinstance(query, str) and not query.strip()):
            raise LabelError("search needs a query: a description such as \"a red car\", or an image.")
        sources = _expand(images)
        vectors = _run(self._embed_job(sources, cancel), progress)
        ok = [i for i, vector in enumerate(vectors) if vector is not None]
        features = np.stack([vectors[i] for i in ok]) if ok else np.zeros((0, self._dim()), np.float32)
        if isinstance(query, str) and not _names_image_file(query):
            ranking = self.engine.search_text(query, features, top_k)
        else:
            ranking = self.engine.search_image(self._query_vector(query, cancel), features, top_k)
        hits = [SearchHit(rank, _path_str(sources[ok[row]]), sources[ok[row]].index, score)
                for rank, (row, score) in enumerate(ranking, start=1)]
        hits += [SearchHit(None, _path_str(source), source.index, None, source.error)
                 for source, vector in zip(sources, vectors) if vector is None]
        return Results(hits)

    def _query_vector(self, query: ImageInput, cancel: CancelToken | None) -> np.ndarray:
        sources = _expand(query)
        if len(sources) != 1:
            raise ImageLoadError("The query must be one image (not a folder or a list).")
        vector = _run(self._embed_job(sources, cancel))[0]
        if vector is None:
            raise ImageLoadError(sources[0].error)
        return vector

    # -- embedding sources (files through the core's cached pipeline, in-memory images directly) --
    def _embed_job(self, sources: list[_Source], cancel: CancelToken | None) -> Job[list[np.ndarray | None]]:
        vectors: list[np.ndarray | None] = [None] * len(sources)
        files = [i for i, s in enumerate(sources) if s.path is not None and not s.error]
        memory = [i for i, s in enumerate(sources) if s.image is not None and not s.error]
        total = len(files) + len(memory)
        if files:
            job = self.engine.embed_job([sources[i].path for i in files], self.batch_size, self.exact, cancel)
            embedded = yield from _forward(job, 0, total)
            rows = iter(embedded.features)
            for i in files:
                if sources[i].path in embedded.errors:
                    sources[i].error = embedded.errors[sources[i].path]
                else:
                    vectors[i] = next(rows)
        for start in range(0, len(memory), self.batch_size):
            check(cancel)
            batch = memory[start:start + self.batch_size]
            for i, vector in zip(batch, self._encode_memory([sources[i] for i in batch])):
                vectors[i] = vector
            yield Progress(len(files) + start + len(batch), total, "Embedding images", unit="img")
        return vectors

    def _quarters_job(self, sources: list[_Source], features: np.ndarray,
                      cancel: CancelToken | None) -> Job[np.ndarray]:
        """(N, 4, D) quarter crops of embedded sources (multi-label); files through the cache."""
        from .core.multilabel import quarter_crops

        files = [row for row, source in enumerate(sources) if source.path is not None]
        quarters = yield from self.engine.quarters_job([sources[row].path for row in files], features[files],
                                                       self.batch_size, cancel, self.exact)
        out = np.repeat(features[:, None, :], 4, axis=1)
        if files:
            out[files] = quarters
        memory = [row for row, source in enumerate(sources) if source.path is None]
        per_call = max(1, self.batch_size // 4)  # one encoder call per batch of crops, not per image
        for start in range(0, len(memory), per_call):
            check(cancel)
            rows = memory[start:start + per_call]
            crops = [_Source(index=sources[row].index, image=crop)
                     for row in rows for crop in quarter_crops(sources[row].image)]
            vectors = self._encode_memory(crops)
            for k, row in enumerate(rows):
                four = vectors[4 * k:4 * k + 4]
                if all(vector is not None for vector in four):  # else: whole-image scoring
                    out[row] = np.stack(four)
        return out

    def _encode_memory(self, sources: list[_Source]) -> list[np.ndarray | None]:
        """Preprocess in-memory images as the file pipeline does, then one encoder call per batch."""
        from .core.preprocess import thread_friendly

        encoder = self.engine.encoder
        warm_up = getattr(encoder, "warm_up_images", None)
        if warm_up is not None:
            warm_up()
        preprocess = thread_friendly(encoder.loaded.preprocess)
        tensors, ready = [], []
        for source in sources:
            try:
                tensors.append(preprocess(source.image))
                ready.append(source)
            except Exception as error:  # noqa: BLE001 - one odd image must not end the call
                source.error = f"Image {source.index} could not be processed ({type(error).__name__}: {error})."
        out: dict[int, np.ndarray] = {}
        if tensors:
            features = np.asarray(encoder.encode_image(_stack(tensors)), np.float32)
            out = {id(source): vector for source, vector in zip(ready, features)}
        return [out.get(id(source)) for source in sources]

    def _dim(self) -> int:
        known = getattr(self.engine.encoder, "embed_dim", 0)
        return int(known or self.engine.loaded.model.visual.output_dim)


def _forward(job: Job[T], offset: int, total: int) -> Job[T]:
    """Re-yield a sub-job's progress as part of a larger count."""
    while True:
        try:
            step = next(job)
        except StopIteration as stop:
            return stop.value
        yield Progress(offset + step.done, total, step.message, unit=step.unit, started=step.started)


def _names_image_file(text: str) -> bool:
    from .core.images import IMAGE_SUFFIXES

    path = Path(text).expanduser()
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _path_str(source: _Source) -> str | None:
    return str(source.path) if source.path is not None else None


# -- module-level entry points ----------------------------------------------------------------------
def load(model: str | os.PathLike = DEFAULT_ARCH, pretrained: str | os.PathLike | None = None,
         device: str = "auto", backend: str = "auto", precision: str = "fp32", cache: bool = True,
         *, batch_size: int = 32, exact: bool = False, progress: ProgressArg = False,
         cancel: CancelToken | None = None) -> Classifier:
    """Load a model once (downloading its weights the first time) and return a `Classifier`.

    `model`: an open_clip architecture, "demo" (the built-in model, offline), or a fine-tuned model
    folder. `pretrained`: a tag, a checkpoint file, a folder or "none" (default: the architecture's
    recommended tag). `backend`: "auto" (ONNX Runtime on a CPU, torch on a GPU), "torch" or "onnx";
    `precision="int8"` quantises the ONNX encoders. `cache=False` neither reads nor writes the
    embedding cache. Raises `ModelLoadError` with one sentence when the model cannot be loaded.

        >>> import clipdesk
        >>> clf = clipdesk.load("demo")
        >>> clf.model
        'clipdesk-demo'
    """
    from .core.engine import open_engine_job

    arch, source = _model_source(model, pretrained)
    engine = _run(open_engine_job(arch, source, device, backend, precision, use_cache=cache,
                                  cancel=cancel), progress)
    return Classifier(engine, batch_size=batch_size, exact=exact)


def _model_source(model: Any, pretrained: Any) -> tuple[str, str]:
    """(architecture, pretrained) as the CLI names them; a model folder or a Classifier is read."""
    if isinstance(model, Classifier):
        return model.model, model.pretrained
    folder = getattr(model, "model_dir", None)  # a finetune() result
    if folder is None and pretrained is None and _is_path(model) and Path(model).expanduser().is_dir():
        folder = model
    if folder is not None:
        from .core.models import read_metadata

        folder = Path(folder).expanduser()
        return str(read_metadata(folder).get("architecture") or DEFAULT_ARCH), str(folder)
    model = str(model)
    if pretrained is None:
        pretrained = "demo" if model == "demo" else DEFAULT_PRETRAINED
    return model, str(pretrained)


def _training_source(model: Any, pretrained: Any) -> tuple[str, str]:
    """Like `_model_source`, with "demo" resolved to its architecture and folder for training."""
    arch, source = _model_source(model, pretrained)
    if "demo" in (arch.lower(), source.lower()):
        from .core.demo import demo_model_dir

        return _model_source(demo_model_dir(), None)
    return arch, source


def finetune(folder: str | os.PathLike, method: str = "quick", model: Any = DEFAULT_ARCH,
             pretrained: str | None = None, *, epochs: int | None = None, lr: float | None = None,
             batch_size: int = 32, val_split: float = 0.2, val_folder: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, name: str | None = None, device: str = "auto",
             seed: int = 0, progress: ProgressArg = False, cancel: CancelToken | None = None,
             **options: Any) -> FinetuneResult:
    """Fine-tune on a folder with one sub-folder per class, as `clipdesk finetune` does.

    `method`: "quick" (a few-shot head, seconds), "full" (both towers) or "captions". `model` is an
    architecture (with `pretrained`), "demo", a model folder or a `Classifier`; other keyword
    options go to `training.api.FinetuneConfig`. Returns the report the CLI prints
    (`accuracy_before`, `accuracy_after`, `per_class`, `confusion`, `model_dir`, `as_dict()`);
    `clipdesk.load(result.model_dir)` loads the new model.

        >>> import clipdesk, shutil, tempfile
        >>> from pathlib import Path
        >>> shapes = Path(tempfile.mkdtemp())  # shapes/<shape>/<image>.png, 3 images each
        >>> for image in clipdesk.demo_images():
        ...     shape = shapes / image.stem.split("-")[-1]
        ...     if shape.name in ("star", "square"):
        ...         shape.mkdir(exist_ok=True)
        ...         _ = shutil.copy(image, shape)
        >>> report = clipdesk.finetune(shapes, model="demo", out=shapes.with_name(shapes.name + "-model"))
        >>> sorted(report.classes), report.accuracy_after >= 0.5
        (['square', 'star'], True)
    """
    from training.api import FinetuneConfig, finetune_job

    arch, source = _training_source(model, pretrained)
    config = FinetuneConfig(folder=folder, method=method, arch=arch, pretrained=source, epochs=epochs,
                            lr=lr, batch_size=batch_size, val_split=val_split, val_folder=val_folder,
                            out=out, device=device, seed=seed, name=name, **options)
    return _run(finetune_job(config, cancel), progress)


def evaluate(folder: str | os.PathLike, model: Any = DEFAULT_ARCH, pretrained: str | None = None, *,
             device: str = "auto", templates: str | None = None, batch_size: int = 32,
             progress: ProgressArg = False, cancel: CancelToken | None = None) -> EvalReport:
    """Accuracy of a model on a folder with one sub-folder per class, as `clipdesk evaluate` reports it.

    `model`: an architecture (with `pretrained`), "demo", a fine-tuned model folder, a `finetune()`
    result or a `Classifier`. Returns the CLI's report (`accuracy`, `per_class`, `confusion`,
    `classes`, `errors`, `as_dict()`).

        >>> import clipdesk, shutil, tempfile
        >>> from pathlib import Path
        >>> shapes = Path(tempfile.mkdtemp())  # shapes/red circle/01-red-circle.png, ...
        >>> for image in clipdesk.demo_images()[:4]:
        ...     (shapes / " ".join(image.stem.split("-")[1:])).mkdir()
        ...     _ = shutil.copy(image, shapes / " ".join(image.stem.split("-")[1:]))
        >>> report = clipdesk.evaluate(shapes, "demo")
        >>> report.accuracy, len(report.true)
        (1.0, 4)
    """
    from training.api import evaluate_job

    arch, source = _training_source(model, pretrained)
    return _run(evaluate_job(folder, arch, source, device, cancel, templates, batch_size), progress)


def demo_images() -> list[Path]:
    """The demo model's sample pictures (shipped with clipdesk), for trying the API offline.

        >>> import clipdesk
        >>> [p.name for p in clipdesk.demo_images()[:2]]
        ['01-red-circle.png', '02-blue-star.png']
    """
    from .core.demo import demo_sample_images

    return demo_sample_images()


def _as_list(values: object) -> list:
    """Any iterable of labels as a list; a non-iterable gives a list that fails the type check."""
    try:
        return list(values)  # type: ignore[call-overload]
    except TypeError:
        return [values]
