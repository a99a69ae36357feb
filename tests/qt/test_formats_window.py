"""The window takes HEIC, AVIF and camera RAW like any photo (thumbnails included), folds a RAW
file into its JPEG twin unless the setting keeps them apart, and lists what a scan skipped."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from synth_images import save_image, synth_array
from synth_raw import write_dng

from clipdesk.core import decoders
from clipdesk.core.settings import Settings


def wait_classified(qtbot, window, count: int) -> None:
    """Until `count` images are in, all embedded and scored (the window's own idle condition)."""
    def settled():
        return (len(window.session) == count and window.model_ready
                and window._classify_task is None and window._rescore_task is None
                and not window.session.pending_paths() and not window._needs_rescore())

    qtbot.waitUntil(settled, timeout=60000)


def photo_folder(root):
    decoders.registry()  # pillow-heif's saver
    folder = root / "card"
    folder.mkdir()
    Image.fromarray(synth_array(1)).save(folder / "photo.avif", "AVIF")
    Image.fromarray(synth_array(2)).save(folder / "phone.heic", "HEIF")
    save_image(folder / "IMG_0001.JPG", seed=3)
    write_dng(folder / "IMG_0001.dng", synth_array(3, 96, 64))
    write_dng(folder / "IMG_0002.dng", synth_array(4, 96, 64), preview=synth_array(5, 192, 128))
    for name in ("a.mov", "b.mov"):
        (folder / name).write_bytes(b"x")
    return folder


@pytest.mark.parametrize("separate", [False, True])
def test_window_adds_every_format_and_lists_what_it_skipped(qtbot, open_window, tmp_path, separate):
    folder = photo_folder(tmp_path)
    window = open_window(Settings({"keep_raw_pairs_separate": separate}, path=tmp_path / "s.json"))
    window.add_paths([folder])
    line = window.findChild(QLineEdit, "labelInput")
    qtbot.keyClicks(line, "cat, dog")
    qtbot.keyClick(line, Qt.Key.Key_Return)
    names = ["IMG_0001.JPG", "IMG_0002.dng", "phone.heic", "photo.avif"]
    if separate:
        names = sorted([*names, "IMG_0001.dng"])
    wait_classified(qtbot, window, len(names))

    assert sorted(item.path.name for item in window.session.items) == names
    assert all(item.status == "done" for item in window.session.items)
    assert all(np.isfinite(item.probs).all() for item in window.session.items)
    assert window.notes == ["2 files skipped: 2 .mov (no installed decoder reads them)."]
    assert window.badge.isVisible() and "1 problem" in window.badge.text()
    qtbot.waitUntil(lambda: all(window.thumbnails.get(item.path) is not None
                                for item in window.session.items), timeout=30000)
    for item in window.session.items:
        thumb = window.thumbnails.get(item.path, load=False)
        assert max(thumb.width(), thumb.height()) > 0 and not thumb.isNull()
