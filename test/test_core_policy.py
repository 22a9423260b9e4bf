"""
The node's policy through its core, on a fake clock with scripted inference costs.

The core runs on a real rclpy node (parameters, publishers) and a real tiny model, but serves
frames itself (no inference thread) and reads time from a clock the test advances by hand; each
inference "costs" what the test scripts for its width, and the fake clock moves by that much.
So budgets, CPU share, priorities, fairness between cameras, dwell, probing, stale inputs and
host-sensor fallbacks are asserted as *which width and reason at which fake instant*: nothing
here sleeps or waits on real time, and a busy machine cannot change an outcome.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import BatteryState, Temperature  # noqa: E402
from std_msgs.msg import Float32  # noqa: E402

from node_harness import image_msg, make_tiny_checkpoint, pick_domain_id  # noqa: E402
from slimseg_ros.governor import host_readings  # noqa: E402
from slimseg_ros.governor.host_readings import PsutilSample  # noqa: E402
from slimseg_ros.ros import host_watch  # noqa: E402
from slimseg_ros.ros.contract import REJECTED, SKIPPED, read_diagnostics  # noqa: E402
from slimseg_ros.ros.core import SlimSegCore  # noqa: E402
from slimseg_ros.ros.timing import Cost  # noqa: E402

pytestmark = pytest.mark.ros

#: the outputs whose subscribers make a camera worth inferring (``<output>_pub`` of a camera)
OUTPUTS = ("mask", "mask_compressed", "color", "overlay")
#: wall and CPU milliseconds per frame at each width, as a small CPU might measure them
COSTS = {0.25: (4.0, 4.0), 0.5: (8.0, 8.0), 0.75: (14.0, 14.0), 1.0: (20.0, 20.0)}
BASE = {"backend": "torch", "torch_threads": 1, "governor.min_dwell_s": 2.0,
        "governor.probe_interval_s": 3.0, "latency_window_s": 5.0, "latency_window_frames": 10,
        "host_sensors": "off"}
shwtemp = namedtuple("shwtemp", "label current high critical")  # psutil's reading


class FakeClock:
    """Seconds that move only when the test (or the scripted meter) says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class ScriptedMeter:
    """Runs the real inference, reports the scripted cost of its step, advances the clock."""

    def __init__(self, clock: FakeClock, costs: dict[float | str, tuple[float, float]]) -> None:
        self.clock = clock
        # by the step as written: a width ("0.5") or a ladder point ("1@16x24")
        self.costs = {k if isinstance(k, str) else f"{k:g}": v for k, v in costs.items()}
        self.widths: list[float] = []  # what each inference ran at
        self.steps: list[str] = []

    def measure(self, run: Callable[[], Any], width: Any) -> tuple[Any, Cost]:
        result = run()
        step = format(width, "g")
        wall_ms, cpu_ms = self.costs[step]
        self.clock.advance(wall_ms / 1000.0)
        self.widths.append(float(step.split("@")[0]))
        self.steps.append(step)
        return result, Cost(wall_ms, cpu_ms)


class Rig:
    """One core on a fake clock, with helpers to feed it as topics would."""

    def __init__(self, core: SlimSegCore, clock: FakeClock, meter: ScriptedMeter) -> None:
        self.core, self.clock, self.meter = core, clock, meter
        self.published: dict[str, list[float]] = {}
        for name, cam in core._cameras.items():  # what goes out on active_width from now on
            sent = self.published.setdefault(name, [])
            cam.width_pub.publish = lambda msg, sent=sent: sent.append(round(msg.data, 6))
        self.frames = {name: image_msg(np.full((24, 32, 3), 90, np.uint8), "rgb8",
                                       frame_id=name or "camera") for name in core._cameras}
        # Subscribers per camera and output, as the graph would count them: one on every mask.
        self.listeners = {(name, out): int(out == "mask") for name in core._cameras
                          for out in OUTPUTS}
        for name, cam in core._cameras.items():
            for out in OUTPUTS:
                getattr(cam, f"{out}_pub").get_subscription_count = \
                    lambda key=(name, out): self.listeners[key]

    def listen(self, camera: str = "", **counts: int) -> None:
        """Set how many subscribers each named output of ``camera`` has (mask=0: none)."""
        for out, n in counts.items():
            self.listeners[(camera, out)] = n

    def stamp(self, camera: str = "") -> Any:
        """Stamp ``camera``'s frame with the fake clock, as a camera driver stamps each frame."""
        sec = int(self.clock.t)
        self.frames[camera].header.stamp = Time(sec=sec, nanosec=int((self.clock.t - sec) * 1e9))
        return self.frames[camera]

    def decision(self, camera: str = "") -> Any:
        return self.core.decide()[camera]

    def width(self, camera: str = "") -> float:
        return float(self.decision(camera).width)

    def serve(self, n: int = 1, cameras: tuple[str, ...] | None = None,
              period_s: float = 0.05) -> None:
        """Feed ``n`` rounds of one frame per camera, ``period_s`` apart, serving each."""
        for _ in range(n):
            for name in cameras if cameras is not None else tuple(self.frames):
                self.core.on_image(name, self.stamp(name))
            while self.core.serve_next(timeout=0.0):
                pass
            self.clock.advance(period_s)

    def send(self, handler: Callable[[Any], None], msg: Any) -> None:
        handler(msg)

    def stream(self, seconds: float, hz: float, camera: str = "",
               frame: Callable[[int], Any] | None = None) -> list[int]:
        """
        Send ``camera`` frames at ``hz`` for ``seconds``, serving each as it arrives.

        Each frame arrives on time (the clock jumps to it unless inference ran past it);
        ``frame(i)`` gives the i-th frame (default: the camera's, newly stamped). Returns the
        arrival numbers (from 0) of the frames inferred.
        """
        start, inferred = self.clock.t, []
        for i in range(int(round(seconds * hz))):
            self.clock.t = max(self.clock.t, start + i / hz)
            msg = frame(i) if frame is not None else self.stamp(camera)
            before = len(self.meter.widths)
            self.core.on_image(camera, msg)
            while self.core.serve_next(timeout=0.0):
                pass
            if len(self.meter.widths) > before:
                inferred.append(i)
        return inferred

    def diagnostics(self) -> list[Any]:
        """Publish the diagnostics now; return them read back, one per status."""
        sent: list[Any] = []
        self.core._diag_pub.publish = lambda array: sent.extend(array.status)
        self.core.publish_diagnostics()
        return [read_diagnostics({kv.key: kv.value for kv in s.values}) for s in sent]

    def published_masks(self, camera: str = "") -> list[tuple[tuple[int, int], bytes]]:
        """Record each mask ``camera`` publishes from now on as (stamp, bytes) in the list."""
        sent: list[tuple[tuple[int, int], bytes]] = []
        self.core.camera(camera).mask_pub.publish = lambda m: sent.append(
            ((m.header.stamp.sec, m.header.stamp.nanosec), bytes(m.data)))
        return sent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Any:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt",
                                input_size=(24, 32))


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id())
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture
def rig(context, checkpoint, monkeypatch) -> Iterator[Callable[..., Rig]]:
    """Build cores on demand, each with two usable cores; see ``make`` for its arguments."""
    monkeypatch.setattr(host_readings, "usable_cores", lambda: 2)
    monkeypatch.setattr(host_watch, "usable_cores", lambda: 2)
    made = []

    def make(costs: dict[float, tuple[float, float]] = COSTS,
             host: Callable[..., PsutilSample] | None = None, **params: Any) -> Rig:
        clock = FakeClock()
        meter = ScriptedMeter(clock, costs)
        values = {"checkpoint": str(checkpoint), **BASE, **params}
        node = rclpy.create_node(f"slimseg_{len(made)}", context=context,
                                 parameter_overrides=[Parameter(k, value=v)
                                                      for k, v in values.items()])
        core = SlimSegCore(node, clock=clock, meter=meter,
                           host_reader=host or (lambda sensors=True: PsutilSample()))
        made.append((core, node))
        core.configure()
        core.activate(worker=False)
        return Rig(core, clock, meter)
    yield make
    for core, node in made:
        core.shutdown()
        node.destroy_node()


