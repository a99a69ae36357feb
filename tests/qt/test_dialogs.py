"""Training dialog (real quick job and a scripted one), sort into folders with undo, via the GUI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu
from qt_helpers import wait_idle

from clipdesk.core.jobs import Progress
from clipdesk.qt.widgets.finetune_dialog import FinetuneDialog


def colour_folders(root: Path, per_class: int = 6) -> Path:
    """Classes a model can learn: solid colours with a little noise."""
    rng = np.random.default_rng(0)
    for name, rgb in (("red", (220, 30, 30)), ("blue", (30, 40, 220))):
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / name / f"{name}{i}.png")
    (root / "red" / "notes.txt").write_text("not an image")
    return root


def training_action(window):
    menu = window.findChild(QMenu, "trainingMenu")
    return next(a for a in menu.actions() if a.text().startswith("Fine-tune"))


def test_finetune_dialog_runs_the_real_quick_job(qtbot, open_window, tmp_path):
    window = open_window()
    training_action(window).trigger()
    dialog = window.finetune_dialog
    assert isinstance(dialog, FinetuneDialog) and dialog.isVisible()
    folder = colour_folders(tmp_path / "colours")
    dialog.folder.setText(str(folder))
    dialog.scan()
    qtbot.waitUntil(lambda: dialog.classes.rowCount() == 2, timeout=20000)
    assert {dialog.classes.item(r, 0).text(): dialog.classes.item(r, 1).text() for r in range(2)} == {
        "blue": "6", "red": "6"}
    dialog.epochs.setValue(30)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.result is not None or "failed" in dialog.status.text(), timeout=90000)
    assert dialog.result is not None, dialog.status.text()
    result = dialog.result
    assert dialog.plot.loss or dialog.plot.accuracy  # the live plot received points
    assert dialog.confusion.rowCount() == 2 and dialog.confusion.columnCount() == 2
    total = sum(int(dialog.confusion.item(i, j).text()) for i in range(2) for j in range(2))
    assert total == len(result.val_true)
    dialog.show_cell(0, 0)
    expected = [str(p) for p, t, q in zip(result.val_paths, result.val_true, result.val_pred) if t == q == 0]
    assert [dialog.cell_images.item(i).text() for i in range(dialog.cell_images.count())] == (
        expected or ["(no images)"])
    assert "→ after" in dialog.accuracy.text()
    with qtbot.waitSignal(window.model_loaded, timeout=60000):
        dialog.use_button.click()
    assert Path(window.model_info["pretrained"]) == Path(result.model_dir)


class FakeTraining:
    """A scripted training API: yields progress until cancelled (tests cancel mid-run)."""

    def __init__(self) -> None:
        self.FinetuneConfig = lambda **kw: SimpleNamespace(**kw)
        self.configs = []

    def scan_dataset(self, folder):
        if not Path(folder).is_dir():
            raise ValueError(f"{folder} is not a folder.")
        return SimpleNamespace(classes=["a", "b"], counts={"a": 3, "b": 4}, skipped=["x.txt"])

    def finetune_job(self, config, cancel=None):
        self.configs.append(config)
        for step in range(10_000):
            cancel.check()
            yield Progress(step, None, "Training", payload={"kind": "train", "step": step, "epoch": 0,
                                                            "loss": 1.0 / (step + 1)})
            if step % 5 == 4:
                yield Progress(step, None, payload={"kind": "val", "epoch": step // 5, "accuracy": 0.5})
            import time

            time.sleep(0.005)


def test_finetune_dialog_cancel_and_bad_folder(qtbot, open_window, tmp_path):
    api = FakeTraining()
    window = open_window(training_api=api)
    dialog = window.open_finetune_dialog()
    dialog.folder.setText(str(tmp_path / "missing"))
    dialog.scan()
    qtbot.waitUntil(lambda: "not a folder" in dialog.scan_note.text(), timeout=10000)
    assert not dialog.start_button.isEnabled()
    dialog.folder.setText(str(tmp_path))
    dialog.scan()
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=10000)
    assert "Skipped 1" in dialog.scan_note.text()
    dialog.method.setCurrentIndex(dialog.method.findData("full"))
    dialog.start_button.click()
    qtbot.waitUntil(lambda: len(dialog.plot.accuracy) >= 2, timeout=20000)
    assert api.configs[0].method == "full" and api.configs[0].epochs is None
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=10000)
    assert "cancelled" in dialog.status.text().lower()
    assert not dialog.use_button.isEnabled()


@pytest.mark.parametrize("mode", ["move", "copy"])
def test_sort_into_folders_and_undo(qtbot, open_window, make_images, tmp_path, mode):
    window = open_window()
    images = make_images(5)
    window.add_paths(images)
    window.session.set_labels(["cat", "dog"])
    wait_idle(qtbot, window, 5)
    window.label_editor.margin.setValue(0)
    # One image unsure: a margin threshold just above its own margin.
    margins = [window.session.decision(r).margin for r in range(5)]
    unsure_row = int(np.argmin(margins))
    window.label_editor.margin.setValue(int(np.ceil(margins[unsure_row] * 100 + 1e-9)) or 1)
    expected = {window.session.items[r].path.name: ("unsure" if window.session.decision(r).unsure
                                                   else window.session.decision(r).label) for r in range(5)}
    assert "unsure" in expected.values()
    dest = tmp_path / "sorted"
    (dest / expected[images[0].name]).mkdir(parents=True)
    (dest / expected[images[0].name] / images[0].name).write_bytes(b"existing")  # must survive

    dialog = window.open_sort_dialog()
    dialog.destination.setText(str(dest))
    (dialog.move_radio if mode == "move" else dialog.copy_radio).setChecked(True)
    counts = {dialog.table.item(r, 0).text(): int(dialog.table.item(r, 1).text()) for r in range(dialog.table.rowCount())}
    assert sum(counts.values()) == 5 and counts.get("unsure/", 0) == list(expected.values()).count("unsure")
    dialog.sort_button.click()
    qtbot.waitUntil(lambda: window.last_sort is not None and bool(window.last_sort.done), timeout=20000)

    assert (dest / expected[images[0].name] / images[0].name).read_bytes() == b"existing"
    renamed = dest / expected[images[0].name] / f"{images[0].stem} (1){images[0].suffix}"
    assert renamed.is_file()
    for image in images[1:]:
        assert (dest / expected[image.name] / image.name).is_file()
        assert image.exists() == (mode == "copy")
    if mode == "move":  # the window follows the files
        assert window.session.row_of(renamed) is not None and window.session.row_of(images[0]) is None

    if mode == "move":
        window.undo_sort_action.trigger()
    else:  # Edit › Undo (Ctrl+Z) goes through the same verified undo
        assert window.undo.stack.undoText().startswith("Copy 5 files")
        window.findChild(QAction, "undoAction").trigger()
        assert window.last_sort is None, window.status_label.text()
        assert not window.undo.stack.canRedo()  # a sort is not redone
    assert all(image.is_file() for image in images)
    assert (dest / expected[images[0].name] / images[0].name).read_bytes() == b"existing"
    assert not renamed.exists() and not (dest / "unsure").exists()
    assert window.session.row_of(images[0]) is not None
    assert not window.undo_sort_action.isEnabled()


def test_enter_in_the_finetune_folder_field_scans_not_browses(qtbot, open_window, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    browsed = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: browsed.append(a) or "")
    window = open_window(training_api=FakeTraining(), wait=False)
    dialog = window.open_finetune_dialog()
    qtbot.keyClicks(dialog.folder, str(tmp_path / "missing"))
    qtbot.keyClick(dialog.folder, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "not a folder" in dialog.scan_note.text(), timeout=10000)
    assert browsed == []
    dialog.reject()
