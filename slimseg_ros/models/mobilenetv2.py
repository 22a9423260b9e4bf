"""
Slimmable MobileNetV2 backbone in torchvision's layout and key names (``features.<i>...``).

Inverted residuals (1x1 expand -> 3x3 depthwise -> 1x1 linear project, ReLU6) slim every
channel except the RGB input of the stem. For output stride 8/16 the stride-2 blocks past that
stride become stride 1 and later depthwise convs dilate (as in DeepLab's MobileNetV2).

Features returned:

* ``low`` = output of ``features[3]``: stride 4, 24 channels at full width;
* ``high`` = output of ``features[17]``, the last inverted residual: 320 channels. torchvision's
  final 1x1 conv to 1280 channels (``features[18]``) is *not* built: DeepLab's MobileNetV2 stops
  before it too, and it would add ~0.4M parameters and make ASPP's input four times wider for
  little gain. Its ImageNet weights are ignored when loading.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import ModelConfig
from .layers import ConvBNAct
from .pretrained import load_pretrained
from .slimmable import DEFAULT_DIVISOR, DEFAULT_WIDTHS, SlimmableConv2d, SwitchableBatchNorm2d

# (expand ratio t, output channels c, repeats n, first stride s), torchvision/paper table 2
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_LOW_INDEX = 3  # features[:4] ends at stride 4 with 24 channels
_IGNORED = ("classifier.", "features.18.")


class InvertedResidual(nn.Module):
    """torchvision's ``InvertedResidual`` with slimmable convs; ``conv`` keeps its key layout."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int,
                 widths: Sequence[float], dilation: int = 1,
                 divisor: int = DEFAULT_DIVISOR) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(inp, hidden, 1, widths, act="relu6", divisor=divisor))
        layers += [
            ConvBNAct(hidden, hidden, 3, widths, stride=stride, dilation=dilation,
                      depthwise=True, act="relu6", divisor=divisor),
            SlimmableConv2d(hidden, oup, 1, widths, divisor=divisor),
            SwitchableBatchNorm2d(oup, widths, divisor),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class SlimMobileNetV2(nn.Module):
    """
    Slimmable MobileNetV2 trunk (``features[0..17]``, no 1280 conv, no classifier).

    ``forward(x: N x 3 x H x W) -> {"low": N x 24 x H/4 x W/4, "high": N x 320 x H/os x W/os}``
    (channel counts at full width; ``channels_at(C, w, divisor)`` at width ``w``).
    """

    def __init__(self, widths: Sequence[float] = DEFAULT_WIDTHS, output_stride: int = 16,
                 divisor: int = DEFAULT_DIVISOR) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        features: list[nn.Module] = [
            ConvBNAct(3, 32, 3, widths, stride=2, act="relu6", slim_in=False, divisor=divisor)]
        current_stride, dilation, inp = 2, 1, 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                stride = s if i == 0 else 1
                block_dilation = dilation
                if stride > 1 and current_stride >= output_stride:
                    # Keep the resolution: this block runs at stride 1 with the dilation so far,
                    # the following ones with the dilation grown by the skipped stride.
                    dilation *= stride
                    stride = 1
                current_stride *= stride
                features.append(InvertedResidual(inp, c, stride, t, widths, block_dilation,
                                                 divisor))
                inp = c
        self.features = nn.Sequential(*features)
        self.low_channels = 24
        self.high_channels = inp
        for m in self.modules():
            if isinstance(m, SlimmableConv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.features[:_LOW_INDEX + 1](x)
        high = self.features[_LOW_INDEX + 1:](low)
        return {"low": low, "high": high}


def build_mobilenetv2(config: ModelConfig) -> SlimMobileNetV2:
    """
    Backbone factory for ``config.backbone == "mobilenetv2"``.

    ``config.pretrained``: path to a torchvision ``mobilenet_v2`` state dict (``classifier.*``
    and the unused ``features.18.*`` are ignored) or ``"torchvision"``.
    """
    model = SlimMobileNetV2(config.widths, config.output_stride, config.divisor)
    if config.pretrained:
        load_pretrained(model, config.pretrained, arch="mobilenet_v2", ignore_prefixes=_IGNORED)
    return model