def budget(ms: float) -> Float32:
    return Float32(data=float(ms))


def battery(fraction: float, charging: bool = False) -> BatteryState:
    status = (BatteryState.POWER_SUPPLY_STATUS_CHARGING if charging
              else BatteryState.POWER_SUPPLY_STATUS_DISCHARGING)
    return BatteryState(percentage=float(fraction), power_supply_status=status)


def temperature(celsius: float) -> Temperature:
    return Temperature(temperature=float(celsius))


# --------------------------------------------------------------------------------- requests
def test_a_request_applies_at_once_and_is_published_without_a_frame(rig) -> None:
    r = rig()
    assert r.width() == 1.0 and r.published[""] == []  # (latched at activation, before this)
    r.core.inputs.on_width(Float32(data=0.25))
    assert r.width() == 0.25 and r.published[""] == [0.25]  # no frame served yet
    r.serve()
    assert r.meter.widths == [0.25]  # the next frame runs at it
    r.core.inputs.on_width(Float32(data=0.6))  # between trained widths: snaps down
    d = r.decision()
    assert float(d.width) == 0.5 and d.reason == "request 0.5"
    r.core.inputs.on_width(Float32(data=math.nan))  # rejected; the request stays
    assert r.width() == 0.5 and r.published[""] == [0.25, 0.5]
    counts, last = r.core.rejections.snapshot()
    assert counts == {REJECTED.width: 1} and "keeping the current request" in last["width"]


def test_the_width_parameter_is_a_request_too(rig) -> None:
    r = rig()
    assert r.core.node.set_parameters([Parameter("width", value=0.5)])[0].successful
    assert r.width() == 0.5 and r.published[""][-1] == 0.5
    bad = r.core.node.set_parameters([Parameter("width", value=0.0)])[0]
    assert not bad.successful and r.width() == 0.5


# --------------------------------------------------------------------------------- battery/heat
def test_battery_caps_unless_charging_and_heat_holds_within_its_hysteresis(rig) -> None:
    r = rig()
    r.core.inputs.on_battery(battery(0.10))  # 10 % discharging: the 15 % row caps at 0.25
    d = r.decision()
    assert float(d.width) == 0.25 and "battery 10% <= 15%" in d.reason
    r.core.inputs.on_battery(battery(0.10, charging=True))  # ignored while charging
    r.clock.advance(2.5)  # past the dwell: a raise may apply
    assert r.decision().reason == "request 1" and r.width() == 1.0
    r.core.inputs.on_temperature(temperature(85.0))  # >= 80 C: at most 0.5, at once
    d = r.decision()
    assert float(d.width) == 0.5 and "thermal 85.0C >= 80C" in d.reason
    r.core.inputs.on_temperature(temperature(78.5))  # below 80 but within 3 C: still held
    d = r.decision()
    assert float(d.width) == 0.5 and "held" in d.reason
    r.core.inputs.on_temperature(temperature(40.0))
    assert r.width() == 0.5  # a raise waits for the dwell time ...
    r.clock.advance(2.1)
    assert r.width() == 1.0  # ... and then applies
    assert r.published[""] == [0.25, 1.0, 0.5, 1.0]
    r.core.inputs.on_battery(battery(50.0))  # percent instead of a fraction: rejected, state kept
    assert r.core.rejections.snapshot()[0] == {REJECTED.battery: 1} and r.width() == 1.0


