"""The main window (`mainWindow`): wires the pure `Session` to widgets and to the model worker.

Nothing here computes a score: the worker runs core jobs (load, classify, rescore, search), the
session stores what they return, and the widgets draw the session.
"""

from __future__ import annotations

import base64
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.core import sorting
from clipdesk.core.errors import Cancelled, ClipdeskError, ModelLoadError
from clipdesk.core.paths import config_dir, data_dir
from clipdesk.core.session import (
    UNSURE,
    Session,
    classify_job,
    load_image_list,
    rescore,
    save_image_list,
)
from clipdesk.core.settings import Settings

from .image_actions import ImageActions
from .search_controller import SearchController
from .sort_export import SortExportController
from .thumbnails import Thumbnails
from .undo import AddImages, RemoveImages, UndoController
from .widgets.details import DetailsPanel
from .widgets.errors_dialog import ErrorsDialog
from .widgets.image_grid import PATH_ROLE, ImageCardDelegate, ImageListModel, ImageView
from .widgets.label_editor import LabelEditor
from .widgets.model_menu import ModelMenu
from .widgets.proxy import ALL, SessionProxy
from .widgets.results_table import ResultsTable, ResultsTableModel
from .widgets.sort_dialog import SortDialog
from .worker import ModelWorker, Task, pool, run_in_pool

# Images per classify task: a label edit is served between chunks, not after the run. A chunk is
# sized to about CHUNK_SECONDS at the measured rate, so the per-task overhead stays small.
CHUNK_MIN, CHUNK_MAX, CHUNK_SECONDS = 64, 2048, 0.75
ADD_SLICE = 500  # rows added to the views per event-loop turn
IMAGE_LIST = "images.json"  # in the config folder: the loaded paths, restored on reopen


@dataclass
class ModelChoice:
    arch: str = ""  # empty: the default tag if downloaded, else the demo model
    pretrained: str = ""
    device: str = "auto"
    backend: str = "auto"


@dataclass
class _Run:
    """Progress of one classification run across its chunks (for the bar, img/s and ETA)."""

    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)


def _open_engine(choice: ModelChoice, worker: ModelWorker, token):
    """The load task (worker thread): resolve the default model, load it, keep the engine."""
    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED

    arch, pretrained = choice.arch, choice.pretrained
    if not arch or not pretrained:
        from clipdesk.core.download import cached_weights

        arch, pretrained = DEFAULT_ARCH, DEFAULT_PRETRAINED
        if cached_weights(arch, pretrained) is None:
            try:
                from clipdesk.core.demo import demo_model_dir

                demo_model_dir()
                pretrained = "demo"
            except ModelLoadError:
                pass  # the default tag then explains why it cannot be had
    if pretrained == "demo" or Path(pretrained).expanduser().is_dir():
        arch = None  # a model folder (the demo too) names its architecture; a stale one would contradict
    # The previous engine stays in `worker.engine` until this one is ready: a failed load keeps it.
    engine = yield from open_engine_job(arch, pretrained, choice.device or "auto",
                                        choice.backend or "auto", cancel=token)
    worker.engine = engine
    loaded = engine.loaded
    return {"arch": loaded.arch, "pretrained": pretrained if pretrained == "demo" else loaded.pretrained,
            "name": loaded.display_name, "device": str(loaded.device), "backend": engine.encoder.name,
            "class_names": loaded.class_names, "templates": loaded.metadata.get("templates")}


def gui_model_message(error: Exception) -> str:
    """A model error as a window user reads it: command-line hints become the menu items to use."""
    text = str(error) if isinstance(error, ClipdeskError) else f"Could not load the model: {error}"
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = [s for s in sentences if "--" not in s and "clipdesk " not in s] or sentences[:1]
    return " ".join(kept) + ("\n\nUse Model › Load checkpoint… for weights on this computer, or "
                             "Model › Demo model, which needs no download.")


def app_icon() -> QIcon:
    """The window and application icon (resources/icons/clipdesk.svg)."""
    from clipdesk.core.paths import resources_dir

    return QIcon(str(resources_dir() / "icons" / "clipdesk.svg"))


