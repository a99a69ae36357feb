"""What the grid shows while no image is loaded (`emptyState`): what to do first, and one click
to try the demo. A widget rather than text painted on the grid, so its buttons can be clicked."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

STEPS = (
    "<h2>Drop images or folders here</h2>"
    "<ol style='margin-left: 0'>"
    "<li>Add pictures: drop files or folders on this window, paste them (Ctrl+V), "
    "or use the buttons below.</li>"
    "<li>Type the labels you want on the right (for example <i>cat</i>, <i>dog</i>) and press Enter.</li>"
    "<li>Every image gets the label that fits it best. Search by text, sort into folders, "
    "export the results; Help › Getting started says more.</li>"
    "</ol>"
)


class EmptyState(QWidget):
    add_images = Signal()
    add_folder = Signal()
    try_demo = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        self.text = QLabel(STEPS)
        self.text.setObjectName("emptyStateText")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.buttons = {}
        row = QHBoxLayout()
        row.addStretch(1)
        for name, text, signal in (("addImagesButton", "Add images…", self.add_images),
                                   ("addFolderButton", "Add folder…", self.add_folder),
                                   ("tryDemoButton", "Try the demo", self.try_demo)):
            button = QPushButton(text)
            button.setObjectName(name)
            button.clicked.connect(signal.emit)
            row.addWidget(button)
            self.buttons[name] = button
        row.addStretch(1)
        self.buttons["tryDemoButton"].setToolTip("Load the built-in demo model with its sample pictures and labels")
        self.buttons["tryDemoButton"].setDefault(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 12, 24, 12)
        layout.addStretch(1)
        layout.addWidget(self.text)
        layout.addLayout(row)
        layout.addStretch(2)
