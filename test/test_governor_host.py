"""
The governor with the computer's own readings and the CPU-share budget.

Host battery and temperature feed the caps while their topics are silent (a live topic always
wins, the reason names the source), the host thermal table, and the CPU budget alone and
beside the latency budget. Pure Python, times and figures are made up.
"""

from __future__ import annotations

import math

import pytest

from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.budget import predicted_cpu_share
from slimseg_ros.governor.latency import LatencyStore, WidthLatency
from slimseg_ros.widths import TrainedWidths, Width

WS = TrainedWidths((0.25, 0.5, 0.75, 1.0))


def w(value: float) -> Width:
    """Return the trained width ``value`` names (tests write widths as fractions)."""
    return WS.exact(value)


def keyed(figures: dict[float, float | None]) -> dict[Width, float | None]:
    """Return ``figures`` keyed by trained width instead of by fraction."""
    return {w(k): v for k, v in figures.items()}


NONE = {x: None for x in WS}
SHARE = keyed({0.25: 0.05, 0.5: 0.10, 0.75: 0.20, 1.0: 0.40})  # of the usable cores per width
LATENCY = keyed({0.25: 5.0, 0.5: 10.0, 0.75: 20.0, 1.0: 30.0})  # ms


def make(**overrides) -> Governor:
    cfg = dict(min_dwell_s=0.0, stale_timeout_s=10.0, probe_interval_s=3.0)
    cfg.update(overrides)
    return Governor(WS, GovernorConfig.from_dict(cfg))


# ---------------------------------------------------------------------------------- host vs topic
def test_host_battery_caps_while_no_topic_battery_was_ever_heard():
    g = make()
    g.update_host_battery(12.0, False, 0.0)
    d = g.decide(0.0, NONE)
    assert (d.width, d.reason, d.decided_by) == (w(0.25), "host battery 12% <= 15%",
                                                 ("host battery",))
    assert d.sources == {"battery": "host"} and d.warnings == ()
    g.update_host_battery(12.0, True, 1.0)  # on external power: ignored, as for the topic
    d = g.decide(1.0, NONE)
    assert d.width == w(1.0) and d.sources == {"battery": "host"}
    g.update_host_battery(None, False, 2.0)  # the host has no battery any more
    assert g.decide(2.0, NONE).sources == {}


def test_a_live_topic_always_wins_and_the_host_fills_in_while_it_is_stale():
    g = make(stale_timeout_s=5.0)
    g.update_battery(80.0, False, 0.0)      # the robot's battery: plenty
    g.update_host_battery(10.0, False, 0.0)  # the computer's own: almost empty
    d = g.decide(1.0, NONE)
    assert d.width == w(1.0) and d.sources == {"battery": "topic"} and d.reason == "request 1"
    g.update_host_battery(10.0, False, 6.0)
    d = g.decide(6.0, NONE)  # the topic is silent for 6 s > 5 s: the host decides
    assert d.width == w(0.25) and d.reason == "host battery 10% <= 15%"
    assert d.warnings == ("battery input stale (6.0 s old > 5 s): the host's reading is used",)
    g.update_battery(40.0, False, 6.5)  # the topic is back: it wins again at once
    d = g.decide(6.5, NONE)
    assert (d.width, d.reason, d.sources) == (w(0.75), "battery 40% <= 50%",
                                              {"battery": "topic"})
    d = g.decide(12.0, NONE)  # both silent: nothing constrains, both named
    assert d.width == w(1.0) and d.sources == {}
    assert [w.split(" (")[0] for w in d.warnings] == ["battery input stale",
                                                      "host battery input stale"]


