"""SGD parameter groups and the warm-up + poly learning rate (a pure function of the iteration)."""

from __future__ import annotations

from torch import nn, optim

from .config import OptimConfig, ScheduleConfig


def lr_factor(iteration: int, schedule: ScheduleConfig) -> float:
    """
    Multiplier of the base LR at optimizer step ``iteration`` (0-based).

    Linear warm-up from ``warmup_ratio`` to 1 over ``warmup_iters`` steps, multiplied by the
    poly decay ``(1 - it / iterations) ** power``, floored at ``min_lr_ratio``.
    """
    it = min(max(int(iteration), 0), schedule.iterations)
    poly = (1.0 - it / schedule.iterations) ** schedule.power
    factor = max(poly, schedule.min_lr_ratio)
    if schedule.warmup_iters > 0 and it < schedule.warmup_iters:
        r = schedule.warmup_ratio
        factor *= r + (1.0 - r) * it / schedule.warmup_iters
    return factor


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Weight decay on conv/linear weights; none on BatchNorm parameters and biases (if asked)."""
    if not cfg.no_decay_norm_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad],
                 "weight_decay": cfg.weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> optim.SGD:
    return optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                     nesterov=cfg.nesterov)


def build_scheduler(optimizer: optim.Optimizer, schedule: ScheduleConfig
                    ) -> optim.lr_scheduler.LambdaLR:
    """Build a LambdaLR over :func:`lr_factor`; step it once per optimizer step."""
    return optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, schedule))