def test_a_silent_battery_topic_goes_stale_and_stops_capping(rig) -> None:
    r = rig(**{"governor.stale_timeout_s": 10.0})
    r.core.inputs.on_battery(battery(0.20))
    assert r.width() == 0.5
    r.clock.advance(10.5)
    d = r.decision()
    assert float(d.width) == 1.0 and any("battery" in w and "stale" in w for w in d.warnings)


# --------------------------------------------------------------------------------- budgets
def test_a_latency_budget_slims_to_the_widest_width_that_fits_and_says_so(rig) -> None:
    r = rig()
    r.serve(3)  # 20 ms frames at full width
    r.core.inputs.on_budget(budget(17.0))  # 17 * 0.9 = 15.3 ms: 0.75 (14 ms) fits, 1.0 does not
    r.serve(10)
    d = r.decision()
    assert float(d.width) == 0.75, d.reason
    assert "budget 17ms" in d.reason and "p90 at 0.75" in d.reason
    assert r.meter.widths[-1] == 0.75 and 1.0 not in r.meter.widths[-5:]


def test_a_budget_no_width_meets_gives_the_narrowest_with_a_warning(rig) -> None:
    r = rig()
    r.serve(2)
    r.core.inputs.on_budget(budget(0.01))
    r.serve(5)
    d = r.decision()
    assert float(d.width) == 0.25 and "budget 0.01ms: p90 at 0.25" in d.reason
    assert any("cannot be met" in w for w in d.warnings)


def test_a_loose_budget_probes_back_up_one_step_per_interval(rig) -> None:
    # figures older than a second are forgotten, so the wider widths must be probed again
    r = rig(latency_window_s=1.0)
    r.serve(2)
    r.core.inputs.on_budget(budget(5.0))  # only 0.25 fits
    r.serve(5)
    assert r.width() == 0.25
    r.core.inputs.on_budget(budget(1000.0))  # all fit: widen a step per probe, after dwell
    start = r.clock()
    seen = []
    while r.clock() - start < 30.0 and r.width() != 1.0:
        r.serve()
        if not seen or seen[-1][1] != r.width():
            seen.append((round(r.clock() - start, 2), r.width()))
    assert [w for _, w in seen] == [0.25, 0.5, 0.75, 1.0], seen
    steps = [t for t, _ in seen]
    assert all(b - a >= 3.0 for a, b in zip(steps[1:], steps[2:])), seen  # a probe per 3 s
    assert r.decision().reason.startswith("request 1")


def test_a_budget_that_stops_arriving_goes_stale(rig) -> None:
    r = rig(**{"governor.stale_timeout_s": 10.0})
    r.serve(2)
    r.core.inputs.on_budget(budget(5.0))
    r.serve(5)
    assert r.width() == 0.25
    r.serve(44, period_s=0.25)  # 11 s of frames keep coming, the budget does not
    d = r.decision()
    assert any("budget" in w and "stale" in w for w in d.warnings), d.warnings
    assert float(d.width) > 0.25


def test_a_cpu_budget_slims_a_busy_node_and_a_loose_one_widens_it(rig) -> None:
    # 20 fps; at full width 20 ms CPU per frame = 0.4 of a core = 0.2 of two cores
    r = rig(**{"governor.budget_margin": 1.0})
    r.serve(20)
    assert r.core.node.set_parameters([Parameter("cpu_budget", value=0.05)])[0].successful
    r.serve(20)
    d = r.decision()
    # 0.25: 4 ms x 20 fps / 2 cores = 0.04 of the cores fits 0.05; 0.5 (0.08) does not
    assert float(d.width) == 0.25 and "cpu budget 5%" in d.reason, d.reason
    assert d.cpu_share and all(v > 0 for v in d.cpu_share.values())
    r.core.inputs.on_cpu_budget(Float32(data=1.0))
    r.serve(60, period_s=0.25)  # 15 s
    assert r.width() == 1.0
    r.core.inputs.on_cpu_budget(Float32(data=1.5))  # more than all the cores: rejected
    assert r.core.rejections.snapshot()[0] == {REJECTED.cpu_budget: 1}


# --------------------------------------------------------------------------------- cameras
def test_a_tight_budget_slims_the_low_priority_camera_first(rig) -> None:
    r = rig(cameras=["front", "side"], camera_priorities=[2.0, 1.0],
            **{"governor.stale_timeout_s": 60.0})
    r.serve(3)
    # front at full width (20) + side at its floor (4) = 24 ms fits 27 * 0.9; both full do not
    r.core.inputs.on_budget(budget(27.0))
    r.serve(40, period_s=0.25)  # 10 s
    front, side = r.decision("front"), r.decision("side")
    assert (float(front.width), float(side.width)) == (1.0, 0.25), (front.reason, side.reason)
    assert "share" in side.reason
    # side stops sending: it costs nothing and holds its width; front alone in the round
    r.serve(24, cameras=("front",), period_s=0.25)  # 6 s
    side = r.decision("side")
    assert "no recent frame" in side.reason and float(side.width) == 0.25
    assert float(r.decision("front").width) == 1.0
    before = r.core.frame_stats("side")["processed"]
    r.serve(3)  # and is served again when it comes back
    assert r.core.frame_stats("side")["processed"] == before + 3
    assert "share" in r.decision("side").reason


