"""Export results, sort into folders (and undo it), labels files: what leaves the window as files.

Sorting runs on the pool; its undo goes through `clipdesk.core.sorting.undo`, which checks the
files are still the ones it wrote. The window's Edit › Undo reaches it through a SortIntoFolders
command.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from clipdesk.core import sorting
from clipdesk.core.errors import ClipdeskError
from clipdesk.core.export import atomic_write_text, export_results

from .undo import SortIntoFolders
from .widgets.sort_dialog import SortDialog
from .worker import Task, run_in_pool


class SortExportController:
    """`last_sort` (restored from the journal, so undo works after a restart), the sort dialog."""

    def __init__(self, window) -> None:
        self.window = window
        self.sort_dialog: SortDialog | None = None
        self.sort_task: Task | None = None
        self.last_sort: sorting.SortRecord | None = sorting.load_journal()

    def export_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export results", str(Path(self.window.settings["last_folder"] or ".") / "results.csv"),
            "CSV (*.csv);;JSON (*.json)")
        if path:
            if not Path(path).suffix:
                path += ".json" if "json" in chosen.lower() else ".csv"
            self.export_to(Path(path))

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
