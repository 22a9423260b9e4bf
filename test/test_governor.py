"""
Table-driven tests of the width governor: every policy and its validation.

Covered: policies, precedence, hysteresis, dwell, staleness, probing, bad values and config
validation. Pure Python, times are made up.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from slimseg_ros.ros.contract import Diagnostics, diagnostics_values, read_diagnostics
from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.latency import LatencyStore
from slimseg_ros.widths import TrainedWidths, Width

WIDTHS = (0.25, 0.5, 0.75, 1.0)
WS = TrainedWidths(WIDTHS)
NONE = {w: None for w in WS}


def w(value: float) -> Width:
    """Return the trained width ``value`` names (tests write widths as fractions)."""
    return WS.exact(value)


def keyed(figures: dict[float, float | None]) -> dict[Width, float | None]:
    """Return ``figures`` keyed by trained width instead of by fraction."""
    return {w(k): v for k, v in figures.items()}


def make(**overrides) -> Governor:
    cfg = dict(min_dwell_s=0.0, stale_timeout_s=10.0, probe_interval_s=3.0)
    cfg.update(overrides)
    return Governor(WS, GovernorConfig.from_dict(cfg))


# ---------------------------------------------------------------------------------- snapping
@pytest.mark.parametrize("value, expected", [
    (1.0, 1.0), (0.75, 0.75), (0.8, 0.75), (0.74, 0.5), (0.5, 0.5), (0.3, 0.25),
    (0.25, 0.25), (0.1, 0.25), (1e-9, 0.25), (0.7499999999, 0.75), (1, 1.0),
    (0.5000000001, 0.5),
])
def test_snap(value, expected):
    got = make().snap(value)
    assert isinstance(got, Width) and got == w(expected)


@pytest.mark.parametrize("bad", [math.nan, 0.0, -0.5, 1.0001, 7.0, math.inf, -math.inf, "0.5",
                                 None, True])
def test_snap_and_request_reject_bad_widths(bad):
    g = make()
    with pytest.raises(ValueError):
        g.snap(bad)
    g.request(g.snap(0.5))
    with pytest.raises(TypeError):
        g.request(bad)
    assert g.requested == w(0.5)  # unchanged by the rejected request
    assert g.decide(1.0, NONE).width == w(0.5)


def test_request_takes_a_snapped_width_and_a_float_fails_loudly():
    g = make()
    for raw in (0.5, 0.6, 1, 1.0):
        with pytest.raises(TypeError, match="request takes a Width.*Governor.snap"):
            g.request(raw)
        with pytest.raises(TypeError, match="Governor.snap"):
            g.request(raw, camera="")
    with pytest.raises(ValueError, match="not one of the trained widths"):
        g.request(TrainedWidths((0.5, 1.0))[0])  # a width of another model
    assert g.requested == WS.widest
    assert g.request(TrainedWidths(WIDTHS).exact(0.75)) == w(0.75)  # the same widths: fine


def test_widths_are_sorted_and_validated():
    widths = Governor([1.0, 0.25, 0.5, 0.5], GovernorConfig()).widths
    assert isinstance(widths, TrainedWidths) and widths.values == (0.25, 0.5, 1.0)
    assert make().widths is WS  # given trained widths are used as they are
    for bad in ([], [0.0, 1.0], [1.5], [math.nan], [True], ["0.5"]):
        with pytest.raises(ValueError):
            Governor(bad, GovernorConfig())


# ---------------------------------------------------------------------------------- request
def test_default_is_widest_and_request_applies_at_once_even_with_dwell():
    g = make(min_dwell_s=100.0)
    d = g.decide(0.0, NONE)
    assert (d.width, d.reason, d.caps, d.warnings) == (w(1.0), "request 1", {}, ())
    assert isinstance(d.width, Width) and isinstance(g.current, Width)
    assert g.request(g.snap(0.3)) == w(0.25)
    assert g.decide(0.1, NONE).width == w(0.25)
    assert g.request(g.snap(0.9)) == w(0.75)  # up again at once: explicit requests ignore dwell
    d = g.decide(0.2, NONE)
    assert d.width == w(0.75) and d.reason == "request 0.75"


# ---------------------------------------------------------------------------------- battery
@pytest.mark.parametrize("percent, charging, width, reason", [
    (100.0, False, 1.0, "request 1"),
    (50.1, False, 1.0, "request 1"),
    (50.0, False, 0.75, "battery 50% <= 50%"),
    (31.0, False, 0.75, "battery 31% <= 50%"),
    (30.0, False, 0.5, "battery 30% <= 30%"),
    (12.0, False, 0.25, "battery 12% <= 15%"),
    (0.0, False, 0.25, "battery 0% <= 15%"),
    (12.0, True, 1.0, "request 1"),  # ignored while charging
])
def test_battery_table(percent, charging, width, reason):
    g = make()
    g.update_battery(percent, charging, 0.0)
    d = g.decide(0.0, NONE)
    assert (d.width, d.reason) == (w(width), reason)
    assert ("battery" in d.caps) == (width < 1.0)


def test_battery_cap_snaps_to_trained_width():
    g = make(battery_thresholds=[[20, 0.6], [10, 0.1]])
    g.update_battery(15.0, False, 0.0)
    assert g.decide(0.0, NONE).caps == {"battery": w(0.5)}
    g.update_battery(5.0, False, 0.0)
    assert g.decide(0.0, NONE).caps == {"battery": w(0.25)}


@pytest.mark.parametrize("bad", [math.nan, -1.0, 100.5, math.inf, "50", None])
def test_battery_bad_values_rejected_and_state_kept(bad):
    g = make()
    g.update_battery(20.0, False, 0.0)
    with pytest.raises(ValueError):
        g.update_battery(bad, False, 1.0)
    assert g.decide(1.0, NONE).width == w(0.5)


# ---------------------------------------------------------------------------------- thermal
def test_thermal_hysteresis_sequence():
    """A temperature wobbling around 80C does not make the width chatter."""
    g = make(thermal_hysteresis_c=3.0)
    steps = [  # (celsius, width, reason start)
        (60.0, 1.0, "request"),
        (70.0, 0.75, "thermal 70.0C >= 70C"),
        (79.9, 0.75, "thermal 79.9C >= 70C"),
        (80.0, 0.5, "thermal 80.0C >= 80C"),
        (79.0, 0.5, "thermal 79.0C: cap of 80C held until < 77C"),
        (80.5, 0.5, "thermal 80.5C >= 80C"),
        (77.0, 0.5, "thermal 77.0C: cap of 80C held until < 77C"),
        (76.9, 0.75, "thermal 76.9C >= 70C"),
        (79.5, 0.75, "thermal 79.5C >= 70C"),  # below 80 again: no new cap
        (92.0, 0.25, "thermal 92.0C >= 90C"),
        (88.0, 0.25, "thermal 88.0C: cap of 90C held until < 87C"),
        (68.0, 0.75, "thermal 68.0C: cap of 70C held until < 67C"),
        (66.9, 1.0, "request"),
    ]
    for i, (celsius, width, reason) in enumerate(steps):
        g.update_temperature(celsius, float(i))
        d = g.decide(float(i), NONE)
        assert d.width == w(width), (celsius, d)
        assert d.reason.startswith(reason), (celsius, d.reason)


@pytest.mark.parametrize("bad", [math.nan, -274.0, 1000.1, math.inf, "hot"])
def test_thermal_bad_values_rejected(bad):
    g = make()
    g.update_temperature(85.0, 0.0)
    with pytest.raises(ValueError):
        g.update_temperature(bad, 1.0)
    assert g.decide(1.0, NONE).width == w(0.5)


def test_update_config_keeps_held_thermal_cap_and_drops_removed_rows():
    g = make(thermal_hysteresis_c=5.0)
    g.update_temperature(81.0, 0.0)
    g.update_temperature(78.0, 1.0)  # in the band: 80C cap held
    assert g.decide(1.0, NONE).width == w(0.5)
    g.update_config(GovernorConfig.from_dict({"thermal_hysteresis_c": 5.0, "min_dwell_s": 0.0}))
    assert g.decide(1.1, NONE).width == w(0.5)
    g.update_config(GovernorConfig.from_dict({"thermal_thresholds": [[95, 0.25]],
                                              "min_dwell_s": 0.0}))
    assert g.decide(1.2, NONE).width == w(1.0)


def test_a_new_config_snaps_its_caps_once():
    g = make()
    g.update_temperature(85.0, 0.0)
    g.update_config(GovernorConfig.from_dict({"thermal_thresholds": [[80, 0.6]],
                                              "min_dwell_s": 0.0}))
    d = g.decide(0.0, NONE)  # 0.6 is no trained width: its cap is the one below
    assert d.caps == {"thermal": w(0.5)} and d.reason == "thermal 85.0C >= 80C"


# ---------------------------------------------------------------------------------- budget
BUDGET_CASES = [
    # (latency per width, current width, budget, expected width, reason contains)
    ({0.25: 5, 0.5: 10, 0.75: 20, 1.0: 30}, 1.0, 40, 1.0, "request 1"),
    ({0.25: 5, 0.5: 10, 0.75: 20, 1.0: 30}, 1.0, 25, 0.75, "p90 at 0.75 = 20.0ms <= 22.5ms"),
    ({0.25: 5, 0.5: 10, 0.75: 20, 1.0: 30}, 1.0, 10, 0.25, "p90 at 0.25 = 5.0ms <= 9.0ms"),
    # over budget, nothing narrower measured: step down one width per decision
    ({0.25: None, 0.5: None, 0.75: None, 1.0: 50}, 1.0, 40, 0.75, "trying 0.75"),
    # the narrowest measured width that does not fit bars the wider ones (even if measured fast)
    ({0.25: 5, 0.5: 10, 0.75: 40, 1.0: 30}, 0.75, 40, 0.5, "(0.75: 40.0ms)"),
    # nothing fits: the narrowest width, with a warning
    ({0.25: 50, 0.5: 80, 0.75: 90, 1.0: 99}, 0.25, 40, 0.25, "p90 at 0.25 = 50.0ms > 36.0ms"),
    # current width not measured yet (just switched): hold it
    ({0.25: 5, 0.5: None, 0.75: None, 1.0: None}, 0.5, 40, 0.5, "waiting for a measurement"),
    # margin: 35ms does not fit 40 * 0.9
    ({0.25: 5, 0.5: 10, 0.75: 20, 1.0: 37}, 1.0, 40, 0.75, "20.0ms <= 36.0ms (1: 37.0ms)"),
    ({0.25: 5, 0.5: 10, 0.75: 20, 1.0: 36}, 1.0, 40, 1.0, "request 1"),
]


@pytest.mark.parametrize("lat, current, budget, expected, reason", BUDGET_CASES)
def test_budget_table(lat, current, budget, expected, reason):
    g = make()
    g.request(w(current))
    g.decide(0.0, NONE)  # establishes the current width
    assert g.current == w(current)
    g.request(w(1.0))  # the request does not bind: the budget decides
    g.update_budget(budget, 0.0)
    d = g.decide(0.0, keyed(lat))
    assert d.width == w(expected), d
    assert reason in d.reason, d.reason
    assert d.reason.startswith("budget" if expected < 1.0 else "request")
    assert d.caps["budget"] == w(expected)
    assert ("cannot be met" in " ".join(d.warnings)) == ((lat[0.25] or 0) > budget * 0.9)


def test_budget_none_or_zero_removes_it_and_bad_values_rejected():
    g = make()
    g.update_budget(10, 0.0)
    slow = keyed({0.25: 5, 0.5: 20, 0.75: 30, 1.0: 40})
    assert g.decide(0.0, slow).width == w(0.25)
    g.update_budget(0, 0.0)
    assert g.decide(0.0, slow).width == w(1.0)
    g.update_budget(10, 0.0)
    g.update_budget(None, 0.0)
    assert g.decide(0.0, slow).width == w(1.0)
    for bad in (math.nan, -1.0, "10"):
        with pytest.raises(ValueError):
            g.update_budget(bad, 0.0)


def test_budget_reacts_to_slowdown_within_a_few_frames_and_probes_back_up():
    """
    Machine slows (other load): the width drops frame by frame, and comes back up by probing.

    When the machine is fast again the governor probes one step at a time, once per probe
    interval, and only with headroom.
    """
    g = make(probe_interval_s=3.0, min_dwell_s=1.0)
    g.update_budget(40, 0.0)
    fast = keyed({0.25: 4.0, 0.5: 8.0, 0.75: 15.0, 1.0: 25.0})
    assert g.decide(0.0, fast).width == w(1.0)
    # load arrives: only the current width's recent figure changes, the others are from before
    t = 0.1
    slow = dict(fast)
    slow[w(1.0)] = 60.0
    widths = []
    for true_lat in ({1.0: 60.0}, {0.75: 45.0}, {0.5: 20.0}, {0.5: 21.0}):
        slow.update(keyed(true_lat))
        g.update_budget(40, t)
        widths.append(g.decide(t, slow).width)
        t += 0.1
    assert widths == [w(0.75), w(0.5), w(0.5), w(0.5)]
    # load gone: 0.5 measures 8ms; 0.75's old 45ms is trusted for probe_interval_s after its use
    recent = dict(slow)
    recent[w(0.5)] = 8.0
    assert g.decide(1.5, recent).width == w(0.5)
    assert g.decide(3.0, recent).width == w(0.5)  # 0.75's 45ms (used at 0.1) still trusted
    g.update_budget(40, 3.3)
    d = g.decide(3.3, recent)  # more than probe_interval_s since 0.75 ran: probe it
    assert d.width == w(0.75) and "probing 0.75" in d.reason and d.probing, d
    # the probe measures; just switched with no new figure -> hold (engine window empty)
    recent[w(0.75)] = None
    d = g.decide(3.4, recent)
    assert d.width == w(0.75) and "waiting" in d.reason
    recent[w(0.75)] = 15.0
    d = g.decide(3.5, recent)
    assert d.width == w(0.75) and "p90 at 0.75 = 15.0ms" in d.reason and not d.probing
    # next probe only after the probe interval (and the 1.0 stale figure after its own interval)
    assert g.decide(5.0, recent).width == w(0.75)
    g.update_budget(40, 6.4)
    d = g.decide(6.4, recent)
    assert d.width == w(1.0) and "probing 1" in d.reason, d
    recent[w(1.0)] = 60.0  # the probe is too slow: back down at once, no dwell for lowering
    d = g.decide(6.5, recent)
    assert d.width == w(0.75) and "(1: 60.0ms)" in d.reason, d


def test_probe_needs_headroom():
    g = make(probe_interval_s=1.0)
    g.request(w(0.5))
    g.decide(0.0, NONE)
    g.request(w(1.0))
    g.update_budget(20, 0.0)
    # 0.5 at 14ms: 0.75 estimated 21ms > 18ms -> no probe; at 11ms: 16.5ms fits -> probe
    d = g.decide(5.0, keyed({0.25: None, 0.5: 14.0, 0.75: None, 1.0: None}))
    g.update_budget(20, 5.0)
    assert d.width == w(0.5) and "probing" not in d.reason
    d = g.decide(5.0, keyed({0.25: None, 0.5: 11.0, 0.75: None, 1.0: None}))
    assert d.width == w(0.75) and "probing 0.75" in d.reason


def test_latency_keys_are_trained_widths_or_their_indices_never_floats():
    g = make()
    g.update_budget(20, 0.0)
    by_width = keyed({0.25: 3.0, 0.5: 6.0, 0.75: 30.0, 1.0: 40.0})
    d = g.decide(0.0, by_width)
    assert d.width == w(0.5)
    by_index = {0: 3.0, 1: 6.0, 2: 30.0, 3: 40.0}
    assert make().decide(0.0, NONE) == make().decide(0.0, by_index)  # no budget: both 1.0
    g2 = make()
    g2.update_budget(20, 0.0)
    assert g2.decide(0.0, by_index) == d
    for bad in ({0.5: 6.0}, {0.5000001: 6.0}, {1.0: 40.0}, {"0.5": 6.0}, {True: 1.0}):
        with pytest.raises(TypeError, match="TrainedWidths.snap"):
            make().decide(0.0, bad)
        with pytest.raises(TypeError):
            make().decide(0.0, NONE, cpu_share=bad)
    for foreign in ({TrainedWidths((0.5, 1.0))[1]: 6.0}, {4: 1.0}, {-1: 1.0}):
        with pytest.raises(ValueError, match="trained widths"):
            make().decide(0.0, foreign)


# ---------------------------------------------------------------------------------- the store
def test_a_probe_is_judged_on_its_own_frames():
    """
    A probe is judged on its own frames: decide_from drops the probed width's old figures.

    An old slow 0.75 (still in the store's window) does not send the probe straight back down
    before 0.75 has run a frame.
    """
    g = make(probe_interval_s=1.0)
    store = LatencyStore(window_s=60.0, max_frames=20)
    for _ in range(5):
        store.record(w(0.75), 30.0, now=0.0)  # measured long ago, under other load
        store.record(w(0.5), 8.0, now=5.0)
    g.request(w(0.5))
    g.decide_from(5.0, store)
    g.request(w(1.0))
    g.update_budget(20.0, 5.0)  # fits 18 ms: 0.5 at 8 ms, 0.75 estimated 12 ms
    d = g.decide_from(5.0, store)
    assert d.width == w(0.75) and d.probing and "probing 0.75" in d.reason
    assert store.percentile(w(0.75), 90, now=5.0) is None  # the old 30 ms figures are gone
    d = g.decide_from(5.1, store)
    assert d.width == w(0.75) and "waiting for a measurement at 0.75" in d.reason
    store.record(w(0.75), 12.0, now=5.1)
    d = g.decide_from(5.2, store)
    assert d.width == w(0.75) and "p90 at 0.75 = 12.0ms" in d.reason and not d.probing


def test_diagnostics_show_the_figures_the_governor_compared():
    g = make()
    store = LatencyStore(window_s=60.0, max_frames=20)
    for i, ms in enumerate((10.0, 11.0, 12.0, 13.0, 14.0)):
        store.record(w(0.75), ms, now=float(i))
        store.record(w(1.0), 3 * ms, now=float(i))
    g.update_budget(20.0, 4.0)
    d = g.decide_from(4.0, store)
    assert d.width == w(0.75)
    assert set(d.latency) == {w(0.75), w(1.0)}  # keyed by trained width
    shown = read_diagnostics(diagnostics_values(Diagnostics(latency=d.latency))).latency
    assert set(shown) == {0.75, 1.0}  # widths without recent frames are not shown
    for f in (0.75, 1.0):
        assert shown[f].q == 90.0 and shown[f].frames == 5
        assert shown[f].pq_ms == pytest.approx(store.percentile(w(f), 90.0, now=4.0), abs=0.05)
    assert f"p90 at 0.75 = {shown[0.75].pq_ms:.1f}ms" in d.reason  # 13.6 ms
    assert f"(1: {shown[1.0].pq_ms:.1f}ms)" in d.reason


# ---------------------------------------------------------------------------------- precedence
@pytest.mark.parametrize("request_w, battery, celsius, budget, width, reason", [
    (1.0, 40.0, None, None, 0.75, "battery 40% <= 50%"),
    (0.5, 40.0, None, None, 0.5, "request 0.5"),
    (1.0, 40.0, 85.0, None, 0.5, "thermal 85.0C >= 80C"),
    (1.0, 10.0, 85.0, None, 0.25, "battery 10% <= 15%"),
    (1.0, 25.0, 85.0, None, 0.5, "battery 25% <= 30%; thermal 85.0C >= 80C"),  # tie: both named
    (1.0, 45.0, 71.0, 10.0, 0.25, "budget 10ms"),
    (0.25, 10.0, 95.0, 10.0, 0.25, "request 0.25"),  # request at the floor: the request decides
    (1.0, 90.0, 20.0, 100.0, 1.0, "request 1"),
])
def test_effective_width_is_min_of_request_and_caps(request_w, battery, celsius, budget,
                                                    width, reason):
    g = make()
    g.request(g.snap(request_w))
    if battery is not None:
        g.update_battery(battery, False, 0.0)
    if celsius is not None:
        g.update_temperature(celsius, 0.0)
    if budget is not None:
        g.update_budget(budget, 0.0)
    d = g.decide(0.0, keyed({0.25: 5.0, 0.5: 12.0, 0.75: 20.0, 1.0: 30.0}))
    assert d.width == w(width)
    assert d.reason.startswith(reason), d.reason
    assert d.width == min([g.requested, *d.caps.values()])


# ---------------------------------------------------------------------------------- dwell
def test_dwell_limits_automatic_raises_only():
    g = make(min_dwell_s=2.0)
    g.decide(0.0, NONE)
    g.update_battery(10.0, False, 0.0)
    assert g.decide(0.0, NONE).width == w(0.25)  # lowering: at once
    g.update_battery(40.0, False, 0.5)
    d = g.decide(0.5, NONE)
    assert d.width == w(0.25) and d.reason.startswith("dwell: holding 0.25 for 1.5 s more")
    assert "then 0.75: battery 40% <= 50%" in d.reason
    g.update_temperature(95.0, 1.0)
    assert g.decide(1.0, NONE).width == w(0.25)
    g.update_temperature(20.0, 1.5)
    assert g.decide(1.9, NONE).width == w(0.25)
    assert g.decide(2.0, NONE).width == w(0.75)  # 2 s after the last change
    g.update_battery(90.0, False, 2.1)
    assert g.decide(2.1, NONE).width == w(0.75)
    g.update_battery(5.0, False, 2.2)
    assert g.decide(2.2, NONE).width == w(0.25)  # emergency lowering ignores dwell
    g.request(w(0.5))
    assert g.decide(2.3, NONE).width == w(0.25)  # request below the cap: still capped
    g.update_battery(100.0, True, 2.4)
    assert g.decide(2.4, NONE).width == w(0.25)  # cap gone, but raise waits for dwell
    assert g.decide(4.2, NONE).width == w(0.5)


# ---------------------------------------------------------------------------------- stale
@pytest.mark.parametrize("feed, name, input_name", [
    (lambda g, t: g.update_battery(5.0, False, t), "battery", "battery"),
    (lambda g, t: g.update_temperature(99.0, t), "thermal", "temperature"),
    (lambda g, t: g.update_budget(1.0, t), "budget", "budget"),
])
def test_stale_inputs_stop_constraining_with_a_warning(feed, name, input_name):
    g = make(stale_timeout_s=5.0)
    feed(g, 0.0)
    lat = keyed({0.25: 3.0, 0.5: 6.0, 0.75: 9.0, 1.0: 12.0})
    d = g.decide(5.0, lat)
    assert d.width == w(0.25) and name in d.caps and not any("stale" in x for x in d.warnings)
    d = g.decide(5.1, lat)
    assert d.width == w(1.0) and d.caps == {} and d.reason == "request 1"
    assert len(d.warnings) == 1
    assert d.warnings[0].startswith(f"{input_name} input stale (5.1 s old")
    feed(g, 6.0)
    assert g.decide(6.0, lat).width == w(0.25)  # constrains again when fresh


def test_thermal_hysteresis_forgotten_across_a_stale_gap():
    g = make(stale_timeout_s=5.0, thermal_hysteresis_c=5.0)
    g.update_temperature(85.0, 0.0)
    g.update_temperature(78.0, 1.0)
    assert g.decide(1.0, NONE).width == w(0.5)
    g.update_temperature(78.0, 10.0)  # after a gap: 78C alone means only the 70C row
    assert g.decide(10.0, NONE).width == w(0.75)


# ---------------------------------------------------------------------------------- config
def test_config_defaults_roundtrip_and_input_forms():
    cfg = GovernorConfig()
    assert GovernorConfig.from_dict(cfg.to_dict()) == cfg
    pairs = GovernorConfig.from_dict({"battery_thresholds": [[30, 0.5], [15, 0.25]]})
    flat = GovernorConfig.from_dict({"battery_thresholds": [15, 0.25, 30, 0.5]})
    mapping = GovernorConfig.from_dict({"battery_thresholds": {15: 0.25, 30: 0.5}})
    assert pairs == flat == mapping
    assert pairs.battery_thresholds == ((15.0, 0.25), (30.0, 0.5))
    assert GovernorConfig.from_dict({"thermal_thresholds": []}).thermal_thresholds == ()
    assert cfg.host_thermal_thresholds == ()  # the default: derived from the host's sensor
    host = GovernorConfig.from_dict({"host_thermal_thresholds": [95, 0.25, 88, 0.5]})
    assert host.host_thermal_thresholds == ((88.0, 0.5), (95.0, 0.25))
    assert GovernorConfig.from_dict(host.to_dict()) == host
    assert GovernorConfig.from_dict({"stale_timeout_s": math.inf}).stale_timeout_s == math.inf


@pytest.mark.parametrize("d, key", [
    ({"battery_treshold": []}, "battery_treshold"),
    ({"battery_thresholds": [[15, 0.25, 1]]}, "battery_thresholds"),
    ({"battery_thresholds": [15, 0.25, 30]}, "battery_thresholds"),
    ({"battery_thresholds": [[150, 0.25]]}, "battery_thresholds"),
    ({"battery_thresholds": [[15, 0.0]]}, "battery_thresholds"),
    ({"battery_thresholds": [[15, 1.5]]}, "battery_thresholds"),
    ({"battery_thresholds": [[15, 0.25], [15, 0.5]]}, "battery_thresholds"),
    ({"battery_thresholds": "15:0.25"}, "battery_thresholds"),
    ({"thermal_thresholds": [[math.nan, 0.5]]}, "thermal_thresholds"),
    ({"thermal_thresholds": [["hot", 0.5]]}, "thermal_thresholds"),
    ({"host_thermal_thresholds": [[95, 1.5]]}, "host_thermal_thresholds"),
    ({"host_thermal_thresholds": [90, 0.5, 95]}, "host_thermal_thresholds"),
    ({"thermal_hysteresis_c": -1}, "thermal_hysteresis_c"),
    ({"budget_percentile": 0}, "budget_percentile"),
    ({"budget_percentile": 101}, "budget_percentile"),
    ({"budget_margin": 1.2}, "budget_margin"),
    ({"budget_margin": 0}, "budget_margin"),
    ({"min_dwell_s": -0.1}, "min_dwell_s"),
    ({"min_dwell_s": math.nan}, "min_dwell_s"),
    ({"stale_timeout_s": 0}, "stale_timeout_s"),
    ({"probe_interval_s": 0}, "probe_interval_s"),
    ({"probe_interval_s": "3"}, "probe_interval_s"),
    ({"probe_interval_s": True}, "probe_interval_s"),
])
def test_config_validation_names_the_key(d, key):
    with pytest.raises(ValueError, match=key):
        GovernorConfig.from_dict(d)


def test_governor_imports_no_ros_or_torch():
    code = ("import sys, pkgutil, importlib, slimseg_ros.governor as g; "
            "[importlib.import_module(m.name) "
            " for m in pkgutil.iter_modules(g.__path__, g.__name__ + '.')]; "
            "bad = [m for m in ('rclpy', 'torch', 'sensor_msgs') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
