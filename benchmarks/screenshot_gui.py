"""Take the README screenshot: the real window on the demo model with images and results showing.

    xvfb-run -a python benchmarks/screenshot_gui.py docs/screenshot.png
    xvfb-run -a python benchmarks/screenshot_gui.py docs/screenshot_multilabel.png --multi-label
    xvfb-run -a python benchmarks/screenshot_gui.py docs/screenshot_800x600.png --size=800x600
    xvfb-run -a python benchmarks/screenshot_gui.py docs/screenshot_start.png --size=1000x700 --empty

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


def make_pairs(folder: Path, n: int = 15) -> list[Path]:
    """Two shapes of the labels' world in each picture (multi-label), named after them."""
    import numpy as np

    from training.synthetic import render, sample_scene

    rng = np.random.default_rng(11)
    pairs = [tuple(label.split()) for label in MULTI_LABELS]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        scene = sample_scene(rng, pairs=pairs, n_objects=2 if i % 5 else 1)
        name = "+".join(f"{c}-{s}" for c, s in scene.pairs)
        paths.append(folder / f"{i:02d}-{name}.png")
        render(scene, 192).save(paths[-1])
    return paths


LABELS = ["red circle", "blue square", "green triangle", "yellow star", "purple heart", "orange ring"]
MULTI_LABELS = ["red circle", "blue square", "green triangle", "yellow star", "white cross", "orange ring"]


def wait(app, done, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done():
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    names = [arg for arg in argv if not arg.startswith("--")]
    out = Path(names[0] if names else ROOT / "docs" / "screenshot.png")
    tmp = Path(tempfile.mkdtemp(prefix="clipdesk-shot-"))
    for name in ("CACHE", "CONFIG", "DATA"):
        os.environ[f"CLIPDESK_{name}_DIR"] = str(tmp / name.lower())
    os.environ["HF_HUB_OFFLINE"] = "1"
    from PySide6.QtWidgets import QApplication

    from clipdesk.core.settings import Settings
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    app = QApplication([])
    app.setStyle("Fusion")
    multi = "--multi-label" in argv
    images = make_pairs(tmp / "shapes") if multi else make_images(tmp / "shapes")
    settings = Settings.load()
    settings["labels"] = MULTI_LABELS if multi else LABELS
    window = MainWindow(ModelChoice("clipdesk-demo", "demo", "cpu", "torch"), settings)
    size = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--size=")), "1400x860")
    width, height = (int(n) for n in size.split("x"))
    window.resize(width, height)  # 1400x860: the width issue 15 saw a column left unused at
    window.show()
    if "--empty" in argv:  # the first screen a newcomer sees: no image, no label
        window.session.set_labels([])
        wait(app, lambda: window.model_ready, 120)
        wait(app, lambda: False, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        print(f"saved {out} (first screen)")
        window.close()
        return 0
    window.add_paths([tmp / "shapes"])
    done = []
    window.idle.connect(lambda: done.append(1))
    expected = len(images) + (0 if multi else 1)
    wait(app, lambda: done and len(window.session) == expected and not window.thumbnails.busy(), 120)
    if multi:  # tick the box as a user would; the quarters are then embedded as pending work
        window.label_editor.multi_label.click()
        wait(app, lambda: window.session.multi_label and not window.session.region_pending()
             and window.classifier.task is None, 120)
        window.image_view.setCurrentIndex(window.grid_proxy.index(1, 0))
    else:
        window.image_view.setCurrentIndex(window.grid_proxy.index(3, 0))
        window.similar_action.trigger()  # the ranked view, with its "Similar to … ✕" chip
        wait(app, lambda: window.session.search_query, 60)
        window.image_view.setCurrentIndex(window.grid_proxy.index(0, 0))
    wait(app, lambda: False, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out))
    print(f"saved {out} ({len(window.session)} images, status: {window.status_label.text()})")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