def test_priorities_change_at_runtime_and_the_other_camera_slims(rig) -> None:
    r = rig(cameras=["front", "side"], camera_priorities=[2.0, 1.0],
            **{"governor.stale_timeout_s": 60.0})
    r.serve(3)
    r.core.inputs.on_budget(budget(27.0))
    r.serve(40, period_s=0.25)  # 10 s
    assert (r.width("front"), r.width("side")) == (1.0, 0.25)
    assert r.core.node.set_parameters([Parameter("camera_priorities",
                                                 value=[1.0, 3.0])])[0].successful
    r.serve(80, period_s=0.25)  # 20 s
    assert (r.width("front"), r.width("side")) == (0.25, 1.0)
    bad = r.core.node.set_parameters([Parameter("camera_priorities", value=[1.0])])[0]
    assert not bad.successful and "one per camera" in bad.reason


def test_a_flooding_camera_gets_one_turn_per_round(rig) -> None:
    r = rig(cameras=["flood", "steady"])
    served = []
    for i in range(12):
        for _ in range(5):  # five flood frames per steady frame: four are dropped
            r.core.on_image("flood", r.frames["flood"])
        if i % 2 == 0:
            r.core.on_image("steady", r.frames["steady"])
        while r.core.serve_next(timeout=0.0):
            served.append(r.core._slots._order[(r.core._slots._next - 1) % 2])
    assert served.count("steady") == 6
    assert r.core.frame_stats("flood")["dropped"] == 48
    assert r.core.frame_stats("steady")["dropped"] == 0


def test_bad_frames_on_one_camera_change_nothing_for_the_other(rig) -> None:
    r = rig(cameras=["front", "left"])
    bad = image_msg(np.zeros((4, 4, 3), np.uint8), "rgb8")
    bad.encoding = "yuv_unknown"
    r.core.on_image("left", bad)
    r.core.on_image("front", r.frames["front"])
    while r.core.serve_next(timeout=0.0):
        pass
    assert r.core.camera("left").rejections.snapshot()[0] == {REJECTED.image: 1}
    assert r.core.camera("front").rejections.snapshot()[0] == {}
    assert r.core.frame_stats("front")["processed"] == 1


# --------------------------------------------------------------------------------- lazy
def test_nobody_listening_means_no_inference_and_the_first_frame_after_a_subscriber_is_served(
        rig) -> None:
    r = rig()
    r.serve(2)
    assert len(r.meter.widths) == 2
    r.listen(mask=0)  # the last subscriber leaves
    r.serve(5)
    stats = r.core.frame_stats()
    assert len(r.meter.widths) == 2 and stats["processed"] == 2  # no engine call since
    assert stats["skipped"] == {SKIPPED.no_subscribers: 5} and stats["received"] == 7
    r.listen(mask_compressed=1)  # any output counts: a PNG-mask subscriber arrives
    r.serve(1)
    assert len(r.meter.widths) == 3 and r.core.frame_stats()["processed"] == 3
    r.listen(mask_compressed=0, color=1)  # colour is enabled by default: it counts too
    r.serve(1)
    assert len(r.meter.widths) == 4
    r.listen(color=0, overlay=1)  # overlay is off by default: its subscriber gets nothing
    r.serve(1)
    assert len(r.meter.widths) == 4
    assert r.core.node.set_parameters([Parameter("lazy", value=False)])[0].successful
    r.serve(2)  # lazy off: inferred for nobody
    assert len(r.meter.widths) == 6
    assert r.core.frame_stats()["skipped"] == {SKIPPED.no_subscribers: 6}


def test_an_idle_camera_holds_its_width_and_leaves_the_cpu_budget_to_the_others(rig) -> None:
    # a round every ~0.27 s (0.25 s + the frames' cost): about 3.6 frames/s per camera, so at
    # full width (20 ms CPU) each takes 3.6% of two cores; 4.8% fits front at 1.0 and side at
    # 0.25 (0.7%), not side at 0.5 (1.4%)
    r = rig(cameras=["front", "side"], camera_priorities=[2.0, 1.0], cpu_budget=0.048,
            **{"governor.budget_margin": 1.0, "governor.stale_timeout_s": 60.0})
    r.serve(40, period_s=0.25)
    assert (r.width("front"), r.width("side")) == (1.0, 0.25)
    r.listen("side", mask=0)  # nobody listens to side: it holds 0.25 and costs nothing
    r.serve(80, period_s=0.25)
    side = r.decision("side")
    assert float(side.width) == 0.25 and "no recent frame" in side.reason, side.reason
    assert r.width("front") == 1.0
    assert r.core.frame_stats("side")["skipped"][SKIPPED.no_subscribers] == 80
    widths_before = len(r.meter.widths)
    r.serve(1, cameras=("side",))
    assert len(r.meter.widths) == widths_before  # still idle: not inferred
    r.listen("side", mask=1)  # a subscriber again: the next frame is served
    before = r.core.frame_stats("side")["processed"]
    r.serve(1, cameras=("side",))
    assert r.core.frame_stats("side")["processed"] == before + 1
    assert "no recent frame" not in r.decision("side").reason


