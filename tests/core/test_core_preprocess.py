"""The decode threads' transform gives exactly open_clip's preprocessing, without torch kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipdesk.core.preprocess import NumpyTail, thread_friendly


@pytest.mark.parametrize("arch", ["tiny", "vitb32"])
def test_bit_identical_to_open_clip_transform(arch, request):
    loaded = request.getfixturevalue(f"{arch}_loaded")
    fast = thread_friendly(loaded.preprocess)
    assert isinstance(fast, NumpyTail)
    rng = np.random.default_rng(0)
    for width, height in ((97, 61), (61, 97), (224, 224), (1000, 750), (64, 64), (5, 300)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        got = fast(image)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_array_equal(got, loaded.preprocess(image).numpy())


def test_non_rgb_input_still_matches(tiny_loaded):
    fast = thread_friendly(tiny_loaded.preprocess)
    for image in (Image.new("L", (80, 70), 99), Image.new("RGBA", (80, 70), (1, 2, 3, 4)),
                  Image.new("P", (80, 70), 3)):
        np.testing.assert_array_equal(np.asarray(fast(image)), tiny_loaded.preprocess(image).numpy())


def test_unknown_transforms_are_left_alone():
    from torchvision import transforms

    custom = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                 transforms.Normalize([0.5] * 3, [0.5] * 3)])
    assert thread_friendly(custom) is custom
    plain = lambda image: torch.zeros(3)  # noqa: E731
    assert thread_friendly(plain) is plain
