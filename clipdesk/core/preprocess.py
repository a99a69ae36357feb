"""open_clip's eval transform, made safe to run on decode threads next to the encoder.

The transform ends in torchvision's ToTensor + Normalize: two tiny torch ops that torch still
splits over all its intra-op (OpenMP) threads. Called from several decode threads while the
encoder's own threads own the cores, each op waits for a time slice on every core — measured
here: 45 ms per op per image instead of 1 ms, more than the JPEG decode itself. So the PIL
steps run as they are, and the last two steps are done in numpy (single-threaded) with the same
float32 arithmetic in the same order, which gives bit-identical pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Steps that only call Pillow when given a PIL image (no torch kernels).
PIL_STEPS = {"Resize", "CenterCrop", "MaybeConvertMode", "ResizeKeepRatio", "CenterCropOrPad"}


class NumpyTail:
    """PIL steps of a torchvision Compose, then ToTensor + Normalize in numpy: (3, H, W) float32."""

    def __init__(self, head: list, mean, std, fallback: Callable) -> None:
        self.head = head
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, -1)
        self.std = np.asarray(std, np.float32).reshape(1, 1, -1)
        self.fallback = fallback

    def __call__(self, image):
        for step in self.head:
            image = step(image)
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != self.mean.shape[2]:
            return self.fallback(image)
        # torchvision: to float32, / 255, then (x - mean) / std, each in float32.
        pixels = pixels.astype(np.float32) / np.float32(255)
        pixels = (pixels - self.mean) / self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def thread_friendly(preprocess: Callable) -> Callable:
    """The same transform without torch kernels where its shape is known; otherwise as given."""
    steps = list(getattr(preprocess, "transforms", None) or [])
    if len(steps) < 2:
        return preprocess
    *head, to_tensor, normalize = steps
    if (type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor")
            or type(normalize).__name__ != "Normalize" or getattr(normalize, "inplace", False)
            or not all(type(step).__name__ in PIL_STEPS for step in head)):
        return preprocess
    mean, std = np.asarray(normalize.mean, np.float32), np.asarray(normalize.std, np.float32)
    if mean.shape != std.shape or mean.ndim != 1:
        return preprocess

    def fallback(image):  # anything unusual (16-bit, odd channel count): the real tail
        return normalize(to_tensor(image))

    return NumpyTail(head, mean, std, fallback)
