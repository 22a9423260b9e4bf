"""The SlimSeg recipe: teacher choice, KD from the right width, accumulation, LR schedule."""

from __future__ import annotations

import math

import pytest
import torch

from slimseg_ros.models import ModelConfig, build_model, set_width
from slimseg_ros.training.config import DistillConfig, OptimConfig, ScheduleConfig
from slimseg_ros.training.losses import boundary_cross_entropy, cross_entropy, kd_loss
from slimseg_ros.training.optim import build_optimizer, lr_factor, param_groups
from slimseg_ros.training.slimseg import (slimseg_step, teacher_width, trained_network,
                                          training_widths)

WIDTHS = (0.25, 0.5, 0.75, 1.0)


def tiny_model(widths: tuple[float, ...] = WIDTHS) -> torch.nn.Module:
    return build_model(ModelConfig(backbone="mobilenetv2", num_classes=5, widths=widths,
                                   head_channels=32, low_level_channels=16, dropout=0.0))


def test_stepwise_teacher_is_the_next_wider_width() -> None:
    assert teacher_width(WIDTHS, 0.5, "stepwise") == 0.75
    assert teacher_width(WIDTHS, 0.25, "stepwise") == 0.5
    assert teacher_width(WIDTHS, 0.75, "stepwise") == 1.0
    assert teacher_width(WIDTHS, 1.0, "stepwise") is None


def test_largest_and_none_modes() -> None:
    assert teacher_width(WIDTHS, 0.5, "largest") == 1.0
    assert teacher_width(WIDTHS, 0.25, "largest") == 1.0
    assert teacher_width(WIDTHS, 0.5, "none") is None
    with pytest.raises(ValueError, match="0.3"):
        teacher_width(WIDTHS, 0.3, "stepwise")


def test_training_widths_run_widest_first_and_independent_runs_one() -> None:
    assert training_widths(WIDTHS, DistillConfig()) == [1.0, 0.75, 0.5, 0.25]
    assert training_widths(WIDTHS, DistillConfig(mode="independent", width=0.5)) == [0.5]
    with pytest.raises(ValueError, match="0.6"):
        training_widths(WIDTHS, DistillConfig(mode="independent", width=0.6))


def test_independent_mode_trains_a_plain_network_of_its_width() -> None:
    model = ModelConfig(backbone="mobilenetv2", num_classes=5, widths=WIDTHS)
    assert trained_network(model, DistillConfig(mode="independent", width=0.5)).widths == (0.5,)
    for mode in ("stepwise", "largest", "none"):
        assert trained_network(model, DistillConfig(mode=mode)) is model


@pytest.mark.parametrize("mode,teachers", [("stepwise", {0.75: 1.0, 0.5: 0.75, 0.25: 0.5}),
                                           ("largest", {0.75: 1.0, 0.5: 1.0, 0.25: 1.0})])
def test_step_distils_each_width_from_its_teachers_prediction(mode: str, teachers: dict) -> None:
    model = tiny_model().eval()  # eval: BN/dropout deterministic so logits can be recomputed
    with torch.no_grad():  # a freshly initialised classifier predicts ~uniform: spread it out
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    images = torch.randn(2, 3, 32, 48)
    labels = torch.randint(0, 5, (2, 32, 48))
    labels[:, :4] = 255
    cfg = DistillConfig(mode=mode, temperature=2.0, boundary=False)
    out = slimseg_step(model, images, labels, WIDTHS, cfg, backward=lambda loss: loss.backward())
    assert list(out) == [1.0, 0.75, 0.5, 0.25]
    with torch.no_grad():
        logits = {}
        for w in WIDTHS:
            set_width(model, w)
            logits[w] = model(images)
    assert out[1.0]["kd"].item() == 0.0
    torch.testing.assert_close(out[1.0]["ce"], cross_entropy(logits[1.0], labels))
    for student, teacher in teachers.items():
        expected = kd_loss(logits[student], logits[teacher], 2.0, labels)
        torch.testing.assert_close(out[student]["kd"], expected, rtol=1e-4, atol=1e-6)
        assert out[student]["kd"].item() > 0
        torch.testing.assert_close(out[student]["total"], out[student]["kd"] + out[student]["ce"],
                                   rtol=1e-5, atol=1e-6)


def test_step_accumulates_gradients_of_every_width() -> None:
    model = tiny_model().train()
    images = torch.randn(2, 3, 32, 32)
    labels = torch.randint(0, 5, (2, 32, 32))
    per_width_grads = {}
    for w in WIDTHS:
        model.zero_grad()
        slimseg_step(model, images, labels, [w], DistillConfig(mode="none"),
                     backward=lambda loss: loss.backward())
        per_width_grads[w] = model.head.classifier.weight.grad.clone()
    model.zero_grad()
    out = slimseg_step(model, images, labels, WIDTHS, DistillConfig(mode="none"),
                       backward=lambda loss: loss.backward())
    assert set(out) == set(WIDTHS)
    # every width's own BN received a gradient in the one accumulated step
    bns = [m for m in model.modules() if type(m).__name__ == "SwitchableBatchNorm2d"]
    for i in range(len(WIDTHS)):
        assert bns[0].bn[i].weight.grad is not None
    # ... and the shared classifier holds the sum of the four widths' gradients
    torch.testing.assert_close(model.head.classifier.weight.grad,
                               sum(per_width_grads.values()), rtol=1e-4, atol=1e-6)


def test_boundary_term_is_reported_and_weighted() -> None:
    model = tiny_model().eval()
    images = torch.randn(1, 3, 32, 32)
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[:, :, 16:] = 1
    cfg = DistillConfig(mode="none", boundary=True, boundary_radius=2, boundary_weight=0.5)
    out = slimseg_step(model, images, labels, [1.0], cfg, backward=lambda loss: None)
    assert out[1.0]["boundary"].item() > 0
    with torch.no_grad():
        logits = model(images)
    torch.testing.assert_close(out[1.0]["boundary"], boundary_cross_entropy(logits, labels, 2))
    torch.testing.assert_close(out[1.0]["ce"], cross_entropy(logits, labels))
    torch.testing.assert_close(out[1.0]["total"], out[1.0]["ce"] + 0.5 * out[1.0]["boundary"])


def test_lr_schedule_is_a_pure_function_with_warmup_and_poly() -> None:
    s = ScheduleConfig(iterations=100, warmup_iters=10, warmup_ratio=0.1, power=0.9)
    assert lr_factor(0, s) == pytest.approx(0.1)
    assert lr_factor(5, s) == pytest.approx((0.1 + 0.9 * 0.5) * (1 - 0.05) ** 0.9)
    assert lr_factor(10, s) == pytest.approx(0.9 ** 0.9)
    assert lr_factor(50, s) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, s) == 0.0
    assert lr_factor(37, s) == lr_factor(37, s)
    values = [lr_factor(i, s) for i in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_no_weight_decay_on_bn_and_bias() -> None:
    model = tiny_model()
    decay, no_decay = param_groups(model, OptimConfig(weight_decay=1e-4))
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert (all(p.ndim > 1 for p in decay["params"])
            and all(p.ndim <= 1 for p in no_decay["params"]))
    total = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == total
    opt = build_optimizer(model, OptimConfig(lr=0.05))
    assert opt.defaults["momentum"] == 0.9 and math.isclose(opt.param_groups[0]["lr"], 0.05)
