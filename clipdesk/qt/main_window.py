"""The main window (`mainWindow`): composes one controller per concern and the shared status.

Nothing here computes a score or runs a job. Controllers own the behaviour, napari-style:
`models` (Model menu, loads, a failed load keeping the previous model), `classifier` (chunks,
re-scores, Cancel), `images` (add, paste, remove, Clear all), `searching` (search, Find similar),
`sorter` (export, sort into folders, labels files) and `undo` (QUndoStack). `window_layout`
builds the widgets. The window keeps the status bar, the label filter, settings and closing, and
forwards the names other code and the tests use (`window.load_model`, `window._classify_task`, …).
"""

from __future__ import annotations

import base64

from PySide6.QtCore import QByteArray, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from clipdesk.core.paths import config_dir
from clipdesk.core.prompts import DEFAULT_TEMPLATES
from clipdesk.core.session import UNSURE, Session, load_image_list, save_image_list
from clipdesk.core.settings import Settings

from . import window_layout as layout
from .classify_controller import ClassifyController
from .corrections import CorrectionsController
from .images_controller import ImagesController
from .keywords_controller import KeywordsController
from .model_controller import TEMPLATE_SETS, ModelChoice, ModelController, gui_model_message
from .search_controller import SearchController
from .sort_export import SortExportController
from .thumbnails import Thumbnails
from .undo import UndoController
from .widgets.errors_dialog import ErrorsDialog
from .widgets.help_dialogs import GuideDialog, ShortcutsDialog
from .widgets.image_grid import PATH_ROLE, ImageView
from .widgets.proxy import ALL
from .worker import ModelWorker, pool

IMAGE_LIST = "images.json"  # in the config folder: the loaded paths, restored on reopen
app_icon = layout.app_icon
__all__ = ["MainWindow", "ModelChoice", "app_icon", "gui_model_message"]


def _forward(controller: str, name: str, settable: bool = False) -> property:
    """A window attribute that is a controller's (`window.load_model` → `window.models.load`)."""
    def get(window):
        return getattr(getattr(window, controller), name)

    def set_(window, value) -> None:
        setattr(getattr(window, controller), name, value)

    return property(get, set_ if settable else None, doc=f"`{controller}.{name}`")


