"""The Model menu (`modelMenu`): demo, fine-tuned, pretrained tags (✓ = downloaded), Load
checkpoint…, device and backend; random weights (for testing) only under Developer, where nobody
picks them by mistake. Filled from the core's catalog, fetched off-thread."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from ..worker import run_in_pool

DEVICES = (("auto", "Auto"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))
BACKENDS = (("auto", "Auto"), ("torch", "PyTorch"), ("onnx", "ONNX Runtime"))


def _catalog(_ctx, _token):
    from clipdesk.core.catalog import list_models

    return list_models(include_untagged=True)


class ModelMenu(QMenu):
    chosen = Signal(str, str)  # arch, pretrained (tag, folder, 'demo' or 'none')
    load_checkpoint = Signal()
    device_chosen = Signal(str)
    backend_chosen = Signal(str)
    reload = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("&Model", parent)
        self.setObjectName("modelMenu")
        self.entries = None  # catalog.ModelEntry list once fetched
        self.current = ("", "")
        self.device = "auto"
        self.backend = "auto"
        self._fetching = False
        self.picker = None
        self.aboutToShow.connect(self.rebuild)
        self.rebuild(fetch=False)  # the catalog imports open_clip (torch): not at start-up

    def fetch(self) -> None:
        """Read the catalog in the pool (it imports open_clip); the menu refills when it lands."""
        if self._fetching:
            return
        self._fetching = True

        def connect(task):
            task.signals.finished.connect(self._fetched)
            task.signals.errored.connect(lambda _e: setattr(self, "_fetching", False))

        run_in_pool("catalog", _catalog, connect=connect)

    def _fetched(self, entries) -> None:
        self._fetching = False
        self.entries = entries
        self.rebuild()

    def set_current(self, arch: str, pretrained: str, device: str, backend: str) -> None:
        self.current, self.device, self.backend = (arch, pretrained), device, backend
        self.rebuild(fetch=False)

    def rebuild(self, fetch: bool = True) -> None:
        self.clear()
        if self.entries is None:
            if fetch:
                self.fetch()
            self.addAction("Loading the model list…").setEnabled(False)
        else:
            self._add_entries()
        self.addSeparator()
        self.addAction("Load checkpoint…", self.load_checkpoint.emit).setObjectName("loadCheckpointAction")
        self.addAction("Reload model", self.reload.emit)
        self.addSeparator()
        self._radio_menu("Device", DEVICES, self.device, self.device_chosen)
        self._radio_menu("Backend", BACKENDS, self.backend, self.backend_chosen)
        if self.entries is not None:
            self._add_developer_menu()

    def _radio_menu(self, title: str, choices, current: str, signal) -> None:
        menu = self.addMenu(title)
        menu.setObjectName(f"{title.lower()}Menu")
        group = QActionGroup(menu)
        for key, text in choices:
            action = QAction(text, menu, checkable=True)
            action.setData(key)
            action.setChecked(key == current)
            action.triggered.connect(lambda _=False, key=key: signal.emit(key))
            group.addAction(action)
            menu.addAction(action)

    def _choice(self, menu: QMenu, text: str, arch: str, pretrained: str) -> QAction:
        action = QAction(text, menu, checkable=True)
        action.setChecked((arch, pretrained) == self.current or (
            pretrained not in ("none", "demo") and pretrained == self.current[1]))
        action.setData((arch, pretrained))
        action.triggered.connect(lambda _=False: self.chosen.emit(arch, pretrained))
        menu.addAction(action)
        return action

    def open_picker(self):
        """The filterable list of every architecture and tag."""
        from .model_picker import ModelPicker

        entries = [e for e in (self.entries or []) if e.kind == "pretrained"]
        self.picker = ModelPicker(entries, self.current, self.parentWidget())
        self.picker.chosen.connect(self.chosen)
        self.picker.open()
        return self.picker

    def _add_entries(self) -> None:
        entries = self.entries or []
        demo = [e for e in entries if e.kind == "demo"]
        for entry in demo:
            self._choice(self, f"Demo model ({entry.arch})", entry.arch, "demo")
        tuned = [e for e in entries if e.kind == "fine-tuned"]
        menu = self.addMenu("Fine-tuned models")
        menu.setObjectName("finetunedMenu")
        if not tuned:
            menu.addAction("None yet — Training › Fine-tune on folder…").setEnabled(False)
        for entry in tuned:
            classes = f", {len(entry.class_names)} classes" if entry.class_names else ""
            self._choice(menu, f"{Path(entry.pretrained).name} ({entry.arch}{classes})",
                         entry.arch, entry.pretrained)
        tags = [e for e in entries if e.kind == "pretrained"]
        have = sum(e.available for e in tags)
        downloaded = f"{have} downloaded" if have else "none downloaded yet"
        pick = self.addAction(f"Choose a pretrained CLIP model… ({len(tags)} to choose from, {downloaded})",
                              self.open_picker)
        pick.setObjectName("pretrainedPickerAction")
        pick.setToolTip("Every open_clip architecture and weight set; ✓ marks those already on this "
                        "computer, the others download when chosen")
        for entry in tags:  # the downloaded ones stay one click away
            if entry.available:
                self._choice(self, f"✓ {entry.arch} · {entry.pretrained}", entry.arch, entry.pretrained)

    def _add_developer_menu(self) -> None:
        """Untrained architectures: useful to test the app, useless to classify with."""
        developer = self.addMenu("Developer")
        developer.setObjectName("developerMenu")
        random = developer.addMenu("Random weights (for testing only)")
        random.setObjectName("randomWeightsMenu")
        random.setToolTip("An untrained model: its labels are noise")
        for entry in self.entries or []:
            if entry.kind == "random":
                self._choice(random, entry.arch, entry.arch, "none")
