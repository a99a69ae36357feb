"""The desktop app's state without Qt: loaded images, candidate labels, embeddings and scores.

Views subscribe with `session.on(event, callback)` and re-read what they need (napari's pattern:
a pure model emitting events, thin widgets over it). Scores are computed elsewhere (the worker,
from cached embeddings); the session only stores them and turns a score row into a decision,
applying the unsure rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .atomic import write_json_atomic
from .jobs import Progress, run_job
from .label_list import UNSURE, LabelEditing
from .multilabel import present_labels, present_mask
from .safeio import read_json_or_none
from .strict_json import path_from_record, path_record


@dataclass
class ImageItem:
    path: Path
    status: str = "pending"  # pending → done | error
    error: str = ""
    vector: np.ndarray | None = None
    probs: np.ndarray | None = None  # over `Session.score_labels`
    quarters: np.ndarray | None = None  # (4, dim) quarter-crop embeddings, for multi-label scores
    similarity: float | None = None  # last search's cosine, None when no search is active


@dataclass
class Decision:
    """What the app shows for one image: its label (or "unsure"), and the top-2 evidence."""

    label: str
    score: float
    top_label: str
    second_label: str
    second_score: float
    unsure: bool
    labels: list[str] = field(default_factory=list)  # multi-label: every label above threshold

    @property
    def margin(self) -> float:
        return self.score - self.second_score


def decide(probs: np.ndarray, names: Sequence[str], threshold: float = 0.0, margin: float = 0.0,
           multi_label: bool = False) -> Decision:
    """The unsure rule: top-1 below `threshold`, or top-1 minus top-2 below `margin`, is unsure.

    In multi-label mode the labels present are core/multilabel.py's rule (`present_mask`: at least
    the threshold, its DEFAULT_THRESHOLD of 0.05 when unset); an image where none is present is
    unsure. Otherwise zero disables a test.
    """
    order = np.argsort(-probs, kind="stable")
    top = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    score = float(probs[top])
    second_score = float(probs[second]) if second is not None else 0.0
    second_label = names[second] if second is not None else ""
    if multi_label:
        present = present_labels(names, probs, threshold)
        label = ", ".join(present) if present else UNSURE
        return Decision(label, score, names[top], second_label, second_score, not present, present)
    unsure = (threshold > 0 and score < threshold) or (
        margin > 0 and second is not None and score - second_score < margin)
    return Decision(UNSURE if unsure else names[top], score, names[top], second_label,
                    second_score, unsure, [] if unsure else [names[top]])


@dataclass
class DecisionArrays:
    """`decide` for every row: `scored` rows have probabilities; `present` is rows × labels.
    `embedded` and `pending` are the row states the window's scheduler asks about after every
    chunk: kept here, patched per batch with the rest, they cost no pass over 20,000 items."""

    scored: np.ndarray
    top: np.ndarray
    top_score: np.ndarray
    second: np.ndarray  # -1 where there is no second label
    second_score: np.ndarray
    unsure: np.ndarray
    present: np.ndarray
    embedded: np.ndarray  # the row has an image embedding
    pending: np.ndarray  # the row waits to be embedded (status "pending")


def decision_arrays(items: Sequence[ImageItem], n_labels: int, threshold: float = 0.0,
                    margin: float = 0.0, multi_label: bool = False) -> DecisionArrays:
    """The unsure rule of `decide`, vectorised over images (same ties: the first label wins)."""
    n = len(items)
    scored = np.fromiter((item.probs is not None and len(item.probs) == n_labels > 0 for item in items), bool, n)
    embedded = np.fromiter((item.vector is not None for item in items), bool, n)
    pending = np.fromiter((item.status == "pending" for item in items), bool, n)
    probs = np.zeros((n, max(n_labels, 1)), np.float32)
    if scored.any():
        probs[scored] = np.stack([item.probs for item, ok in zip(items, scored) if ok])
    probs = probs[:, :n_labels] if n_labels else probs[:, :0]
    rows = np.arange(n)
    if n_labels:
        top = np.argmax(probs, axis=1)
        top_score = probs[rows, top]
        rest = probs.copy()
        rest[rows, top] = -np.inf
        second = np.argmax(rest, axis=1) if n_labels > 1 else np.full(n, -1)
        second_score = rest[rows, second] if n_labels > 1 else np.zeros(n, np.float32)
    else:
        top = second = np.full(n, -1)
        top_score = second_score = np.zeros(n, np.float32)
    if multi_label:
        present = present_mask(probs, threshold)
        unsure = ~present.any(axis=1)
    else:
        unsure = (threshold > 0) & (top_score < threshold)
        if n_labels > 1 and margin > 0:
            unsure |= top_score - second_score < margin
        present = np.zeros((n, n_labels), bool)
        if n_labels:
            present[rows, top] = ~unsure
    return DecisionArrays(scored, top, top_score, second, np.asarray(second_score, np.float32),
                          unsure, present, embedded, pending)


DECISION_FIELDS = tuple(f.name for f in fields(DecisionArrays))


class Session(LabelEditing):
    """Images (in the order they were added), labels as typed, and the options of the unsure rule."""

    def __init__(self) -> None:
        self.items: list[ImageItem] = []
        self._index: dict[Path, int] = {}
        self.labels: list[str] = []  # raw lines: "car | automobile" keeps its synonyms
        self.templates = "photo"
        self.threshold = 0.0
        self.margin = 0.0
        self.multi_label = False
        self.score_labels: list[str] = []  # the label names the stored probabilities refer to
        self.search_query = ""
        self._listeners: dict[str, list[Callable]] = defaultdict(list)
        self._arrays: DecisionArrays | None = None  # cached until the next event
        self._features: tuple[list[Path], np.ndarray] | None = None
        self._quarters: list[np.ndarray | None] | None = None  # aligned with `_features`

    # -- events ---------------------------------------------------------------------------------
    def on(self, event: str, callback: Callable) -> None:
        """Events: added(first, last), about_to_reset, reset, changed(rows), labels, scores, options."""
        self._listeners[event].append(callback)

    def _emit(self, event: str, *args) -> None:
        self._arrays = self._patched_arrays(event, args)  # other events may change every row
        if event not in ("scores", "options", "labels"):  # rows, paths or vectors may have changed
            self._features = self._quarters = None
        for callback in list(self._listeners[event]):
            callback(*args)

    def _patched_arrays(self, event: str, args: tuple) -> DecisionArrays | None:
        """The cached decisions with only a batch's rows ("changed") or the appended rows
        ("added") worked out again. Recomputing every row is a Python pass over all items: at
        20,000 images 11 ms, several times that while decode threads hold the GIL, and the
        window asks after every batch (issue 21). Any other event drops the cache."""
        arrays = self._arrays
        if arrays is None or event not in ("changed", "added") or len(arrays.scored) > len(self.items):
            return None
        if event == "added":
            first, last = args
            if first != len(arrays.scored):
                return None
            part = self._decisions(self.items[first:last + 1])
            return DecisionArrays(*(np.concatenate([getattr(arrays, name), getattr(part, name)])
                                    for name in DECISION_FIELDS))
        rows = np.array(sorted(set(args[0])), np.int64)
        if len(arrays.scored) != len(self.items) or (len(rows) and rows[-1] >= len(self.items)):
            return None
        part = self._decisions([self.items[row] for row in rows])
        patched = DecisionArrays(*(getattr(arrays, name).copy() for name in DECISION_FIELDS))
        for name in DECISION_FIELDS:
            getattr(patched, name)[rows] = getattr(part, name)
        return patched

    def _decisions(self, items: Sequence[ImageItem]) -> DecisionArrays:
        return decision_arrays(items, len(self.score_labels), self.threshold, self.margin, self.multi_label)

    # -- images ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def _key(path: Path | str) -> Path:
        if isinstance(path, Path) and path.is_absolute():  # what folder scans return: no re-parse
            return path
        return Path(path).expanduser().absolute()

    def row_of(self, path: Path | str) -> int | None:
        return self._index.get(self._key(path))

    @classmethod
    def keys(cls, paths: Iterable[Path | str]) -> list[Path]:
        """Each path once, in order, as the session keys it (absolute): a folder scan's thread
        does this, so that the GUI thread only asks `not_loaded` (20,000 files: 30 ms vs 3)."""
        return list(dict.fromkeys(map(cls._key, paths)))

    def not_loaded(self, keys: Iterable[Path]) -> list[Path]:
        """Of paths already keyed (`keys`), those not in the session."""
        index = self._index
        return [path for path in keys if path not in index]

    def add_paths(self, paths: Iterable[Path | str]) -> list[Path]:
        """Append files not already present; returns the ones added (duplicates are skipped)."""
        added = []
        for raw in paths:
            path = self._key(raw)
            if path in self._index:
                continue
            self._index[path] = len(self.items)
            self.items.append(ImageItem(path))
            added.append(path)
        if added:
            self._emit("added", len(self.items) - len(added), len(self.items) - 1)
        return added

    def add_errors(self, errors: dict[Path, str]) -> None:
        """Paths that could not even be listed (missing files) still show, with their message."""
        new = self.add_paths(errors)
        for path in new:
            self.set_error(path, errors.get(path) or errors.get(Path(path)) or "unreadable")

    def remove_rows(self, rows: Iterable[int]) -> None:
        drop = set(rows)
        if not drop:
            return
        self._emit("about_to_reset")
        self.items = [item for i, item in enumerate(self.items) if i not in drop]
        self._reindex()
        self._emit("reset")

    def snapshot(self, rows: Iterable[int]) -> list[tuple[int, ImageItem]]:
        """(row, item) pairs to put back later with `restore` (undo of a removal)."""
        return [(row, self.items[row]) for row in sorted(set(rows)) if 0 <= row < len(self.items)]

    def restore(self, snapshot: Sequence[tuple[int, ImageItem]]) -> None:
        """Put removed items back where they were, with their embeddings and scores."""
        fresh = [(row, item) for row, item in snapshot if item.path not in self._index]
        if not fresh:
            return
        self._emit("about_to_reset")
        for row, item in fresh:  # ascending rows: each lands at its old place
            self.items.insert(min(row, len(self.items)), item)
        self._reindex()
        self._emit("reset")

    def remove_paths(self, paths: Iterable[Path | str]) -> None:
        self.remove_rows(row for row in map(self.row_of, paths) if row is not None)

    def clear(self) -> None:
        self._emit("about_to_reset")
        self.items, self._index = [], {}
        self._emit("reset")

    def _reindex(self) -> None:
        self._index = {item.path: i for i, item in enumerate(self.items)}

    def replace_paths(self, moves: Iterable[tuple[Path, Path]]) -> None:
        """Files moved on disk (sort into folders, or its undo): keep their results under the new path."""
        changed = []
        for old, new in moves:
            row = self.row_of(old)
            if row is None or self.row_of(new) is not None:
                continue
            self.items[row].path = self._key(new)
            changed.append(row)
        self._reindex()
        if changed:
            self._emit("changed", changed)

    def reset_embeddings(self) -> None:
        """Another model was loaded: every image must be embedded again (with the new model)."""
        self._features = self._quarters = None
        for item in self.items:  # quarters belong to the old model too
            item.status, item.error, item.vector, item.probs, item.similarity = "pending", "", None, None, None
            item.quarters = None
        self.score_labels = []
        self.search_query = ""
        self._emit("scores")

    def pending_paths(self, skip: set[Path] | frozenset = frozenset(), limit: int | None = None) -> list[Path]:
        """Paths waiting to be embedded, in order, leaving out `skip` (in flight), at most `limit`."""
        items, paths = self.items, []
        for row in np.flatnonzero(self.decision_arrays().pending):
            path = items[row].path
            if path not in skip:
                paths.append(path)
                if limit is not None and len(paths) >= limit:
                    break
        return paths

    def pending_count(self) -> int:
        return int(self.decision_arrays().pending.sum())

    def unscored_embedded(self) -> bool:
        """Some image has an embedding but no scores (labels added, or scores cleared)."""
        arrays = self.decision_arrays()
        return bool((arrays.embedded & ~arrays.scored).any())

    def region_pending(self) -> list[tuple[Path, np.ndarray]]:
        """(path, vector) of embedded images still without quarter crops while multi-label is on
        and labels are set: the work its scores wait for (turned off, quarters are kept)."""
        if not self.multi_label or not self.labels:
            return []
        return [(item.path, item.vector) for item in self.items
                if item.vector is not None and item.quarters is None]

    def set_error(self, path: Path, message: str) -> None:
        row = self.row_of(path)
        if row is not None:
            item = self.items[row]
            item.status, item.error, item.vector, item.probs = "error", message, None, None
            item.quarters = None
            self._emit("changed", [row])

    def set_embeddings(self, batch: Iterable[tuple[Path, np.ndarray | None, str]],
                       probs: np.ndarray | None = None, score_labels: Sequence[str] = (),
                       quarters: np.ndarray | None = None) -> None:
        """One embedding batch from the worker; `probs` and `quarters` (rows aligned with the good
        ones) optional. Quarters are kept whenever given, even if the scores came too late."""
        changed, k = [], 0
        self._features = self._quarters = None
        for path, vector, error in batch:
            row = self.row_of(path)
            if vector is None:
                if row is not None:
                    item = self.items[row]
                    item.status, item.error = "error", error or "could not be read"
                    changed.append(row)
                continue
            if row is not None:
                item = self.items[row]
                item.status, item.error, item.vector = "done", "", np.asarray(vector, np.float32)
                if quarters is not None:
                    item.quarters = quarters[k]
                if probs is not None and list(score_labels) == self.score_labels:
                    item.probs = probs[k]
                changed.append(row)
            k += 1
        if changed:
            self._emit("changed", changed)

    def features(self) -> tuple[list[Path], np.ndarray]:
        """Paths and stacked embeddings of every image encoded so far (for scoring and search).

        Cached until images are added, removed or (re-)embedded: a search at 20,000 images does
        not stack 20,000 vectors again.
        """
        if self._features is None:
            done = [item for item in self.items if item.vector is not None]
            if not done:
                self._features = ([], np.zeros((0, 0), np.float32))
            else:
                self._features = ([item.path for item in done], np.stack([item.vector for item in done]))
        return self._features

    def feature_quarters(self) -> list[np.ndarray | None]:
        """Each `features()` row's quarter crops (None where not computed yet): a list of
        references, cheap on the GUI thread; `stack_quarters` builds the array in the worker."""
        if self._quarters is None:
            self._quarters = [item.quarters for item in self.items if item.vector is not None]
        return self._quarters

    def set_scores(self, paths: Sequence[Path], probs: np.ndarray, labels: Sequence[str],
                   merge: bool = False) -> None:
        """Replace all scores (a re-score after a label edit): rows of `probs` follow `paths`.

        With `merge` (the caller knows they were computed like the stored ones, e.g. the rows a
        running classification had not scored yet) only the given rows change.
        """
        merge = merge and list(labels) == self.score_labels
        self.score_labels = list(labels)
        if not merge:
            for item in self.items:
                item.probs = None
        probs = np.asarray(probs, np.float32)
        for path, row in zip(paths, probs):  # 20,000 rows: dict lookups and views, no copies
            index = self._index.get(path)
            if index is None:
                index = self.row_of(path)
            if index is not None:
                self.items[index].probs = row
        self._emit("scores")

    def clear_scores(self) -> None:
        self.score_labels = []
        for item in self.items:
            item.probs = None
        self._emit("scores")

    def set_similarity(self, paths: Sequence[Path] | None, values: Sequence[float] = (),
                       query: str = "") -> None:
        """A search result (cosine per path), or None to end the search."""
        for item in self.items:
            item.similarity = None
        self.search_query = query if paths is not None else ""
        for path, value in zip(paths or (), values):
            row = self._index.get(path)
            if row is None:
                row = self.row_of(path)
            if row is not None:
                self.items[row].similarity = float(value)
        self._emit("scores")

    def decision(self, row: int) -> Decision | None:
        item = self.items[row]
        if item.probs is None or not self.score_labels:
            return None
        return decide(item.probs, self.score_labels, self.threshold, self.margin, self.multi_label)

    def ranked_scores(self, row: int) -> list[tuple[str, float]]:
        """(label, score) best first, for the selected image's bars."""
        item = self.items[row]
        if item.probs is None:
            return []
        order = np.argsort(-item.probs, kind="stable")
        return [(self.score_labels[j], float(item.probs[j])) for j in order]

    def decision_arrays(self) -> DecisionArrays:
        """`decide` for every row at once (numpy), cached until the next event: filters and
        sorting at 20,000 images cost milliseconds, not one Python call per row."""
        if self._arrays is None:
            self._arrays = self._decisions(self.items)
        return self._arrays

    def label_mask(self, label: str) -> np.ndarray:
        """Per row: was the image given `label` (or is it unsure, for "unsure")?"""
        arrays = self.decision_arrays()
        if label == UNSURE:
            return arrays.scored & arrays.unsure
        names = [name.casefold() for name in self.score_labels]
        if label.casefold() not in names:
            return np.zeros(len(self.items), bool)
        return arrays.scored & arrays.present[:, names.index(label.casefold())]

    def similarity_array(self) -> np.ndarray:
        """Per row: the last search's cosine, NaN where there is none."""
        return np.array([np.nan if item.similarity is None else item.similarity for item in self.items],
                        np.float64)

    def predicted_labels(self) -> list[str]:
        """Every label some image was given (in label order, then "unsure"), for the filter."""
        arrays = self.decision_arrays()
        given = (arrays.present & arrays.scored[:, None]).any(axis=0)
        labels = [name for name, used in zip(self.score_labels, given) if used]
        return labels + ([UNSURE] if (arrays.scored & arrays.unsure).any() else [])

    def counts(self) -> dict[str, int]:
        return {status: sum(item.status == status for item in self.items)
                for status in ("pending", "done", "error")}

    def set_options(self, **options) -> None:
        """templates, threshold, margin, multi_label."""
        for key, value in options.items():
            if not hasattr(self, key) or key not in ("templates", "threshold", "margin", "multi_label"):
                raise AttributeError(key)
            setattr(self, key, value)
        self._emit("options", set(options))


