"""Issue 21: while results stream in, the grid repaints at most a few times a second and never
for rows scrolled out of sight; the progress bar follows a run at the same pace. Each repaint is
Python per card, and every Qt call from the GUI thread waits for the GIL that the decode threads
hold: at one repaint per batch the window took the cores from the encoder."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QAbstractProxyModel, QAbstractTableModel, QEvent, QObject, Qt
from qt_helpers import wait_idle

from clipdesk.core.session import Session
from clipdesk.qt.thumbnails import Thumbnails
from clipdesk.qt.widgets.image_grid import ImageCardDelegate, ImageListModel, ImageView
from clipdesk.qt.widgets.proxy import SessionProxy
from clipdesk.qt.widgets.results_table import ResultsTable, ResultsTableModel
from clipdesk.qt.widgets.session_rows import row_runs


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, _obj, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


@pytest.fixture
def grid(qtbot, tmp_path):
    """A 600 x 400 grid over 400 rows (files that do not exist: cards say "no preview")."""
    session = Session()
    session.add_paths([tmp_path / f"img{i:04d}.png" for i in range(400)])
    thumbnails = Thumbnails()
    view = ImageView()
    view.setModel(ImageListModel(session, thumbnails, view))
    view.setItemDelegate(ImageCardDelegate(session, thumbnails, view))
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: not view.visualRect(view.model().index(399, 0)).isEmpty(), timeout=5000)
    qtbot.wait(400)  # first paints and failed thumbnails settle
    counter = PaintCounter()
    view.viewport().installEventFilter(counter)
    return session, view, counter


def _visible_rows(view) -> list[int]:
    screen = view.viewport().rect()
    return [r for r in range(view.model().rowCount()) if screen.intersects(view.visualRect(view.model().index(r, 0)))]


def _embed(session: Session, rows: range) -> None:
    """What the worker's batch does to the session: these rows get an embedding."""
    session.set_embeddings([(session.items[r].path, np.ones(4, np.float32), "") for r in rows])


def test_row_runs_groups_adjacent_rows():
    assert row_runs([5, 1, 2, 3]) == [(1, 3), (5, 5)]
    assert row_runs([7, 7, 8]) == [(7, 8)]
    assert row_runs([]) == []
    assert row_runs(range(32)) == [(0, 31)]  # one signal for a classified batch, not 32


def test_a_stream_of_visible_changes_repaints_a_few_times_then_the_last_state(qtbot, grid):
    session, view, counter = grid
    assert _visible_rows(view)[0] == 0
    started = time.monotonic()
    for _ in range(30):  # a batch every 10 ms, all on screen
        _embed(session, range(0, 8))
        qtbot.wait(10)
    elapsed = time.monotonic() - started
    qtbot.wait(500)  # the change that arrived during the last cooldown is still painted
    # Unthrottled, each batch repaints: ~30. At most one per 200 ms, plus the first and the last.
    assert 2 <= counter.count <= elapsed / 0.2 + 2, (counter.count, elapsed)


def test_a_single_visible_change_repaints_at_once(qtbot, grid):
    session, _view, counter = grid
    _embed(session, range(0, 1))
    qtbot.waitUntil(lambda: counter.count >= 1, timeout=150)  # not held back by the cooldown


def test_changes_below_the_viewport_repaint_nothing(qtbot, grid):
    session, view, counter = grid
    assert max(_visible_rows(view)) < 300
    for start in range(320, 400, 16):  # a classification past the first screen
        _embed(session, range(start, start + 16))
        qtbot.wait(20)
    qtbot.wait(300)
    assert counter.count == 0


def _table_over(qtbot, session: Session, model_type=ResultsTableModel, proxy_type=SessionProxy,
                width: int = 700) -> ResultsTable:
    """The results table through its proxy, as in the window, shown at width x 300."""
    proxy = proxy_type(session)
    proxy.search_order = False
    proxy.setSourceModel(model_type(session))
    view = ResultsTable()
    view.setModel(proxy)
    qtbot.addWidget(view)
    view.resize(width, 300)
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def table(qtbot, tmp_path):
    """The results table over 400 rows, 600 x 300."""
    session = Session()
    session.add_paths([tmp_path / f"img{i:04d}.png" for i in range(400)])
    session.set_scores([], np.zeros((0, 2)), ["cat", "dog"])
    view = _table_over(qtbot, session, width=600)
    qtbot.wait(300)
    counter = PaintCounter()
    view.viewport().installEventFilter(counter)
    return session, view, counter, view.model()


def _scored(session: Session, rows: range) -> None:
    rng = np.random.default_rng(rows.start)
    session.set_embeddings([(session.items[r].path, np.ones(4, np.float32), "") for r in rows],
                           rng.dirichlet([1, 1], len(rows)).astype(np.float32), ["cat", "dog"])


def test_table_rows_scored_out_of_sight_repaint_nothing(qtbot, table):
    session, view, counter, _proxy = table
    assert view.rowAt(view.viewport().height() - 1) < 300
    for start in range(300, 400, 20):
        _scored(session, range(start, start + 20))
        qtbot.wait(20)
    qtbot.wait(300)
    assert counter.count == 0
    _scored(session, range(0, 4))  # on screen: painted, with the new label
    qtbot.waitUntil(lambda: counter.count >= 1, timeout=1000)
    assert view.model().index(0, 1).data() in ("cat", "dog")


def test_table_stream_of_visible_changes_is_paced(qtbot, table):
    session, _view, counter, _proxy = table
    started = time.monotonic()
    for _ in range(25):
        _scored(session, range(0, 5))
        qtbot.wait(10)
    elapsed = time.monotonic() - started
    qtbot.wait(400)
    assert 2 <= counter.count <= elapsed / 0.2 + 2, (counter.count, elapsed)


