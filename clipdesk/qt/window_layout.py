"""The main window's widgets, toolbar, menus and status bar, built once and attached to it.

Construction only: behaviour lives in the controllers the window composes (models, classifier,
images, searching, sorter, undo). Functions here set the attributes the rest of the app and the
tests use (`window.image_view`, `window.progress_bar`, …).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .image_actions import Callbacks, ImageActions
from .widgets.details import DetailsPanel
from .widgets.empty_state import EmptyState
from .widgets.grid_switch import GridModelSwitch
from .widgets.image_grid import ImageCardDelegate, ImageListModel, ImageView
from .widgets.label_editor import LabelEditor
from .widgets.proxy import ALL, SessionProxy
from .widgets.results_table import ResultsTable, ResultsTableModel


def app_icon() -> QIcon:
    """The window and application icon (resources/icons/clipdesk.svg)."""
    from clipdesk.core.paths import resources_dir

    return QIcon(str(resources_dir() / "icons" / "clipdesk.svg"))


def about_box(window) -> QMessageBox:
    from clipdesk.core.version import __version__

    box = QMessageBox(QMessageBox.Icon.NoIcon, "About clipdesk",
                      f"<b>clipdesk {__version__}</b><p>Zero-shot image classification and search "
                      "with CLIP (open_clip). Drop images, type labels, see scores.</p>", parent=window)
    box.setObjectName("aboutBox")
    box.setIconPixmap(app_icon().pixmap(64, 64))
    box.open()
    return box


def build_views(window) -> None:
    """The grid and the table (each over a SessionProxy), the label editor and the details panel."""
    session = window.session
    window.image_model = ImageListModel(session, window.thumbnails, window)
    window.grid_order = SessionProxy(session, window)  # the grid's order while ranked or filtered
    window.grid_order.setSourceModel(window.image_model)
    window.image_view = ImageView()
    window.grid_switch = GridModelSwitch(window.image_view, window.grid_order, window)
    window.grid_switch.current_changed.connect(window._select)
    window.image_view.setItemDelegate(ImageCardDelegate(session, window.thumbnails, window.image_view))
    window.image_view.paths_dropped.connect(window.add_paths)
    window.image_view.delete_requested.connect(window.remove_selected)

    window.table_model = ResultsTableModel(session, window)
    window.table_proxy = SessionProxy(session, window)
    window.table_proxy.search_order = False
    window.table_proxy.setSourceModel(window.table_model)
    window.results_table = ResultsTable()
    window.results_table.setModel(window.table_proxy)
    window.results_table.selectionModel().currentChanged.connect(lambda index, _prev: window._select(index))
    window.results_table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    window.results_table.delete_requested.connect(window.remove_selected)
    callbacks = Callbacks(window.find_similar, window.remove_selected, lambda: list(session.labels),
                          window.corrections.set_label, window.corrections.refit)
    window.grid_actions = ImageActions(window.image_view, callbacks)
    window.table_actions = ImageActions(window.results_table, callbacks)

    window.label_editor = LabelEditor(session)
    window.label_editor.recent_sets = window.settings["recent_label_sets"]
    window.label_editor.message.connect(window.notify)
    window.label_editor.import_requested.connect(window.import_labels)
    window.label_editor.export_requested.connect(window.export_labels)
    window.empty_state = EmptyState()
    window.empty_state.add_images.connect(window.images.add_images_dialog)
    window.empty_state.add_folder.connect(window.images.add_folder_dialog)
    window.empty_state.try_demo.connect(window.try_demo)
    window.details = DetailsPanel(session, window.previews)
    window.details.find_similar.connect(window.find_similar)


def build_panes(window) -> None:
    """Grid over table on the left, labels over details on the right, in restorable splitters."""
    labels_box = QGroupBox("Labels")
    QVBoxLayout(labels_box).addWidget(window.label_editor)
    details_box = QGroupBox("Selected image")
    QVBoxLayout(details_box).addWidget(window.details)
    window.right = QSplitter(Qt.Orientation.Vertical)
    window.right.setObjectName("rightSplitter")
    window.right.addWidget(labels_box)
    window.right.addWidget(details_box)
    window.right.setSizes([380, 420])
    window.left = QSplitter(Qt.Orientation.Vertical)
    window.left.setObjectName("leftSplitter")
    grid_box = QWidget()
    grid_layout = QVBoxLayout(grid_box)
    grid_layout.setContentsMargins(0, 0, 0, 0)
    grid_layout.setSpacing(2)
    window.grid_header = QHBoxLayout()  # the ranked-view chip, when a search is active
    window.grid_header.addStretch(1)
    grid_layout.addLayout(window.grid_header)
    window.grid_stack = QStackedWidget()  # the first-steps page while no image is loaded, else the grid
    window.grid_stack.setObjectName("gridStack")
    window.grid_stack.addWidget(window.empty_state)
    window.grid_stack.addWidget(window.image_view)
    grid_layout.addWidget(window.grid_stack)
    window.left.addWidget(grid_box)
    window.left.addWidget(window.results_table)
    window.left.setSizes([520, 240])
    window.main_split = QSplitter(Qt.Orientation.Horizontal)
    window.main_split.setObjectName("mainSplitter")
    window.main_split.addWidget(window.left)
    window.main_split.addWidget(window.right)
    window.main_split.setStretchFactor(0, 3)
    window.main_split.setStretchFactor(1, 1)
    window.main_split.setSizes([900, 360])
    for splitter in (window.left, window.right, window.main_split):
        splitter.setChildrenCollapsible(False)
    window.setCentralWidget(window.main_split)


def build_toolbar(window) -> None:
    """Add images/folder, the search box and Find similar, the label filter; the ranked chip."""
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("mainToolBar")
    toolbar.setMovable(False)
    icon = window.style().standardIcon
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addAction(icon(QStyle.StandardPixmap.SP_DialogOpenButton), "Add images…", window.images.add_images_dialog)
    toolbar.addAction(icon(QStyle.StandardPixmap.SP_DirOpenIcon), "Add folder…", window.images.add_folder_dialog)
    toolbar.addSeparator()
    searching = window.searching
    window.search_box, window.ranked_chip = searching.box, searching.chip
    window.similar_action = searching.similar_action
    window.details.similar_possible.connect(window.similar_action.setEnabled)
    toolbar.addWidget(window.search_box)
    window.grid_header.insertWidget(0, window.ranked_chip)
    toolbar.addAction(window.similar_action)
    toolbar.addSeparator()
    toolbar.addWidget(QLabel(" Show "))
    window.filter_combo = QComboBox()
    window.filter_combo.setObjectName("labelFilter")
    window.filter_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    window.filter_combo.setMinimumContentsLength(10)  # long labels elide instead of widening the toolbar
    window.filter_combo.addItem("All images", ALL)
    window.filter_combo.activated.connect(lambda _i: window.set_label_filter(window.filter_combo.currentData()))
    toolbar.addWidget(window.filter_combo)


def build_file_menu(window) -> None:
    file_menu = window.menuBar().addMenu("&File")
    file_menu.setObjectName("fileMenu")
    images, sorter = window.images, window.sorter
    window.add_images_action = file_menu.addAction("Add images…", images.add_images_dialog)
    window.add_images_action.setShortcut(QKeySequence.StandardKey.Open)
    window.add_folder_action = file_menu.addAction("Add folder…", images.add_folder_dialog)
    window.add_folder_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
    window.paste_action = file_menu.addAction("Paste images or paths", images.paste)
    window.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
    file_menu.addSeparator()
    window.export_action = file_menu.addAction("Export results…", sorter.export_dialog)
    window.export_action.setShortcut(QKeySequence("Ctrl+E"))
    window.sort_action = file_menu.addAction("Sort into folders…", sorter.open_sort_dialog)
    window.undo_sort_action = file_menu.addAction("Undo last sort", sorter.undo_sort)
    window.undo_sort_action.setEnabled(sorter.last_sort is not None)
    keywords = file_menu.addAction("Write labels as keywords (XMP)…", window.keywords.write_dialog)
    keywords.setObjectName("writeKeywordsAction")
    keywords.setToolTip("digiKam, Lightroom and darktable show them; Edit › Undo restores the files")
    dataset = file_menu.addAction("Export dataset (Parquet)…", window.keywords.export_dataset_dialog)
    dataset.setObjectName("exportDatasetAction")
    file_menu.addSeparator()
    window.classify_action = file_menu.addAction("Classify pending images", window.classifier.resume)
    window.classify_action.setObjectName("classifyAction")
    window.classify_action.setShortcut(QKeySequence("Ctrl+R"))
    window.remove_action = file_menu.addAction("Remove selected", images.remove_selected)
    # Del is shown here but handled by the grid and the table themselves: as a window shortcut it
    # would take Del from the label list (which removes labels) and from text fields.
    window.remove_action.setShortcut(QKeySequence.StandardKey.Delete)
    window.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
    window.clear_action = file_menu.addAction("Clear all images", images.clear_images)
    file_menu.addSeparator()
    quit_action = file_menu.addAction("Quit", window.close)
    quit_action.setShortcut(QKeySequence.StandardKey.Quit)


def build_menus(window) -> None:
    """File, Edit (undo), Labels, Model, Training, Help; Esc and Ctrl+F."""
    build_file_menu(window)
    bar = window.menuBar()
    edit_menu = QMenu("&Edit", window)
    edit_menu.setObjectName("editMenu")
    edit_menu.addActions(window.undo.actions(window))
    edit_menu.addSeparator()
    window.select_all_action = edit_menu.addAction("Select &all", window.images.select_all)
    window.select_all_action.setObjectName("selectAllAction")
    window.select_all_action.setShortcut(QKeySequence.StandardKey.SelectAll)
    bar.addMenu(edit_menu)

    labels_menu = bar.addMenu("&Labels")
    labels_menu.addAction("Import labels…", window.sorter.import_labels)
    labels_menu.addAction("Export labels…", window.sorter.export_labels)
    labels_menu.addAction("Clear labels", lambda: window.session.set_labels([]))

    window.model_menu = window.models.menu
    bar.addMenu(window.model_menu)

    window.training_menu = bar.addMenu("&Training")
    window.training_menu.setObjectName("trainingMenu")
    window.finetune_action = window.training_menu.addAction("Fine-tune on folder…", window.open_finetune_dialog)
    window.refit_action = window.training_menu.addAction("Fine-tune on my corrections", window.corrections.refit)
    window.refit_action.setObjectName("refitAction")
    window.refit_action.setToolTip("Right-click images › Set label, then re-fit the model on them (seconds)")
    window.refit_action.setEnabled(False)  # until a label is set by hand

    help_menu = bar.addMenu("&Help")
    help_menu.setObjectName("helpMenu")
    guide = help_menu.addAction("&Getting started", window.show_guide)
    guide.setObjectName("guideAction")
    guide.setShortcut(QKeySequence.StandardKey.HelpContents)
    keys = help_menu.addAction("&Keyboard shortcuts", window.show_shortcuts)
    keys.setObjectName("shortcutsAction")
    help_menu.addSeparator()
    about = help_menu.addAction("&About clipdesk", window.show_about)
    about.setObjectName("aboutAction")

    escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), window, activated=window.escape)
    escape.setWhatsThis("Stop the running job, or leave the ranked view")
    find = QShortcut(QKeySequence.StandardKey.Find, window, activated=window.searching.focus)
    find.setWhatsThis("Search images by text")


def build_status_bar(window) -> None:
    """Message, ⚠ problems badge, model label, progress bar and Cancel."""
    status = window.statusBar()
    window.status_label = QLabel("Starting…")
    window.status_label.setObjectName("statusLabel")
    status.addWidget(window.status_label, 1)
    window.badge = QToolButton()
    window.badge.setObjectName("errorBadge")
    window.badge.setAutoRaise(True)
    window.badge.setStyleSheet("color: #c62828; font-weight: bold;")
    window.badge.clicked.connect(window.show_errors)
    window.badge.hide()
    status.addPermanentWidget(window.badge)
    window.model_label = QLabel("Loading model…")
    window.model_label.setObjectName("modelLabel")
    status.addPermanentWidget(window.model_label)
    window.progress_bar = QProgressBar()
    window.progress_bar.setObjectName("progressBar")
    window.progress_bar.setMinimumWidth(260)  # "20000/20000 · 1450 img/s" fits, never clipped
    window.progress_bar.setMaximumWidth(340)
    window.progress_bar.setTextVisible(True)
    window.progress_bar.hide()
    status.addPermanentWidget(window.progress_bar)
    style = window.style()
    window.cancel_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_BrowserStop), "&Cancel")
    window.cancel_button.setObjectName("cancelButton")
    window.cancel_button.setToolTip("Stop the current job (Esc)")
    window.cancel_button.clicked.connect(window.cancel)
    window.cancel_button.hide()
    status.addPermanentWidget(window.cancel_button)
