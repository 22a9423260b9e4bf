"""
The one store of what each width costs per frame, read by the governor and shown in diagnostics.

A width's cost is its latency (wall milliseconds) and, where measured, the CPU time it used (CPU
milliseconds, for the CPU-share budget).

A deadline is missed by the slow frames, so the budget compares a high percentile, and it must
react when the machine slows down: only the last ``max_frames`` frames of each width within the
last ``window_s`` seconds count. A width not run for that long has no figure (None), which the
governor treats as "not measured: probe it". Widths are keyed as
:class:`~slimseg_ros.widths.Width` values (by index, no tolerance); a float raises ``TypeError``.
Plain Python (no numpy, no clock reads: times are passed in), so the governor can use it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .ladder import Rung, Step
from ..widths import Width


@dataclass(frozen=True)
class WidthLatency:
    """
    Recent latency of one width, over its last ``frames`` frames.

    ``p50_ms`` and ``pq_ms`` are the median and the ``q``-th percentile (ms) of those frames;
    ``mean_ms`` and ``cpu_ms`` their mean latency and mean CPU time per frame (ms; None where no
    frame had its CPU time measured).
    """

    q: float
    pq_ms: float
    p50_ms: float
    frames: int
    cpu_ms: float | None = None
    mean_ms: float | None = None


def percentile(values: list[float], q: float) -> float:
    """
    Return the ``q``-th percentile of sorted ``values``, ``q`` in 0-100.

    It interpolates linearly between neighbouring values (numpy's default method).
    """
    pos = (len(values) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


class LatencyStore:
    """
    Thread-safe samples per width (latency ms, and CPU ms where measured).

    They are kept ``window_s`` seconds, at most ``max_frames`` per width. The inference thread
    records, the governor reads.
    """

    def __init__(self, window_s: float = 3.0, max_frames: int = 20) -> None:
        if not (isinstance(window_s, (int, float)) and window_s > 0) or not (
                isinstance(max_frames, int) and max_frames >= 1):
            raise ValueError(f"need window_s > 0 and max_frames >= 1, got {window_s!r}, "
                             f"{max_frames!r}")
        self.window_s = float(window_s)
        self.max_frames = int(max_frames)
        self._samples: dict[Step, deque[tuple[float, float, float | None]]] = {}
        self._lock = threading.Lock()

    def record(self, width: Step, ms: float, now: float, cpu_ms: float | None = None) -> None:
        """
        Add one frame of ``ms`` milliseconds at ``width``, measured at time ``now`` (s).

        The frame used ``cpu_ms`` milliseconds of CPU time (None: not measured).
        """
        key = _checked(width)
        value = float(ms)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"latency must be a finite number >= 0 ms, got {ms!r}")
        cpu = None if cpu_ms is None else float(cpu_ms)
        if cpu is not None and not (math.isfinite(cpu) and cpu >= 0.0):
            raise ValueError(f"CPU time must be a finite number >= 0 ms, got {cpu_ms!r}")
        with self._lock:
            self._samples.setdefault(key, deque(maxlen=self.max_frames)).append(
                (now, value, cpu))

    def reset(self, width: Step | None = None) -> None:
        """Forget the frames of ``width`` (all when None), so it is judged on new frames only."""
        key = None if width is None else _checked(width)
        with self._lock:
            if key is None:
                self._samples.clear()
            else:
                self._samples.pop(key, None)

    def _recent(self, width: Step, now: float) -> list[tuple[float, float | None]]:
        samples = self._samples.get(width, ())
        return [(ms, cpu) for t, ms, cpu in samples if now - t <= self.window_s]

    def percentile(self, width: Step, q: float, now: float) -> float | None:
        """
        Return the ``q``-th percentile, ``q`` in 0-100, of the recent frames of ``width``.

        None when ``width`` has no recent frame.
        """
        key = _checked(width)
        with self._lock:
            values = sorted(ms for ms, _ in self._recent(key, now))
        return percentile(values, q) if values else None

    def recent(self, widths: Iterable[Step], q: float, now: float
               ) -> dict[Step, WidthLatency | None]:
        """Every width's recent figures (None: no recent frame), read at once."""
        widths = [_checked(w) for w in widths]
        with self._lock:
            samples = {w: self._recent(w, now) for w in widths}
        return {w: _figures(v, float(q)) if v else None for w, v in samples.items()}


def _checked(width: object) -> Step:
    """Return ``width`` if it is a :class:`Width` or a rung; ``TypeError`` otherwise (floats)."""
    if not isinstance(width, (Width, Rung)):
        raise TypeError(f"the latency store is keyed by Width (or ladder rung), got {width!r}: "
                        f"turn a float into a Width once at the edge with TrainedWidths.snap "
                        f"(or .exact)")
    return width


def _figures(samples: list[tuple[float, float | None]], q: float) -> WidthLatency:
    values = sorted(ms for ms, _ in samples)
    cpu = [c for _, c in samples if c is not None]
    return WidthLatency(q=q, pq_ms=percentile(values, q), p50_ms=percentile(values, 50.0),
                        frames=len(values), cpu_ms=sum(cpu) / len(cpu) if cpu else None,
                        mean_ms=sum(values) / len(values))
