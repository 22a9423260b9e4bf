"""
The rate actuator: every k-th frame when the narrowest width still breaks the CPU budget.

Width first, then rate, and back in the other order; overload without a budget; priorities
across cameras and the floor ``min_rate_hz``. Pure Python on made-up times and costs: each
step records the costs a camera measured at its widths at that instant, as frames would.
"""

from __future__ import annotations

import math

import pytest

from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.latency import LatencyStore
from slimseg_ros.governor.rate import CameraLoad, choose_strides, floor_stride
from slimseg_ros.widths import TrainedWidths

WS = TrainedWidths((0.25, 0.5, 0.75, 1.0))
#: wall = CPU ms per frame at each width
COST = {0.25: 20.0, 0.5: 30.0, 0.75: 45.0, 1.0: 60.0}
CORES = 2


def make(cameras=None, priorities=None, **overrides) -> Governor:
    cfg = dict(min_dwell_s=2.0, stale_timeout_s=60.0, probe_interval_s=3.0, budget_margin=1.0)
    cfg.update(overrides)
    return Governor(WS, GovernorConfig.from_dict(cfg), cameras=cameras, priorities=priorities)


def measured(now: float, cost: dict[float, float] = COST) -> LatencyStore:
    """Return a store holding a few fresh frames at every width."""
    store = LatencyStore(window_s=3.0, max_frames=10)
    for width in WS:
        for _ in range(3):
            store.record(width, cost[width.value], now, cpu_ms=cost[width.value])
    return store


def share(width: float, hz: float) -> float:
    """Return the CPU share of two cores at ``width`` serving ``hz`` frames a second."""
    return COST[width] / 1000.0 * hz / CORES


