"""Thumbnails: decoded on demand, newest request first, kept in an LRU cache under a byte budget."""

from __future__ import annotations

from clipdesk.qt.thumbnails import Thumbnails, load_qimage


def test_lru_budget_keeps_recent_thumbnails(qtbot, make_images):
    images = make_images(12)
    one = load_qimage(images[0], 64).sizeInBytes()
    thumbs = Thumbnails(size=64, budget_bytes=4 * one)
    assert thumbs.get(images[0]) is None  # asks for it
    qtbot.waitUntil(lambda: not thumbs.busy(), timeout=20000)
    assert thumbs.get(images[0]) is not None
    thumbs.request(images[1:])
    qtbot.waitUntil(lambda: not thumbs.busy(), timeout=20000)
    assert thumbs.bytes <= 4 * one and len(thumbs.images) == 4
    assert thumbs.bytes == sum(image.sizeInBytes() for image in thumbs.images.values())
    thumbs.clear()
    assert thumbs.bytes == 0 and not thumbs.images


def test_grid_decodes_only_what_it_paints(qtbot, open_window, make_images):
    window = open_window(wait=False)
    window.resize(700, 500)
    images = make_images(60)
    window.add_paths(images)
    qtbot.waitUntil(lambda: len(window.session) == 60, timeout=20000)
    qtbot.waitUntil(lambda: len(window.thumbnails.images) > 0 and not window.thumbnails.busy(), timeout=20000)
    assert len(window.thumbnails.images) < 60  # the cards below the fold were never decoded
    first = window.grid_proxy.index(0, 0).data()
    assert any(path.name == first for path in window.thumbnails.images)