def test_a_repeated_frame_is_not_inferred_again_but_zero_stamps_are_never_repeats(rig) -> None:
    r = rig()
    frame = r.stamp()
    for _ in range(3):  # the same stamp and frame_id three times (a driver repeating itself)
        r.clock.advance(0.1)  # (at 10 Hz: a burst would be overload, served at a lower rate)
        r.core.on_image("", frame)
        r.core.serve_next()
    assert len(r.meter.widths) == 1
    assert r.core.frame_stats()["skipped"] == {SKIPPED.duplicate: 2}
    other = image_msg(np.full((24, 32, 3), 90, np.uint8), "rgb8", frame_id="other_camera",
                      stamp=frame.header.stamp)
    r.clock.advance(0.1)
    r.core.on_image("", other)  # same stamp, another frame_id: a new frame
    r.core.serve_next()
    assert len(r.meter.widths) == 2
    unstamped = image_msg(np.full((24, 32, 3), 90, np.uint8), "rgb8")
    for _ in range(3):  # a camera that never stamps: every frame is new
        r.clock.advance(0.1)
        r.core.on_image("", unstamped)
        r.core.serve_next()
    assert len(r.meter.widths) == 5
    assert r.core.frame_stats()["skipped"] == {SKIPPED.duplicate: 2}


# --------------------------------------------------------------------------------- host
def test_host_temperature_caps_while_the_topic_is_silent_and_a_live_topic_wins(rig) -> None:
    hot = {"coretemp": [shwtemp("Package id 0", 95.0, None, None)]}

    def reader(sensors: bool = True) -> PsutilSample:
        return PsutilSample(temperatures=hot if sensors else {}, cpu_seconds=1.0, age_s=10.0)

    r = rig(host=reader, host_sensors="auto", **{"governor.stale_timeout_s": 10.0})
    r.core.read_host()
    d = r.decision()
    assert float(d.width) == 0.25 and "host thermal 95.0C" in d.reason, d.reason
    r.core.inputs.on_temperature(temperature(40.0))  # a live topic wins over the host
    r.clock.advance(2.1)
    d = r.decision()
    assert float(d.width) == 1.0 and "host" not in d.reason, d.reason
    r.clock.advance(10.5)  # the topic goes silent: the host's reading caps again
    r.core.read_host()
    d = r.decision()
    assert float(d.width) == 0.25 and "host thermal" in d.reason
    assert r.core.node.set_parameters([Parameter("host_sensors", value="off")])[0].successful
    r.clock.advance(2.1)
    assert r.width() == 1.0  # sensors off: the host's readings are forgotten at once


# --------------------------------------------------------------------------------- rate
def spacing(numbers: list[int]) -> set[int]:
    """Return the gaps between consecutive numbers."""
    return {b - a for a, b in zip(numbers, numbers[1:])}


def test_a_cpu_budget_below_the_narrowest_width_serves_every_kth_frame_and_gives_it_back(
        rig) -> None:
    # at 30 frames/s width 0.25 (4 ms) takes 6% of the two cores: 3.5% needs every 2nd frame
    r = rig(**{"governor.budget_margin": 1.0})
    assert len(r.stream(1.0, 30.0)) == 30  # no budget, and keeping up: every frame
    r.core.inputs.on_cpu_budget(Float32(data=0.035))
    r.stream(1.0, 30.0)  # the width goes down first, then the rate
    d = r.decision()
    assert (float(d.width), d.stride) == (0.25, 2), (d.reason, d.rate_reason)
    assert d.rate_reason.startswith("1 in 2 frames") and "overload" not in d.rate_reason
    assert d.served_cpu_share <= 0.035
    skipped = r.core.frame_stats()["skipped"].get(SKIPPED.rate, 0)
    inferred = r.stream(2.0, 30.0)
    assert len(inferred) == 30 and spacing(inferred) == {2}  # evenly spaced
    assert r.core.frame_stats()["skipped"][SKIPPED.rate] == skipped + 30
    assert not any("cannot be met" in w for w in r.decision().warnings)
    r.core.inputs.on_cpu_budget(Float32(data=0.025))  # tighter: a lower rate at once
    r.stream(0.5, 30.0)
    assert (r.width(), r.decision().stride) == (0.25, 3)
    r.core.inputs.on_cpu_budget(Float32(data=1.0))  # loosened: the rate waits for dwell...
    r.stream(0.5, 30.0)
    d = r.decision()
    assert (float(d.width), d.stride) == (0.25, 3) and d.rate_reason.startswith("dwell")
    assert d.reason.startswith("rate first"), d.reason
    r.stream(1.7, 30.0)  # ...comes back before the width...
    d = r.decision()
    assert (float(d.width), d.stride) == (0.25, 1), (d.reason, d.rate_reason)
    assert d.reason.startswith("dwell"), d.reason
    r.stream(2.2, 30.0)  # ...which widens a dwell later
    assert r.width() > 0.25 and r.decision().stride == 1


def test_overload_without_a_budget_lowers_the_rate_and_keeps_the_width(rig) -> None:
    slow = {0.25: (40.0, 40.0), 0.5: (45.0, 45.0), 0.75: (50.0, 50.0), 1.0: (60.0, 60.0)}
    r = rig(costs=slow)
    r.stream(2.0, 30.0)  # 60 ms a frame at 30 frames/s: the node cannot keep up
    d = r.decision()
    assert (float(d.width), d.stride) == (1.0, 2) and "overload" in d.rate_reason
    inferred = r.stream(2.0, 30.0)
    assert len(inferred) == 30 and spacing(inferred) == {2}  # every 2nd frame


def test_the_floor_holds_a_camera_at_min_rate_hz_and_says_the_budget_is_not_met(rig) -> None:
    r = rig(cpu_budget=0.001, **{"governor.budget_margin": 1.0, "governor.min_rate_hz": 5.0})
    r.stream(3.0, 30.0)
    d = r.decision()
    assert (float(d.width), d.stride) == (0.25, 6), d.rate_reason  # 5 frames/s
    assert "cannot be met at the floor governor.min_rate_hz 5" in d.rate_reason
    assert any("floor" in w for w in d.warnings)


