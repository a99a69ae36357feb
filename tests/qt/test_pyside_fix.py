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


def test_modules_imported_after_the_window_are_not_read_for_pyside_features(tmp_path):
    """Issue 21: PySide6's import hook read the source of every later module (torch: ~2,000 on a
    model's first load, +0.4 s). In a fresh process with the window's package imported, a new
    third-party module is imported without its source being read; clipdesk's own still are."""
    (tmp_path / "probe_plain_module.py").write_text("VALUE = 1\n")
    code = (
        "import inspect, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import clipdesk.qt\n"
        "read = []\n"
        "real = inspect.getsource\n"
        "inspect.getsource = lambda obj: read.append(getattr(obj, '__name__', '?')) or real(obj)\n"
        "import probe_plain_module\n"
        "import clipdesk.core.priority\n"
        "print(sorted(read))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-800:]
    read = out.stdout.strip().splitlines()[-1]
    assert "probe_plain_module" not in read  # PySide6 alone would read it
    assert read == "['clipdesk']"  # `import clipdesk.core.priority` hands the hook the package: checked
