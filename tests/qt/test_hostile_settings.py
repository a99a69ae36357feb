"""A hand-mangled settings.json never stops the window from opening: each bad field falls back."""

from __future__ import annotations

import base64
import json

from clipdesk.core.settings import DEFAULTS, Settings, settings_path


def test_window_opens_with_a_hostile_settings_file(open_window):
    settings_path().write_text(json.dumps({
        "labels": ["cat", None, 7, "dog"], "recent_label_sets": [None, [None, "x"]],
        "threshold": 12, "margin": -1, "multi_label": "no", "templates": ["photo"],
        "geometry": base64.b64encode(b"\x01\x02 not a Qt geometry").decode(),  # valid base64, junk
        "window_state": "@@@", "splitters": {"left": None, "main": 3}, "device": None,
        "last_folder": {"a": 1}, "sort_destination": 0,
    }))
    window = open_window(Settings.load())
    assert window.isVisible()
    assert list(window.session.labels)[:2] == ["cat", "dog"]
    assert window.session.threshold == DEFAULTS["threshold"] and window.session.margin == DEFAULTS["margin"]
    assert window.session.multi_label is False and window.session.templates == "photo"
