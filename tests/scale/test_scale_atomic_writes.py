"""Every file an index folder holds — shards, the manifest, the ANN index and its state — reaches
the disk (fsync) before it is renamed into place, as the README promises for every whole file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from clipdesk.scale import shards as sh
from clipdesk.scale.ann import VectorIndex


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    """Names of the files fsynced (temporary names mapped back to their targets), in order."""
    names: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        names.append(re.sub(r"^\.(.+)\.[0-9a-f]+\.tmp$", r"\1", target))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return names


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="maps descriptors to names through /proc")
@pytest.mark.parametrize("library", ["faiss-pq", "usearch"])
def test_index_files_are_fsynced_before_the_rename(tmp_path, synced, library):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder = tmp_path / "idx"
    folder.mkdir()
    sh.write_shard(folder, "shard-0001.parquet", {"path": [f"img{i}" for i in range(300)],
                                                 "error": [None] * 300, "embedding": vectors}, {})
    sh.write_manifest(folder, {"shards": ["shard-0001.parquet"], "dim": 16})
    VectorIndex(folder, library=library, exact_below=0).update({"shards": ["shard-0001.parquet"], "dim": 16})
    written = {"shard-0001.parquet", sh.MANIFEST, VectorIndex(folder, library=library).library.file, "state.json"}
    assert written <= set(synced), synced
    assert not list(folder.rglob("*.tmp"))  # nothing left behind
