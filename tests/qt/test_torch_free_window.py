"""The window in a torch-free install: Training › Fine-tune on folder… with the full method says in
one sentence that it needs torch and the command that adds it (Start stays off; quick runs), and
loading another open_clip model says in one sentence what to install.

torch is already imported in this process (the window's tiny model), so the fine-tune dialog's
install is made torch-free where training asks (`training.config.torch_available`), and the model
load's by `sys.modules["open_clip"] = None`, which makes `import open_clip` raise ImportError as
on a machine without it. The CLI's tests (tests/core/test_torch_free*.py) block the real imports
in a subprocess.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

import training.config

INSTALL = "pip install 'clipdesk[train]'"


def _class_folder(root: Path) -> Path:
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (24, 24), colour).save(root / name / f"{i}.png")
    return root


def test_full_without_torch_says_what_to_install(qtbot, open_window, tmp_path, monkeypatch):
    monkeypatch.setattr(training.config, "torch_available", lambda: False)
    window = open_window()
    menu = window.findChild(QMenu, "trainingMenu")
    next(a for a in menu.actions() if a.text().startswith("Fine-tune on folder")).trigger()
    dialog = window.finetune_dialog
    qtbot.waitUntil(dialog.isVisible)
    qtbot.keyClicks(dialog.folder, str(_class_folder(tmp_path / "colours")))
    qtbot.keyClick(dialog.folder, Qt.Key.Key_Return)  # scans the folder
    qtbot.waitUntil(lambda: dialog.scan_note.text().startswith("2 classes"), timeout=10000)
    base_text = dialog.status.text()
    assert dialog.method.currentData() == "quick" and dialog.start_button.isEnabled()  # quick: no torch needed

    dialog.method.setFocus()
    qtbot.keyClick(dialog.method, Qt.Key.Key_Down)  # the user picks "Full — fine-tune both encoders"
    assert dialog.method.currentData() == "full"
    sentence = dialog.status.text()
    assert "needs torch" in sentence and INSTALL in sentence, sentence
    assert sentence.count(". ") == 0 and sentence.endswith(".")  # one sentence
    assert dialog.status.isVisible() and not dialog.start_button.isEnabled()
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)  # disabled: nothing starts
    assert dialog.task is None

    qtbot.keyClick(dialog.method, Qt.Key.Key_Up)  # back to quick: the base model line, Start on again
    assert dialog.method.currentData() == "quick"
    assert dialog.status.text() == base_text and dialog.start_button.isEnabled()
    dialog.reject()


def test_full_with_torch_keeps_start(qtbot, open_window, tmp_path):
    """The other side: with torch, choosing full shows no such sentence (the check really looks)."""
    window = open_window()
    menu = window.findChild(QMenu, "trainingMenu")
    next(a for a in menu.actions() if a.text().startswith("Fine-tune on folder")).trigger()
    dialog = window.finetune_dialog
    qtbot.waitUntil(dialog.isVisible)
    qtbot.keyClicks(dialog.folder, str(_class_folder(tmp_path / "colours")))
    qtbot.keyClick(dialog.folder, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.scan_note.text().startswith("2 classes"), timeout=10000)
    dialog.method.setFocus()
    qtbot.keyClick(dialog.method, Qt.Key.Key_Down)
    assert dialog.method.currentData() == "full"
    assert "needs torch" not in dialog.status.text() and dialog.start_button.isEnabled()
    dialog.reject()


def test_another_model_without_torch_says_what_to_install(qtbot, open_window, monkeypatch):
    window = open_window()
    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` now fails
    with qtbot.waitSignal(window.model_failed, timeout=30000) as failed:
        window.load_model("ViT-B-32", "none")
    message = failed.args[0]
    sentence = message.split("\n\n")[0]  # then the menu hint: Load checkpoint… or the demo model
    assert "needs torch" in sentence and "pip install clipdesk" in sentence, message
    assert sentence.count(". ") == 0 and "Traceback" not in message
    box = window.model_error_box
    assert box is not None and box.isVisible() and box.text() == message
    assert window.model_ready  # still on the model that was working
    box.reject()
