"""The session's vectorised decisions equal `decide` row by row (filters and sorting use them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipdesk.core.session import UNSURE, Session


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize(("threshold", "margin"), [(0, 0), (0.4, 0), (0, 0.2), (0.3, 0.1)])
def test_decision_arrays_equal_decide(multi, threshold, margin):
    rng = np.random.default_rng(0)
    session = Session()
    session.add_paths([Path(f"/x/{i}.png") for i in range(120)])
    session.score_labels = ["a", "b", "c"]
    for i, item in enumerate(session.items):
        if i % 7:
            item.probs = (rng.random(3) if multi else rng.dirichlet([1, 1, 1])).astype(np.float32)
    session.set_options(threshold=threshold, margin=margin, multi_label=multi)
    arrays = session.decision_arrays()
    for row in range(len(session)):
        decision = session.decision(row)
        if decision is None:
            assert not arrays.scored[row]
            continue
        assert arrays.scored[row] and arrays.unsure[row] == decision.unsure
        assert session.score_labels[arrays.top[row]] == decision.top_label
        assert arrays.top_score[row] == pytest.approx(decision.score)
        present = [session.score_labels[j] for j in np.flatnonzero(arrays.present[row])]
        assert present == sorted(decision.labels, key=session.score_labels.index)
    for label in ["a", "b", "c", UNSURE]:
        expected = []
        for row in range(len(session)):
            decision = session.decision(row)
            expected.append(decision is not None and (decision.unsure if label == UNSURE else label in decision.labels))
        assert session.label_mask(label).tolist() == expected


def test_features_cache_follows_embeddings():
    session = Session()
    session.add_paths([Path("/x/a.png"), Path("/x/b.png")])
    assert session.features()[0] == []
    session.set_embeddings([(Path("/x/a.png"), np.ones(4, np.float32), "")])
    paths, features = session.features()
    assert paths == [Path("/x/a.png")] and features.shape == (1, 4)
    session.set_embeddings([(Path("/x/b.png"), np.zeros(4, np.float32), "")])
    assert len(session.features()[0]) == 2
    session.remove_rows([0])
    assert session.features()[0] == [Path("/x/b.png").absolute()]
