"""
The ladder: (width, input size) operating points for the budgets, the widths for the caps.

Pure Python on made-up times. The costs are the default model's measured sweep (p50 ms,
docs/resolution.md): a wider width at a reduced input is often cheaper than a narrower width at
the full input, so the budgets choose among the points while the request, battery and thermal
caps bound a point's width.
"""

from __future__ import annotations

import math

import pytest

from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.ladder import Ladder, Rung
from slimseg_ros.governor.latency import LatencyStore
from slimseg_ros.widths import TrainedWidths, Width

WS = TrainedWidths((0.25, 0.5, 0.75, 1.0))
W025, W05, W075, W1 = WS
FULL = {W025: 6.5, W05: 14.2, W075: 26.8, W1: 42.6}
SMALL, MID = (184, 240), (224, 304)
POINTS = [(W025, SMALL, 3.3), (W025, MID, 5.3), (W05, SMALL, 5.35), (W075, SMALL, 8.7),
          (W1, SMALL, 12.6), (W075, MID, 14.3)]


def ladder() -> Ladder:
    return Ladder(WS, POINTS, FULL)


def make(lad: Ladder | None = None, cameras=None, **overrides) -> Governor:
    cfg = dict(min_dwell_s=2.0, stale_timeout_s=60.0, probe_interval_s=3.0, budget_margin=1.0)
    cfg.update(overrides)
    return Governor(WS, GovernorConfig.from_dict(cfg), cameras=cameras,
                    ladder=ladder() if lad is None else lad)


def rung(lad: Ladder, width: Width, size: tuple[int, int] | None) -> Rung:
    return next(s for s in lad.steps if s.width == width and s.input_size == size)


def costs(lad: Ladder) -> dict[Rung, float]:
    """Return every rung's cost (ms) as the sweep measured it."""
    table = {rung(lad, w, s): ms for w, s, ms in POINTS}
    table.update({lad.full(w): ms for w, ms in FULL.items()})
    return table


def test_rungs_are_ordered_by_cost_and_a_width_bound_picks_the_candidates() -> None:
    lad = ladder()
    assert lad.has_points
    assert lad.describe() == ("0.25@184x240 < 0.25@224x304 < 0.5@184x240 < 0.25 < "
                              "0.75@184x240 < 1@184x240 < 0.5 < 0.75@224x304 < 0.75 < 1")
    assert [s.index for s in lad.steps] == list(range(10))
    assert lad.full(W1).value == 1.0 and rung(lad, W025, SMALL).value == pytest.approx(3.3 / 42.6)
    assert lad.cheapest == rung(lad, W025, SMALL)
    # under a bound: its points cheaper than the bound at full input, then the bound at full
    assert [f"{s:g}" for s in lad.candidates(W1)] == [
        "0.25@184x240", "0.25@224x304", "0.5@184x240", "0.75@184x240", "1@184x240",
        "0.75@224x304", "1"]
    assert [f"{s:g}" for s in lad.candidates(W05)] == [
        "0.25@184x240", "0.25@224x304", "0.5@184x240", "0.5"]
    assert [f"{s:g}" for s in lad.candidates(W025)] == ["0.25@184x240", "0.25@224x304", "0.25"]
    assert lad.member(W075) == lad.full(W075) and lad.member(3) == lad.full(W025)
    assert Ladder.input_of(rung(lad, W075, MID)) == MID and Ladder.width_of(lad.full(W05)) == W05
    # without points the steps are the widths themselves
    plain = Ladder(WS)
    assert not plain.has_points and plain.steps == tuple(WS) and plain.full(W05) is W05
    assert list(plain.candidates(W05)) == list(WS)


def test_without_a_budget_the_bound_runs_at_full_input() -> None:
    g = make()
    d = g.decide(0.0, {})
    assert (d.width, d.input_size, d.reason) == (W1, None, "request 1")
    g.request(W05)
    d = g.decide(0.1, {})
    assert (d.width, d.input_size, d.step) == (W05, None, g.ladder.full(W05))
    g.update_battery(10.0, charging=False, now=0.2)  # default table: <= 15 % caps at 0.25
    d = g.decide(0.3, {})
    assert (d.width, d.input_size) == (W025, None) and "battery" in d.decided_by


def test_a_latency_budget_chooses_a_wider_width_at_a_smaller_input() -> None:
    lad = ladder()
    g = make(lad)
    g.update_budget(16.0, now=0.0)
    d = g.decide(0.0, costs(lad))
    assert (d.width, d.input_size) == (W075, MID), d.reason
    assert d.decided_by == ("budget",)
    assert d.reason == "budget 16ms: p90 at 0.75@224x304 = 14.3ms <= 16.0ms (1: 42.6ms)"
    # the same figures without a ladder: the widest width that fits at full input
    plain = Governor(WS, g.config)
    plain.update_budget(16.0, now=0.0)
    assert plain.decide(0.0, FULL).width == W05


