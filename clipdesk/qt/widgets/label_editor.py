"""The label editor (`labelEditor`): type + Enter adds, edit in place, reorder, paste lists,
import/export .txt, recent sets, template set and the unsure/multi-label options."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.core.errors import LabelError
from clipdesk.core.prompts import TEMPLATE_SET_NAMES, split_labels
from clipdesk.core.session import Session

TEMPLATE_HELP = {
    "none": "label as typed",
    "photo": "“a photo of a {}.”",
    "ensemble": "7 prompts averaged",
    "imagenet80": "80 OpenAI prompts",
}


class LabelEditor(QWidget):
    """A view over `Session.labels`; every edit goes through the session (which validates)."""

    import_requested = Signal()
    export_requested = Signal()
    message = Signal(str)  # one sentence for the status bar (duplicates, empty labels)

    def __init__(self, session: Session, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("labelEditor")
        self.session = session
        self.recent_sets: list[list[str]] = []
        self._syncing = False

        self.input = QLineEdit()
        self.input.setObjectName("labelInput")
        self.input.setPlaceholderText("Type a label, press Enter  (car | automobile = synonyms)")
        self.input.setClearButtonEnabled(True)
        self.input.returnPressed.connect(self._add_from_input)
        self.input.installEventFilter(self)

        self.list = QListWidget()
        self.list.setObjectName("labelList")
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.itemChanged.connect(self._item_edited)
        self.list.model().rowsMoved.connect(self._rows_moved)
        self.list.installEventFilter(self)
        self.list.setToolTip("Double-click or F2 to edit · drag to reorder · Delete removes")

        self.count_label = QLabel()
        self.count_label.setObjectName("labelCount")
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for text, tip, slot in (
            ("↑", "Move up", lambda: self._move(-1)),
            ("↓", "Move down", lambda: self._move(1)),
            ("✕", "Remove selected labels (Delete)", self.remove_selected),
        ):
            buttons.addWidget(self._tool(text, tip, slot))
        buttons.addStretch(1)
        self.recent_button = self._tool("Recent", "Recent label sets", None)
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self.recent_button)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.recent_button.setMenu(self.recent_menu)
        buttons.addWidget(self.recent_button)
        more = self._tool("⋯", "Import, export, clear", None)
        more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(more)
        menu.addAction("Import labels from .txt…", self.import_requested.emit)
        menu.addAction("Export labels to .txt…", self.export_requested.emit)
        menu.addAction("Paste labels", self.paste_labels)
        menu.addSeparator()
        menu.addAction("Clear all labels", lambda: self.session.set_labels([]))
        more.setMenu(menu)
        buttons.addWidget(more)

        self.templates = QComboBox()
        self.templates.setObjectName("templateCombo")
        self.templates.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.templates.setMinimumContentsLength(8)  # the help text elides in a narrow panel
        for name in TEMPLATE_SET_NAMES:
            self.templates.addItem(f"{name} — {TEMPLATE_HELP.get(name, '')}", name)
        self.templates.currentIndexChanged.connect(
            lambda _i: self.session.set_options(templates=self.templates.currentData()))
        self.multi_label = QCheckBox("Multi-label")
        self.multi_label.setToolTip("Several labels can be present in one image")
        self.multi_label.setObjectName("multiLabelCheck")
        self.multi_label.toggled.connect(lambda on: self.session.set_options(multi_label=on))
        self.threshold = self._spin("Below this top score an image is “unsure” (0 = off)")
        self.threshold.setObjectName("thresholdSpin")
        self.threshold.valueChanged.connect(lambda v: self.session.set_options(threshold=v / 100))
        self.margin = self._spin("Below this gap between the top two labels an image is “unsure” (0 = off)")
        self.margin.setObjectName("marginSpin")
        self.margin.valueChanged.connect(lambda v: self.session.set_options(margin=v / 100))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Prompts", self.templates)
        unsure = QHBoxLayout()  # two short spin boxes share a row: the panel fits 600 px high
        unsure.addWidget(self.threshold, 1)
        margin_label = QLabel("margin")
        margin_label.setToolTip(self.margin.toolTip())
        unsure.addWidget(margin_label)
        unsure.addWidget(self.margin, 1)
        form.addRow("Unsure below", unsure)
        form.addRow(self.multi_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.input)
        self.list.setMinimumHeight(3 * self.list.fontMetrics().height() + 8)  # three rows at least
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        row.addWidget(self.count_label)
        row.addLayout(buttons, 1)
        layout.addLayout(row)
        layout.addLayout(form)

        session.on("labels", self.refresh)
        session.on("options", lambda _keys: self.refresh_options())
        self.refresh()
        self.refresh_options()

    @staticmethod
    def _tool(text: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        if slot is not None:
            button.clicked.connect(slot)
        return button

    @staticmethod
    def _spin(tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0, 100)
        spin.setDecimals(0)
        spin.setSingleStep(5)
        spin.setSuffix(" %")
        spin.setSpecialValueText("off")
        spin.setToolTip(tip)
        spin.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        return spin

    # -- session → widgets ----------------------------------------------------------------------
    def refresh(self) -> None:
        self._syncing = True
        try:
            current = self.list.currentRow()
            self.list.clear()
            for text in self.session.labels:
                item = QListWidgetItem(text)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.list.addItem(item)
            if 0 <= current < self.list.count():
                self.list.setCurrentRow(current)
            n = len(self.session.labels)
            self.count_label.setText(f"{n} label{'s' if n != 1 else ''}")
        finally:
            self._syncing = False

    def refresh_options(self) -> None:
        session = self.session
        for widget, value in ((self.threshold, round(session.threshold * 100)),
                              (self.margin, round(session.margin * 100))):
            if widget.value() != value:
                widget.blockSignals(True)
                widget.setValue(value)
                widget.blockSignals(False)
        index = self.templates.findData(session.templates)
        if index >= 0 and index != self.templates.currentIndex():
            self.templates.blockSignals(True)
            self.templates.setCurrentIndex(index)
            self.templates.blockSignals(False)
        if self.multi_label.isChecked() != session.multi_label:
            self.multi_label.blockSignals(True)
            self.multi_label.setChecked(session.multi_label)
            self.multi_label.blockSignals(False)

    # -- widgets → session ----------------------------------------------------------------------
    def add_text(self, text: str) -> None:
        """A typed or pasted line: commas and new lines separate labels."""
        parts = split_labels(text)
        if not parts:
            return
        before = set(self.session.labels)
        notes = self.session.add_labels(parts)
        added = [row for row, label in enumerate(self.session.labels) if label not in before]
        if added:  # the new label may land below the visible rows: show it, selected
            self.list.setCurrentRow(added[-1])
            self.list.scrollToItem(self.list.item(added[-1]))
        if notes:
            self.message.emit(notes[0] if len(notes) == 1 else f"{notes[0]} (+{len(notes) - 1} more)")

    def _add_from_input(self) -> None:
        text = self.input.text()
        self.input.clear()
        self.add_text(text)

    def paste_labels(self) -> None:
        self.add_text(QApplication.clipboard().text())

    def _item_edited(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        row = self.list.row(item)
        text = item.text().strip()
        try:
            if not text:
                self.session.remove_label(row)
            else:
                self.session.edit_label(row, text)
        except LabelError as error:
            self.message.emit(str(error))
            self.refresh()

    def _rows_moved(self, _parent, start: int, _end: int, _dest, row: int) -> None:
        if self._syncing:
            return
        to = row - 1 if row > start else row
        self.session.move_label(start, to)

    def _move(self, step: int) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        self.session.move_label(row, row + step)
        self.list.setCurrentRow(max(0, min(row + step, self.list.count() - 1)))

    def remove_selected(self) -> None:
        rows = sorted((self.list.row(i) for i in self.list.selectedItems()), reverse=True)
        for row in rows:
            self.session.remove_label(row)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        if not self.recent_sets:
            self.recent_menu.addAction("No recent label sets").setEnabled(False)
        for labels in self.recent_sets:
            text = ", ".join(labels)
            count = f"{len(labels)} label{'s' if len(labels) != 1 else ''}: "
            action = QAction(count + (text if len(text) < 60 else text[:57] + "…"), self.recent_menu)
            action.setToolTip(text)  # the whole set, when the menu item is cut
            action.triggered.connect(lambda _=False, labels=labels: self.session.set_labels(labels))
            self.recent_menu.addAction(action)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress:
            if event.matches(QKeySequence.StandardKey.Paste):
                text = QApplication.clipboard().text()
                if watched is self.list or any(sep in text for sep in ",\n\r"):
                    self.add_text(text)  # a pasted list becomes several labels at once
                    return True
            if watched is self.list and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) \
                    and self.list.state() != QAbstractItemView.State.EditingState:
                self.remove_selected()
                return True
        return super().eventFilter(watched, event)
