"""The demo model's pixels: generated scenes rendered into a uint8 tensor pool, and the
normalisation of the model's eval transform. The build trains on them and the evaluation's fast
path measures on them, so both import them from here (neither imports the other for them)."""

from __future__ import annotations

import numpy as np
import torch

from . import synthetic


def normalisation() -> tuple[torch.Tensor, torch.Tensor]:
    """The same mean/std as the model's eval transform (open_clip's OpenAI defaults), [3, 1, 1] each."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return (torch.tensor(OPENAI_DATASET_MEAN).view(3, 1, 1), torch.tensor(OPENAI_DATASET_STD).view(3, 1, 1))


def render_pool(scenes: list[synthetic.Scene], size: int) -> torch.Tensor:
    """Every scene drawn at `size` px, as one uint8 tensor [N, 3, size, size] (fast to reuse per epoch)."""
    pixels = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for i, scene in enumerate(scenes):
        pixels[i] = np.asarray(synthetic.render(scene, size))
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
