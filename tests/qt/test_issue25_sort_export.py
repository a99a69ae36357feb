"""Issue 25, points 6 and 7: Sort into folders previews its folders before a destination is chosen
and says when "unsure" does nothing; Export starts in the images' folder and offers CSV and JSON."""

from __future__ import annotations

from collections import Counter

import numpy as np
from PySide6.QtCore import Qt
from qt_helpers import window_with_images


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