class MainWindow(QMainWindow):
    model_loaded = Signal(dict)
    model_failed = Signal(str)
    results_updated = Signal()  # scores landed (a classify chunk or a re-score)
    idle = Signal()  # nothing queued: every image classified and scored
    images_added = Signal(list)

    def __init__(self, choice: ModelChoice | None = None, settings: Settings | None = None,
                 batch_size: int = 32, training_api=None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings or Settings.load()
        self.choice = choice or ModelChoice(self.settings["arch"], self.settings["pretrained"],
                                            self.settings["device"], self.settings["backend"])
        self.batch_size = batch_size
        self.training_api = training_api
        self.session = Session()
        self.worker = ModelWorker(self)
        self.thumbnails = Thumbnails(parent=self)
        self.previews = Thumbnails(size=640, parent=self, budget_bytes=16 << 20)
        self.model_info: dict = {}
        self.model_ready = False
        self.notifications: list[str] = []  # warnings shown once, kept in the problems list
        self.notes: list[str] = []  # non-file problems worth listing (label notes)
        self.scan_notes: list[str] = []  # what the last scan left out (listed with the problems)
        self._load_task: Task | None = None
        self._previous_choice: ModelChoice | None = None
        self._classify_task: Task | None = None
        self._rescore_task: Task | None = None
        self._rescore_dirty = False
        self._paused = False
        self._scores_signature: tuple | None = None
        self._run: _Run | None = None
        self._in_flight: set[Path] = set()
        self._adding: deque[list[Path]] = deque()  # slices of found files not yet added
        self._closing = False
        self.download_dialog: QProgressDialog | None = None
        self.model_error_box: QMessageBox | None = None
        self.finetune_dialog = None
        self.sorter = SortExportController(self)  # before the menus: they read last_sort

        self._message_timer = QTimer(self, singleShot=True)
        self._message_timer.timeout.connect(self._idle_message)
        self._schedule_timer = QTimer(self, singleShot=True)
        self._schedule_timer.timeout.connect(self._next_job)
        # Work over every row (problem count, the filter's label list) runs at most every 250 ms
        # while batches land, not once per batch: its cost grows with the rows loaded.
        self._later_timer = QTimer(self, singleShot=True, interval=250)
        self._later_timer.timeout.connect(self._refresh_counts)
        self._restore_session_settings()
        self.undo = UndoController(self.session, self)  # after the restore: that is not an edit
        self._build_views()
        self._build_menus()
        self._build_status_bar()
        self._restore_geometry()
        self.session.on("labels", self._labels_changed)
        self.session.on("options", self._options_changed)
        self.session.on("changed", lambda _rows: self._later_timer.isActive() or self._later_timer.start())
        self.session.on("reset", self._update_badge)
        self.setAcceptDrops(True)
        self.setWindowTitle("clipdesk")
        self.setWindowIcon(app_icon())
        restored = load_image_list(config_dir() / IMAGE_LIST)
        if restored:
            self.add_paths(restored)  # the image list comes back on reopen (paths, not pixels)
        QTimer.singleShot(0, self, self._initial_load)  # after show: the window appears before torch loads

    # -- construction ---------------------------------------------------------------------------
    def _restore_session_settings(self) -> None:
        s = self.settings
        self.session.templates = s["templates"] if s["templates"] in ("none", "photo", "ensemble", "imagenet80") else "photo"
        self.session.threshold = float(s["threshold"])
        self.session.margin = float(s["margin"])
        self.session.multi_label = bool(s["multi_label"])
        self.session.set_labels(s["labels"])

    def _build_views(self) -> None:
        session = self.session
        self.image_model = ImageListModel(session, self.thumbnails, self)
        self.grid_proxy = SessionProxy(session, self)
        self.grid_proxy.setSourceModel(self.image_model)
        self.image_view = ImageView()
        self.image_view.setModel(self.grid_proxy)
        self.image_view.setItemDelegate(ImageCardDelegate(session, self.thumbnails, self.image_view))
        self.image_view.paths_dropped.connect(self.add_paths)
        self.image_view.delete_requested.connect(self.remove_selected)
        self.image_view.selectionModel().currentChanged.connect(
            lambda index, _prev: self._select(index))

        self.table_model = ResultsTableModel(session, self)
        self.table_proxy = SessionProxy(session, self)
        self.table_proxy.search_order = False
        self.table_proxy.setSourceModel(self.table_model)
        self.results_table = ResultsTable()
        self.results_table.setModel(self.table_proxy)
        self.results_table.delete_requested.connect(self.remove_selected)
        self.grid_actions = ImageActions(self.image_view, self.find_similar, self.remove_selected)
        self.table_actions = ImageActions(self.results_table, self.find_similar, self.remove_selected)
        self.results_table.selectionModel().currentChanged.connect(
            lambda index, _prev: self._select(index))
        self.results_table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)

        self.label_editor = LabelEditor(session)
        self.label_editor.recent_sets = self.settings["recent_label_sets"]
        self.label_editor.message.connect(self.notify)
        self.label_editor.import_requested.connect(self.import_labels)
        self.label_editor.export_requested.connect(self.export_labels)
        self.details = DetailsPanel(session, self.previews)
        self.details.find_similar.connect(self.find_similar)

        labels_box = QGroupBox("Labels")
        QVBoxLayout(labels_box).addWidget(self.label_editor)
        details_box = QGroupBox("Selected image")
        QVBoxLayout(details_box).addWidget(self.details)
        self.right = QSplitter(Qt.Orientation.Vertical)
        self.right.setObjectName("rightSplitter")
        self.right.addWidget(labels_box)
        self.right.addWidget(details_box)
        self.right.setSizes([330, 470])
        self.left = QSplitter(Qt.Orientation.Vertical)
        self.left.setObjectName("leftSplitter")
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(2)
        self.grid_header = QHBoxLayout()  # the ranked-view chip, when a search is active
        self.grid_header.addStretch(1)
        grid_layout.addLayout(self.grid_header)
        grid_layout.addWidget(self.image_view)
        self.left.addWidget(grid_box)
        self.left.addWidget(self.results_table)
        self.left.setSizes([520, 240])
        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.setObjectName("mainSplitter")
        self.main_split.addWidget(self.left)
        self.main_split.addWidget(self.right)
        self.main_split.setStretchFactor(0, 3)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setSizes([900, 360])
        for splitter in (self.left, self.right, self.main_split):
            splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.main_split)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        icon = self.style().standardIcon
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Add images…", self.add_images_dialog)
        toolbar.addAction(icon(QStyle.StandardPixmap.SP_DirOpenIcon), "Add folder…", self.add_folder_dialog)
        toolbar.addSeparator()
        self.searching = SearchController(self)
        self.search_box, self.ranked_chip = self.searching.box, self.searching.chip
        self.similar_action = self.searching.similar_action
        toolbar.addWidget(self.search_box)
        self.grid_header.insertWidget(0, self.ranked_chip)
        toolbar.addAction(self.similar_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Show "))
        self.filter_combo = QComboBox()
        self.filter_combo.setObjectName("labelFilter")
        self.filter_combo.setMinimumWidth(150)
        self.filter_combo.addItem("All images", ALL)
        self.filter_combo.activated.connect(lambda _i: self.set_label_filter(self.filter_combo.currentData()))
        toolbar.addWidget(self.filter_combo)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.setObjectName("fileMenu")
        self.add_images_action = file_menu.addAction("Add images…", self.add_images_dialog)
        self.add_images_action.setShortcut(QKeySequence.StandardKey.Open)
        self.add_folder_action = file_menu.addAction("Add folder…", self.add_folder_dialog)
        self.add_folder_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.paste_action = file_menu.addAction("Paste images or paths", self.paste)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        file_menu.addSeparator()
        self.export_action = file_menu.addAction("Export results…", self.export_dialog)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.sort_action = file_menu.addAction("Sort into folders…", self.open_sort_dialog)
        self.undo_sort_action = file_menu.addAction("Undo last sort", self.undo_sort)
        self.undo_sort_action.setEnabled(self.last_sort is not None)
        file_menu.addSeparator()
        self.classify_action = file_menu.addAction("Classify pending images", self.resume)
        self.classify_action.setShortcut(QKeySequence("Ctrl+R"))
        self.remove_action = file_menu.addAction("Remove selected", self.remove_selected)
        self.clear_action = file_menu.addAction("Clear all images", self.clear_images)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        edit_menu = QMenu("&Edit", self)
        edit_menu.setObjectName("editMenu")
        edit_menu.addActions(self.undo.actions(self))
        bar.addMenu(edit_menu)

        labels_menu = bar.addMenu("&Labels")
        labels_menu.addAction("Import labels…", self.import_labels)
        labels_menu.addAction("Export labels…", self.export_labels)
        labels_menu.addAction("Clear labels", lambda: self.session.set_labels([]))

        self.model_menu = ModelMenu(self)
        bar.addMenu(self.model_menu)
        self.model_menu.chosen.connect(lambda arch, pretrained: self.load_model(arch, pretrained))
        self.model_menu.load_checkpoint.connect(self.load_checkpoint_dialog)
        self.model_menu.reload.connect(self.reload_model)
        self.model_menu.device_chosen.connect(lambda device: self.load_model(device=device))
        self.model_menu.backend_chosen.connect(lambda backend: self.load_model(backend=backend))
        self.model_menu.set_current(self.choice.arch, self.choice.pretrained, self.choice.device,
                                    self.choice.backend)

        self.training_menu = bar.addMenu("&Training")
        self.training_menu.setObjectName("trainingMenu")
        self.finetune_action = self.training_menu.addAction("Fine-tune on folder…", self.open_finetune_dialog)

        help_menu = bar.addMenu("&Help")
        about = help_menu.addAction("&About clipdesk", self.show_about)
        about.setObjectName("aboutAction")

        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.escape)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.searching.focus)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.status_label = QLabel("Starting…")
        self.status_label.setObjectName("statusLabel")
        status.addWidget(self.status_label, 1)
        self.badge = QToolButton()
        self.badge.setObjectName("errorBadge")
        self.badge.setAutoRaise(True)
        self.badge.setStyleSheet("color: #c62828; font-weight: bold;")
        self.badge.clicked.connect(self.show_errors)
        self.badge.hide()
        status.addPermanentWidget(self.badge)
        self.model_label = QLabel("Loading model…")
        self.model_label.setObjectName("modelLabel")
        status.addPermanentWidget(self.model_label)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setMinimumWidth(260)  # "20000/20000 · 1450 img/s" fits, never clipped
        self.progress_bar.setMaximumWidth(340)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.hide()
        status.addPermanentWidget(self.progress_bar)
        self.cancel_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserStop), "&Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop the current job (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        status.addPermanentWidget(self.cancel_button)

    def _restore_geometry(self) -> None:
        geometry = self.settings["geometry"]
        if geometry:
            self.restoreGeometry(QByteArray(base64.b64decode(geometry)))
        else:
            self.resize(1320, 860)
        for name, splitter in (("left", self.left), ("right", self.right), ("main", self.main_split)):
            state = self.settings["splitters"].get(name)
            if state:
                splitter.restoreState(QByteArray(base64.b64decode(state)))

    # -- status ---------------------------------------------------------------------------------
    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        self.status_label.setText(text)
        if timeout_ms:  # a timer owned by the window: it dies with it
            self._message_timer.start(timeout_ms)
        else:
            self._message_timer.stop()

    def _idle_message(self) -> None:
        counts = self.session.counts()
        total = len(self.session)
        if not total:
            self.status_label.setText("Drop images or folders on the grid, or paste them (Ctrl+V).")
        elif not self.session.labels:
            self.status_label.setText(f"{total} images. Type a label on the right and press Enter.")
        else:
            self.status_label.setText(f"{counts['done']} of {total} images classified.")

    def _refresh_counts(self) -> None:
        self._update_badge()
        self._refresh_filter()

    def _update_badge(self) -> None:
        problems = sum(1 for item in self.session.items if item.error) + len(self.notes) + len(self.notifications)
        self.badge.setText(f"⚠ {problems} problem{'s' if problems != 1 else ''}")
        self.badge.setVisible(problems > 0)

    def show_errors(self) -> ErrorsDialog:
        dialog = ErrorsDialog(self.session, [*self.notes, *self.notifications], self)
        dialog.open()
        return dialog

    def _set_busy(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)

    # -- model ----------------------------------------------------------------------------------
    def _initial_load(self) -> None:
        # At start-up the restored labels win; a model's class names are offered only when the
        # user has no labels yet or picks a model later.
        self.load_model(self.choice.arch, self.choice.pretrained)
        self._offer_classes = not self.session.labels

    def reload_model(self) -> None:
        self.load_model(self.choice.arch, self.choice.pretrained)

    def load_model(self, arch: str | None = None, pretrained: str | None = None,
                   device: str | None = None, backend: str | None = None) -> Task:
        """Queue a model load (cancelling running work); every image is then embedded again."""
        choice = ModelChoice(arch if arch is not None else self.choice.arch,
                             pretrained if pretrained is not None else self.choice.pretrained,
                             device or self.choice.device, backend or self.choice.backend)
        self.worker.cancel()
        self._offer_classes = True
        if self.model_ready:
            self._previous_choice = self.choice  # back to it if this load fails
        self.model_ready = False
        self.choice = choice
        self._in_flight.clear()
        self._run = None
        self.model_label.setText("Loading model…")
        self.show_message("Loading model…")
        self.progress_bar.setRange(0, 0)
        self._set_busy(True)

        def connect(task: Task) -> None:
            task.signals.yielded.connect(self._load_progress)
            task.signals.finished.connect(lambda info: self._loaded(task, info))
            task.signals.errored.connect(lambda error: self._load_failed(task, error))

        self._load_task = self.worker.submit("load", lambda w, token: _open_engine(choice, w, token),
                                             connect=connect)
        return self._load_task

    def _load_progress(self, progress) -> None:
        if progress.unit == "B":
            if self.download_dialog is None:
                dialog = QProgressDialog("Downloading model weights…", "Cancel", 0, 0, self)
                dialog.setObjectName("downloadDialog")
                dialog.setWindowTitle("Downloading")
                dialog.setMinimumDuration(0)
                dialog.canceled.connect(lambda: self._load_task and self._load_task.cancel())
                self.download_dialog = dialog
            total = progress.total or 0
            scale = 1 << 20
            self.download_dialog.setMaximum(total // scale if total else 0)
            self.download_dialog.setValue(progress.done // scale)
            self.download_dialog.setLabelText(
                f"{progress.message}\n{progress.done / scale:.0f} of {total / scale:.0f} MB"
                f" · {progress.rate / scale:.1f} MB/s")
        elif progress.message:
            self.show_message(progress.message)

    def _close_download_dialog(self) -> None:
        if self.download_dialog is not None:
            self.download_dialog.reset()
            self.download_dialog.hide()
            self.download_dialog.deleteLater()
            self.download_dialog = None

    def _loaded(self, task: Task, info: dict) -> None:
        if task is not self._load_task:
            return
        self._close_download_dialog()
        self.session.reset_embeddings()  # only now: a failed load keeps the previous results
        self._scores_signature = None
        self.model_ready = True
        self.model_info = info
        self.choice = ModelChoice(info["arch"], info["pretrained"], self.choice.device, self.choice.backend)
        self.model_label.setText(f"{info['name']} · {info['device']} · {info['backend']}")
        self.setWindowTitle(f"clipdesk — {info['name']}")
        self.model_menu.set_current(info["arch"], info["pretrained"], self.choice.device, self.choice.backend)
        self.settings.values.update(arch=info["arch"], pretrained=info["pretrained"],
                                    device=self.choice.device, backend=self.choice.backend)
        self._save_settings()
        self._set_busy(False)
        self._idle_message()
        if info.get("templates") in ("none", "photo", "ensemble", "imagenet80"):
            self.session.set_options(templates=info["templates"])  # the prompts it was trained with
        self.model_loaded.emit(info)
        if self._offer_classes and info.get("class_names") and [n.casefold() for n in info["class_names"]] != [
                n.casefold() for n in self.session.label_names()]:
            self._offer_class_names(info["class_names"])
        self._paused = False
        self._schedule()

    def _offer_class_names(self, names: list[str]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Use the model's classes?",
                          f"This model was trained on {len(names)} classes: {', '.join(names[:8])}"
                          f"{'…' if len(names) > 8 else ''}.\nUse them as labels?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("classNamesBox")
        box.accepted.connect(lambda: self.replace_labels(names))
        self.class_names_box = box
        box.open()

    def _load_failed(self, task: Task, error: Exception) -> None:
        if task is not self._load_task:
            return
        self._close_download_dialog()
        self._set_busy(False)
        kept = self._keep_previous_model()
        if isinstance(error, Cancelled):
            self.show_message(f"Model loading cancelled.{kept}")
            return
        message = gui_model_message(error)
        self.show_message(f"The model could not be loaded.{kept}")  # the reason: in the dialog only
        self.model_failed.emit(message)
        self._show_model_error(message)

    def _keep_previous_model(self) -> str:
        """After a failed or cancelled load, go on with the model that was working, if any."""
        previous = self._previous_choice
        if previous is None or not self.model_info:
            self.model_label.setText("No model loaded")
            return " Choose a model in the Model menu."
        info = self.model_info
        self.choice = previous
        self.model_ready = True
        self.model_label.setText(f"{info['name']} · {info['device']} · {info['backend']}")
        self.model_menu.set_current(info["arch"], info["pretrained"], previous.device, previous.backend)
        self._paused = False
        self._schedule()
        return f" Still using {info['name']}."

    def _show_model_error(self, message: str) -> None:
        """One dialog (reused, never stacked) that explains and offers a way out."""
        if self.model_error_box is not None:
            self.model_error_box.setText(message)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Model not available", message,
                          QMessageBox.StandardButton.Close, self)
        box.setObjectName("modelErrorBox")
        local = box.addButton("Load a local file…", QMessageBox.ButtonRole.ActionRole)
        demo = box.addButton("Use the demo model", QMessageBox.ButtonRole.ActionRole)

        def clicked(button) -> None:
            self.model_error_box = None
            if button is local:
                QTimer.singleShot(0, self, self.load_checkpoint_dialog)
            elif button is demo:
                self.load_model(pretrained="demo")

        box.buttonClicked.connect(clicked)
        box.rejected.connect(lambda: setattr(self, "model_error_box", None))
        self.model_error_box = box
        box.open()

    def load_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load checkpoint", self.settings["last_folder"],
            "Checkpoints (*.safetensors *.pt *.pth *.bin metadata.json);;All files (*)")
        if not path:
            return
        path = Path(path)
        if path.name == "metadata.json":  # a fine-tuned model folder
            self.load_model(self.choice.arch or "ViT-B-32", str(path.parent))
            return
        arches = sorted({e.arch for e in (self.model_menu.entries or [])}) or [self.choice.arch or "ViT-B-32"]
        current = self.choice.arch if self.choice.arch in arches else arches[0]
        arch, ok = QInputDialog.getItem(self, "Architecture", f"Which architecture are the weights in "
                                        f"{path.name} for?", arches, arches.index(current), True)
        if ok and arch:
            self.load_model(arch, str(path))

    # -- images ---------------------------------------------------------------------------------
    def add_paths(self, paths) -> None:
        """Files and folders (recursively): listed off the GUI thread, then added without duplicates."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        self.settings["last_folder"] = str(paths[0] if paths[0].is_dir() else paths[0].parent)
        self.show_message("Looking for images…")

        def find(_ctx, _token):
            from clipdesk.core.images import scan_images

            scan = scan_images(paths, pair_raw=not self.settings["keep_raw_pairs_separate"])
            for path in scan.files:
                hash(path)  # computed (and cached by pathlib) here, not on the GUI thread
            return scan

        def connect(task: Task) -> None:
            task.signals.finished.connect(self._found)
            task.signals.errored.connect(lambda error: self.show_message(str(error)))

        run_in_pool("find", find, connect=connect)

    def _found(self, scan) -> None:
        files, errors = scan.files, scan.errors
        self.notes = [*scan.problems(), *(n for n in self.notes if n not in self.scan_notes)]
        self.scan_notes = scan.problems()
        self._update_badge()
        added = self._add_in_slices(files)
        if added:
            self.undo.push(AddImages(self.session, added, self._forget_images))
        self.session.add_errors(errors)
        skipped = len(files) - len(added)
        note = f" ({skipped} already loaded)" if skipped else ""
        scanned = "".join(f" {line}" for line in scan.notes())  # skipped types, RAW pairs
        self.show_message(f"Added {len(added)} image{'s' if len(added) != 1 else ''}{note}.{scanned}", 5000)
        self.images_added.emit(added)
        self._paused = False
        self._schedule()

    def _add_in_slices(self, files: list[Path]) -> list[Path]:
        """The files not loaded yet; added ADD_SLICE rows per event-loop turn, so 20,000 images
        never freeze the window (the first slice at once: classification starts meanwhile)."""
        new = list(dict.fromkeys(f for f in map(self.session._key, files) if self.session.row_of(f) is None))
        self._adding.extend(new[i:i + ADD_SLICE] for i in range(0, len(new), ADD_SLICE))
        self._add_next_slice()
        return new

    def _forget_images(self, paths: list[Path]) -> None:
        """Undo of an add: drop those still waiting to be added, and their thumbnails."""
        gone = set(paths)
        self._adding = deque([p for p in chunk if p not in gone] for chunk in self._adding)
        self.thumbnails.forget(paths)

    def _add_next_slice(self) -> None:
        if self._adding:
            self.session.add_paths(self._adding.popleft())
            self._schedule()
        if self._adding:
            QTimer.singleShot(0, self, self._add_next_slice)

    def add_images_dialog(self) -> None:
        from clipdesk.core.images import supported_suffixes  # HEIC, AVIF, RAW: what decoders read

        patterns = " ".join(f"*{suffix}" for suffix in sorted(supported_suffixes()))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add images", self.settings["last_folder"], f"Images ({patterns});;All files (*)")
        if files:
            self.add_paths(files)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add folder", self.settings["last_folder"])
        if folder:
            self.add_paths([folder])

    def paste(self) -> None:
        """Ctrl+V: file URLs, text holding paths, or a copied image (saved to the data folder)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        if mime.hasUrls():
            paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
            if paths:
                self.add_paths(paths)
                return
        if mime.hasText():
            lines = [line.strip().strip('"') for line in mime.text().splitlines() if line.strip()]
            paths = [Path(line[7:] if line.startswith("file://") else line).expanduser() for line in lines]
            paths = [p for p in paths if p.exists()]
            if paths:
                self.add_paths(paths)
                return
        if mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                folder = data_dir() / "pasted"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}.png"
                if image.save(str(path), "PNG"):
                    self.add_paths([path])
                    return
        self.show_message("The clipboard holds no images or image paths.", 5000)

    def selected_rows(self) -> list[int]:
        """Session rows selected in the view that has focus (the grid otherwise)."""
        if self.results_table.hasFocus():
            view, proxy = self.results_table, self.table_proxy
            indexes = view.selectionModel().selectedRows()
        else:
            view, proxy = self.image_view, self.grid_proxy
            indexes = view.selectionModel().selectedIndexes()
        return sorted({proxy.mapToSource(i).row() for i in indexes})

    def remove_selected(self) -> None:
        rows = self.selected_rows()
        if not rows:
            return
        paths = [self.session.items[r].path for r in rows]
        command = RemoveImages(self.session, rows, f"Remove {len(rows)} image{'s' if len(rows) != 1 else ''}")
        self.session.remove_rows(rows)
        self.undo.push(command)
        self.thumbnails.forget(paths)
        self.show_message(f"Removed {len(rows)} image{'s' if len(rows) != 1 else ''}.", 4000)
        self._refresh_filter()

    def clear_images(self) -> None:
        self.worker.cancel("classify")
        self.worker.cancel("search")
        self._adding.clear()
        self.thumbnails.clear()
        self.previews.clear()
        if len(self.session):
            command = RemoveImages(self.session, list(range(len(self.session))), "Clear all images")
            self.session.clear()
            self.undo.push(command)
        self.details.show_path(None)
        self.similar_action.setEnabled(False)
        self._refresh_filter()
        self._idle_message()

    def _select(self, index) -> None:
        path = index.data(PATH_ROLE) if index.isValid() else None
        self.details.show_path(path)
        self.similar_action.setEnabled(path is not None)

    # -- classification --------------------------------------------------------------------------
    def signature(self) -> tuple:
        """What the current scores must have been computed with to be shown."""
        return (tuple(self.session.labels), self.session.templates, self.session.multi_label)

    def _schedule(self) -> None:
        self._schedule_timer.start(0)  # coalesces: many edits in one event-loop turn, one job

    def _next_job(self) -> None:
        """Start what is due: embed pending images in chunks, else re-score if scores are stale."""
        if self._closing or not self.model_ready:
            return
        if self._classify_task is None and not self._paused:
            pending = [p for p in self.session.pending_paths() if p not in self._in_flight]
            if pending:
                self._start_classify(pending[:self._chunk_size()], len(pending))
                return
        if self._classify_task is None and self._rescore_task is None:
            self._run = None
            self._set_busy(self._search_task is not None)
            if self._needs_rescore():
                self._start_rescore()
            else:
                self._refresh_counts()
                self._idle_message()
                self.idle.emit()

    def _chunk_size(self) -> int:
        run = self._run
        rate = run.done / max(1e-6, time.monotonic() - run.started) if run and run.done else 0.0
        return int(min(CHUNK_MAX, max(CHUNK_MIN, rate * CHUNK_SECONDS)))

    def _needs_rescore(self) -> bool:
        if not self.session.labels:
            if self.session.score_labels:
                self.session.clear_scores()
                self._refresh_filter()
            self._scores_signature = self.signature()
            return False
        if self._scores_signature != self.signature():
            return True
        return any(item.vector is not None and item.probs is None for item in self.session.items)

    def _start_classify(self, paths: list[Path], remaining: int) -> None:
        if self._run is None:
            self._run = _Run(total=remaining)
        else:
            self._run.total = max(self._run.total, self._run.done + remaining)
        self._in_flight.update(paths)
        signature = self.signature()
        labels, templates, multi = list(self.session.labels), self.session.templates, self.session.multi_label
        batch_size = self.batch_size
        self.progress_bar.setRange(0, self._run.total)
        self.progress_bar.setValue(self._run.done)
        self._set_busy(True)

        def factory(worker, token):
            return classify_job(worker.engine, paths, labels, templates, multi, batch_size, token)

        def connect(task: Task) -> None:
            task.signals.yielded.connect(lambda progress: self._classify_progress(task, progress, signature))
            task.signals.finished.connect(lambda result: self._classify_done(task, paths, result))
            task.signals.errored.connect(lambda error: self._classify_done(task, paths, None, error))

        self._classify_task = self.worker.submit("classify", factory, connect=connect)

    def _classify_progress(self, task: Task, progress, signature: tuple) -> None:
        batch = progress.payload
        if batch is None or task is not self._classify_task:
            return
        probs = batch.probs
        if probs is not None and signature == self.signature():
            if self._scores_signature != signature:
                self.session.set_scores([], np.zeros((0, len(batch.labels))), batch.labels)
                self._scores_signature = signature
        else:
            probs = None
        self.session.set_embeddings(batch.items, probs, batch.labels)
        run = self._run
        if run is not None:
            run.done += len(batch.items)
            elapsed = max(1e-6, time.monotonic() - run.started)
            rate = run.done / elapsed
            eta = (run.total - run.done) / rate if rate > 0 else 0
            self.progress_bar.setRange(0, run.total)
            self.progress_bar.setValue(run.done)
            self.progress_bar.setFormat(f"%v/%m · {rate:.0f} img/s")
            self.show_message(f"Classifying {run.done}/{run.total} images · {rate:.1f} img/s · "
                              f"ETA {eta:.0f} s")
        self.results_updated.emit()
        if not self._later_timer.isActive():
            self._later_timer.start()

    def _classify_done(self, task: Task, paths: list[Path], result, error=None) -> None:
        self._in_flight.difference_update(paths)
        if task is not self._classify_task:
            return
        self._classify_task = None
        if isinstance(error, Cancelled) or (error is None and self._paused):
            self._paused = True
            self._run = None
            self._set_busy(False)
            left = len(self.session.pending_paths())
            self.show_message(f"Cancelled; {left} images not classified (File › Classify pending images).")
            return
        if error is not None:
            self.show_message(f"Classification stopped: {error}")
            self._paused = True
            self._run = None
            self._set_busy(False)
            return
        self._next_job()

    def resume(self) -> None:
        self._paused = False
        self._schedule()

    def _start_rescore(self) -> None:
        paths, features = self.session.features()
        signature = self.signature()
        labels, templates, multi = list(self.session.labels), self.session.templates, self.session.multi_label
        self._rescore_dirty = False

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda result: self._rescored(task, result, signature))
            task.signals.errored.connect(lambda error: self._rescore_failed(task, error))

        self._rescore_task = self.worker.submit(
            "rescore", lambda worker, _t: rescore(worker.engine, paths, features, labels, templates, multi),
            connect=connect, cancellable=False)

    def _rescored(self, task: Task, result, signature: tuple) -> None:
        if task is not self._rescore_task:
            return
        self._rescore_task = None
        if signature == self.signature():
            self.session.set_scores(result.paths, result.probs, result.labels)
            self._scores_signature = signature
            self.notes = [*self.scan_notes, *result.notes]
            self._update_badge()
            self._refresh_filter()
            self.results_updated.emit()
        self._next_job()

    def _rescore_failed(self, task: Task, error: Exception) -> None:
        if task is self._rescore_task:
            self._rescore_task = None
            self.show_message(str(error))
            self._scores_signature = self.signature()  # do not retry the same labels in a loop

    def _labels_changed(self) -> None:
        self.settings["labels"] = list(self.session.labels)
        self._save_settings()
        self._schedule()

    def _options_changed(self, keys: set) -> None:
        self.settings.values.update(templates=self.session.templates, threshold=self.session.threshold,
                                    margin=self.session.margin, multi_label=self.session.multi_label)
        self._save_settings()
        if keys & {"templates", "multi_label"}:
            self._schedule()
        self._refresh_filter()

    def replace_labels(self, labels: list[str]) -> None:
        if self.session.labels:
            self.settings.remember_label_set(list(self.session.labels))
        notes = self.session.set_labels(labels)
        self.settings.remember_label_set(list(self.session.labels))
        self.label_editor.recent_sets = self.settings["recent_label_sets"]
        if notes:
            self.show_message(notes[0], 6000)

    def show_about(self) -> QMessageBox:
        from clipdesk import __version__

        box = QMessageBox(QMessageBox.Icon.NoIcon, "About clipdesk",
                          f"<b>clipdesk {__version__}</b><p>Zero-shot image classification and search "
                          "with CLIP (open_clip). Drop images, type labels, see scores.</p>", parent=self)
        box.setObjectName("aboutBox")
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.open()
        return box

    def notify(self, text: str) -> None:
        """A warning worth keeping: the status bar shows it, the ⚠ problems list keeps it."""
        if text not in self.notifications:
            self.notifications = [*self.notifications[-49:], text]
        self.show_message(text, 10000)
        self._update_badge()

    def escape(self) -> None:
        """Esc: stop the running job; with nothing running, leave the ranked view."""
        if self._classify_task is not None or self._search_task is not None or not self.model_ready:
            self.cancel()
        elif self.session.search_query:
            self.clear_search()

    def cancel(self) -> None:
        """Esc / Cancel: stops the running job within one batch; nothing queued starts after it."""
        if self._classify_task is not None or self._run is not None:
            self._paused = True  # the scheduler starts no further chunk until File › Classify pending
        self._schedule_timer.stop()
        for task in (self._classify_task, self._load_task, self._search_task):
            if task is not None:
                task.cancel()
        self.worker.cancel("classify")
        self.worker.cancel("search")
        if self._load_task is not None and not self.model_ready:
            self._load_task.cancel()

    # -- search (SearchController) ---------------------------------------------------------------
    @property
    def _search_task(self) -> Task | None:
        return self.searching.task

    def search(self, query: str) -> None:
        self.searching.search(query)

    def find_similar(self, path: Path) -> None:
        self.searching.find_similar(path)

    def clear_search(self) -> None:
        self.searching.clear()

    # -- filter ---------------------------------------------------------------------------------
    def set_label_filter(self, label: str) -> None:
        self.grid_proxy.set_label_filter(label)
        self.table_proxy.set_label_filter(label)
        index = self.filter_combo.findData(label)
        if index >= 0:
            self.filter_combo.setCurrentIndex(index)

    def _refresh_filter(self) -> None:
        """The filter lists the labels images were given (and unsure), keeping the current choice."""
        current = self.filter_combo.currentData() or ALL
        labels = self.session.predicted_labels()
        wanted = [ALL, *[label for label in labels if label != UNSURE], *([UNSURE] if UNSURE in labels else [])]
        present = [self.filter_combo.itemData(i) for i in range(self.filter_combo.count())]
        if present != wanted:
            self.filter_combo.blockSignals(True)
            self.filter_combo.clear()
            for label in wanted:
                self.filter_combo.addItem("All images" if label == ALL else label, label)
            if current not in wanted:
                self.filter_combo.addItem(current, current)
            self.filter_combo.setCurrentIndex(self.filter_combo.findData(current))
            self.filter_combo.blockSignals(False)
        if current != ALL:
            self.grid_proxy.refilter()
            self.table_proxy.refilter()

    # -- export, sort, labels files (SortExportController) -------------------------------------------
    @property
    def last_sort(self) -> sorting.SortRecord | None:
        return self.sorter.last_sort

    @last_sort.setter
    def last_sort(self, record: sorting.SortRecord | None) -> None:
        self.sorter.last_sort = record

    @property
    def sort_dialog(self) -> SortDialog | None:
        return self.sorter.sort_dialog

    @property
    def sort_task(self) -> Task | None:
        return self.sorter.sort_task

    def export_dialog(self) -> None:
        self.sorter.export_dialog()

    def export_to(self, path: Path) -> None:
        self.sorter.export_to(path)

    def open_sort_dialog(self) -> SortDialog:
        return self.sorter.open_sort_dialog()

    def run_sort(self, plan: sorting.SortPlan, mode: str) -> Task:
        return self.sorter.run_sort(plan, mode)

    def undo_sort(self) -> None:
        self.sorter.undo_sort()

    def import_labels(self) -> None:
        self.sorter.import_labels()

    def import_labels_from(self, path: Path) -> None:
        self.sorter.import_labels_from(path)

    def export_labels(self) -> None:
        self.sorter.export_labels()

    def export_labels_to(self, path: Path) -> None:
        self.sorter.export_labels_to(path)

    # -- training -------------------------------------------------------------------------------
    def open_finetune_dialog(self):
        from .widgets.finetune_dialog import FinetuneDialog

        arch = self.model_info.get("arch") or self.choice.arch or "ViT-B-32"
        pretrained = self.model_info.get("pretrained") or self.choice.pretrained or "none"
        dialog = FinetuneDialog(self.worker, arch, pretrained, self.choice.device,
                                api=self.training_api, parent=self)
        dialog.use_model.connect(lambda folder: self.load_model(arch, str(folder)))
        self.finetune_dialog = dialog
        dialog.open()
        return dialog

    # -- drag and drop on the whole window, settings, closing ------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = ImageView.dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as error:
            self.show_message(f"Could not save settings: {error.strerror or error}.", 6000)

    def save_window_state(self) -> None:
        def encode(data: QByteArray) -> str:
            return base64.b64encode(bytes(data.data())).decode("ascii")

        self.settings["geometry"] = encode(self.saveGeometry())
        self.settings["splitters"] = {"left": encode(self.left.saveState()),
                                      "right": encode(self.right.saveState()),
                                      "main": encode(self.main_split.saveState())}
        self.settings.remember_label_set(list(self.session.labels))
        self._save_settings()
        try:
            save_image_list(config_dir() / IMAGE_LIST, [item.path for item in self.session.items])
        except OSError as error:
            self.show_message(f"Could not save the image list: {error.strerror or error}.", 6000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Save, stop every job within one batch, wait for the threads, then close."""
        self._closing = True
        self.save_window_state()
        self.thumbnails.cancel()
        self.previews.cancel()
        if self.finetune_dialog is not None:
            self.finetune_dialog.cancel()
        self.hide()  # gone for the user at once, while the worker finishes its batch
        self.worker.shutdown()
        pool().waitForDone(5000)
        super().closeEvent(event)
