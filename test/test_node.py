"""
The node in this process over real rclpy/DDS.

What only DDS shows: frames in and masks out with the frame's header and size in every
encoding, compressed input, width requests, battery and temperature messages reaching the
governor, bad inputs rejected and reported, parameters and QoS matching. A tiny random-weight
model keeps every frame at a few ms. Nothing here measures time: policy over time (budgets, CPU
share, dwell, probing) is test_core_policy's, on a fake clock.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("diagnostic_msgs.msg")

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from node_harness import (NODE_TEST_PARAMS, PALETTE, Probe, Spinner, image_msg,  # noqa: E402
                          random_frame, send_until_mask, try_publish, wait_for,
                          wait_matched)
from slimseg_ros.ros.contract import REJECTED, SKIPPED, TOPICS, compressed_topic  # noqa: E402
from slimseg_ros.ros.conversions import colorize, palette_lut  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode, StartupError  # noqa: E402

pytestmark = pytest.mark.ros

# torch keeps start-up short; the runtime backends have their own test below. A short dwell
# lets a lifted battery or temperature cap raise the width again at the next decision.
FAST = {**NODE_TEST_PARAMS, "governor.min_dwell_s": 0.2}
RESEND_S = 1.0  # battery and temperature are best effort: a lost message is sent again
OK, WARN = (int.from_bytes(level, "little") for level in (DiagnosticStatus.OK,
                                                          DiagnosticStatus.WARN))


@pytest.fixture
def start(context, checkpoint, spin):
    """Start a node and a probe, spinning until the test ends: ``(**params) -> (node, probe)``."""
    def _start(probe_name: str = "probe", remap: dict[str, str] | None = None, **params):
        values = {"checkpoint": str(checkpoint), **FAST, **params}
        rules = [arg for old, new in (remap or {}).items() for arg in ("-r", f"{old}:={new}")]
        node = SlimSegNode(context=context, cli_args=["--ros-args", *rules] if rules else None,
                           parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context, name=probe_name)
        spin(node, probe)
        wait_for(lambda: probe.count(probe.widths) > 0)  # latched active width: node is up
        wait_matched(probe.control_publishers(), node)  # a single control message arrives
        return node, probe
    return _start


def last_width(probe: Probe) -> float | None:
    """Return the active width the node announced last (None before the first)."""
    with probe.lock:
        return probe.widths[-1] if probe.widths else None


@pytest.mark.parametrize(("encoding", "h", "w", "pad"), [
    ("bgr8", 120, 160, 4), ("rgba8", 91, 133, 0), ("mono8", 48, 70, 2), ("rgb8", 480, 640, 0)])
def test_mask_has_the_frames_header_and_size(start, encoding, h, w, pad) -> None:
    node, probe = start()
    probe.subscribe_color()
    rgb = random_frame(h, w)
    pixels = {"bgr8": rgb[:, :, ::-1], "rgb8": rgb, "mono8": rgb[:, :, 0],
              "rgba8": np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)}
    stamp = rclpy.time.Time(seconds=1234, nanoseconds=567).to_msg()
    msg = image_msg(np.ascontiguousarray(pixels[encoding]), encoding, frame_id="cam_left",
                    stamp=stamp, pad=pad)
    mask = send_until_mask(probe, msg)
    assert (mask.height, mask.width, mask.encoding, mask.step) == (h, w, "mono8", w)
    assert mask.header.frame_id == "cam_left"
    assert (mask.header.stamp.sec, mask.header.stamp.nanosec) == (1234, 567)
    values = np.frombuffer(mask.data, np.uint8).reshape(h, w)
    assert values.max() < len(PALETTE)
    wait_for(lambda: probe.count(probe.colors) > 0,
             action=lambda: try_publish(probe.image_pub, msg))
    with probe.lock:
        color = probe.colors[-1]
    assert (color.height, color.width, color.encoding) == (h, w, "rgb8")
    assert color.header.frame_id == "cam_left"
    np.testing.assert_array_equal(np.frombuffer(color.data, np.uint8).reshape(h, w, 3),
                                  colorize(values, palette_lut(PALETTE)))


def test_colour_and_overlay_only_when_wanted(start) -> None:
    node, probe = start()
    msg = image_msg(random_frame(40, 60), "rgb8")
    send_until_mask(probe, msg, count=2)
    assert probe.count(probe.colors) == 0 and probe.count(probe.overlays) == 0
    assert node.core.camera().color_pub.get_subscription_count() == 0
    probe.subscribe_overlay()  # subscribed but disabled: nothing is computed
    wait_for(lambda: node.core.camera().overlay_pub.get_subscription_count() > 0)
    send_until_mask(probe, msg, count=2)
    assert probe.count(probe.overlays) == 0
    assert node.set_parameters([Parameter("publish_overlay", value=True)])[0].successful
    wait_for(lambda: probe.count(probe.overlays) > 0,
             action=lambda: try_publish(probe.image_pub, msg))
    with probe.lock:
        ov = probe.overlays[-1]
    assert (ov.height, ov.width, ov.encoding) == (40, 60, "rgb8")


def test_width_command_sets_active_width_and_next_frame(start) -> None:
    node, probe = start()
    pixels = random_frame(60, 80)
    send_until_mask(probe, image_msg(pixels, "rgb8", frame_id="at_full"))
    d = probe.fresh_diag(lambda v: v.last_frame is not None)
    assert d.last_frame.width == 1.0
    probe.send_width(0.25)
    wait_for(lambda: last_width(probe) == 0.25)  # applied: every frame taken from now is at it
    send_until_mask(probe, image_msg(pixels, "rgb8", frame_id="at_quarter"))
    # the governor's figures for the new width, shown once the frame is counted
    d = probe.fresh_diag(lambda v: v.last_frame is not None and v.last_frame.width == 0.25
                         and 0.25 in v.latency)
    assert d.latency[0.25].frames >= 1 and d.latency[0.25].q == 90.0
    probe.send_width(0.6)  # between trained widths: snaps down to 0.5
    wait_for(lambda: last_width(probe) == 0.5)
    late = Probe(node.context, name="late_joiner")  # transient-local: a late joiner sees it
    spinner = Spinner(node.context, late.node)
    try:
        wait_for(lambda: late.widths == [0.5])
    finally:
        try:
            spinner.stop()
        finally:
            late.destroy()
    diag = probe.fresh_diag(lambda v: v.active_width == 0.5)
    assert diag.reason == "request 0.5"


def test_battery_and_temperature_messages_reach_the_governor(start) -> None:
    """
    Battery (a 0-1 fraction, charging or not) and temperature messages set width and reason.

    One pass over DDS; the rules themselves (rows, hysteresis, dwell, stale inputs) are
    test_core_policy's.
    """
    node, probe = start()

    def settle(predicate, send):  # resent until the node shows it: these topics are best effort
        return probe.fresh_diag(predicate, action=send, action_period=RESEND_S)

    # 10 % discharging: the 15 % row caps at 0.25
    d = settle(lambda v: v.active_width == 0.25, lambda: probe.send_battery(0.10))
    assert "battery 10% <= 15%" in d.reason
    # ignored while charging
    d = settle(lambda v: v.active_width == 1.0, lambda: probe.send_battery(0.10, charging=True))
    assert d.reason == "request 1"

    # >= 80 C: at most 0.5
    d = settle(lambda v: v.active_width == 0.5, lambda: probe.send_temperature(85.0))
    assert "thermal 85.0C >= 80C" in d.reason
    # below 80 but within the 3 C hysteresis: still held
    d = settle(lambda v: "78.5" in v.reason, lambda: probe.send_temperature(78.5))
    assert d.active_width == 0.5 and "held" in d.reason
    d = settle(lambda v: v.active_width == 1.0, lambda: probe.send_temperature(40.0))
    assert d.reason == "request 1"


def test_bad_cpu_budgets_are_refused_and_the_nodes_own_share_is_shown(start) -> None:
    """
    CPU budgets outside (0, 1] are rejected with the reason, and the node's share is reported.

    How a CPU budget slims and widens the node is test_core_policy's (a fake clock and scripted
    CPU costs); over DDS: the topic's bad values and the parameter's are refused, and once
    frames are served the diagnostics show the node's own CPU share and memory.
    """
    node, probe = start()
    send_until_mask(probe, image_msg(random_frame(24, 32), "rgb8"), count=2)
    for bad in (math.nan, -0.1, 1.5):  # rejected with the reason, the state kept
        probe.send_cpu_budget(bad)
    d = probe.fresh_diag(lambda v: v.rejected.get(REJECTED.cpu_budget) == 3)
    assert "fraction of the usable cores" in d.last_rejected[REJECTED.cpu_budget]
    assert d.active_width == 1.0 and d.host.cpu_budget is None
    assert not node.set_parameters([Parameter("cpu_budget", value=1.5)])[0].successful
    # the share needs two readings of the process's CPU time (one every host_period_s)
    d = probe.fresh_diag(lambda v: v.host is not None and v.host.node_cpu_share is not None)
    assert d.host.node_memory_mb is not None and d.host.node_memory_mb > 0
    assert d.host.cores >= 1 and d.host.cpu_budget is None


def test_a_camera_served_at_a_reduced_rate_keeps_every_masks_header(start) -> None:
    """
    Under a CPU budget no width meets, the camera is served every k-th frame over DDS.

    Which k is test_core_policy's (a fake clock and scripted costs); here a budget of 0.01% is
    below any width at any rate above the floor, so the node serves every k-th frame down to
    ``governor.min_rate_hz``: each mask that comes back carries the header of one frame sent
    (stamp and frame_id unchanged) and far fewer masks come back than frames went out.
    """
    node, probe = start(cpu_budget=0.0001, **{"governor.min_rate_hz": 1.0})
    sent: list[tuple[int, int]] = []

    def send() -> None:
        i = len(sent)
        msg = image_msg(random_frame(24, 32, seed=i % 3), "rgb8", frame_id="rated_cam",
                        stamp=rclpy.time.Time(seconds=2000 + i).to_msg())
        if try_publish(probe.image_pub, msg):
            sent.append((2000 + i, 0))
    d = probe.fresh_diag(lambda v: (v.serving_stride or 0) > 1
                         and v.skipped.get(SKIPPED.rate, 0) > 0,
                         action=send, action_period=0.05)
    assert "cannot be met at the floor governor.min_rate_hz 1" in d.rate_reason, d.rate_reason
    start_count, start_sent = probe.mask_count(), len(sent)
    wait_for(lambda: len(sent) - start_sent >= 40, action=send, action_period=0.05)
    wait_for(lambda: probe.mask_count() > start_count, action=send, action_period=0.05)
    masks = probe.masks_since(start_count)
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks]
    assert all(m.header.frame_id == "rated_cam" and (m.height, m.width) == (24, 32)
               for m in masks)
    assert set(stamps) <= set(sent) and len(set(stamps)) == len(stamps)  # each a frame sent
    assert len(masks) <= (len(sent) - start_sent) // 2 + 1, (len(masks), len(sent) - start_sent)


def test_bad_inputs_are_rejected_and_reported(start) -> None:
    """
    Each kind of bad image is named, at WARN (never ERROR), and each bad control input counted.

    A bad frame may be replaced in the node's one-frame slot by the next before it is looked
    at (counted as dropped, not rejected), so each is sent until its reason shows. The control
    topics are reliable: their counts are exact.
    """
    node, probe = start(warn_throttle_s=60.0)
    good = image_msg(random_frame(30, 40), "rgb8", frame_id="good")
    send_until_mask(probe, good)
    encoding = image_msg(random_frame(30, 40), "rgb8")
    step = image_msg(random_frame(30, 40), "rgb8")
    encoding.encoding = "yuv_unknown"
    step.step = 100  # under 40 pixels x 3 bytes
    bad_images = [(encoding, "unsupported image encoding 'yuv_unknown'"),
                  (step, "step 100 is smaller than width x bytes per pixel"),
                  (Image(height=0, width=0, encoding="rgb8", step=0), "zero-size image")]
    for bad, text in bad_images:
        level, _, _ = probe.fresh_status(
            lambda v: text in v.last_rejected.get(REJECTED.image, ""),
            action=lambda: probe.image_pub.publish(bad), action_period=0.5)
        assert level in (OK, WARN), text  # a bad input is no ERROR (that is a failed inference)

    probe.send_width(7.0)
    probe.send_width(math.nan)
    probe.send_budget(-5.0)

    def send_sensors() -> None:  # best effort: sent again until counted
        probe.send_battery(math.nan)
        probe.send_battery(45.0)  # a 0-100 value in the 0-1 field
        probe.send_temperature(math.nan)
    d = probe.fresh_diag(lambda v: v.rejected.get(REJECTED.width) == 2
                         and v.rejected.get(REJECTED.budget) == 1
                         and v.rejected.get(REJECTED.battery, 0) >= 2
                         and v.rejected.get(REJECTED.temperature, 0) >= 1,
                         action=send_sensors, action_period=2 * RESEND_S)
    assert d.rejected[REJECTED.image] >= len(bad_images)
    assert "nan" in d.last_rejected[REJECTED.width]  # the later of the two, in order
    assert d.active_width == 1.0 and d.requested_width == 1.0
    mask = send_until_mask(probe, good)  # still serving good frames
    assert mask.header.frame_id == "good"


def test_compressed_input_and_garbage_bytes(start) -> None:
    import cv2
    node, probe = start(input_transport="compressed")
    ok, png = cv2.imencode(".png", random_frame(50, 70))
    assert ok
    good = CompressedImage(format="png")
    good.data = png.tobytes()
    good.header.frame_id = "compressed_cam"
    garbage = CompressedImage(format="jpeg")
    garbage.data = b"\xff\xd8 definitely not a jpeg"
    wait_for(lambda: "could not decode" in probe.diag().last_rejected.get(REJECTED.image, ""),
             action=lambda: probe.compressed_pub.publish(garbage))
    mask = send_until_mask(probe, good, pub=probe.compressed_pub)
    assert (mask.height, mask.width, mask.header.frame_id) == (50, 70, "compressed_cam")


def test_compressed_input_follows_the_remapped_image_topic(start) -> None:
    """
    The compressed subscription follows the remapped image topic, as image_transport does.

    ``-r image:=/cam/image_raw`` (what the README tells console-script users) moves it to
    ``/cam/image_raw/compressed``.
    """
    import cv2
    node, probe = start(input_transport="compressed", remap={TOPICS.image: "/cam/image_raw"})
    assert node.core.camera().image_sub.topic_name == compressed_topic("/cam/image_raw")
    ok, png = cv2.imencode(".png", random_frame(30, 44))
    assert ok
    msg = CompressedImage(format="png")
    msg.data = png.tobytes()
    msg.header.frame_id = "remapped_cam"
    camera = probe.make_publisher(CompressedImage, compressed_topic("/cam/image_raw"),
                                  QoSProfile(depth=1))
    mask = send_until_mask(probe, msg, pub=camera)
    assert (mask.height, mask.width, mask.header.frame_id) == (30, 44, "remapped_cam")
    probe.fresh_diag(lambda d: d.image_topic == compressed_topic("/cam/image_raw"))


def test_parameters_validate_then_apply(start) -> None:
    node, probe = start()
    assert node.get_parameter("class_names").value == [f"class_{i}" for i in range(11)]
    assert list(node.get_parameter("palette").value[:3]) == PALETTE[0]
    assert list(node.get_parameter("widths").value) == [0.25, 0.5, 0.75, 1.0]
    r = node.set_parameters([Parameter("class_names", value=["a"])])[0]
    assert not r.successful and "read-only" in r.reason.lower()
    r = node.set_parameters([Parameter("governor.battery_thresholds", value=[15.0, 2.0])])[0]
    assert not r.successful and "battery_thresholds" in r.reason
    r = node.set_parameters([Parameter("governor.budget_margin", value=1.5)])[0]
    assert not r.successful
    r = node.set_parameters([Parameter("image_qos", value="sometimes")])[0]
    assert not r.successful and "auto" in r.reason
    r = node.set_parameters([Parameter("width", value=0.0)])[0]
    assert not r.successful and "(0, 1]" in r.reason
    assert node.set_parameters([Parameter("width", value=0.5)])[0].successful
    wait_for(lambda: probe.widths[-1] == 0.5)
    # a runtime threshold change applies at once: 60 % battery now caps at 0.25
    assert node.set_parameters([Parameter("governor.battery_thresholds",
                                          value=[70.0, 0.25])])[0].successful
    d = probe.fresh_diag(lambda v: v.active_width == 0.25, action=lambda: probe.send_battery(0.6),
                         action_period=RESEND_S)
    assert "battery 60% <= 70%" in d.reason


def _node_sub_reliability(probe, topic="/" + TOPICS.image):
    infos = [i for i in probe.node.get_subscriptions_info_by_topic(topic)
             if i.node_name == "slimseg_node"]
    return infos[0].qos_profile.reliability if len(infos) == 1 else None


def test_auto_qos_follows_the_publishers(start) -> None:
    node, probe = start()
    reliable = probe.image_pub  # the probe's own image publisher is reliable
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE)
    best_effort = probe.make_publisher(
        Image, TOPICS.image, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.BEST_EFFORT)
    send_until_mask(probe, image_msg(random_frame(480, 640), "rgb8"), pub=best_effort)
    probe.node.destroy_publisher(best_effort)
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE)
    before = node.frame_stats()
    try:
        send_until_mask(probe, image_msg(random_frame(32, 32), "rgb8"), pub=reliable)
    except AssertionError as exc:  # say where delivery stopped: DDS, the executor or inference
        raise AssertionError(
            f"{exc}: frames received {before['received']} -> {node.frame_stats()['received']}, "
            f"processed {before['processed']} -> {node.frame_stats()['processed']}, "
            f"reliable publisher matched to {reliable.get_subscription_count()} "
            f"subscription(s)") from exc
    assert node.set_parameters([Parameter("image_qos", value="best_effort")])[0].successful
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.BEST_EFFORT)


def test_qos_switches_never_stop_the_node(start) -> None:
    """
    Best-effort cameras appearing and vanishing never stop the node.

    Each one raises an "incompatible QoS" event on the reliable subscription just as the node
    replaces it. With QoS event handlers on the image subscription rclpy could take that event
    after the destruction and spin() died with InvalidHandle (no frames, no masks, nothing
    logged).
    """
    node, probe = start()
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE)
    # nothing the executor could take late
    assert node.core.camera().image_sub.event_handlers == []
    best_effort_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    for _ in range(15):
        camera = probe.make_publisher(Image, TOPICS.image, best_effort_qos)
        wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.BEST_EFFORT)
        probe.node.destroy_publisher(camera)
        wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE)
    send_until_mask(probe, image_msg(random_frame(32, 32), "rgb8"))


def test_forced_reliable_warns_about_best_effort_cameras(start) -> None:
    node, probe = start(image_qos="reliable")
    wait_for(lambda: _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE)
    camera = probe.make_publisher(
        Image, TOPICS.image, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    wait_for(lambda: node.core.camera().incompatible_publishers == 1)
    probe.node.destroy_publisher(camera)
    wait_for(lambda: node.core.camera().incompatible_publishers == 0)
    assert _node_sub_reliability(probe) == ReliabilityPolicy.RELIABLE  # forced: no switch


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_runtime_backend_serves_masks_and_says_so(start, backend, tmp_path, monkeypatch) -> None:
    pytest.importorskip(backend)
    monkeypatch.setenv("SLIMSEG_CACHE_DIR", str(tmp_path / "cache"))
    node, probe = start(backend=backend)
    rgb = random_frame(91, 133)
    mask = send_until_mask(probe, image_msg(rgb, "rgb8", frame_id="cam"))
    assert (mask.height, mask.width, mask.header.frame_id) == (91, 133, "cam")
    got = np.frombuffer(bytes(mask.data), np.uint8).reshape(91, 133)
    with probe.lock:
        width = probe.widths[-1]
    np.testing.assert_array_equal(got, node.engine.infer(rgb, node.engine.widths.exact(width)))
    diag = probe.fresh_diag(lambda d: d.backend != "")
    # precision auto: bf16 only through OpenVINO on a CPU with native bf16 (measured there)
    expected = "fp32"
    if backend == "openvino":
        from slimseg_ros.inference.backends.openvino_backend import cpu_supports_bf16
        expected = "bf16" if cpu_supports_bf16() else "fp32"
    assert (diag.backend, diag.precision) == (backend, expected)
    # stop signals stay off the model's threads (a Ctrl-C landing on a runtime thread that is
    # swapping its signal stack kills the node with SIGSEGV); this thread gets them as before
    assert _blocked_signals(node.core._worker.native_id) >= {signal.SIGINT, signal.SIGTERM}
    assert signal.SIGINT not in _blocked_signals(threading.get_native_id())


def _blocked_signals(thread_id: int) -> set[int]:
    """Return the signals a thread of this process blocks, read from ``/proc``."""
    status = Path(f"/proc/self/task/{thread_id}/status").read_text()
    field = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    mask = int(field.split()[1], 16)
    return {sig for sig in range(1, 65) if mask & (1 << (sig - 1))}


def test_a_precision_the_backend_cannot_run_fails_start_up(context, checkpoint) -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(StartupError, match="precision 'bf16' is not available with backend "
                                           "'onnxruntime'"):
        SlimSegNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("backend", value="onnxruntime"), Parameter("precision", value="bf16")])


def test_missing_or_corrupt_checkpoint_fails_with_the_file_named(context, tmp_path) -> None:
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(StartupError, match=f"checkpoint file {missing} does not exist"):
        SlimSegNode(context=context, parameter_overrides=[Parameter("checkpoint",
                                                                    value=str(missing))])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(StartupError, match=f"checkpoint file {corrupt} is corrupt"):
        SlimSegNode(context=context, parameter_overrides=[Parameter("checkpoint",
                                                                    value=str(corrupt))])


def test_bad_start_up_parameters_are_named(context, checkpoint) -> None:
    with pytest.raises(StartupError, match="battery_thresholds"):
        SlimSegNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("governor.battery_thresholds", value=[10.0, 0.25, 10.0, 0.5])])
    with pytest.raises(StartupError, match="input_size"):
        SlimSegNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("input_size", value=[64, 0])])
    for name, bad in (("governor.min_rate_hz", 0.0), ("governor.min_rate_hz", math.nan),
                      ("static_max_age_s", 0.0), ("static_threshold", -1.0)):
        with pytest.raises(StartupError, match=name.replace(".", r"\.")):
            SlimSegNode(context=context, parameter_overrides=[
                Parameter("checkpoint", value=str(checkpoint)), Parameter(name, value=bad)])


def test_wrongly_typed_yaml_value_fails_start_up_with_the_parameter_named(context,
                                                                          checkpoint) -> None:
    with pytest.raises(StartupError, match="width"):
        SlimSegNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)), Parameter("width", value=1)])
    with pytest.raises(StartupError, match="overlay_alpha"):
        SlimSegNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("overlay_alpha", value=3.0)])
