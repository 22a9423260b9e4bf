"""
SlimSeg losses: cross-entropy, boundary band + boundary-guided CE, and logit distillation (KD).

Every loss takes logits ``N x C x H x W`` and train-id labels ``N x H x W`` (int64), ignores
``ignore_index`` (255) explicitly and averages over the pixels it keeps. Each is a function plus
a thin ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


def cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                  ignore_index: int = IGNORE_INDEX,
                  class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """
    Compute pixel-wise CE averaged over non-ignored pixels (0 when every pixel is ignored).

    With ``class_weights``, PyTorch's weighted mean ``sum(w_y * ce) / sum(w_y)``.
    """
    # reduction="none" + our own mean: no NaN for an all-ignored batch, no host sync
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    return weighted_mean(per_pixel, target, class_weights, ignore_index)


def median_frequency_weights(class_pixels: Sequence[float], image_pixels: Sequence[float],
                             power: float = 1.0) -> torch.Tensor:
    """
    Median-frequency class weights (Eigen & Fergus, as SegNet used on CamVid), ``** power``.

    ``class_pixels[c]``: labelled pixels of class ``c``; ``image_pixels[c]``: all pixels of the
    images in which ``c`` appears. ``freq_c = class_pixels / image_pixels`` and
    ``weight_c = (median(freq) / freq_c) ** power``: rare classes (poles, signs, cyclists) weigh
    more, so the mean over classes (mIoU) is not left to the few classes that fill most pixels.
    A class that never appears gets weight 1 (there is nothing to balance).
    """
    counts = torch.as_tensor(class_pixels, dtype=torch.float64)
    totals = torch.as_tensor(image_pixels, dtype=torch.float64)
    if counts.shape != totals.shape or counts.ndim != 1:
        raise ValueError("class_pixels and image_pixels need one value per class each")
    seen = (counts > 0) & (totals > 0)
    if not seen.any():
        raise ValueError("no class has any labelled pixel: cannot compute class weights")
    freq = torch.where(seen, counts / totals.clamp(min=1), torch.ones_like(counts))
    median = torch.quantile(freq[seen], 0.5)  # the mean of the middle two for an even count
    weights = torch.where(seen, (median / freq) ** power, torch.ones_like(freq))
    return weights.float()


def weighted_mean(per_pixel: torch.Tensor, target: torch.Tensor,
                  class_weights: torch.Tensor | None, ignore_index: int = IGNORE_INDEX,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """
    Average ``per_pixel`` over the valid pixels in ``mask``, weighted per class.

    ``sum(w_y * per_pixel) / sum(w_y)``; unweighted when ``class_weights`` is None.
    """
    keep = target != ignore_index
    if mask is not None:
        keep = keep & mask
    if class_weights is None:
        pixel_w = keep.to(per_pixel.dtype)
    else:
        pixel_w = class_weights.to(per_pixel.device, per_pixel.dtype)[
            target.clamp(0, class_weights.numel() - 1)] * keep
    return (per_pixel * pixel_w).sum() / pixel_w.sum().clamp(min=1e-12)


def boundary_band(target: torch.Tensor, radius: int = 3,
                  ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """
    Mark the valid pixels within ``radius`` px of a pixel holding a *different valid* label.

    Boolean ``N x H x W``; the distance is Chebyshev, i.e. a ``(2r+1)^2`` window.

    Computed on the label's device with max/min pooling: a window holds another valid label
    iff its max (ignore -> -1) exceeds or its min (ignore -> +inf) undercuts the centre label.
    """
    if radius < 1:
        raise ValueError(f"boundary radius must be >= 1 pixel, got {radius}")
    valid = target != ignore_index
    lab = target.unsqueeze(1).float()
    low = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, -1.0))
    high = torch.where(valid.unsqueeze(1), lab, torch.full_like(lab, 1e4))
    k = 2 * radius + 1
    win_max = F.max_pool2d(low, k, stride=1, padding=radius)
    win_min = -F.max_pool2d(-high, k, stride=1, padding=radius)
    band = (win_max > lab) | (win_min < lab)
    return band.squeeze(1) & valid


def boundary_cross_entropy(logits: torch.Tensor, target: torch.Tensor, radius: int = 3,
                           ignore_index: int = IGNORE_INDEX,
                           band: torch.Tensor | None = None) -> torch.Tensor:
    """CE restricted to the boundary band (mean over band pixels; 0 when there is no band)."""
    if band is None:
        band = boundary_band(target, radius, ignore_index)
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    count = band.sum()
    return (per_pixel * band).sum() / count.clamp(min=1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
            target: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """
    Pixel-wise ``KL(teacher || student)`` at temperature ``T``, scaled by ``T^2``.

    ``sum_c p_t (log p_t - log p_s)`` with both sides from ``log_softmax(logits / T)`` (never
    probabilities fed as log-probabilities), averaged over the pixels whose ``target`` is not
    ``ignore_index`` (all pixels when ``target`` is None). Exactly 0 for identical logits.
    The teacher is detached here, so callers cannot leak gradients into it.
    """
    if temperature <= 0:
        raise ValueError(f"KD temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher "
                         f"{tuple(teacher_logits.shape)} logits differ in shape")
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    per_pixel = F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(1)
    if target is None:
        loss = per_pixel.mean()
    else:
        valid = target != ignore_index
        loss = (per_pixel * valid).sum() / valid.sum().clamp(min=1)
    return loss * temperature ** 2


class CrossEntropyLoss(nn.Module):
    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target, self.ignore_index)


class BoundaryCrossEntropyLoss(nn.Module):
    def __init__(self, radius: int = 3, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.radius = radius
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return boundary_cross_entropy(logits, target, self.radius, self.ignore_index)


class KDLoss(nn.Module):
    def __init__(self, temperature: float = 1.0, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.temperature = temperature
        self.ignore_index = ignore_index

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, self.temperature, target,
                       self.ignore_index)
