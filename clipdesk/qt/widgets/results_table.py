"""The sortable results table (`resultsTable`): file, top label, score, second label, margin."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from clipdesk.core.session import Session

from .image_grid import ERROR_COLOUR, PATH_ROLE, UNSURE_COLOUR
from .repaint_pacer import RepaintPacer
from .session_rows import SessionRowsMixin

COLUMNS = ("File", "Top label", "Score", "Second label", "Margin", "Match")
VALUE_ROLE = Qt.ItemDataRole.UserRole + 2  # raw numbers for sorting and tests


class ResultsTableModel(SessionRowsMixin, QAbstractTableModel):
    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        # A repaint asks for each visible cell's text, colour and alignment: one decision per
        # row, not one per call. Forgotten on every session event, before the views hear of it.
        self._row_values: dict[int, tuple] = {}
        for event in ("added", "about_to_reset", "reset", "changed", "labels", "scores", "options"):
            session.on(event, self._forget_values)
        self._follow_session()

    def _forget_values(self, *_args) -> None:
        self._row_values.clear()

    def _span(self, first: int, last: int):
        return self.index(first, 0), self.index(last, len(COLUMNS) - 1)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.session.items)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return super().headerData(section, orientation, role)

    def _values(self, row: int) -> tuple:
        """(file, top label, score, second label, margin, match) as raw values."""
        values = self._row_values.get(row)
        if values is None:
            values = self._row_values[row] = self._work_out(row)
        return values

    def _work_out(self, row: int) -> tuple:
        item = self.session.items[row]
        decision = self.session.decision(row)
        if decision is None:
            error = item.error.replace(f"{item.path}: ", "")  # the row already names the file
            label = f"⚠ {error}" if item.error else ("waiting…" if item.status == "pending" else "")
            return (item.path.name, label, None, "", None, item.similarity)
        label = f"unsure ({decision.top_label})" if decision.unsure else decision.label
        return (item.path.name, label, decision.score, decision.second_label,
                decision.margin if decision.second_label else None, item.similarity)

    def sort_keys(self, column: int) -> np.ndarray:
        """One key per session row for `column`, computed for all rows at once (NaN: no value)."""
        session = self.session
        if column == 0:
            return np.array([item.path.name.casefold() for item in session.items], dtype=str)
        if column == 5:
            return session.similarity_array()
        arrays = session.decision_arrays()
        names = np.array([*session.score_labels, ""], dtype=str)
        if column in (1, 3):
            index = np.where(arrays.scored, arrays.top if column == 1 else arrays.second, -1)
            keys = names[index]
            if column == 1:
                keys = np.where(arrays.unsure & arrays.scored, np.char.add("unsure ", keys), keys)
            return keys
        score = np.where(arrays.scored, arrays.top_score, np.nan).astype(np.float64)
        if column == 2:
            return score
        return np.where(arrays.second >= 0, score - arrays.second_score, np.nan)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.session.items):
            return None
        return self._role_data(index.row(), index.column(), role)

    def multiData(self, index, roles) -> None:  # noqa: N802
        """Every role a painted cell asks for (text, alignment, colour, font, …) in one Python
        call: Qt's default asks `data()` once per role, 7 calls per cell, each crossing into
        Python and waiting for the GIL while classification threads run (issue 21)."""
        valid = index.isValid() and index.row() < len(self.session.items)
        for role_data in roles:
            if valid:
                role_data.setData(self._role_data(index.row(), index.column(), role_data.role()))
            else:
                role_data.clearData()

    def _role_data(self, row: int, column: int, role: int):
        if role == PATH_ROLE:
            return self.session.items[row].path
        value = self._values(row)[column]
        if role == VALUE_ROLE:
            return value
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return ""
            if column in (2, 4):
                return f"{value:.1%}"
            if column == 5:
                return f"{value:.3f}"
            return value
        if role == Qt.ItemDataRole.ToolTipRole:
            item = self.session.items[row]
            return f"{item.path}\n{item.error}" if item.error else str(item.path)
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            item = self.session.items[row]
            if item.error:
                return QBrush(ERROR_COLOUR)
            arrays = self.session.decision_arrays()  # cached: no second `decide` per painted row
            if arrays.scored[row] and arrays.unsure[row]:
                return QBrush(UNSURE_COLOUR)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (2, 4, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ResultsTable(QTableView):
    delete_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("resultsTable")
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(24)
        self.setWordWrap(False)
        self._pacer = RepaintPacer(self)  # while results stream in: a few repaints a second

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:  # noqa: N802
        """QTableView repaints its whole viewport for any range of rows, asking the model for
        every visible cell (Python); rows do not change height or width here."""
        self._pacer.changed(top_left, bottom_right)

    def setModel(self, model) -> None:  # noqa: N802
        super().setModel(model)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # The file name takes what the other columns leave: every column stays in view down to
        # an 800 px window, where fixed widths pushed Second label, Margin and Match off the edge.
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        for column, width in enumerate((0, 110, 60, 110, 60, 56)):
            if width:
                self.setColumnWidth(column, width)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Delete) or event.key() == Qt.Key.Key_Backspace:
            self.delete_requested.emit()
            return
        super().keyPressEvent(event)
