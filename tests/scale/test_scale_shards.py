"""Shards without Ray: planning, atomic writes, resume after a stop or a kill, bad files as rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scale_helpers import LABELS, _assert_same, make_folder, run_index, table

from clipdesk.core.jobs import run_job
from clipdesk.scale import shards as sh


def test_plan_is_content_defined():
    entries = [sh.Entry(f"/p/{i:04d}.png", "1:1") for i in range(400)]
    plans = sh.plan_shards(entries, "cfg", 20)
    assert [e for p in plans for e in p.entries] == entries
    assert all(len(p.entries) <= 80 for p in plans) and 8 < len(plans) < 50
    # One new file changes one shard's name; every other shard is found again.
    grown = sh.plan_shards(sorted([*entries, sh.Entry("/p/0200a.png", "1:1")], key=lambda e: e.path), "cfg", 20)
    assert len({p.name for p in grown} - {p.name for p in plans}) == 1
    # An edited file (new stamp) or other options give other names.
    edited = [sh.Entry(e.path, "2:2") if i == 3 else e for i, e in enumerate(entries)]
    assert sh.plan_shards(edited, "cfg", 20)[0].name != plans[0].name
    assert sh.plan_shards(entries, "other", 20)[0].name != plans[0].name


def test_index_rows_match_core_and_bad_file_is_a_row(demo_engine, small_folder, tmp_path):
    result = run_index(demo_engine, [small_folder], tmp_path / "idx")
    assert result.complete and result.images == 41 and result.failed == 1
    rows = {}
    for columns in table(tmp_path / "idx").values():
        for i, path in enumerate(columns["path"]):
            rows[path] = (columns["error"][i], columns["embedding"][i], columns["label"][i], columns["scores"][i])
    assert "not" in rows[str(small_folder / "broken.png")][0] or rows[str(small_folder / "broken.png")][0]
    good = sorted(p for p, r in rows.items() if not r[0])
    embedded = run_job(demo_engine.embed_job([Path(p) for p in good], batch_size=7))
    ours = np.stack([rows[p][1] for p in good])
    np.testing.assert_allclose(ours, embedded.features, atol=1e-5)
    scores = demo_engine.score(embedded.features, demo_engine.label_set(LABELS, "photo"))
    np.testing.assert_allclose(np.stack([rows[p][3] for p in good]), scores.probs, atol=1e-5)
    assert [rows[p][2] for p in good] == [scores.top(i, 1)[0][0] for i in range(len(good))]
    manifest = sh.read_manifest(tmp_path / "idx")
    assert manifest["images"] == 41 and set(manifest["shards"]) == set(table(tmp_path / "idx"))


def test_stopped_run_resumes_to_the_same_shards(demo_engine, small_folder, tmp_path):
    reference = run_index(demo_engine, [small_folder], tmp_path / "full")
    stopped = run_index(demo_engine, [small_folder], tmp_path / "idx", stop_after=2)
    assert not stopped.complete and len(sh.existing_shards(tmp_path / "idx")) == 2
    assert not (tmp_path / "idx" / sh.MANIFEST).exists()
    resumed = run_index(demo_engine, [small_folder], tmp_path / "idx")
    assert resumed.skipped == 2 and resumed.written == len(reference.shards) - 2
    _assert_same(table(tmp_path / "full"), table(tmp_path / "idx"))
    # A deleted shard is the only one written again; a new file re-plans one shard.
    (tmp_path / "idx" / reference.shards[1]).unlink()
    again = run_index(demo_engine, [small_folder], tmp_path / "idx")
    assert again.written == 1
    _assert_same(table(tmp_path / "full"), table(tmp_path / "idx"))


def test_text_file_of_paths_and_file_urls(demo_engine, small_folder, tmp_path):
    files = sorted(p for p in small_folder.rglob("*.png") if p.name != "broken.png")[:5]
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join([str(files[0]), os.path.relpath(files[1], tmp_path), "# comment", ""]))
    entries, errors = sh.list_inputs([listing, f"file://{files[2]}", str(files[0])])
    assert [e.path for e in entries] == sorted([str(files[0]), str(files[1]), f"file://{files[2]}"])
    result = run_index(demo_engine, [listing, f"file://{files[2]}"], tmp_path / "idx", labels=None)
    errors = [e for c in table(tmp_path / "idx").values() for e in c["error"] if e]
    assert result.images == 3 and not errors


def test_nothing_to_index_is_one_sentence(demo_engine, tmp_path):
    with pytest.raises(sh.IndexFolderError, match="Nothing to do"):
        run_index(demo_engine, [tmp_path / "nowhere"], tmp_path / "idx")


def test_killed_process_resumes(demo_engine, tmp_path):
    """A real SIGKILL while shards are being written; the re-run completes the same shards."""
    folder = make_folder(tmp_path / "photos", 24)
    argv = [sys.executable, "-m", "clipdesk", "index", str(folder), "--model", "demo", "--backend", "torch",
            "--device", "cpu", "--shard-size", "3", "--batch-size", "4", "--out", str(tmp_path / "idx")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(sh.existing_shards(tmp_path / "idx")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "idx" / sh.MANIFEST).exists(), "the run finished before it could be killed"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already there" in done.stdout and not done.stdout.startswith(f"{tmp_path / 'idx'}: 0 ")
    reference = run_index(demo_engine, [folder], tmp_path / "full", labels=None, shard_size=3)
    assert sorted(reference.shards) == sorted(sh.existing_shards(tmp_path / "idx"))
    _assert_same(table(tmp_path / "full"), table(tmp_path / "idx"))
    assert not list((tmp_path / "idx").glob(".*.tmp"))
