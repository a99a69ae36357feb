"""Issue 25, point 5: the fine-tune dialog shows the folder layout as an example tree with the
minimum per class, kept in view while typing, and says in plain words what its empty result
panes will hold."""

from __future__ import annotations

from layout_checks import layout_problems
from PySide6.QtWidgets import QGroupBox, QMenu

from training.api import FinetuneConfig


def _training_action(window, text: str):
    menu = window.findChild(QMenu, "trainingMenu")
    return next(a for a in menu.actions() if a.text().startswith(text))


def test_finetune_dialog_explains_the_folder_and_the_results(qtbot, open_window, tmp_path):
    window = open_window()
    _training_action(window, "Fine-tune on folder").trigger()
    dialog = window.finetune_dialog
    qtbot.waitUntil(dialog.isVisible)
    help_label = dialog.layout_help
    text = help_label.text()
    assert "pets/" in text and "cat/" in text and "dog/" in text  # an example tree
    assert f"at least {FinetuneConfig(folder='.').min_per_class} images per class" in text
    qtbot.keyClicks(dialog.folder, str(tmp_path / "pets"))  # typing: the help stays in view
    assert help_label.isVisible() and help_label.text() == text
    titles = [box.title() for box in dialog.findChildren(QGroupBox)]
    assert "How well it does on images kept aside (never used for training)" in titles
    assert not any("chose nothing" in title for title in titles)
    assert dialog.accuracy.text().startswith("Not trained yet.")
    assert dialog.cell_images.count() == 1 and "table" in dialog.cell_images.item(0).text()
    assert layout_problems(dialog) == []
    dialog.reject()
