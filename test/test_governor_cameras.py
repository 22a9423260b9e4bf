"""
The governor with several cameras sharing one set of weights.

One round over the cameras with a fresh frame must fit the budget, lower priorities slim first
and widen last; also per-camera requests, dwell and probes, idle cameras. Pure Python, times
and latencies are made up.
"""

from __future__ import annotations

import itertools

import pytest

from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.latency import LatencyStore
from slimseg_ros.widths import TrainedWidths, Width

WS = TrainedWidths((0.25, 0.5, 0.75, 1.0))


def w(value: float) -> Width:
    """Return the trained width ``value`` names (tests write widths as fractions)."""
    return WS.exact(value)


def keyed(figures: dict[float, float | None]) -> dict[Width, float | None]:
    """Return ``figures`` keyed by trained width instead of by fraction."""
    return {w(k): v for k, v in figures.items()}


COST = keyed({0.25: 5.0, 0.5: 10.0, 0.75: 20.0, 1.0: 30.0})  # ms per frame at each width
NONE = {x: None for x in WS}


def make(cameras=("front", "left", "right"), priorities=None, **overrides) -> Governor:
    cfg = dict(min_dwell_s=0.0, stale_timeout_s=10.0, probe_interval_s=3.0)
    cfg.update(overrides)
    return Governor(WS, GovernorConfig.from_dict(cfg), cameras=cameras,
                    priorities=priorities)


def widths(decisions) -> dict[str, float]:
    """Return each camera's width as a fraction (checking it is a trained Width)."""
    assert all(isinstance(d.width, Width) and d.width in WS for d in decisions.values())
    return {name: d.width.value for name, d in decisions.items()}


def round_cost(decisions, tables) -> float:
    return sum(tables[name][d.width] for name, d in decisions.items())


def test_one_named_camera_decides_exactly_like_the_single_camera_governor():
    single = make(cameras=None, min_dwell_s=1.0)
    named = make(cameras=("front",), min_dwell_s=1.0)
    script = [(0.0, 40.0, {1.0: 50.0}), (0.1, 40.0, {0.75: 45.0}), (0.2, 40.0, {0.5: 20.0}),
              (3.5, 40.0, {0.5: 8.0}), (3.6, 40.0, {0.75: None}), (3.7, 40.0, {0.75: 15.0}),
              (7.0, 10.0, {}), (7.1, 0.0, {})]
    lat = dict(NONE)
    for now, budget, update in script:
        lat.update(keyed(update))
        for g in (single, named):
            g.update_budget(budget, now)
        a = single.decide(now, lat)
        b = named.decide_cameras(now, {"front": lat})["front"]
        assert a == b, (now, a, b)
    assert single.current == named.current_of("front")


def test_budget_is_one_round_over_the_cameras_and_low_priority_slims_first():
    g = make(priorities=[3.0, 2.0, 1.0])
    tables = {name: COST for name in g.cameras}
    expected = [  # budget (margin 0.9) -> widths front, left, right
        (200.0, (1.0, 1.0, 1.0)),   # 90 fits 180
        (90.0, (1.0, 1.0, 0.75)),   # allowance 81: right slims first
        (75.0, (1.0, 1.0, 0.25)),   # 67.5: right to the floor, front and left untouched
        (60.0, (1.0, 0.5, 0.5)),    # 54: then left (front 30 + right's floor 5 leave it 19)
        (30.0, (0.5, 0.5, 0.25)),   # 27: front slims only as far as the others' floors force
        (10.0, (0.25, 0.25, 0.25)),  # 9 < 15: cannot be met, everyone at the floor
    ]
    for i, (budget, want) in enumerate(expected):
        g.update_budget(budget, float(i))
        d = g.decide_cameras(float(i), tables)
        assert tuple(widths(d).values()) == want, (budget, d)
        if budget > 10.0:
            assert round_cost(d, tables) <= budget * 0.9
            assert not any("cannot be met" in w for dd in d.values() for w in dd.warnings)
    assert all(any("cannot be met" in w for w in dd.warnings) for dd in d.values())
    assert d["front"].reason.startswith("budget 10ms, share")


def test_a_reason_per_camera_names_its_share():
    g = make(priorities={"front": 2.0, "left": 1.0, "right": 1.0})
    g.update_budget(90.0, 0.0)  # 81: front 30, then left and right split 51 -> 25.5 each
    d = g.decide_cameras(0.0, {name: COST for name in g.cameras})
    assert widths(d) == {"front": 1.0, "left": 0.75, "right": 1.0}
    assert d["front"].reason.startswith("request 1") and d["front"].caps["budget"] == w(1.0)
    assert d["left"].reason == ("budget 90ms, share 25.5ms: p90 at 0.75 = 20.0ms <= 25.5ms "
                                "(1: 30.0ms)")
    # what left leaves unused (5.5 ms) goes to right, the next of the same priority
    assert "budget 90ms, share 31.0ms: p90 at 1 = 30.0ms" in d["right"].reason


