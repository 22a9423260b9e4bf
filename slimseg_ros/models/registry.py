"""
The one list of backbones and heads: each name and the factory that builds it.

Factories are named as ``"module:attribute"`` and imported on first use. ``ModelConfig`` checks
names against this list, and the backbone modules import ``ModelConfig``, so importing them here
would make a cycle (and import every backbone to build one).

A backbone factory takes a :class:`~slimseg_ros.models.config.ModelConfig` and returns a module
whose forward gives ``{"low": stride-4 features, "high": stride-output_stride features}`` and that
has ``low_channels`` / ``high_channels`` (full-width channel counts). A head factory takes
``(low_channels, high_channels, num_classes, widths, **head options)``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

BACKBONES: dict[str, str] = {
    "resnet18": "slimseg_ros.models.resnet:build_resnet",
    "resnet50": "slimseg_ros.models.resnet:build_resnet",
    "resnet101": "slimseg_ros.models.resnet:build_resnet",
    "mobilenetv2": "slimseg_ros.models.mobilenetv2:build_mobilenetv2",
    "efficientnet_lite0": "slimseg_ros.models.efficientnet_lite:build_efficientnet_lite",
    "efficientnet_lite1": "slimseg_ros.models.efficientnet_lite:build_efficientnet_lite",
    "efficientnet_lite2": "slimseg_ros.models.efficientnet_lite:build_efficientnet_lite",
}

HEADS: dict[str, str] = {
    "deeplabv3plus": "slimseg_ros.models.heads:DeepLabV3PlusHead",
    "fcn": "slimseg_ros.models.heads:FCNHead",
}


def _resolve(kind: str, table: dict[str, str], name: str) -> Callable[..., Any]:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {tuple(table)}")
    module_name, attribute = table[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def backbone_factory(name: str) -> Callable[..., Any]:
    """Return the function that builds backbone ``name`` from a ModelConfig."""
    return _resolve("backbone", BACKBONES, name)


def head_factory(name: str) -> Callable[..., Any]:
    """Return the class that builds head ``name``."""
    return _resolve("head", HEADS, name)
