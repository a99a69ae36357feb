"""Fine-tune on my corrections (training/corrections.py): after a few corrections the re-fitted
head gives those images the corrected labels, and leaves images far from them alone. Logits are
recomputed here from the Tip-Adapter formula, not read from the head."""

from __future__ import annotations

import numpy as np
import pytest

from clipdesk.core.errors import ClipdeskError
from training.corrections import ALPHAS, fit_corrections


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _world(seed: int = 0, n: int = 60, d: int = 32, c: int = 4):
    rng = np.random.default_rng(seed)
    text = _unit(rng.normal(size=(c, d)))
    truth = rng.integers(0, c, n)
    images = _unit(text[truth] * 0.6 + rng.normal(size=(n, d)) * 0.25)
    return images, text, [f"class {i}" for i in range(c)]


def _tip_logits(f, zero_shot, keys, labels, alpha, beta, scale):
    """Tip-Adapter (Zhang et al., 2022) written out: scale·f·W₀ᵀ + α·exp(−β(1 − f·Kᵀ))·V."""
    values = np.zeros((len(keys), len(zero_shot)))
    values[np.arange(len(keys)), labels] = 1.0
    f, zero_shot, keys = (np.asarray(a, np.float64) for a in (f, zero_shot, keys))
    return scale * f @ zero_shot.T + alpha * np.exp(-beta * (1.0 - f @ keys.T)) @ values


def test_corrected_images_get_their_labels_and_far_ones_keep_theirs():
    images, text, classes = _world()
    scale = 100.0
    zero = (images.astype(np.float64) @ text.T.astype(np.float64)).argmax(1)
    # correct four images to a label zero-shot did not give them
    picked = [3, 17, 29, 44]
    wanted = [(zero[i] + 1 + k % 3) % len(classes) for k, i in enumerate(picked)]
    fit = fit_corrections(images[picked], [classes[w] for w in wanted], classes, text, scale)
    assert fit.matched == fit.total == 4
    head = fit.head
    logits = _tip_logits(images, text, images[picked], wanted, head.alpha, head.beta, scale)
    assert logits[picked].argmax(1).tolist() == wanted  # the corrections hold
    np.testing.assert_allclose(head.logits(images), logits, rtol=1e-4, atol=1e-3)
    # images not near any corrected one (cosine < 0.8 to all of them) keep the zero-shot label
    far = [i for i in range(len(images)) if i not in picked
           and (images[i] @ images[picked].T).max() < 0.8]
    assert len(far) > 30
    assert (logits[far].argmax(1) == zero[far]).mean() >= 0.9
    # the gentlest head that fits: the next smaller weight in the grid would miss a correction
    smaller = [a for a in ALPHAS if a < head.alpha]
    if smaller:
        weaker = _tip_logits(images[picked], text, images[picked], wanted, smaller[-1], head.beta, scale)
        assert weaker.argmax(1).tolist() != wanted


def test_bad_corrections_are_one_sentence():
    images, text, classes = _world()
    with pytest.raises(ClipdeskError, match="no corrections"):
        fit_corrections(images[:0], [], classes, text, 100.0)
    with pytest.raises(ClipdeskError, match="not in the list"):
        fit_corrections(images[:1], ["zebra"], classes, text, 100.0)
