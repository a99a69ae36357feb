"""Model switching: the Model menu, loads on the model worker, and a failed load that keeps the
previous model working.

A load cancels running work and queues `_open_engine` on the worker; the previous engine stays in
`worker.engine` until the new one is ready, so a failed or cancelled load goes on with it and
explains itself once, in a dialog that names the menu items to use instead. The status bar's
model label names the backend, including the background ONNX export's "preparing" state, and is
refreshed when the encoder switches itself to ONNX Runtime mid-session: after each classify
chunk, and every 2 s while idle (a tiny task on the worker asks the encoder), so a passing state
never outlives what it describes.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QProgressDialog

from clipdesk.core.errors import Cancelled, ClipdeskError, ModelLoadError
from clipdesk.core.prompts import TEMPLATE_SET_NAMES, model_templates

from .widgets.model_menu import ModelMenu
from .worker import ModelWorker, Task

TEMPLATE_SETS = TEMPLATE_SET_NAMES
BACKEND_POLL_MS = 2000  # while the backend is a passing state (a background ONNX export)


@dataclass
class ModelChoice:
    arch: str = ""  # empty: the default tag if downloaded, else the demo model
    pretrained: str = ""
    device: str = "auto"
    backend: str = "auto"


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
            "class_names": loaded.class_names, "templates": model_templates(loaded.metadata)}


def _poll_backend(worker: ModelWorker, _token) -> str | None:
    """The poll task (worker thread): let a finished background export switch the encoder now."""
    encoder = getattr(worker.engine, "encoder", None)
    poll = getattr(encoder, "poll_background", None)
    return poll() if poll is not None else getattr(encoder, "name", None)


def _passing(backend: object) -> bool:
    """The backend's name describes work in progress (the background ONNX export)."""
    onnx = sys.modules.get("clipdesk.core.onnx_backend")  # imported whenever it made the name
    return onnx is not None and backend == onnx.PENDING_NAME


def gui_model_message(error: Exception) -> str:
    """A model error as a window user reads it: command-line hints become the menu items to use."""
    text = str(error) if isinstance(error, ClipdeskError) else f"Could not load the model: {error}"
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    kept = [s for s in sentences if "--" not in s and "clipdesk " not in s] or sentences[:1]
    return " ".join(kept) + ("\n\nUse Model › Load checkpoint… for weights on this computer, or "
                             "Model › Demo model, which needs no download.")


