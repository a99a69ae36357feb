"""Background threads that yield the CPU to the thread a person is waiting on.

On two cores, the encoder's threads, the JPEG decoders and the thumbnail jobs kept the window's
own thread waiting in the run queue for tens of milliseconds at a time (issue 21: event-loop
stalls of 110-220 ms of which the GUI thread's own CPU was 20-80 ms). Linux keeps the nice value
per thread, and a thread's new threads inherit it, so a worker that lowers its own priority also
lowers the decode pool and ONNX Runtime's threads it starts. Elsewhere this is a no-op: macOS and
Windows schedule interactive threads ahead already.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICE = 4  # nice steps: the GUI thread then weighs ~3x a worker thread in Linux's scheduler


def lower_this_thread(steps: int = BACKGROUND_NICE) -> bool:
    """Make the calling thread (and the threads it starts) `steps` nicer, at most once; True if
    its nice value changed. Raising a priority back needs privileges, so this only goes down."""
    if not sys.platform.startswith("linux") or steps <= 0:
        return False
    tid = threading.get_native_id()
    if getattr(_lowered, "tid", None) == tid:
        return False
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + steps))
    except OSError:
        return False
    _lowered.tid = tid
    return True


_lowered = threading.local()