def test_low_priority_cameras_give_way_first(rig) -> None:
    # two cameras at 20 frames/s each, both at 0.25 (4 ms): 4% of the cores each
    r = rig(cameras=["front", "side"], camera_priorities=[2.0, 1.0], cpu_budget=0.06,
            **{"governor.budget_margin": 1.0, "governor.stale_timeout_s": 60.0})
    for _ in range(4):  # 4 s, the cameras alternating
        for i in range(20):
            for name in ("front", "side"):
                r.clock.t = max(r.clock.t, r.clock.t + 0.025)
                r.core.on_image(name, r.stamp(name))
                while r.core.serve_next(timeout=0.0):
                    pass
    front, side = r.decision("front"), r.decision("side")
    assert (float(front.width), float(side.width)) == (0.25, 0.25)
    assert front.stride == 1 and side.stride == 2, (front.rate_reason, side.rate_reason)
    assert r.core.frame_stats("side")["skipped"][SKIPPED.rate] > 0
    assert SKIPPED.rate not in r.core.frame_stats("front")["skipped"]


def test_the_order_per_frame_idle_then_duplicate_then_rate(rig) -> None:
    slow = {0.25: (40.0, 40.0), 0.5: (45.0, 45.0), 0.75: (50.0, 50.0), 1.0: (60.0, 60.0)}
    r = rig(costs=slow)
    r.stream(2.0, 30.0)
    assert r.decision().stride == 2  # overload: every 2nd frame
    frame = r.stamp()
    while len(r.stream(1 / 30, 30.0, frame=lambda i: frame)) == 0:  # until it is served
        frame = r.stamp()
    counts = dict(r.core.frame_stats()["skipped"])
    r.stream(5 / 30, 30.0, frame=lambda i: frame)  # the served frame again: duplicates
    after = r.core.frame_stats()["skipped"]
    assert after[SKIPPED.duplicate] == counts.get(SKIPPED.duplicate, 0) + 5
    assert after[SKIPPED.rate] == counts[SKIPPED.rate]
    r.listen(mask=0)  # nobody listens: idle, before any other reason
    r.stream(0.2, 30.0)
    after = r.core.frame_stats()["skipped"]
    assert after[SKIPPED.no_subscribers] == 6 and after[SKIPPED.rate] == counts[SKIPPED.rate]


def test_rate_and_static_settings_are_checked(rig) -> None:
    r = rig()
    for name, bad in (("governor.min_rate_hz", 0.0), ("governor.min_rate_hz", 61.0),
                      ("governor.min_rate_hz", math.nan), ("static_threshold", -1.0),
                      ("static_max_age_s", 0.0), ("static_max_age_s", math.nan)):
        result = r.core.node.set_parameters([Parameter(name, value=bad)])[0]
        assert not result.successful and name in result.reason, (name, bad, result.reason)
    assert r.core.governor.config.min_rate_hz == 1.0
    assert r.core.value("static_max_age_s") == 1.0
    assert r.core.node.set_parameters([Parameter("governor.min_rate_hz", value=2.5)])[
        0].successful
    assert r.core.governor.config.min_rate_hz == 2.5


# --------------------------------------------------------------------------------- static
def test_a_static_scene_republishes_the_last_mask_until_it_is_too_old_or_changes(rig) -> None:
    r = rig(skip_static=True, static_max_age_s=0.95)
    sent = r.published_masks()
    inferred = r.stream(2.5, 10.0)  # the same picture at 10 frames/s, newly stamped
    assert inferred == [0, 10, 20], inferred  # once per static_max_age_s
    assert len(sent) == 25  # every frame got a mask, with its own header
    assert len({stamp for stamp, _ in sent}) == 25
    assert all(data == sent[0][1] for _, data in sent)
    assert r.core.frame_stats()["skipped"][SKIPPED.static] == 22
    moved = image_msg(np.full((24, 32, 3), 200, np.uint8), "rgb8", frame_id="camera")
    bigger = image_msg(np.full((48, 64, 3), 200, np.uint8), "rgb8", frame_id="camera")

    def scene(i: int) -> Any:
        msg = moved if i < 3 else bigger
        sec = int(r.clock.t)
        msg.header.stamp = Time(sec=sec, nanosec=int((r.clock.t - sec) * 1e9))
        return msg
    # the scene changes: inferred at once; then the same again: republished; a new size: inferred
    r.clock.advance(0.1)
    assert r.stream(0.5, 10.0, frame=scene) == [0, 3]
    r.core.inputs.on_width(Float32(data=0.5))  # a mask of another width is never reused
    r.clock.advance(0.1)
    assert r.stream(0.3, 10.0, frame=lambda i: scene(3)) == [0]
    assert r.core.node.set_parameters([Parameter("skip_static", value=False)])[0].successful
    r.clock.advance(0.1)
    assert len(r.stream(0.3, 10.0)) == 3  # off: every frame inferred


# ----------------------------------------------------------------------------- the ladder
#: the ladder beside the checkpoint: points (width, input size, ms) and every width at 24x32
LADDER_POINTS = [(0.25, (8, 16), 2.0), (0.5, (16, 24), 5.0), (1.0, (16, 24), 9.0)]
LADDER_COSTS = {"0.25@8x16": (2.0, 2.0), "0.5@16x24": (5.0, 5.0), "1@16x24": (9.0, 9.0),
                **COSTS}


