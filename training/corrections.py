"""Fine-tune on my corrections: the few images a user labelled by hand re-fit the quick head in
well under a second, with no folder and no epochs.

The head is the quick method's Tip-Adapter (`clipdesk.core.heads.TipAdapterHead`, built as
`training.probe.tip_family` builds it): the zero-shot text classifier plus a cache of the
corrected images' embeddings, each voting for its corrected label. Classes nobody corrected keep
their zero-shot scores (a linear probe fitted on three images would forget them), and an image
far from every corrected one keeps its zero-shot answer. Of the Tip-Adapter grid, the gentlest
head that gives every corrected image its corrected label is kept: the sharpest cache (largest β:
it reaches the fewest other images) and then the smallest weight α.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipdesk.core.errors import ClipdeskError
from clipdesk.core.heads import TipAdapterHead

from .probe import TIP_ALPHA, TIP_BETA

# The quick grid, then heavier weights: a confident zero-shot mistake needs more than α = 10
# to be overruled on the image itself (logit gaps reach ≈ scale · 0.1 = 10 at CLIP's scale 100).
ALPHAS = tuple(sorted({*TIP_ALPHA, 30.0, 100.0, 300.0}))
BETAS = tuple(sorted({*TIP_BETA, 50.0}, reverse=True))


class CorrectionsError(ClipdeskError):
    """Corrections that cannot fit a head (one sentence for the user)."""


@dataclass
class CorrectionsFit:
    head: TipAdapterHead
    matched: int  # corrected images the head gives their corrected label
    total: int


def fit_corrections(features: np.ndarray, labels: Sequence[str], classes: Sequence[str],
                    zero_shot: np.ndarray, scale: float) -> CorrectionsFit:
    """A head over `classes` that gives each corrected image (a row of `features`, normalised)
    its label in `labels`; `zero_shot` [C, D] is the text classifier the scores use now."""
    classes = list(classes)
    if len(features) == 0:
        raise CorrectionsError("There are no corrections yet: right-click an image › Set label first.")
    unknown = sorted({label for label in labels if label not in classes})
    if unknown:
        raise CorrectionsError(f"Corrected to labels that are not in the list any more: {', '.join(unknown)}.")
    x = np.ascontiguousarray(features, np.float32)
    y = np.array([classes.index(label) for label in labels], np.int64)
    values = np.eye(len(classes), dtype=np.float32)[y]  # what tip_family caches: one-hot labels
    best = None
    for beta in BETAS:
        for alpha in ALPHAS:
            head = TipAdapterHead(classes, zero_shot, x, values, alpha, beta, scale)
            matched = int((head.predict(x) == y).sum())
            if best is None or matched > best.matched:
                best = CorrectionsFit(head, matched, len(y))
            if matched == len(y):
                return best
    return best
