"""Issue 25, points 6 and 7: Sort into folders previews its folders before a destination is chosen
and says when "unsure" does nothing; Export starts in the images' folder and offers CSV and JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLineEdit
from qt_helpers import window_with_images

from clipdesk.core.paths import resources_dir


def _table(dialog) -> dict[str, int]:
    table = dialog.table
    return {table.item(i, 0).text(): int(table.item(i, 1).text()) for i in range(table.rowCount())}


def test_sort_preview_before_destination_and_unsure_option(qtbot, open_window, make_images, tmp_path):
    window = window_with_images(qtbot, open_window, make_images(8), labels=["cat", "dog", "bird"])
    labels = window.session.score_labels
    expected = Counter(f"{labels[int(np.argmax(item.probs))]}/" for item in window.session.items)
    window.sort_action.trigger()
    dialog = window.sort_dialog
    assert dialog.destination.text() == ""
    assert _table(dialog) == dict(expected)  # the folders show before a destination is chosen
    assert "Choose a destination" in dialog.summary.text() and not dialog.sort_button.isEnabled()
    assert not dialog.include_unsure.isEnabled()  # nothing can be unsure: it says so
    assert "no image is unsure" in dialog.include_unsure.text()
    dialog.reject()

    top = [float(item.probs.max()) for item in window.session.items]
    # a whole percentage that splits these images into sure and unsure ones
    percent = next(p for p in range(1, 100) if 0 < sum(score < p / 100 for score in top) < 8)
    unsure = sum(score < percent / 100 for score in top)
    window.label_editor.threshold.setValue(percent)  # "Unsure below", as a user sets it
    window.sort_action.trigger()
    dialog = window.sort_dialog
    assert dialog.include_unsure.isEnabled() and dialog.include_unsure.isChecked()
    assert dialog.include_unsure.text().startswith(f"Put the {unsure} unsure image")
    assert _table(dialog)["unsure/"] == unsure
    qtbot.mouseClick(dialog.include_unsure, Qt.MouseButton.LeftButton)  # untick: they stay put
    assert "unsure/" not in _table(dialog) and sum(_table(dialog).values()) == 8 - unsure
    qtbot.keyClicks(dialog.destination, str(tmp_path / "sorted"))
    assert dialog.sort_button.isEnabled() and str(tmp_path / "sorted") in dialog.summary.text()
    dialog.reject()


def _choose_type(qtbot, dialog, text: str) -> None:
    """Pick a file type in the dialog's own combo box with the keyboard, as a user would."""
    combo = dialog.findChild(QComboBox, "fileTypeCombo")
    combo.setFocus()
    index = next(i for i in range(combo.count()) if combo.itemText(i).startswith(text))
    while combo.currentIndex() != index:
        qtbot.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < index else Qt.Key.Key_Up)


def test_export_starts_in_the_images_folder_and_writes_json(qtbot, open_window, make_images):
    images = make_images(4)
    window = window_with_images(qtbot, open_window, images, labels=["cat", "dog"])
    window.activateWindow()
    window.image_view.setFocus()
    qtbot.keyClick(window.image_view, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Ctrl+E
    dialog = window.sorter.export_file_dialog
    assert dialog is not None and dialog.isVisible()  # opened at once, without blocking the window
    assert Path(dialog.directory().absolutePath()) == images[0].parent
    combo = dialog.findChild(QComboBox, "fileTypeCombo")
    assert [combo.itemText(i).split(":")[0] for i in range(combo.count())] == ["CSV", "JSON"]
    _choose_type(qtbot, dialog, "JSON")
    assert Path(dialog.selectedFiles()[0]).name == "results.json"  # the name follows the type
    name = dialog.findChild(QLineEdit, "fileNameEdit")
    name.selectAll()
    qtbot.keyClicks(name, "scores")  # typed without a suffix: the chosen type's is added
    qtbot.keyClick(name, Qt.Key.Key_Return)
    target = images[0].parent / "scores.json"
    qtbot.waitUntil(target.exists)
    written = json.loads(target.read_text())
    assert sorted(Path(entry["path"]).name for entry in written["results"]) == sorted(p.name for p in images)
    assert written["labels"] == ["cat", "dog"]
    assert window.settings["export_folder"] == str(images[0].parent)


def test_export_never_starts_in_the_installed_demo_samples(qtbot, open_window):
    samples = sorted((resources_dir() / "models" / "demo" / "samples").glob("*.png"))
    window = window_with_images(qtbot, open_window, samples[:3])
    window.export_action.trigger()
    dialog = window.sorter.export_file_dialog
    assert Path(dialog.directory().absolutePath()) == Path.home()
    dialog.reject()