# -- the image list, kept between runs (paths only, never pixels) -------------------------------
def save_image_list(file: Path, paths: Sequence[Path]) -> None:
    """Write the loaded paths atomically (a crash never leaves half a list)."""
    # A name that is not UTF-8 becomes {"path", "path_bytes_b64"}: strict JSON, exact bytes.
    write_json_atomic(file, {"version": 1, "images": [path_record(p) for p in paths]})


def load_image_list(file: Path) -> list[Path]:
    """The saved paths that still exist; an unreadable or foreign file gives an empty list."""
    try:
        data = read_json_or_none(file, 256 << 20)  # a FIFO or /dev/zero in its place: an empty list
        names = data["images"] if isinstance(data, dict) else []
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [Path(name) for name in map(path_from_record, names) if name and Path(name).is_file()]


# -- the jobs the app runs on the engine (in its worker thread) ---------------------------------
@dataclass
class ScoredBatch:
    """One embedding batch, with scores when labels were set (rows follow the good files), and
    in multi-label mode the quarter crops' embeddings (good files × 4 × dim)."""

    items: list[tuple[Path, np.ndarray | None, str]]
    probs: np.ndarray | None
    labels: list[str]
    quarters: np.ndarray | None = None
    signature: tuple = ()  # (labels as typed, templates, multi_label) the scores were made with


