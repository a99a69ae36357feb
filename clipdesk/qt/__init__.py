"""The PySide6 desktop app: a thin view over `clipdesk.core` (no model logic here)."""

from ._pyside_fix import apply as _apply_pyside_fix

_apply_pyside_fix()  # PySide6 6.12.0's emit() leaks a reference to True (see _pyside_fix.py)
