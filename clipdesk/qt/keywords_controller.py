"""File › Write labels as keywords… and File › Export dataset…: the window's way into
`clipdesk.core.keywords` (XMP for photo tools) and `clipdesk.core.dataset` (Parquet for ML tools).

The write runs on the pool; Edit › Undo reaches `core.keywords.undo_keywords`, which restores only
sidecars still exactly as clipdesk wrote them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
)

from clipdesk.core import keywords
from clipdesk.core.errors import ClipdeskError

from .worker import Task, run_in_pool


class WriteKeywords(QUndoCommand):
    """Undo restores the files through the verified core undo; a write is not redone (the
    command becomes obsolete), like a sort."""

    def __init__(self, count: int, undo_write) -> None:
        super().__init__(f"Write keywords for {count} image{'s' if count != 1 else ''}")
        self.undo_write = undo_write

    def undo(self) -> None:
        self.undo_write()
        self.setObsolete(True)


class KeywordDialog(QDialog):
    """Where the keywords go: hierarchy, sidecar naming, or into the image files themselves."""

    def __init__(self, count: int, settings: dict, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Write labels as keywords")
        form = QFormLayout(self)
        intro = QLabel(f"Each of the {count} classified images gets its label(s) as XMP keywords, "
                       "which digiKam, Lightroom and darktable show. Other keywords, ratings and "
                       "edits in existing sidecars are kept; Edit › Undo restores them exactly.")
        intro.setWordWrap(True)
        form.addRow(intro)
        # a wrapped label inside a form layout gets one line's height unless its width is known
        self.setMinimumWidth(560)
        intro.setMinimumHeight(intro.heightForWidth(540))
        self.hierarchy = QLineEdit(settings.get("xmp_hierarchy", "clipdesk"))
        self.hierarchy.setPlaceholderText("empty: flat keywords only")
        form.addRow("Keywords under:", self.hierarchy)
        self.naming = QComboBox()
        self.naming.addItem("photo.jpg.xmp (digiKam, darktable)", "append")
        self.naming.addItem("photo.xmp (Lightroom, Capture One)", "replace")
        self.naming.setCurrentIndex(1 if settings.get("xmp_naming") == "replace" else 0)
        form.addRow("Sidecar files:", self.naming)
        self.embed = QCheckBox("Write into JPEG, PNG and WebP files themselves (RAW and HEIC keep sidecars)")
        form.addRow(self.embed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def options(self) -> keywords.KeywordOptions:
        return keywords.KeywordOptions(self.hierarchy.text().strip(), self.naming.currentData(),
                                       self.embed.isChecked())


class KeywordsController:
    def __init__(self, window) -> None:
        self.window = window
        self.task: Task | None = None
        self.export_task: Task | None = None
        self.dialog: KeywordDialog | None = None

    def assignments(self) -> list[tuple[Path, list[tuple[str, float]]]]:
        """Every classified, not-unsure image with its label(s) and their scores."""
        session, pairs = self.window.session, []
        for row, item in enumerate(session.items):
            decision = session.decision(row)
            if decision is None or decision.unsure or not decision.labels:
                continue
            scores = dict(session.ranked_scores(row))
            pairs.append((item.path, [(name, float(scores[name])) for name in decision.labels]))
        return pairs

    def write_dialog(self) -> KeywordDialog | None:
        pairs = self.assignments()
        if not pairs:
            self.window.show_message("No image has a label yet: add images and type labels first.", 6000)
            return None
        dialog = KeywordDialog(len(pairs), self.window.settings, self.window)
        dialog.accepted.connect(lambda: self._accepted(dialog))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _accepted(self, dialog: KeywordDialog) -> None:
        try:
            options = dialog.options()
        except ClipdeskError as error:
            self.window.show_message(str(error), 8000)
            return
        self.window.settings["xmp_hierarchy"] = options.hierarchy
        self.window.settings["xmp_naming"] = options.naming
        self.write(options)

    def write(self, options: keywords.KeywordOptions) -> Task:
        pairs = self.assignments()

        def connect(task: Task) -> None:
            task.signals.finished.connect(self._written)
            task.signals.errored.connect(lambda error: self.window.show_message(str(error), 8000))

        self.task = run_in_pool("keywords", lambda _c, token: keywords.write_keywords_job(pairs, options, token),
                                connect=connect)
        return self.task

    def _written(self, record: keywords.KeywordRecord) -> None:
        if record.written:
            self.window.undo.push(WriteKeywords(len(record.written), lambda: self.undo(record)))
        self.window.show_message(record.message() + (" Edit › Undo restores the files." if record.written else ""),
                                 10000)

    def undo(self, record: keywords.KeywordRecord) -> None:
        try:
            result = keywords.undo_keywords(record)
        except ClipdeskError as error:
            self.window.show_message(str(error), 8000)
            return
        self.window.show_message(result.message(), 8000)

    def export_dataset_dialog(self) -> None:
        start = Path(self.window.settings.get("last_folder") or Path.home()) / "clipdesk-dataset.parquet"
        path, _ = QFileDialog.getSaveFileName(self.window, "Export dataset", str(start),
                                              "Parquet for Hugging Face datasets (*.parquet)")
        if path:
            self.export_dataset_to(Path(path if path.endswith(".parquet") else path + ".parquet"))

    def export_dataset_to(self, path: Path) -> Task:
        """Reading every image's bytes takes a while for a large library: on the pool, not the
        GUI thread; the rows and vectors are taken now, so later edits do not change the file."""
        from clipdesk.core.dataset import export_parquet
        from clipdesk.core.export import result_rows

        session = self.window.session
        paths, vectors = session.features()
        embeddings = {str(p): vectors[i] for i, p in enumerate(paths)}
        rows, labels = result_rows(session), list(session.score_labels)

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda count: self.window.show_message(
                f"Exported {count} images to {path} (load it with datasets.Dataset.from_parquet).", 10000))
            task.signals.errored.connect(lambda error: self.window.show_message(str(error), 8000))

        self.window.show_message(f"Exporting the dataset to {path}…")
        self.export_task = run_in_pool("dataset", lambda _c, _t: export_parquet(rows, labels, path, embeddings),
                                       connect=connect)
        return self.export_task
