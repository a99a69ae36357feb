"""Export results, sort into folders (and undo it), labels files: what leaves the window as files.

Sorting runs on the pool; its undo goes through `clipdesk.core.sorting.undo`, which checks the
files are still the ones it wrote. The window's Edit › Undo reaches it through a SortIntoFolders
command.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from clipdesk.core import sorting
from clipdesk.core.errors import ClipdeskError
from clipdesk.core.export import atomic_write_text, export_results
from clipdesk.core.paths import resources_dir

from .undo import SortIntoFolders
from .widgets.sort_dialog import SortDialog
from .worker import Task, run_in_pool

CSV_FILTER = "CSV: one row per image, for spreadsheets (*.csv)"
JSON_FILTER = "JSON: every label's score, for scripts (*.json)"


class SortExportController:
    """`last_sort` (restored from the journal, so undo works after a restart), the sort dialog."""

    def __init__(self, window) -> None:
        self.window = window
        self.sort_dialog: SortDialog | None = None
        self.sort_task: Task | None = None
        self.last_sort: sorting.SortRecord | None = sorting.load_journal()
        self.export_file_dialog: QFileDialog | None = None

    def export_start_folder(self) -> Path:
        """Where Export starts: the folder last exported to, else the images' own folder, else
        home; never inside clipdesk's installed files (the demo samples), nor a folder that
        cannot be written."""
        paths = [item.path for item in self.window.session.items[:2000]]
        common = Path(os.path.commonpath([p.parent for p in paths])) if paths else None
        installed = resources_dir().resolve()
        for folder in (self.window.settings.get("export_folder"), common):
            if not folder:
                continue
            folder = Path(folder)
            if folder.is_dir() and os.access(folder, os.W_OK) \
                    and not folder.resolve().is_relative_to(installed):
                return folder
        return Path.home()

    def export_dialog(self) -> QFileDialog:
        """File › Export results… (Ctrl+E): CSV or JSON; the name follows the chosen type. The
        dialog opens without blocking the window (a window-modal sheet, not a nested loop)."""
        dialog = QFileDialog(self.window, "Export results", str(self.export_start_folder() / "results.csv"))
        dialog.setObjectName("exportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilters([CSV_FILTER, JSON_FILTER])
        dialog.setDefaultSuffix("csv")
        dialog.filterSelected.connect(lambda chosen: self._export_type(dialog, chosen))
        dialog.fileSelected.connect(lambda path: self._export_chosen(Path(path)))
        self.export_file_dialog = dialog
        dialog.open()
        return dialog

    @staticmethod
    def _export_type(dialog: QFileDialog, chosen: str) -> None:
        suffix = "json" if chosen == JSON_FILTER else "csv"
        dialog.setDefaultSuffix(suffix)
        typed = dialog.selectedFiles()
        name = Path(typed[0]).stem if typed else "results"
        dialog.selectFile(f"{name}.{suffix}")

    def _export_chosen(self, path: Path) -> None:
        self.window.settings["export_folder"] = str(path.parent)
        self.export_to(path)

    def export_to(self, path: Path) -> None:
        try:
            export_results(self.window.session, path)
        except OSError as error:
            self.window.show_message(f"Could not write {path}: {error.strerror or error}.")
            return
        self.window.show_message(f"Exported {len(self.window.session)} results to {path}.", 6000)

    def open_sort_dialog(self) -> SortDialog:
        dialog = SortDialog(self.window.session, self.window.settings.get("sort_destination", ""), self.window)
        dialog.accepted.connect(lambda: dialog.plan and self.run_sort(dialog.plan, dialog.mode))
        self.sort_dialog = dialog
        dialog.open()
        return dialog

    def run_sort(self, plan: sorting.SortPlan, mode: str) -> Task:
        self.window.settings["sort_destination"] = str(plan.destination)
        self.window.progress_bar.setRange(0, len(plan.moves))
        self.window._set_busy(True)

        def connect(task: Task) -> None:
            task.signals.yielded.connect(lambda p: (self.window.progress_bar.setValue(p.done),
                                                    self.window.show_message(f"{p.message}: {p.done}/{p.total}")))
            task.signals.finished.connect(self._sorted)
            task.signals.errored.connect(lambda error: (self.window._set_busy(False), self.window.show_message(str(error))))

        self.sort_task = run_in_pool("sort", lambda _c, token: sorting.execute_job(plan, mode, token),
                                     connect=connect)
        return self.sort_task

    def _sorted(self, record: sorting.SortRecord) -> None:
        self.window._set_busy(self.window._classify_task is not None)
        self.last_sort = record
        self.window.undo_sort_action.setEnabled(bool(record.done))
        if record.mode == "move":
            self._follow_moves(record.done)
        if record.done:
            self.window.undo.push(SortIntoFolders(len(record.done), record.mode,
                                           lambda: self.last_sort is record and self.undo_sort()))
        failed = f", {len(record.errors)} failed" if record.errors else ""
        verb = "Moved" if record.mode == "move" else "Copied"
        self.window.show_message(f"{verb} {len(record.done)} files{failed}. File › Undo last sort reverts it.")

    def _follow_moves(self, moves) -> None:
        for old, new in moves:
            self.window.thumbnails.rename(Path(old), Path(new))
        self.window.session.replace_paths(moves)

    def undo_sort(self) -> None:
        try:
            restored = sorting.undo(self.last_sort)
        except ClipdeskError as error:
            self.window.show_message(str(error), 6000)
            return
        if self.last_sort is not None and self.last_sort.mode == "move":
            self._follow_moves(restored)
        self.last_sort = None
        self.window.undo_sort_action.setEnabled(False)
        self.window.show_message(restored.message, 8000)  # says how many were restored and which were kept

    def import_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import labels", self.window.settings["last_folder"],
                                              "Text files (*.txt);;All files (*)")
        if path:
            self.import_labels_from(Path(path))

    def import_labels_from(self, path: Path) -> None:
        from clipdesk.core.prompts import read_labels_file

        try:
            self.window.replace_labels(read_labels_file(path))
        except ClipdeskError as error:
            self.window.show_message(str(error), 8000)

    def export_labels(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels", "labels.txt", "Text files (*.txt)")
        if path:
            self.export_labels_to(Path(path))

    def export_labels_to(self, path: Path) -> None:
        atomic_write_text(path, "".join(f"{line}\n" for line in self.window.session.labels))
        self.window.show_message(f"Saved {len(self.window.session.labels)} labels to {path}.", 5000)
