"""Shared by the GUI tests (a module of its own: `from conftest import` is ambiguous across folders)."""

from __future__ import annotations

TINY = ("clipdesk-tiny", "none")


def wait_idle(qtbot, window, count: int | None = None, timeout: int = 60000) -> None:
    """Until `count` images are in (if given), all embedded, and scores match the labels."""
    def settled():
        return ((count is None or len(window.session) == count) and window.model_ready
                and window._classify_task is None and window._rescore_task is None
                and not window.session.pending_paths() and not window._needs_rescore()
                and not window.session.region_pending())

    qtbot.waitUntil(settled, timeout=timeout)


def window_with_images(qtbot, open_window, images, labels=(), **options):
    """A shown window (tiny model) with `images` added, embedded and, given labels, scored."""
    window = open_window(**options)
    if labels:
        window.session.set_labels(list(labels))
    window.add_paths(images)
    wait_idle(qtbot, window, len(images))
    return window
