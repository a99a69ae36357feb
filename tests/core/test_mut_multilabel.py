"""Multi-label scoring checked against numbers worked out by hand from the documented rule

    local = max over quarters of cos − 0.05
    c     = 0.2 · cos(whole) + 0.8 · max(cos(whole), local)
    score = exp(scale · (c − max over labels of c))

with the constants written here, not imported, so a changed margin or weight fails
(docs/mutation.md). Unit vectors along axes make every cosine an exact, readable number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from clipdesk.core import multilabel
from clipdesk.core.multilabel import global_local_scores, quarter_crops, relative_scores

LABELS = ["red", "green", "blue"]
WEIGHTS = np.eye(3, dtype=np.float32)  # label j is axis j: cos(v, label j) = v[j]


def image(whole, quarters):
    return np.asarray([whole], np.float32), np.asarray([quarters], np.float32)


def test_a_quarter_counts_only_where_it_beats_the_whole_by_the_margin():
    # whole: red 0.5, green 0.3, blue 0.1; the best quarter for each: red 0.4, green 0.6, blue 0.145
    features, quarters = image([0.5, 0.3, 0.1], [[0.4, 0.2, 0.0], [0.1, 0.6, 0.0],
                                                 [0.0, 0.0, 0.145], [0.0, 0.0, 0.0]])
    scores = global_local_scores(features, quarters, WEIGHTS, 10.0, LABELS)
    # red: local 0.35 < 0.5 → c = 0.2·0.5 + 0.8·0.5 = 0.5
    # green: local 0.55 > 0.3 → c = 0.2·0.3 + 0.8·0.55 = 0.5
    # blue: local 0.095 < 0.1 (a quarter 0.045 better is not enough) → c = 0.1
    expected = [1.0, 1.0, math.exp(10.0 * (0.1 - 0.5))]
    np.testing.assert_allclose(scores.probs[0], expected, rtol=1e-5)
    np.testing.assert_allclose(scores.cosines[0], [0.5, 0.3, 0.1], rtol=1e-6)  # true cosines kept
    assert scores.probs.dtype == np.float32 and scores.multi_label and scores.labels == LABELS


def test_the_whole_picture_keeps_a_fifth_of_the_weight():
    features, quarters = image([0.2, 0.0, 0.0], [[0.0, 0.85, 0.0]] * 4)
    scores = global_local_scores(features, quarters, WEIGHTS, 1.0, LABELS)
    # red c = 0.2; green c = 0.2·0 + 0.8·0.8 = 0.64; blue c = 0
    np.testing.assert_allclose(scores.probs[0], [math.exp(0.2 - 0.64), 1.0, math.exp(-0.64)], rtol=1e-5)


def test_the_present_threshold_is_twenty_times_less_likely_than_the_best():
    assert multilabel.DEFAULT_THRESHOLD == 0.05
    # scale 100, cosines 0.03 apart: exp(−3) ≈ 0.0498 is just absent; 0.0299 apart is just present.
    features = np.asarray([[0.5, 0.47, 0.4701]], np.float32)
    probs = relative_scores(features, WEIGHTS, 100.0, LABELS).probs[0]
    assert [bool(p >= multilabel.DEFAULT_THRESHOLD) for p in probs] == [True, False, True]


def test_relative_scores_put_the_best_label_at_one_per_image():
    features = np.asarray([[0.1, 0.4, 0.2], [0.3, 0.3, 0.9]], np.float32)
    scores = relative_scores(features, WEIGHTS, 2.0, LABELS)
    np.testing.assert_allclose(scores.probs, [[math.exp(-0.6), 1.0, math.exp(-0.4)],
                                              [math.exp(-1.2), math.exp(-1.2), 1.0]], rtol=1e-5)
    np.testing.assert_allclose(scores.cosines, features, rtol=1e-6)
    assert scores.multi_label and scores.probs.dtype == np.float32 and scores.labels == LABELS


@pytest.mark.parametrize("quarters", [None, np.zeros((0, 4, 3), np.float32)])
def test_no_images_give_empty_scores_not_an_error(quarters):
    scores = global_local_scores(np.zeros((0, 3), np.float32), quarters, WEIGHTS, 10.0, LABELS)
    assert scores.probs.shape == (0, 3) and scores.probs.dtype == np.float32
    assert scores.cosines.shape == (0, 3) and scores.multi_label and scores.labels == LABELS


def test_quarters_of_an_odd_sized_picture_leave_out_the_middle_row_and_column():
    pixels = np.arange(5 * 3, dtype=np.uint8).reshape(3, 5)
    crops = [np.asarray(c) for c in quarter_crops(Image.fromarray(pixels, "L"))]
    np.testing.assert_array_equal(crops[0], [[0, 1]])
    np.testing.assert_array_equal(crops[1], [[3, 4]])
    np.testing.assert_array_equal(crops[2], [[10, 11]])
    np.testing.assert_array_equal(crops[3], [[13, 14]])
    tall = [c.size for c in quarter_crops(Image.new("L", (1, 4)))]
    assert tall == [(1, 2)] * 4


def test_a_single_label_is_always_the_best_one():
    features, quarters = image([0.3], [[0.9], [0.0], [0.0], [0.0]])
    weights = np.ones((1, 1), np.float32)
    for scores in (global_local_scores(features, quarters, weights, 10.0, ["cat"]),
                   relative_scores(features, weights, 10.0, ["cat"])):
        np.testing.assert_array_equal(scores.probs, [[1.0]])
        np.testing.assert_allclose(scores.cosines, [[0.3]], rtol=1e-6)