@pytest.fixture(scope="module")
def ladder_checkpoint(tmp_path_factory) -> Any:
    """Write a tiny checkpoint (input 24x32) with a ladder of three points beside it."""
    import json

    path = make_tiny_checkpoint(tmp_path_factory.mktemp("ladder") / "tiny.pt",
                                input_size=(24, 32))
    path.with_name("tiny.ladder.json").write_text(json.dumps({
        "format": "slimseg-ladder", "version": 1, "input_size": [24, 32],
        "measured_on": "scripted", "split": "val",
        "points": [{"width": w, "input_size": list(s), "latency_ms": ms, "miou": None}
                   for w, s, ms in LADDER_POINTS],
        "full": [{"width": w, "latency_ms": wall, "miou": None}
                 for w, (wall, _) in COSTS.items()]}))
    return path


def test_a_budget_serves_a_ladder_point_and_the_caps_bound_its_width(
        rig, ladder_checkpoint) -> None:
    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint))
    ladder = r.core.governor.ladder
    assert ladder.describe() == ("0.25@8x16 < 0.25 < 0.5@16x24 < 0.5 < 1@16x24 < 0.75 < 1")
    masks = r.published_masks()
    r.serve(1)
    assert r.meter.steps == ["1"]  # no budget: the request at the full input
    r.send(r.core.inputs.on_budget, budget(10.5))  # x 0.9 = 9.45 ms
    r.serve(4)
    # 1 costs 20 ms: one rung down per frame to the first that fits, and it stays
    assert r.meter.steps == ["1", "1@16x24", "1@16x24", "1@16x24", "1@16x24"]
    d = r.decision()
    assert (float(d.width), d.input_size, d.decided_by) == (1.0, (16, 24), ("budget",))
    frame = r.frames[""]
    engine = r.core.engine
    rgb = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, frame.width, 3)
    at_point, _ = engine.segment(rgb, engine.widths[-1], input_size=(16, 24))
    assert masks[-1][1] == at_point.tobytes()  # what went out is the point's mask
    status = r.diagnostics()[0]
    assert status.input_size == "16x24" and status.active_width == 1.0
    assert status.ladder.startswith("0.25@8x16 < 0.25 < 0.5@16x24") and "tiny.ladder.json" \
        in status.ladder
    assert set(status.point_latency) == {"1@16x24"} and set(status.latency) == {1.0}
    # a request of 0.5 bounds the width: 0.5 at the full input (8 ms) fits the budget
    r.send(r.core.inputs.on_width, Float32(data=0.5))
    r.serve(2)
    assert r.meter.steps[-2:] == ["0.5", "0.5"] and r.decision().input_size is None
    r.send(r.core.inputs.on_budget, budget(6.0))  # 5.4 ms: 0.5 at 16x24 (5 ms)
    r.serve(2)
    assert r.meter.steps[-1] == "0.5@16x24", r.decision().reason


def test_use_ladder_false_runs_widths_only_and_says_so(rig, ladder_checkpoint) -> None:
    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint), use_ladder=False)
    assert not r.core.governor.ladder.has_points
    r.send(r.core.inputs.on_budget, budget(10.5))
    r.serve(4)
    assert r.meter.steps == ["1", "0.75", "0.5", "0.5"]  # widths only: 0.5 at full input fits
    status = r.diagnostics()[0]
    assert status.ladder == "ladder off (use_ladder false)" and status.input_size == "full"


def test_idle_steps_hand_back_their_working_memory_and_a_cold_frame_is_no_latency_figure(
        rig, ladder_checkpoint) -> None:
    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint), backend="openvino",
            release_idle_s=1.0)
    held = "held by {} of 7 operating points{}; the others handed back after 1 s idle"
    # the warm-up's memory (widths at the start, points once prepared) is handed back
    assert r.diagnostics()[0].working_memory == held.format(0, "")
    masks = r.published_masks()
    r.serve(1)
    status = r.diagnostics()[0]
    assert r.meter.steps == ["1"] and status.latency == {}  # allocating: not what 1 costs
    assert status.working_memory == held.format(1, " (1)")
    r.serve(1)
    assert set(r.diagnostics()[0].latency) == {1.0}  # warm: a figure
    r.send(r.core.inputs.on_budget, budget(10.5))  # x 0.9 = 9.45 ms: 1@16x24 fits
    r.serve(3)
    assert r.meter.steps[2:] == ["1@16x24"] * 3
    status = r.diagnostics()[0]
    assert status.working_memory == held.format(2, " (1@16x24, 1)")
    assert set(status.point_latency) == {"1@16x24"}  # from its two warm frames
    engine, frame = r.core.engine, r.frames[""]
    rgb = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, frame.width, 3)
    assert masks[-1][1] == engine.segment(rgb, engine.widths[-1], input_size=(16, 24))[0] \
        .tobytes()
    r.clock.advance(1.0)  # no frame for 1 s: width 1 hands its memory back, the point keeps
    assert r.core.serve_next(timeout=0.0) is False
    assert r.diagnostics()[0].working_memory == held.format(1, " (1@16x24)")
    r.send(r.core.inputs.on_budget, budget(0.0))  # no budget: back to 1 after the dwell
    r.serve(60)
    back = r.meter.steps.index("1", 5)
    assert r.meter.steps[back:] == ["1"] * (len(r.meter.steps) - back)
    # 1 allocated again on its first frame back; the point idle since then handed its back
    assert r.diagnostics()[0].working_memory == held.format(1, " (1)")


