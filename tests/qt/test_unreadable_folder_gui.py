"""A subfolder the user may not list shows up as one problem in the window, never a silent gap
(simulated: the sandbox runs as root, so os.scandir is made to refuse that one folder)."""

from __future__ import annotations

import os

from qt_helpers import wait_idle


def test_a_locked_subfolder_is_a_problem_and_the_rest_is_classified(qtbot, open_window, make_images,
                                                                   tmp_path, monkeypatch):
    ok = make_images(2, folder=tmp_path / "photos")
    make_images(1, folder=tmp_path / "photos" / "locked", first_seed=5)
    locked = tmp_path / "photos" / "locked"
    real = os.scandir

    def scandir(path="."):
        if os.path.abspath(os.fspath(path)) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    window = open_window()
    window.session.set_labels(["cat", "dog"])
    window.add_paths([tmp_path / "photos"])
    wait_idle(qtbot, window, 3)
    by_path = {item.path: item for item in window.session.items}
    assert all(by_path[path].status == "done" for path in ok)
    assert by_path[locked].status == "error" and "permission denied" in by_path[locked].error
    assert window.badge.text() == "⚠ 1 problem"
