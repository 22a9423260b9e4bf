"""The segmentation network: backbone -> head -> bilinear upsampling to the input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .registry import backbone_factory, head_factory


class SlimSegmenter(nn.Module):
    """Slimmable encoder-decoder; ``forward(x: N x 3 x H x W) -> logits N x classes x H x W``."""

    def __init__(self, config: ModelConfig, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Logits at the input size; with ``upsample=False`` at the head's own resolution."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an N x 3 x H x W image batch, got shape {tuple(x.shape)}")
        logits = self.head(self.backbone(x))
        if not upsample:
            return logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_backbone(config: ModelConfig) -> nn.Module:
    """Build the slimmable backbone named by ``config.backbone`` (see :mod:`.registry`)."""
    return backbone_factory(config.backbone)(config)


def build_model(config: ModelConfig | dict) -> SlimSegmenter:
    """
    Build the slimmable network described by ``config`` (a :class:`ModelConfig` or dict).

    Loads ImageNet weights into the full-width backbone when ``config.pretrained`` is set.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    backbone = build_backbone(config)
    head = head_factory(config.head)(
        backbone.low_channels, backbone.high_channels, config.num_classes, config.widths,
        output_stride=config.output_stride, channels=config.head_channels,
        low_level_channels=config.low_level_channels, dropout=config.dropout,
        divisor=config.divisor, separable=config.separable_head)
    return SlimSegmenter(config, backbone, head)


def classifier_keys(model: SlimSegmenter) -> list[str]:
    """
    State-dict keys of the final 1x1 conv to class logits (``head.classifier``).

    They are the only tensors whose shape follows ``num_classes``: the ones a fine-tune to
    another class list starts afresh while every other tensor comes from the checkpoint.
    """
    return [f"head.classifier.{name}" for name in model.head.classifier.state_dict()]
