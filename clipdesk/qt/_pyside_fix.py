"""Two guards for PySide6.

1. The feature-import hook. Once PySide6 is imported, every module imported afterwards passes
through its `__feature__` hook, which calls `inspect.getsource()` on the module to see whether
it mentions PySide6. torch and open_clip import ~2,000 modules on a model's first load, so the
window's first load read all their sources: 0.4-0.5 s more than the CLI's (issue 21, first
results on a never-exported model). clipdesk selects no `__feature__` (snake_case,
true_property); only clipdesk's own modules and `__main__` still get PySide6's check, every
other module is answered "does not use PySide" at once.

2. A PySide6 6.12.0 bug: `SignalInstance.emit()` returns `True` without taking a
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

FEATURE_CHECKED = ("clipdesk", "__main__")  # top-level packages that keep PySide6's own check


def _skip_feature_source_scans() -> None:
    feature = sys.modules.get("shibokensupport.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if original is None or getattr(original, "clipdesk_fast", False):
        return  # another PySide6 version, or already in place

    def uses_pyside(module) -> bool:
        if getattr(module, "__name__", "").split(".")[0] in FEATURE_CHECKED:
            return original(module)
        return False

    uses_pyside.clipdesk_fast = True
    feature._mod_uses_pyside = uses_pyside


def apply() -> None:
    import PySide6.QtCore  # noqa: F401 - installs the feature hook this replaces a part of

    _skip_feature_source_scans()
    if sys.version_info >= (3, 12) or getattr(apply, "done", False):
        return  # True is immortal there
    import ctypes

    for constant in (True, False, None):  # None too: a view returning None from data() lost refs
        ctypes.c_ssize_t.from_address(id(constant)).value += 1 << 40
    apply.done = True
