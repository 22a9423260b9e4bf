"""
Segmentation metrics: pure functions over a confusion matrix (rows: truth, cols: prediction).

mIoU is the **nanmean** of the per-class IoU: a class that appears neither in the ground truth
nor in the predictions has an undefined IoU (0/0 = NaN) and is left out of the mean, instead of
counting as 0 or turning the whole mean into NaN. A class absent from the ground truth but
predicted somewhere has IoU 0. All fractions are on the 0-1 scale.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """
    ``num_classes x num_classes`` int64 counts from one ``bincount(n * gt + pred)``.

    Pixels whose target is ``ignore_index`` (or outside ``[0, num_classes)``) are skipped.
    """
    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long()
    keep = (target >= 0) & (target < num_classes) & (target != ignore_index)
    idx = num_classes * target[keep] + pred[keep].clamp(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_per_class(cm: np.ndarray | torch.Tensor) -> np.ndarray:
    """
    Compute IoU per class = TP / (TP + FP + FN).

    NaN where that union is 0 (class never seen).
    """
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm: np.ndarray | torch.Tensor) -> float:
    """Mean IoU over classes with a defined IoU (``np.nanmean``); NaN if none is defined."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray | torch.Tensor) -> float:
    """Correct pixels / all non-ignored pixels."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    total = cm.sum()
    return float(np.diag(cm).sum() / total) if total > 0 else float("nan")


def class_accuracy(cm: np.ndarray | torch.Tensor) -> np.ndarray:
    """Recall per class (TP / ground-truth pixels); NaN for classes absent from ground truth."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    gt = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gt > 0, np.diag(cm) / np.where(gt > 0, gt, 1), np.nan)


def label_boundaries(label: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mark valid pixels with a different valid label among their 8 neighbours (``N x H x W``)."""
    from .losses import boundary_band
    return boundary_band(label, 1, ignore_index)


def boundary_counts(pred: torch.Tensor, target: torch.Tensor, tolerance: int = 3,
                    ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """
    Count pixels for the boundary F-score (BF) of ``N x H x W`` predictions vs labels.

    Returns int64 ``[pred boundary px matched, pred boundary px, gt boundary px matched,
    gt boundary px]``; a boundary pixel is matched when the other map has a boundary within
    ``tolerance`` pixels (Chebyshev). Prediction boundaries are only counted where the label
    is valid, so void regions neither help nor hurt.
    """
    valid = target != ignore_index
    pred = torch.where(valid, pred.long(), torch.full_like(pred.long(), ignore_index))
    pb = label_boundaries(pred, ignore_index)
    gb = label_boundaries(target.long(), ignore_index)
    k = 2 * tolerance + 1

    def dilate(b: torch.Tensor) -> torch.Tensor:
        if tolerance == 0:
            return b
        return F.max_pool2d(b.unsqueeze(1).float(), k, stride=1, padding=tolerance).squeeze(1) > 0

    return torch.stack([(pb & dilate(gb)).sum(), pb.sum(), (gb & dilate(pb)).sum(), gb.sum()])


def boundary_f_score(counts: torch.Tensor | np.ndarray) -> float:
    """BF = 2PR / (P + R) from :func:`boundary_counts` summed over a dataset (0-1 scale)."""
    c = np.asarray(counts.cpu() if isinstance(counts, torch.Tensor) else counts, dtype=np.float64)
    if c[1] == 0 and c[3] == 0:
        return 1.0  # no boundaries anywhere, none predicted: nothing to miss
    if c[1] == 0 or c[3] == 0:
        return 0.0  # boundaries only on one side
    precision, recall = c[0] / c[1], c[2] / c[3]
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def summarize(cm: np.ndarray | torch.Tensor, class_names: list[str] | tuple[str, ...],
              bcounts: torch.Tensor | np.ndarray | None = None) -> dict:
    """Report mIoU (nanmean), pixel accuracy, mean class accuracy, per-class IoU, BF (a dict)."""
    iou = iou_per_class(cm)
    acc = class_accuracy(cm)
    out = {
        "miou": mean_iou(cm),
        "pixel_accuracy": pixel_accuracy(cm),
        "mean_class_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "per_class_iou": {name: (None if np.isnan(v) else float(v))
                          for name, v in zip(class_names, iou)},
    }
    if bcounts is not None:
        out["boundary_f"] = boundary_f_score(bcounts)
    return out
