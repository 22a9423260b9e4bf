"""
The resumable training state (``last.pt``): what it holds, how it is read back and checked.

Kept apart from ``train`` so the file format lives in one place: the weights, optimizer,
scheduler and AMP scaler, the iteration, the best score and the RNG states (stored as
tensors/lists so the file loads with ``weights_only=True``), plus the resolved config that a
resumed run must match.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from slimseg_ros.models.checkpoint import safe_torch_load
from slimseg_ros.models.config import model_config_differences

from .config import ConfigError, TrainConfig
from .optim import lr_factor

STATE_FORMAT = "slimseg_ros/train-state"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def train_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                scaler: Any, iteration: int, best: dict[str, Any], cfg: TrainConfig
                ) -> dict[str, Any]:
    return {
        "format": STATE_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "iteration": iteration,
        "best": best,
        "rng": rng_state(),
        "config": cfg.to_dict(),
    }


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path} is not a slimseg training state (last.pt); deployable model "
                          f"checkpoints cannot be resumed")
    return state


def model_differences(cfg: TrainConfig, stored: dict[str, Any]) -> str:
    """Compare this run's network with a stored model config (``model_config_differences``)."""
    return model_config_differences(cfg.model.to_dict(), stored)


def check_same_model(cfg: TrainConfig, state: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse to resume a run whose network differs from the one stored in ``path``."""
    diff = model_differences(cfg, state["config"]["model"])
    if diff:
        raise ConfigError(f"cannot resume from {path}: its model differs in {diff}")


def restore_state(path: str | os.PathLike, cfg: TrainConfig, model: nn.Module,
                  optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any
                  ) -> tuple[int, dict[str, Any]]:
    """
    Load a ``last.pt`` into the run's parts and RNGs; returns (iteration, best score).

    Called before the DDP wrapper is made, which then broadcasts the restored weights.
    """
    state = load_train_state(path)
    check_same_model(cfg, state, path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    iteration = int(state["iteration"])
    set_rng_state(state["rng"])
    # the LR is a pure function of the iteration: recompute it (the schedule may have been
    # overridden on the command line)
    scheduler.base_lrs = [cfg.optim.lr] * len(optimizer.param_groups)
    for group in optimizer.param_groups:
        group["lr"] = cfg.optim.lr * lr_factor(iteration, cfg.schedule)
    return iteration, dict(state["best"])
