"""Composite slimmable blocks shared by backbones and heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .slimmable import DEFAULT_DIVISOR, SlimmableConv2d, SwitchableBatchNorm2d


class ConvBNAct(nn.Sequential):
    """Slimmable conv -> per-width BN -> activation (ReLU, ReLU6 or none)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        widths: Sequence[float],
        stride: int = 1,
        dilation: int = 1,
        depthwise: bool = False,
        act: str | None = "relu",
        slim_in: bool = True,
        divisor: int = DEFAULT_DIVISOR,
        in_channels_list: Sequence[int] | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        tf_same_padding: bool = False,
    ) -> None:
        conv = SlimmableConv2d(in_channels, out_channels, kernel_size, widths, stride=stride,
                               dilation=dilation, depthwise=depthwise, slim_in=slim_in,
                               divisor=divisor, in_channels_list=in_channels_list,
                               out_channels_list=in_channels_list if depthwise else None,
                               tf_same_padding=tf_same_padding)
        layers: list[nn.Module] = [
            conv,
            SwitchableBatchNorm2d(out_channels, widths, divisor=divisor,
                                  channels_list=conv.out_channels_list, eps=bn_eps,
                                  momentum=bn_momentum),
        ]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "relu6":
            layers.append(nn.ReLU6(inplace=True))
        elif act is not None:
            raise ValueError(f"unknown activation {act!r}")
        super().__init__(*layers)
