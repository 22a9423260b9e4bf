"""
Time and cost as arguments of the node core: a steady clock and an inference meter.

The core never reads a clock itself. Policy time (latency windows, dwell, stale inputs, frame
rates) comes from a steady monotonic clock the node passes in (``time.monotonic``); only header
ages use the ROS clock, which follows ``use_sim_time`` and jumps when a bag loops. Each
inference's wall and CPU time comes from a meter: the node passes :class:`ProcessMeter`, tests
pass a scripted one and a fake clock, so the policy can be tested without real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: Seconds on a steady clock (never jumps back); the node passes ``time.monotonic``.
Clock = Callable[[], float]


@dataclass(frozen=True)
class Cost:
    """What one inference cost: wall milliseconds and CPU milliseconds (None: not measured)."""

    wall_ms: float
    cpu_ms: float | None = None


class InferenceMeter(Protocol):
    """Run one inference and say what it cost."""

    def measure(self, run: Callable[[], T], width: Any) -> tuple[T, Cost]:
        """Return ``run()``'s result and its cost; ``width`` is what it ran at."""


class ProcessMeter:
    """
    The real meter: wall time of the call and the process's CPU time over it.

    CPU time is the process's (``time.process_time``), not the calling thread's: the runtimes
    run the network on their own thread pools (torch intra-op threads, OpenVINO and ONNX Runtime
    workers), which the calling thread's clock misses, so a network on four threads would look a
    quarter as costly. What other threads do meanwhile (callbacks dropping a frame into its
    slot) is counted too: small, and part of serving frames.
    """

    def measure(self, run: Callable[[], T], width: Any) -> tuple[T, Cost]:
        """Return ``run()``'s result and its wall and process CPU milliseconds."""
        cpu, start = time.process_time(), time.perf_counter()
        result = run()
        wall_ms = (time.perf_counter() - start) * 1000.0
        return result, Cost(wall_ms, (time.process_time() - cpu) * 1000.0)
