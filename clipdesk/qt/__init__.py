"""The PySide6 desktop app: a thin view over `clipdesk.core` (no model logic here)."""