class ModelController(QObject):
    """Owns `menu` (Model), `choice`, `info` of the loaded model, `ready`, and the load task."""

    def __init__(self, window, choice: ModelChoice) -> None:
        super().__init__(window)
        self.window = window
        self.choice = choice
        self.info: dict = {}
        self.ready = False
        self.task: Task | None = None
        self.previous_choice: ModelChoice | None = None
        self.offer_classes = False
        self.download_dialog: QProgressDialog | None = None
        self.error_box: QMessageBox | None = None
        self.class_names_box: QMessageBox | None = None
        self.poll_task: Task | None = None
        self.backend_timer = QTimer(self, interval=BACKEND_POLL_MS)
        self.backend_timer.timeout.connect(self._poll_backend)
        self.menu = ModelMenu(window)
        self.menu.chosen.connect(lambda arch, pretrained: self.load(arch, pretrained))
        self.menu.load_checkpoint.connect(self.load_checkpoint_dialog)
        self.menu.reload.connect(self.reload)
        self.menu.device_chosen.connect(lambda device: self.load(device=device))
        self.menu.backend_chosen.connect(lambda backend: self.load(backend=backend))
        self.menu.set_current(choice.arch, choice.pretrained, choice.device, choice.backend)

    def initial_load(self) -> None:
        # At start-up the restored labels win; a model's class names are offered only when the
        # user has no labels yet or picks a model later.
        self.load(self.choice.arch, self.choice.pretrained)
        self.offer_classes = not self.window.session.labels

    def reload(self) -> None:
        self.load(self.choice.arch, self.choice.pretrained)

    def load(self, arch: str | None = None, pretrained: str | None = None,
             device: str | None = None, backend: str | None = None) -> Task:
        """Queue a model load (cancelling running work); every image is then embedded again."""
        window = self.window
        choice = ModelChoice(arch if arch is not None else self.choice.arch,
                             pretrained if pretrained is not None else self.choice.pretrained,
                             device or self.choice.device, backend or self.choice.backend)
        window.worker.cancel()
        self.offer_classes = True
        if self.ready:
            self.previous_choice = self.choice  # back to it if this load fails
        self.ready = False
        self.choice = choice
        window.classifier.forget_run()
        window.model_label.setText("Loading model…")
        window.show_message("Loading model…")
        window.progress_bar.setRange(0, 0)
        window._set_busy(True)

        def connect(task: Task) -> None:
            task.signals.yielded.connect(self._progress)
            task.signals.finished.connect(lambda info: self._loaded(task, info))
            task.signals.errored.connect(lambda error: self._failed(task, error))

        self.task = window.worker.submit("load", lambda w, token: _open_engine(choice, w, token), connect=connect)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _progress(self, progress) -> None:
        if progress.unit == "B":
            if self.download_dialog is None:
                dialog = QProgressDialog("Downloading model weights…", "Cancel", 0, 0, self.window)
                dialog.setObjectName("downloadDialog")
                dialog.setWindowTitle("Downloading")
                dialog.setMinimumDuration(0)
                dialog.canceled.connect(self.cancel)
                self.download_dialog = dialog
            total = progress.total or 0
            scale = 1 << 20
            self.download_dialog.setMaximum(total // scale if total else 0)
            self.download_dialog.setValue(progress.done // scale)
            self.download_dialog.setLabelText(
                f"{progress.message}\n{progress.done / scale:.0f} of {total / scale:.0f} MB"
                f" · {progress.rate / scale:.1f} MB/s")
        elif progress.message:
            self.window.show_message(progress.message)

    def _close_download_dialog(self) -> None:
        if self.download_dialog is not None:
            self.download_dialog.reset()
            self.download_dialog.hide()
            self.download_dialog.deleteLater()
            self.download_dialog = None

    def _show_label(self, device: str, backend: str) -> None:
        info = self.info
        self.window.model_label.setText(f"{info['name']} · {info['device']} · {info['backend']}")
        self.menu.set_current(info["arch"], info["pretrained"], device, backend)
        if _passing(info["backend"]):
            self.backend_timer.start()
        else:
            self.backend_timer.stop()

    def _poll_backend(self) -> None:
        """Every 2 s while the backend is passing: idle, ask the encoder on the worker; busy, its
        batches poll and each chunk refreshes the label, so just read the name."""
        if not self.ready or not _passing(self.info.get("backend")):
            self.backend_timer.stop()
            return
        if self._busy():
            self.refresh_backend()
            return
        if self.poll_task is not None:
            return

        def connect(task: Task) -> None:
            task.signals.finished.connect(lambda _name: self._polled(task))
            task.signals.errored.connect(lambda _error: self._polled(task))

        self.poll_task = self.window.worker.submit("backend", _poll_backend, connect=connect)

    def _busy(self) -> bool:
        """A job other than the backend poll is running or queued on the model worker."""
        return any(task.name != "backend" for task in self.window.worker.tasks())

    def _polled(self, task: Task) -> None:
        if task is self.poll_task:
            self.poll_task = None
            self.refresh_backend()

    def _loaded(self, task: Task, info: dict) -> None:
        if task is not self.task:
            return
        window, session = self.window, self.window.session
        self._close_download_dialog()
        session.reset_embeddings()  # only now: a failed load keeps the previous results
        window.classifier.scores_signature = None
        self.ready = True
        self.info = info
        self.choice = ModelChoice(info["arch"], info["pretrained"], self.choice.device, self.choice.backend)
        self._show_label(self.choice.device, self.choice.backend)
        window.setWindowTitle(f"clipdesk — {info['name']}")
        window.settings.values.update(arch=info["arch"], pretrained=info["pretrained"],
                                      device=self.choice.device, backend=self.choice.backend)
        window._save_settings()
        window._set_busy(False)
        window._idle_message()
        if info.get("templates"):  # the prompts it was trained with; else the user's choice stays
            session.set_options(templates=info["templates"])
        window.model_loaded.emit(info)
        names = info.get("class_names")
        if self.offer_classes and names and [n.casefold() for n in names] != [
                n.casefold() for n in session.label_names()]:
            self._offer_class_names(names)
        window.classifier.resume()

    def refresh_backend(self) -> None:
        """The background ONNX export finished and the encoder switched itself: say so."""
        encoder = getattr(self.window.worker.engine, "encoder", None)
        name = getattr(encoder, "name", None)
        if self.ready and self.info and isinstance(name, str) and name != self.info.get("backend"):
            self.info = {**self.info, "backend": name}
            self._show_label(self.choice.device, self.choice.backend)
            if name.startswith("onnx") and not self._busy():  # else the running job's progress line stays
                self.window.show_message(f"The faster ONNX version of {self.info['name']} is ready and in use.",
                                         8000)

    def _offer_class_names(self, names: list[str]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Use the model's classes?",
                          f"This model was trained on {len(names)} classes: {', '.join(names[:8])}"
                          f"{'…' if len(names) > 8 else ''}.\nUse them as labels?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.window)
        box.setObjectName("classNamesBox")
        box.accepted.connect(lambda: self.window.replace_labels(names))
        self.class_names_box = box
        box.open()

    def _failed(self, task: Task, error: Exception) -> None:
        if task is not self.task:
            return
        self._close_download_dialog()
        self.window._set_busy(False)
        kept = self._keep_previous()
        if isinstance(error, Cancelled):
            self.window.show_message(f"Model loading cancelled.{kept}", 10000)
            return
        message = gui_model_message(error)
        self.window.show_message(f"The model could not be loaded.{kept}", 10000)  # the reason: in the dialog only
        self.window.model_failed.emit(message)
        self._show_error(message)

    def _keep_previous(self) -> str:
        """After a failed or cancelled load, go on with the model that was working, if any."""
        previous = self.previous_choice
        if previous is None or not self.info:
            self.window.model_label.setText("No model loaded")
            return " Choose a model in the Model menu."
        self.choice = previous
        self.ready = True
        self._show_label(previous.device, previous.backend)
        self.window.classifier.resume()
        return f" Still using {self.info['name']}."

    def _show_error(self, message: str) -> None:
        """One dialog (reused, never stacked) that explains and offers a way out."""
        if self.error_box is not None:
            self.error_box.setText(message)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Model not available", message,
                          QMessageBox.StandardButton.Close, self.window)
        box.setObjectName("modelErrorBox")
        local = box.addButton("Load a local file…", QMessageBox.ButtonRole.ActionRole)
        demo = box.addButton("Use the demo model", QMessageBox.ButtonRole.ActionRole)

        def clicked(button) -> None:
            self.error_box = None
            if button is local:
                QTimer.singleShot(0, self, self.load_checkpoint_dialog)
            elif button is demo:
                self.load(pretrained="demo")

        box.buttonClicked.connect(clicked)
        box.rejected.connect(lambda: setattr(self, "error_box", None))
        self.error_box = box
        box.open()

    def load_checkpoint_dialog(self) -> None:
        window = self.window
        path, _ = QFileDialog.getOpenFileName(
            window, "Load checkpoint", window.settings["last_folder"],
            "Checkpoints (*.safetensors *.pt *.pth *.bin metadata.json);;All files (*)")
        if not path:
            return
        path = Path(path)
        if path.name == "metadata.json":  # a fine-tuned model folder
            self.load(self.choice.arch or "ViT-B-32", str(path.parent))
            return
        arches = sorted({e.arch for e in (self.menu.entries or [])}) or [self.choice.arch or "ViT-B-32"]
        current = self.choice.arch if self.choice.arch in arches else arches[0]
        arch, ok = QInputDialog.getItem(window, "Architecture", f"Which architecture are the weights in "
                                        f"{path.name} for?", arches, arches.index(current), True)
        if ok and arch:
            self.load(arch, str(path))
