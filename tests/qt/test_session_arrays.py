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


def _naive(session: Session) -> tuple[list[bool], list[int], list[float]]:
    """Scored, top label and top score per row, worked out here one row at a time."""
    scored, top, score = [], [], []
    for item in session.items:
        ok = item.probs is not None and len(item.probs) == len(session.score_labels)
        scored.append(ok)
        top.append(int(np.argmax(item.probs)) if ok else -1)
        score.append(float(np.max(item.probs)) if ok else 0.0)
    return scored, top, score


def test_decisions_follow_batches_and_added_rows_without_a_full_pass(monkeypatch):
    """Issue 21: between two batches only the batch's rows are worked out again (the window
    asks after every batch; a pass over 20,000 rows is ~11 ms of Python), and the cached
    decisions still equal a row-by-row computation after every batch and every added slice."""
    import clipdesk.core.session as session_module

    rng = np.random.default_rng(3)
    session = Session()
    session.add_paths([Path(f"/x/{i}.png") for i in range(50)])
    session.set_scores([], np.zeros((0, 3)), ["a", "b", "c"])
    assert session.decision_arrays().scored.tolist() == [False] * 50
    sizes = []
    real = session_module.decision_arrays

    def counting(items, *args, **kwargs):
        sizes.append(len(items))
        return real(items, *args, **kwargs)

    monkeypatch.setattr(session_module, "decision_arrays", counting)
    for start in range(0, 80, 16):
        if start == 48:  # rows arrive while earlier ones are being classified
            session.add_paths([Path(f"/x/{i}.png") for i in range(50, 80)])
            session.decision_arrays()
        batch = [(session.items[r].path, rng.random(4).astype(np.float32), "") for r in range(start, start + 16)]
        session.set_embeddings(batch, rng.dirichlet([1, 1, 1], 16).astype(np.float32), ["a", "b", "c"])
        arrays = session.decision_arrays()
        scored, top, score = _naive(session)
        assert arrays.scored.tolist() == scored
        assert [t if ok else -1 for t, ok in zip(arrays.top.tolist(), scored)] == top
        np.testing.assert_allclose([s if ok else 0.0 for s, ok in zip(arrays.top_score, scored)], score, rtol=1e-6)
    assert sizes and max(sizes) <= 30, sizes  # a batch (16) or an added slice (30), never all 80 rows
    session.set_options(threshold=0.5)  # an option changes every row: a full pass again
    assert session.decision_arrays().unsure.tolist() == [s < 0.5 for s in _naive(session)[2]]
    assert sizes[-1] == 80


def test_keys_then_not_loaded_skip_duplicates_and_loaded_files(tmp_path, monkeypatch):
    """The scan's thread keys a drop once (absolute, each file once); the GUI thread only drops
    what is loaded already, and the result is what add_paths would add."""
    monkeypatch.chdir(tmp_path)
    session = Session()
    session.add_paths([tmp_path / "a.png"])
    keys = Session.keys(["a.png", tmp_path / "b.png", "b.png", Path("c.png"), tmp_path / "c.png"])
    assert keys == [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]
    assert session.not_loaded(keys) == [tmp_path / "b.png", tmp_path / "c.png"]
    assert session.add_paths(keys) == [tmp_path / "b.png", tmp_path / "c.png"]


def test_pending_and_unscored_follow_every_change():
    """The scheduler's questions, answered from the cached row states, equal a pass over the
    items done here after each kind of change (batch, error, added rows, new labels)."""
    session = Session()
    session.add_paths([Path(f"/x/{i}.png") for i in range(40)])
    session.set_scores([], np.zeros((0, 2)), ["a", "b"])

    def check() -> None:
        items = session.items
        pending = [item.path for item in items if item.status == "pending"]
        assert session.pending_count() == len(pending)
        assert session.pending_paths() == pending
        skip = set(pending[::3])
        assert session.pending_paths(skip=skip, limit=5) == [p for p in pending if p not in skip][:5]
        assert session.unscored_embedded() == any(i.vector is not None and i.probs is None for i in items)

    check()
    batch = [(session.items[r].path, np.ones(4, np.float32), "") for r in range(0, 10)]
    session.set_embeddings(batch, np.full((10, 2), 0.5, np.float32), ["a", "b"])
    check()
    session.set_embeddings([(session.items[12].path, None, "broken")])  # an unreadable file
    check()
    session.set_embeddings([(session.items[r].path, np.ones(4, np.float32), "") for r in (20, 21)])  # no scores
    check()
    assert session.unscored_embedded()
    session.add_paths([Path(f"/x/{i}.png") for i in range(40, 50)])
    check()
    session.set_scores([], np.zeros((0, 3)), ["a", "b", "c"])  # new labels: every score stale
    check()
