"""The one atomic writer (clipdesk/core/atomic.py): a failure leaves the old file and no temporary
file, a new file gets the umask's mode, an existing file keeps its own, and every caller uses it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from clipdesk.core import atomic
from clipdesk.core.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    write_json_atomic,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


@pytest.fixture
def umask():
    """Set a umask for one test and always restore the process's own."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_text(tmp_path / "new.txt", "hello")
    assert mode(tmp_path / "new.txt") == expected == 0o666 & ~mask
    assert atomic.current_umask() == mask


@pytest.mark.parametrize("existing", [0o600, 0o640, 0o664])
def test_an_existing_file_keeps_its_mode(tmp_path, umask, existing):
    umask(0o022)
    path = tmp_path / "kept.json"
    path.write_text("{}")
    os.chmod(path, existing)
    write_json_atomic(path, {"a": 1})
    assert mode(path) == existing
    assert json.loads(path.read_text()) == {"a": 1}


def test_content_and_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(path, b"\x00\xff" * 1000)
    assert path.read_bytes() == b"\x00\xff" * 1000
    atomic_write_text(path, "line\r\nline\n")  # no newline translation
    assert path.read_bytes() == b"line\r\nline\n"
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_the_old_file_and_no_temp(tmp_path, failure):
    path = tmp_path / "results.csv"
    path.write_text("old content")
    with pytest.raises(type(failure)), atomic_path(path) as temp:
        assert temp.parent == path.parent and temp.name.startswith(".results.csv.")
        temp.write_text("half of the new")
        raise failure
    assert path.read_text() == "old content"
    assert leftovers(tmp_path) == []


def test_a_failing_rename_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    path.write_text('{"old": true}')

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(path, {"new": True})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"old": True}
    assert leftovers(tmp_path) == []


def test_unserialisable_text_fails_before_touching_anything(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "bad \ud800 surrogate")
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_temp_names_are_what_training_recognises_as_leftovers(tmp_path):
    from training.checkpoint import _TEMP

    with atomic_path(tmp_path / "metadata.json") as temp:
        assert _TEMP.match(temp.name), temp.name
        assert mode(temp) == 0o600  # private until it is complete
        temp.write_text("{}")


def test_strict_json_nan_and_non_utf8_names(tmp_path):
    name = os.fsdecode(b"/photos/caf\xff.png")
    write_json_atomic(tmp_path / "x.json", {"score": float("nan"), "path": name})
    data = json.loads((tmp_path / "x.json").read_bytes().decode("utf-8"))
    assert data["score"] is None and data["path"] == "/photos/caf\\xff.png"


def test_every_former_copy_is_now_the_one_writer():
    from clipdesk.core import export, settings
    from training import loop

    assert export.atomic_write_text is atomic.atomic_write_text
    assert settings.write_json_atomic is atomic.write_json_atomic
    for module in (export, settings, loop):
        assert "mkstemp" not in Path(module.__file__).read_text()


def test_training_writers_honour_the_umask(tmp_path, umask):
    from PIL import Image

    from training.loop import write_json_atomic as training_json
    from training.report import write_confusion_png

    umask(0o027)
    picture = write_confusion_png(tmp_path / "confusion.png", ["cat", "dog"], [[3, 1], [0, 4]])
    assert mode(picture) == 0o640
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width > 0
    training_json(tmp_path / "state.json", {"step": 3}, fsync_files=[picture])
    assert json.loads((tmp_path / "state.json").read_text()) == {"step": 3}
    assert mode(tmp_path / "state.json") == 0o640
    assert leftovers(tmp_path) == []
