"""One image's result row — label, score, every label's score and cosine, the labels present, or
an error — built one way for the CLI, the Python API, the window's export and Ray's shards.

They used to be built four times and drifted apart: the CLI turned a NaN score (damaged weights
or few-shot head) into an error entry, while the API answered `label='red circle', score=nan`.
A row whose scores are not all finite is an error here, for every caller, so no label is ever
drawn from NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .classify import Scores
from .multilabel import present_labels


def no_valid_score(where: object) -> str:
    """The error sentence of a row the model gave NaN for (`where` names the image)."""
    return f"{where}: the model gave no valid score (NaN)."


@dataclass(frozen=True)
class ResultRow:
    """What one image came to. With `error` set, every other field is empty."""

    label: str | None = None
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)  # every label, in label order
    cosines: dict[str, float] = field(default_factory=dict)  # empty where they are not kept
    top: list[tuple[str, float]] = field(default_factory=list)  # best first, at most top_k
    labels: list[str] | None = None  # multi-label: the labels present, best first
    error: str | None = None

    def as_dict(self, path: str, digits: int | None = 6) -> dict[str, Any]:
        """The CLI's row: path and error, or path, label, score, [labels], scores, cosines, top."""
        if self.error is not None:
            return {"path": path, "error": self.error}

        def num(value: float) -> float:
            return round(value, digits) if digits is not None else value

        row: dict[str, Any] = {"path": path, "label": self.label, "score": num(self.score)}
        if self.labels is not None:
            row["labels"] = list(self.labels)
        row["scores"] = {name: num(p) for name, p in self.scores.items()}
        row["cosines"] = {name: num(c) for name, c in self.cosines.items()}
        row["top"] = [[name, num(p)] for name, p in self.top]
        return row


def failed_row(message: str) -> ResultRow:
    return ResultRow(error=message)


def score_row(labels: Sequence[str], probs: np.ndarray, cosines: np.ndarray | None = None, *,
              where: object, multi_label: bool = False, top_k: int | None = None,
              threshold: float | None = None) -> ResultRow:
    """One image's row from its scores over `labels` (and cosines, where kept).

    Any non-finite score or cosine makes the row an error naming `where`. `threshold` is the
    multi-label presence cut (core/multilabel.py `present_cut`); it is ignored otherwise.
    """
    probs = np.asarray(probs, np.float64).reshape(-1)
    cos = None if cosines is None else np.asarray(cosines, np.float64).reshape(-1)
    scores = Scores(list(labels), probs[None, :], (cos if cos is not None else probs)[None, :], multi_label)
    top = scores.top(0, top_k)  # checks top_k before anything else can go wrong
    if not scores.valid_rows()[0]:
        return failed_row(no_valid_score(where))
    if not len(probs):
        return failed_row(f"{where}: no labels to score against.")
    label, score = top[0]
    return ResultRow(
        label=label, score=score, scores=scores.as_dict(0),
        cosines={} if cos is None else {name: float(c) for name, c in zip(labels, cos)},
        top=top, labels=present_labels(labels, probs, threshold) if multi_label else None)


def row_of(scores: Scores, row: int, *, where: object, top_k: int | None = None,
           threshold: float | None = None) -> ResultRow:
    """`score_row` for row `row` of a Scores matrix."""
    return score_row(scores.labels, scores.probs[row], scores.cosines[row], where=where,
                     multi_label=scores.multi_label, top_k=top_k, threshold=threshold)


def rows_in_input_order(files: Sequence[Any], missing: Mapping[Any, str], embedded: Any, scores: Scores,
                        top_k: int | None = None, threshold: float | None = None) -> list[tuple[Any, ResultRow]]:
    """(path, row) per input: files that could not be listed first (`missing`), then `files` in
    order; a file the embedder failed on (`embedded.errors`) is an error row, the rest are scored
    from the Scores row matching their place in `embedded.paths`."""
    index = {path: row for row, path in enumerate(embedded.paths)}
    out = [(path, failed_row(message)) for path, message in missing.items()]
    for path in files:
        if path in embedded.errors:
            out.append((path, failed_row(embedded.errors[path])))
        else:
            out.append((path, row_of(scores, index[path], where=path, top_k=top_k, threshold=threshold)))
    return out