class LabelBox:
    """The labels a running classification scores with, replaced from the GUI thread between
    its batches: a label typed mid-run costs one text encoding in the next batch, the run goes
    on (issue 21). One tuple swapped at once, so a reader never sees half an edit."""

    def __init__(self, labels: Sequence[str], templates: str) -> None:
        self.value: tuple[tuple[str, ...], str] = (tuple(labels), templates)

    def set(self, labels: Sequence[str], templates: str) -> None:
        self.value = (tuple(labels), templates)


def stack_quarters(features: np.ndarray, quarters: Sequence[np.ndarray | None]) -> np.ndarray:
    """(N, 4, dim) for scoring: an image without quarter crops repeats its whole-image vector,
    which makes its global–local score exactly the whole-image one."""
    out = np.repeat(np.asarray(features, np.float32)[:, None, :], 4, axis=1)
    for i, rows in enumerate(quarters):
        if rows is not None:
            out[i] = rows
    return out


def classify_job(engine, paths: Sequence[Path], labels: Sequence[str] | LabelBox, templates: str,
                 multi_label: bool, batch_size: int = 32, cancel=None):
    """Embed `paths` and score each batch as it arrives; Progress.payload is a ScoredBatch.

    Given a `LabelBox`, each batch is scored with the labels (and templates) it holds then, and
    says which in its `signature`. In multi-label mode each batch's good files also get their
    quarter crops embedded (cached like whole images), so a new image costs five embeddings once
    and is scored global–local.
    """
    box = labels if isinstance(labels, LabelBox) else LabelBox(labels, templates)
    used, label_set = box.value, _label_set(engine, box.value)
    job = engine.embed_job(list(paths), batch_size=batch_size, cancel=cancel)
    while True:
        try:
            progress = next(job)
        except StopIteration as stop:
            return stop.value
        batch = progress.payload
        if batch:
            if box.value != used:  # labels edited since the last batch
                used, label_set = box.value, _label_set(engine, box.value)
            good = [(path, vector) for path, vector, _ in batch if vector is not None]
            probs, quarters = _score_batch(engine, good, label_set, used[1], multi_label, batch_size, cancel)
            names = label_set.names if label_set is not None else []
            progress = Progress(progress.done, progress.total, "Classifying", progress.unit, progress.started,
                                ScoredBatch(batch, probs, names, quarters, (*used, multi_label)))
        yield progress


