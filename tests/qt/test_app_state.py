"""The pure modules behind the window (no Qt): unsure rule, session, settings, sorting, export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipdesk.core.errors import LabelError
from clipdesk.core.session import UNSURE, Session, decide
from clipdesk.core.settings import Settings, settings_path
from clipdesk.core.sorting import SortError, execute, folder_name, plan_sort, undo


def test_unsure_rule_threshold_margin_and_multi_label():
    names = ["cat", "dog", "car"]
    probs = np.array([0.5, 0.4, 0.1])
    assert decide(probs, names).label == "cat"
    assert decide(probs, names, threshold=0.6).label == UNSURE
    assert decide(probs, names, margin=0.2).label == UNSURE  # 0.5 - 0.4 < 0.2
    sure = decide(probs, names, threshold=0.5, margin=0.05)
    assert sure.label == "cat" and sure.margin == pytest.approx(0.1) and sure.second_label == "dog"
    # Multi-label scores are relative to the best label (core/multilabel.py): present from 0.05.
    multi = decide(np.array([1.0, 0.3, 0.01]), names, multi_label=True)
    assert multi.labels == ["cat", "dog"] and multi.label == "cat, dog" and not multi.unsure
    assert decide(np.array([1.0, 0.3, 0.01]), names, threshold=0.5, multi_label=True).labels == ["cat"]
    assert decide(np.array([0.04, 0.03, 0.01]), names, multi_label=True).unsure


def test_session_labels_validate_and_dedupe():
    session = Session()
    events = []
    session.on("labels", lambda: events.append("labels"))
    session.add_label("car | automobile")
    with pytest.raises(LabelError):
        session.add_label("Car")  # same name, any case
    with pytest.raises(LabelError):
        session.add_label("  |  ")
    assert session.add_labels(["dog", "unsure", "cat"]) and session.label_names() == ["car", "dog", "cat"]
    session.move_label(2, 0)
    session.edit_label(1, "auto | car")
    assert session.labels == ["cat", "auto | car", "dog"] and events


def test_session_images_no_duplicates_and_scores(tmp_path):
    session = Session()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert session.add_paths([a, b, a]) == [a, b]
    assert session.add_paths([b]) == []
    session.set_embeddings([(a, np.ones(4, np.float32), ""), (b, None, "b: broken")])
    assert session.items[1].status == "error" and session.items[1].error == "b: broken"
    paths, features = session.features()
    assert paths == [a] and features.shape == (1, 4)
    session.set_scores([a], np.array([[0.2, 0.8]]), ["x", "y"])
    assert session.decision(0).label == "y" and session.ranked_scores(0)[0] == ("y", pytest.approx(0.8))
    session.replace_paths([(a, tmp_path / "moved.png")])
    assert session.row_of(tmp_path / "moved.png") == 0 and session.row_of(a) is None


def test_settings_round_trip_and_bad_file():
    settings = Settings.load()
    settings["labels"] = ["x"]
    settings.remember_label_set(["a", "b"])
    settings.remember_label_set(["c"])
    settings.remember_label_set(["a", "b"])
    settings.save()
    again = Settings.load()
    assert again["labels"] == ["a", "b"]
    assert again["recent_label_sets"] == [["a", "b"], ["c"]]
    assert not list(settings_path().parent.glob(".*.tmp"))  # atomic: no temp file left
    settings_path().write_text("{ not json")
    assert Settings.load()["labels"] == []
    settings_path().write_text(json.dumps({"threshold": "high", "future_key": 1}))
    loaded = Settings.load()
    assert loaded["threshold"] == 0.0 and loaded.get("future_key") == 1


def test_plan_never_overwrites_and_undo_moves_back(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (src / name).write_bytes(name.encode())
        files.append(src / name)
    (src / "sub").mkdir()
    (src / "sub" / "a.jpg").write_bytes(b"other a")
    files.append(src / "sub" / "a.jpg")
    dest = tmp_path / "out"
    (dest / "cat").mkdir(parents=True)
    (dest / "cat" / "a.jpg").write_bytes(b"keep me")
    plan = plan_sort([(files[0], "cat"), (files[1], "dog/wolf?"), (files[2], UNSURE), (files[3], "cat")], dest)
    assert plan.counts() == {"cat": 2, "dog_wolf_": 1, UNSURE: 1}
    targets = [t.relative_to(dest).as_posix() for _, t in plan.moves]
    assert targets == ["cat/a (1).jpg", "dog_wolf_/b.jpg", "unsure/c.jpg", "cat/a (2).jpg"]
    (dest / "cat" / "a (1).jpg").write_bytes(b"appeared after planning")
    record = execute(plan, "move")
    assert (dest / "cat" / "a.jpg").read_bytes() == b"keep me"
    assert (dest / "cat" / "a (1).jpg").read_bytes() == b"appeared after planning"
    assert sorted(p.name for p in (dest / "cat").iterdir()) == ["a (1).jpg", "a (2).jpg", "a (3).jpg", "a.jpg"]
    assert not any(f.exists() for f in files)
    restored = undo()  # from the journal, as after a restart
    assert len(restored) == 4 and all(f.exists() for f in files)
    assert (src / "sub" / "a.jpg").read_bytes() == b"other a"
    assert not (dest / UNSURE).exists() and (dest / "cat" / "a.jpg").exists()
    assert record.mode == "move"
    with pytest.raises(SortError):
        undo()


def test_copy_then_undo_deletes_copies_only(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    plan = plan_sort([(tmp_path / "x.png", "a")], tmp_path / "out")
    execute(plan, "copy")
    assert (tmp_path / "out" / "a" / "x.png").read_bytes() == b"x"
    undo()
    assert (tmp_path / "x.png").exists() and not (tmp_path / "out" / "a").exists()
    assert folder_name("..") == "unnamed" and folder_name("a:b") == "a_b"
    with pytest.raises(SortError):
        plan_sort([], tmp_path / "x.png")


def test_gui_start_up_does_not_import_torch():
    """The window must appear before torch loads: only the worker imports it."""
    import subprocess
    import sys

    code = ("import sys, clipdesk.qt.app, clipdesk.qt.main_window; "
            "print(any(m.split('.')[0] in ('torch', 'open_clip') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_demo_start_brings_samples_and_their_labels():
    """`main.py --demo`: the shipped sample pictures and a label for each are there at once."""
    from clipdesk.core.demo import SAMPLE_SCENES
    from clipdesk.qt.app import _start_content, build_parser

    labels, paths = _start_content(build_parser().parse_args(["--demo"]))
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        f"{i + 1:02d}-{c}-{s}.png" for i, (c, s) in enumerate(SAMPLE_SCENES)]
    assert set(labels) == {f"{c} {s}" for c, s in SAMPLE_SCENES}


def test_window_does_not_import_torch_for_the_model_menu():
    """The model list (open_clip's catalog imports torch) is read when the menu opens, not at start:
    on the ONNX path torch is never imported."""
    import subprocess
    import sys

    code = ("import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from clipdesk.qt.main_window import MainWindow, ModelChoice\n"
            "from clipdesk.qt.worker import pool\n"
            "window = MainWindow(ModelChoice('demo', 'demo', 'cpu', 'onnx'))\n"
            "pool().waitForDone(20000)\n"
            "print(any(m.split('.')[0] in ('torch', 'open_clip') for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
