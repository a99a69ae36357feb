"""Thumbnails decoded off the GUI thread (pool jobs), on demand, in an LRU cache with a memory bound.

A view asks for a thumbnail when it paints a card (`get`), so only what is on screen (and what was
recently) is decoded and kept: 20,000 images cost the same memory as 200. The newest requests are
decoded first, so scrolling quickly to the end shows the end, not the pictures scrolled past.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage

from clipdesk.core.jobs import Progress

from .worker import run_in_pool

THUMB_SIZE = 160
CHUNK = 8  # files per pool job: fewer signals, still quick to first pixels
JOBS = 2  # pool jobs at once (the pool has two threads; the encoder needs the cores)
WANTED_MAX = 256  # requests remembered while the pool is busy; older ones are dropped
DEFAULT_BUDGET = 64 << 20  # bytes of decoded thumbnails kept (≈ 1,100 grid thumbnails)


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
    """Decodes thumbnails when asked and remembers the recent ones; `ready(path)` when one arrives."""

    ready = Signal(object)

    def __init__(self, size: int = THUMB_SIZE, parent: QObject | None = None,
                 budget_bytes: int = DEFAULT_BUDGET) -> None:
        super().__init__(parent)
        self.size = size
        self.budget_bytes = budget_bytes
        self.images: OrderedDict[Path, QImage] = OrderedDict()  # least recently used first
        self.bytes = 0
        self.failed: dict[Path, str] = {}
        self._wanted: OrderedDict[Path, None] = OrderedDict()  # newest last
        self._in_flight: set[Path] = set()
        self._tasks: list = []
        self._dispatch_timer = QTimer(self, singleShot=True)
        self._dispatch_timer.timeout.connect(self._dispatch)

    def request(self, paths: Sequence[Path]) -> None:
        """Decode these soon (newest first); already cached, failed or in-flight paths are skipped."""
        for path in paths:
            if path in self.images or path in self.failed or path in self._in_flight:
                continue
            self._wanted[path] = None
            self._wanted.move_to_end(path)
        while len(self._wanted) > WANTED_MAX:
            self._wanted.popitem(last=False)
        if self._wanted and not self._dispatch_timer.isActive():
            self._dispatch_timer.start(0)

    def _dispatch(self) -> None:
        while self._wanted and len(self._tasks) < JOBS:
            chunk = []
            while self._wanted and len(chunk) < CHUNK:
                chunk.append(self._wanted.popitem(last=True)[0])
            self._in_flight.update(chunk)
            self._tasks.append(run_in_pool(
                "thumbnails", lambda _ctx, token, chunk=chunk: _thumbnail_job(chunk, self.size, token),
                connect=lambda task, chunk=chunk: self._connect(task, chunk)))

    def _connect(self, task, chunk: list[Path]) -> None:
        task.signals.yielded.connect(self._on_progress)
        task.signals.finished.connect(lambda *_: self._done(task, chunk))
        task.signals.errored.connect(lambda *_: self._done(task, chunk))

    def _done(self, task, chunk: list[Path]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        self._in_flight.difference_update(chunk)
        self._dispatch()

    def _on_progress(self, progress: Progress) -> None:
        path, image, error = progress.payload
        self._in_flight.discard(path)
        if image is not None:
            self._store(path, image)
        else:
            self.failed[path] = error
        self.ready.emit(path)

    def _store(self, path: Path, image: QImage) -> None:
        old = self.images.pop(path, None)
        if old is not None:
            self.bytes -= old.sizeInBytes()
        self.images[path] = image
        self.bytes += image.sizeInBytes()
        while self.bytes > self.budget_bytes and len(self.images) > 1:
            _, evicted = self.images.popitem(last=False)
            self.bytes -= evicted.sizeInBytes()

    def get(self, path: Path, load: bool = True) -> QImage | None:
        """The thumbnail if decoded (marked recently used); otherwise ask for it and return None."""
        image = self.images.get(path)
        if image is not None:
            self.images.move_to_end(path)
        elif load:
            self.request([path])
        return image

    def rename(self, old: Path, new: Path) -> None:
        if old in self.images:
            self.images[new] = self.images.pop(old)

    def forget(self, paths: Sequence[Path]) -> None:
        for path in paths:
            image = self.images.pop(path, None)
            if image is not None:
                self.bytes -= image.sizeInBytes()
            self.failed.pop(path, None)
            self._wanted.pop(path, None)

    def clear(self) -> None:
        """Release every decoded thumbnail (e.g. after Clear all images)."""
        self.images.clear()
        self.failed.clear()
        self._wanted.clear()
        self.bytes = 0

    def cancel(self) -> None:
        self._wanted.clear()
        for task in list(self._tasks):
            task.cancel()

    def busy(self) -> bool:
        return bool(self._tasks or self._wanted)


def scaled(image: QImage, width: int, height: int) -> QImage:
    """Fit into width × height; an image that already fits is drawn as it is (no per-paint scaling)."""
    if image.width() <= width and image.height() <= height:
        return image
    return image.scaled(width, height, Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)
