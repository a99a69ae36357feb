"""GUI responsiveness: time to a visible window, and the longest event-loop gap while classifying.

    python benchmarks/bench_gui.py [--images 200] [--model clipdesk-tiny --pretrained none]

Targets (issue 3): window visible < 1.5 s after launch; longest gap between event-loop ticks
< 100 ms while 200 images are classified. Each number is printed beside a baseline measured in
the same run (a bare QMainWindow launch; the same tick timer with nothing running).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "core"))

LAUNCH = r"""
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
if sys.argv[2] == "bare":
    from PySide6.QtWidgets import QMainWindow
    window = QMainWindow()
else:
    from clipdesk.qt.main_window import MainWindow, ModelChoice
    window = MainWindow(ModelChoice("clipdesk-tiny", "none", "cpu", "torch"))
window.show()
def shown():
    print(f"{time.time() - t0:.3f}", flush=True)
    app.quit()
QTimer.singleShot(0, shown)  # the first event-loop turn after show(): the window is mapped
app.exec()
window.close()
"""


def time_to_window(kind: str, env: dict) -> float:
    start = time.time()
    out = subprocess.run([sys.executable, "-c", LAUNCH, str(start), kind], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


class GapMeter:
    """A 5 ms repeating timer; the longest interval between its ticks is the GUI's worst stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self.tick)
        self.last = None
        self.worst = 0.0

    def tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = None, 0.0
        self.timer.start()


def pump(app, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.001)


def event_loop_gaps(n_images: int, arch: str, pretrained: str) -> tuple[float, float, float]:
    from PySide6.QtWidgets import QApplication
    from synth_images import save_image

    from clipdesk.qt.main_window import MainWindow, ModelChoice

    app = QApplication.instance() or QApplication([])
    folder = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    for i in range(n_images):
        save_image(folder / f"img{i:04d}.jpg", i, 640, 480)
    window = MainWindow(ModelChoice(arch, pretrained, "cpu", "torch"))
    window.session.set_labels(["a cat", "a dog", "a car", "a tree", "a house"])
    window.show()
    pump(app, 120, lambda: window.model_ready)
    meter = GapMeter()
    meter.start()
    pump(app, 1.0)
    idle_gap = meter.worst

    meter.start()
    started = time.monotonic()
    window.add_paths([folder])
    pump(app, 600, lambda: len(window.session) == n_images and not window.session.pending_paths()
         and window._classify_task is None and not window.thumbnails.busy())
    elapsed = time.monotonic() - started
    busy_gap = meter.worst
    window.close()
    return idle_gap, busy_gap, n_images / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", default="clipdesk-tiny")
    parser.add_argument("--pretrained", default="none")
    args = parser.parse_args(argv)
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-gui-dirs-"))
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"CLIPDESK_{name}_DIR"] = os.environ[f"CLIPDESK_{name}_DIR"] = str(tmp / name.lower())
    os.environ.setdefault("QT_QPA_PLATFORM", env["QT_QPA_PLATFORM"])

    bare = min(time_to_window("bare", env) for _ in range(2))
    app_time = min(time_to_window("app", env) for _ in range(2))
    print(f"window visible after launch: {app_time:.3f} s (bare QMainWindow {bare:.3f} s, "
          f"ratio {app_time / bare:.2f}) — target < 1.5 s: {'OK' if app_time < 1.5 else 'MISSED'}")

    idle_gap, busy_gap, rate = event_loop_gaps(args.images, args.model, args.pretrained)
    print(f"longest event-loop gap while classifying {args.images} images ({args.model}): "
          f"{busy_gap * 1000:.1f} ms (idle baseline {idle_gap * 1000:.1f} ms, ratio "
          f"{busy_gap / max(idle_gap, 1e-6):.1f}); {rate:.1f} img/s — target < 100 ms: "
          f"{'OK' if busy_gap < 0.1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
