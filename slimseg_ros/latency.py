"""Per-width latency statistics (milliseconds): an EWMA plus percentiles over a recent window.

The governor needs two views of the same measurements: a smooth estimate that reacts within a few
frames (EWMA) and the tail over the last few seconds (p90 over the last ``window`` frames), because
a deadline is missed by the slow frames, not by the average ones. Widths are keys rounded to 6
decimals so that ``0.5`` and ``0.5000000001`` land in the same bucket.
"""

from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np


def _key(width: float) -> float:
    w = float(width)
    if not math.isfinite(w):
        raise ValueError(f"width must be a finite number, got {width!r}")
    return round(w, 6)


class _Series:
    __slots__ = ("ewma", "count", "recent")

    def __init__(self, window: int) -> None:
        self.ewma: float | None = None
        self.count = 0
        self.recent: deque[float] = deque(maxlen=window)


class LatencyStats:
    """Thread-safe latency bookkeeping per width; all values in milliseconds.

    ``alpha`` is the EWMA weight of a new sample (0.2: about the last 10 frames matter);
    ``window`` is how many recent samples the percentiles look at.
    """

    def __init__(self, alpha: float = 0.2, window: int = 50) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.alpha = float(alpha)
        self.window = int(window)
        self._series: dict[float, _Series] = {}
        self._lock = threading.Lock()

    def record(self, width: float, ms: float) -> None:
        """Add one measurement of ``ms`` milliseconds taken at ``width``."""
        value = float(ms)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"latency must be a finite number >= 0 ms, got {ms!r}")
        key = _key(width)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(self.window)
            series.ewma = value if series.ewma is None else (
                self.alpha * value + (1.0 - self.alpha) * series.ewma)
            series.count += 1
            series.recent.append(value)

    def ewma(self, width: float) -> float | None:
        """Exponentially weighted mean (ms) at ``width``; None before the first sample."""
        with self._lock:
            series = self._series.get(_key(width))
            return None if series is None else series.ewma

    def percentile(self, width: float, q: float) -> float | None:
        """``q``-th percentile (q in percent, 0..100 like numpy) of the last ``window`` samples."""
        q = float(q)
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q must be in [0, 100] (percent), got {q}")
        with self._lock:
            series = self._series.get(_key(width))
            if series is None or not series.recent:
                return None
            values = list(series.recent)
        return float(np.percentile(values, q))

    def count(self, width: float) -> int:
        """Number of samples ever recorded at ``width`` (not limited to the window)."""
        with self._lock:
            series = self._series.get(_key(width))
            return 0 if series is None else series.count

    def widths(self) -> tuple[float, ...]:
        """Widths that have at least one sample, ascending."""
        with self._lock:
            return tuple(sorted(self._series))

    def reset(self, width: float | None = None) -> None:
        """Forget the samples of ``width`` (all when None), e.g. after a resolution change."""
        with self._lock:
            if width is None:
                self._series.clear()
            else:
                self._series.pop(_key(width), None)

    def snapshot(self) -> dict[float, dict[str, float]]:
        """``{width: {"ewma", "p50", "p90", "count"}}`` for every width with samples (ms)."""
        with self._lock:
            copied = {w: (s.ewma, list(s.recent), s.count) for w, s in self._series.items()}
        out: dict[float, dict[str, float]] = {}
        for w in sorted(copied):
            ewma, recent, count = copied[w]
            p50, p90 = np.percentile(recent, [50.0, 90.0]) if recent else (math.nan, math.nan)
            out[w] = {"ewma": float(ewma) if ewma is not None else math.nan,
                      "p50": float(p50), "p90": float(p90), "count": float(count)}
        return out
