"""A guard against a PySide6 6.12.0 bug: `SignalInstance.emit()` returns `True` without taking a
reference, so every signal emitted from Python steals one reference to `True` (and scrolling a
large grid aborted with "none_dealloc": a reference to `None` is lost on some virtual-call path).

On Python < 3.12 `True` is not immortal: after a few thousand emits (one classification batch or
thumbnail each) its count reaches zero and the process aborts with "Fatal Python error:
bool_dealloc". Measured here: 100 `Signal().emit()` calls drop `sys.getrefcount(True)` by 100, and
the app crashed after ≈ 2,000 images. Python 3.12 made `True`, `False` and `None` immortal
by giving them a huge reference count; this does the same on older versions. Harmless where the bug is absent.
"""

from __future__ import annotations

import sys


def apply() -> None:
    if sys.version_info >= (3, 12) or getattr(apply, "done", False):
        return  # True is immortal there
    import ctypes

    for constant in (True, False, None):  # None too: a view returning None from data() lost refs
        ctypes.c_ssize_t.from_address(id(constant)).value += 1 << 40
    apply.done = True
