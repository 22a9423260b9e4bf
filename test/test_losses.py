"""Losses: CE ignore handling, boundary band on a hand-drawn map, KD values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from slimseg_ros.training.losses import (BoundaryCrossEntropyLoss, CrossEntropyLoss, KDLoss,
                                         boundary_band, boundary_cross_entropy, cross_entropy,
                                         kd_loss)

LN3 = math.log(3.0)


def two_class_logits(pixels: list[list[float]]) -> torch.Tensor:
    """1 x 2 x 1 x P logits from a list of per-pixel [l0, l1]."""
    return torch.tensor(pixels, dtype=torch.float32).T.reshape(1, 2, 1, len(pixels))


def test_cross_entropy_ignores_255_and_averages_over_valid_pixels() -> None:
    # pixel 0: uniform, target 0 -> ln 2; pixel 1: p = [3/4, 1/4], target 1 -> ln 4;
    # pixel 2: confidently wrong but ignored.
    logits = two_class_logits([[0.0, 0.0], [LN3, 0.0], [50.0, -50.0]])
    target = torch.tensor([[[0, 1, 255]]])
    expected = (math.log(2) + math.log(4)) / 2
    assert cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert CrossEntropyLoss()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_all_ignored_is_zero_with_a_gradient() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = cross_entropy(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


HAND_LABEL = torch.tensor([
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
    [255, 255, 255, 255, 255, 255],
    [2, 2, 2, 2, 2, 2],
    [2, 2, 2, 2, 2, 2],
]).unsqueeze(0)


def test_boundary_band_radius_1_matches_hand_drawn_pixels() -> None:
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0:3, 2:4] = True  # the 0|1 edge; the void row separates 0/1 from 2 by > 1 px
    assert torch.equal(boundary_band(HAND_LABEL, 1)[0], expected)


def test_boundary_band_radius_2_reaches_across_the_void_row() -> None:
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[0:3, 1:5] = True
    expected[2, :] = True  # row 2 sees label 2 two rows down
    expected[4, :] = True  # row 4 sees labels 0/1 two rows up
    band = boundary_band(HAND_LABEL, 2)[0]
    assert torch.equal(band, expected)
    assert not band[3].any()  # ignore pixels are never in the band


def test_boundary_band_uniform_label_is_empty_and_radius_checked() -> None:
    assert not boundary_band(torch.full((2, 5, 7), 4), 3).any()
    with pytest.raises(ValueError, match="radius"):
        boundary_band(HAND_LABEL, 0)


def test_boundary_cross_entropy_uses_only_band_pixels() -> None:
    target = torch.tensor([[[0, 0, 0, 1, 1, 1]]])  # band (r=1): pixels 2 and 3
    logits = torch.zeros(1, 2, 1, 6)
    logits[0, 0, 0, 0] = -20.0  # a huge error far from the edge must not count
    logits[0, :, 0, 2] = torch.tensor([LN3, 0.0])  # target 0, p0 = 3/4 -> ln(4/3)
    expected = (math.log(4 / 3) + math.log(2)) / 2  # pixel 3 uniform -> ln 2
    value = boundary_cross_entropy(logits, target, radius=1).item()
    assert value == pytest.approx(expected, rel=1e-6)
    assert BoundaryCrossEntropyLoss(1)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    assert boundary_cross_entropy(logits, torch.zeros(1, 1, 6, dtype=torch.long), 1).item() == 0.0


def test_kd_is_exactly_zero_for_identical_logits() -> None:
    logits = torch.randn(2, 5, 7, 9) * 4
    for t in (1.0, 2.0, 4.0):
        assert kd_loss(logits, logits.clone(), t).item() == 0.0
        assert kd_loss(logits, logits.clone(), t, torch.randint(0, 5, (2, 7, 9))).item() == 0.0


def test_kd_matches_hand_computed_kl_and_scales_by_t_squared() -> None:
    student = two_class_logits([[0.0, 0.0]])
    teacher = two_class_logits([[LN3, 0.0]])
    # KL(p || q), p = [3/4, 1/4], q = [1/2, 1/2]
    kl_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(student, teacher, 1.0).item() == pytest.approx(kl_t1, rel=1e-5)
    # T = 2: p = softmax([ln3/2, 0]) = [sqrt3, 1] / (sqrt3 + 1); loss is T^2 * KL
    s3 = math.sqrt(3.0)
    p = [s3 / (s3 + 1), 1 / (s3 + 1)]
    kl_t2 = sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_loss(student, teacher, 2.0).item() == pytest.approx(4 * kl_t2, rel=1e-5)
    assert KDLoss(2.0)(student, teacher).item() == pytest.approx(4 * kl_t2, rel=1e-5)
    # direction: KL(teacher || student), not the reverse
    reverse = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kd_loss(student, teacher, 1.0).item() != pytest.approx(reverse, rel=1e-3)


def test_kd_ignores_ignore_pixels_and_never_grads_the_teacher() -> None:
    student = two_class_logits([[0.0, 0.0], [0.0, 0.0]]).requires_grad_(True)
    teacher = two_class_logits([[LN3, 0.0], [40.0, -40.0]]).requires_grad_(True)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    loss = kd_loss(student, teacher, 1.0, torch.tensor([[[1, 255]]]))
    assert loss.item() == pytest.approx(kl, rel=1e-5)  # pixel 1 is ignored
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad[..., 1].abs().max() == 0
    # without labels both pixels count: pixel 1 has p = [1, 0] -> KL = ln 2
    assert kd_loss(student, teacher, 1.0).item() == pytest.approx((kl + math.log(2)) / 2, rel=1e-5)


def test_kd_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), 0.0)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 3, 1, 1))
