"""File names that are not UTF-8 (Linux bytes, Python's \\udcXX surrogate escapes) in every JSON
clipdesk writes: strict UTF-8 JSON with no lone surrogates, `\\xNN` text to read, and an exact
`path_bytes_b64` to get the file back."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdesk.core.export import export_results, json_safe, path_from_record, path_record

ROOT = Path(__file__).resolve().parents[2]
RAW_NAME = b"caf\xff\xfe.png"  # not UTF-8: os.fsdecode gives "caf\udcff\udcfe.png"


def strict_load(data: bytes):
    """What a strict parser (serde_json, Go, browsers) accepts: UTF-8, no lone surrogates."""
    value = json.loads(data.decode("utf-8"))
    for text in strings(value):
        text.encode("utf-8")  # a lone surrogate (from a \udcXX escape) raises here
    return value


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def recovered(record: dict) -> bytes:
    return base64.b64decode(record["path_bytes_b64"])


@pytest.fixture
def odd_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = Path(os.fsdecode(os.path.join(os.fsencode(folder), RAW_NAME)))
    Image.new("RGB", (16, 16), (230, 20, 20)).save(odd, format="PNG")
    Image.new("RGB", (16, 16), (20, 20, 230)).save(folder / "plain.png")
    (folder / "back\\xff.png").write_bytes((folder / "plain.png").read_bytes())  # a real backslash
    return folder, odd


def test_json_safe_adds_exact_bytes_only_where_needed():
    odd = os.fsdecode(b"/p/" + RAW_NAME)
    rows = json.loads(json.dumps(json_safe([{"path": odd}, {"path": "/p/plain.png"},
                                            {"path": "/p/caf\\xff\\xfe.png"}, {"path": "\ud800"}])))
    assert rows[0]["path"] == "/p/caf\\xff\\xfe.png" == rows[2]["path"]  # readable text alike...
    assert recovered(rows[0]) == b"/p/" + RAW_NAME  # ...the bytes tell them apart
    assert "path_bytes_b64" not in rows[1] and "path_bytes_b64" not in rows[2]
    assert rows[3] == {"path": "\\ud800"}  # no file system gives a lone \ud800: no bytes to keep


def test_path_record_round_trips(tmp_path):
    odd = os.fsdecode(b"/p/" + RAW_NAME)
    assert path_record("/p/plain é.png") == "/p/plain é.png"
    record = json.loads(json.dumps(path_record(odd)))
    assert path_from_record(record) == odd and os.fsencode(path_from_record(record)) == b"/p/" + RAW_NAME
    assert path_from_record("/p/x.png") == "/p/x.png"
    assert path_from_record({"path": "/p/y.png"}) == "/p/y.png"
    assert path_from_record({"path_bytes_b64": "***"}) is None and path_from_record(3) is None


def test_cli_classify_and_search_json(odd_folder):
    folder, odd = odd_folder
    for argv in (["classify", folder, "--labels", "red circle,blue star", "--format", "json"],
                 ["search", folder, "--query", "red circle", "--format", "json"]):
        proc = subprocess.run([sys.executable, "-m", "clipdesk", *map(str, argv), "--model", "demo"],
                              cwd=ROOT, capture_output=True, timeout=240)
        assert proc.returncode == 0, proc.stderr
        rows = strict_load(proc.stdout)
        exact = [row for row in rows if "path_bytes_b64" in row]
        assert len(rows) == 3 and len(exact) == 1, rows
        assert exact[0]["path"] == str(folder) + "/caf\\xff\\xfe.png"
        assert Path(os.fsdecode(recovered(exact[0]))) == odd and odd.is_file()
        assert {row["path"] for row in rows} >= {str(folder / "plain.png"), str(folder / "back\\xff.png")}


def test_exports_and_the_image_list(tmp_path, odd_folder):
    from clipdesk.core.session import Session, load_image_list, save_image_list

    folder, odd = odd_folder
    plain = folder / "plain.png"
    session = Session()
    session.add_paths([odd, plain])
    session.set_labels(["red", "blue"])
    vector = np.ones(4, np.float32) / 2
    session.set_embeddings([(odd, vector, ""), (plain, vector, "")])
    session.set_scores([odd, plain], np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), session.label_names())
    export_results(session, tmp_path / "out.json")
    results = strict_load((tmp_path / "out.json").read_bytes())["results"]
    assert Path(os.fsdecode(recovered(results[0]))) == odd and results[0]["label"] == "red"
    assert "path_bytes_b64" not in results[1]
    export_results(session, tmp_path / "out.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_bytes().decode("utf-8"))))
    assert [row["path"] for row in rows] == [str(folder) + "/caf\\xff\\xfe.png", str(plain)]

    save_image_list(tmp_path / "images.json", [odd, plain])
    strict_load((tmp_path / "images.json").read_bytes())
    assert load_image_list(tmp_path / "images.json") == [odd, plain]


def test_settings_with_a_non_utf8_folder_still_save(tmp_path):
    from clipdesk.core.settings import Settings

    settings = Settings(path=tmp_path / "settings.json")
    settings["last_folder"] = os.fsdecode(b"/photos/" + RAW_NAME)
    settings.save()
    data = strict_load((tmp_path / "settings.json").read_bytes())
    assert data["last_folder"] == "/photos/caf\\xff\\xfe.png"


def test_sort_journal_undoes_non_utf8_names_after_a_restart(odd_folder, tmp_path):
    from clipdesk.core import sorting

    folder, odd = odd_folder
    content = odd.read_bytes()
    plan = sorting.plan_sort([(odd, "red"), (folder / "plain.png", "blue")], tmp_path / "sorted")
    record = sorting.execute(plan, "move")
    assert not record.errors and not odd.exists()
    strict_load(sorting.journal_path().read_bytes())
    reloaded = sorting.load_journal()  # as after a restart: only the file on disk
    assert reloaded.done == record.done and reloaded.digests == record.digests
    restored = sorting.undo()
    assert len(restored) == 2 and odd.read_bytes() == content and (folder / "plain.png").is_file()
