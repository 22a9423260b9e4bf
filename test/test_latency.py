"""
The latency store: a time and frame window per width, percentiles as numpy computes them.

Also resets, bad samples, keys that are trained widths (never floats) and concurrent writers.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from slimseg_ros.governor.latency import LatencyStore, WidthLatency, percentile
from slimseg_ros.widths import TrainedWidths

WS = TrainedWidths((0.25, 0.5, 0.75, 1.0))
W25, W50, W100 = WS.exact(0.25), WS.exact(0.5), WS.exact(1.0)


def test_store_forgets_old_and_excess_frames() -> None:
    store = LatencyStore(window_s=2.0, max_frames=3)
    for t, ms in [(0.0, 100.0), (1.0, 10.0), (1.5, 20.0), (1.8, 30.0)]:
        store.record(W50, ms, now=t)
    assert store.percentile(W50, 100, now=2.0) == 30.0   # 100 ms fell out (max 3 frames)
    assert store.percentile(W50, 50, now=2.0) == 20.0
    assert store.percentile(W50, 0, now=3.2) == 20.0     # 10 ms (t=1.0) is older than 2 s
    assert store.percentile(W50, 90, now=10.0) is None   # all stale
    assert store.recent([W25, W50], 90, now=2.0) == {
        W25: None, W50: WidthLatency(q=90.0, pq_ms=pytest.approx(28.0), p50_ms=20.0, frames=3,
                                     mean_ms=20.0)}


def test_cpu_time_per_frame_is_kept_beside_the_latency() -> None:
    """
    One store for both budgets: CPU time per frame is kept beside the latency.

    The CPU-share budget reads the mean CPU time of the same recent frames whose latency the
    millisecond budget reads.
    """
    store = LatencyStore(window_s=2.0, max_frames=3)
    store.record(W100, 10.0, now=0.0, cpu_ms=99.0)  # pushed out by the frame limit
    for t, ms, cpu in [(0.5, 10.0, 15.0), (1.0, 20.0, None), (1.5, 30.0, 25.0)]:
        store.record(W100, ms, now=t, cpu_ms=cpu)
    store.record(W50, 5.0, now=1.5)  # a frame without a CPU figure
    got = store.recent([W50, W100], 50, now=2.0)
    assert got[W100].cpu_ms == 20.0 and got[W100].mean_ms == 20.0 and got[W100].frames == 3
    assert got[W50].cpu_ms is None and got[W50].mean_ms == 5.0
    # only the last frame is recent
    assert store.recent([W100], 50, now=3.1)[W100].cpu_ms == 25.0
    store.reset(W100)
    assert store.recent([W100], 50, now=2.0) == {W100: None}
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="CPU time must be a finite number >= 0 ms"):
            store.record(W50, 1.0, now=0.0, cpu_ms=bad)


@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 90.0, 99.0, 100.0])
def test_percentile_is_numpys_linear_interpolation(q: float) -> None:
    values = sorted(np.random.default_rng(1).uniform(1.0, 50.0, 17).tolist())
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_reset_drops_one_width_or_all() -> None:
    store = LatencyStore(window_s=60.0, max_frames=10)
    for w in (W25, W50):
        store.record(w, 5.0, now=0.0)
    store.reset(WS.snap(0.5000000001))  # float noise is snapped at the edge, once
    assert store.percentile(W50, 90, now=0.0) is None
    assert store.percentile(W25, 90, now=0.0) == 5.0
    store.reset()
    assert store.recent([W25, W50], 90, now=0.0) == {W25: None, W50: None}


def test_keys_are_widths_and_a_float_fails_loudly() -> None:
    store = LatencyStore(window_s=60.0, max_frames=10)
    store.record(W50, 5.0, now=0.0)
    same = TrainedWidths([1.0, 0.75, 0.5, 0.25]).exact(0.5)  # the same model's width
    assert store.percentile(same, 50, now=0.0) == 5.0
    for bad in (0.5, 0.5000000001, 1, None, "0.5", math.nan):
        with pytest.raises(TypeError, match="keyed by Width.*TrainedWidths.snap"):
            store.record(bad, 1.0, now=0.0)
        with pytest.raises(TypeError, match="keyed by Width"):
            store.percentile(bad, 50, now=0.0)
        with pytest.raises(TypeError, match="keyed by Width"):
            store.recent([W50, bad], 50, now=0.0)
        if bad is not None:  # None: reset all
            with pytest.raises(TypeError, match="keyed by Width"):
                store.reset(bad)
    assert store.recent([W50], 50, now=0.0)[W50].frames == 1  # nothing recorded or dropped


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_samples_are_rejected(bad: float) -> None:
    store = LatencyStore()
    with pytest.raises(ValueError, match="finite number >= 0 ms"):
        store.record(W50, bad, now=0.0)
    assert store.percentile(W50, 50, now=0.0) is None
    with pytest.raises(ValueError, match="window_s"):
        LatencyStore(window_s=0.0)
    with pytest.raises(ValueError, match="max_frames"):
        LatencyStore(max_frames=0)


def test_concurrent_writers_and_readers() -> None:
    store = LatencyStore(window_s=60.0, max_frames=1000)

    def worker(w) -> None:
        for i in range(300):
            store.record(w, float(i % 7), now=0.0)
            store.recent([W25, W100], 90, now=0.0)

    threads = [threading.Thread(target=worker, args=(w,)) for w in (W25, W25, W100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recent = store.recent([W25, W100], 90, now=0.0)
    assert recent[W25].frames == 600 and recent[W100].frames == 300
