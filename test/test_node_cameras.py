"""
The node with several cameras over real rclpy/DDS.

One engine, each camera's masks with its own header on its own topics, a flooding camera that
neither queues nor starves a steady one, bad input kept to its camera, each camera's own width
request and priority. Asserted as counts, order and who was served; which camera a tight budget
slims, and when, is test_core_policy's (a fake clock).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("diagnostic_msgs.msg")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402

from node_harness import (DEADLINE, NODE_TEST_PARAMS, Probe, image_msg,  # noqa: E402
                          random_frame, send_until_mask, settled, wait_for,
                          wait_matched)
from slimseg_ros.ros.contract import REJECTED, camera_status_name  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode, StartupError  # noqa: E402

pytestmark = pytest.mark.ros

FAST = NODE_TEST_PARAMS

# A camera in its own process, as on a robot, publishing small frames as fast as it can until
# its stdin closes; it prints how many it sent.
FLOOD_SCRIPT = """
import array, sys, threading, time
import rclpy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
topic = sys.argv[1]
rclpy.init()
node = rclpy.create_node("flood_camera")
pub = node.create_publisher(Image, topic, QoSProfile(depth=1))
msg = Image(height=8, width=8, encoding="rgb8", step=24)
msg.data = array.array("B", bytes(range(192)))
msg.header.frame_id = "flood"
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
end = time.monotonic() + 600  # never outlives a test that died
sent = 0
while not stop.is_set() and time.monotonic() < end:
    msg.header.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
    sent += 1
    time.sleep(0.004)  # up to 250 frames/s: many times what the node can serve
