"""The PySide6 desktop app: a thin view over `clipdesk.core` (no model logic here)."""

from ._pyside_fix import apply as _apply_pyside_fix

_apply_pyside_fix()  # PySide6's import hook reads every module's source; 6.12.0's emit() leaks True
