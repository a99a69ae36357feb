"""File › Write labels as keywords… and File › Export dataset… in the real window: the menu
action, the dialog's OK, sidecars read back with ElementTree, Edit › Undo by Ctrl+Z."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialogButtonBox
from qt_helpers import wait_idle, window_with_images

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
LR = "{http://ns.adobe.com/lightroom/1.0/}"


def hierarchical(sidecar) -> list[str]:
    return [li.text for node in ET.parse(sidecar).getroot().iter(f"{LR}hierarchicalSubject")
            for li in node.iter(f"{RDF}li")]


def action(window, name: str) -> QAction:
    found = window.findChild(QAction, name)
    assert found is not None, name
    return found


def test_write_keywords_from_the_menu_and_undo_by_ctrl_z(qtbot, open_window, make_images, tmp_path):
    images = make_images(4)
    window = window_with_images(qtbot, open_window, images, labels=["cat", "dog"])
    existing = images[0].with_name(images[0].name + ".xmp")
    existing.write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
                        '02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/'
                        'xap/1.0/" xmp:Rating="5"/></rdf:RDF></x:xmpmeta>', encoding="utf-8")
    before = existing.read_bytes()
    action(window, "writeKeywordsAction").trigger()
    dialog = window.keywords.dialog
    qtbot.waitUntil(dialog.isVisible)
    dialog.hierarchy.clear()
    qtbot.keyClicks(dialog.hierarchy, "auto")
    qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok),
                     Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: all(p.with_name(p.name + ".xmp").exists() for p in images)
                    and "Wrote keywords" in window.status_label.text(), timeout=20000)
    for row, path in enumerate(images):
        probs = window.session.items[row].probs
        best = ["cat", "dog"][int(np.argmax(probs))]  # the window's top label, read from its scores
        assert hierarchical(path.with_name(path.name + ".xmp")) == [f"auto|{best}"]
    assert b'Rating="5"' in existing.read_bytes()

    assert action(window, "undoAction").text() == "&Undo Write keywords for 4 images"
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)  # the dialog had the focus
    qtbot.keyClick(window.image_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "Undid the keyword write" in window.status_label.text())
    assert existing.read_bytes() == before
    assert [p.name for p in images[0].parent.glob("*.xmp")] == [existing.name]


def test_export_dataset_from_the_window(qtbot, open_window, make_images, tmp_path):
    import datasets

    images = make_images(3)
    window = window_with_images(qtbot, open_window, images, labels=["cat", "dog", "car"])
    wait_idle(qtbot, window, 3)
    target = tmp_path / "set.parquet"
    window.keywords.export_dataset_to(target)
    qtbot.waitUntil(lambda: "Exported 3 images" in window.status_label.text(), timeout=20000)
    loaded = datasets.Dataset.from_parquet(str(target))
    for record in loaded:
        row = window.session.row_of(record["path"])
        probs = window.session.items[row].probs
        assert np.allclose(record["scores"], probs, atol=1e-6)
        assert record["label"] == int(np.argmax(probs))
        assert np.allclose(record["embedding"], window.session.items[row].vector, atol=1e-6)


def test_nothing_classified_says_so(qtbot, open_window):
    window = open_window()
    action(window, "writeKeywordsAction").trigger()
    assert "No image has a label yet" in window.status_label.text()