def _label_set(engine, value: tuple[tuple[str, ...], str]):
    labels, templates = value
    return engine.label_set(list(labels), templates) if labels else None


def regions_job(engine, paths: Sequence[Path], vectors: Sequence[np.ndarray], labels: Sequence[str],
                templates: str, batch_size: int = 32, cancel=None):
    """Multi-label turned on over images already embedded: embed only their quarter crops (the
    whole-image vectors are given) and re-score them; payloads are ScoredBatches.

    One quarters job for the whole chunk, so decoding runs ahead across batches. Its encoder
    batches hold batch_size crops (a quarter of the files, and Cancel lands within one); results
    go to the window every batch_size files, like classification's, not four times as often.
    """
    label_set = engine.label_set(list(labels), templates) if labels else None
    paths = list(paths)
    features = np.stack([np.asarray(v, np.float32) for v in vectors]) if paths else np.zeros((0, 0), np.float32)
    rows = {path: i for i, path in enumerate(paths)}
    job = engine.quarters_job(paths, fallback=features, batch_size=batch_size, cancel=cancel)
    landed: list[tuple[int, np.ndarray | None]] = []
    done = 0
    while True:
        try:
            progress = next(job)
        except StopIteration:
            progress = None
        if progress is not None:
            landed += [(rows[path], q) for path, q, _ in progress.payload or ()]
        if landed and (progress is None or len(landed) >= batch_size):
            done += len(landed)
            yield _regions_batch(engine, paths, features, landed, label_set, templates, done)
            landed = []
        if progress is None:
            return len(paths)


