"""Undo after a sort never loses data: it deletes or moves only files still exactly as sorted."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from clipdesk.core.sorting import SortError, execute, journal_path, plan_sort, undo


def _files(folder, names=("a.jpg", "b.jpg", "c.jpg", "d.jpg")):
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        (folder / name).write_bytes(f"content of {name}".encode() * 10)
        out.append(folder / name)
    return out


def _sort(files, dest, mode):
    plan = plan_sort([(f, "cat" if i % 2 else "dog") for i, f in enumerate(files)], dest)
    record = execute(plan, mode)
    return record, {s: t for s, t in record.done}


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_copy_undo_when_originals_were_moved_away_refuses_and_keeps_every_copy(tmp_path):
    files = _files(tmp_path / "src")
    _, copies = _sort(files, tmp_path / "out", "copy")
    before = _snapshot(tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(tmp_path / "src", elsewhere)  # the originals are no longer where they were

    with pytest.raises(SortError, match="Nothing was undone") as caught:
        undo()

    assert len(str(caught.value).splitlines()) == 1 and "(and 3 more)" in str(caught.value)
    assert _snapshot(tmp_path / "out") == before  # every copy is still there, unchanged
    assert len(list(elsewhere.iterdir())) == 4  # and so are the user's own moved files
    shutil.move(elsewhere, tmp_path / "src")  # the user puts the originals back: now undo works
    assert len(undo()) == 4 and not (tmp_path / "out").exists()


def test_copy_undo_when_originals_were_deleted_never_leaves_zero_files(tmp_path):
    files = _files(tmp_path / "src")
    _, copies = _sort(files, tmp_path / "out", "copy")
    contents = {f: f.read_bytes() for f in files}
    for f in files:
        f.unlink()
    with pytest.raises(SortError):
        undo()
    assert all(copies[f].read_bytes() == contents[f] for f in files)  # the only copies left stay


def test_copy_undo_with_some_originals_gone_undoes_the_rest_and_says_so(tmp_path):
    files = _files(tmp_path / "src")
    _, copies = _sort(files, tmp_path / "out", "copy")
    files[0].unlink()
    restored = undo()
    assert len(restored) == 3 and len(restored.kept) == 1 and "is gone" in restored.kept[0]
    assert copies[files[0]].exists() and not any(copies[f].exists() for f in files[1:])
    assert all(f.exists() for f in files[1:])
    assert "3 file(s) restored, 1 kept" in restored.message


def test_copy_undo_keeps_copies_edited_since_and_reports_them(tmp_path):
    files = _files(tmp_path / "src")
    _, copies = _sort(files, tmp_path / "out", "copy")
    edited = copies[files[1]]
    edited.write_bytes(b"the user's edit")

    restored = undo()

    assert edited.read_bytes() == b"the user's edit"  # kept, with its folder
    assert len(restored) == 3 and len(restored.kept) == 1 and str(edited) in restored.kept[0]
    assert "3 file(s) restored, 1 kept" in restored.message
    assert all(not copies[f].exists() for f in files if f != files[1])
    assert all(f.exists() for f in files)


def test_copy_undo_keeps_the_copy_when_the_original_changed(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg",))
    _, copies = _sort(files, tmp_path / "out", "copy")
    files[0].write_bytes(b"edited original")
    with pytest.raises(SortError, match="Nothing was undone"):
        undo()
    assert copies[files[0]].read_bytes() == b"content of a.jpg" * 10
    assert files[0].read_bytes() == b"edited original"


def test_copy_undo_refuses_when_the_original_is_now_a_link_to_the_copy(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg",))
    _, copies = _sort(files, tmp_path / "out", "copy")
    files[0].unlink()
    os.symlink(copies[files[0]], files[0])  # same content seen through the link
    with pytest.raises(SortError):
        undo()
    assert copies[files[0]].read_bytes() == b"content of a.jpg" * 10


def test_copy_undo_with_everything_intact_deletes_exactly_the_copies(tmp_path):
    files = _files(tmp_path / "src")
    before = _snapshot(tmp_path / "src")
    (tmp_path / "out" / "dog").mkdir(parents=True)
    (tmp_path / "out" / "dog" / "mine.txt").write_bytes(b"user file")
    _sort(files, tmp_path / "out", "copy")
    restored = undo()
    assert len(restored) == 4 and not restored.kept
    assert _snapshot(tmp_path / "src") == before
    assert _snapshot(tmp_path / "out") == {"dog/mine.txt": b"user file"}


def test_journal_records_a_content_hash_per_file(tmp_path):
    files = _files(tmp_path / "src")
    record, _ = _sort(files, tmp_path / "out", "copy")
    data = json.loads(journal_path().read_text())
    assert set(data["digests"]) == {str(t) for _, t in record.done}
    assert len(set(data["digests"].values())) == 4


def test_move_undo_moves_back_only_files_whose_content_matches(tmp_path):
    files = _files(tmp_path / "src")
    contents = {f: f.read_bytes() for f in files}
    _, moved = _sort(files, tmp_path / "out", "move")
    moved[files[0]].write_bytes(b"edited after the move")

    restored = undo()

    assert len(restored) == 3 and len(restored.kept) == 1
    assert moved[files[0]].read_bytes() == b"edited after the move" and not files[0].exists()
    assert all(f.read_bytes() == contents[f] for f in files[1:])


def test_move_undo_never_overwrites_a_file_that_reappeared(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg", "b.jpg"))
    _, moved = _sort(files, tmp_path / "out", "move")
    files[0].write_bytes(b"a new file with the old name")
    restored = undo()
    assert files[0].read_bytes() == b"a new file with the old name"
    assert moved[files[0]].read_bytes() == b"content of a.jpg" * 10
    assert len(restored) == 1 and "exists again" in restored.kept[0]


def test_undo_of_a_deleted_copy_and_an_old_journal(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg", "b.jpg"))
    record, copies = _sort(files, tmp_path / "out", "copy")
    copies[files[0]].unlink()  # the user removed one copy already
    data = record.to_json()
    del data["digests"]  # a journal written before hashes were recorded
    journal_path().write_text(json.dumps(data))
    restored = undo()
    assert len(restored) == 1 and "gone" in restored.kept[0]
    assert all(f.exists() for f in files) and not copies[files[1]].exists()


@pytest.mark.parametrize("garbage", ["[]", "null", '{"mode": "copy", "done": 5}', "{", '{"mode": "rm"}'])
def test_a_garbage_journal_means_nothing_to_undo(garbage, tmp_path):
    journal_path().parent.mkdir(parents=True, exist_ok=True)
    journal_path().write_text(garbage)
    with pytest.raises(SortError, match="no sort to undo"):
        undo()


def test_sorting_a_fifo_is_an_error_entry_not_a_hang(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg",))
    fifo = tmp_path / "src" / "x.jpg"
    os.mkfifo(fifo)
    plan = plan_sort([(files[0], "cat"), (fifo, "cat")], tmp_path / "out")
    record = execute(plan, "copy")
    assert len(record.done) == 1 and str(fifo) in record.errors


def test_a_label_folder_that_is_a_file_is_an_error_entry_and_new_folders_are_undone(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg", "b.jpg"))
    dest = tmp_path / "deep" / "out"
    plan = plan_sort([(files[0], "cat"), (files[1], "dog")], dest)
    dest.mkdir(parents=True)
    (dest / "dog").write_bytes(b"a file where a folder should go")
    record = execute(plan, "copy")
    assert len(record.done) == 1 and str(files[1]) in record.errors
    (dest / "dog").unlink()
    undo()
    assert not (dest / "cat").exists() and all(f.exists() for f in files)


def test_undo_removes_every_folder_the_sort_created(tmp_path):
    files = _files(tmp_path / "src", ("a.jpg",))
    dest = tmp_path / "new" / "deeper" / "out"
    execute(plan_sort([(files[0], "cat")], dest), "move")
    undo()
    assert not (tmp_path / "new").exists() and files[0].exists()
