"""The bundle's one executable: `clipdesk ARGS` is the CLI, `clipdesk gui ARGS` (or a copy/link
named `clipdesk-gui`, or a start without arguments and without a terminal: a double click, the
macOS app) the window.

One executable, not two: PyInstaller would analyse and collect the same packages twice. With
CLIPDESK_SELF_TEST=<png path>, the window quits by itself once every image it opened is scored,
after saving a screenshot there and printing one JSON line (labels, timings): the bundle's test
(tests/bundle) and a user's "does it work on this machine?" both use it.
"""

from __future__ import annotations

import json
import os
import sys
import time

STARTED = time.monotonic()
SELF_TEST_TIMEOUT_S = 120.0


def main() -> int:
    args = sys.argv[1:]
    if os.environ.get("CLIPDESK_BUNDLE_DIAG"):
        return diagnose()
    gui = os.path.basename(sys.argv[0]).lower().startswith("clipdesk-gui")
    if args[:1] == ["gui"]:
        gui, args = True, args[1:]
    if not args or all(a.startswith("-psn_") for a in args):  # macOS Finder adds -psn_0_1234
        gui = gui or not sys.stdin or not sys.stdin.isatty()  # double-clicked: no terminal, the window
        args = [a for a in args if not a.startswith("-psn_")]
    if gui:
        return run_window(args)
    from clipdesk.cli import main as cli

    return cli(args)


def diagnose() -> int:
    """CLIPDESK_BUNDLE_DIAG=1: import what the torch-free app needs, one line each (for a bug
    report from a machine where the bundle misbehaves), and say whether the demo's export is usable."""
    import importlib
    import traceback

    failed = 0
    for name in ("numpy", "PIL.Image", "onnxruntime", "regex", "ftfy", "pillow_heif", "rawpy",
                 "appdirs", "PySide6.QtWidgets", "clipdesk.cli", "clipdesk.qt.app"):
        try:
            importlib.import_module(name)
            print(f"ok      {name}")
        except Exception:  # noqa: BLE001 - every failure is what this reports
            failed += 1
            print(f"FAILED  {name}\n{traceback.format_exc()}")
    from clipdesk.core.onnx_start import quick_identity
    from clipdesk.core.onnx_store import cached_export

    found = quick_identity("demo", None)
    export = found and cached_export(found[0], "fp32", found[2])
    print(f"demo: {found and found[0]}; export: {export and export[0]}")
    return 1 if failed or not export else 0


def run_window(args: list[str]) -> int:
    from PySide6.QtWidgets import QApplication

    from clipdesk.qt.app import main as window

    shot = os.environ.get("CLIPDESK_SELF_TEST")
    if shot:
        app = QApplication.instance() or QApplication([sys.argv[0]])
        app._self_test = SelfTest(app, shot)  # kept alive as long as the app
    return window(args)


class SelfTest:
    """Polls the window: when it is shown, and when every image has scores, it reports and quits."""

    def __init__(self, app, shot: str) -> None:
        from PySide6.QtCore import QTimer

        self.app, self.shot, self.shown_s = app, shot, None
        self.timer = QTimer()
        self.timer.timeout.connect(self.poll)
        self.timer.start(50)

    def poll(self) -> None:
        windows = [w for w in self.app.topLevelWidgets() if hasattr(w, "session") and w.isVisible()]
        now = time.monotonic() - STARTED
        if windows and self.shown_s is None:
            self.shown_s = now
        session = windows[0].session if windows else None
        done = session is not None and len(session) and all(
            item.probs is not None or item.status == "error" for item in session.items)
        if done:
            windows[0].grab().save(self.shot)
            rows = [{"path": str(item.path), "label": (session.decision(row) or None) and session.decision(row).label,
                     "error": item.error} for row, item in enumerate(session.items)]
            self.finish(0, {"shown_s": self.shown_s, "scored_s": now, "rows": rows, "screenshot": self.shot})
        elif now > SELF_TEST_TIMEOUT_S:
            if windows:
                windows[0].grab().save(self.shot)
            self.finish(1, {"shown_s": self.shown_s, "error": "the images were not scored in time",
                            "screenshot": self.shot})

    def finish(self, code: int, report: dict) -> None:
        self.timer.stop()
        print("CLIPDESK_SELF_TEST " + json.dumps(report), flush=True)
        for window in self.app.topLevelWidgets():
            window.close()
        self.app.exit(code)


if __name__ == "__main__":
    sys.exit(main())
