"""Labelled folders and captioned pairs: what counts, what is skipped, and the clear errors."""

from __future__ import annotations

import pytest
from ft_helpers import make_colour_folder
from PIL import Image

from training.api import DataError, FinetuneConfig, finetune_job, scan_dataset
from training.data import check_dataset, read_caption_pairs, split_dataset


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


def test_scan_reports_classes_counts_and_skips(tmp_path):
    _image(tmp_path / "golden_retriever" / "a.jpg")
    _image(tmp_path / "golden_retriever" / "nested" / "b.png")
    _image(tmp_path / "cat" / "c.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    _image(tmp_path / ".thumbnails" / "x.png")  # hidden: never a class
    (tmp_path / "empty").mkdir()
    (tmp_path / "readme.md").write_text("hi")

    summary = scan_dataset(tmp_path)

    assert summary.classes == ["cat", "golden retriever"]  # underscores become spaces
    assert summary.counts == {"cat": 1, "golden retriever": 2}
    text = "\n".join(summary.skipped)
    assert "notes.txt" in text and "empty/" in text and "readme.md" in text
    assert ".thumbnails" not in text


def test_stratified_split_is_seeded_and_keeps_every_class_on_both_sides(tmp_path):
    summary = scan_dataset(make_colour_folder(tmp_path, per_class=5))
    first = split_dataset(summary, 0.2, seed=3)
    again = split_dataset(summary, 0.2, seed=3)
    other = split_dataset(summary, 0.2, seed=4)

    assert first.val_paths == again.val_paths and first.train_paths == again.train_paths
    assert first.val_paths != other.val_paths
    assert sorted(first.val_labels) == [0, 1, 2, 3]  # one of five per class
    assert set(first.train_paths).isdisjoint(first.val_paths)
    assert len(first.train_paths) + len(first.val_paths) == summary.total


def test_validation_folder_with_unknown_class_is_refused(tmp_path):
    train = scan_dataset(make_colour_folder(tmp_path / "train", per_class=2))
    _image(tmp_path / "val" / "purple" / "p.png")
    with pytest.raises(DataError, match="purple"):
        split_dataset(train, val_summary=scan_dataset(tmp_path / "val"))


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "no class sub-folders with images"),
    ("one_class", "only one class"),
    ("non_images", "no class sub-folders with images"),
    ("too_few", "at least 2 images"),
])
def test_bad_folders_give_one_clear_sentence(tmp_path, case, message):
    folder = tmp_path / "data"
    if case != "missing":
        folder.mkdir()
    if case == "one_class":
        _image(folder / "cat" / "a.png")
        _image(folder / "cat" / "b.png")
    if case == "non_images":
        (folder / "cat").mkdir()
        (folder / "cat" / "a.txt").write_text("x")
        (folder / "dog").mkdir()
        (folder / "dog" / "b.csv").write_text("y")
    if case == "too_few":
        _image(folder / "cat" / "a.png")
        _image(folder / "cat" / "b.png")
        _image(folder / "dog" / "c.png")
    with pytest.raises(DataError, match=message) as caught:
        # the job validates before any model is loaded: errors come at once
        next(finetune_job(FinetuneConfig(folder, arch="clipdesk-tiny", pretrained="none", device="cpu")))
    assert "\n" not in str(caught.value)


def test_check_dataset_accepts_a_usable_folder(tmp_path):
    check_dataset(scan_dataset(make_colour_folder(tmp_path, per_class=2)))


def test_caption_pairs_from_csv_and_txt(tmp_path):
    _image(tmp_path / "imgs" / "a.png")
    _image(tmp_path / "imgs" / "b.png")
    (tmp_path / "pairs.csv").write_text('filepath,caption\nimgs/a.png,"a red, round thing"\nimgs/b.png,a blue square\n')
    pairs = read_caption_pairs(tmp_path / "pairs.csv")
    assert pairs == [((tmp_path / "imgs" / "a.png").absolute(), "a red, round thing"),
                     ((tmp_path / "imgs" / "b.png").absolute(), "a blue square")]

    (tmp_path / "imgs" / "a.txt").write_text("first caption\n")
    (tmp_path / "imgs" / "b.txt").write_text("second caption")
    _image(tmp_path / "imgs" / "c.png")  # no caption file: not a pair
    pairs = read_caption_pairs(tmp_path / "imgs")
    assert [c for _, c in pairs] == ["first caption", "second caption"]

    with pytest.raises(DataError, match="does not exist"):
        read_caption_pairs(tmp_path / "missing.csv")