class MainWindow(QMainWindow):
    model_loaded = Signal(dict)
    model_failed = Signal(str)
    results_updated = Signal()  # scores landed (a classify chunk or a re-score)
    idle = Signal()  # nothing queued: every image classified and scored
    images_added = Signal(list)

    # -- what other code and tests reach through the window ------------------------------------------
    choice = _forward("models", "choice", settable=True)
    model_info = _forward("models", "info", settable=True)
    model_ready = _forward("models", "ready", settable=True)
    model_error_box = _forward("models", "error_box", settable=True)
    download_dialog = _forward("models", "download_dialog")
    load_model = _forward("models", "load")
    reload_model = _forward("models", "reload")
    load_checkpoint_dialog = _forward("models", "load_checkpoint_dialog")
    _classify_task = _forward("classifier", "task")
    _rescore_task = _forward("classifier", "rescore_task")
    _needs_rescore = _forward("classifier", "needs_rescore")
    signature = _forward("classifier", "signature")
    resume = _forward("classifier", "resume")
    _schedule = _forward("classifier", "schedule")
    add_paths = _forward("images", "add_paths")
    try_demo = _forward("images", "try_demo")
    paste = _forward("images", "paste")
    selected_rows = _forward("images", "selected_rows")
    remove_selected = _forward("images", "remove_selected")
    clear_images = _forward("images", "clear_images")
    _search_task = _forward("searching", "task")
    search = _forward("searching", "search")
    find_similar = _forward("searching", "find_similar")
    clear_search = _forward("searching", "clear")
    last_sort = _forward("sorter", "last_sort", settable=True)
    sort_dialog = _forward("sorter", "sort_dialog")
    sort_task = _forward("sorter", "sort_task")
    export_dialog = _forward("sorter", "export_dialog")
    export_to = _forward("sorter", "export_to")
    open_sort_dialog = _forward("sorter", "open_sort_dialog")
    run_sort = _forward("sorter", "run_sort")
    undo_sort = _forward("sorter", "undo_sort")
    import_labels = _forward("sorter", "import_labels")
    import_labels_from = _forward("sorter", "import_labels_from")
    export_labels = _forward("sorter", "export_labels")
    export_labels_to = _forward("sorter", "export_labels_to")

    @property
    def grid_proxy(self):
        """The model the grid shows now: its source while nothing is ranked or filtered (C++ fast
        scrolling), else `grid_order`, the numpy-ordered proxy (see widgets/grid_switch.py)."""
        return self.image_view.model()

    def __init__(self, choice: ModelChoice | None = None, settings: Settings | None = None,
                 batch_size: int = 32, training_api=None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.settings = settings or Settings.load()
        choice = choice or ModelChoice(self.settings["arch"], self.settings["pretrained"],
                                       self.settings["device"], self.settings["backend"])
        self.batch_size = batch_size
        self.training_api = training_api
        self.session = Session()
        self.worker = ModelWorker(self)
        self.thumbnails = Thumbnails(parent=self)
        self.previews = Thumbnails(size=640, parent=self, budget_bytes=16 << 20)
        self.notifications: list[str] = []  # warnings shown once, kept in the problems list
        self.notes: list[str] = []  # non-file problems worth listing (label notes)
        self.scan_notes: list[str] = []  # what the last scan left out (listed with the problems)
        self._closing = False
        self.finetune_dialog = None
        self.help_dialog = None
        self._message_timer = QTimer(self, singleShot=True)
        self._message_timer.timeout.connect(self._idle_message)
        # Work over every row (problem count, the filter's label list) runs at most every 250 ms
        # while batches land, not once per batch: its cost grows with the rows loaded.
        self._later_timer = QTimer(self, singleShot=True, interval=250)
        self._later_timer.timeout.connect(self._refresh_counts)
        self._restore_session_settings()
        self.undo = UndoController(self.session, self)  # after the restore: that is not an edit
        self.models = ModelController(self, choice)
        self.classifier = ClassifyController(self)
        self.images = ImagesController(self)
        self.corrections = CorrectionsController(self)
        self.sorter = SortExportController(self)  # before the menus: they read last_sort
        self.searching = SearchController(self)
        self.keywords = KeywordsController(self)
        layout.build_views(self)
        layout.build_panes(self)
        layout.build_toolbar(self)
        layout.build_menus(self)
        layout.build_status_bar(self)
        self._restore_geometry()
        self.session.on("labels", self._labels_changed)
        self.session.on("options", self._options_changed)
        self.session.on("changed", lambda _rows: self.refresh_counts_later())
        self.session.on("reset", self._update_badge)
        self.session.on("reset", self._show_grid_or_start)
        self.session.on("added", lambda _first, _last: self._show_grid_or_start())
        self._show_grid_or_start()
        self.setAcceptDrops(True)
        self.setWindowTitle("clipdesk")
        self.setWindowIcon(app_icon())
        restored = load_image_list(config_dir() / IMAGE_LIST)
        if restored:
            self.add_paths(restored)  # the image list comes back on reopen (paths, not pixels)
        QTimer.singleShot(0, self, self.models.initial_load)  # after show: the window appears before torch

    def _restore_session_settings(self) -> None:
        s = self.settings
        self.session.templates = s["templates"] if s["templates"] in TEMPLATE_SETS else DEFAULT_TEMPLATES
        self.session.threshold = float(s["threshold"])
        self.session.margin = float(s["margin"])
        self.session.multi_label = bool(s["multi_label"])
        self.session.set_labels(s["labels"])

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

    def _show_grid_or_start(self) -> None:
        """The first-steps page while no image is loaded, the grid once one is."""
        page = self.image_view if len(self.session) else self.empty_state
        focus = QApplication.focusWidget()
        if page is self.image_view and focus is not None and self.empty_state.isAncestorOf(focus):
            focus.clearFocus()  # else the grid takes focus and makes its first card current unasked
        self.grid_stack.setCurrentWidget(page)

    def _idle_message(self) -> None:
        total = len(self.session)
        if not total:
            self.status_label.setText("Drop images or folders on the grid, or paste them (Ctrl+V).")
        elif not self.session.labels:
            self.status_label.setText(f"{total} images. Type a label on the right and press Enter.")
        else:
            self.status_label.setText(f"{self.session.counts()['done']} of {total} images classified.")

    def refresh_counts_later(self) -> None:
        if not self._later_timer.isActive():
            self._later_timer.start()

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

    def notify(self, text: str) -> None:
        """A warning worth keeping: the status bar shows it, the ⚠ problems list keeps it."""
        if text not in self.notifications:
            self.notifications = [*self.notifications[-49:], text]
        self.show_message(text, 10000)
        self._update_badge()

    def show_about(self) -> QMessageBox:
        return layout.about_box(self)

    def show_guide(self) -> GuideDialog:
        """Help › Getting started (F1)."""
        self.help_dialog = GuideDialog(self)
        self.help_dialog.open()
        return self.help_dialog

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help › Keyboard shortcuts, read from the window's actions."""
        self.help_dialog = ShortcutsDialog(self)
        self.help_dialog.open()
        return self.help_dialog

    # -- Esc / Cancel ---------------------------------------------------------------------------
    def escape(self) -> None:
        """Esc: stop the running job; with nothing running, leave the ranked view."""
        if self._classify_task is not None or self._search_task is not None or not self.model_ready:
            self.cancel()
        elif self.session.search_query:
            self.clear_search()

    def cancel(self) -> None:
        """Esc / Cancel: stops the running job within one batch; nothing queued starts after it."""
        self.classifier.cancel()
        self.models.cancel()
        if self._search_task is not None:
            self._search_task.cancel()
        self.worker.cancel("search")

    # -- selection, labels, filter ----------------------------------------------------------------
    def _select(self, index) -> None:
        path = index.data(PATH_ROLE) if index.isValid() else None
        self.details.show_path(path)  # which also enables or disables both Find similar buttons

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

    def set_label_filter(self, label: str) -> None:
        self.grid_order.set_label_filter(label)
        self.table_proxy.set_label_filter(label)
        index = self.filter_combo.findData(label)
        if index >= 0:
            self.filter_combo.setCurrentIndex(index)

    def _refresh_filter(self) -> None:
        """The filter lists the labels images were given (and unsure), keeping the current choice."""
        combo = self.filter_combo
        current = combo.currentData() or ALL
        labels = self.session.predicted_labels()
        wanted = [ALL, *[label for label in labels if label != UNSURE], *([UNSURE] if UNSURE in labels else [])]
        if [combo.itemData(i) for i in range(combo.count())] != wanted:
            combo.blockSignals(True)
            combo.clear()
            for label in wanted:
                combo.addItem("All images" if label == ALL else label, label)
            if current not in wanted:
                combo.addItem(current, current)
            combo.setCurrentIndex(combo.findData(current))
            combo.blockSignals(False)
        if current != ALL:
            self.grid_order.refilter()
            self.table_proxy.refilter()

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
