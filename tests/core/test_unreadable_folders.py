"""A folder that cannot be listed (permission denied) is one message, never a silent gap.

The sandbox runs as root, where chmod 000 does not stop a listing, so the denial is simulated
where os.walk meets it: os.scandir raising PermissionError for that one folder."""

from __future__ import annotations

import os

from clipdesk.core.images import find_images


def deny(monkeypatch, locked):
    real = os.scandir

    def scandir(path="."):
        if os.path.abspath(os.fspath(path)) == os.path.abspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_locked_subfolder_is_named_and_the_rest_is_found(tmp_path, make_images, monkeypatch):
    ok = make_images(2, folder=tmp_path / "photos")
    make_images(1, folder=tmp_path / "photos" / "private", first_seed=5)
    deny(monkeypatch, tmp_path / "photos" / "private")
    files, errors = find_images([tmp_path / "photos"])
    assert files == sorted(ok)
    assert list(errors) == [tmp_path / "photos" / "private"]
    assert "permission denied" in errors[tmp_path / "photos" / "private"]
    assert "not added" in errors[tmp_path / "photos" / "private"]


def test_the_cli_names_the_locked_folder_and_classifies_the_rest(tmp_path, make_images, monkeypatch, capsys):
    from clipdesk.cli import main

    make_images(1, folder=tmp_path / "photos" / "locked")
    make_images(1, folder=tmp_path / "photos", first_seed=3)
    deny(monkeypatch, tmp_path / "photos" / "locked")
    assert main(["classify", str(tmp_path / "photos" / "locked"), "--model", "demo", "--labels", "red circle",
                 "--no-cache"]) == 2  # nothing else to do: one usage sentence
    assert "locked: folder could not be read (permission denied)" in capsys.readouterr().err
    assert main(["classify", str(tmp_path / "photos"), "--model", "demo", "--labels", "red circle",
                 "--no-cache"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 2 and "ERROR" in lines[0] and "permission denied" in lines[0]
    assert "img003.png" in lines[1] and "red circle" in lines[1] and "Traceback" not in out.err