def test_width_first_then_rate_and_back_rate_first_then_width() -> None:
    g = make()
    d = g.decide_from(0.0, measured(0.0), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (1.0, 1)
    # 0.25 at 10 Hz is 10% of the cores; a 5% budget needs every 2nd frame
    g.update_cpu_budget(0.05)
    d = g.decide_from(0.1, measured(0.1), frame_rate=10.0, cores=CORES)
    assert d.width.value == 0.25 and d.stride == 2, (d.reason, d.rate_reason)
    assert d.rate_reason.startswith("1 in 2 frames (5.0 of 10.0 Hz): cpu budget")
    assert d.served_cpu_share == pytest.approx(share(0.25, 5.0))
    assert not any("cannot be met" in w for w in d.warnings)  # the rate meets it
    assert d.serving_hz == pytest.approx(5.0)
    # loosened to fit width 0.5 at every frame (15%): first the rate comes back, after dwell...
    g.update_cpu_budget(0.16)
    d = g.decide_from(1.0, measured(1.0), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 2) and d.rate_reason.startswith("dwell")
    assert d.reason.startswith("rate first") and d.decided_by[0] == "rate"
    d = g.decide_from(2.2, measured(2.2), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 1), (d.reason, d.rate_reason)
    # ...then, a dwell after the rate's change, the width
    d = g.decide_from(3.0, measured(3.0), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 1) and d.reason.startswith("dwell")
    d = g.decide_from(4.3, measured(4.3), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.5, 1), d.reason
    # tightened again: width down at once, then the rate (2 Hz at 0.25: 2%)
    g.update_cpu_budget(0.02)
    d = g.decide_from(4.4, measured(4.4), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 5), d.rate_reason


def test_a_rate_is_never_lowered_while_a_narrower_width_would_do() -> None:
    g = make()
    g.update_cpu_budget(0.16)  # 0.5 at every frame fits: the width answers alone
    d = g.decide_from(0.0, measured(0.0), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.5, 1)


def test_overload_without_a_budget_lowers_only_the_rate() -> None:
    g = make()
    # width 1.0 takes 60 ms: 30 frames/s would keep the inference thread 180% busy
    d = g.decide_from(0.0, measured(0.0), frame_rate=30.0, cores=CORES)
    assert (d.width.value, d.stride) == (1.0, 2) and "overload" in d.rate_reason
    # 40 Hz: every 2nd frame still keeps the thread 120% busy; every 3rd, 80%
    g = make()
    d = g.decide_from(0.0, measured(0.0), frame_rate=40.0, cores=CORES)
    assert (d.width.value, d.stride) == (1.0, 3)
    g = make()  # a node that keeps up (0.9 of the thread) serves every frame
    d = g.decide_from(0.0, measured(0.0), frame_rate=15.0, cores=CORES)
    assert (d.width.value, d.stride) == (1.0, 1) and d.rate_reason == "every frame (15.0 Hz)"


def test_a_latency_budget_never_moves_the_rate() -> None:
    g = make()
    g.update_budget(10.0, 0.0)  # below even 0.25's 20 ms
    d = g.decide_from(0.1, measured(0.1), frame_rate=10.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 1)
    assert any("cannot be met" in w for w in d.warnings)


def test_the_floor_holds_and_says_it_is_what_breaks_the_budget() -> None:
    g = make(min_rate_hz=5.0)
    g.update_cpu_budget(0.01)  # 0.25 at 5 Hz would be 5%
    d = g.decide_from(0.0, measured(0.0), frame_rate=20.0, cores=CORES)
    assert (d.width.value, d.stride) == (0.25, 4), d.rate_reason  # 20 / 4 = the 5 Hz floor
    assert "cannot be met at the floor governor.min_rate_hz 5" in d.rate_reason
    assert any("floor" in w for w in d.warnings)
    with pytest.raises(ValueError, match="min_rate_hz"):
        GovernorConfig(min_rate_hz=0.0)
    for bad in (61.0, math.nan, -1.0):
        with pytest.raises(ValueError, match="min_rate_hz"):
            GovernorConfig(min_rate_hz=bad)


def test_lower_priority_gives_way_first_and_equal_cameras_slow_together() -> None:
    g = make(cameras=["front", "rear", "side"], priorities=[2.0, 1.0, 1.0], min_rate_hz=2.0)
    stores = {n: measured(0.0) for n in g.cameras}
    rates = {n: 12.0 for n in g.cameras}
    # the three at 0.25 and every frame: 36% of the cores (and 72% of the inference thread);
    # 20% needs the low ones slowed
    g.update_cpu_budget(0.2)
    ds = g.decide_from_stores(0.0, stores, frame_rates=rates, cores=CORES)
    assert {n: d.width.value for n, d in ds.items()} == {"front": 0.25, "rear": 0.25,
                                                         "side": 0.25}
    assert ds["front"].stride == 1, ds["front"].rate_reason
    # 12% for front; 8% left for two: 4% each = 4 Hz, every 3rd frame
    assert (ds["rear"].stride, ds["side"].stride) == (3, 3), ds["rear"].rate_reason
    assert sum(d.served_cpu_share for d in ds.values()) <= 0.2 + 1e-9
    # tighter than the low cameras' floors allow: they stay at 2 Hz, front gives way too
    g.update_cpu_budget(0.1)
    ds = g.decide_from_stores(0.1, stores, frame_rates=rates, cores=CORES)
    assert (ds["rear"].stride, ds["side"].stride) == (6, 6)  # 2 Hz each: the floor
    assert ds["front"].stride == 2, ds["front"].rate_reason  # 6% + 2% + 2%
    assert sum(d.served_cpu_share for d in ds.values()) <= 0.1 + 1e-9


def test_choose_strides_is_as_small_as_keeps_the_budget() -> None:
    load = CameraLoad(offered_hz=30.0, cpu_ms=20.0, wall_ms=20.0, priority=1.0, narrowest=True)
    for budget, k in ((0.30, 1), (0.29, 2), (0.15, 2), (0.149, 3), (0.1, 3), (0.099, 4)):
        pace = choose_strides({"c": load}, cpu_allowed=budget, cores=2, load_allowed=1.0,
                              min_rate_hz=1.0)["c"]
        assert pace.stride == k, (budget, pace)
    assert floor_stride(30.0, 1.0) == 30 and floor_stride(0.5, 1.0) == 1
    # a floor far below the camera's rate: strides in the tens of thousands are found directly
    fast = CameraLoad(offered_hz=60.0, cpu_ms=20.0, wall_ms=20.0, priority=1.0, narrowest=True)
    pace = choose_strides({"c": fast}, cpu_allowed=1e-4, cores=2, load_allowed=1.0,
                          min_rate_hz=0.001)["c"]
    assert fast.cpu_ms / 1000 * 60.0 / pace.stride / 2 <= 1e-4  # fits, just
    assert fast.cpu_ms / 1000 * 60.0 / (pace.stride - 1) / 2 > 1e-4  # one fewer would not
    assert floor_stride(30.0, 7.0) == 4
