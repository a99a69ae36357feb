"""Ranked-view state (search, Find similar) and a failed model switch, under real Qt events."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from qt_helpers import TINY, wait_idle, window_with_images

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.models import load_model


def test_ranked_state_shows_and_esc_or_chip_clears_it(qtbot, open_window, make_images):
    window = open_window()
    images = make_images(6)
    window.add_paths(images)
    wait_idle(qtbot, window, 6)
    assert not window.similar_action.isEnabled()  # nothing selected
    window.image_view.setCurrentIndex(window.grid_proxy.index(2, 0))
    assert window.similar_action.isEnabled()
    selected = window.details.path
    window.similar_action.trigger()
    qtbot.waitUntil(lambda: bool(window.session.search_query), timeout=20000)
    assert window.ranked_chip.isVisible()
    assert window.ranked_chip.text() == f"Similar to {selected.name}  ✕"
    top = window.grid_proxy.index(0, 0).data()
    assert top == selected.name
    qtbot.keyClick(window.image_view, Qt.Key.Key_Escape)
    assert not window.ranked_chip.isVisible()
    assert all(item.similarity is None for item in window.session.items)
    assert window.grid_proxy.index(0, 0).data() == images[0].name  # the added order again

    window.activateWindow()
    qtbot.keyClick(window.image_view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.search_box
    qtbot.keyClicks(window.search_box, "red car")
    qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(window.session.search_query), timeout=20000)
    assert window.ranked_chip.text() == "Search: red car  ✕"
    qtbot.mouseClick(window.ranked_chip, Qt.MouseButton.LeftButton)
    assert not window.ranked_chip.isVisible() and window.search_box.text() == ""
    assert all(item.similarity is None for item in window.session.items)


def test_failed_model_switch_keeps_the_working_model(qtbot, open_window, make_images, tmp_path):
    window = open_window()
    images = make_images(3)
    window.session.set_labels(["cat", "dog"])
    window.add_paths(images)
    wait_idle(qtbot, window, 3)
    before = [item.probs.copy() for item in window.session.items]
    name = window.model_info["name"]
    with qtbot.waitSignal(window.model_failed, timeout=30000) as failed:
        window.load_model("clipdesk-tiny", str(tmp_path / "missing.safetensors"))
    message = failed.args[0]
    assert "missing.safetensors" in message and "Model › Load checkpoint…" in message
    assert "--pretrained" not in message
    assert window.model_error_box.text() == message  # in full, in the dialog
    status = window.status_label.text()
    assert "missing.safetensors" not in status and len(status) < 100  # never the long reason
    assert window.model_ready and name in window.model_label.text()
    for item, probs in zip(window.session.items, before):
        assert (item.probs == probs).all()  # results kept
    window.model_error_box.reject()
    window.session.add_label("car")  # and the kept model still works
    wait_idle(qtbot, window)
    assert window.session.score_labels == ["cat", "dog", "car"]
    assert all(item.probs is not None and len(item.probs) == 3 for item in window.session.items)


def test_side_panel_follows_the_selection_across_a_model_switch(qtbot, open_window, make_images):
    images = make_images(3)
    window = window_with_images(qtbot, open_window, images, ["cat", "dog"])
    window.image_view.setCurrentIndex(window.grid_proxy.index(1, 0))
    with qtbot.waitSignal(window.model_loaded, timeout=30000):
        window.reload_model()
    wait_idle(qtbot, window, 3)
    assert window.details.path == images[1]
    expected = independent_probs(images[1], ["cat", "dog"], window.session.templates)
    ranked = window.session.ranked_scores(1)
    order = np.argsort(-expected, kind="stable")
    assert [label for label, _ in ranked] == [["cat", "dog"][j] for j in order]
    np.testing.assert_allclose([score for _, score in ranked], expected[order], rtol=1e-4)
    top = ranked[0][0]
    assert window.details.title.text() == f"<b>{images[1].name}</b><br><b>{top}</b> · {expected[order[0]]:.1%}"


def independent_probs(path, labels, templates) -> np.ndarray:
    """The tiny model's softmax over `labels` for one image, from the image put through the model
    by hand (seeded weights: the same as the window's); only the label vectors are the engine's."""
    loaded = load_model(*TINY, "cpu")
    weights = Engine(TorchEncoder(loaded), NullCache()).label_set(labels, templates).weights
    with torch.no_grad():
        vector = loaded.model.encode_image(loaded.preprocess(Image.open(path).convert("RGB"))[None])[0]
        scale = float(loaded.model.logit_scale.exp())
    vector = (vector / vector.norm()).double().numpy()
    logits = scale * (weights.astype(np.float64) @ vector)
    return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
