"""Atomic writes: the details mutation testing (docs/mutation.md) found unguarded — the umask
fallback where /proc is missing, a temporary name already taken, and the exact JSON layout
(UTF-8, two-space indent) every settings and journal file is written in.

Oracles: the umask the test itself sets, files the test places in the way, and the JSON text
written out by hand.
"""

from __future__ import annotations

import builtins
import os
import secrets

import pytest

from clipdesk.core import atomic


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def without_proc(monkeypatch):
    """The module's own open() behaves as on a system without /proc (macOS, some sandboxes)."""
    def open_without_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise FileNotFoundError(file)
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", open_without_proc, raising=False)


def test_the_umask_is_read_from_proc_and_without_proc_by_set_and_restore(umask_027, monkeypatch):
    assert atomic.current_umask() == umask_027
    without_proc(monkeypatch)
    assert atomic.current_umask() == umask_027
    assert os.umask(umask_027) == umask_027  # the fallback put the umask back as it was


def test_a_new_file_gets_the_umask_mode_even_without_proc(umask_027, tmp_path, monkeypatch):
    without_proc(monkeypatch)
    target = tmp_path / "new.txt"
    atomic.atomic_write_bytes(target, b"x")
    assert target.read_bytes() == b"x"
    assert os.stat(target).st_mode & 0o777 == 0o640


def test_a_temporary_name_already_taken_is_skipped(tmp_path, monkeypatch):
    target = tmp_path / "settings.json"
    squatter = tmp_path / ".settings.json.aaaaaa.tmp"
    squatter.write_text("someone else's")
    names = iter(["aaaaaa", "bbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    atomic.atomic_write_text(target, "mine")
    assert target.read_text() == "mine"
    assert squatter.read_text() == "someone else's"  # never opened, never removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [".settings.json.aaaaaa.tmp", "settings.json"]


def test_when_no_temporary_name_is_free_the_error_says_so(tmp_path, monkeypatch):
    target = tmp_path / "settings.json"
    (tmp_path / ".settings.json.aaaaaa.tmp").write_text("taken")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "aaaaaa")
    with pytest.raises(FileExistsError) as caught:
        atomic.atomic_write_text(target, "mine")
    assert str(caught.value) == f"{tmp_path}: no free temporary file name for settings.json."
    assert not target.exists()


def test_json_is_utf8_with_a_two_space_indent_and_a_final_newline(tmp_path):
    target = tmp_path / "record.json"
    atomic.write_json_atomic(target, {"name": "café", "n": [1]})
    assert target.read_bytes() == '{\n  "name": "café",\n  "n": [\n    1\n  ]\n}\n'.encode()
    atomic.write_json_atomic(target, {"name": "café"}, indent=None, ensure_ascii=True)
    assert target.read_bytes() == b'{"name": "caf\\u00e9"}\n'
