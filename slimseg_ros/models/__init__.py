"""Slimmable segmentation models: layers, backbones, heads, builder and checkpoints."""

from .checkpoint import (CheckpointError, ModelInfo, load_checkpoint, save_checkpoint)
from .config import ModelConfig
from .segmenter import SlimSegmenter, build_model
from .slimmable import (DEFAULT_WIDTHS, SlimmableConv2d, SwitchableBatchNorm2d, channels_at,
                        get_width, set_width, to_plain, trained_widths)

__all__ = [
    "CheckpointError", "ModelInfo", "load_checkpoint", "save_checkpoint", "ModelConfig",
    "SlimSegmenter", "build_model", "DEFAULT_WIDTHS", "SlimmableConv2d", "SwitchableBatchNorm2d",
    "channels_at", "get_width", "set_width", "to_plain", "trained_widths",
]
