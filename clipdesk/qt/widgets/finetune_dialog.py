"""Training › Fine-tune on folder…: pick a labelled folder, watch loss/accuracy, judge, use.

Drives `training.api` (scan_dataset, FinetuneConfig, finetune_job) in the model worker thread;
the dialog only shows what the job reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from clipdesk.core.errors import Cancelled

from ..worker import ModelWorker, run_in_pool
from .plot import TrainingPlot

METHODS = (("quick", "Quick — a few-shot head on frozen embeddings (seconds)"),
           ("full", "Full — fine-tune both encoders (minutes to hours)"))


def load_training_api() -> Any:
    """The training package, imported only when the dialog opens (its quick method runs without
    torch; full imports torch only when it starts)."""
    from training import api

    return api


NO_RESULT = ("Not trained yet. After training, this says how often the model names the right class "
             "on images it never trained on, before (zero-shot) and after; the table shows which "
             "classes it mixes up.")


def folder_help(min_per_class: int) -> str:
    """The folder layout as an example tree, and how many images each class needs."""
    return ("One sub-folder per class, named after the class, for example:"
            "<pre style='margin: 2px 12px'>pets/\n  cat/   *.jpg\n  dog/   *.jpg</pre>"
            f"At least 2 classes and at least {min_per_class} images per class; 10 or more per class "
            "give a result worth trusting. Choose <i>pets</i> here.")


def accuracy_html(result) -> str:
    """Before → after on images kept aside, with the 95 % interval when they are few."""
    record = getattr(result, "evaluation", None) or {}
    change = result.accuracy_after - result.accuracy_before
    if not record:
        return (f"Accuracy before (zero-shot): <b>{result.accuracy_before:.1%}</b> → after: "
                f"<b>{result.accuracy_after:.1%}</b> ({change:+.1%}) on {len(result.val_true)} images")
    low, high = record["interval_95"]
    interval = (f" (95 % interval {low:.0%}–{high:.0%})" if record.get("small") else "")
    return (f"Accuracy before (zero-shot): <b>{result.accuracy_before:.1%}</b> → after: "
            f"<b>{result.accuracy_after:.1%}</b>{interval} ({change:+.1%}) on {record['images']} images, "
            f"from {record['method']}.<br><small>{record.get('gold_standard', '')}</small>")


class FinetuneDialog(QDialog):
    use_model = Signal(object)  # the fine-tuned model's folder

    def __init__(self, worker: ModelWorker, arch: str, pretrained: str, device: str = "auto",
                 api: Any = None, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("finetuneDialog")
        self.setWindowTitle("Fine-tune on folder")
        self.worker, self.arch, self.pretrained, self.device = worker, arch, pretrained, device
        self.api = api
        self.summary = None
        self.result = None
        self.task = None
        self._last_step = 0

        self.folder = QLineEdit()
        self.folder.setObjectName("finetuneFolder")
        self.folder.setPlaceholderText("The folder that holds one sub-folder per class")
        self.folder.editingFinished.connect(self.scan)
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)  # Enter in the folder field scans it; it never opens Browse…
        browse.clicked.connect(self._browse)
        self.classes = QTableWidget(0, 2)
        self.classes.setObjectName("classPreview")
        self.classes.setHorizontalHeaderLabels(["Class", "Images"])
        self.classes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.classes.verticalHeader().setVisible(False)
        self.scan_note = QLabel("Choose a folder to see its classes.")
        self.layout_help = QLabel(folder_help(self._min_per_class()))
        self.layout_help.setObjectName("folderLayoutHelp")
        self.layout_help.setWordWrap(True)
        self.layout_help.setTextFormat(Qt.TextFormat.RichText)
        self.scan_note.setWordWrap(True)
        self.method = QComboBox()
        self.method.setObjectName("methodCombo")
        for key, text in METHODS:
            self.method.addItem(text, key)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.epochs = QSpinBox()
        self.epochs.setObjectName("epochsSpin")
        self.epochs.setRange(0, 1000)
        self.epochs.setValue(0)
        self.epochs.setSpecialValueText("method's default")
        self.epochs.setToolTip("quick: optimiser steps on cached embeddings; full: passes over the data")
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("startTrainingButton")
        self.start_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelTrainingButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.base_text = f"Base model: {arch} ({Path(pretrained).name or pretrained})"
        self.status = QLabel(self.base_text)
        self.status.setObjectName("finetuneStatus")
        self.status.setWordWrap(True)
        self.plot = TrainingPlot()

        self.accuracy = QLabel(NO_RESULT)
        self.accuracy.setObjectName("accuracyLabel")
        self.accuracy.setWordWrap(True)
        self.confusion = QTableWidget()
        self.confusion.setObjectName("confusionTable")
        # Columns share the panel's width (numbered headers, names in the rows): never a side scroll.
        self.confusion.horizontalHeader().setMinimumSectionSize(22)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.confusion.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.confusion.cellClicked.connect(self.show_cell)
        self.confusion.setToolTip("Rows: true class · columns: predicted. Click a cell to list its images.")
        self.cell_images = QListWidget()
        self.cell_images.setObjectName("cellImages")
        self._cell_hint("The table lists, per class, what the new model predicted.")
        self.use_button = QPushButton("Use this model")
        self.use_button.setObjectName("useModelButton")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)

        setup = QGroupBox("Data and method")
        form = QFormLayout(setup)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        form.addRow(self.layout_help)  # stays in view while typing, unlike a placeholder
        form.addRow(self.classes)
        form.addRow(self.scan_note)
        form.addRow("Method", self.method)
        form.addRow("Epochs", self.epochs)
        run = QGroupBox("Training")
        run_layout = QVBoxLayout(run)
        run_layout.addWidget(self.status)
        run_layout.addWidget(self.plot, 1)
        run_layout.addWidget(self.progress)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        run_layout.addLayout(buttons)
        results = QGroupBox("How well it does on images kept aside (never used for training)")
        results.setObjectName("resultsBox")
        results_layout = QVBoxLayout(results)
        results_layout.addWidget(self.accuracy)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.confusion)
        split.addWidget(self.cell_images)
        split.setSizes([320, 200])
        results_layout.addWidget(split, 1)

        top = QHBoxLayout()
        top.addWidget(setup, 2)
        top.addWidget(run, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top, 3)
        layout.addWidget(results, 2)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.use_button)
        bottom.addWidget(close)
        layout.addLayout(bottom)
        self.resize(980, 720)

    def _cell_hint(self, text: str) -> None:
        """What the image list is for while it has nothing to list (an empty pane says nothing)."""
        self.cell_images.clear()
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        self.cell_images.addItem(item)

    def _min_per_class(self) -> int:
        api = self._api()
        config = getattr(api, "FinetuneConfig", None)
        return int(getattr(config, "min_per_class", 2))

    # -- the training API (lazily imported) --------------------------------------------------------
    def _api(self):
        if self.api is None:
            try:
                self.api = load_training_api()
            except ImportError as error:
                self.scan_note.setText(f"The training module is not available in this install ({error}).")
                return None
        return self.api

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Labelled folder", self.folder.text())
        if folder:
            self.folder.setText(folder)
            self.scan()

    def scan(self) -> None:
        """List classes and counts (off the GUI thread: a folder may hold thousands of files)."""
        api, text = self._api(), self.folder.text().strip()
        if api is None or not text:
            return
        self.scan_note.setText("Reading the folder…")
        self.start_button.setEnabled(False)

        def connect(task):
            task.signals.finished.connect(self._scanned)
            task.signals.errored.connect(self._scan_failed)

        run_in_pool("scan", lambda _c, _t: api.scan_dataset(Path(text)), connect=connect)

    def _scanned(self, summary) -> None:
        self.summary = summary
        self.classes.setRowCount(len(summary.classes))
        for i, name in enumerate(summary.classes):
            self.classes.setItem(i, 0, QTableWidgetItem(name))
            self.classes.setItem(i, 1, QTableWidgetItem(str(summary.counts.get(name, 0))))
        total = sum(summary.counts.values())
        note = f"{len(summary.classes)} classes, {total} images."
        if summary.skipped:
            note += f" Skipped {len(summary.skipped)}: {', '.join(map(str, summary.skipped[:3]))}" + (
                "…" if len(summary.skipped) > 3 else "")
        self.scan_note.setText(note)
        self.start_button.setEnabled(self._can_start())

    def _can_start(self) -> bool:
        return (self.summary is not None and len(self.summary.classes) >= 2 and self.task is None
                and self._torch_needed() is None)

    def _torch_needed(self) -> str | None:
        """The sentence for a method this install cannot run (full without torch), else None."""
        check = getattr(self._api(), "torch_needed", None)
        return check(self.method.currentData()) if check is not None else None

    def _method_changed(self) -> None:
        """Choosing full without torch says so at once, with the command that adds it."""
        if self.task is None:
            self.status.setText(self._torch_needed() or self.base_text)
            self.start_button.setEnabled(self._can_start())

    def _scan_failed(self, error) -> None:
        self.summary = None
        self.classes.setRowCount(0)
        self.scan_note.setText(str(error))
        self.start_button.setEnabled(False)

    # -- training -----------------------------------------------------------------------------------
    def config(self):
        api = self._api()
        return api.FinetuneConfig(
            folder=Path(self.folder.text().strip()), method=self.method.currentData(),
            arch=self.arch, pretrained=self.pretrained, epochs=self.epochs.value() or None,
            device=self.device)

    def start(self) -> None:
        api = self._api()
        if api is None or self.task is not None:
            return
        missing = self._torch_needed()
        if missing:
            self.status.setText(missing)
            return
        config = self.config()
        self.plot.clear()
        self.result = None
        self._last_step = 0
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.accuracy.setText("Training… the result shows here when it is done.")
        self.confusion.clear()
        self.confusion.setRowCount(0)
        self._cell_hint("The table lists, per class, what the new model predicted.")
        self.status.setText(f"Training ({config.method}) on {self.arch}…")

        def connect(task):
            task.signals.yielded.connect(self._progress)
            task.signals.finished.connect(self._finished)
            task.signals.errored.connect(self._failed)

        self.task = self.worker.submit("finetune", lambda _w, token: api.finetune_job(config, cancel=token),
                                       connect=connect)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling after the current step…")

    def _progress(self, progress) -> None:
        if progress.total:
            self.progress.setRange(0, int(progress.total))
            self.progress.setValue(int(progress.done))
            self.progress.setFormat(f"{progress.message}  %v/%m")
        payload = progress.payload if isinstance(progress.payload, dict) else {}
        if payload.get("kind") == "train" and payload.get("loss") is not None:
            self._last_step = int(payload.get("step", self._last_step + 1))
            self.plot.add_loss(self._last_step, payload["loss"])
        elif payload.get("kind") == "val" and payload.get("accuracy") is not None:
            self.plot.add_accuracy(float(payload.get("epoch", len(self.plot.accuracy))), payload["accuracy"])
        elif progress.message:
            self.status.setText(progress.message)

    def _finished(self, result) -> None:
        self.task = None
        self.result = result
        self.cancel_button.setEnabled(False)
        self.start_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText(f"Saved to {result.model_dir}")
        self.accuracy.setText(accuracy_html(result))
        self._fill_confusion(result)
        self._cell_hint("Click a number in the table to list those images here.")
        self.use_button.setEnabled(True)

    def _failed(self, error) -> None:
        self.task = None
        self.cancel_button.setEnabled(False)
        self.start_button.setEnabled(self._can_start())
        self.status.setText("Training cancelled." if isinstance(error, Cancelled) else f"Training failed: {error}")

    def _fill_confusion(self, result) -> None:
        classes = list(result.classes)
        self.confusion.setRowCount(len(classes))
        self.confusion.setColumnCount(len(classes))
        self.confusion.setHorizontalHeaderLabels([str(i + 1) for i in range(len(classes))])
        self.confusion.setVerticalHeaderLabels([f"{i + 1}  {c[:28]}" for i, c in enumerate(classes)])
        for j, name in enumerate(classes):
            self.confusion.horizontalHeaderItem(j).setToolTip(f"predicted: {name}")
        peak = max((max(row) for row in result.confusion if row), default=1) or 1
        for i, row in enumerate(result.confusion):
            for j, count in enumerate(row):
                cell = QTableWidgetItem(str(count))
                cell.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if count:
                    shade = 255 - int(150 * count / peak)
                    cell.setBackground(QColor(shade, 255, shade) if i == j else QColor(255, shade, shade))
                cell.setToolTip(f"true: {classes[i]} · predicted: {classes[j]}")
                self.confusion.setItem(i, j, cell)

    def cell_paths(self, true_index: int, pred_index: int) -> list[Path]:
        result = self.result
        if result is None:
            return []
        return [Path(p) for p, t, q in zip(result.val_paths, result.val_true, result.val_pred)
                if t == true_index and q == pred_index]

    def show_cell(self, row: int, column: int) -> None:
        self.cell_images.clear()
        paths = self.cell_paths(row, column)
        for path in paths:
            self.cell_images.addItem(str(path))
        if not paths:
            self.cell_images.addItem("(no images)")

    def _use(self) -> None:
        if self.result is not None:
            self.use_model.emit(Path(self.result.model_dir))
            self.accept()

    def done(self, code: int) -> None:
        self.cancel()  # closing the dialog stops a run within one step
        super().done(code)
