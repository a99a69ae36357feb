"""The real window under real Qt events, checked against the core computing the same thing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit
from qt_helpers import TINY, wait_idle

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model
from clipdesk.core.settings import Settings
from clipdesk.qt.widgets.results_table import VALUE_ROLE


@pytest.fixture(scope="module")
def core_engine():
    return Engine(TorchEncoder(load_model(*TINY, "cpu")), NullCache())


def core_probs(engine, paths, labels, multi_label=False):
    result = run_job(engine.embed_job(paths, batch_size=4))
    label_set = engine.label_set(labels, "photo")
    quarters = run_job(engine.quarters_job(result.paths, result.features)) if multi_label else None
    return result.paths, engine.score(result.features, label_set, multi_label, quarters=quarters).probs


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    target = widget.viewport() if hasattr(widget, "viewport") else widget
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    with warnings.catch_warnings():  # PySide marks the only QDragEnterEvent constructor deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(40, 40), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(target, enter)  # Qt delivers a drop only to the widget that took the enter
    assert enter.isAccepted()
    event = QDropEvent(QPointF(40, 40), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(target, event)
    assert event.isAccepted()


def type_label(qtbot, window, text: str) -> None:
    line = window.findChild(QLineEdit, "labelInput")
    qtbot.keyClicks(line, text)
    qtbot.keyClick(line, Qt.Key.Key_Return)


def test_object_names(open_window):
    window = open_window(wait=False)
    from PySide6.QtWidgets import QWidget

    for name in ("imageView", "labelEditor", "labelInput", "resultsTable", "searchBox", "progressBar"):
        assert window.findChild(QWidget, name) is not None, name
    assert window.objectName() == "mainWindow"
    from PySide6.QtWidgets import QMenu

    menus = {m.objectName() for m in window.findChildren(QMenu)}
    assert {"modelMenu", "trainingMenu"} <= menus


def test_drop_type_labels_and_scores_equal_core(qtbot, open_window, make_images, tmp_path, core_engine):
    window = open_window()
    images = make_images(6)
    broken = tmp_path / "images" / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    drop(window.image_view, [tmp_path / "images"])  # a folder, with one broken file in it
    type_label(qtbot, window, "cat")
    type_label(qtbot, window, "dog | puppy, red car")  # a pasted-style list with synonyms
    assert window.session.labels == ["cat", "dog | puppy", "red car"]
    qtbot.waitUntil(lambda: len(window.session) == 7, timeout=20000)
    wait_idle(qtbot, window)

    paths, probs = core_probs(core_engine, images, ["cat", "dog | puppy", "red car"])
    for path, expected in zip(paths, probs):
        item = window.session.items[window.session.row_of(path)]
        np.testing.assert_allclose(item.probs, expected, atol=1e-5)
    # What the table shows is the core's top probability.
    table = window.table_proxy
    shown = {table.index(r, 0).data(): table.index(r, 2).data(VALUE_ROLE) for r in range(table.rowCount())}
    for path, expected in zip(paths, probs):
        assert shown[path.name] == pytest.approx(float(expected.max()), abs=1e-5)
    # The broken file is one badge entry, not a dialog; the rest classified.
    bad = window.session.items[window.session.row_of(broken)]
    assert bad.status == "error" and "broken.jpg" in bad.error
    assert window.badge.isVisible() and "1 problem" in window.badge.text()
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.objectName() == "modelErrorBox"]

    # Dropping the same files again adds nothing.
    drop(window.image_view, images[:3])
    qtbot.wait(300)
    assert len(window.session) == 7


def test_editing_a_label_rescores_without_reencoding(qtbot, open_window, make_images, core_engine):
    window = open_window()
    images = make_images(5)
    window.add_paths(images)
    type_label(qtbot, window, "cat, dog")
    wait_idle(qtbot, window, 5)
    calls = window.worker.engine.encoder.encoder_calls
    encoded = window.worker.engine.cache

    item = window.label_editor.list.item(1)
    with qtbot.waitSignal(window.results_updated, timeout=20000):
        item.setText("bicycle")  # edit in place
    wait_idle(qtbot, window)
    assert window.session.score_labels == ["cat", "bicycle"]
    assert window.worker.engine.encoder.encoder_calls == calls  # no image went through the encoder
    assert window.worker.engine.cache is encoded
    paths, probs = core_probs(core_engine, images, ["cat", "bicycle"])
    for path, expected in zip(paths, probs):
        np.testing.assert_allclose(window.session.items[window.session.row_of(path)].probs, expected, atol=1e-5)

    # Reorder and delete also re-score from stored embeddings.
    window.session.move_label(1, 0)
    wait_idle(qtbot, window)
    assert window.session.score_labels == ["bicycle", "cat"]
    window.label_editor.list.setCurrentRow(0)
    window.label_editor.list.item(0).setSelected(True)
    qtbot.keyClick(window.label_editor.list, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    assert window.session.score_labels == ["cat"]
    assert window.worker.engine.encoder.encoder_calls == calls


def test_multi_label_and_unsure_bucket(qtbot, open_window, make_images, core_engine):
    window = open_window()
    images = make_images(4)
    window.add_paths(images)
    window.session.set_labels(["cat", "dog", "car"])
    wait_idle(qtbot, window, 4)
    window.label_editor.multi_label.setChecked(True)
    wait_idle(qtbot, window)
    paths, probs = core_probs(core_engine, images, ["cat", "dog", "car"], multi_label=True)
    for path, expected in zip(paths, probs):
        np.testing.assert_allclose(window.session.items[window.session.row_of(path)].probs, expected, atol=1e-5)
    window.label_editor.multi_label.setChecked(False)
    wait_idle(qtbot, window)
    window.label_editor.threshold.setValue(99)  # nobody is that sure with random weights
    assert all(window.session.decision(r).unsure for r in range(4))
    window.set_label_filter("unsure")
    assert window.table_proxy.rowCount() == 4
    window.set_label_filter("car")
    assert window.table_proxy.rowCount() == 0
    window.set_label_filter("")
    assert window.grid_proxy.rowCount() == 4


def test_cancel_mid_run_then_resume(qtbot, open_window, make_images):
    window = open_window(batch_size=2)
    window.session.set_labels(["cat", "dog"])
    images = make_images(30)
    batches = []

    def first_batch() -> None:  # Esc as the first batch lands, whatever the machine's speed
        if window.session.counts()["done"] and not batches:
            batches.append(1)
            qtbot.keyClick(window, Qt.Key.Key_Escape)

    window.results_updated.connect(first_batch)
    window.add_paths(images)
    qtbot.waitUntil(lambda: len(batches) >= 1, timeout=30000)
    qtbot.waitUntil(lambda: window._classify_task is None, timeout=20000)
    left = len(window.session.pending_paths())
    assert 0 < left < 30
    assert "Cancelled" in window.status_label.text()
    window.classify_action.trigger()
    wait_idle(qtbot, window, 30)
    assert window.session.counts()["done"] == 30


def test_search_and_find_similar(qtbot, open_window, make_images):
    window = open_window()
    images = make_images(6)
    window.add_paths(images)
    wait_idle(qtbot, window, 6)
    qtbot.keyClicks(window.search_box, "a red square")
    with qtbot.waitSignal(window.results_updated, timeout=20000):
        qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    sims = [item.similarity for item in window.session.items]
    assert all(s is not None for s in sims)
    first = window.grid_proxy.index(0, 0)
    assert window.session.items[window.grid_proxy.mapToSource(first).row()].similarity == max(sims)

    with qtbot.waitSignal(window.results_updated, timeout=20000):
        window.find_similar(images[3])
    top = window.session.items[window.grid_proxy.mapToSource(window.grid_proxy.index(0, 0)).row()]
    assert top.path == images[3] and top.similarity == pytest.approx(1.0, abs=1e-4)
    window.search_box.clear()
    assert all(item.similarity is None for item in window.session.items)


def test_delete_paste_and_clear(qtbot, open_window, make_images):
    window = open_window()
    images = make_images(4)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in images])
    QGuiApplication.clipboard().setMimeData(mime)
    window.image_view.setFocus()
    window.paste_action.trigger()
    qtbot.waitUntil(lambda: len(window.session) == 4, timeout=20000)
    view = window.image_view
    view.setCurrentIndex(window.grid_proxy.index(0, 0))
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert len(window.session) == 3 and window.session.row_of(images[0]) is None
    window.clear_action.trigger()
    assert len(window.session) == 0


def test_settings_round_trip(qtbot, open_window, tmp_path):
    window = open_window(wait=False)
    window.session.set_labels(["apple", "pear | nashi"])
    window.label_editor.templates.setCurrentIndex(window.label_editor.templates.findData("ensemble"))
    window.label_editor.margin.setValue(10)
    window.resize(701, 503)
    window.close()
    saved = Settings.load()
    assert saved["labels"] == ["apple", "pear | nashi"]
    assert saved["templates"] == "ensemble" and saved["margin"] == pytest.approx(0.10)
    assert saved["recent_label_sets"][0] == ["apple", "pear | nashi"]
    assert saved["arch"] in ("", "clipdesk-tiny")

    again = open_window(Settings.load(), wait=False)
    assert again.session.labels == ["apple", "pear | nashi"]
    assert again.label_editor.templates.currentData() == "ensemble"
    assert again.size().width() == 701


def test_export_and_labels_files(qtbot, open_window, make_images, tmp_path):
    import csv
    import json

    window = open_window()
    images = make_images(3)
    window.add_paths(images)
    window.session.set_labels(["cat", "dog"])
    wait_idle(qtbot, window, 3)
    window.export_to(tmp_path / "out.json")
    window.export_to(tmp_path / "out.csv")
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["labels"] == ["cat", "dog"]
    first = data["results"][0]
    assert set(first["scores"]) == {"cat", "dog"} and sum(first["scores"].values()) == pytest.approx(1, abs=1e-5)
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 3 and "score:cat" in rows[0] and "score:dog" in rows[0]
    window.export_labels_to(tmp_path / "labels.txt")
    window.session.set_labels([])
    window.import_labels_from(tmp_path / "labels.txt")
    assert window.session.labels == ["cat", "dog"]


def test_bad_checkpoint_shows_one_dialog(qtbot, open_window, tmp_path):
    window = open_window()
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"garbage")
    with qtbot.waitSignal(window.model_failed, timeout=30000) as blocker:
        window.load_model("clipdesk-tiny", str(bad))
    assert "weights.safetensors" in blocker.args[0]
    assert window.model_error_box is not None and window.model_error_box.isVisible()
    window.load_model("clipdesk-tiny", str(tmp_path / "missing.pt"))
    qtbot.waitUntil(lambda: "does not exist" in window.model_error_box.text(), timeout=30000)
    boxes = [w for w in QApplication.topLevelWidgets() if w.objectName() == "modelErrorBox" and w.isVisible()]
    assert len(boxes) == 1  # reused, never stacked
    window.model_error_box.reject()


def test_model_menu_lists_and_loads(qtbot, open_window):
    window = open_window()
    menu = window.model_menu
    menu.fetch()
    qtbot.waitUntil(lambda: menu.entries is not None, timeout=30000)
    menu.rebuild()
    actions = {}

    def walk(m):
        for action in m.actions():
            if action.menu():
                walk(action.menu())
            elif action.data():
                actions[tuple(action.data()) if isinstance(action.data(), (list, tuple)) else action.data()] = action

    walk(menu)
    assert ("clipdesk-tiny", "none") in actions
    with qtbot.waitSignal(window.model_loaded, timeout=30000):
        actions[("clipdesk-tiny", "none")].trigger()
    assert window.model_info["arch"] == "clipdesk-tiny"
    assert len(menu.actions()) < 30  # no longer 100+ cascading items: a filterable picker
    picker = menu.open_picker()
    total = picker.list.count()
    assert total > 20
    qtbot.keyClicks(picker.filter, "b-32 openai")
    shown = [picker.list.item(r) for r in range(total) if not picker.list.item(r).isHidden()]
    assert shown and all("b-32" in i.text().casefold() and "openai" in i.text() for i in shown)
    assert picker.count.text() == f"{len(shown)} of {total} models"
    menu.chosen.disconnect()  # only look at what was picked: no download in a test
    with qtbot.waitSignal(menu.chosen) as chosen:
        qtbot.keyClick(picker.filter, Qt.Key.Key_Return)  # Enter takes the first match
    assert chosen.args == list(shown[0].data(Qt.ItemDataRole.UserRole))
