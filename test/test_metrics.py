"""Metrics: confusion matrix by hand, IoU/mIoU with nanmean for absent classes, boundary F."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slimseg_ros.training.metrics import (boundary_counts, boundary_f_score, class_accuracy,
                                          confusion_matrix, iou_per_class, mean_iou,
                                          pixel_accuracy, summarize)


def test_confusion_matrix_counts_pixels_and_skips_ignore() -> None:
    target = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    cm = confusion_matrix(pred, target, 3)
    expected = torch.tensor([[1, 1, 0],
                             [0, 2, 0],
                             [1, 0, 0]])
    assert torch.equal(cm, expected)
    assert cm.dtype == torch.int64


def test_miou_from_a_hand_made_confusion_matrix() -> None:
    cm = np.array([[3, 1, 0],
                   [0, 4, 2],
                   [1, 0, 5]])
    # IoU_c = TP / (row + col - TP)
    expected = [3 / (4 + 4 - 3), 4 / (6 + 5 - 4), 5 / (6 + 7 - 5)]
    np.testing.assert_allclose(iou_per_class(cm), expected)
    assert mean_iou(cm) == pytest.approx(sum(expected) / 3)
    assert pixel_accuracy(cm) == pytest.approx(12 / 16)
    np.testing.assert_allclose(class_accuracy(cm), [3 / 4, 4 / 6, 5 / 6])


def test_absent_class_is_nan_and_left_out_of_the_mean() -> None:
    cm = np.array([[5, 0, 0],
                   [0, 0, 0],   # class 1: never in ground truth, never predicted
                   [1, 0, 3]])
    iou = iou_per_class(cm)
    assert math.isnan(iou[1])
    assert mean_iou(cm) == pytest.approx((5 / 6 + 3 / 4) / 2)  # nanmean, not /3
    report = summarize(cm, ["a", "b", "c"])
    assert report["per_class_iou"]["b"] is None


def test_predicted_but_absent_class_counts_as_zero() -> None:
    cm = np.array([[4, 1],
                   [0, 0]])  # class 1 predicted once, never in ground truth: IoU 0
    np.testing.assert_allclose(iou_per_class(cm), [4 / 5, 0.0])
    assert mean_iou(cm) == pytest.approx(0.4)


def test_boundary_f_score_perfect_and_shifted() -> None:
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[:, :, 5:] = 1
    counts = boundary_counts(target.clone(), target, tolerance=0)
    assert boundary_f_score(counts) == 1.0
    shifted = torch.zeros_like(target)
    shifted[:, :, 7:] = 1  # edge moved by 2 px
    assert boundary_f_score(boundary_counts(shifted, target, tolerance=0)) == 0.0
    assert boundary_f_score(boundary_counts(shifted, target, tolerance=2)) == 1.0
    flat = torch.zeros_like(target)  # no predicted boundary at all
    assert boundary_f_score(boundary_counts(flat, target, tolerance=3)) == 0.0


def test_boundary_counts_ignore_void_regions() -> None:
    target = torch.full((1, 8, 8), 255, dtype=torch.long)
    target[:, :4] = 0
    pred = torch.zeros(1, 8, 8, dtype=torch.long)
    pred[:, 4:, 3] = 1  # predicted edges inside the void area do not count
    counts = boundary_counts(pred, target, tolerance=1)
    assert counts.tolist() == [0, 0, 0, 0]
    assert boundary_f_score(counts) == 1.0
