"""Few-shot heads trained by `training` (quick method), applied over cached image embeddings.

Placeholder until the training module lands: `load_head` explains that this build cannot use it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError


def load_head(folder: Path, metadata: dict, device):
    raise ModelLoadError(f"{folder} holds a few-shot head, which this version cannot load yet.")
