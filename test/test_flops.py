"""FLOPs and parameters per width: hand-checked counts, ~w^2 scaling, the printed table."""

from __future__ import annotations

import pytest
import torch
import torchvision

from slimseg_ros.tools.flops import (count_flops, count_params, flops_table, format_table, main,
                                     size_from_args)
from slimseg_ros.models import (ModelConfig, SlimmableConv2d, build_model, get_width, set_width,
                                to_plain)
from slimseg_ros.models.segmenter import build_backbone

WIDTHS = (0.25, 0.5, 0.75, 1.0)


def test_conv_stack_counts_match_hand_computation() -> None:
    stack = torch.nn.Sequential(
        SlimmableConv2d(3, 32, 3, WIDTHS, slim_in=False),        # RGB input never slims
        SlimmableConv2d(32, 64, 3, WIDTHS),
        SlimmableConv2d(64, 64, 3, WIDTHS, depthwise=True, stride=2))
    h, w = 10, 12
    for width, c1, c2 in ((0.25, 8, 16), (0.5, 16, 32), (1.0, 32, 64)):
        # 2 FLOPs per multiply-add; 'same' padding keeps 10 x 12, the stride-2 conv gives 5 x 6.
        macs = c1 * 3 * 9 * h * w + c2 * c1 * 9 * h * w + c2 * 9 * (h // 2) * (w // 2)
        assert count_flops(stack, width, (h, w)) == 2 * macs
        assert count_params(stack, width) == c1 * 3 * 9 + c2 * c1 * 9 + c2 * 9


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2"])
def test_params_equal_to_plain_and_meta_flops_equal_real(backbone: str) -> None:
    cfg = ModelConfig(backbone=backbone, num_classes=5, widths=WIDTHS, head_channels=64)
    model = build_model(cfg)
    with torch.device("meta"):
        meta = build_model(cfg)
    for w in WIDTHS:
        plain = sum(p.numel() for p in to_plain(model, w).parameters())
        assert count_params(model, w) == plain == count_params(meta, w)
        assert count_flops(model, w, (33, 47)) == count_flops(meta, w, (33, 47))


def test_count_flops_restores_width_and_mode() -> None:
    model = build_model(ModelConfig(backbone="resnet18", num_classes=3, head_channels=32))
    set_width(model, 0.75)
    model.train()
    count_flops(model, 0.25, 32)
    assert get_width(model) == 0.75 and model.training


@pytest.mark.parametrize("backbone, tv_name, unused", [
    ("resnet18", "resnet18", ("fc.",)),
    ("mobilenetv2", "mobilenet_v2", ("classifier.", "features.18.")),
])
def test_full_width_params_equal_torchvision(backbone: str, tv_name: str, unused: tuple) -> None:
    tv = getattr(torchvision.models, tv_name)(weights=None)
    expected = sum(p.numel() for n, p in tv.named_parameters() if not n.startswith(unused))
    ours = build_backbone(ModelConfig(backbone=backbone, widths=WIDTHS))
    assert count_params(ours, 1.0) == expected


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2"])
def test_flops_fall_as_width_squared(backbone: str) -> None:
    cfg = ModelConfig(backbone=backbone, head="deeplabv3plus", num_classes=11, widths=WIDTHS)
    rows = flops_table(cfg, (64, 96))
    print()
    print(format_table(rows, f"{backbone} + deeplabv3plus, 64x96"))
    assert [r["width"] for r in rows] == list(WIDTHS)
    gflops = [r["gflops"] for r in rows]
    params = [r["params_m"] for r in rows]
    assert gflops == sorted(gflops) and len(set(gflops)) == len(gflops)
    assert params == sorted(params)
    for r in rows:
        # Channels round up to multiples of 8 and the RGB input / class outputs never slim, so
        # narrow widths cost a little more than w^2, never less (measured: at most +6%).
        assert r["width_sq"] * 0.999 <= r["flops_ratio"] <= r["width_sq"] * 1.15, r
        assert r["width_sq"] * 0.999 <= r["params_ratio"] <= r["width_sq"] * 1.15, r
    assert rows[-1]["flops_ratio"] == 1.0


def test_large_table_is_cheap() -> None:
    # Counting runs on the meta device: a ResNet-101 at 1024 x 2048, OS 8, takes ~1 s, no RAM.
    cfg = ModelConfig(backbone="resnet101", output_stride=8, widths=WIDTHS)
    rows = flops_table(cfg, (1024, 2048))
    assert 4000 < rows[-1]["gflops"] < 4400 and 59 < rows[-1]["params_m"] < 60


def test_format_table_lists_every_width() -> None:
    rows = [{"width": w, "gflops": w * w, "flops_ratio": w * w, "width_sq": w * w,
             "params_m": 2 * w * w, "params_ratio": w * w} for w in WIDTHS]
    text = format_table(rows, "demo")
    lines = text.splitlines()
    assert lines[0] == "**demo**"
    assert lines[2].startswith("| width | GFLOPs")
    assert len(lines) == 4 + len(WIDTHS)
    assert lines[-1] == "| 1.00 | 1.000 | 1.000 | 1.000 | 2.00 | 1.000 |"


def test_bad_input_size_and_width_are_named() -> None:
    conv = SlimmableConv2d(3, 8, 1, WIDTHS, slim_in=False)
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        count_flops(conv, 1.0, (1, 2, 3))
    with pytest.raises(ValueError, match="0.3 is not one of the trained widths"):
        count_flops(conv, 0.3, 16)
    assert count_flops(conv, 1.0, 4) == 2 * 3 * 8 * 16  # still usable after the errors


def test_size_is_height_then_width_as_two_numbers_or_hxw(capsys) -> None:
    assert size_from_args(["512", "1024"]) == size_from_args(["512x1024"]) == (512, 1024)
    for bad in (["512"], ["1", "2", "3"], ["0", "96"]):
        with pytest.raises(ValueError):
            size_from_args(bad)
    main(["--backbone", "mobilenetv2", "--size", "64x96"])
    assert "64x96 input" in capsys.readouterr().out
