"""One threading style for the app (superqt's): generator jobs driven off the GUI thread.

A job is a `clipdesk.core.jobs.Job` generator. The driver emits `started`, `yielded(Progress)`,
`errored(exception)` and `finished(result)` through a `WorkerSignals` object; Qt queues them to
the GUI thread. Cancelling sets the job's `CancelToken`, which the job checks between batches.

- `ModelWorker` is the single thread that owns the model: every load, encode and search is a
  task in its FIFO queue, so one model is never used by two jobs at once. An `urgent` task (a
  re-score after a label edit) does not wait for the running job: beside a job that allows it
  (a classification chunk, `hosts_urgent`) it starts at once on a side thread, since it only
  reads the model (a text encoding and a matrix product) and a batch of a large model can take
  seconds; beside any other job it runs between two of its batches. Either way the running
  classification goes on, it is never restarted, and the next queued task starts only after
  the urgent ones ended (a backend switch never lands under a re-score).
- `run_in_pool` runs model-free jobs (thumbnails, file copies, dataset scans) on a QThreadPool.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from clipdesk.core.errors import Cancelled
from clipdesk.core.jobs import CancelToken
from clipdesk.core.priority import mark_background_thread

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class WorkerSignals(QObject):
    started = Signal()
    yielded = Signal(object)  # a Progress
    errored = Signal(object)  # the exception (Cancelled when cancelled)
    finished = Signal(object)  # the job's return value; not emitted after an error


@dataclass
class Task:
    """A queued job: `factory(context, token)` is called in the worker thread and returns a Job."""

    name: str
    factory: Callable[[Any, CancelToken], Any]
    token: CancelToken = field(default_factory=CancelToken)
    signals: WorkerSignals = field(default_factory=WorkerSignals)
    id: int = field(default_factory=lambda: next(_ids))
    cancellable: bool = True
    hosts_urgent: bool = False  # urgent tasks may run beside it (they only read the model)
    ran: bool = False  # an urgent task is queued twice or thrice (ModelWorker.submit): runs once

    def cancel(self) -> None:
        self.token.cancel()


def drive(task: Task, context: Any, between: Callable[[], None] | None = None) -> None:
    """Run one task to its end, reporting through its signals; never raises. `between` runs
    after each of a generator job's steps (the model worker's urgent tasks)."""
    signals = task.signals
    try:
        task.token.check()  # cancelled while still queued
        signals.started.emit()
        job = task.factory(context, task.token)
        if not hasattr(job, "__next__"):  # a plain function result, not a generator
            signals.finished.emit(job)
            return
        try:
            while True:
                try:
                    progress = next(job)
                except StopIteration as stop:
                    if task.token.cancelled:  # cancelled during its last batch: still a cancel
                        raise Cancelled("Cancelled.") from None
                    signals.finished.emit(stop.value)
                    return
                signals.yielded.emit(progress)
                task.token.check()  # the job is never resumed after a cancel: within one batch
                if between is not None:
                    between()
        finally:
            job.close()  # runs the job's own clean-up (thread pools, files) at once
    except Cancelled as error:
        signals.errored.emit(error)
    except Exception as error:  # noqa: BLE001 - reported to the GUI as one message
        log.debug("Task %s failed", task.name, exc_info=True)
        signals.errored.emit(error)


class ModelWorker(QThread):
    """The dedicated thread owning the model (`self.engine`, set by the load task)."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelWorker")
        self.engine = None  # touched only inside tasks, i.e. in this thread
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._running: list[Task] = []  # the running task, and under it a job an urgent one paused
        self._pending: list[Task] = []
        self._urgent: deque[Task] = deque()
        self._claim_lock = threading.Lock()  # the worker thread and the side thread both take urgent tasks
        self._side = QThreadPool(self)  # urgent tasks beside a running job that hosts them
        self._side.setMaxThreadCount(1)
        self._closed = False  # after shutdown(): nothing restarts the thread

    def submit(self, name: str, factory: Callable[[Any, CancelToken], Any],
               connect: Callable[[Task], None] | None = None, cancellable: bool = True,
               urgent: bool = False, hosts_urgent: bool = False) -> Task:
        """Queue a task; `connect(task)` wires its signals before the thread can emit them.

        An urgent task runs at once beside a running job with `hosts_urgent`, else at the running
        job's next batch boundary (or next, when idle): it must be short, must only read the
        model, and must not need the running job's result.
        """
        task = Task(name, factory, cancellable=cancellable, hosts_urgent=hosts_urgent)
        if connect is not None:
            connect(task)
        if self._closed:  # a late timer after the window closed: restarting the thread would leave
            task.cancel()  # it running when the window is deleted, and that aborts the process
            return task
        _keep_alive(task)
        self._pending.append(task)
        if urgent:
            self._urgent.append(task)
            running = self.current
            if running is not None and running.hosts_urgent:
                self._side.start(_SideRunnable(self, task))
        self._queue.put(task)  # an urgent one too: it wakes an idle thread
        if not self.isRunning():
            self.start()
        return task

    @property
    def current(self) -> Task | None:
        running = self._running
        return running[-1] if running else None

    def tasks(self) -> list[Task]:
        """Running and queued tasks, oldest first."""
        return [*self._running, *self._pending]

    def cancel(self, name: str | None = None) -> None:
        """Cancel the running and queued tasks (of one name, if given): stops within one batch."""
        for task in self.tasks():
            if task.cancellable and (name is None or task.name == name):
                task.cancel()

    def run(self) -> None:  # the worker thread
        mark_background_thread()  # and with it the decode and ONNX Runtime threads it starts
        while True:
            task = self._queue.get()
            if task is None:
                return
            self._run_urgent()
            self._side.waitForDone()  # the next task may swap the model an urgent one reads
            if task.ran:
                continue
            self._drive(task, self._run_urgent)
            self.busy_changed.emit(not self._queue.empty())

    def claim(self, task: Task) -> bool:
        """True for the one caller that may run `task` (urgent tasks are offered to two threads)."""
        with self._claim_lock:
            if task.ran:
                return False
            task.ran = True
            return True

    def _drive(self, task: Task, between: Callable[[], None] | None) -> None:
        if not self.claim(task):
            return
        if task in self._pending:
            self._pending.remove(task)
        self._running.append(task)
        self.busy_changed.emit(True)
        try:
            drive(task, self, between)
        finally:
            self._running.remove(task)

    def _run_urgent(self) -> None:
        """The urgent tasks queued so far, oldest first (each once; none inside another)."""
        while self._urgent:
            self._drive(self._urgent.popleft(), None)

    def run_beside(self, task: Task) -> None:
        """An urgent task on the side thread, while the running job goes on (see submit)."""
        if not self.claim(task):
            return
        if task in self._pending:
            self._pending.remove(task)
        drive(task, self)

    def shutdown(self) -> bool:
        """Cancel everything, finish the current batch, end the thread (used when the window closes).

        Waits without a time limit: a model load cannot be interrupted inside torch, and a QThread
        destroyed while running aborts the process. Jobs check their token between batches, so
        this is one batch (or the rest of a load) at most.
        """
        self._closed = True
        for task in self.tasks():
            task.cancel()
        self._queue.put(None)
        self._side.waitForDone()
        if not self.isRunning():
            return True
        return self.wait()


