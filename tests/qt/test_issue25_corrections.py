"""Issue 25, point 9: right-click › Set label ▸ on cards, then Training › Fine-tune on my
corrections: the corrected images get the labels set by hand. The scores the window shows are
checked against the Tip-Adapter formula computed here from the images' embeddings."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication, QMenu
from qt_helpers import wait_idle, window_with_images


def _right_click(view, row: int) -> QMenu:
    """A real context-menu event on the card at `row`; returns the menu it pops up."""
    rect = view.visualRect(view.model().index(row, 0))
    viewport = view.viewport()
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, rect.center(), viewport.mapToGlobal(rect.center()))
    QApplication.sendEvent(viewport, event)
    menus = [m for m in view.findChildren(QMenu, "imageContextMenu") if m.isVisible()]
    assert len(menus) == 1
    return menus[0]


def _set_label(qtbot, view, row: int, label: str) -> None:
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(view.model().index(row, 0)).center())
    menu = _right_click(view, row)
    sub = menu.findChild(QMenu, "setLabelMenu")
    next(a for a in sub.actions() if a.text() == label).trigger()
    menu.close()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def test_set_label_then_refit_gives_the_corrected_labels(qtbot, open_window, make_images):
    labels = ["cat", "dog", "bird"]
    window = window_with_images(qtbot, open_window, make_images(10), labels=labels)
    window.activateWindow()
    session, view = window.session, window.image_view
    assert not window.refit_action.isEnabled()
    before = {item.path: labels[int(np.argmax(item.probs))] for item in session.items}
    picked = [session.items[r].path for r in (1, 4, 7)]
    wanted = {path: next(label for label in labels if label != before[path]) for path in picked}
    for path in picked:
        _set_label(qtbot, view, view.model().index(session.row_of(path), 0).row(), wanted[path])
    assert window.corrections.labels == wanted
    assert window.refit_action.isEnabled()
    with qtbot.waitSignal(window.results_updated, timeout=30000):
        window.refit_action.trigger()  # Training › Fine-tune on my corrections
    wait_idle(qtbot, window)
    for path in picked:  # the decision the card and the table show
        assert session.decision(session.row_of(path)).label == wanted[path]
    assert "3 of 3 now get the label you set" in window.status_label.text()

    # the numbers: softmax(scale·f·W₀ᵀ + α·exp(−β(1 − f·Kᵀ))·V), written out here
    head = window.corrections.last_fit.head
    features = np.stack([item.vector for item in session.items]).astype(np.float64)
    keys = np.stack([session.items[session.row_of(p)].vector for p in picked]).astype(np.float64)
    values = np.zeros((len(picked), len(labels)))
    values[np.arange(len(picked)), [labels.index(wanted[p]) for p in picked]] = 1.0
    text = head.zero_shot.astype(np.float64)  # the zero-shot classifier the window scored with
    zero = window.worker.engine.encoder.logit_scale * features @ text.T
    probs = _softmax(zero + head.alpha * np.exp(-head.beta * (1.0 - features @ keys.T)) @ values)
    shown = np.stack([item.probs for item in session.items])
    np.testing.assert_allclose(shown, probs, atol=2e-4)
    # before the re-fit the window showed plain zero-shot: the same formula with α = 0
    assert [labels[i] for i in _softmax(zero).argmax(1)] == [before[item.path] for item in session.items]


def test_set_label_on_several_selected_cards_and_no_corrections_message(qtbot, open_window, make_images):
    window = window_with_images(qtbot, open_window, make_images(4), labels=["cat", "dog"])
    window.refit_action.setEnabled(True)
    window.refit_action.trigger()
    assert window.status_label.text() == "No corrections yet: right-click an image › Set label first."
    view = window.image_view
    view.selectAll()
    menu = _right_click(view, 2)  # on a selected card: it applies to the whole selection
    next(a for a in menu.findChild(QMenu, "setLabelMenu").actions() if a.text() == "dog").trigger()
    menu.close()
    assert sorted(window.corrections.labels.values()) == ["dog"] * 4
