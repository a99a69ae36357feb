"""A job submitted after the window closed (a late timer) must not restart the model thread: a
QThread still running when the window is deleted aborts the whole process."""

from __future__ import annotations

from clipdesk.qt.worker import ModelWorker


def test_no_thread_restarts_after_shutdown(qtbot):
    worker = ModelWorker()
    ran = []
    first = worker.submit("job", lambda _w, _t: ran.append("before"))
    qtbot.waitUntil(lambda: ran == ["before"] and not first.token.cancelled, timeout=10000)
    assert worker.shutdown()
    assert not worker.isRunning()

    late = worker.submit("late", lambda _w, _t: ran.append("after"))
    qtbot.wait(200)
    assert not worker.isRunning()  # deleting the window now is safe
    assert late.token.cancelled and ran == ["before"]
