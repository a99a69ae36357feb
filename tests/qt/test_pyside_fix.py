"""Thousands of signals emitted from Python must not exhaust `True` (PySide6 6.12.0 emit bug)."""

from __future__ import annotations

import subprocess
import sys


def test_many_emits_do_not_abort_the_process():
    code = ("import clipdesk.qt\n"
            "from PySide6.QtCore import QObject, Signal\n"
            "class O(QObject):\n    s = Signal()\n"
            "o = O()\n"
            "for _ in range(50000):\n    o.s.emit()\n"
            "print('alive')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "alive", out.stderr[-500:]
