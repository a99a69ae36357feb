"""GUI test fixtures: the real window on the tiny random-initialised model, synthetic images."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from qt_helpers import TINY  # noqa: E402
from synth_images import save_image  # noqa: E402

from clipdesk.core.settings import Settings  # noqa: E402


@pytest.fixture
def make_images(tmp_path):
    def make(n: int, folder: Path | None = None, first_seed: int = 0, suffix: str = ".png") -> list[Path]:
        folder = folder or tmp_path / "images"
        return [save_image(folder / f"img{first_seed + i:03d}{suffix}", first_seed + i, 96, 72)
                for i in range(n)]

    return make


@pytest.fixture
def open_window(qtbot):
    """Factory for a shown MainWindow on the tiny model, waiting until the model is loaded."""
    from clipdesk.qt.main_window import MainWindow, ModelChoice

    windows = []

    def open_(settings: Settings | None = None, batch_size: int = 8, training_api=None, wait=True):
        window = MainWindow(ModelChoice(*TINY, "cpu", "torch"), settings or Settings.load(),
                            batch_size=batch_size, training_api=training_api)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        if wait:
            qtbot.waitUntil(lambda: window.model_ready, timeout=60000)
        return window

    yield open_
    for window in windows:
        window.close()


@pytest.fixture(autouse=True)
def empty_clipboard_after_test(qapp):
    """A QMimeData made in Python and left on the clipboard is destroyed by Qt's exit handlers
    after Python has finalised, which segfaults the test process: empty it after each test."""
    yield
    qapp.clipboard().clear()
