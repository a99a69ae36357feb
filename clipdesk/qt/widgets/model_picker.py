"""A filterable list of every open_clip architecture and tag (✓ = downloaded), instead of 100+
cascading menu items: type "b-32 openai" and pick."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
)


class ModelPicker(QDialog):
    chosen = Signal(str, str)  # arch, pretrained tag

    def __init__(self, entries, current: tuple[str, str] = ("", ""), parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setWindowTitle("Pretrained models")
        self.resize(520, 560)
        self.filter = QLineEdit(placeholderText="Filter, e.g. “b-32 openai” or “✓” for downloaded")
        self.filter.setObjectName("modelFilter")
        self.filter.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setObjectName("modelList")
        self.count = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Load")
        layout = QVBoxLayout(self)
        for widget in (self.filter, self.list, self.count, buttons):
            layout.addWidget(widget)
        for entry in entries:
            text = f"{'✓' if entry.available else '  '}  {entry.arch}  ·  {entry.pretrained}"
            item = QListWidgetItem(text, self.list)
            item.setData(Qt.ItemDataRole.UserRole, (entry.arch, entry.pretrained))
            if (entry.arch, entry.pretrained) == tuple(current):
                self.list.setCurrentItem(item)
        self.filter.textChanged.connect(self.apply_filter)
        self.filter.returnPressed.connect(self.accept)  # Enter takes the first match
        self.list.itemActivated.connect(lambda _item: self.accept())
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.apply_filter("")

    def apply_filter(self, text: str) -> None:
        words = text.casefold().split()
        shown = 0
        for row in range(self.list.count()):
            item = self.list.item(row)
            visible = all(word in item.text().casefold() for word in words)
            item.setHidden(not visible)
            shown += visible
        current = self.list.currentItem()
        if current is None or current.isHidden():
            first = next((self.list.item(r) for r in range(self.list.count()) if not self.list.item(r).isHidden()), None)
            self.list.setCurrentItem(first)
        self.count.setText(f"{shown} of {self.list.count()} models")

    def accept(self) -> None:
        item = self.list.currentItem()
        if item is None or item.isHidden():
            return
        self.chosen.emit(*item.data(Qt.ItemDataRole.UserRole))
        super().accept()
