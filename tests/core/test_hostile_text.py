"""Hostile text: labels files in odd encodings, control characters, terminal escapes in file
names, spreadsheet formulas in exports, and a hand-mangled settings.json."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from clipdesk.console import safe_text
from clipdesk.core.errors import LabelError
from clipdesk.core.export import atomic_write_text, csv_cell, json_safe
from clipdesk.core.prompts import clean_labels, read_labels_file
from clipdesk.core.settings import DEFAULTS, Settings

LABELS = ["café", "crème brûlée", "naïve"]


@pytest.mark.parametrize("encoding, bom", [
    ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-16-be", b""),
    ("utf-8", b"\xef\xbb\xbf"), ("utf-8", b""), ("utf-32-le", b"\xff\xfe\x00\x00"),
])
def test_labels_file_in_unicode_encodings(tmp_path, encoding, bom):
    path = tmp_path / "labels.txt"
    path.write_bytes(bom + "\r\n".join(["# comment", *LABELS]).encode(encoding))
    assert read_labels_file(path) == LABELS


def test_latin1_labels_file_is_read_with_a_note(tmp_path, caplog):
    path = tmp_path / "labels.txt"
    path.write_bytes("\n".join(LABELS).encode("latin-1"))
    assert read_labels_file(path) == LABELS
    assert any("not UTF-8" in r.getMessage() for r in caplog.records)


def test_binary_and_special_labels_files_are_one_sentence(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"cat\x00\x00\x01dog\x00" + bytes(range(256)))
    with pytest.raises(LabelError, match="NUL bytes"):
        read_labels_file(binary)
    os.mkfifo(tmp_path / "fifo.txt")
    for special in (tmp_path / "fifo.txt", "/dev/zero", tmp_path):
        with pytest.raises(LabelError, match="not a regular file"):
            read_labels_file(special)


def test_control_characters_never_reach_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"ca\x07t\ndog\x1b[31m\n\x0b\n")
    assert read_labels_file(path) == ["ca t", "dog [31m"]
    labels, _ = clean_labels(["ca\x07t", "dog\x1b[31m", "\x00\x01", "bird\tsong"])
    assert [label.name for label in labels] == ["ca t", "dog [31m", "bird song"]
    assert all(ch.isprintable() for label in labels for ch in label.name)


def test_terminal_escapes_in_names_are_shown_escaped():
    shown = safe_text("photo\x1b]0;pwned\x07\x1b[2J\n.jpg")
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert shown == "photo\\x1b]0;pwned\\x07\\x1b[2J\\n.jpg"
    assert safe_text("evil\u202egpj.exe") == "evil\\u202egpj.exe"  # right-to-left override
    assert safe_text(os.fsdecode(b"bad\xffname.png")) == "bad\\xffname.png"  # not UTF-8
    assert safe_text("Café 猫.png") == "Café 猫.png"  # ordinary text untouched


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell):
    assert csv_cell(cell) == "'" + cell
    assert csv_cell("cat") == "cat" and csv_cell(-0.5) == -0.5  # numbers stay numbers


def test_json_safe_never_emits_nan_or_invalid_text():
    data = {"score": float("nan"), "x": [np.float32(np.inf), np.int64(3)], "path": os.fsdecode(b"a\xff")}
    text = json.dumps(json_safe(data), allow_nan=False, ensure_ascii=False)
    assert json.loads(text) == {"score": None, "x": [None, 3], "path": "a\\xff", "path_bytes_b64": "Yf8="}
    text.encode("utf-8")  # printable to any UTF-8 stream


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_exports_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "results.csv", "path,label\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == mode


def test_overwriting_keeps_the_files_mode(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{}")
    path.chmod(0o640)
    atomic_write_text(path, "[]")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "[]"


def write_settings(tmp_path, values) -> Settings:
    path = tmp_path / "settings.json"
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    return Settings.load(path)


def test_bad_settings_fall_back_per_field(tmp_path):
    settings = write_settings(tmp_path, {
        "labels": ["cat", None, 3, {"x": 1}, "dog\x1b"], "threshold": 7.5, "margin": float("nan"),
        "geometry": "%%% not base64", "window_state": None, "splitters": {"left": 12, "main": "QUJD"},
        "device": "quantum", "backend": ["torch"], "templates": None, "multi_label": "yes",
        "recent_label_sets": [None, ["a", None], "b"], "arch": 5, "last_folder": "/ok",
        "sort_destination": None, "a_future_setting": {"kept": True},
    })
    values = settings.values
    assert values["labels"] == ["cat", "dog"]
    assert values["recent_label_sets"] == [["a"]]
    assert values["splitters"] == {"main": "QUJD"}
    assert values["last_folder"] == "/ok" and values["a_future_setting"] == {"kept": True}
    for key in ("threshold", "margin", "geometry", "window_state", "device", "backend", "templates",
                "multi_label", "arch", "sort_destination"):
        assert values[key] == DEFAULTS[key], key
    # what the window does with them at start-up must not raise
    float(settings["threshold"]), float(settings["margin"]), bool(settings["multi_label"])


@pytest.mark.parametrize("content", ["null", "[1, 2]", "\"text\"", "{", "", "\x00\xff", "1e999",
                                     json.dumps({"threshold": True, "margin": -0.1})])
def test_unusable_settings_files_give_defaults(tmp_path, content):
    settings = write_settings(tmp_path, content)
    for key in ("labels", "threshold", "margin", "geometry", "device"):
        assert settings[key] == DEFAULTS[key]


def test_special_settings_file_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "settings.json")
    assert Settings.load(tmp_path / "settings.json").values["labels"] == []
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    assert Settings.load(tmp_path / "zero.json").values["threshold"] == 0.0


def test_config_folder_that_is_a_file_still_loads(tmp_path, monkeypatch):
    (tmp_path / "config").write_text("a file")
    monkeypatch.setenv("CLIPDESK_CONFIG_DIR", str(tmp_path / "config"))
    settings = Settings.load()
    assert settings["labels"] == []
    with pytest.raises(OSError):  # the window catches OSError on save and shows one line
        settings.save()


def test_exported_csv_and_json_from_a_session(tmp_path):
    import csv
    import io

    from clipdesk.core.export import export_results
    from clipdesk.core.session import Session

    session = Session()
    a, b = tmp_path / "=cmd.png", tmp_path / "b.png"
    session.add_paths([a, b])
    session.set_labels(["=HYPERLINK(\"x\")", "@cat"])
    vector = np.ones(4, np.float32) / 2
    session.set_embeddings([(a, vector, ""), (b, vector, "")])
    session.set_scores([a, b], np.array([[0.9, 0.1], [np.nan, np.nan]], np.float32), session.label_names())
    export_results(session, tmp_path / "out.csv")
    rows = list(csv.reader(io.StringIO((tmp_path / "out.csv").read_text())))
    label_column = rows[0].index("label")
    assert rows[1][label_column] == "'=HYPERLINK(\"x\")"
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    export_results(session, tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text(),
                      parse_constant=lambda token: pytest.fail(f"{token} in the JSON"))
    assert data["labels"][0] == "=HYPERLINK(\"x\")"  # JSON keeps the text as it is
