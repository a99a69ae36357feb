"""Every per-file problem in one list (the status bar badge opens it): never a flood of dialogs."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QListWidget, QVBoxLayout

from clipdesk.core.session import Session


class ErrorsDialog(QDialog):
    def __init__(self, session: Session, notes: list[str], parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("errorsDialog")
        self.setWindowTitle("Problems")
        self.list = QListWidget()
        for item in session.items:
            if item.error:
                self.list.addItem(f"{item.path.name}: {item.error}")
        for note in notes:
            self.list.addItem(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(620, 320)
