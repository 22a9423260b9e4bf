"""
What downstream nodes receive besides the mask, over real rclpy/DDS.

The PNG mask decodes to exactly the raw mask's ids, with the frame's header and size; the
confidence exists only where enabled and is sent only while subscribed; a node nobody listens to
runs no inference at all (counted as an engine call count, not a time); the class names arrive as
``vision_msgs/LabelInfo`` where vision_msgs is installed. Which frames are skipped and when, on a
fake clock, is test_core_policy's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from node_harness import (NODE_TEST_PARAMS, Probe, image_msg, random_frame,  # noqa: E402
                          send_until_mask, try_publish, wait_for)
from slimseg_ros.ros.contract import PNG_MONO8_FORMAT, SKIPPED, TOPICS  # noqa: E402
from slimseg_ros.ros.labels import label_info_type  # noqa: E402
from slimseg_ros.ros.node import SlimSegNode  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def start(context, checkpoint, spin):
    """Start a node and a probe spinning until the test ends: ``(**params) -> (node, probe)``."""
    def _start(remap: dict[str, str] | None = None, **params):
        values = {"checkpoint": str(checkpoint), **NODE_TEST_PARAMS, **params}
        rules = [arg for old, new in (remap or {}).items() for arg in ("-r", f"{old}:={new}")]
        node = SlimSegNode(context=context, cli_args=["--ros-args", *rules] if rules else None,
                           parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        probe = Probe(context)
        spin(node, probe)
        wait_for(lambda: probe.count(probe.widths) > 0)  # latched active width: node is up
        return node, probe
    return _start


def count_calls(obj, name: str) -> list[int]:
    """Wrap ``obj.name`` to count its calls (the real method still runs); return the counter."""
    calls = [0]
    real = getattr(obj, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)
    setattr(obj, name, counted)
    return calls


def decoded(msg: CompressedImage) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_UNCHANGED)


def as_array(msg: Image) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)


@pytest.mark.parametrize("remap", [None, {"slimseg/mask": "/seg/ids"}])
def test_png_mask_decodes_to_the_exact_ids_with_the_frames_header(start, remap) -> None:
    node, probe = start(remap=remap)
    mask_topic = "/seg/ids" if remap else "/" + TOPICS.mask
    if remap:  # the probe's own mask subscription is on the plain name: listen where it went
        probe.stop_listening_to_masks()
        raws = probe.listen(Image, mask_topic)
    pngs = probe.listen(CompressedImage, mask_topic + "/compressed")
    cam = node.core.camera()
    assert cam.mask_compressed_topic == mask_topic + "/compressed"
    wait_for(lambda: cam.mask_compressed_pub.get_subscription_count() > 0)
    stamp = rclpy.time.Time(seconds=77, nanoseconds=12).to_msg()
    msg = image_msg(random_frame(90, 120), "rgb8", frame_id="cam_png", stamp=stamp)
    masks = raws if remap else probe.masks
    # the one frame, sent until it is served (a repeat of a served frame is not served again)
    wait_for(lambda: probe.count(pngs) > 0 and probe.count(masks) > 0,
             action=lambda: try_publish(probe.image_pub, msg))
    raw = next(m for m in masks if m.header.frame_id == "cam_png")
    png = pngs[0]
    assert png.format == PNG_MONO8_FORMAT == "mono8; png compressed "
    assert (png.header.frame_id, png.header.stamp) == ("cam_png", stamp)
    ids = decoded(png)
    assert ids.dtype == np.uint8 and ids.shape == (90, 120)
    np.testing.assert_array_equal(ids, as_array(raw))  # lossless: every class id exact
    assert len(png.data) < raw.height * raw.width  # and smaller than the raw mask


def test_no_confidence_topic_unless_enabled(start) -> None:
    node, probe = start()
    assert node.core.camera().confidence_pub is None  # off by default: not even a topic
    assert node.count_publishers("/" + TOPICS.confidence) == 0


def test_confidence_is_sent_only_while_subscribed_with_the_frames_header(start) -> None:
    node, probe = start(publish_confidence=True)
    cam = node.core.camera()
    sent = count_calls(cam.confidence_pub, "publish")
    msg = image_msg(random_frame(60, 80), "rgb8", frame_id="cam_conf",
                    stamp=rclpy.time.Time(seconds=5).to_msg())
    send_until_mask(probe, msg)
    assert sent[0] == 0  # computed in the graph, but nobody asked for it
    confidences = probe.listen(Image, TOPICS.confidence)
    wait_for(lambda: cam.confidence_pub.get_subscription_count() > 0)
    frame = random_frame(60, 80)
    n = [0]

    def next_frame() -> None:  # a new stamp each time: a repeated frame is not inferred again
        n[0] += 1
        try_publish(probe.image_pub, image_msg(frame, "rgb8", frame_id="cam_conf",
                                               stamp=rclpy.time.Time(seconds=6 + n[0]).to_msg()))
    wait_for(lambda: probe.count(confidences) > 0, action=next_frame)
    conf = confidences[0]
    assert (conf.encoding, conf.height, conf.width) == ("mono8", 60, 80)
    assert conf.header.frame_id == "cam_conf" and conf.header.stamp.sec >= 7
    values = as_array(conf)
    classes = len(node.engine.info.class_names)
    assert values.min() >= 255 // classes  # a softmax maximum is at least 1 / classes
    assert sent[0] >= 1


def test_nobody_listening_means_no_inference(start) -> None:
    node, probe = start()
    probe.stop_listening_to_masks()
    cam = node.core.camera()
    wait_for(lambda: not cam.has_listeners(True, False))
    calls = count_calls(node.engine, "segment")
    frame = image_msg(random_frame(40, 60), "rgb8", frame_id="unwatched")
    wait_for(lambda: node.frame_stats()["skipped"].get(SKIPPED.no_subscribers, 0) >= 5,
             action=lambda: try_publish(probe.image_pub, frame))
    assert calls[0] == 0 and node.frame_stats()["processed"] == 0
    diag = probe.fresh_diag(lambda d: d.skipped.get(SKIPPED.no_subscribers, 0) >= 5)
    assert diag.frames_processed == 0
    masks = probe.listen(Image, TOPICS.mask)  # someone subscribes: the next frame is served
    wait_for(lambda: probe.count(masks) > 0, action=lambda: try_publish(probe.image_pub, frame))
    assert calls[0] >= 1


def test_class_names_arrive_as_label_info_for_a_late_subscriber(start) -> None:
    if label_info_type() is None:
        pytest.skip("vision_msgs is not installed (it is not a PyPI wheel; a ROS distribution "
                    "has it as ros-$ROS_DISTRO-vision-msgs)")
    node, probe = start()
    labels = probe.listen(label_info_type(), TOPICS.label_info,
                          QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    wait_for(lambda: probe.count(labels) > 0)  # published at activation, before we subscribed
    info = labels[0]
    assert [c.class_name for c in info.class_map] == list(node.engine.info.class_names)
    assert [c.class_id for c in info.class_map] == list(range(len(info.class_map)))
    assert info.threshold == 0.0


def test_without_vision_msgs_the_node_runs_and_offers_no_label_topic(start) -> None:
    if label_info_type() is not None:
        pytest.skip("vision_msgs is installed here")
    node, probe = start()
    send_until_mask(probe, image_msg(random_frame(30, 40), "rgb8"))
    assert node.count_publishers("/" + TOPICS.label_info) == 0
