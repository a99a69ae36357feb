"""Sort into folders…: choose a destination and copy/move, see the plan, then confirm."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from clipdesk.core.errors import ClipdeskError
from clipdesk.core.session import UNSURE, Session
from clipdesk.core.sorting import SortPlan, folder_name, plan_sort


def assignments(session: Session, include_unsure: bool = True) -> list[tuple[Path, str]]:
    """(file, folder label) for every classified image; multi-label images go to their top label."""
    pairs = []
    for row, item in enumerate(session.items):
        decision = session.decision(row)
        if decision is None:
            continue
        label = UNSURE if decision.unsure else (decision.labels[0] if decision.labels else decision.label)
        if label == UNSURE and not include_unsure:
            continue
        pairs.append((item.path, label))
    return pairs


class SortDialog(QDialog):
    def __init__(self, session: Session, destination: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("sortDialog")
        self.setWindowTitle("Sort into folders")
        self.session = session
        self.plan: SortPlan | None = None

        self.destination = QLineEdit(destination)
        self.destination.setObjectName("sortDestination")
        self.destination.setPlaceholderText("Destination folder")
        self.destination.textChanged.connect(self.update_plan)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.copy_radio = QRadioButton("Copy files")
        self.copy_radio.setChecked(True)
        self.move_radio = QRadioButton("Move files (can be undone)")
        self.include_unsure = QCheckBox(f"Put unsure images into “{UNSURE}/”")
        self.include_unsure.setChecked(True)
        self.include_unsure.toggled.connect(self.update_plan)
        self.table = QTableWidget(0, 2)
        self.table.setObjectName("sortPlanTable")
        self.table.setHorizontalHeaderLabels(["Folder", "Files"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.sort_button = self.buttons.addButton("Sort", QDialogButtonBox.ButtonRole.AcceptRole)
        self.sort_button.setObjectName("sortButton")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.destination, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        modes = QHBoxLayout()
        modes.addWidget(self.copy_radio)
        modes.addWidget(self.move_radio)
        modes.addStretch(1)
        layout.addLayout(modes)
        layout.addWidget(self.include_unsure)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        self.resize(460, 420)
        self.update_plan()

    @property
    def mode(self) -> str:
        return "move" if self.move_radio.isChecked() else "copy"

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sort into", self.destination.text())
        if folder:
            self.destination.setText(folder)

    def _unsure_option(self) -> None:
        """The unsure box says what it does now: nothing while no image can be unsure."""
        unsure_possible = self.session.threshold > 0 or self.session.margin > 0
        count = sum(1 for _, label in assignments(self.session) if label == UNSURE)
        self.include_unsure.setEnabled(unsure_possible)
        if not unsure_possible:
            self.include_unsure.setText(f"Put unsure images into “{UNSURE}/” (no image is unsure: "
                                        "“Unsure below” and “margin” are off in the Labels panel)")
        else:
            self.include_unsure.setText(f"Put the {count} unsure image{'s' if count != 1 else ''} into "
                                        f"“{UNSURE}/” (unticked, they stay where they are)")

    def _show_counts(self, counts: dict[str, int]) -> None:
        self.table.setRowCount(len(counts))
        for i, (folder, count) in enumerate(sorted(counts.items())):
            self.table.setItem(i, 0, QTableWidgetItem(f"{folder}/"))
            self.table.setItem(i, 1, QTableWidgetItem(str(count)))

    def update_plan(self) -> None:
        """The folders follow from the labels alone, so they show before a destination is chosen."""
        self.plan = None
        self._unsure_option()
        pairs = assignments(self.session, self.include_unsure.isChecked() and self.include_unsure.isEnabled())
        text = self.destination.text().strip()
        counts = dict(Counter(folder_name(label) for _, label in pairs))
        self._show_counts(counts)
        if not pairs:
            self.summary.setText("No classified images to sort yet.")
        elif not text:
            self.summary.setText(f"{len(pairs)} files would go into these {len(counts)} folders. "
                                 "Choose a destination folder.")
        else:
            try:
                self.plan = plan_sort(pairs, Path(text))
            except ClipdeskError as error:
                self.summary.setText(str(error))
        if self.plan is not None:
            counts = self.plan.counts()
            self._show_counts(counts)
            renamed = sum(1 for src, dst in self.plan.moves if dst.name != src.name)
            note = f" {renamed} get a numbered name to avoid overwriting." if renamed else ""
            self.summary.setText(f"{len(self.plan.moves)} files into {len(counts)} folders in "
                                 f"{self.plan.destination}.{note} Existing files are never overwritten.")
        self.sort_button.setEnabled(self.plan is not None)
