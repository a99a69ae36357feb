"""New labels re-score the stored embeddings (no image is decoded or encoded again), `search --index`
refuses another model, and an address nobody answers on fails in seconds."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from scale_helpers import LABELS, make_folder, run_index, spoil_images, table

from clipdesk.cli import main
from clipdesk.scale import pipeline
from clipdesk.scale import shards as sh

NEW_LABELS = ["circle", "star", "square"]


def rows(folder) -> dict[str, dict]:
    out = {}
    for columns in table(folder).values():
        for i, path in enumerate(columns["path"]):
            out[path] = {key: value[i] for key, value in columns.items()}
    return out


def test_new_labels_rescore_stored_embeddings(demo_engine, tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos", 20)
    first = run_index(demo_engine, [folder], tmp_path / "idx")
    before = rows(tmp_path / "idx")
    calls = []
    encode = demo_engine.encoder.encode_image
    monkeypatch.setattr(demo_engine.encoder, "encode_image", lambda pixels: calls.append(len(pixels)) or encode(pixels))
    assert spoil_images(folder) == 21  # a decode now fails: any image read would become an error row

    again = run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS)
    assert calls == [] and again.written == 0 and again.rescored == len(first.shards)
    assert sorted(again.shards) == sorted(first.shards) and again.failed == 1
    after = rows(tmp_path / "idx")
    good = sorted(p for p, r in after.items() if not r["error"])
    assert len(good) == 20
    stored = np.stack([after[p]["embedding"] for p in good])
    np.testing.assert_array_equal(stored, np.stack([before[p]["embedding"] for p in good]))
    expected = demo_engine.score(stored, demo_engine.label_set(NEW_LABELS, "photo"))
    np.testing.assert_allclose(np.stack([after[p]["scores"] for p in good]), expected.probs, atol=1e-6)
    assert [after[p]["label"] for p in good] == [NEW_LABELS[j] for j in expected.probs.argmax(axis=1)]
    assert sh.read_manifest(tmp_path / "idx")["labels"] == NEW_LABELS

    # The same labels again: nothing to do; other prompts or no labels: re-scored, never encoded.
    same = run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS)
    assert same.skipped == len(first.shards) and same.rescored == same.written == 0
    prompts = run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS, templates="none")
    assert prompts.rescored == len(first.shards)
    plain = run_index(demo_engine, [folder], tmp_path / "idx", labels=None)
    assert plain.rescored == len(first.shards) and "scores" not in next(iter(table(tmp_path / "idx").values()))
    assert calls == [] and plain.failed == 1


def test_index_cli_new_labels_reads_no_image(tmp_path, capsys):
    folder = make_folder(tmp_path / "photos", 12)
    argv = ["index", str(folder), "--out", str(tmp_path / "idx"), "--model", "demo", "--backend", "torch",
            "--device", "cpu", "--shard-size", "4"]
    assert main([*argv, "--labels", ",".join(LABELS)]) == 0
    shards = len(sh.existing_shards(tmp_path / "idx"))
    capsys.readouterr()
    spoil_images(folder)
    assert main([*argv, "--labels", ",".join(NEW_LABELS)]) == 0
    out = capsys.readouterr().out
    assert f"(0 written, {shards} re-scored from their stored embeddings, 0 already there), 13 images, " \
           "1 could not be read." in out
    assert {r["label"] for r in rows(tmp_path / "idx").values() if not r["error"]} <= set(NEW_LABELS)


@pytest.fixture
def demo_index(demo_engine, tmp_path):
    run_index(demo_engine, [make_folder(tmp_path / "photos", 6)], tmp_path / "idx", labels=None)
    return tmp_path / "idx"


@pytest.mark.parametrize("model", [["--model", "ViT-B-32", "--pretrained", "none"], ["--model", "ViT-B-32"],
                                   ["--pretrained", "none", "--model", "clipdesk-demo"]])
def test_search_index_refuses_another_model(demo_index, capsys, model):
    argv = ["search", "--index", str(demo_index), "--query", "a red circle", "--backend", "torch", *model]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"clipdesk: {demo_index} was built with clipdesk-demo (")
    assert err.endswith("leave out --model and --pretrained to search it with its own model.")


@pytest.mark.parametrize("model", [[], ["--model", "demo"], ["--pretrained", "demo"], ["--model", "clipdesk-demo"]])
def test_search_index_accepts_its_own_model(demo_index, capsys, model):
    argv = ["search", "--index", str(demo_index), "--query", "a red circle", "--backend", "torch", *model]
    assert main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", ["index", "classify"])
def test_unreachable_ray_address_fails_fast(tmp_path, capsys, monkeypatch, command):
    folder = make_folder(tmp_path / "photos", 3)
    address = f"127.0.0.1:{free_port()}"
    argv = [command, str(folder), "--labels", "a,b", "--model", "demo", "--backend", "torch", "--ray"]
    argv += ["--out", str(tmp_path / "idx")]
    if command == "classify":  # the address from the environment, as `--ray` with no value reads it
        monkeypatch.setenv("RAY_ADDRESS", address)
    else:
        argv.insert(argv.index("--ray") + 1, address)
    started = time.monotonic()
    assert main(argv) == 1
    assert time.monotonic() - started < 30  # generous: Ray's own retries take minutes
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"clipdesk: Could not join the Ray cluster at {address}: ") and len(err.splitlines()) == 1
    assert not sh.existing_shards(tmp_path / "idx")


def test_reachable_address_passes_the_check():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        pipeline.check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
        pipeline.check_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}")
    pipeline.check_reachable("auto")
    with pytest.raises(pipeline.RayJobError, match="does not answer"):
        pipeline.check_reachable(f"ray://127.0.0.1:{free_port()}")


def test_multi_label_stores_quarters_and_scores_like_core(demo_engine, tmp_path, monkeypatch):
    from pathlib import Path

    from clipdesk.core.jobs import run_job

    folder = make_folder(tmp_path / "photos", 10)
    plain = run_index(demo_engine, [folder], tmp_path / "idx")
    assert not any("quarters" in columns for columns in table(tmp_path / "idx").values())
    multi = run_index(demo_engine, [folder], tmp_path / "idx", multi_label=True)
    assert multi.written == len(plain.shards) and multi.rescored == 0  # the quarters had to be encoded
    stored = rows(tmp_path / "idx")
    good = sorted(p for p, r in stored.items() if not r["error"])
    embedded = run_job(demo_engine.embed_job([Path(p) for p in good]))
    quarters = run_job(demo_engine.quarters_job(embedded.paths, embedded.features))
    assert quarters.shape == (10, 4, embedded.features.shape[1])
    np.testing.assert_allclose(np.stack([stored[p]["quarters"] for p in good]), quarters, atol=1e-5)
    expected = demo_engine.score(embedded.features, demo_engine.label_set(LABELS, "photo"), multi_label=True,
                                 quarters=quarters)
    np.testing.assert_allclose(np.stack([stored[p]["scores"] for p in good]), expected.probs, atol=1e-5)

    # New labels: the stored whole and quarter embeddings are scored again, nothing is encoded.
    calls = []
    encode = demo_engine.encoder.encode_image
    monkeypatch.setattr(demo_engine.encoder, "encode_image", lambda pixels: calls.append(len(pixels)) or encode(pixels))
    spoil_images(folder)
    again = run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS, multi_label=True)
    assert again.rescored == len(plain.shards) and again.written == 0 and calls == []
    fresh = demo_engine.score(embedded.features, demo_engine.label_set(NEW_LABELS, "photo"), multi_label=True,
                              quarters=quarters)
    after = rows(tmp_path / "idx")
    np.testing.assert_allclose(np.stack([after[p]["scores"] for p in good]), fresh.probs, atol=1e-5)
    # A single-label run keeps the quarters for the next multi-label one.
    run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS)
    back = run_index(demo_engine, [folder], tmp_path / "idx", labels=NEW_LABELS, multi_label=True)
    assert back.rescored == len(plain.shards) and calls == []
    np.testing.assert_allclose(np.stack([rows(tmp_path / "idx")[p]["scores"] for p in good]), fresh.probs, atol=1e-6)
