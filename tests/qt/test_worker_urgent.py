"""Urgent tasks on the model worker (issue 21): beside a job that hosts them they run while its
batch is still running; beside any other job they wait for its next batch boundary; each runs
exactly once; and the next queued task never starts under one."""

from __future__ import annotations

import threading

from clipdesk.qt.worker import ModelWorker


def blocking_job(release: threading.Event, log: list, steps: int = 2):
    """A generator job whose batches each wait for the test: "inside a batch" is a real state."""

    def factory(_worker, _token):
        for step in range(steps):
            log.append(f"batch {step} starts")
            assert release.wait(20), "the test never released the batch"
            log.append(f"batch {step} ends")
            yield step
        return "done"

    return factory


def test_urgent_runs_beside_a_hosting_job_while_its_batch_runs(qtbot):
    worker = ModelWorker()
    release, log = threading.Event(), []
    host = worker.submit("classify", blocking_job(release, log), hosts_urgent=True)
    qtbot.waitUntil(lambda: log == ["batch 0 starts"], timeout=10000)

    urgent = worker.submit("rescore", lambda _w, _t: log.append("urgent"), urgent=True)
    qtbot.waitUntil(lambda: "urgent" in log, timeout=10000)
    assert log == ["batch 0 starts", "urgent"]  # the batch has not ended
    assert urgent.ran

    with qtbot.waitSignal(host.signals.finished, timeout=10000):
        release.set()
    qtbot.wait(100)
    assert log.count("urgent") == 1  # also queued for the boundary and the idle loop: ran once
    assert worker.shutdown()


def test_urgent_waits_for_the_batch_boundary_of_a_job_that_does_not_host_it(qtbot):
    worker = ModelWorker()
    release, log = threading.Event(), []
    host = worker.submit("load", blocking_job(release, log))
    qtbot.waitUntil(lambda: log == ["batch 0 starts"], timeout=10000)
    worker.submit("rescore", lambda _w, _t: log.append("urgent"), urgent=True)
    qtbot.wait(300)
    assert "urgent" not in log
    with qtbot.waitSignal(host.signals.finished, timeout=10000):
        release.set()
    qtbot.waitUntil(lambda: "urgent" in log, timeout=10000)
    assert log.index("urgent") == log.index("batch 0 ends") + 1  # between the two batches
    assert worker.shutdown()


def test_next_task_starts_only_after_the_urgent_one_beside_ended(qtbot):
    worker = ModelWorker()
    release, urgent_may_end, log = threading.Event(), threading.Event(), []
    worker.submit("classify", blocking_job(release, log, steps=1), hosts_urgent=True)
    qtbot.waitUntil(lambda: log == ["batch 0 starts"], timeout=10000)

    def slow_urgent(_w, _t):
        log.append("urgent starts")
        assert urgent_may_end.wait(20)
        log.append("urgent ends")

    worker.submit("rescore", slow_urgent, urgent=True)
    qtbot.waitUntil(lambda: "urgent starts" in log, timeout=10000)
    worker.submit("backend", lambda _w, _t: log.append("next task"))
    release.set()
    qtbot.waitUntil(lambda: "batch 0 ends" in log, timeout=10000)
    qtbot.wait(300)
    assert "next task" not in log  # it could swap the model the re-score reads
    urgent_may_end.set()
    qtbot.waitUntil(lambda: "next task" in log, timeout=10000)
    assert log.index("urgent ends") < log.index("next task")
    assert worker.shutdown()
