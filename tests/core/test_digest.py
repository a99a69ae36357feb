"""Whole-content hashes (core/digest.py): one algorithm — the embedding cache's SHA-256/160 — for
image keys, model identities and the sort journal, checked against hashlib directly."""

from __future__ import annotations

import hashlib
import json
import os

from clipdesk.core import models
from clipdesk.core.digest import content_digest, file_digest
from clipdesk.core.models import file_fingerprint
from clipdesk.core.sorting import execute_job, plan_sort, undo


def sha160(data: bytes) -> str:
    """The oracle: what every existing cache row was keyed by (cache.content_digest before)."""
    return hashlib.sha256(data).hexdigest()[:40]


def big_file(path, size: int = 20 << 20, flip_at: int | None = None) -> bytes:
    """More than two read chunks; `flip_at` changes one byte there (head and tail stay)."""
    data = bytearray(os.urandom(4096)) * (size // 4096)
    if flip_at is not None:
        data[flip_at] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_every_byte_counts_in_memory_and_on_disk(tmp_path):
    data = big_file(tmp_path / "a.bin")
    middle = big_file(tmp_path / "b.bin", flip_at=(20 << 20) // 2 + 7)
    assert content_digest(data) == sha160(data) == file_digest(tmp_path / "a.bin")
    assert file_digest(tmp_path / "b.bin") == sha160(middle) != sha160(data)


def test_model_identity_uses_the_same_hash(tmp_path):
    data = big_file(tmp_path / "w.safetensors", size=9 << 20)
    assert file_fingerprint(tmp_path / "w.safetensors") == sha160(data)


def test_an_identity_memoised_before_the_switch_stays_valid(tmp_path):
    """A file hashed by the old BLAKE2b code keeps its identity while unchanged, so the embeddings
    and ONNX exports cached under it are still found; a changed file gets the new hash."""
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"w" * 5000)
    legacy = hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
    info = path.stat()
    memo = models._memo_path()
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({str(path.resolve()): [info.st_size, info.st_mtime_ns, legacy]}))
    assert file_fingerprint(path) == legacy
    path.write_bytes(b"v" * 5000)
    os.utime(path, ns=(1, 1))
    assert file_fingerprint(path) == sha160(b"v" * 5000)


def test_sort_journal_records_the_same_hash_and_undo_checks_it(tmp_path):
    sources = [tmp_path / "in" / name for name in ("cat.jpg", "dog.jpg")]
    sources[0].parent.mkdir()
    for source in sources:
        source.write_bytes(source.name.encode() * 1000)
    plan = plan_sort([(source, "pets") for source in sources], tmp_path / "out")
    job = execute_job(plan, "copy")
    while True:
        try:
            next(job)
        except StopIteration as stop:
            record = stop.value
            break
    targets = [target for _, target in plan.moves]
    assert [record.digests[str(t)] for t in targets] == [sha160(s.read_bytes()) for s in sources]
    targets[1].write_bytes(b"edited since the sort")  # undo must see it and keep that copy
    result = undo(record)
    assert not targets[0].exists() and targets[1].exists() and len(result.kept) == 1


def test_a_journal_from_before_keeps_undo_working(tmp_path):
    """A journal written with BLAKE2b digests is not compared with SHA-256 ones (every copy would
    look edited and undo would refuse): as for a journal without hashes, the original decides."""
    source = tmp_path / "in" / "cat.jpg"
    source.parent.mkdir()
    source.write_bytes(b"a cat" * 1000)
    plan = plan_sort([(source, "pets")], tmp_path / "out")
    job = execute_job(plan, "copy")
    while True:
        try:
            next(job)
        except StopIteration as stop:
            record = stop.value
            break
    target = plan.moves[0][1]
    record.digests[str(target)] = hashlib.blake2b(target.read_bytes()).hexdigest()  # the old journal
    result = undo(record)
    assert not target.exists() and source.exists() and not result.kept
