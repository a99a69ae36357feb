"""Adding and removing images: files and folders found off the GUI thread, rows added in slices,
paste, remove and Clear all (each undoable).

20,000 found files are added ADD_SLICE rows per event-loop turn, so the window never freezes and
classification starts on the first slice meanwhile.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QObject, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QApplication, QFileDialog, QLineEdit

from clipdesk.core.demo import SAMPLE_SCENES, demo_labels, demo_sample_images
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.paths import data_dir
from clipdesk.core.session import Session

from .undo import AddImages, RemoveImages
from .worker import Task, run_in_pool

ADD_SLICE = 500  # rows added to the views per event-loop turn


def _plural(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


class ImagesController(QObject):
    """Owns the slices of found files not added yet."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.adding: deque[list[Path]] = deque()

    def add_paths(self, paths) -> None:
        """Files and folders (recursively): listed off the GUI thread, then added without duplicates."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        settings = self.window.settings
        settings["last_folder"] = str(paths[0] if paths[0].is_dir() else paths[0].parent)
        self.window.show_message("Looking for images…")
        pair_raw = not settings["keep_raw_pairs_separate"]

        def find(_ctx, _token):
            from clipdesk.core.images import scan_images

            scan = scan_images(paths, pair_raw=pair_raw)
            # Keyed, de-duplicated and hashed (pathlib caches it) here, not on the GUI thread.
            scan.files = Session.keys(scan.files)
            return scan

        def connect(task: Task) -> None:
            task.signals.finished.connect(self._found)
            task.signals.errored.connect(lambda error: self.window.show_message(str(error)))

        run_in_pool("find", find, connect=connect)

    def _found(self, scan) -> None:
        window = self.window
        files, errors = scan.files, scan.errors
        window.notes = [*scan.problems(), *(n for n in window.notes if n not in window.scan_notes)]
        window.scan_notes = scan.problems()
        window._update_badge()
        added = self._add_in_slices(files)
        if added:
            window.undo.push(AddImages(self.session, added, self._forget, self.shown))
        self.session.add_errors(errors)
        skipped = len(files) - len(added)
        note = f" ({skipped} already loaded)" if skipped else ""
        scanned = "".join(f" {line}" for line in scan.notes())  # skipped types, RAW pairs
        window.show_message(f"Added {_plural(len(added))}{note}.{scanned}", 5000)
        window.images_added.emit(added)
        window.classifier.resume()

    def _add_in_slices(self, files: list[Path]) -> list[Path]:
        """The files (keyed: `Session.keys`, as the scan returns them) not loaded yet; the first
        slice at once, the rest one per event-loop turn."""
        new = self.session.not_loaded(files)
        self.adding.extend(new[i:i + ADD_SLICE] for i in range(0, len(new), ADD_SLICE))
        self._add_next_slice()
        return new

    def _forget(self, paths: list[Path]) -> None:
        """Undo of an add: drop those still waiting to be added, and their thumbnails."""
        gone = set(paths)
        self.adding = deque([p for p in chunk if p not in gone] for chunk in self.adding)
        self.window.thumbnails.forget(paths)

    def _add_next_slice(self) -> None:
        if self.adding:
            self.session.add_paths(self.adding.popleft())
            self.window.classifier.schedule()
        if self.adding:
            QTimer.singleShot(0, self, self._add_next_slice)

    def try_demo(self) -> None:
        """The first screen's "Try the demo": the built-in model, its sample pictures and labels
        (what `--demo` opens with), so a newcomer sees scores without a download."""
        try:
            paths = demo_sample_images()
            labels = demo_labels(limit=len(SAMPLE_SCENES))  # every sample's own label
        except ModelLoadError as error:
            self.window.show_message(str(error), 8000)
            return
        self.window.load_model(pretrained="demo")
        self.window.replace_labels(labels)
        self.add_paths(paths)

    def add_images_dialog(self) -> None:
        from clipdesk.core.images import supported_suffixes  # HEIC, AVIF, RAW: what decoders read

        patterns = " ".join(f"*{suffix}" for suffix in sorted(supported_suffixes()))
        files, _ = QFileDialog.getOpenFileNames(
            self.window, "Add images", self.window.settings["last_folder"], f"Images ({patterns});;All files (*)")
        if files:
            self.add_paths(files)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Add folder", self.window.settings["last_folder"])
        if folder:
            self.add_paths([folder])

    def paste(self) -> None:
        """Ctrl+V: file URLs, text holding paths, or a copied image (saved to the data folder)."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime is None:
            return
        paths: list[Path] = []
        if mime.hasUrls():
            paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if not paths and mime.hasText():
            lines = [line.strip().strip('"') for line in mime.text().splitlines() if line.strip()]
            paths = [Path(line[7:] if line.startswith("file://") else line).expanduser() for line in lines]
            paths = [p for p in paths if p.exists()]
        if not paths and mime.hasImage():
            paths = self._save_pasted_image()
        if paths:
            self.add_paths(paths)
        else:
            self.window.show_message("The clipboard holds no images or image paths.", 5000)

    @staticmethod
    def _save_pasted_image() -> list[Path]:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            return []
        folder = data_dir() / "pasted"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}.png"
        return [path] if image.save(str(path), "PNG") else []

    def selected_rows(self) -> list[int]:
        """Session rows selected in the view that has focus (the grid otherwise)."""
        window = self.window
        if window.results_table.hasFocus():
            indexes = window.results_table.selectionModel().selectedRows()
        else:
            indexes = window.image_view.selectionModel().selectedIndexes()
        return sorted({index.model().mapToSource(index).row() if hasattr(index.model(), "mapToSource")
                       else index.row() for index in indexes})

    def remove_selected(self) -> None:
        rows = self.selected_rows()
        if not rows:
            return
        paths = [self.session.items[r].path for r in rows]
        command = RemoveImages(self.session, rows, f"Remove {_plural(len(rows))}", self.shown)
        self.session.remove_rows(rows)
        self.window.undo.push(command)
        self.window.thumbnails.forget(paths)
        self.window.show_message(f"Removed {_plural(len(rows))}.", 4000)
        self.window._refresh_filter()

    def shown(self, restored: list[Path]) -> None:
        """After an undo or redo: select what came back, and count what the grid shows now."""
        window = self.window
        if restored:
            self.select_paths(restored)
        elif window.details.path is not None and self.session.row_of(window.details.path) is None:
            window.details.show_path(None)
        window._select(window.image_view.currentIndex())
        window._refresh_filter()
        window._idle_message()

    def select_paths(self, paths: list[Path]) -> None:
        """Select these images in the grid, the first current and scrolled to."""
        view = self.window.image_view
        model = view.model()
        rows = np.asarray([r for r in map(self.session.row_of, paths) if r is not None], np.int64)
        if model is self.window.grid_order:
            rows = model.view_rows(rows)
        rows = [int(r) for r in rows if 0 <= r < model.rowCount()]
        if not rows:
            return
        selection = view.selectionModel()
        selection.clearSelection()
        for row in rows:
            selection.select(model.index(row, 0), QItemSelectionModel.SelectionFlag.Select)
        first = model.index(min(rows), 0)
        selection.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        view.scrollTo(first)

    def select_all(self) -> None:
        """Edit › Select all: in the list or field that has focus, else every card of the grid."""
        focus = QApplication.focusWidget()
        if isinstance(focus, (QAbstractItemView, QLineEdit)) and focus.window() is self.window:
            focus.selectAll()
        else:
            self.window.image_view.selectAll()

    def clear_images(self) -> None:
        window = self.window
        window.worker.cancel("classify")
        window.worker.cancel("search")
        self.adding.clear()
        window.thumbnails.clear()
        window.previews.clear()
        if len(self.session):
            command = RemoveImages(self.session, list(range(len(self.session))), "Clear all images", self.shown)
            self.session.clear()
            window.undo.push(command)
        window.details.show_path(None)
        window._refresh_filter()
        window._idle_message()