def test_table_repaint_decides_each_row_once(qtbot, table, monkeypatch):
    """Every visible cell asks for text, colour, alignment…: one decision per row, not per ask."""
    session, view, _counter, _proxy = table
    _scored(session, range(0, 400))
    qtbot.wait(300)
    asked = []
    decision = session.decision
    monkeypatch.setattr(session, "decision", lambda row: asked.append(row) or decision(row))
    session.set_options(threshold=0.0)  # an event: what was worked out is forgotten
    view.viewport().repaint()
    visible = view.rowAt(view.viewport().height() - 1) + 1
    assert visible > 5
    assert sorted(set(asked)) == list(range(visible)) or sorted(set(asked)) == list(range(visible + 1))
    assert len(asked) <= len(set(asked)) * 2, len(asked)  # ForegroundRole may ask once more per row


def test_progress_bar_follows_a_run_at_most_five_times_a_second(qtbot, open_window, make_images):
    images = make_images(160)
    window = open_window(batch_size=4)  # 40 batches of the tiny model: far more than 5 a second
    window.session.set_labels(["cat", "dog"])
    values, batches = [], []
    window.progress_bar.valueChanged.connect(values.append)
    window.results_updated.connect(lambda: batches.append(time.monotonic()))
    started = time.monotonic()
    window.add_paths(images)
    wait_idle(qtbot, window, len(images))
    elapsed = time.monotonic() - started
    assert len(batches) >= 20
    # The start (0), the first batch, one per 200 ms, the last: not one per batch (41).
    assert 2 <= len(values) <= elapsed / 0.2 + 4, (len(values), len(batches), elapsed)
    assert values[-1] == len(images)
    assert values == sorted(values)  # never backwards


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread scheduling policies are Linux's")
def test_model_worker_threads_are_batch_work_and_the_window_is_not(qtbot, open_window):
    """The worker (and a thread it starts, as the decode pool and ONNX Runtime do) runs under
    SCHED_BATCH: never preempting the GUI thread when an event wakes it, with an unchanged share
    of the CPU against other programs (its nice value stays the window's)."""
    window = open_window()
    me = threading.get_native_id()
    gui_policy, gui_nice = os.sched_getscheduler(me), os.getpriority(os.PRIO_PROCESS, me)
    seen: dict[str, tuple[int, int]] = {}

    def state() -> tuple[int, int]:
        tid = threading.get_native_id()
        return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)

    def job(_engine, _token):
        seen["worker"] = state()
        child = threading.Thread(target=lambda: seen.__setitem__("child", state()))
        child.start()
        child.join()

    window.worker.submit("policy-probe", job)
    qtbot.waitUntil(lambda: "child" in seen, timeout=20000)
    assert gui_policy == os.SCHED_OTHER
    assert seen["worker"] == (os.SCHED_BATCH, gui_nice)
    assert seen["child"] == (os.SCHED_BATCH, gui_nice)
    assert (os.sched_getscheduler(me), os.getpriority(os.PRIO_PROCESS, me)) == (gui_policy, gui_nice)


class _CountingModel(ResultsTableModel):
    asked = 0

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        type(self).asked += 1
        return super().data(index, role)


class _PerRoleModel(_CountingModel):
    multiData = QAbstractTableModel.multiData  # noqa: N815 - Qt's own: one data() call per role
    asked = 0


class _PerRoleProxy(SessionProxy):
    multiData = QAbstractProxyModel.multiData  # noqa: N815


def test_table_cells_paint_the_same_in_one_call_per_cell(qtbot, tmp_path):
    """multiData hands a cell every role at once; the picture equals Qt's one-data()-per-role
    path (text, right-aligned numbers, the unsure and error colours), with no data() call left."""
    session = Session()
    session.add_paths([tmp_path / f"img{i:04d}.png" for i in range(30)])
    session.set_scores([], np.zeros((0, 2)), ["cat", "dog"])
    _scored(session, range(0, 12))
    session.set_embeddings([(session.items[12].path, None, "broken file")])
    session.set_options(threshold=0.6)  # some rows unsure: their colour comes from ForegroundRole
    one_call = _table_over(qtbot, session, _CountingModel, SessionProxy)
    per_role = _table_over(qtbot, session, _PerRoleModel, _PerRoleProxy)
    qtbot.wait(200)
    _CountingModel.asked = _PerRoleModel.asked = 0
    first = one_call.viewport().grab().toImage()
    second = per_role.viewport().grab().toImage()
    assert _CountingModel.asked == 0
    assert _PerRoleModel.asked > 50  # Qt's own path asked data() role by role
    assert first == second


def test_table_top_label_colour_says_unsure_and_error(qtbot, tmp_path):
    """Top-label colour per row against a rule worked out here: amber when the top score is
    under the threshold, red for a file that could not be read, the default colour otherwise."""
    session = Session()
    session.add_paths([tmp_path / f"img{i:04d}.png" for i in range(20)])
    session.set_scores([], np.zeros((0, 2)), ["cat", "dog"])
    _scored(session, range(0, 12))
    session.set_embeddings([(session.items[12].path, None, "broken file")])
    session.set_options(threshold=0.6)
    view = _table_over(qtbot, session)
    model = view.model()
    colours = {}
    for row in range(model.rowCount()):
        brush = model.index(row, 1).data(Qt.ItemDataRole.ForegroundRole)
        colours[model.index(row, 0).data()] = None if brush is None else brush.color().name()
    unsure = 0
    for item in session.items:
        if item.error:
            expected = "#c62828"
        elif item.probs is not None and float(np.max(item.probs)) < 0.6:
            expected, unsure = "#c77c02", unsure + 1
        else:
            expected = None
        assert colours[item.path.name] == expected, item.path.name
    assert unsure > 0
