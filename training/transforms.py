"""
Joint image/label augmentation (albumentations) and on-device normalisation.

Images stay ``uint8`` until they reach the device: the loader ships 1 byte per channel instead
of 4 and normalisation ``(pixel - mean) / std`` (0-255 scale) runs as one fused op on the batch.
Labels are always resampled with nearest neighbour and padded with the ignore index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

IGNORE_INDEX = 255


class PairTransform:
    """
    Callable ``(image HxWx3 uint8, label HxW uint8, seed) -> (image, label)``.

    ``seed`` makes the random draw a pure function of the sample's position in the training
    stream, so a resumed run sees exactly the augmentations the uninterrupted one would have.
    """

    def __init__(self, compose: A.Compose | None) -> None:
        self.compose = compose

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        if self.compose is None:
            return image, label
        if seed is not None:
            self.compose.set_random_seed(int(seed) % (2 ** 32))
        out = self.compose(image=image, mask=label)
        return out["image"], out["mask"]


def train_transform(crop_size: Sequence[int], scale_range: Sequence[float] = (0.5, 2.0),
                    flip: bool = True, photometric: float = 0.5,
                    ignore_index: int = IGNORE_INDEX) -> PairTransform:
    """
    Random scale -> pad (image 0, label ``ignore_index``) -> random crop -> flip -> colour.

    ``crop_size`` is ``(height, width)`` in pixels; ``scale_range`` the min/max resize factor;
    ``photometric`` the probability of a colour jitter (0 disables it).
    """
    h, w = int(crop_size[0]), int(crop_size[1])
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < min <= max, got {list(scale_range)}")
    ops: list[Any] = []
    if (lo, hi) != (1.0, 1.0):
        ops.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                                 mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    ops += [
        A.PadIfNeeded(min_height=h, min_width=w, position="top_left",
                      border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index),
        A.RandomCrop(height=h, width=w),
    ]
    if flip:
        ops.append(A.HorizontalFlip(p=0.5))
    if photometric > 0:
        ops.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02,
                                 p=photometric))
    return PairTransform(A.Compose(ops))


def eval_transform(size: Sequence[int] | None = None) -> PairTransform:
    """Identity (native resolution) or a resize to ``(height, width)`` (nearest for labels)."""
    if size is None:
        return PairTransform(None)
    return PairTransform(A.Compose([A.Resize(int(size[0]), int(size[1]),
                                             interpolation=cv2.INTER_LINEAR,
                                             mask_interpolation=cv2.INTER_NEAREST)]))


def normalize_batch(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                    channels_last: bool = False) -> torch.Tensor:
    """``N x 3 x H x W`` uint8 (0-255) -> float32 ``(x - mean) / std`` on the same device."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    x = (images.float() - m) / s
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
