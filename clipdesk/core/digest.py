"""Whole-content hashes: the one implementation behind the embedding cache's image keys, model
identities (checkpoint files, ONNX exports) and the sort journal's undo checks.

SHA-256, first 160 bits, as hex: the algorithm the embedding cache has always keyed images by (so
every cached embedding stays valid); CPUs hash it in hardware, 2.6× faster than BLAKE2b here, and a
warm re-run over a folder of photos is mostly hashing. 160 bits leave collisions out of reach.
"""

from __future__ import annotations

import hashlib
import os

HEX_CHARS = 40  # 160 bits
CHUNK = 8 << 20  # hashlib releases the GIL on big updates


class Hasher:
    """Incremental: for bytes that pass by once (a copy hashes what it writes)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:HEX_CHARS]


def content_digest(data: bytes) -> str:
    """The hash of bytes already in memory (an image read once for decoding and hashing)."""
    hasher = Hasher()
    hasher.update(data)
    return hasher.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """The hash of a file's WHOLE content, read in chunks (a 600 MB checkpoint never sits in memory);
    equal to `content_digest` of its bytes."""
    hasher = Hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def is_current(digest: object) -> bool:
    """Whether a stored digest was made by this implementation (older journals and memos hold
    BLAKE2b digests of other lengths, which must not be compared with these)."""
    return isinstance(digest, str) and len(digest) == HEX_CHARS
