"""Background threads that let the thread a person is waiting on run first.

On two cores, the encoder's threads, the JPEG decoders and the thumbnail jobs kept the window's
own thread waiting in the run queue for tens of milliseconds at a time (issue 21: event-loop
stalls of 110-220 ms of which the GUI thread's own CPU was 20-80 ms). Linux keeps the scheduling
policy per thread and a thread's new threads inherit it, so a worker that marks itself also marks
the decode pool and ONNX Runtime's threads it starts.

SCHED_BATCH, not a nice value: batch threads never preempt a waking thread (the GUI thread gets
the core when an event arrives) but keep their full share of the CPU against other programs. A
nice value of +4 did the first as well, and on a machine busy with other work it halved the
window's classification speed against the CLI's (2.2x the CLI's time, 1.03-1.09x with batch).
Elsewhere this is a no-op: macOS and Windows favour the interactive thread themselves.
"""

from __future__ import annotations

import os
import sys
import threading

_marked = threading.local()


def mark_background_thread() -> bool:
    """Put the calling thread (and the threads it starts from now on) under SCHED_BATCH, once;
    True if its policy changed."""
    if not sys.platform.startswith("linux") or not hasattr(os, "SCHED_BATCH"):
        return False
    tid = threading.get_native_id()
    if getattr(_marked, "tid", None) == tid:
        return False
    _marked.tid = tid
    try:
        if os.sched_getscheduler(tid) == os.SCHED_BATCH:
            return False
        os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
    except OSError:  # a policy the process may not leave (a real-time launcher): keep it
        return False
    return True
