"""
Tiny random-weight checkpoints for the engine, export and benchmark tests.

BatchNorm statistics and affine parameters are randomised so that folding BN into the convs is
really exercised (with the default mean 0 / var 1 a wrong fold could go unnoticed).
"""

from __future__ import annotations

from pathlib import Path

import torch

from slimseg_ros.models import ModelConfig, ModelInfo, build_model, save_checkpoint

NUM_CLASSES = 5


def tiny_config(backbone: str = "resnet18") -> ModelConfig:
    """Return a small DeepLabV3+ config (narrow head) on ``backbone`` with 5 classes."""
    return ModelConfig(backbone=backbone, num_classes=NUM_CLASSES, head_channels=32,
                       low_level_channels=16, dropout=0.1)


def tiny_info() -> ModelInfo:
    return ModelInfo(class_names=[f"class{i}" for i in range(NUM_CLASSES)],
                     palette=[[40 * i, 255 - 40 * i, 7 * i] for i in range(NUM_CLASSES)])


def randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)


def make_checkpoint(path: Path, backbone: str = "resnet18", seed: int = 0) -> Path:
    """Build, randomise and save a tiny slimmable model; returns ``path``."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(backbone)).eval()
    randomise_bn(model, seed)
    save_checkpoint(path, model, tiny_info())
    return path
