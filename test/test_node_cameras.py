"""
The node with several cameras over real rclpy/DDS.

One engine, each camera's masks with its own header on its own topics, fair service under a
flood, bad input kept to its camera, a tight budget slimming the low-priority camera first, a
silent camera costing nothing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("diagnostic_msgs.msg")

from rclpy.parameter import Parameter  # noqa: E402

from node_harness import (Probe, Spinner, image_msg, make_tiny_checkpoint,  # noqa: E402
                          pick_domain_id, wait_for)
from slimseg_ros.ros.contract import REJECTED, camera_status_name  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode, StartupError  # noqa: E402

pytestmark = pytest.mark.ros

FAST = {"qos_check_period_s": 0.1, "diagnostics_period_s": 0.2, "governor.min_dwell_s": 0.2,
        "governor.probe_interval_s": 0.5, "latency_window_frames": 5, "backend": "torch",
        "torch_threads": 1}


DOMAIN = pick_domain_id()

# A camera in its own process, as on a robot, publishing small frames as fast as it can.
FLOOD_SCRIPT = """
import sys, time, array
import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
topic, seconds = sys.argv[1], float(sys.argv[2])
rclpy.init()
node = rclpy.create_node("flood_camera")
pub = node.create_publisher(Image, topic, QoSProfile(depth=1))
msg = Image(height=8, width=8, encoding="rgb8", step=24)
msg.data = array.array("B", bytes(range(192)))
msg.header.frame_id = "flood"
end = time.monotonic() + seconds
sent = 0
while time.monotonic() < end:
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
    sent += 1
    time.sleep(0.004)  # up to 250 frames/s: many times what the node can serve