class _SideRunnable(QRunnable):
    def __init__(self, worker: ModelWorker, task: Task) -> None:
        super().__init__()
        self.worker, self.task = worker, task
        self.setAutoDelete(True)

    def run(self) -> None:
        mark_background_thread()
        self.worker.run_beside(self.task)


class _PoolRunnable(QRunnable):
    def __init__(self, task: Task, context: Any) -> None:
        super().__init__()
        self.task, self.context = task, context
        self.setAutoDelete(True)

    def run(self) -> None:
        mark_background_thread()  # thumbnails, copies, scans: never ahead of the window's own thread
        drive(self.task, self.context)


_pool: QThreadPool | None = None
_alive: dict[int, Task] = {}


def _keep_alive(task: Task) -> None:
    """Hold the task (and its signals object) until its last signal reached the GUI thread.

    Connected after the caller's slots, so it runs after them; a garbage-collected sender would
    silently drop queued signals.
    """
    _alive[task.id] = task
    task.signals.finished.connect(lambda *_: _alive.pop(task.id, None))
    task.signals.errored.connect(lambda *_: _alive.pop(task.id, None))


def pool() -> QThreadPool:
    """A small pool for model-free work; two threads leave the cores to the encoder."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(2)
    return _pool


def run_in_pool(name: str, factory: Callable[[Any, CancelToken], Any], context: Any = None,
                connect: Callable[[Task], None] | None = None) -> Task:
    """Start a model-free job on the pool; `connect(task)` wires signals before it can emit."""
    task = Task(name, factory)
    if connect is not None:
        connect(task)
    _keep_alive(task)
    pool().start(_PoolRunnable(task, context))
    return task
