"""Scores from embeddings: CLIP's softmax over labels of logit_scale × cosine similarity.

Pure numpy on already-normalised vectors, so re-scoring hundreds of images after a label edit
is a single matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scores:
    """Per image (rows) and label (columns): probabilities and the raw cosines behind them."""

    labels: list[str]
    probs: np.ndarray
    cosines: np.ndarray
    multi_label: bool = False

    def top(self, row: int, k: int | None = None) -> list[tuple[str, float]]:
        """Best labels first; a NaN score never ranks above a real one."""
        _check_top_k(k)
        keys = np.nan_to_num(-np.asarray(self.probs[row], np.float64), nan=np.inf)
        order = np.argsort(keys, kind="stable")[: k or len(self.labels)]
        return [(self.labels[j], float(self.probs[row, j])) for j in order]

    def valid_rows(self) -> np.ndarray:
        """Rows whose every score is a finite number (a damaged model or head gives NaN)."""
        if self.probs.size == 0:
            return np.ones(len(self.probs), bool)
        return np.isfinite(self.probs).all(axis=1) & np.isfinite(self.cosines).all(axis=1)

    def as_dict(self, row: int) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, self.probs[row])}


def softmax_scores(features: np.ndarray, label_weights: np.ndarray, logit_scale: float,
                   labels: list[str]) -> Scores:
    """Probabilities that sum to one across labels (the image holds exactly one of them)."""
    cosines = features @ label_weights.T
    return Scores(labels, softmax(logit_scale * cosines), cosines)


def softmax(logits: np.ndarray) -> np.ndarray:
    if logits.shape[-1] == 0:
        return logits
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def rank(query: np.ndarray, features: np.ndarray, top_k: int | None = None) -> list[tuple[int, float]]:
    """Indices of `features` by cosine to `query` (both normalised), best first."""
    if len(features) == 0:
        return []
    cosines = features @ query.reshape(-1)
    _check_top_k(top_k)
    order = np.argsort(-cosines, kind="stable")[: top_k or len(cosines)]
    return [(int(i), float(cosines[i])) for i in order]


def _check_top_k(k: object) -> None:
    """A slice bound would take -1 as "all but the last" and 0 as "all": refuse, in one sentence."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"top_k must be a whole number of at least 1 (or None for all), not {k!r}.")
