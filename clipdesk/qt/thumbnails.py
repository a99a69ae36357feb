"""Thumbnails decoded off the GUI thread (pool jobs), cached as QImages per path and size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from clipdesk.core.jobs import Progress

from .worker import run_in_pool

THUMB_SIZE = 160
CHUNK = 8  # files per pool job: fewer signals, still quick to first pixels


def load_qimage(path: Path, size: int) -> QImage:
    """Decode with the core's loader (EXIF rotation, CMYK, 16-bit, JPEG draft) and scale."""
    from clipdesk.core.images import open_image

    image = open_image(path, draft_size=size)
    image.thumbnail((size, size))
    data = image.tobytes("raw", "RGB")
    qimage = QImage(data, image.width, image.height, 3 * image.width, QImage.Format.Format_RGB888)
    return qimage.copy()  # own the pixels: `data` dies with this frame


def _thumbnail_job(paths: Sequence[Path], size: int, token):
    for i, path in enumerate(paths):
        token.check()
        try:
            image, error = load_qimage(path, size), ""
        except Exception as exc:  # noqa: BLE001 - shown as the item's badge, never a dialog
            image, error = None, str(exc)
        yield Progress(i + 1, len(paths), payload=(path, image, error))


class Thumbnails(QObject):
    """Asks the pool for thumbnails and remembers them; `ready(path)` when one arrives."""

    ready = Signal(object)

    def __init__(self, size: int = THUMB_SIZE, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self.images: dict[Path, QImage] = {}
        self.failed: dict[Path, str] = {}
        self._requested: set[Path] = set()
        self._tasks = []

    def request(self, paths: Sequence[Path]) -> None:
        todo = [p for p in paths if p not in self._requested]
        self._requested.update(todo)
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            self._tasks.append(run_in_pool(
                "thumbnails", lambda _ctx, token, chunk=chunk: _thumbnail_job(chunk, self.size, token),
                connect=self._connect))

    def _connect(self, task) -> None:
        task.signals.yielded.connect(self._on_progress)
        task.signals.finished.connect(lambda *_: self._forget(task))
        task.signals.errored.connect(lambda *_: self._forget(task))

    def _forget(self, task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    def _on_progress(self, progress: Progress) -> None:
        path, image, error = progress.payload
        if image is not None:
            self.images[path] = image
        else:
            self.failed[path] = error
        self.ready.emit(path)

    def get(self, path: Path) -> QImage | None:
        return self.images.get(path)

    def rename(self, old: Path, new: Path) -> None:
        if old in self.images:
            self.images[new] = self.images.pop(old)
        self._requested.add(new)

    def forget(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.images.pop(path, None)
            self._requested.discard(path)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def busy(self) -> bool:
        return bool(self._tasks)


def scaled(image: QImage, width: int, height: int) -> QImage:
    return image.scaled(width, height, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)


def on_ready(thumbnails: Thumbnails, callback: Callable[[Path], None]) -> None:
    thumbnails.ready.connect(callback)
