"""
The governor's second actuator: serve every k-th frame of a camera.

Widths are the first actuator. When even the narrowest width breaks the CPU-share budget, or
frames arrive faster than the node serves them (overload), a camera is served every ``k``-th
frame (its *stride*), evenly spaced. This module chooses the strides of one round; the governor
(:mod:`.decision`) applies dwell to rate increases and holds a camera's width at the narrowest
while the CPU budget has its stride above 1, so the rate comes back before the width widens.

Rules, for the cameras with a fresh frame and measured costs at their decided widths:

* A camera's predicted CPU share at stride ``k`` is its CPU seconds per frame times the frames
  per second it serves, ``min(offered / k, 1 / latency)``, over the usable cores; the round's
  total must fit ``cpu_budget x budget_margin``. Only cameras already at the narrowest width
  give way to the CPU budget (width first).
* The inference thread is shared: the round's *load*, the sum over cameras of ``offered / k x
  latency``, must fit the thread (``load_allowed``, 1.0 in the governor: a node that keeps up
  serves every frame); beyond it the node is overloaded and every camera may give way, at any
  width (with no budget set, overload lowers only the rate).
* Lower priority gives way first. Cameras of equal priority are served at a common rate (the
  largest that fits, each camera's stride rounded up from it), so the one served fastest gives
  way first and equal cameras slow down together. No camera goes below ``min_rate_hz`` (its
  *floor*): when the floors are what break the budget, the reason says so.
* ``k`` is as small as keeps the round within both limits.

Plain Python, no clock reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CameraLoad", "Pace", "choose_strides", "floor_stride", "served_hz"]


@dataclass(frozen=True)
class CameraLoad:
    """
    What one camera costs per frame at its decided width, and how fast its frames arrive.

    ``offered_hz`` is the arrival rate (frames/s), ``cpu_ms`` and ``wall_ms`` the mean CPU and
    wall milliseconds per inferred frame at the decided width; ``narrowest``: the width is the
    narrowest (the width actuator is spent).
    """

    offered_hz: float
    cpu_ms: float
    wall_ms: float
    priority: float
    narrowest: bool


@dataclass(frozen=True)
class Pace:
    """One camera's serving rate: every ``stride``-th frame, why, and what set it."""

    stride: int
    reason: str
    by_budget: bool = False  # the CPU budget needs stride > 1 (the width waits for the rate)
    at_floor: bool = False   # the stride is the floor's and the budget is still broken


def served_hz(load: CameraLoad, stride: int) -> float:
    """Return the frames per second served at ``stride``: at most one per frame's latency."""
    hz = load.offered_hz / stride
    return min(hz, 1000.0 / load.wall_ms) if load.wall_ms > 0.0 else hz


def floor_stride(offered_hz: float, min_rate_hz: float) -> int:
    """Return the largest stride that still serves ``min_rate_hz`` (1 when frames are slower)."""
    if not (offered_hz > min_rate_hz > 0.0) or not math.isfinite(offered_hz):
        return 1
    return max(1, int(math.floor(offered_hz / min_rate_hz + 1e-9)))


def choose_strides(loads: Mapping[str, CameraLoad], *, cpu_allowed: float | None, cores: int,
                   load_allowed: float, min_rate_hz: float) -> dict[str, Pace]:
    """
    Return every camera's stride for one round (see the module docstring for the rules).

    ``cpu_allowed`` is the CPU budget times the margin (a fraction of the usable cores; None:
    no budget), ``load_allowed`` the share of the one inference thread frames may keep busy.
    """
    n_cores = max(1, int(cores))
    stride = {name: 1 for name in loads}
    ceiling = {name: floor_stride(load.offered_hz, min_rate_hz) for name, load in loads.items()}

    def cpu_total() -> float:
        return sum(load.cpu_ms / 1000.0 * served_hz(load, stride[n]) / n_cores
                   for n, load in loads.items())

    def busy() -> float:
        return sum(load.offered_hz / stride[n] * load.wall_ms / 1000.0
                   for n, load in loads.items())

    def cpu_over() -> bool:
        return cpu_allowed is not None and cpu_total() > cpu_allowed

    def overloaded() -> bool:
        return busy() > load_allowed

    by_budget: set[str] = set()
    for priority in sorted({load.priority for load in loads.values()}):  # lowest first
        if not (cpu_over() or overloaded()):
            break
        for_budget = cpu_over()
        group = [n for n, load in loads.items() if load.priority == priority
                 and (overloaded() or load.narrowest)]
        if not group:
            continue

        def serve_at(level: float) -> None:
            """Serve every camera of the group at most ``level`` frames/s (above its floor)."""
            for n in group:
                k = math.ceil(loads[n].offered_hz / level - 1e-9) if level > 0 else ceiling[n]
                stride[n] = min(max(1, k), ceiling[n])

        # The largest common serving rate that keeps the round within its limits: the camera
        # served fastest gives way first, so cameras of one priority slow down together.
        hi = max(loads[n].offered_hz for n in group)
        serve_at(0.0)
        if cpu_over() or overloaded():
            continue  # every camera of the group at its floor: the next priority gives way
        lo = 0.0
        for _ in range(60):
            mid = (lo + hi) / 2.0
            serve_at(mid)
            if cpu_over() or overloaded():
                hi = mid
            else:
                lo = mid
        serve_at(lo)
        if for_budget:
            by_budget.update(n for n in group if stride[n] > 1)
    unmet = ("the cpu budget" if cpu_over() else "overload" if overloaded() else "")
    out = {}
    for name, load in loads.items():
        k = stride[name]
        spent = k == ceiling[name] and (load.narrowest or overloaded())
        floor = bool(unmet) and spent
        out[name] = Pace(k, _reason(load, k, name in by_budget, unmet if floor else "",
                                    min_rate_hz),
                         by_budget=name in by_budget and k > 1, at_floor=floor)
    return out


def _reason(load: CameraLoad, k: int, by_budget: bool, unmet: str, min_rate_hz: float) -> str:
    """Say how often a camera is served and what decided it (``unmet``: what the floor breaks)."""
    text = (f"every frame ({load.offered_hz:.1f} Hz)" if k == 1 else
            f"1 in {k} frames ({load.offered_hz / k:.1f} of {load.offered_hz:.1f} Hz)")
    if unmet:
        return f"{text}: {unmet} cannot be met at the floor governor.min_rate_hz {min_rate_hz:g}"
    if k == 1:
        return text
    return f"{text}: {'cpu budget' if by_budget else 'overload'}"
