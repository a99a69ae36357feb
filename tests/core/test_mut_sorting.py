"""Sorting and its undo: the cases mutation testing (docs/mutation.md) found unguarded.

Undo must touch only files that are still exactly what the sort wrote (a symlink or a FIFO put
in a copy's place, a moved-back file whose folder is gone or blocked), say what it kept in one
sentence, and leave folders that existed before the sort. Plans number clashing names from
(1), never over an existing file, and take a JPEG's RAW twin along. Oracles: the files on disk
and hashlib's BLAKE2b of their bytes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from clipdesk.core.errors import Cancelled
from clipdesk.core.jobs import CancelToken, run_job
from clipdesk.core.sorting import (
    SortError,
    SortRecord,
    execute,
    execute_job,
    file_digest,
    folder_name,
    journal_path,
    load_journal,
    plan_sort,
    undo,
)


def make(path, text: str = ""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((text or f"bytes of {path.name}").encode())
    return path


# -- names and plans ------------------------------------------------------------------------------
def test_folder_names_are_safe_short_and_never_empty():
    assert folder_name(' ..cat/dog?: "x"<y>|z*\x01.. ') == 'cat_dog__ _x__y__z__'
    assert folder_name("a" * 200) == "a" * 120
    assert folder_name("...") == "unnamed" and folder_name("") == "unnamed"
    assert folder_name("v1.2") == "v1.2" and folder_name("X.catX") == "X.catX"


def test_clashing_names_are_numbered_from_one_and_skip_existing_files(tmp_path):
    sources = [make(tmp_path / f"src{i}" / "photo.jpg") for i in range(3)]
    make(tmp_path / "out" / "cat" / "photo.jpg", "already there")
    plan = plan_sort([(s, "cat") for s in sources], tmp_path / "out")
    assert plan.destination == (tmp_path / "out").absolute()
    assert [t.name for _, t in plan.moves] == ["photo (1).jpg", "photo (2).jpg", "photo (3).jpg"]
    assert plan.counts() == {"cat": 3}


def test_a_jpegs_raw_twin_goes_along_unless_sorted_itself(tmp_path):
    jpeg = make(tmp_path / "src" / "IMG_1.JPG")
    raw = make(tmp_path / "src" / "IMG_1.CR3")
    make(tmp_path / "out" / "cat" / "IMG_1.CR3", "in the way")
    plan = plan_sort([(jpeg, "cat")], tmp_path / "out")
    assert [(s.name, t.relative_to(tmp_path / "out").as_posix()) for s, t in plan.moves] == [
        ("IMG_1.JPG", "cat/IMG_1.JPG"), ("IMG_1.CR3", "cat/IMG_1 (1).CR3")]
    alone = plan_sort([(jpeg, "cat"), (raw, "dog")], tmp_path / "out")
    assert [t.relative_to(tmp_path / "out").as_posix() for _, t in alone.moves] == [
        "cat/IMG_1.JPG", "dog/IMG_1.CR3"]
    assert len(plan_sort([(jpeg, "cat")], tmp_path / "out", pair_raw=False).moves) == 1


def test_a_destination_that_is_a_file_is_one_sentence(tmp_path):
    target = make(tmp_path / "out.txt")
    with pytest.raises(SortError) as caught:
        plan_sort([], target)
    assert str(caught.value) == f"{target} is a file, not a folder; choose a folder to sort into."


# -- execution ------------------------------------------------------------------------------------
def test_progress_counts_files_and_a_special_file_is_one_error(tmp_path):
    good = [make(tmp_path / "src" / f"{n}.jpg") for n in "ab"]
    fifo = tmp_path / "src" / "fifo.jpg"
    os.mkfifo(fifo)
    plan = plan_sort([(good[0], "x"), (fifo, "x"), (good[1], "x")], tmp_path / "out")
    seen = []
    starts = []
    record = run_job(execute_job(plan, "copy"),
                     lambda p: (seen.append((p.done, p.total, p.message, p.unit)), starts.append(p.started)))
    assert len(set(starts)) == 1  # one start time for the whole run: the ETA counts from it
    assert seen == [(i, 3, "Sorting (copy)", "file") for i in range(4)]
    assert record.errors == {str(fifo): f"{fifo}: fifo.jpg is not a regular file."}
    assert [t.name for _, t in record.done] == ["a.jpg", "b.jpg"]
    assert record.digests == {str(t): hashlib.sha256(s.read_bytes()).hexdigest()[:40] for s, t in record.done}


def test_copy_is_the_default_and_a_failed_file_leaves_its_planned_name_unused(tmp_path):
    fifo = tmp_path / "src0" / "photo.jpg"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    good = make(tmp_path / "src1" / "photo.jpg")
    plan = plan_sort([(fifo, "cat"), (good, "cat")], tmp_path / "out")
    record = execute(plan)
    assert good.exists() and [t.name for _, t in record.done] == ["photo (1).jpg"]  # as planned
    assert [t.name for _, t in run_job(execute_job(plan_sort([(good, "dog")], tmp_path / "out"))).done] == [
        "photo.jpg"] and good.exists()


def test_a_raw_twins_name_is_not_given_to_another_file(tmp_path):
    jpeg = make(tmp_path / "src1" / "IMG_1.JPG")
    make(tmp_path / "src1" / "IMG_1.CR3")
    other_raw = make(tmp_path / "src2" / "IMG_1.CR3", "another camera")
    plan = plan_sort([(jpeg, "cat"), (other_raw, "cat")], tmp_path / "out")
    targets = [t.name for _, t in plan.moves]
    assert targets == ["IMG_1.JPG", "IMG_1.CR3", "IMG_1 (1).CR3"]


def test_an_unknown_mode_is_refused_before_anything_happens(tmp_path):
    plan = plan_sort([(make(tmp_path / "a.jpg"), "x")], tmp_path / "out")
    with pytest.raises(SortError) as caught:
        run_job(execute_job(plan, "link"))
    assert str(caught.value) == "Unknown sort mode 'link'; choose copy or move."
    assert not (tmp_path / "out").exists()


def test_a_name_taken_after_planning_gets_the_next_number_of_the_original_name(tmp_path):
    sources = [make(tmp_path / f"src{i}" / "photo.jpg", f"photo {i}") for i in range(2)]
    plan = plan_sort([(s, "cat") for s in sources], tmp_path / "out")
    make(tmp_path / "out" / "cat" / "photo (1).jpg", "appeared since")
    record = execute(plan, "copy")
    assert [t.name for _, t in record.done] == ["photo.jpg", "photo (2).jpg"]
    assert (tmp_path / "out" / "cat" / "photo (1).jpg").read_text() == "appeared since"
    assert (tmp_path / "out" / "cat" / "photo (2).jpg").read_text() == "photo 1"


def test_a_move_across_file_systems_copies_then_removes_and_undoes(tmp_path, monkeypatch):
    source = make(tmp_path / "src" / "a.jpg", "the photo")

    def no_hard_links(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_hard_links)
    record = execute(plan_sort([(source, "cat")], tmp_path / "out"), "move")
    target = tmp_path / "out" / "cat" / "a.jpg"
    assert not source.exists() and target.read_text() == "the photo"
    assert record.digests == {str(target): hashlib.sha256(b"the photo").hexdigest()[:40]}
    restored = undo()
    assert list(restored) == [(target, source)] and source.read_text() == "the photo"


def test_cancel_stops_between_files_and_what_was_done_can_be_undone(tmp_path):
    sources = [make(tmp_path / "src" / f"{n}.jpg") for n in "abc"]
    token = CancelToken()
    job = execute_job(plan_sort([(s, "x") for s in sources], tmp_path / "out"), "copy", token)

    def cancel_after_first(progress):
        if progress.done == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(job, cancel_after_first)
    journal = load_journal()
    assert [t.name for _, t in journal.done] == ["a.jpg"]
    assert list(undo()) == [(tmp_path / "out" / "x" / "a.jpg", sources[0])]


def test_a_journal_that_cannot_be_saved_is_reported_not_raised(tmp_path, monkeypatch):
    blocker = make(tmp_path / "config-is-a-file")
    monkeypatch.setenv("CLIPDESK_CONFIG_DIR", str(blocker))
    record = execute(plan_sort([(make(tmp_path / "a.jpg"), "x")], tmp_path / "out"), "copy")
    note = record.errors["undo journal"]
    assert note.startswith("The undo journal could not be saved (")
    assert note.endswith("); undo works only until the program closes.")
    assert len(record.done) == 1


# -- undo -------------------------------------------------------------------------------------------
def test_undo_of_a_copy_returns_each_pair_and_keeps_folders_that_existed(tmp_path):
    (tmp_path / "out").mkdir()  # the user's folder, empty before the sort
    sources = [make(tmp_path / "src" / f"{n}.jpg") for n in "ab"]
    record = execute(plan_sort([(s, "cat") for s in sources], tmp_path / "out"), "copy")
    assert record.created_dirs == [tmp_path / "out" / "cat"]
    result = undo()
    assert list(result) == [(t, s) for s, t in reversed(record.done)]
    assert result.message == "Undid the last sort: 2 file(s) restored."
    assert (tmp_path / "out").is_dir() and not (tmp_path / "out" / "cat").exists()
    assert not journal_path().exists()


def test_undo_with_a_record_and_no_journal_file_still_works(tmp_path):
    source = make(tmp_path / "src" / "a.jpg")
    record = execute(plan_sort([(source, "cat")], tmp_path / "out"), "move")
    journal_path().unlink()
    assert list(undo(record)) == [(tmp_path / "out" / "cat" / "a.jpg", source)]


def test_a_symlink_in_a_moved_files_place_is_never_moved_back(tmp_path):
    source = make(tmp_path / "src" / "a.jpg", "the photo")
    execute(plan_sort([(source, "cat")], tmp_path / "out"), "move")
    target = tmp_path / "out" / "cat" / "a.jpg"
    twin = make(tmp_path / "elsewhere" / "a.jpg", "the photo")  # same bytes, someone else's file
    target.unlink()
    target.symlink_to(twin)
    with pytest.raises(SortError) as caught:
        undo()
    assert str(caught.value) == ("Nothing was undone, to lose no data: "
                                 f"{target} is gone or is no longer a plain file.")
    assert target.is_symlink() and not source.exists() and twin.read_text() == "the photo"
    assert journal_path().exists()  # a refusal keeps the journal for a later try


def test_a_fifo_in_a_copys_place_is_kept_without_blocking(tmp_path):
    source = make(tmp_path / "src" / "a.jpg")
    execute(plan_sort([(source, "cat")], tmp_path / "out"), "copy")
    target = tmp_path / "out" / "cat" / "a.jpg"
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(SortError, match="no longer a plain file"):
        undo()
    assert target.exists()


def test_a_copy_is_deleted_when_its_original_is_now_a_link_to_the_same_bytes(tmp_path):
    source = make(tmp_path / "src" / "a.jpg", "the photo")
    execute(plan_sort([(source, "cat")], tmp_path / "out"), "copy")
    keeper = make(tmp_path / "archive" / "a.jpg", "the photo")
    source.unlink()
    source.symlink_to(keeper)  # the original still reads as the sorted bytes
    assert list(undo()) == [(tmp_path / "out" / "cat" / "a.jpg", source)]
    assert keeper.read_text() == "the photo"


def test_two_kept_files_are_counted_in_the_sentence(tmp_path):
    sources = [make(tmp_path / "src" / f"{n}.jpg") for n in "ab"]
    record = execute(plan_sort([(s, "cat") for s in sources], tmp_path / "out"), "copy")
    for _, target in record.done:
        target.write_text("edited")
    with pytest.raises(SortError) as caught:
        undo()
    last = record.done[-1][1]
    assert str(caught.value) == (f"Nothing was undone, to lose no data: {last} was changed since "
                                 "the sort (and 1 more).")


def test_a_moved_file_goes_back_even_when_its_folders_are_gone(tmp_path):
    source = make(tmp_path / "src" / "deep" / "er" / "a.jpg", "the photo")
    execute(plan_sort([(source, "cat")], tmp_path / "out"), "move")
    (tmp_path / "src" / "deep" / "er").rmdir()
    (tmp_path / "src" / "deep").rmdir()
    result = undo()
    assert list(result) == [(tmp_path / "out" / "cat" / "a.jpg", source)]
    assert source.read_text() == "the photo"


def test_a_moved_file_whose_folder_is_now_a_file_stays_with_the_reason(tmp_path):
    source = make(tmp_path / "src" / "a.jpg", "the photo")
    execute(plan_sort([(source, "cat")], tmp_path / "out"), "move")
    (tmp_path / "src").rmdir()
    make(tmp_path / "src", "a file where the folder was")
    target = tmp_path / "out" / "cat" / "a.jpg"
    with pytest.raises(SortError) as caught:
        undo()
    assert str(caught.value) == ("Nothing was undone, to lose no data: "
                                 f"{target} could not be moved back (File exists).")
    assert target.read_text() == "the photo"


def test_nothing_to_undo_is_one_sentence(tmp_path):
    with pytest.raises(SortError) as caught:
        undo()
    assert str(caught.value) == "There is no sort to undo."
    with pytest.raises(SortError, match="^There is no sort to undo.$"):
        undo(SortRecord("copy"))


def test_the_journal_round_trips_names_that_are_not_utf8(tmp_path):
    name = os.fsdecode(b"caf\xe9.jpg")
    source = make(tmp_path / "src" / name, "the photo")
    fifo = tmp_path / "src" / "fifo.jpg"
    os.mkfifo(fifo)
    record = execute(plan_sort([(source, "cat"), (fifo, "cat")], tmp_path / "out"), "move")
    loaded = load_journal()
    assert loaded.mode == "move" and loaded.done == record.done
    assert loaded.errors == record.errors == {str(fifo): f"{fifo}: fifo.jpg is not a regular file."}
    assert loaded.digests == record.digests and loaded.created_dirs == record.created_dirs
    target = tmp_path / "out" / "cat" / name
    assert loaded.digests[str(target)] == file_digest(target) == hashlib.sha256(b"the photo").hexdigest()[:40]
    assert list(undo()) == [(target, source)] and source.read_text() == "the photo"


def test_a_minimal_journal_reads_with_empty_defaults(tmp_path):
    source, target = make(tmp_path / "a.jpg"), tmp_path / "out" / "a.jpg"
    journal_path().parent.mkdir(parents=True, exist_ok=True)
    journal_path().write_text(json.dumps({"mode": "copy", "done": [[str(source), str(target)]]}))
    record = load_journal()
    assert (record.mode, record.done) == ("copy", [(source, target)])
    assert (record.errors, record.created_dirs, record.digests) == ({}, [], {})
    assert SortRecord.from_json({"mode": "move"}).done == []


@pytest.mark.parametrize("data", [[], {"mode": "link"}, {"mode": "copy", "digests": []}])
def test_a_journal_nobody_can_trust_means_nothing_to_undo(data):
    journal_path().parent.mkdir(parents=True, exist_ok=True)
    journal_path().write_text(json.dumps(data))
    assert load_journal() is None
    with pytest.raises((ValueError, KeyError, TypeError)):
        SortRecord.from_json(data)