@pytest.mark.parametrize("budget", [20.0, 35.0, 50.0, 70.0, 90.0, 120.0])
def test_equal_priorities_slim_together_and_the_round_fits(budget):
    g = make()
    tables = {"front": COST, "left": COST, "right": {x: 2 * v for x, v in COST.items()}}
    g.update_budget(budget, 0.0)
    d = g.decide_cameras(0.0, tables)
    if budget * 0.9 < 20.0:  # not even every camera's floor fits: all at the floor
        assert set(widths(d).values()) == {0.25}
        return
    assert round_cost(d, tables) <= budget * 0.9
    w = widths(d)
    assert abs(w["front"] - w["left"]) <= 0.25  # the same frames: at most one step apart


def test_priorities_validated_and_changeable():
    with pytest.raises(ValueError, match="2 value.*3 camera"):
        make(priorities=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        make(priorities=[1.0, float("inf"), 2.0])
    with pytest.raises(ValueError, match="name"):
        make(priorities={"front": 1.0})
    with pytest.raises(ValueError, match="repeat"):
        make(cameras=("front", "front"))
    g = make(priorities=[3.0, 2.0, 1.0])
    with pytest.raises(ValueError):
        g.set_priorities([1.0])
    assert g.priorities == {"front": 3.0, "left": 2.0, "right": 1.0}  # unchanged
    g.update_budget(75.0, 0.0)
    tables = {name: COST for name in g.cameras}
    assert widths(g.decide_cameras(0.0, tables)) == {"front": 1.0, "left": 1.0, "right": 0.25}
    g.set_priorities([1.0, 2.0, 3.0])  # reversed: now front slims first
    assert widths(g.decide_cameras(0.1, tables)) == {"front": 0.25, "left": 1.0, "right": 1.0}


def test_a_camera_without_a_fresh_frame_costs_nothing_and_holds_its_width():
    g = make(priorities=[3.0, 2.0, 1.0])
    tables = {name: COST for name in g.cameras}
    g.update_budget(60.0, 0.0)
    assert widths(g.decide_cameras(0.0, tables)) == {"front": 1.0, "left": 0.5, "right": 0.5}
    d = g.decide_cameras(1.0, tables, active={"front", "right"})  # left stopped publishing
    assert widths(d) == {"front": 1.0, "left": 0.5, "right": 0.75}  # its share went to right
    assert d["left"].reason == "budget 60ms: no recent frame, holding 0.5"
    d = g.decide_cameras(2.0, tables)  # left is back: served again with a share
    assert "share" in d["left"].reason  # (it probes 0.75, a width it has never run)
    d = g.decide_cameras(2.1, tables)  # 0.75 measured too slow for its share: the round fits
    assert widths(d) == {"front": 1.0, "left": 0.5, "right": 0.5}
    assert round_cost(d, tables) <= 54.0


def test_a_single_active_camera_gets_the_whole_allowance():
    g = make(priorities=[1.0, 2.0, 3.0])
    g.update_budget(40.0, 0.0)
    d = g.decide_cameras(0.0, {name: COST for name in g.cameras}, active={"front"})
    assert d["front"].width == w(1.0) and d["front"].reason.startswith("request 1")
    assert "share" not in d["front"].reason  # alone in the round: the whole allowance


def test_camera_requests_cap_one_camera_and_the_shared_request_caps_all():
    g = make()
    assert g.request(g.snap(0.6), camera="left") == w(0.5)
    d = g.decide_cameras(0.0, {})
    assert widths(d) == {"front": 1.0, "left": 0.5, "right": 1.0}
    assert d["left"].reason == "camera request 0.5" and d["front"].reason == "request 1"
    g.request(w(0.75))  # shared: all cameras, left stays at its own lower request
    d = g.decide_cameras(0.1, {})
    assert widths(d) == {"front": 0.75, "left": 0.5, "right": 0.75}
    assert g.requested_for("left") == w(0.5) and g.requested_for("front") == w(0.75)
    assert g.requested == w(0.75) and g.current_of("left") == w(0.5)
    g.request(w(0.25))
    assert set(widths(g.decide_cameras(0.2, {})).values()) == {0.25}
    assert d["front"].reason == "request 0.75"
    with pytest.raises(ValueError, match="unknown camera 'rear'"):
        g.request(w(0.5), camera="rear")
    with pytest.raises(TypeError, match="Governor.snap"):
        g.request(0.5, camera="left")
    with pytest.raises(ValueError, match="unknown camera"):
        g.decide_cameras(0.3, {"rear": COST})
    with pytest.raises(ValueError, match="name the camera"):
        g.decide(0.3, COST)
    with pytest.raises(ValueError, match="name the camera"):
        _ = g.current


def test_a_request_taken_by_a_cheap_camera_leaves_its_share_to_the_others():
    g = make(priorities=[3.0, 2.0, 1.0])
    tables = {name: COST for name in g.cameras}
    g.request(w(0.25), camera="front")  # the top camera asks for little: it costs 5 ms
    g.update_budget(75.0, 0.0)       # 67.5 ms: 5 + 30 + 30, both others at full width
    d = g.decide_cameras(0.0, tables)
    assert widths(d) == {"front": 0.25, "left": 1.0, "right": 1.0}


def test_shared_caps_apply_to_every_camera():
    g = make()
    g.update_battery(12.0, False, 0.0)
    g.update_temperature(85.0, 0.0)
    d = g.decide_cameras(0.0, {})
    assert set(widths(d).values()) == {0.25}
    assert all(dd.reason == "battery 12% <= 15%" and dd.caps["thermal"] == w(0.5)
               for dd in d.values())
    d = g.decide_cameras(20.0, {})  # both inputs stale: every camera says so
    assert all(len(dd.warnings) == 2 for dd in d.values())


def test_dwell_and_probes_are_per_camera():
    g = make(cameras=("front", "left"), priorities=[2.0, 1.0], min_dwell_s=2.0,
             probe_interval_s=1.0)
    stores = {n: LatencyStore(window_s=60.0, max_frames=20) for n in g.cameras}
    for name in g.cameras:
        for x in WS:
            stores[name].record(x, COST[x], now=0.0)
    g.update_budget(40.0, 0.0)  # 36: front 30 at 1.0 leaves 6: left 5 at 0.25
    d = g.decide_from_stores(0.0, stores)
    assert widths(d) == {"front": 1.0, "left": 0.25}
    g.request(w(0.5), camera="front")  # front steps down at once; only front's request applies
    d = g.decide_from_stores(0.5, stores)
    assert widths(d)["front"] == 0.5
    g.request(w(1.0), camera="front")
    g.update_battery(40.0, False, 0.6)  # caps everyone at 0.75
    d = g.decide_from_stores(0.6, stores)
    assert widths(d) == {"front": 0.75, "left": 0.25}
    g.update_battery(100.0, True, 1.0)  # cap gone: front's raise waits for front's dwell
    d = g.decide_from_stores(1.0, stores)
    assert d["front"].width == w(0.75) and d["front"].reason.startswith("dwell: holding 0.75")
    assert d["left"].width == w(0.25)  # its own dwell (it changed at 0.0) holds its raise
    # left's wider widths measured slow long ago (other load): forgotten after a probe
    # interval, then probed one step at a time; the probe resets only left's store
    for x in (0.5, 0.75, 1.0):
        stores["left"].record(w(x), 99.0, now=0.0)
    g.request(w(0.25), camera="front")  # front costs 5 ms: left's share is 31 ms
    d = g.decide_from_stores(3.0, stores)
    assert d["left"].probing and d["left"].width == w(0.5) and "probing 0.5" in d["left"].reason
    assert "share 31.0ms" in d["left"].reason
    assert stores["left"].percentile(w(0.5), 90, now=3.0) is None
    assert stores["front"].percentile(w(0.5), 90, now=3.0) == COST[w(0.5)]  # front's kept
    d = g.decide_from_stores(3.1, stores)
    assert d["left"].width == w(0.5) and "waiting for a measurement at 0.5" in d["left"].reason


def test_highest_priority_is_never_narrower_when_asked_the_same():
    tables = {"a": COST, "b": COST, "c": COST}
    for budget, prio in itertools.product([15.0, 30.0, 45.0, 60.0, 80.0],
                                          itertools.permutations([1.0, 2.0, 3.0])):
        g = make(cameras=("a", "b", "c"), priorities=prio)
        g.update_budget(budget, 0.0)
        d = g.decide_cameras(0.0, tables)
        ranked = sorted(g.cameras, key=lambda n: -g.priorities[n])
        top = d[ranked[0]].width
        assert all(top >= d[n].width for n in ranked[1:]), (budget, prio, d)
        if 15.0 <= budget * 0.9:
            assert round_cost(d, tables) <= budget * 0.9


# ---------------------------------------------------------------------------------- CPU budget
SHARE = {x: v / 100.0 for x, v in COST.items()}  # of the usable cores: 5 %, 10 %, 20 %, 30 %


def test_cpu_shares_add_over_the_cameras_and_low_priority_slims_first():
    g = make(priorities=[3.0, 2.0, 1.0])
    shares = {name: SHARE for name in g.cameras}
    expected = [  # CPU budget (margin 0.9) -> widths front, left, right
        (1.0, (1.0, 1.0, 1.0)),     # 90 % fits 90 %
        (0.9, (1.0, 1.0, 0.75)),    # 81 %: right slims first
        (0.75, (1.0, 1.0, 0.25)),   # 67.5 %: right to the floor
        (0.6, (1.0, 0.5, 0.5)),     # 54 %: then left
        (0.3, (0.5, 0.5, 0.25)),    # 27 %: front only as far as the others' floors force
        (0.1, (0.25, 0.25, 0.25)),  # 9 % < 15 %: cannot be met
    ]
    for i, (budget, want) in enumerate(expected):
        g.update_cpu_budget(budget)
        d = g.decide_cameras(float(i), {}, cpu_share=shares)
        assert tuple(widths(d).values()) == want, (budget, d)
        if budget > 0.1:
            assert round_cost(d, shares) <= budget * 0.9 + 1e-9
    assert d["right"].reason.startswith("cpu budget 10%, share")
    assert all(dd.decided_by == ("cpu budget",) for dd in d.values())


def test_cpu_and_latency_budgets_together_the_tighter_decides_per_camera():
    g = make(priorities=[2.0, 1.0], cameras=("front", "rear"))
    g.update_budget(60.0, 0.0)   # 54 ms: both cameras at full width (60 ms) do not fit
    g.update_cpu_budget(0.5)     # 45 %: 30 % + 10 % fits, 30 % + 20 % does not
    d = g.decide_cameras(0.0, {n: COST for n in g.cameras},
                         cpu_share={n: SHARE for n in g.cameras})
    assert widths(d) == {"front": 1.0, "rear": 0.5}
    assert d["rear"].decided_by == ("cpu budget",)  # the latency share (24 ms) allows 0.75
    assert d["rear"].caps == {"budget": w(0.75), "cpu_budget": w(0.5)}
    assert d["rear"].reason.startswith("cpu budget 50%, share 15.0%: cpu at 0.5")


def test_only_cameras_with_fresh_frames_share_the_cpu_budget():
    g = make(priorities=[3.0, 2.0, 1.0])
    shares = {name: SHARE for name in g.cameras}
    g.update_cpu_budget(0.6)
    assert widths(g.decide_cameras(0.0, {}, cpu_share=shares)) == {
        "front": 1.0, "left": 0.5, "right": 0.5}
    d = g.decide_cameras(1.0, {}, active={"front", "right"}, cpu_share=shares)
    assert widths(d) == {"front": 1.0, "left": 0.5, "right": 0.75}
    assert d["left"].reason == "cpu budget 60%: no recent frame, holding 0.5"


def test_a_camera_that_sends_fewer_frames_costs_less_cpu():
    """
    A camera that sends fewer frames costs less CPU, so it keeps a wider width.

    From the stores: the same CPU time per frame, but the rear camera sends 5 frames/s against
    the front's 30, so under one CPU budget it keeps a wider width than the front, though its
    priority is lower.
    """
    g = make(cameras=("front", "rear"), priorities=[2.0, 1.0])
    stores = {n: LatencyStore(window_s=60.0, max_frames=20) for n in g.cameras}
    for name in g.cameras:
        for x in WS:
            stores[name].record(x, 10.0, now=0.0, cpu_ms=40.0 * x.value)  # 10, 20, 30, 40 ms
    g.update_cpu_budget(0.5)  # 45 % of 2 cores
    d = g.decide_from_stores(0.0, stores, frame_rates={"front": 30.0, "rear": 5.0}, cores=2)
    assert widths(d) == {"front": 0.5, "rear": 1.0}  # 30 % + 10 % <= 45 %
    assert d["rear"].cpu_share[w(1.0)] == pytest.approx(0.040 * 5 / 2)     # 10 %
    assert d["front"].cpu_share[w(0.75)] == pytest.approx(0.030 * 30 / 2)  # 45 %: too much
