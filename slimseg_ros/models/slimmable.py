"""
Slimmable building blocks: one full-width tensor per layer, sliced to the active width.

Width is never global: every slimmable module receives the tuple of trained widths in its
constructor and keeps the index of the active one; :func:`set_width` walks a whole model and sets
that index everywhere at once.

Channel rule (documented in the README): at width ``w`` a layer with ``C`` full channels uses the
first ``channels_at(C, w)`` channels, i.e. ``ceil(w * C)`` rounded *up* to a multiple of
``divisor`` (8 by default, friendly to SIMD and tensor cores), never more than ``C`` and never
fewer than ``min(divisor, C)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..widths import same_width, width_index

DEFAULT_WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
DEFAULT_DIVISOR = 8


def channels_at(full_channels: int, width: float, divisor: int = DEFAULT_DIVISOR) -> int:
    """
    Return how many channels of a ``full_channels`` layer are active at ``width``.

    ``width`` is a fraction: 0 < width <= 1.
    """
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    if full_channels <= divisor:
        return full_channels
    wanted = math.ceil(width * full_channels - 1e-9)
    rounded = int(math.ceil(wanted / divisor) * divisor)
    return max(min(rounded, full_channels), divisor)


def validate_widths(widths: Sequence[float]) -> tuple[float, ...]:
    """Return widths as a sorted tuple; reject empty, duplicated or out-of-range lists."""
    ws = tuple(sorted(float(w) for w in widths))
    if not ws:
        raise ValueError("the width list is empty")
    for w in ws:
        if not (0.0 < w <= 1.0) or math.isnan(w):
            raise ValueError(f"every width must be in (0, 1], got {w}")
    if any(same_width(a, b) for a, b in zip(ws, ws[1:])):
        raise ValueError(f"duplicate widths in {list(ws)}")
    return ws


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, dilation: int = 1) -> torch.Tensor:
    """
    Pad ``x`` like TensorFlow's "SAME" convolution padding (extra pixel at bottom/right).

    While tracing (the ONNX export of the runtime backends) the padding is computed from the
    input's shape inside the graph: plain integers would be frozen at the example's size, and a
    frame of another size would then be padded, and segmented, wrongly.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        traced = []
        for size in (x.shape[-1], x.shape[-2]):
            size = torch.as_tensor(size)
            total = torch.clamp(((size + stride - 1) // stride - 1) * stride
                                + (kernel - 1) * dilation + 1 - size, min=0)
            traced += [total // 2, total - total // 2]
        return F.pad(x, traced)
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation
                    + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x
    return F.pad(x, pads)


class TFSamePadConv2d(nn.Conv2d):
    """Plain Conv2d with TensorFlow "SAME" padding, the twin of a tf-padded slimmable conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = tf_same_pad(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        return super().forward(x)


class SlimmableMixin:
    """Common state of slimmable modules: the trained widths and the active one."""

    widths: tuple[float, ...]
    width_index: int

    def _init_widths(self, widths: Sequence[float]) -> None:
        self.widths = validate_widths(widths)
        self.width_index = len(self.widths) - 1

    @property
    def width(self) -> float:
        return self.widths[self.width_index]

    def set_width_index(self, index: int) -> None:
        self.width_index = index


class SlimmableConv2d(nn.Conv2d, SlimmableMixin):
    """
    Conv2d whose active in/out channels are the first ``channels_at(C, w)``.

    ``slim_in``/``slim_out`` False keep that side at full size (image input, classifier output).
    ``depthwise=True`` makes ``groups`` follow the active channel count (in == out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        widths: Sequence[float] = DEFAULT_WIDTHS,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        depthwise: bool = False,
        bias: bool = False,
        slim_in: bool = True,
        slim_out: bool = True,
        divisor: int = DEFAULT_DIVISOR,
        in_channels_list: Sequence[int] | None = None,
        out_channels_list: Sequence[int] | None = None,
        tf_same_padding: bool = False,
    ) -> None:
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv needs in_channels == out_channels")
        # TensorFlow "SAME" padding for strided convs (one more pixel bottom/right on even sizes),
        # needed to reproduce networks trained in TF such as EfficientNet-Lite exactly.
        self.tf_same_padding = tf_same_padding and stride > 1
        if padding is None:
            padding = 0 if self.tf_same_padding else dilation * (kernel_size - 1) // 2
        groups = in_channels if depthwise else 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self._init_widths(widths)
        self.depthwise = depthwise
        self.in_channels_list = [channels_at(in_channels, w, divisor) if slim_in else in_channels
                                 for w in self.widths]
        self.out_channels_list = [channels_at(out_channels, w, divisor) if slim_out
                                  else out_channels for w in self.widths]
        # Explicit lists serve inputs made by concatenation, whose active channels are the sum
        # of the parts' active channels rather than channels_at(sum).
        if in_channels_list is not None:
            self.in_channels_list = self._check_list(in_channels_list, in_channels)
        if out_channels_list is not None:
            self.out_channels_list = self._check_list(out_channels_list, out_channels)
        if depthwise:
            self.in_channels_list = self.out_channels_list

    def _check_list(self, values: Sequence[int], full: int) -> list[int]:
        values = [int(v) for v in values]
        if len(values) != len(self.widths) or not all(0 < v <= full for v in values):
            raise ValueError(f"channel list {values} does not fit {len(self.widths)} widths "
                             f"and {full} full channels")
        return values

    def active_channels(self) -> tuple[int, int]:
        return self.in_channels_list[self.width_index], self.out_channels_list[self.width_index]

    def sliced_parameters(self, index: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """Weight, bias and groups for width ``index`` (views into the full tensors)."""
        i = self.width_index if index is None else index
        cin, cout = self.in_channels_list[i], self.out_channels_list[i]
        if self.depthwise:
            weight = self.weight[:cout]
            groups = cout
        else:
            weight = self.weight[:cout, :cin]
            groups = 1
        bias = self.bias[:cout] if self.bias is not None else None
        return weight, bias, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = self.in_channels_list[self.width_index]
        if x.shape[1] != cin:
            raise ValueError(f"{type(self).__name__} at width {self.width} expects {cin} input "
                             f"channels, got {x.shape[1]}")
        weight, bias, groups = self.sliced_parameters()
        if self.tf_same_padding:
            x = tf_same_pad(x, self.kernel_size[0], self.stride[0], self.dilation[0])
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def to_plain(self, index: int) -> nn.Conv2d:
        """Return a plain ``nn.Conv2d`` holding contiguous copies of width ``index``'s weights."""
        weight, bias, groups = self.sliced_parameters(index)
        cin, cout = self.in_channels_list[index], self.out_channels_list[index]
        cls = TFSamePadConv2d if self.tf_same_padding else nn.Conv2d
        conv = cls(cin, cout, self.kernel_size, self.stride, self.padding, self.dilation,
                   groups=groups, bias=bias is not None)
        with torch.no_grad():
            conv.weight.copy_(weight)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv.to(self.weight.device)


class SwitchableBatchNorm2d(nn.Module, SlimmableMixin):
    """
    One BatchNorm2d per trained width: separate statistics and affine parameters.

    Narrow widths see other feature statistics than the full network, so sharing BN between
    widths ruins accuracy (Yu et al., Slimmable Networks).
    """

    def __init__(self, num_features: int, widths: Sequence[float] = DEFAULT_WIDTHS,
                 divisor: int = DEFAULT_DIVISOR, slim: bool = True,
                 channels_list: Sequence[int] | None = None, eps: float = 1e-5,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self._init_widths(widths)
        self.num_features = num_features
        self.channels_list = [channels_at(num_features, w, divisor) if slim else num_features
                              for w in self.widths]
        if channels_list is not None:
            self.channels_list = [int(c) for c in channels_list]
        self.bn = nn.ModuleList(nn.BatchNorm2d(c, eps=eps, momentum=momentum)
                                for c in self.channels_list)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn[self.width_index](x)

    def to_plain(self, index: int) -> nn.BatchNorm2d:
        import copy
        return copy.deepcopy(self.bn[index])


def set_width(model: nn.Module, width: float) -> nn.Module:
    """Make every slimmable module of ``model`` run at ``width`` (one of its trained widths)."""
    index = width_index(trained_widths(model), width)
    for m in model.modules():
        if isinstance(m, SlimmableMixin):
            m.set_width_index(index)
    return model


def trained_widths(model: nn.Module) -> tuple[float, ...]:
    """Return the width list shared by all slimmable modules of ``model``."""
    found: tuple[float, ...] | None = None
    for m in model.modules():
        if isinstance(m, SlimmableMixin):
            if found is None:
                found = m.widths
            elif m.widths != found:
                raise ValueError(f"modules disagree on widths: {found} vs {m.widths}")
    if found is None:
        raise ValueError("the model has no slimmable modules")
    return found


def get_width(model: nn.Module) -> float:
    """Return the width the model currently runs at."""
    for m in model.modules():
        if isinstance(m, SlimmableMixin):
            return m.width
    raise ValueError("the model has no slimmable modules")


def to_plain(model: nn.Module, width: float) -> nn.Module:
    """
    Copy ``model`` with every slimmable module replaced by a plain one of ``width``.

    The result is an ordinary network of exactly that width (contiguous weights, plain
    Conv2d/BatchNorm2d), used for fast inference, export and fair speed comparisons.
    """
    import copy

    widths = trained_widths(model)
    index = width_index(widths, width)
    plain = copy.deepcopy(model)

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, (SlimmableConv2d, SwitchableBatchNorm2d)):
                setattr(parent, name, child.to_plain(index))
            else:
                replace(child)

    replace(plain)
    return plain