def test_host_temperature_has_its_own_thresholds_near_the_throttle_point():
    g = make()
    expected = [  # host celsius -> width, reason: a warm computer under load does not slim
        (85.0, 1.0, "request 1"),
        (93.0, 0.5, "host thermal 93.0C >= 90C"),
        (96.0, 0.25, "host thermal 96.0C >= 95C"),
        (92.5, 0.25, "host thermal 92.5C: cap of 95C held until < 92C"),
        (91.0, 0.5, "host thermal 91.0C >= 90C"),
        (86.5, 1.0, "request 1"),
    ]
    for i, (celsius, width, reason) in enumerate(expected):
        g.update_host_temperature(celsius, float(i))
        d = g.decide(float(i), NONE)
        assert (d.width, d.reason) == (w(width), reason), celsius
        assert d.sources == {"thermal": "host"}
    g.update_host_temperature(96.0, 10.0)
    g.update_temperature(83.0, 10.0)  # the topic says 83 C: its table, its reason, it wins
    d = g.decide(10.0, NONE)
    assert (d.width, d.reason, d.decided_by) == (w(0.5), "thermal 83.0C >= 80C", ("thermal",))
    assert d.sources == {"thermal": "topic"}


@pytest.mark.parametrize("high, critical, table", [
    (None, None, ((90.0, 0.5), (95.0, 0.25))),       # nothing reported: 100 C
    (100.0, 100.0, ((90.0, 0.5), (95.0, 0.25))),     # Intel package (TjMax)
    (84.0, 100.0, ((90.0, 0.5), (95.0, 0.25))),      # an early "high" alarm is not throttling
    (None, 104.5, ((94.5, 0.5), (99.5, 0.25))),      # Jetson Orin tj-thermal
    (85.0, None, ((75.0, 0.5), (80.0, 0.25))),       # only a high point
    (None, 0.0, ((90.0, 0.5), (95.0, 0.25))),        # implausible: ignored
])
def test_host_thermal_table_follows_the_sensor(high, critical, table):
    assert GovernorConfig().host_thermal_table(high, critical) == table
    explicit = GovernorConfig.from_dict({"host_thermal_thresholds": [80, 0.75, 88, 0.25]})
    assert explicit.host_thermal_table(high, critical) == ((80.0, 0.75), (88.0, 0.25))


def test_the_sensors_critical_point_moves_the_host_caps():
    g = make()
    g.update_host_temperature(95.0, 0.0, high=None, critical=104.5)
    d = g.decide(0.0, NONE)
    assert (d.width, d.reason) == (w(0.5), "host thermal 95.0C >= 94.5C")
    g.update_config(GovernorConfig.from_dict({"host_thermal_thresholds": [[70, 0.25]],
                                              "min_dwell_s": 0.0}))
    g.update_host_temperature(75.0, 1.0, critical=104.5)
    assert g.decide(1.0, NONE).reason == "host thermal 75.0C >= 70C"


def test_host_readings_that_vanish_or_stop_stop_constraining():
    g = make(stale_timeout_s=5.0)
    g.update_host_temperature(97.0, 0.0)
    assert g.decide(0.0, NONE).width == w(0.25)
    g.update_host_temperature(None, 1.0)  # the sensor is gone: no cap, no hysteresis memory
    d = g.decide(1.0, NONE)
    assert d.width == w(1.0) and d.sources == {} and d.warnings == ()
    g.update_host_temperature(97.0, 2.0)
    d = g.decide(8.0, NONE)  # nobody read the host for 6 s
    assert d.width == w(1.0)
    assert d.warnings == ("host temperature input stale (6.0 s old > 5 s): not constraining",)


@pytest.mark.parametrize("call", [
    lambda g: g.update_host_battery(math.nan, False, 0.0),
    lambda g: g.update_host_battery(101.0, False, 0.0),
    lambda g: g.update_host_temperature(math.inf, 0.0),
    lambda g: g.update_host_temperature(60.0, 0.0, critical=math.nan),
])
def test_bad_host_values_are_rejected_and_state_kept(call):
    g = make()
    g.update_host_battery(20.0, False, 0.0)
    with pytest.raises(ValueError, match="host"):
        call(g)
    assert g.decide(0.0, NONE).reason == "host battery 20% <= 30%"


