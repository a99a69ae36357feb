"""Scrolling the grid at 2,000 and 20,000 images: the scroll phase of bench_gui.py on its own.

Adds the generated pictures (bench_gui's, reused), waits until every one is classified (with a
persistent embedding cache, so a second run is quick), then scrolls the grid top to bottom in 200
steps, first in the added order, then while a text search ranks the view, and prints the worst
event-loop gap and per-step times. Usage: python benchmarks/bench_scroll.py [--images 2000 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def scroll_steps(app, view) -> list[float]:
    bar = view.verticalScrollBar()
    steps = []
    for value in range(0, bar.maximum() + 1, max(1, bar.maximum() // 200)):
        started = time.perf_counter()
        bar.setValue(value)
        app.processEvents()
        steps.append(time.perf_counter() - started)
    return steps


CALLS = {"n": 0}


def count_proxy_calls(always_proxy: bool) -> None:
    """Count the Python proxy's index()/mapToSource() calls; optionally force the old behaviour
    (the grid always on the proxy) for an A/B run under the same load."""
    from clipdesk.qt.widgets.proxy import SessionProxy

    for name in ("index", "mapToSource"):
        original = getattr(SessionProxy, name)

        def counted(self, *args, _original=original):
            CALLS["n"] += 1
            return _original(self, *args)

        setattr(SessionProxy, name, counted)
    if always_proxy:
        SessionProxy.is_identity = lambda self: False


def run(folder: Path, n: int) -> None:
    from bench_gui import GapMeter, pump
    from PySide6.QtWidgets import QApplication

    from clipdesk.qt.main_window import MainWindow, ModelChoice

    app = QApplication.instance() or QApplication([])
    window = MainWindow(ModelChoice("demo", "demo", "cpu", "torch"))
    window.session.set_labels(["red circle", "blue star", "green square", "pink heart", "yellow ring"])
    window.resize(1320, 860)
    window.show()
    pump(app, 300, lambda: window.model_ready)
    window.add_paths([folder])
    pump(app, 900, lambda: len(window.session) == n and not window.session.pending_paths()
         and window._classify_task is None and window._rescore_task is None)
    pump(app, 1.0)
    meter = GapMeter()
    for name, ranked in (("added order", False), ("ranked (search)", True)):
        if ranked:
            window.search("a red circle")
            pump(app, 30, lambda: bool(window.session.search_query))
        pump(app, 0.5)
        window.image_view.scrollToTop()
        pump(app, 0.3)
        meter.start()
        CALLS["n"] = 0
        steps = scroll_steps(app, window.image_view)
        pump(app, 0.3)
        model = type(window.image_view.model()).__name__
        print(f"{n:6d} images, {name:16s} view model {model:22s} worst gap {meter.worst * 1000:7.1f} ms; "
              f"step median {statistics.median(steps) * 1000:6.1f} ms, max {max(steps) * 1000:6.1f} ms "
              f"over {len(steps)} steps, {CALLS['n'] / len(steps):.0f} Python proxy calls a step "
              f"[{meter.histogram()}]", flush=True)
    window.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--always-proxy", action="store_true",
                        help="the grid always on the Python proxy (the behaviour before, for A/B)")
    args = parser.parse_args(argv)
    count_proxy_calls(args.always_proxy)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("CLIPDESK_BACKGROUND_EXPORT", "0")
    base = Path(tempfile.gettempdir()) / "clipdesk-bench-scroll"
    for name in ("CACHE", "CONFIG", "DATA"):  # the cache persists between runs: classification is quick
        os.environ[f"CLIPDESK_{name}_DIR"] = str(base / name.lower())
    from bench_gui import make_images

    for n in args.images:
        (base / "config" / "images.json").unlink(missing_ok=True)  # no restored list from the last run
        run(make_images(Path(tempfile.gettempdir()) / f"clipdesk-bench-gui-{n}", n), n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
