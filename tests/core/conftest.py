"""Shared fixtures for the core tests: seeded models (loaded once per session) and synthetic images.

Images are small and structured (gradients + shapes + noise) so that random-initialised models
still give every image a different embedding; the tiny architecture is used wherever the
architecture does not matter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_images import save_image

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import EmbeddingCache, NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.models import TINY_ARCH, load_model


@pytest.fixture
def make_images(tmp_path):
    """Factory: `make_images(n, suffix=".png", folder=None, size=(96, 72), first_seed=0)` -> paths."""

    def make(n: int, suffix: str = ".png", folder: Path | None = None,
             size: tuple[int, int] = (96, 72), first_seed: int = 0) -> list[Path]:
        folder = folder or tmp_path / "images"
        return [save_image(folder / f"img{first_seed + i:03d}{suffix}", first_seed + i, *size)
                for i in range(n)]

    return make


@pytest.fixture(scope="session")
def tiny_loaded():
    return load_model(TINY_ARCH, "none", "cpu")


@pytest.fixture(scope="session")
def vitb32_loaded():
    return load_model("ViT-B-32", "none", "cpu")


@pytest.fixture
def tiny_engine(tiny_loaded, tmp_path):
    """A fresh engine (own SQLite cache in tmp_path) over the session's tiny model."""
    cache = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite3")
    yield Engine(TorchEncoder(tiny_loaded), cache)
    cache.close()


@pytest.fixture
def tiny_engine_nocache(tiny_loaded):
    return Engine(TorchEncoder(tiny_loaded), NullCache())
