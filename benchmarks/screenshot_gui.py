"""Take the README screenshot: the real window on the demo model with images and results showing.

    xvfb-run -a python benchmarks/screenshot_gui.py docs/screenshot.png

Images are generated (coloured shapes the demo model was trained on), so the picture is
reproducible; user folders are redirected to a temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, n: int = 18) -> list[Path]:
    import numpy as np

    from training.synthetic import Scene, Shape, render

    rng = np.random.default_rng(3)
    picks = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
             ("purple", "heart"), ("orange", "ring")]
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        colour, shape = picks[i % len(picks)]
        scene = Scene([Shape(colour, shape, float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)),
                             float(rng.uniform(0.4, 0.6)), float(rng.uniform(0, 40)))],
                      "plain", int(rng.integers(30, 170)))
        path = folder / f"{colour}-{shape}-{i:02d}.png"
        render(scene, 160).save(path)
        paths.append(path)
    (folder / "scan-0042.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # shows the error badge
    return paths


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else ROOT / "docs" / "screenshot.png")
    tmp = Path(tempfile.mkdtemp(prefix="clipdesk-shot-"))
    for name in ("CACHE", "CONFIG", "DATA"):
        os.environ[f"CLIPDESK_{name}_DIR"] = str(tmp / name.lower())
    os.environ["HF_HUB_OFFLINE"] = "1"
    from PySide6.QtWidgets import QApplication

    from clipdesk.core.settings import Settings
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    app = QApplication([])
    app.setStyle("Fusion")
    images = make_images(tmp / "shapes")
    settings = Settings.load()
    settings["labels"] = ["red circle", "blue square", "green triangle", "yellow star",
                          "purple heart | violet heart", "orange ring"]
    window = MainWindow(ModelChoice("clipdesk-demo", "demo", "cpu", "torch"), settings)
    window.resize(1400, 860)  # the width issue 15 saw a column left unused at
    window.show()
    window.add_paths([tmp / "shapes"])
    done = []
    window.idle.connect(lambda: done.append(1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (done and len(window.session) == len(images) + 1
                                               and not window.thumbnails.busy()):
        app.processEvents()
        time.sleep(0.02)
    window.image_view.setCurrentIndex(window.grid_proxy.index(3, 0))
    window.similar_action.trigger()  # the ranked view, with its "Similar to … ✕" chip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not window.session.search_query:
        app.processEvents()
        time.sleep(0.02)
    window.image_view.setCurrentIndex(window.grid_proxy.index(0, 0))
    end = time.monotonic() + 2
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"saved {out} ({len(window.session)} images, status: {window.status_label.text()})")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