def test_caps_bound_the_width_and_the_budget_chooses_below_the_bound() -> None:
    lad = ladder()
    g = make(lad)
    g.request(W05)
    g.update_budget(16.0, now=0.0)
    d = g.decide(0.0, costs(lad))
    assert (d.width, d.input_size) == (W05, None)  # 0.75@224x304 fits, but its width does not
    assert d.decided_by == ("request", "budget")
    g.update_budget(10.0, now=0.1)
    d = g.decide(0.1, costs(lad))
    assert (d.width, d.input_size) == (W05, SMALL) and d.decided_by == ("budget",)
    g.request(W1)
    d = g.decide(0.2, costs(lad))  # a request applies at once, even upwards
    assert (d.width, d.input_size) == (W075, SMALL)
    g.update_temperature(95.0, now=0.3)  # default table: >= 90 C caps at 0.25
    d = g.decide(0.3, costs(lad))
    assert (d.width, d.input_size) == (W025, None) and d.caps["thermal"] == W025  # 6.5 fits


def test_a_budget_walks_down_one_rung_a_frame_then_climbs_back_after_dwell() -> None:
    lad = ladder()
    table = costs(lad)
    g = make(lad)
    store = LatencyStore(window_s=30.0, max_frames=10)
    g.update_budget(10.0, now=0.0)
    seen = []
    t = 0.0
    for _ in range(6):
        d = g.decide_from(t, store)
        seen.append(f"{d.step:g}")
        store.record(d.step, table[d.step], t)
        t += 0.1
    assert seen == ["1", "0.75@224x304", "1@184x240", "0.75@184x240", "0.75@184x240",
                    "0.75@184x240"]
    assert set(d.latency) == {lad.full(W1), rung(lad, W075, MID), rung(lad, W1, SMALL),
                              rung(lad, W075, SMALL)}
    # loosened: two measured rungs above now fit; the raise waits for the dwell
    g.update_budget(16.0, now=t)
    d = g.decide_from(t, store)
    assert f"{d.step:g}" == "0.75@184x240" and d.decided_by[0] == "dwell"
    d = g.decide_from(t + 2.5, store)
    assert (d.width, d.input_size) == (W075, MID)


def test_a_probe_estimates_the_next_rung_by_its_measured_cost_ratio() -> None:
    lad = ladder()
    g = make(lad)
    cheap = lad.cheapest
    store = LatencyStore(window_s=30.0, max_frames=10)
    g.update_budget(5.0, now=0.0)
    g.update_temperature(95.0, now=0.0)  # start at the narrowest width...
    g.decide_from(0.0, store)
    store.record(lad.full(W025), 6.5, 0.0)
    g.decide_from(0.1, store)  # ...over 5 ms: one rung down
    store.record(rung(lad, W025, MID), 5.3, 0.1)
    d = g.decide_from(0.2, store)
    assert d.step == cheap, d.reason
    store.record(cheap, 3.0, 0.2)
    d = g.decide_from(0.3, store)  # 0.25@224x304 measured over 5 ms: not yet
    assert d.step == cheap and not d.probing
    store.record(cheap, 3.0, 3.4)
    # a probe interval later its figure is forgotten: 3.0 x 5.3 / 3.3 = 4.8 <= 5, probe it
    d = g.decide_from(3.5, store)
    assert d.probing and d.step == rung(lad, W025, MID)
    assert "estimate 4.8ms <= 5.0ms" in d.reason


def test_cpu_budget_chooses_a_point_and_rate_first_holds_the_cheapest_rung() -> None:
    lad = ladder()
    g = make(lad)
    store = LatencyStore(window_s=30.0, max_frames=10)
    for step, ms in costs(lad).items():
        for _ in range(3):
            store.record(step, ms, 0.0, cpu_ms=ms)
    # 10 frames/s on 2 cores: a rung's share is ms / 200; 5 % fits 8.7 ms
    g.update_cpu_budget(0.05)
    d = g.decide_from(0.0, store, frame_rate=10.0, cores=2)
    assert (d.width, d.input_size, d.stride) == (W075, SMALL, 1), d.reason
    assert d.cpu_share[lad.full(W1)] == pytest.approx(42.6 / 200)
    # below the cheapest rung: every k-th frame, at the cheapest rung
    g.update_cpu_budget(0.005)
    d = g.decide_from(0.1, store, frame_rate=10.0, cores=2)
    assert d.step == lad.cheapest and d.stride == math.ceil(3.3 / 200 / 0.005), d.rate_reason
    g.update_cpu_budget(0.5)  # the rate comes back first, then the rungs after a dwell
    d = g.decide_from(0.2, store, frame_rate=10.0, cores=2)
    assert d.step == lad.cheapest and d.stride > 1
    d = g.decide_from(2.5, store, frame_rate=10.0, cores=2)
    assert d.stride == 1 and d.step == lad.cheapest and d.decided_by[0] == "rate"
    d = g.decide_from(5.0, store, frame_rate=10.0, cores=2)
    assert (d.width, d.input_size, d.stride) == (W1, None, 1)


