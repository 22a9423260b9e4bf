"""
Segmentation heads: DeepLabV3+ (ASPP + decoder) and a light FCN head, both slimmable.

Heads take a feature dict ``{"low": stride-4 features, "high": stride-8/16/32 features}`` and
return logits at the stride of ``low`` (DeepLabV3+) or ``high`` (FCN). The classifier's input
slims with the width, its output (the classes) never does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct
from .slimmable import DEFAULT_DIVISOR, SlimmableConv2d, channels_at


def classifier(in_channels: int, num_classes: int, widths: Sequence[float],
               divisor: int = DEFAULT_DIVISOR) -> SlimmableConv2d:
    """1x1 conv to class logits: input slims, output stays ``num_classes`` at every width."""
    return SlimmableConv2d(in_channels, num_classes, 1, widths, bias=True, slim_out=False,
                           divisor=divisor)


class ASPPPooling(nn.Module):
    """Image-level branch of ASPP. No BN: it sees a 1x1 map, which breaks BN at batch size 1."""

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[float],
                 divisor: int) -> None:
        super().__init__()
        self.conv = SlimmableConv2d(in_channels, out_channels, 1, widths, bias=True,
                                    divisor=divisor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = F.relu(self.conv(F.adaptive_avg_pool2d(x, 1)))
        return y.expand(-1, -1, size[0], size[1])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3), slimmable."""

    def __init__(self, in_channels: int, out_channels: int, rates: Sequence[int],
                 widths: Sequence[float], divisor: int = DEFAULT_DIVISOR,
                 separable: bool = False) -> None:
        super().__init__()
        branches: list[nn.Module] = [
            ConvBNAct(in_channels, out_channels, 1, widths, divisor=divisor)]
        for rate in rates:
            if separable:
                branches.append(nn.Sequential(
                    ConvBNAct(in_channels, in_channels, 3, widths, dilation=rate, depthwise=True,
                              divisor=divisor),
                    ConvBNAct(in_channels, out_channels, 1, widths, divisor=divisor)))
            else:
                branches.append(ConvBNAct(in_channels, out_channels, 3, widths, dilation=rate,
                                          divisor=divisor))
        branches.append(ASPPPooling(in_channels, out_channels, widths, divisor))
        self.branches = nn.ModuleList(branches)
        per_branch = [channels_at(out_channels, w, divisor) for w in sorted(widths)]
        self.project = ConvBNAct(out_channels * len(branches), out_channels, 1, widths,
                                 divisor=divisor,
                                 in_channels_list=[c * len(branches) for c in per_branch])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the deep features + a decoder that fuses stride-4 features (Chen et al. 2018)."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 widths: Sequence[float], output_stride: int = 16, channels: int = 256,
                 low_level_channels: int = 48, dropout: float = 0.1,
                 divisor: int = DEFAULT_DIVISOR, separable: bool = False) -> None:
        super().__init__()
        rates = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}[output_stride]
        self.aspp = ASPP(high_channels, channels, rates, widths, divisor, separable)
        self.low_proj = ConvBNAct(low_channels, low_level_channels, 1, widths, divisor=divisor)
        fuse_in = channels + low_level_channels
        fuse_list = [channels_at(channels, w, divisor)
                     + channels_at(low_level_channels, w, divisor)
                     for w in sorted(widths)]
        if separable:
            self.fuse = nn.Sequential(
                ConvBNAct(fuse_in, fuse_in, 3, widths, depthwise=True, divisor=divisor,
                          in_channels_list=fuse_list),
                ConvBNAct(fuse_in, channels, 1, widths, divisor=divisor,
                          in_channels_list=fuse_list),
                ConvBNAct(channels, channels, 3, widths, depthwise=True, divisor=divisor),
                ConvBNAct(channels, channels, 1, widths, divisor=divisor))
        else:
            self.fuse = nn.Sequential(
                ConvBNAct(fuse_in, channels, 3, widths, divisor=divisor,
                          in_channels_list=fuse_list),
                ConvBNAct(channels, channels, 3, widths, divisor=divisor))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier(channels, num_classes, widths, divisor)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        low = self.low_proj(feats["low"])
        high = self.aspp(feats["high"])
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse(torch.cat([high, low], dim=1))
        return self.classifier(self.dropout(y))


class FCNHead(nn.Module):
    """Light FCN head: one 3x3 conv block on the deep features, then the classifier."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 widths: Sequence[float], output_stride: int = 16, channels: int = 128,
                 low_level_channels: int = 0, dropout: float = 0.1,
                 divisor: int = DEFAULT_DIVISOR, separable: bool = False) -> None:
        super().__init__()
        self.block = ConvBNAct(high_channels, channels, 3, widths, divisor=divisor)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = classifier(channels, num_classes, widths, divisor)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.block(feats["high"])))