print(sent, flush=True)
node.destroy_node()
rclpy.try_shutdown()
"""


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    # a small network input keeps each frame cheap on a loaded 2-core machine
    return make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", input_size=(32, 48))


@pytest.fixture
def start(context, checkpoint):
    """
    Start a node with cameras and a probe, both spinning until the test ends.

    Called as ``(cameras, **params) -> (node, probe, {name: channel})``.
    """
    made = []

    def _start(cameras, **params):
        values = {"checkpoint": str(checkpoint), **FAST, "cameras": list(cameras), **params}
        node = SlimSegNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context, name="camera_probe")
        channels = {name: probe.add_camera(name) for name in cameras}
        spinner = Spinner(context, node, probe.node)
        made.append((node, probe, spinner))
        for channel in channels.values():  # latched active width of every camera: node is up
            wait_for(lambda: channel.width() is not None)
        return node, probe, channels
    yield _start
    errors = []
    for node, probe, spinner in made:
        try:
            spinner.stop()
        except AssertionError as exc:
            errors.append(exc)
        node.destroy_node()
        probe.destroy()
    if errors:
        raise errors[0]


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def stamped(node, pixels: np.ndarray, frame_id: str):
    return image_msg(pixels, "rgb8", frame_id=frame_id, stamp=node.get_clock().now().to_msg())


def test_each_camera_gets_its_own_masks_with_its_own_header(start) -> None:
    node, probe, ch = start(["front", "left"])
    sizes = {"front": (48, 64), "left": (30, 44)}
    stamps = {"front": rclpy.time.Time(seconds=100, nanoseconds=1),
              "left": rclpy.time.Time(seconds=200, nanoseconds=2)}
    msgs = {n: image_msg(frame(*sizes[n], seed=i), "rgb8", frame_id=f"{n}_optical",
                         stamp=stamps[n].to_msg()) for i, n in enumerate(sizes)}

    def send() -> None:
        for n, msg in msgs.items():
            ch[n].image_pub.publish(msg)
    wait_for(lambda: all(c.mask_count() >= 3 for c in ch.values()), timeout=20, action=send)
    for n, c in ch.items():
        with probe.lock:
            masks = list(c.masks)
        h, w = sizes[n]
        assert all((m.height, m.width, m.header.frame_id) == (h, w, f"{n}_optical")
                   for m in masks), n
        assert all((m.header.stamp.sec, m.header.stamp.nanosec) ==
                   (stamps[n].seconds_nanoseconds()) for m in masks), n
    assert probe.count(probe.masks) == 0  # nothing on the single-camera topic
    assert node.core.camera("front").latency is not node.core.camera("left").latency
    d = probe.fresh_diag(lambda v: v.cameras == ("front", "left"))  # the shared status
    assert d.trained_widths == (0.25, 0.5, 0.75, 1.0) and d.frames_processed >= 6
    front = ch["front"].fresh_diag(lambda v: v.frames_processed >= 3)
    assert front.camera == "front" and front.last_frame.width_px == 64
    assert front.image_topic == "/front/image" and front.priority == 1.0


def test_a_flooding_camera_does_not_starve_a_steady_one(start) -> None:
    node, probe, ch = start(["flood", "steady"])
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN), "OMP_NUM_THREADS": "1"}
    flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, "/" + ch["flood"].topics.image,
                              "30"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ch["flood"].mask_count() >= 20 or flood.poll() is not None, timeout=30)
        assert flood.poll() is None, "the flooding camera process ended early"
        steady = frame(48, 64)
        period, count = 0.1, 30
        flood_before = node.frame_stats("flood")["processed"]
        began = time.monotonic()
        sent_ns = []
        for i in range(count):  # 10 frames/s for 3 s
            msg = stamped(node, steady, f"steady_{i}")
            sent_ns.append(rclpy.time.Time.from_msg(msg.header.stamp).nanoseconds)
            ch["steady"].image_pub.publish(msg)
            time.sleep(period)
        time.sleep(2 * period)
        seconds = time.monotonic() - began
        flood_during = node.frame_stats("flood")
    finally:
        flood.kill()
        flood.wait(timeout=10)
    with probe.lock:
        masks, arrivals = list(ch["steady"].masks), list(ch["steady"].mask_arrival)
        flood_arrivals = np.array(sorted(ch["flood"].mask_arrival))
    served = {m.header.frame_id for m in masks}
    ages_ms = [(t - rclpy.time.Time.from_msg(m.header.stamp).nanoseconds) / 1e6
               for m, t in zip(masks, arrivals)]
    # Starved: a steady frame that waited while the node served flood frames. Taking turns,
    # the node finishes at most the flood frame in hand and then serves the waiting one, so at
    # most a few flood masks arrive while it waits; a flood-first node would serve ~10 per
    # period. A frame the next one replaced waited until then. This holds through a stall of
    # the whole process (a slow machine delays both cameras alike), where ages alone do not.
    answered = {m.header.frame_id: t for m, t in zip(masks, arrivals)}
    starved, waits = [], []
    for i, sent in enumerate(sent_ns):
        until = answered.get(f"steady_{i}",
                             sent_ns[i + 1] if i + 1 < count else sent + 2 * period * 1e9)
        flood_meanwhile = int(np.count_nonzero((flood_arrivals > sent) &
                                               (flood_arrivals < until)))
        waits.append(flood_meanwhile)
        if flood_meanwhile > 2:
            starved.append((i, flood_meanwhile))
    median_age = float(np.median(ages_ms)) if ages_ms else math.inf
    print(f"\nsteady: {len(served)}/{count} frames served, mask age max "
          f"{max(ages_ms, default=math.inf):.0f} ms, median {median_age:.0f} ms, "
          f"flood masks during each wait {waits}, starved (frame, flood masks meanwhile) "
          f"{starved}; flood: {flood_during['received']} received, "
          f"{flood_during['processed']} served, {flood_during['dropped']} dropped")
    # The criteria presume a node that can serve both cameras at all: on a machine so loaded
    # that it runs fewer than two frames per steady period, no scheduler could meet them.
    capacity = (flood_during["processed"] - flood_before + len(served)) / seconds
    if capacity < 2.0 / period:
        pytest.skip(f"machine too loaded to judge fairness: the node served {capacity:.1f} "
                    f"frames/s in all, under the {2.0 / period:.0f} two cameras need")
    assert len(starved) <= 0.1 * count, starved
    assert len(served) >= 0.5 * count and median_age < 2 * period * 1000.0
    # it really flooded: the node was busy often enough for a fifth of the frames to be dropped
    assert flood_during["dropped"] > 0.2 * flood_during["received"]
    assert flood_during["processed"] >= len(served)  # and was served in between


def test_bad_input_on_one_camera_changes_nothing_for_the_other(start) -> None:
    node, probe, ch = start(["front", "left"], warn_throttle_s=60.0)
    good = image_msg(frame(30, 40), "rgb8", frame_id="front_cam")
    bad = image_msg(frame(30, 40), "rgb8", frame_id="left_cam")
    bad.encoding = "yuv_unknown"

    def send() -> None:
        ch["front"].image_pub.publish(good)
        ch["left"].image_pub.publish(bad)
    wait_for(lambda: ch["front"].mask_count() >= 5 and
             ch["left"].diag().rejected.get(REJECTED.image, 0) >= 3, timeout=20, action=send)
    ch["left"].send_width(7.0)  # a bad request on left's own topic
    left = ch["left"].fresh_diag(lambda v: v.rejected.get(REJECTED.width) == 1)
    assert "unsupported image encoding 'yuv_unknown'" in left.last_rejected[REJECTED.image]
    front = ch["front"].fresh_diag(lambda v: v.frames_processed >= 5)
    assert front.rejected == {} and front.active_width == 1.0 and front.warnings == ()
    assert ch["left"].mask_count() == 0
    assert probe.fresh_diag(lambda v: v.cameras != ()).rejected == {}  # shared: none either
    level, _, _ = probe.fresh_status(lambda v: v.camera == "front",
                                     status=camera_status_name("slimseg_node", "front"))
    assert level == 0  # front's status stays OK while left's warns
    ch["front"].send_width(0.5)  # the cameras' own requests are their own
    wait_for(lambda: ch["front"].width() == 0.5)
    assert ch["left"].width() == 1.0
    assert ch["front"].fresh_diag(lambda v: v.active_width == 0.5).reason == "camera request 0.5"


def test_tight_budget_slims_the_low_priority_camera_first(start) -> None:
    # p90 of up to 15 frames a second rather than FAST's max of 5: one passing latency spike on
    # a loaded machine must not decide a width
    node, probe, ch = start(["front", "side"], camera_priorities=[2.0, 1.0],
                            latency_window_s=1.0, latency_window_frames=15)
    msgs = {n: image_msg(frame(48, 64, seed=i), "rgb8", frame_id=n) for i, n in enumerate(ch)}
    sending = {"front", "side"}
    budget: list[float] = []

    def send() -> None:  # frames, and the budget as a live topic (a silent one goes stale)
        for n in sorted(sending):
            ch[n].image_pub.publish(msgs[n])
        if budget:
            probe.send_budget(budget[0])
    wait_for(lambda: all(1.0 in c.diag().latency for c in ch.values()), timeout=20,
             action=send, action_period=0.05)
    # the median, not the p90, of the window: one stalled frame must not set the budget
    full = max(c.diag().latency[1.0].p50_ms for c in ch.values())

    def state() -> str:  # what each camera chose and why, for a failure message
        return "; ".join(f"{n}: width {c.width()}, {c.diag().reason!r}, latency ms " + str(
            {w: round(v.pq_ms, 1) for w, v in sorted(c.diag().latency.items())})
            for n, c in ch.items()) + f"; full {full:.1f} ms"
    # front at full width and side at its floor fit, both at full width do not
    budget.append(1.75 * full / 0.9)
    # the side camera is slimmed and front keeps its full width (a passing latency spike may
    # slim front for a round; its next probe widens it again while side stays slim)
    wait_for(lambda: ch["front"].width() == 1.0 and ch["side"].width() < 1.0, timeout=20,
             action=send, action_period=0.05, describe=state)
    # frames keep coming: a camera that stops sending is soon costed as idle and widened again
    side = ch["side"].fresh_diag(lambda v: v.active_width is not None and v.active_width < 1.0,
                                 action=send, action_period=0.05, describe=state)
    assert "share" in side.reason and side.priority == 1.0
    # the side camera stops: it costs nothing, front is alone in the round
    sending.discard("side")
    side = ch["side"].fresh_diag(lambda v: "no recent frame" in v.reason, timeout=20,
                                 action=send, action_period=0.05, describe=state)
    # alone in the round, front is at (or probes back up to) full width
    ch["front"].fresh_diag(lambda v: "share" not in v.reason and v.active_width == 1.0,
                           timeout=20, action=send, action_period=0.05, describe=state)
    # and it is served again when it comes back
    before = ch["side"].mask_count()
    sending.add("side")
    wait_for(lambda: ch["side"].mask_count() > before + 3, timeout=20, action=send,
             action_period=0.05, describe=state)
    ch["side"].fresh_diag(lambda v: "share" in v.reason, timeout=20, action=send,
                          action_period=0.05, describe=state)


def test_camera_parameters_are_checked_at_start_up(context, checkpoint) -> None:
    base = [Parameter("checkpoint", value=str(checkpoint)), Parameter("backend", value="torch")]
    with pytest.raises(StartupError, match=r"'camera_priorities' has 1 value\(s\)"):
        SlimSegNode(context=context, parameter_overrides=base + [
            Parameter("cameras", value=["front", "left"]),
            Parameter("camera_priorities", value=[2.0])])
    with pytest.raises(StartupError, match="'cameras'.*relative ROS name"):
        SlimSegNode(context=context, parameter_overrides=base + [
            Parameter("cameras", value=["front", "/abs"])])


def test_priorities_change_at_runtime_and_are_validated(start) -> None:
    node, probe, ch = start(["front", "left"])
    r = node.set_parameters([Parameter("camera_priorities", value=[1.0])])[0]
    assert not r.successful and "one per camera" in r.reason
    r = node.set_parameters([Parameter("cameras", value=["x"])])[0]
    assert not r.successful and "read-only" in r.reason.lower()
    assert node.set_parameters([Parameter("camera_priorities", value=[1.0, 3.0])])[0].successful
    assert ch["left"].fresh_diag(lambda v: v.priority == 3.0).camera == "left"
