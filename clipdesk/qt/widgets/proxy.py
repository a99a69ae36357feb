"""A filter/sort proxy shared by the grid and the table: filter by predicted label, search order."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel

from clipdesk.core.session import UNSURE, Session

ALL = ""


class SessionProxy(QSortFilterProxyModel):
    """Rows are session rows. While a search is active, best matches come first."""

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.label_filter = ALL
        self.search_order = True  # the grid follows search ranking; the table sorts by column

    def set_label_filter(self, label: str) -> None:
        self.label_filter = label
        self.refilter()

    def refilter(self) -> None:
        """Re-run the filter (Qt 6.9 replaced invalidateFilter by begin/endFilterChange)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        if not self.label_filter:
            return True
        if row >= len(self.session.items):
            return False
        decision = self.session.decision(row)
        if decision is None:
            return False
        if self.label_filter == UNSURE:
            return decision.unsure
        return self.label_filter in decision.labels

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802
        if self.search_order:
            items = self.session.items
            a, b = items[left.row()].similarity, items[right.row()].similarity
            if a is not None and b is not None and a != b:
                return a > b  # descending similarity in ascending sort order
            return left.row() < right.row()
        return super().lessThan(left, right)
