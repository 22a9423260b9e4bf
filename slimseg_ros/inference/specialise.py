"""
Per-width specialisation: a plain copy of a slimmable network at one width, BatchNorm folded.

A slimmable layer slices its full-width weight on every call; :func:`specialise_network` makes a
plain eval-mode copy of one width instead (:func:`~slimseg_ros.models.slimmable.to_plain`:
contiguous weights) and :func:`fold_batchnorm` folds each eval-mode BatchNorm into the
convolution feeding it, found from the data flow of one traced forward pass, checked against the
unfolded output. :func:`module_bytes` is the memory such copies hold.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode

from ..models.slimmable import SlimmableConv2d, SlimmableMixin, to_plain


def _tensors_in(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors_in(item)


class _UseCounter(TorchFunctionMode):
    """
    Counts, per watched tensor, the torch calls that consume it to make a new tensor.

    Metadata calls (``.shape``, ``.dim()``, ...) return no tensor and are not counted. Calls
    nested inside a counted call (e.g. the ops inside ``F.batch_norm``) are not seen, because a
    mode is switched off while its own function runs.
    """

    def __init__(self, watched: dict[int, Any], uses: dict[int, int]) -> None:
        super().__init__()
        self.watched = watched
        self.uses = uses

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if any(True for _ in _tensors_in(out)):
            for t in _tensors_in((args, kwargs)):
                if id(t) in self.watched:
                    self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        return out


def _is_plain_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and not isinstance(m, SlimmableConv2d)


def _foldable_pairs(net: nn.Module, example: torch.Tensor
                    ) -> tuple[list[tuple[nn.Conv2d, nn.BatchNorm2d]], Any]:
    """
    Find the (conv, bn) pairs that can be folded; also return ``net``'s output on ``example``.

    A pair qualifies when bn's input is exactly conv's output and nothing else reads it. Found by
    running ``example`` through ``net`` with hooks (data flow, not attribute order), so it is
    correct for any architecture whose forward does not branch on the input values.
    """
    conv_out: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}
    bn_in: list[tuple[nn.BatchNorm2d, int]] = []
    calls: dict[int, int] = {}
    uses: dict[int, int] = {}

    def conv_hook(module: nn.Module, _inp: Any, out: Any) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        if isinstance(out, torch.Tensor):
            conv_out[id(out)] = (module, out)  # keep the tensor alive so its id stays unique

    def bn_hook(module: nn.Module, inp: tuple[Any, ...]) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1
        if inp and isinstance(inp[0], torch.Tensor):
            bn_in.append((module, id(inp[0])))

    handles = []
    for m in net.modules():
        if _is_plain_conv(m):
            handles.append(m.register_forward_hook(conv_hook))
        elif type(m) is nn.BatchNorm2d:
            handles.append(m.register_forward_pre_hook(bn_hook))
    try:
        with torch.no_grad(), _UseCounter(conv_out, uses):
            output = net(example)
    finally:
        for h in handles:
            h.remove()

    pairs = []
    for bn, tid in bn_in:
        if tid not in conv_out:
            continue
        conv = conv_out[tid][0]
        if (uses.get(tid, 0) == 1 and calls.get(id(conv)) == 1 and calls.get(id(bn)) == 1
                and bn.track_running_stats and bn.running_mean is not None
                and conv.out_channels == bn.num_features):
            pairs.append((conv, bn))
    return pairs, output


def _replace_modules(net: nn.Module, mapping: dict[int, nn.Module]) -> None:
    """Replace every occurrence of the modules keyed by id in ``mapping``."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in mapping:
                setattr(parent, name, mapping[id(child)])


def fold_batchnorm(net: nn.Module, example: torch.Tensor | None = None,
                   check: bool = True) -> tuple[nn.Module, int]:
    """
    Fold eval-mode BatchNorm2d layers into the conv feeding them; returns ``(net, folded)``.

    ``net`` (eval mode, float32) is changed in place: each folded conv is replaced by a copy
    holding the BN's scale and shift in its weight and bias, the BN by ``nn.Identity``.
    ``example`` (N x 3 x H x W, default 1 x 3 x 64 x 64 noise) is only used to trace the data
    flow. With ``check`` the folded network is compared with the original on ``example``; on a
    mismatch a warning is issued and the original modules are put back.
    """
    if net.training:
        raise ValueError("fold_batchnorm needs an eval-mode network (BN running statistics)")
    if example is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        example = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
    pairs, ref = _foldable_pairs(net, example)
    if not pairs:
        return net, 0
    mapping: dict[int, nn.Module] = {}
    undo: dict[int, nn.Module] = {}
    for conv, bn in pairs:
        fused, identity = fuse_conv_bn_eval(conv, bn), nn.Identity()
        mapping[id(conv)], mapping[id(bn)] = fused, identity
        undo[id(fused)], undo[id(identity)] = conv, bn
    _replace_modules(net, mapping)
    if check and isinstance(ref, torch.Tensor):
        with torch.no_grad():
            got = net(example)
        err = (ref - got).abs().max().item()
        scale = max(1.0, ref.abs().max().item())
        if not err <= 1e-3 * scale:
            _replace_modules(net, undo)
            warnings.warn(f"BatchNorm folding changed the output by {err:.3g} "
                          f"(scale {scale:.3g}); running this network unfolded",
                          RuntimeWarning, stacklevel=2)
            return net, 0
    return net, len(pairs)


def module_bytes(module: nn.Module) -> int:
    """Bytes held by the parameters and buffers of ``module`` (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def specialise_network(model: nn.Module, width: float, fold_bn: bool = True,
                       example: torch.Tensor | None = None) -> tuple[nn.Module, int]:
    """
    Make a plain eval-mode copy of slimmable ``model`` at ``width``, BN folded: ``(net, folded)``.

    ``model`` is not modified. The copy is made on ``model``'s device in float32.
    """
    net = to_plain(model, width).eval()
    leftovers = [type(m).__name__ for m in net.modules() if isinstance(m, SlimmableMixin)]
    if leftovers:
        raise ValueError("to_plain left slimmable modules in the network: "
                         f"{sorted(set(leftovers))}")
    for p in net.parameters():
        p.requires_grad_(False)
    folded = 0
    if fold_bn:
        net, folded = fold_batchnorm(net, example)
    return net, folded