def test_cameras_share_a_round_over_points() -> None:
    lad = ladder()
    g = make(lad, cameras=["front", "rear"])
    g.update_budget(20.0, now=0.0)
    table = costs(lad)
    out = g.decide_cameras(0.0, {"front": table, "rear": table})
    assert [(d.width, d.input_size) for d in out.values()] == [(W075, SMALL), (W075, SMALL)]
    assert g.step_of("front") == rung(lad, W075, SMALL) and g.current_of("rear") == W075
    # a battery cap of 0.5: the camera without a fresh frame holds no rung wider than the cap
    g.update_battery(25.0, charging=False, now=0.1)
    out = g.decide_cameras(0.1, {"front": table, "rear": table}, active=["front"])
    assert out["front"].step == lad.full(W05)  # 14.2 ms fits 20 ms under the bound 0.5
    assert out["rear"].step == rung(lad, W05, SMALL), out["rear"].reason
    assert out["rear"].reason.startswith("battery 25% <= 30%; budget 20ms: no recent frame")


@pytest.mark.parametrize("points, full, error", [
    (POINTS, {W025: 6.5, W05: 14.2, W075: 26.8}, "missing 1"),
    (POINTS + [(W025, SMALL, 3.0)], FULL, "repeated"),
    ([(W025, SMALL, 0.0)], FULL, "must be a number > 0"),
    ([(W025, SMALL, math.nan)], FULL, "must be a number > 0"),
    ([(W025, (0, 240), 3.0)], FULL, "not a size"),
    ([(Width(1, 0.4), SMALL, 3.0)], FULL, "not one of the trained widths"),
])
def test_bad_ladders_are_refused(points, full, error) -> None:
    with pytest.raises(ValueError, match=error):
        Ladder(WS, points, full)


def test_keys_and_mismatches_fail_loudly() -> None:
    lad = ladder()
    with pytest.raises(ValueError, match="the ladder is of widths"):
        Governor(TrainedWidths((0.5, 1.0)), GovernorConfig(), ladder=lad)
    with pytest.raises(TypeError):
        lad.member(0.5)
    with pytest.raises(ValueError, match="not a rung of this ladder"):
        lad.member(Rung(3, 0.5, W05, SMALL))
    with pytest.raises(TypeError, match="keyed by Width"):
        LatencyStore().record(0.5, 1.0, 0.0)
    store = LatencyStore()
    store.record(lad.cheapest, 3.0, 0.0)
    assert store.recent([lad.cheapest, lad.full(W1)], 95.0, 0.0)[lad.full(W1)] is None


def test_a_falling_cap_moves_a_cheaper_rung_of_a_wider_width_at_once_even_in_dwell() -> None:
    lad = ladder()
    g = make(lad)
    store = LatencyStore(window_s=30.0, max_frames=10)
    g.update_budget(10.0, now=0.0)
    for step, ms in costs(lad).items():
        store.record(step, ms, 0.0)
    d = g.decide_from(0.0, store)
    assert d.step == rung(lad, W075, SMALL)  # 8.7 ms: the costliest rung within 10 ms
    g.update_battery(25.0, charging=False, now=0.1)  # default table: <= 30 % caps at 0.5
    d = g.decide_from(0.1, store)  # 0.75@184x240 ranks below 0.5 at full input, yet is wider
    assert (d.width, d.input_size) == (W05, SMALL), d.reason
    assert d.caps["battery"] == W05 and "dwell" not in d.decided_by


def test_a_lifted_cap_starts_from_an_estimate_not_from_the_costliest_rung() -> None:
    lad = ladder()
    g = make(lad)
    store = LatencyStore(window_s=30.0, max_frames=10)
    g.update_budget(20.0, now=0.0)
    g.request(W05)
    g.decide_from(0.0, store)
    store.record(lad.full(W05), 14.2, 0.0)
    d = g.decide_from(0.1, store)
    assert d.step == lad.full(W05)
    g.request(W1)  # only 0.5 at full input measured, and it is no candidate under 1.0
    d = g.decide_from(0.2, store)
    # 1 at full input would cost ~42.6 ms: the costliest rung estimated within 20 ms instead
    assert d.step == rung(lad, W075, MID), d.reason


def test_points_not_prepared_yet_leave_the_budgets_the_widths() -> None:
    lad = ladder()
    g = Governor(WS, GovernorConfig.from_dict(dict(min_dwell_s=2.0, budget_margin=1.0)),
                 ladder=lad, points_ready=False)
    g.update_budget(16.0, now=0.0)
    assert not g.points_ready
    d = g.decide(0.0, costs(lad))
    assert d.step == lad.full(W05), d.reason  # 14.2 ms: the widest width at full input
    g.set_points_ready()
    d = g.decide(0.1, costs(lad))  # 0.75@224x304 (14.3 ms) now fits: a raise, after dwell
    assert d.step == lad.full(W05) and d.decided_by[0] == "dwell"
    d = g.decide(2.5, costs(lad))
    assert d.step == rung(lad, W075, MID), d.reason
