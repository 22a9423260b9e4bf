"""
Process plumbing around the training loop: process group, device, stop signals, log output.

Kept apart from ``train`` so the loop reads as the run's steps; these helpers know nothing of
the network or the data. SIGTERM / Ctrl-C only raise a flag that the loop checks at iteration
boundaries (so ``last.pt`` is always whole), and DataLoader workers ignore both signals.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import ConfigError


@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_pref: str) -> DistInfo:
    """Join the process group described by torchrun's RANK/WORLD_SIZE/LOCAL_RANK (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and device_pref != "cpu"
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def pick_device(pref: str, dinfo: DistInfo) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda" and dinfo.enabled:
        return torch.device("cuda", dinfo.local_rank)
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device asks for CUDA but no CUDA device is available")
    return device


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """
    Make a DataLoader worker leave SIGTERM/SIGINT to the main process (``worker_init_fn``).

    A SIGTERM sent to the whole process group (systemd, a cluster scheduler, ``kill -- -PGID``)
    would otherwise kill the workers first, and the main process would die mid-iteration with
    "DataLoader worker ... killed" instead of stopping at the next iteration boundary with a
    saved ``last.pt``. Workers still end when the main process ends (PyTorch's watchdog).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopFlag:
    """SIGTERM / first Ctrl-C ask the loop to stop at the next iteration boundary."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def stop_requested(stop: StopFlag, dinfo: DistInfo, device: torch.device) -> str | None:
    """
    Return the signal that asked this process to stop.

    "peer" for another process's (DDP).
    """
    requested = stop.requested
    if dinfo.enabled:
        flag = torch.tensor([1.0 if requested else 0.0], device=device)
        dist.all_reduce(flag)
        requested = requested or ("peer" if flag.item() > 0 else None)
    return requested


def log(message: str) -> None:
    try:
        from tqdm import tqdm
        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover
        print(message, file=sys.stderr, flush=True)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
