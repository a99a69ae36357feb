"""Help › Getting started (F1) and Help › Keyboard shortcuts: a short guide, and the shortcut
list read from the window's own actions, so it always shows the keys that really work here."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

GUIDE = """
<h3>Getting started</h3>
<ol>
<li><b>Add images</b>: drop files or folders on the window, paste them (Ctrl+V), or use
File › Add images… / Add folder…. No images at hand? Click <i>Try the demo</i> on the first screen.</li>
<li><b>Type labels</b> in the Labels panel and press Enter, one at a time or several separated by
commas. <i>car | automobile</i> makes synonyms. Every image gets the label that fits it best.</li>
<li><b>Look at the results</b>: click a card to see every label's score; right-click it to open it,
find similar images, or set its label by hand.</li>
<li><b>Unsure images</b>: set <i>Unsure below</i> to mark images whose best score is low.</li>
<li><b>Search</b> by text (Ctrl+F) or by picture (Find similar); Esc goes back.</li>
<li><b>Use the results</b>: File › Export results… (CSV or JSON), or Sort into folders… (undoable).</li>
<li><b>Teach it</b>: correct a few labels with right-click › Set label, then Training › Fine-tune on
my corrections. Training › Fine-tune on folder… trains on a folder of labelled images.</li>
</ol>
<p>Every change to images and labels can be undone (Edit › Undo).</p>
"""

# Keys handled by the views themselves (not actions): listed so that the table is complete. Kept
# as key names, not QKeySequence objects: a standard key resolved at import time, before the
# QApplication exists, crashes (the platform's bindings are not known yet).
VIEW_KEYS = (
    ("Remove the selected images (grid or table)", QKeySequence.StandardKey.Delete),
    ("Remove the selected labels (label list)", QKeySequence.StandardKey.Delete),
    ("Edit the selected label", Qt.Key.Key_F2),
)


def _clean(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").split("\t")[0]


def shortcut_rows(window: QWidget) -> list[tuple[str, str]]:
    """(what it does, keys) for every action and shortcut of the window that has a key."""
    rows: dict[str, str] = {}
    for action in window.findChildren(QAction):
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        name = action.property("shortcut_name") or _clean(action.text())  # "Undo", not "Undo Add 4 images"
        if keys and name:
            rows.setdefault(name, ", ".join(keys))
    for shortcut in window.findChildren(QShortcut):
        if shortcut.whatsThis() and not shortcut.key().isEmpty():
            rows.setdefault(shortcut.whatsThis(), shortcut.key().toString(QKeySequence.SequenceFormat.NativeText))
    for text, key in VIEW_KEYS:
        rows.setdefault(text, QKeySequence(key).toString(QKeySequence.SequenceFormat.NativeText))
    return sorted(rows.items(), key=lambda row: row[0].casefold())


class GuideDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("guideDialog")
        self.setWindowTitle("Getting started with clipdesk")
        self.text = QTextBrowser()
        self.text.setHtml(GUIDE)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(560, 460)


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 2)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (text, keys) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(text))
            self.table.setItem(i, 1, QTableWidgetItem(keys))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(480, 520)
