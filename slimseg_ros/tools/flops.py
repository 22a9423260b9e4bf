"""
FLOPs and parameters of a slimmable network at each width.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
1 x 3 x H x W input: it counts convolutions and matrix products as 2 x multiply-adds (so
1 GMAC = 2 GFLOPs) and ignores elementwise ops (BN, activations, additions, interpolation).
Parameters are those of ``to_plain(model, w)``: only the active slices of every layer plus the
BatchNorm of that width, i.e. what a plain network of that width would hold. Both work on a
``meta``-device model, which :func:`flops_table` uses so that even ResNet-101 at 1024 x 2048 is
counted in about a second.

``python -m slimseg_ros.tools.flops --backbone resnet18 --size 512 1024`` prints the table
(``--size`` is height then width: ``512 1024`` or ``512x1024``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.config import ModelConfig
from ..models.segmenter import build_model
from ..models.slimmable import (SlimmableConv2d, SwitchableBatchNorm2d, get_width, set_width,
                                trained_widths)
from ..widths import width_index
from .common import format_size, markdown_table, parse_size


def _input_hw(input_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        h = w = input_size
    else:
        if len(input_size) != 2:
            raise ValueError(f"input_size must be an int or (height, width), got {input_size!r}")
        h, w = (int(v) for v in input_size)
    if h < 1 or w < 1:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return h, w


def count_flops(model: nn.Module, width: float, input_size: int | Sequence[int]) -> int:
    """
    Count the FLOPs (2 x MACs of conv/matmul) of one forward at ``width`` on a 1 x 3 x H x W input.

    Runs in eval mode without gradients on the model's device (``meta`` works: no arithmetic);
    the model's width and train/eval mode are restored.
    """
    h, w = _input_hw(input_size)
    previous_width, was_training = get_width(model), model.training
    try:
        set_width(model, width)
        model.eval()
        param = next(model.parameters())
        x = torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        set_width(model, previous_width)
        model.train(was_training)


def count_params(model: nn.Module, width: float) -> int:
    """
    Parameters active at ``width``: exactly those of the plain network ``to_plain(model, w)``.

    Counted from the slices without building that copy, so it also works on a ``meta``-device
    model (the tests check it against ``to_plain``).
    """
    widths = trained_widths(model)
    index = width_index(widths, width)

    def walk(module: nn.Module) -> int:
        if isinstance(module, SlimmableConv2d):
            weight, bias, _ = module.sliced_parameters(index)
            return weight.numel() + (bias.numel() if bias is not None else 0)
        if isinstance(module, SwitchableBatchNorm2d):
            return sum(p.numel() for p in module.bn[index].parameters())
        own = sum(p.numel() for p in module.parameters(recurse=False))
        return own + sum(walk(child) for child in module.children())

    return walk(model)


def flops_table(config: ModelConfig | dict, input_size: int | Sequence[int]) -> list[dict]:
    """
    One row per trained width of the network ``config`` describes (ImageNet init skipped).

    Row keys: ``width``, ``gflops``, ``flops_ratio`` (to the widest), ``width_sq`` (w^2, what
    the ratio would be if every layer slimmed on both sides), ``params_m`` (millions),
    ``params_ratio``.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    config = ModelConfig.from_dict({**config.to_dict(), "pretrained": None})
    with torch.device("meta"):  # shapes only: no memory for weights, no arithmetic
        model = build_model(config)
    return model_flops_table(model, input_size)


def model_flops_table(model: nn.Module, input_size: int | Sequence[int]) -> list[dict]:
    """:func:`flops_table` for a built model (for example one loaded from a checkpoint)."""
    widths = trained_widths(model)
    flops = {w: count_flops(model, w, input_size) for w in widths}
    params = {w: count_params(model, w) for w in widths}
    top = max(widths)
    return [{"width": w, "gflops": flops[w] / 1e9, "flops_ratio": flops[w] / flops[top],
             "width_sq": (w / top) ** 2, "params_m": params[w] / 1e6,
             "params_ratio": params[w] / params[top]} for w in widths]


def format_table(rows: Sequence[dict], title: str | None = None) -> str:
    """Markdown table of :func:`flops_table` rows."""
    lines = [f"**{title}**", ""] if title else []
    lines.append(markdown_table(
        ("width", "GFLOPs", "ratio to widest", "w^2", "params (M)", "params ratio"),
        [(f"{r['width']:.2f}", f"{r['gflops']:.3f}", f"{r['flops_ratio']:.3f}",
          f"{r['width_sq']:.3f}", f"{r['params_m']:.2f}", f"{r['params_ratio']:.3f}")
         for r in rows], "r"))
    return "\n".join(lines)


def size_from_args(values: Sequence[str]) -> tuple[int, int]:
    """Read ``--size``: ``H W`` (two numbers) or ``HxW``, height first either way."""
    if len(values) == 2:
        return parse_size("x".join(values))
    if len(values) == 1:
        return parse_size(values[0])
    raise ValueError(f"--size takes H W or HxW, got {' '.join(values)!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table for the network the command line describes."""
    parser = argparse.ArgumentParser(description="FLOPs and parameters per width of a slimmable "
                                                 "segmentation network.")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--head", default="deeplabv3plus")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--output-stride", type=int, default=16)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--size", nargs="+", default=["512", "1024"], metavar=("H", "W"),
                        help="input height and width in pixels: 512 1024, or 512x1024")
    args = parser.parse_args(argv)
    try:
        size = size_from_args(args.size)
    except ValueError as exc:
        parser.error(str(exc))
    config = ModelConfig(backbone=args.backbone, head=args.head, num_classes=args.num_classes,
                         output_stride=args.output_stride, widths=tuple(args.widths))
    rows = flops_table(config, size)
    print(format_table(rows, f"{args.backbone} + {args.head}, OS {args.output_stride}, "
                             f"{format_size(*size)} input"))


if __name__ == "__main__":
    main()
