"""What a user can do to one image from the grid or the table: the right-click menu and double-click.

Open (the system viewer), Show in folder, View large (double-click), Find similar, Set label ▸,
Fine-tune on my corrections, Copy path, Remove. The window passes in `Callbacks` for what needs
its state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QLabel,
    QMenu,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from .widgets.image_grid import PATH_ROLE


class ImageViewer(QDialog):
    """The picture at screen size (double-click on a card or row); Esc closes it."""

    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.setWindowTitle(path.name)
        self.label = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        QVBoxLayout(self).addWidget(self.label)
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            self.label.setText(f"{path.name} cannot be shown here.")
        else:
            screen = (parent.screen() if parent is not None else QGuiApplication.primaryScreen()).availableSize()
            bound = screen * 0.85
            if pixmap.width() > bound.width() or pixmap.height() > bound.height():
                pixmap = pixmap.scaled(bound, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            self.label.setPixmap(pixmap)


@dataclass
class Callbacks:
    """What the menu does through the window."""

    find_similar: Callable[[Path], None]
    remove: Callable[[], None]
    labels: Callable[[], list[str]] = list  # the labels a card can be set to
    set_label: Callable[[list[Path], str], None] | None = None
    refit: Callable[[], object] | None = None


class ImageActions:
    """Context menu and double-click for one view (grid or table) over session rows."""

    def __init__(self, view: QAbstractItemView, callbacks: Callbacks) -> None:
        self.view, self.callbacks = view, callbacks
        self.find_similar, self.remove = callbacks.find_similar, callbacks.remove
        self.viewer: ImageViewer | None = None
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self.show_menu)
        view.doubleClicked.connect(lambda index: self.view_large(index.data(PATH_ROLE)))

    def menu_for(self, path: Path) -> QMenu:
        style = self.view.style()
        menu = QMenu(self.view)
        menu.setObjectName("imageContextMenu")
        menu.addAction(style.standardIcon(QStyle.StandardPixmap.SP_FileIcon), "&Open",
                       lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))))
        menu.addAction(style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), "Show in &folder",
                       lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent))))
        menu.addAction("&View large", lambda: self.view_large(path))
        menu.addAction(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogContentsView), "Find &similar",
                       lambda: self.find_similar(path))
        self._label_menu(menu, path)
        menu.addAction("&Copy path", lambda: QGuiApplication.clipboard().setText(str(path)))
        menu.addSeparator()
        remove = menu.addAction(style.standardIcon(QStyle.StandardPixmap.SP_TrashIcon), "&Remove", self.remove)
        remove.setShortcut(QKeySequence.StandardKey.Delete)
        return menu

    def _label_menu(self, menu: QMenu, path: Path) -> None:
        """Set label ▸ (the selected images, or the one under the pointer) and the re-fit."""
        callbacks = self.callbacks
        if callbacks.set_label is None:
            return
        menu.addSeparator()
        labels = callbacks.labels()
        sub = menu.addMenu("Set &label")
        sub.setObjectName("setLabelMenu")
        if not labels:
            sub.addAction("Type labels in the Labels panel first").setEnabled(False)
        paths = self.selected_paths() or [path]
        for label in labels:
            sub.addAction(label, lambda label=label: callbacks.set_label(paths, label))
        if callbacks.refit is not None:
            menu.addAction("Fine-tune on my &corrections", callbacks.refit).setObjectName("refitMenuAction")
        menu.addSeparator()

    def selected_paths(self) -> list[Path]:
        model = self.view.selectionModel()
        indexes = model.selectedRows() if self.view.selectionBehavior() == \
            QAbstractItemView.SelectionBehavior.SelectRows else model.selectedIndexes()
        return [index.data(PATH_ROLE) for index in indexes if index.data(PATH_ROLE) is not None]

    def show_menu(self, point: QPoint) -> QMenu | None:
        index = self.view.indexAt(point)
        if not index.isValid():
            return None
        if not self.view.selectionModel().isSelected(index):
            self.view.setCurrentIndex(index)  # right-click acts on what is under the pointer
        menu = self.menu_for(index.data(PATH_ROLE))
        menu.popup(self.view.viewport().mapToGlobal(point))
        return menu

    def view_large(self, path: Path | None) -> ImageViewer | None:
        if path is None:
            return None
        self.viewer = ImageViewer(path, self.view.window())
        self.viewer.open()
        return self.viewer
