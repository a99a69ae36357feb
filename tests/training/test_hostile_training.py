"""Hostile and careless input to `finetune` / `evaluate`: one sentence and the right exit code,
never a traceback, never a hang, never training on what could not be read, never a lost file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ft_helpers import TINY, make_colour_folder
from PIL import Image

from clipdesk.core.jobs import run_job
from training import cli as training_cli
from training.checkpoint import HEAD_FILE, STATE_DIR, output_dir, save_safetensors_atomic
from training.data import (
    DataError,
    ImageDataset,
    check_dataset,
    load_training_image,
    read_caption_pairs,
    scan_dataset,
    verify_job,
    verify_pairs_job,
)

REPO = Path(__file__).resolve().parents[2]
TWO = {"red": (220, 30, 30), "blue": (30, 40, 220)}


def run_cli(*argv, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m training …` as a user runs it (the test's user folders are inherited)."""
    return subprocess.run([sys.executable, "-m", "training", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def assert_refused(proc: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr
    if code == 2 and "usage:" not in proc.stderr:  # ours: exactly one line, one sentence
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def corrupt_png(path: Path) -> Path:
    """A PNG cut in half: the header reads, the pixels do not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# -- argument validation, as subprocesses -----------------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--seed", "-1"], "--seed"),
    (["--seed", "99999999999"], "--seed"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--epochs", "0"], "--epochs"),
    (["--val-split", "nan"], "--val-split"),
    (["--method", "full", "--batch-size", "1"], "--batch-size must be at least 2"),
    (["--method", "captions", "--batch-size", "1"], "--batch-size must be at least 2"),
    (["--name", "../../escaped"], "plain folder name"),
    (["--name", "/tmp/escaped"], "plain folder name"),
    (["--name", ".."], "plain folder name"),
])
def test_bad_finetune_arguments_are_usage_errors(extra, words, tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    before = snapshot(tmp_path)
    proc = run_cli("finetune", data, "--model", TINY, "--pretrained", "none", "--device", "cpu", *extra, timeout=120)
    assert_refused(proc, 2, words)
    assert snapshot(tmp_path) == before  # nothing written, nothing escaped the models folder
    assert not (tmp_path.parent / "escaped").exists() and not Path("/tmp/escaped").exists()


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    target = tmp_path / "report.txt"
    target.write_bytes(b"precious")
    proc = run_cli("finetune", data, "--out", target, "--model", TINY, "--pretrained", "none")
    assert_refused(proc, 2, "is a file")
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize("method", ["quick", "full", "captions"])
def test_out_at_an_existing_model_never_deletes_it(method, tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights that took a week")
    (model / "metadata.json").write_text('{"architecture": "ViT-B-32"}')
    before = snapshot(model)
    proc = run_cli("finetune", data, "--method", method, "--out", model, "--model", TINY, "--pretrained", "none")
    assert_refused(proc, 2, "--overwrite")
    assert snapshot(model) == before


def test_out_at_a_folder_of_user_files_is_refused_even_with_overwrite(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "thesis.docx").write_bytes(b"years of work")
    (docs / "confusion.png").write_bytes(b"my own picture")
    before = snapshot(docs)
    for extra in ([], ["--overwrite"]):
        proc = run_cli("finetune", data, "--out", docs, "--model", TINY, "--pretrained", "none", *extra)
        assert_refused(proc, 2, str(docs))
    assert snapshot(docs) == before


def test_evaluate_png_into_an_impossible_place_fails_before_evaluating(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    (tmp_path / "afile").write_bytes(b"x")
    for png in (tmp_path / "afile" / "sub" / "c.png", tmp_path):
        proc = run_cli("evaluate", data, "--png", png, "--model", TINY, "--pretrained", "none", "--device", "cpu",
                       timeout=60)
        assert_refused(proc, 2, "--png")
        assert "Accuracy" not in proc.stdout  # refused first, not after the whole evaluation


def test_evaluate_png_into_a_missing_folder_creates_it(tmp_path, capsys):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    png = tmp_path / "new" / "deeper" / "confusion.png"
    code = training_cli.main(["evaluate", str(data), "--png", str(png), "--model", TINY, "--pretrained", "none",
                              "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert png.read_bytes()[:4] == b"\x89PNG"


# -- files that are not what they claim ---------------------------------------------------------------
def test_fifo_and_device_links_in_a_class_never_hang_finetune(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=3, colours=TWO)
    os.mkfifo(data / "red" / "x.png")
    os.symlink("/dev/zero", data / "blue" / "z.png")
    proc = run_cli("finetune", data, "--model", TINY, "--pretrained", "none", "--device", "cpu",
                   "--out", tmp_path / "out", "--epochs", "5", "--format", "json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "x.png" in proc.stderr and "z.png" in proc.stderr and "Traceback" not in proc.stderr


def test_scan_skips_special_files_and_counts_hidden_and_non_images(tmp_path):
    data = make_colour_folder(tmp_path, per_class=2, colours=TWO)
    os.mkfifo(data / "red" / "pipe.jpg")
    os.symlink("/dev/zero", data / "red" / "zero.png")
    os.symlink(data / "nowhere.png", data / "red" / "broken.png")
    (data / "red" / "empty.png").write_bytes(b"")
    for i in range(5):
        (data / "blue" / f"notes{i}.txt").write_text("text")
    (data / "blue" / ".DS_Store").write_bytes(b"x")
    (data / "blue" / ".cache").mkdir()

    summary = scan_dataset(data)

    assert summary.counts == {"blue": 2, "red": 2}
    text = "\n".join(summary.skipped)
    for name in ("pipe.jpg", "zero.png", "broken.png", "empty.png"):
        assert name in text
    assert "5 file(s) that are not images" in text and "2 hidden" in text


def test_a_folder_named_only_underscores_keeps_its_name_and_a_blank_one_is_refused(tmp_path):
    make_colour_folder(tmp_path / "a", per_class=2, colours={"___": (1, 2, 3), "cat": (200, 0, 0)})
    assert scan_dataset(tmp_path / "a").classes == ["___", "cat"]
    make_colour_folder(tmp_path / "b", per_class=2, colours={"   ": (1, 2, 3), "cat": (200, 0, 0)})
    with pytest.raises(DataError, match="blank name"):
        scan_dataset(tmp_path / "b")


# -- data it could not read is never trained on -----------------------------------------------------------
def test_verify_drops_corrupt_images_with_a_note_each(tmp_path):
    data = make_colour_folder(tmp_path, per_class=3, colours=TWO)
    corrupt_png(data / "red" / "broken.png")
    (data / "blue" / "garbage.jpg").write_bytes(b"not a jpeg at all" * 10)

    summary = run_job(verify_job(scan_dataset(data)))

    assert summary.counts == {"blue": 3, "red": 3}
    assert all("broken" not in p.name and "garbage" not in p.name for ps in summary.files.values() for p in ps)
    text = "\n".join(summary.skipped)
    assert "broken.png" in text and "garbage.jpg" in text


@pytest.mark.parametrize("method", ["quick", "full"])
def test_a_class_with_no_readable_image_is_an_error_not_100_percent(method, tmp_path, capsys):
    data = make_colour_folder(tmp_path / "data", per_class=3, colours=TWO)
    for i in range(3):
        corrupt_png(data / "green" / f"g{i}.png")
    out = tmp_path / "out"
    code = training_cli.main(["finetune", str(data), "--method", method, "--model", TINY, "--pretrained", "none",
                              "--device", "cpu", "--out", str(out), "--epochs", "1", "--batch-size", "4"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "green" in err and "could be read" in err and "Traceback" not in err
    assert not (out / "metadata.json").exists()  # nothing saved as if it had learnt


def test_a_file_that_breaks_during_training_stops_the_run_instead_of_a_grey_image(tmp_path):
    path = corrupt_png(tmp_path / "a.png")
    with pytest.raises(DataError, match="a.png"):
        load_training_image(path)
    dataset = ImageDataset([path], [0], transform=lambda image: image)
    with pytest.raises(DataError):
        dataset[0]


def test_caption_pairs_skip_missing_special_and_corrupt_images(tmp_path):
    good = []
    for i in range(3):
        good.append(tmp_path / f"g{i}.png")
        Image.new("RGB", (16, 16), (i * 60, 0, 0)).save(good[-1])
    corrupt_png(tmp_path / "bad.png")
    os.mkfifo(tmp_path / "pipe.png")
    rows = [f"{p.name},caption {i}" for i, p in enumerate(good)]
    rows += ["bad.png,a broken one", "pipe.png,a pipe", "missing.png,not there"]
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("filepath,caption\n" + "\n".join(rows) + "\n")

    notes: list[str] = []
    pairs = read_caption_pairs(csv_file, notes)
    kept = run_job(verify_pairs_job(pairs, notes))

    assert [p for p, _ in kept] == good
    text = "\n".join(notes)
    assert "pipe.png" in text and "missing.png" in text and "bad.png" in text


def test_caption_folder_with_a_fifo_caption_does_not_hang(tmp_path):
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    (tmp_path / "a.txt").write_text("a red thing")
    (tmp_path / "b.txt").write_text("a blue thing")
    os.mkfifo(tmp_path / "c.txt")
    notes: list[str] = []
    pairs = read_caption_pairs(tmp_path, notes)
    assert [p.name for p, _ in pairs] == ["a.png", "b.png"] and "c.txt" in "\n".join(notes)


def test_captions_file_that_is_a_device_is_one_sentence(tmp_path):
    link = tmp_path / "pairs.csv"
    os.symlink("/dev/zero", link)
    with pytest.raises(DataError, match="pairs.csv"):
        read_caption_pairs(link)


# -- the output folder ---------------------------------------------------------------------------------
def test_output_dir_rules(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    assert output_dir(data, "quick", tmp_path / "new", None) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert output_dir(data, "quick", tmp_path / "empty", None) == tmp_path / "empty"
    resumable = tmp_path / "resumable"
    (resumable / STATE_DIR).mkdir(parents=True)
    assert output_dir(data, "full", resumable, None) == resumable  # an interrupted run resumes there
    model = tmp_path / "model"
    model.mkdir()
    (model / HEAD_FILE).write_bytes(b"head")
    with pytest.raises(DataError, match="--overwrite"):
        output_dir(data, "quick", model, None)
    assert output_dir(data, "quick", model, None, overwrite=True) == model
    with pytest.raises(DataError):
        output_dir(data, "quick", None, "a/b")
    named = output_dir(data, "quick", None, "mine")
    named.mkdir(parents=True)
    (named / "user.txt").write_text("x")  # a folder of someone else's: a numbered sibling instead
    assert output_dir(data, "quick", None, "mine") == named.with_name("mine-2")


def test_overwrite_replaces_only_the_model_files(tmp_path, capsys):
    data = make_colour_folder(tmp_path / "data", per_class=3, colours=TWO)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"old full weights")
    (model / "metadata.json").write_text('{"architecture": "clipdesk-tiny"}')
    (model / "README.txt").write_text("notes")
    code = training_cli.main(["finetune", str(data), "--out", str(model), "--overwrite", "--model", TINY,
                              "--pretrained", "none", "--device", "cpu", "--epochs", "5"])
    assert code == 0, capsys.readouterr().err
    assert (model / HEAD_FILE).exists() and '"method": "quick"' in (model / "metadata.json").read_text()
    assert (model / "README.txt").read_text() == "notes"


def test_a_failed_checkpoint_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from training import checkpoint

    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def disk_full(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", disk_full)  # safetensors.numpy's, as imported there
    with pytest.raises(OSError):
        save_safetensors_atomic({"w": np.zeros(3, np.float32)}, target)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_check_dataset_after_verify_counts_only_readable_images(tmp_path):
    data = make_colour_folder(tmp_path, per_class=2, colours=TWO)
    corrupt_png(data / "red" / "zz.png")
    (data / "red" / "red_1.png").write_bytes(b"garbage")  # now one readable red image
    summary = run_job(verify_job(scan_dataset(data)))
    with pytest.raises(DataError, match="at least 2"):
        check_dataset(summary, 2)


def test_out_below_a_file_is_refused_before_any_work(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    (tmp_path / "afile").write_bytes(b"keep")
    proc = run_cli("finetune", data, "--out", tmp_path / "afile" / "model", "--model", TINY, "--pretrained", "none")
    assert_refused(proc, 2, "is a file")
    assert (tmp_path / "afile").read_bytes() == b"keep"


def test_escape_codes_in_file_names_are_printed_escaped(tmp_path, capsys):
    data = make_colour_folder(tmp_path / "data", per_class=3, colours=TWO)
    (data / "red" / "\x1b[2Jevil.txt").write_text("not an image")
    os.mkfifo(data / "blue" / "\x1b]0;title\x07.png")
    code = training_cli.main(["evaluate", str(data), "--model", TINY, "--pretrained", "none", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "\x1b" not in captured.err + captured.out and "\x07" not in captured.err
    assert "\\x1b[2Jevil.txt" in captured.err and "\\x1b]0;title\\x07.png" in captured.err


def test_evaluate_notes_a_class_none_of_whose_images_could_be_read(tmp_path, capsys):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    for i in range(2):
        corrupt_png(data / "green" / f"g{i}.png")
    code = training_cli.main(["evaluate", str(data), "--model", TINY, "--pretrained", "none", "--device", "cpu",
                              "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0 and "class 'green': none of its images could be read" in captured.err
    import json

    assert "green" not in json.loads(captured.out)["per_class"]


def test_non_finite_weights_are_never_saved(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(DataError, match="non-finite"):
        save_safetensors_atomic({"ok": np.zeros(2, np.float32), "w": np.array([1.0, np.nan], np.float32)}, target)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_a_file_breaking_inside_a_loader_worker_is_still_one_sentence(tmp_path):
    from torch.utils.data import DataLoader

    path = corrupt_png(tmp_path / "broke.png")
    dataset = ImageDataset([path], [0], transform=lambda image: image)
    loader = DataLoader(dataset, batch_sampler=[[0]], num_workers=1, collate_fn=lambda items: items)
    with pytest.raises(DataError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert "broke.png" in message and "Traceback" not in message and len(message.splitlines()) == 1


@pytest.mark.parametrize("content", [
    "filepath,caption\na.png,a cat\n".encode("utf-16"),
    b"filepath,caption\na.png,a\x00cat\n",
])
def test_a_captions_file_in_another_encoding_or_with_nul_is_one_sentence(content, tmp_path):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_caption_pairs(csv_file)
    assert "pairs.csv" in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_out_inside_the_training_folder_is_refused(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    before = snapshot(data)
    for out in (data, data / "model", data / "red" / "model"):
        with pytest.raises(DataError):
            output_dir(data, "quick", out, None)
    assert snapshot(data) == before


def test_metadata_with_nan_figures_is_still_valid_json(tmp_path):
    import json

    from training.checkpoint import write_model_folder

    metadata = {"architecture": TINY, "validation": {"accuracy": float("nan"), "per_class": [float("inf"), 0.5],
                                                     "loss": np.float32("nan")}}
    folder = write_model_folder(tmp_path / "m", metadata, head={"w": np.zeros(2, np.float32)})
    text = (folder / "metadata.json").read_text()
    loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in metadata.json"))
    assert loaded["validation"] == {"accuracy": None, "per_class": [None, 0.5], "loss": None}


def test_out_as_a_dangling_link_or_with_a_fake_state_file_is_refused(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(DataError, match="link to nothing"):
        output_dir(data, "quick", tmp_path / "dangling", None)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / STATE_DIR).write_text("not our state")
    (fake / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(DataError, match="--overwrite"):
        output_dir(data, "quick", fake, None)


def test_a_raw_and_jpeg_of_one_shot_count_as_one_training_image(tmp_path):
    data = make_colour_folder(tmp_path, per_class=2, colours=TWO)
    Image.new("RGB", (16, 16), (200, 0, 0)).save(data / "red" / "IMG_1.jpg")
    (data / "red" / "IMG_1.CR2").write_bytes(b"raw bytes of the same shot")
    summary = scan_dataset(data)
    assert summary.counts["red"] == 3 and all(p.suffix != ".CR2" for p in summary.files["red"])
    assert any("RAW" in line for line in summary.skipped)


def test_out_equal_to_the_pretrained_folder_is_refused_even_with_overwrite(tmp_path):
    data = make_colour_folder(tmp_path / "data", per_class=2, colours=TWO)
    model = tmp_path / "model"
    model.mkdir()
    (model / "metadata.json").write_text('{"architecture": "clipdesk-tiny"}')
    (model / HEAD_FILE).write_bytes(b"head")
    before = snapshot(model)
    proc = run_cli("finetune", data, "--pretrained", model, "--out", model, "--overwrite", "--model", TINY)
    assert_refused(proc, 2, "--pretrained model itself")
    assert snapshot(model) == before