print(sent, flush=True)
node.destroy_node()
rclpy.try_shutdown()
"""
STEADY_FRAMES = 15
RESEND_S = 2.0  # a steady frame not answered by then is sent again (lost in a QoS switch)


@pytest.fixture
def start(context, checkpoint, spin):
    """
    Start a node with cameras and a probe, both spinning until the test ends.

    Called as ``(cameras, **params) -> (node, probe, {name: channel})``.
    """
    def _start(cameras, **params):
        values = {"checkpoint": str(checkpoint), **FAST, "cameras": list(cameras), **params}
        node = SlimSegNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context, name="camera_probe")
        channels = {name: probe.add_camera(name) for name in cameras}
        spin(node, probe)
        for channel in channels.values():  # latched active width of every camera: node is up
            wait_for(lambda: channel.width() is not None)
        wait_matched([c.width_pub for c in channels.values()] + probe.control_publishers(),
                     node)
        return node, probe, channels
    return _start


def stamped(node, pixels, frame_id: str):
    return image_msg(pixels, "rgb8", frame_id=frame_id, stamp=node.get_clock().now().to_msg())


def test_each_camera_gets_its_own_masks_with_its_own_header(start) -> None:
    node, probe, ch = start(["front", "left"])
    sizes = {"front": (48, 64), "left": (30, 44)}
    stamps = {"front": rclpy.time.Time(seconds=100, nanoseconds=1),
              "left": rclpy.time.Time(seconds=200, nanoseconds=2)}
    msgs = {n: image_msg(random_frame(*sizes[n], seed=i), "rgb8", frame_id=f"{n}_optical",
                         stamp=stamps[n].to_msg()) for i, n in enumerate(sizes)}

    sent = {n: [] for n in msgs}

    def send() -> None:  # each frame a new stamp (a repeat of a served frame is not served)
        for n, msg in msgs.items():
            msg.header.stamp.nanosec += 1
            sent[n].append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            ch[n].image_pub.publish(msg)
    wait_for(lambda: all(c.mask_count() >= 3 for c in ch.values()), action=send)
    for n, c in ch.items():
        with probe.lock:
            masks = list(c.masks)
        h, w = sizes[n]
        assert all((m.height, m.width, m.header.frame_id) == (h, w, f"{n}_optical")
                   for m in masks), n
        assert all((m.header.stamp.sec, m.header.stamp.nanosec) in sent[n] for m in masks), n
        assert all(m.header.stamp.sec == stamps[n].seconds_nanoseconds()[0] for m in masks)
    assert probe.count(probe.masks) == 0  # nothing on the single-camera topic
    assert node.core.camera("front").latency is not node.core.camera("left").latency
    # the shared status (a mask goes out just before its frame is counted)
    d = probe.fresh_diag(lambda v: v.cameras == ("front", "left") and v.frames_processed >= 6)
    assert d.trained_widths == (0.25, 0.5, 0.75, 1.0)
    front = ch["front"].fresh_diag(lambda v: v.frames_processed >= 3)
    assert front.camera == "front" and front.last_frame.width_px == 64
    assert front.image_topic == "/front/image" and front.priority == 1.0


def test_a_flooding_camera_does_not_starve_a_steady_one(start, context) -> None:
    """
    A camera flooding the node neither queues up nor keeps a steady camera waiting.

    The steady camera sends a frame at a time, the next once the last one's mask came back,
    while another process floods. Taking turns, the node finishes at most the flood frame in
    hand (and one more if the steady frame is not in its slot yet) before serving the steady
    one, so at most 2 flood masks of frames sent after the steady frame come back before its
    mask; a node serving the flood first would return them without end. Counted in the order
    the probe receives them, so a loaded machine, which slows both cameras alike, changes
    nothing. How old masks are is ``python -m slimseg_ros.tools.multicam_bench``'s (its
    cameras all send at one rate; it has no flooding camera beside a steady one yet).
    """
    node, probe, ch = start(["flood", "steady"])
    steady = ch["steady"]
    pixels = random_frame(48, 64)
    send_until_mask(steady, stamped(node, pixels, "steady_warm_up"))  # matched both ways
    env = {**os.environ, "ROS_DOMAIN_ID": str(context.get_domain_id()), "OMP_NUM_THREADS": "1"}
    flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, "/" + ch["flood"].topics.image],
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ch["flood"].mask_count() >= 20 or flood.poll() is not None)
        assert flood.poll() is None, "the flooding camera process ended early"
        flood_before = ch["flood"].mask_count()
        for i in range(STEADY_FRAMES):  # closed loop: the next once the last was answered
            def send(i: int = i) -> None:
                msg = stamped(node, pixels, f"steady_{i}")
                probe.note("sent", (i, Time.from_msg(msg.header.stamp).nanoseconds))
                steady.image_pub.publish(msg)
            start_count = steady.mask_count()
            wait_for(lambda i=i: any(m.header.frame_id == f"steady_{i}"
                                     for m in steady.masks_since(start_count)),
                     action=send, action_period=RESEND_S,
                     describe=lambda: f"{ch['flood'].mask_count() - flood_before} flood masks "
                                      f"since the steady frames began, "
                                      f"flood {node.frame_stats('flood')}")
        assert flood.poll() is None, "the flood stopped before the steady camera was done"
    finally:
        try:
            out, _ = flood.communicate(timeout=DEADLINE)  # closing its stdin ends it
        except subprocess.TimeoutExpired:
            flood.kill()
            out, _ = flood.communicate()
    sent = int(out.split()[-1])
    # idle again: every frame the node took was served or replaced by a newer one, none waits
    stats = ch["flood"].fresh_diag(lambda v: v.frames_received > 0 and settled(v))
    with probe.lock:
        events = list(probe.events)

    waits, in_flight = [], []  # flood masks ahead of each steady one: of later frames, of all
    for i in range(STEADY_FRAMES):
        answer = next(k for k, (who, m) in enumerate(events)
                      if who == "steady" and m.header.frame_id == f"steady_{i}")
        sent_at, sent_ns = max((k, value[1]) for k, (who, value) in enumerate(events[:answer])
                               if who == "sent" and value[0] == i)
        ahead = [m for who, m in events[sent_at:answer] if who == "flood"]
        in_flight.append(len(ahead))
        waits.append(sum(1 for m in ahead if Time.from_msg(m.header.stamp).nanoseconds >= sent_ns))
    flood_masks = sum(1 for who, _ in events if who == "flood")
    print(f"\nflood masks ahead of each steady one: of frames sent after it {waits}, of any "
          f"frame {in_flight}; flood: {sent} sent, "
          f"{stats.frames_received} received, {stats.frames_processed} served, "
          f"{stats.frames_dropped} dropped, {flood_masks} masks at the probe")
    assert max(waits) <= 2, waits  # taking turns, never the flood first
    # it really flooded: the node dropped frames, or DDS did before the node
    assert stats.frames_dropped > 0 or stats.frames_received < sent, stats
    assert stats.frames_processed > 0  # and the flood was served in between


def test_bad_input_on_one_camera_changes_nothing_for_the_other(start) -> None:
    node, probe, ch = start(["front", "left"], warn_throttle_s=60.0)
    good = image_msg(random_frame(30, 40), "rgb8", frame_id="front_cam")
    bad = image_msg(random_frame(30, 40), "rgb8", frame_id="left_cam")
    bad.encoding = "yuv_unknown"

    def send() -> None:
        ch["front"].image_pub.publish(good)
        ch["left"].image_pub.publish(bad)
    wait_for(lambda: ch["front"].mask_count() >= 5 and
             ch["left"].diag().rejected.get(REJECTED.image, 0) >= 3, action=send)
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
