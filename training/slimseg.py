"""
The SlimSeg recipe for one batch: every width, widest to narrowest, gradients accumulated.

The widest width learns from the labels (CE + boundary-guided CE). Each narrower width learns
from a teacher's *detached* prediction (KD) plus its own label terms:

* ``stepwise`` (default, the paper's): the teacher of width w is the next wider width,
* ``largest``: the widest width teaches every narrower one,
* ``none``: no distillation, every width learns from labels only (plain slimmable training),
* ``independent``: one given width alone (a plain network of that width, the baseline).

Each width's loss is back-propagated as soon as it is computed (only the detached teacher logits
stay alive), and the caller takes one optimizer step for all widths (slimmable-network
convention).

This module is the one place that interprets ``distill.mode``: the config validates it with
:func:`distill_mode_problem` (names in :data:`DISTILL_MODES`), and the trainer asks
:func:`trained_network` and :func:`training_widths` which network and widths a mode trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from slimseg_ros.models import ModelConfig, set_width
from slimseg_ros.widths import find_width, same_width, width_index

from .losses import IGNORE_INDEX, boundary_band, kd_loss, weighted_mean

if TYPE_CHECKING:  # config.py imports this module to validate distill.mode
    from .config import DistillConfig

LOSS_NAMES = ("ce", "boundary", "kd", "total")
DISTILL_MODES = ("stepwise", "largest", "none", "independent")
_WITHOUT_TEACHER = ("none", "independent")  # every width learns from the labels alone


def distill_mode_problem(mode: str, width: float | None) -> str | None:
    """Why ``distill.mode`` / ``distill.width`` cannot be trained, or None when they can."""
    if mode not in DISTILL_MODES:
        return f"distill.mode must be one of {DISTILL_MODES}, got {mode!r}"
    if mode == "independent" and width is None:
        return "distill.mode=independent needs distill.width (e.g. 0.5)"
    return None


def trained_network(model: ModelConfig, distill: DistillConfig) -> ModelConfig:
    """
    Return the network a mode trains.

    ``independent`` trains a plain one of its single width ``(w,)``.
    """
    if distill.mode == "independent":
        w = float(distill.width)  # type: ignore[arg-type]
        if model.widths != (w,):
            return dataclasses.replace(model, widths=(w,))
    return model


def teacher_width(widths: Sequence[float], width: float, mode: str) -> float | None:
    """
    Return the width whose prediction teaches ``width``.

    None for the widest or without KD.
    """
    ws = sorted(float(w) for w in widths)
    i = width_index(ws, width)
    if mode in _WITHOUT_TEACHER or i == len(ws) - 1:
        return None
    if mode == "stepwise":
        return ws[i + 1]
    if mode == "largest":
        return ws[-1]
    raise ValueError(f"unknown teacher mode {mode!r}")


def training_widths(model_widths: Sequence[float], distill: DistillConfig) -> list[float]:
    """Widths trained each iteration, widest first (teachers run before their students)."""
    ws = sorted((float(w) for w in model_widths), reverse=True)
    if distill.mode == "independent":
        w = float(distill.width)  # type: ignore[arg-type]
        if find_width(ws, w) is None:
            raise ValueError(f"distill.width {w} is not one of the model widths {sorted(ws)}")
        return [w]
    return ws


def width_losses(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None,
                 cfg: DistillConfig, widest: bool, band: torch.Tensor | None,
                 ignore_index: int = IGNORE_INDEX,
                 class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """
    Loss terms of one width. ``logits``/``teacher``: N x C x H x W, ``labels``: N x H x W.

    ``class_weights`` (one per class) weight the label terms (CE over valid pixels, boundary CE
    over band pixels) as weighted means; KD stays a plain mean over valid pixels.
    """
    zero = logits.new_zeros((), dtype=torch.float32)
    # one per-pixel CE serves both the plain term (mean over valid pixels) and the boundary
    # term (mean over band pixels), as cross_entropy / boundary_cross_entropy define them
    per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index,
                                reduction="none")
    ce = weighted_mean(per_pixel, labels, class_weights, ignore_index)
    if cfg.boundary and band is not None:
        bnd = weighted_mean(per_pixel, labels, class_weights, ignore_index, mask=band)
    else:
        bnd = zero
    label_term = ce + cfg.boundary_weight * bnd
    if teacher is None:
        kd = zero
        total = label_term if widest or cfg.mode in _WITHOUT_TEACHER \
            else cfg.label_weight * label_term
    else:
        kd = kd_loss(logits, teacher, cfg.temperature, labels, ignore_index)
        total = cfg.kd_weight * kd + cfg.label_weight * label_term
    return {"ce": ce.detach(), "boundary": bnd.detach(), "kd": kd.detach(), "total": total}


def slimseg_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    widths: Sequence[float],
    cfg: DistillConfig,
    backward: Callable[[torch.Tensor], None],
    width_target: nn.Module | None = None,
    sync_context: Callable[[bool], ContextManager[Any]] | None = None,
    last_micro_batch: bool = True,
    autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    loss_scale: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
    class_weights: torch.Tensor | None = None,
) -> dict[float, dict[str, torch.Tensor]]:
    """
    Forward + backward of every width in ``widths`` (widest first) on one batch.

    ``model`` may be a DDP wrapper; ``width_target`` is the module :func:`set_width` acts on
    (the unwrapped network). ``backward(loss)`` runs the (scaled) backward pass;
    ``sync_context(is_last)`` wraps each width's forward+backward (DDP ``no_sync`` for all but
    the very last backward of the optimizer step). ``loss_scale`` divides by the number of
    accumulated micro-batches; ``class_weights`` weight the label terms
    (see :func:`width_losses`). Returns detached loss terms per width (``total`` unscaled).
    """
    target_module = width_target if width_target is not None else model
    order = sorted((float(w) for w in widths), reverse=True)
    widest = max(float(w) for w in set_width_list(target_module))
    band = boundary_band(labels, cfg.boundary_radius, ignore_index) if cfg.boundary else None
    kept: dict[float, torch.Tensor] = {}
    needed = {teacher_width(set_width_list(target_module), w, cfg.mode) for w in order}
    out: dict[float, dict[str, torch.Tensor]] = {}
    for k, w in enumerate(order):
        last = last_micro_batch and k == len(order) - 1
        ctx = sync_context(last) if sync_context is not None else contextlib.nullcontext()
        with ctx:
            set_width(target_module, w)
            with autocast():
                logits = model(images)
            t = teacher_width(set_width_list(target_module), w, cfg.mode)
            teacher = kept.get(t) if t is not None else None
            if t is not None and teacher is None:
                raise RuntimeError(f"teacher width {t} of width {w} was not run before it")
            losses = width_losses(logits, labels, teacher, cfg, same_width(w, widest), band,
                                  ignore_index, class_weights)
            backward(losses["total"] * loss_scale)
        if w in needed:
            kept[w] = logits.detach()
        losses["total"] = losses["total"].detach()
        out[w] = losses
        del logits
    set_width(target_module, widest)
    return out


def set_width_list(model: nn.Module) -> tuple[float, ...]:
    from slimseg_ros.models import trained_widths
    return trained_widths(model)