def _regions_batch(engine, paths, features, landed, label_set, templates, done: int):
    """Progress carrying the ScoredBatch of `landed` (row, quarters or None when cropping failed:
    the whole vector four times, i.e. whole-image scoring)."""
    index = [i for i, _ in landed]
    quarters = np.stack([np.asarray(q, np.float32).reshape(4, -1) if q is not None
                         else np.repeat(features[i][None], 4, axis=0) for i, q in landed])
    probs, names = None, []
    if label_set is not None:
        probs = engine.score(features[index], label_set, True, templates, quarters=quarters).probs
        names = label_set.names
    batch = [(paths[i], features[i], "") for i in index]
    return Progress(done, len(paths), "Scoring regions for multi-label", "img",
                    payload=ScoredBatch(batch, probs, names, quarters))


def _score_batch(engine, good: list[tuple[Path, np.ndarray]], label_set, templates: str,
                 multi_label: bool, batch_size: int, cancel) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Scores of one batch's good files, and in multi-label mode their quarter crops' embeddings."""
    if label_set is None or not good:
        return None, None
    features = np.stack([vector for _, vector in good])
    quarters = None
    if multi_label:
        quarters = run_job(engine.quarters_job([path for path, _ in good], fallback=features,
                                               batch_size=batch_size, cancel=cancel))
        quarters = np.asarray(quarters, np.float32)
    return engine.score(features, label_set, multi_label, templates, quarters=quarters).probs, quarters


@dataclass
class Rescored:
    paths: list[Path]
    probs: np.ndarray
    labels: list[str]
    notes: list[str]


def rescore(engine, paths: Sequence[Path], features: np.ndarray, labels: Sequence[str],
            templates: str, multi_label: bool,
            quarters: Sequence[np.ndarray | None] | None = None) -> Rescored:
    """Scores for already-embedded images: only new label texts go through the text encoder.

    In multi-label mode `quarters` (per row, None where not computed yet) give global–local
    scores; a row without them is scored on its whole image alone.
    """
    label_set = engine.label_set(list(labels), templates)
    if len(features):
        stacked = stack_quarters(features, quarters) if multi_label and quarters is not None else None
        probs = engine.score(features, label_set, multi_label, templates, quarters=stacked).probs
    else:
        probs = np.zeros((0, len(label_set.labels)), np.float32)
    return Rescored(list(paths), probs, label_set.names, label_set.notes)
