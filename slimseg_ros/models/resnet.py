"""
Slimmable ResNet-18/50/101 backbones with dilation, in torchvision's layout and key names.

Every convolution slims with the width except the RGB input side of ``conv1``; residual
downsample paths (1x1 conv + BN) slim too, so the identity and the residual always have the
same active channels. Output stride 8/16 replaces the strides of ``layer3``/``layer4`` with
dilation exactly like torchvision's ``replace_stride_with_dilation``; 32 keeps all strides.

Unlike torchvision, :class:`BasicBlock` accepts dilation (needed for ResNet-18 at OS 8/16).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import ModelConfig
from .pretrained import load_pretrained
from .slimmable import DEFAULT_DIVISOR, DEFAULT_WIDTHS, SlimmableConv2d, SwitchableBatchNorm2d

# name -> (block type, blocks per stage)
_ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}

# output stride -> replace_stride_with_dilation for layer2, layer3, layer4
_DILATE = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}


def _conv(cin: int, cout: int, k: int, widths: Sequence[float], divisor: int, stride: int = 1,
          dilation: int = 1) -> SlimmableConv2d:
    return SlimmableConv2d(cin, cout, k, widths, stride=stride, dilation=dilation,
                           padding=dilation * (k - 1) // 2, divisor=divisor)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); ``expansion`` 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, widths: Sequence[float], stride: int = 1,
                 dilation: int = 1, downsample: nn.Module | None = None,
                 divisor: int = DEFAULT_DIVISOR) -> None:
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, widths, divisor, stride, dilation)
        self.bn1 = SwitchableBatchNorm2d(planes, widths, divisor)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3, widths, divisor, 1, dilation)
        self.bn2 = SwitchableBatchNorm2d(planes, widths, divisor)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand (torchvision's ResNet v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, widths: Sequence[float], stride: int = 1,
                 dilation: int = 1, downsample: nn.Module | None = None,
                 divisor: int = DEFAULT_DIVISOR) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = _conv(inplanes, planes, 1, widths, divisor)
        self.bn1 = SwitchableBatchNorm2d(planes, widths, divisor)
        self.conv2 = _conv(planes, planes, 3, widths, divisor, stride, dilation)
        self.bn2 = SwitchableBatchNorm2d(planes, widths, divisor)
        self.conv3 = _conv(planes, out, 1, widths, divisor)
        self.bn3 = SwitchableBatchNorm2d(out, widths, divisor)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class SlimResNet(nn.Module):
    """
    Slimmable ResNet trunk (no avgpool/fc).

    ``forward(x: N x 3 x H x W) -> {"low": layer1 output, stride 4, low_channels full-width
    channels; "high": layer4 output, stride output_stride, high_channels}``; at width ``w`` the
    channel counts are ``channels_at(C, w, divisor)``.
    """

    def __init__(self, arch: str = "resnet18", widths: Sequence[float] = DEFAULT_WIDTHS,
                 output_stride: int = 16, divisor: int = DEFAULT_DIVISOR) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"unknown ResNet {arch!r}; choose one of {sorted(_ARCHS)}")
        if output_stride not in _DILATE:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        kind, layers = _ARCHS[arch]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self.output_stride = output_stride
        self._widths = tuple(widths)
        self._divisor = divisor
        self.inplanes = 64
        self.dilation = 1
        self.conv1 = SlimmableConv2d(3, 64, 7, widths, stride=2, padding=3, slim_in=False,
                                     divisor=divisor)
        self.bn1 = SwitchableBatchNorm2d(64, widths, divisor)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = _DILATE[output_stride]
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=dilate[2])
        self.low_channels = 64 * block.expansion
        self.high_channels = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, SlimmableConv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
                    stride: int = 1, dilate: bool = False) -> nn.Sequential:
        """
        Build one stage of ``blocks`` blocks.

        Same stride/dilation bookkeeping as torchvision's ``ResNet._make_layer``.
        """
        widths, divisor = self._widths, self._divisor
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv(self.inplanes, planes * block.expansion, 1, widths, divisor, stride),
                SwitchableBatchNorm2d(planes * block.expansion, widths, divisor))
        layers = [block(self.inplanes, planes, widths, stride, previous_dilation, downsample,
                        divisor)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, widths, 1, self.dilation, None, divisor))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        high = self.layer4(self.layer3(self.layer2(low)))
        return {"low": low, "high": high}


def build_resnet(config: ModelConfig) -> SlimResNet:
    """
    Backbone factory for ``config.backbone`` in resnet18/50/101.

    ``config.pretrained``: path to a torchvision ImageNet state dict (``fc.*`` is ignored), or
    ``"torchvision"`` to fetch torchvision's default weights; loaded into the full width and
    every width's BN (see :mod:`slimseg_ros.models.pretrained`).
    """
    model = SlimResNet(config.backbone, config.widths, config.output_stride, config.divisor)
    if config.pretrained:
        load_pretrained(model, config.pretrained, arch=config.backbone, ignore_prefixes=("fc.",))
    return model