# ---------------------------------------------------------------------------------- CPU budget
def test_predicted_share_is_cpu_time_per_frame_times_frames_served_per_core():
    figures = WidthLatency(q=90.0, pq_ms=25.0, p50_ms=19.0, frames=10, cpu_ms=10.0, mean_ms=20.0)
    assert predicted_cpu_share(figures, 30.0, cores=2) == pytest.approx(0.010 * 30 / 2)
    # a camera faster than the width: it serves one frame per mean latency (50 frames/s)
    assert predicted_cpu_share(figures, 200.0, cores=2) == pytest.approx(0.010 * 50 / 2)
    assert predicted_cpu_share(figures, None, cores=2) is None
    no_cpu = WidthLatency(q=90.0, pq_ms=25.0, p50_ms=19.0, frames=10)
    assert predicted_cpu_share(no_cpu, 30.0, cores=2) is None
    assert predicted_cpu_share(None, 30.0, cores=2) is None


@pytest.mark.parametrize("budget, width, reason", [
    (0.5, 1.0, "request 1; cpu budget 50%: cpu at 1 = 40.0% <= 45.0%"),
    (0.3, 0.75, "cpu budget 30%: cpu at 0.75 = 20.0% <= 27.0% (1: 40.0%)"),
    (0.12, 0.5, "cpu budget 12%: cpu at 0.5 = 10.0% <= 10.8% (0.75: 20.0%)"),
    (0.05, 0.25, "cpu budget 5%: cpu at 0.25 = 5.0% > 4.5%"),                  # cannot be met
])
def test_cpu_budget_picks_the_widest_width_that_fits_with_the_margin(budget, width, reason):
    g = make()
    g.update_cpu_budget(budget)
    d = g.decide(0.0, NONE, SHARE)
    assert d.width == w(width) and d.reason.startswith(reason)
    assert d.caps["cpu_budget"] == w(width)
    assert d.decided_by == (("request", "cpu budget") if width == 1.0 else ("cpu budget",))
    assert any("cannot be met" in w for w in d.warnings) == (budget == 0.05)


def test_the_tighter_budget_decides_and_says_so():
    g = make()
    g.update_budget(25.0, 0.0)   # 22.5 ms: 0.75
    g.update_cpu_budget(0.12)    # 10.8 %: 0.5
    d = g.decide(0.0, LATENCY, SHARE)
    assert d.width == w(0.5) and d.decided_by == ("cpu budget",)
    assert d.reason.startswith("cpu budget 12%") and d.caps["budget"] == w(0.75)
    g.update_cpu_budget(0.5)     # 45 %: 1.0, the latency budget is tighter now
    d = g.decide(0.1, LATENCY, SHARE)
    assert d.width == w(0.75) and d.decided_by == ("budget",)
    assert d.reason.startswith("budget 25ms: p90 at 0.75 = 20.0ms <= 22.5ms")
    g.update_cpu_budget(0.25)    # 22.5 %: also 0.75, both are named
    d = g.decide(0.2, LATENCY, SHARE)
    assert d.width == w(0.75) and d.decided_by == ("budget", "cpu budget")
    assert d.reason.startswith("budget 25ms") and "; cpu budget 25%: cpu at 0.75" in d.reason


def test_cpu_budget_is_a_setting_that_does_not_go_stale_and_is_validated():
    g = make(stale_timeout_s=1.0)
    g.update_cpu_budget(0.3)
    d = g.decide(1000.0, NONE, SHARE)
    assert d.width == w(0.75) and d.warnings == ()
    assert g.cpu_budget == 0.3
    for bad in (math.nan, -0.1, 1.5, "0.3", True):
        with pytest.raises(ValueError, match="cpu budget"):
            g.update_cpu_budget(bad)
    assert g.cpu_budget == 0.3
    g.update_cpu_budget(0.0)  # 0 removes it
    assert g.decide(1001.0, NONE, SHARE).width == w(1.0) and g.cpu_budget is None


