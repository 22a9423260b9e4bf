"""Per-width BN recalibration: exact means over the given batches, one width at a time."""

from __future__ import annotations

import torch

from slimseg_ros.models import ModelConfig, build_model, set_width
from slimseg_ros.training.calibrate_bn import recalibrate_bn


def _model():
    return build_model(ModelConfig(backbone="mobilenetv2", head="fcn", num_classes=3,
                                   head_channels=32, widths=(0.5, 1.0)))


def test_stem_statistics_become_the_exact_mean_and_other_widths_stay() -> None:
    model = _model().eval()
    batches = [torch.randn(2, 3, 32, 32) * 3 + 1 for _ in range(3)]
    stem_conv, stem_bn = model.backbone.features[0][0], model.backbone.features[0][1]
    wide_before = stem_bn.bn[1].running_mean.clone()
    recalibrate_bn(model, batches, widths=[0.5])
    set_width(model, 0.5)
    with torch.no_grad():
        feats = torch.cat([stem_conv(x) for x in batches])
    expected_mean = feats.mean(dim=(0, 2, 3))
    torch.testing.assert_close(stem_bn.bn[0].running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    assert torch.equal(stem_bn.bn[1].running_mean, wide_before)  # width 1.0 untouched
    assert stem_bn.bn[0].momentum == stem_bn.bn[1].momentum == 0.1  # momentum restored
    assert not model.training


def test_recalibration_is_deterministic_and_weights_do_not_change() -> None:
    model = _model().eval()
    weights = {k: v.clone() for k, v in model.named_parameters()}
    batches = [torch.randn(2, 3, 32, 32) for _ in range(2)]
    recalibrate_bn(model, batches)
    first = {k: v.clone() for k, v in model.named_buffers()}
    recalibrate_bn(model, batches)
    assert all(torch.equal(first[k], v) for k, v in model.named_buffers())
    assert all(torch.equal(weights[k], v) for k, v in model.named_parameters())