def test_a_release_that_fails_is_logged_and_every_step_keeps_its_memory(rig, monkeypatch) -> None:
    r = rig(backend="openvino", release_idle_s=1.0)
    errors: list[str] = []
    monkeypatch.setattr(r.core.node.get_logger(), "error", errors.append, raising=False)

    def failing() -> bool:
        raise RuntimeError("no such call")

    for graph in r.core.engine._graphs:  # the runtime's own call fails
        monkeypatch.setattr(graph, "release_memory", failing)
    r.serve(1)
    r.send(r.core.inputs.on_width, Float32(data=0.5))
    r.serve(40)  # 2 s at 0.5: width 1 idle, its release fails
    assert r.meter.steps[-1] == "0.5"
    assert len(errors) == 1 and "every step keeps its own from now on" in errors[0]
    assert r.diagnostics()[0].working_memory == "every operating point keeps its own"
    served = len(r.meter.steps)
    r.serve(3)  # frames go on being served, none rejected
    assert len(r.meter.steps) == served + 3 and not r.diagnostics()[0].rejected


@pytest.mark.parametrize(("params", "says"), [
    ({"backend": "openvino", "release_idle_s": 0.0}, "every operating point keeps its own"),
    ({"backend": "torch", "release_idle_s": 1.0}, "every operating point keeps its own")])
def test_without_release_every_frame_is_a_latency_figure(rig, params, says) -> None:
    r = rig(**params)
    r.serve(1)
    status = r.diagnostics()[0]
    assert set(status.latency) == {1.0} and status.working_memory == says


def test_the_ladders_points_are_prepared_once_a_budget_is_set_and_offered_then(
        context, ladder_checkpoint, monkeypatch) -> None:
    import time

    from slimseg_ros.ros.timing import ProcessMeter

    monkeypatch.setattr(host_watch, "usable_cores", lambda: 2)
    values = {**BASE, "checkpoint": str(ladder_checkpoint), "backend": "openvino"}
    node = rclpy.create_node("slimseg_points", context=context,
                             parameter_overrides=[Parameter(k, value=v)
                                                  for k, v in values.items()])
    core = SlimSegCore(node, clock=time.monotonic, meter=ProcessMeter(),
                       host_reader=lambda sensors=True: PsutilSample())
    try:
        core.configure()  # the widths are ready; the points wait for a budget
        engine, governor = core.engine, core.governor
        assert governor.ladder.has_points and not governor.points_ready
        frame = np.full((24, 32, 3), 90, np.uint8)
        with pytest.raises(ValueError, match="not prepared yet"):
            engine.segment(frame, engine.widths[-1], input_size=(16, 24))
        sent: list[Any] = []
        core.activate(worker=True)
        core._diag_pub.publish = lambda array: sent.extend(array.status)
        core.decide()
        assert core._points_thread is None and not engine.points_ready  # no budget: none
        core.publish_diagnostics()
        ladder = read_diagnostics({kv.key: kv.value for kv in sent[-1].values}).ladder
        assert ladder.startswith("3 operating points, prepared once a budget is set, the "
                                 "widths only until then (ladder of 3 points from"), ladder
        core.inputs.on_budget(budget(30.0))
        preparing = core._points_thread
        assert preparing is not None  # compiled on a thread of its own, beside the frames
        preparing.join()  # however long a busy machine takes
        assert governor.points_ready and engine.points_ready
        core.inputs.on_budget(budget(0.0))
        core.decide()
        assert core._points_thread is preparing  # prepared once, kept without a budget
        mask, _ = engine.segment(frame, engine.widths[-1], input_size=(16, 24))
        assert mask.shape == (24, 32)
        core.publish_diagnostics()
        ladder = read_diagnostics({kv.key: kv.value for kv in sent[-1].values}).ladder
        assert ladder.startswith("0.25@8x16 < 0.25 < 0.5@16x24"), ladder
    finally:
        core.shutdown()
        node.destroy_node()


def test_a_cpu_budget_set_at_start_prepares_the_points_at_start(rig, ladder_checkpoint) -> None:
    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint), cpu_budget=0.9)
    assert r.core.governor.points_ready and r.core.engine.points_ready


def test_a_governor_waiting_for_the_points_says_so(rig, ladder_checkpoint) -> None:
    from slimseg_ros.ros.diagnostics import ladder_text

    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint))
    waiting = type(r.core.governor)(r.core.governor.widths, r.core.governor.config,
                                    ladder=r.core.governor.ladder, points_ready=False)
    assert ladder_text(r.core.engine, waiting).startswith(
        "preparing 3 operating points, the widths only until then (ladder of 3 points from")
    assert ladder_text(r.core.engine, waiting, started=False).startswith(
        "3 operating points, prepared once a budget is set, the widths only until then (")


def test_frames_served_beside_the_points_compile_are_no_latency_figures(rig) -> None:
    import threading

    r = rig()
    done = threading.Event()
    compiling = threading.Thread(target=done.wait, daemon=True)
    compiling.start()
    r.core._points_thread = compiling  # as while the ladder's points compile beside the frames
    try:
        r.serve(3)
        assert len(r.meter.steps) == 3 and r.diagnostics()[0].latency == {}
    finally:
        done.set()
        compiling.join()
    r.serve(2)
    assert set(r.diagnostics()[0].latency) == {1.0}


def test_points_that_cannot_be_prepared_leave_the_widths_and_say_why(
        rig, ladder_checkpoint, monkeypatch) -> None:
    from slimseg_ros.ros.diagnostics import ladder_text

    r = rig(costs=LADDER_COSTS, checkpoint=str(ladder_checkpoint))
    engine = r.core.engine
    waiting = type(r.core.governor)(r.core.governor.widths, r.core.governor.config,
                                    ladder=r.core.governor.ladder, points_ready=False)

    def broken(warm_size=None, release=False):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "prepare_points", broken)
    r.core._prepare_points(engine, waiting)
    assert not waiting.points_ready
    assert ladder_text(engine, waiting) == ("no ladder: its operating points could not be "
                                            "prepared (out of memory) (widths only)")