def test_cpu_budget_from_the_store_probes_back_up_and_respects_dwell():
    """
    decide_from predicts each width's CPU share; probing and dwell follow the latency budget.

    The share comes from the store's CPU times, the camera's frame rate and the usable cores.
    """
    g = make(min_dwell_s=1.0, probe_interval_s=1.0)
    store = LatencyStore(window_s=1.0, max_frames=20)
    cpu_ms = {x: 16.0 * x.value for x in WS}  # 4, 8, 12, 16 ms per frame; 20 ms of wall time
    for x in WS:
        store.record(x, 20.0, now=0.0, cpu_ms=cpu_ms[x])
    g.update_cpu_budget(0.25)  # 22.5 % of 2 cores
    d = g.decide_from(0.0, store, frame_rate=20.0, cores=2)  # 1.0: 16 ms x 20/s / 2 = 16 %
    assert d.width == w(1.0) and d.cpu_share[w(1.0)] == pytest.approx(0.16)
    d = g.decide_from(0.1, store, frame_rate=40.0, cores=2)  # the camera speeds up: 32 %
    assert d.width == w(0.5)
    assert "cpu budget 25%: cpu at 0.5 = 16.0% <= 22.5% (0.75: 24.0%)" in d.reason
    d = g.decide_from(0.5, store, frame_rate=20.0, cores=2)  # slow again: dwell holds the raise
    assert d.width == w(0.5) and d.decided_by[0] == "dwell"
    # running at 0.5, the wider widths' figures leave the window: probed one step at a time
    for t in (0.6, 1.2):
        store.record(w(0.5), 20.0, now=t, cpu_ms=cpu_ms[w(0.5)])
        g.update_cpu_budget(0.25)
    d = g.decide_from(1.2, store, frame_rate=20.0, cores=2)
    assert d.width == w(0.75) and d.probing
    assert d.reason == "cpu budget 25%: probing 0.75 (cpu at 0.5 = 8.0%, estimate 12.0% <= 22.5%)"
    assert store.recent([w(0.75)], 90, now=1.2)[w(0.75)] is None
    d = g.decide_from(1.3, store, frame_rate=20.0, cores=2)
    assert d.width == w(0.75) and "waiting for a measurement at 0.75" in d.reason
    store.record(w(0.75), 20.0, now=1.3, cpu_ms=cpu_ms[w(0.75)])
    d = g.decide_from(1.4, store, frame_rate=20.0, cores=2)  # next probe a probe interval later
    assert d.width == w(0.75) and "cpu at 0.75 = 12.0% <= 22.5%" in d.reason and not d.probing
    d = g.decide_from(2.3, store, frame_rate=20.0, cores=2)
    assert d.width == w(1.0) and d.probing and "probing 1" in d.reason


def test_without_a_frame_rate_the_cpu_share_is_unknown_and_the_width_held():
    g = make()
    store = LatencyStore(window_s=60.0, max_frames=20)
    store.record(w(1.0), 20.0, now=0.0, cpu_ms=30.0)
    g.update_cpu_budget(0.1)
    d = g.decide_from(0.0, store)
    assert d.width == w(1.0) and "cpu budget 10%: waiting for a measurement at 1" in d.reason
    assert d.cpu_share == {}


def test_a_node_slower_than_its_camera_still_probes_wider_under_a_loose_cpu_budget():
    """
    A camera at 1000 frames/s keeps the node busy at every width, yet a wider width is probed.

    A wider width serves fewer frames, so its share is no more than the current one's (CPU time
    over latency). A probe estimated by width alone (60 % x 2) would never be tried under an
    80 % budget.
    """
    g = make(probe_interval_s=1.0)
    store = LatencyStore(window_s=60.0, max_frames=20)
    g.request(w(0.25))
    g.decide_from(0.0, store, frame_rate=1000.0, cores=2)
    g.request(w(1.0))
    store.record(w(0.25), 5.0, now=0.0, cpu_ms=6.0)  # 6 ms of CPU in 5 ms: 1.2 cores busy
    g.update_cpu_budget(0.8)
    d = g.decide_from(1.0, store, frame_rate=1000.0, cores=2)
    assert d.cpu_share[w(0.25)] == pytest.approx(0.6)  # 200 frames/s served, not 1000
    assert d.width == w(0.5) and d.probing
    assert d.reason == "cpu budget 80%: probing 0.5 (cpu at 0.25 = 60.0%, estimate 60.0% <= 72.0%)"
