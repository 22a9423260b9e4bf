"""
One camera's side of the node: its subscriptions, publishers, width request and counters.

The image subscription follows the reliability of its publishers; the camera also has its own
output publishers and its own width request.

ROS plumbing only; the node core (:mod:`.core`) owns one :class:`CameraIO` per camera and
opens them on activation, closes them on deactivation. Everything a camera keeps across that
(latency figures, rejected inputs, the governor's last decision) lives here too, keyed by the
camera's name, so bad input or a silent publisher on one camera changes nothing for another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from rclpy.callback_groups import CallbackGroup, MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32

from .contract import (PNG_MONO8_FORMAT, CameraTopics, LastFrame, camera_topics,
                       compressed_topic)
from .conversions import colorize, fill_image, fill_png_mono8, overlay
from ..governor import SINGLE
from ..governor.decision import Decision
from ..governor.latency import LatencyStore
from ..governor.static_scene import StaticReference
from .frame_slots import FrameSlots
from .rejections import Rejections

IMAGE_OUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                           reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
CONTROL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE)


def reliability_name(policy: ReliabilityPolicy | None) -> str:
    return "reliable" if policy == ReliabilityPolicy.RELIABLE else "best_effort"


class CameraIO:
    """
    Topics, subscriptions, publishers and counters of one camera.

    ``name`` is "" for the single camera of a node without ``cameras``.
    """

    def __init__(self, node: Node, name: str, topics: CameraTopics, *, compressed: bool,
                 latency: LatencyStore, rejections: Rejections) -> None:
        self.node = node
        self.name = name
        self.topics = topics
        self.compressed = compressed
        self.latency = latency
        self.rejections = rejections
        # Compressed frames follow the resolved (remapped, namespaced) name of the image topic
        # as image_transport does: -r image:=/cam/image_raw moves image/compressed with it. A
        # remapping of image/compressed itself still applies (rcl remaps absolute names too).
        self.image_topic = (compressed_topic(node.resolve_topic_name(topics.image))
                            if compressed else topics.image)
        self.image_type = CompressedImage if compressed else Image
        self.decision: Decision | None = None  # the governor's last one: the active width
        self.image_sub: Any = None
        self.image_reliability: ReliabilityPolicy | None = None
        self.image_publishers = 0
        self.incompatible_publishers = 0
        # the compressed mask follows the resolved mask topic (-r slimseg/mask:=... moves it)
        self.mask_compressed_topic = compressed_topic(node.resolve_topic_name(topics.mask))
        self.mask_pub: Any = None
        self.mask_compressed_pub: Any = None
        self.confidence_pub: Any = None  # only where publish_confidence is on
        self.color_pub: Any = None
        self.overlay_pub: Any = None
        self.width_pub: Any = None
        self._request_sub: Any = None
        self._qos_timer: Any = None
        self._stats_lock = threading.Lock()
        self.processed = 0
        self.processed_at: dict[float, int] = {}
        self.skipped: dict[str, int] = {}  # frames taken but not inferred, per SKIPPED reason
        self.last_frame: LastFrame | None = None
        self.last_served: tuple[int, int, str] | None = None  # stamp (s, ns) and frame_id
        self.idle = False  # lazy and nobody listens: holds its width, shares no budget
        self.zero_stamps_noted = False  # said once that zero stamps are never duplicates
        self.arrivals = 0  # frames arrived (the index the rate's every k-th frame counts in)
        self.last_served_index = -1  # arrival index of the last frame served
        self.static_reference: StaticReference | None = None  # the last inferred frame

    @property
    def label(self) -> str:
        """How log lines name this camera ("" for the single camera)."""
        return f"camera '{self.name}': " if self.name else ""

    # ----------------------------------------------------------------------------- open/close
    def open(self, on_image: Callable[[str, Any], None],
             on_request: Callable[[str, Float32], None], image_qos: Callable[[], str],
             qos_check_period_s: float, control_group: CallbackGroup,
             confidence: bool = False) -> None:
        """
        Create the publishers, the request and image subscriptions, and the QoS timer.

        The timer makes the image subscription follow its publishers' QoS (``image_qos`` gives
        the current setting); ``confidence`` adds the confidence output.
        """
        n = self.node
        self._on_image = on_image
        # Its own mutually exclusive group per camera: a flooding camera's callbacks never hold
        # up another camera's, and the QoS timer never destroys the subscription while the
        # executor is taking a message from it (rclpy then leaves the group marked busy and the
        # new subscription would never run).
        self._image_group = MutuallyExclusiveCallbackGroup()
        self.mask_pub = n.create_publisher(Image, self.topics.mask, IMAGE_OUT_QOS)
        self.mask_compressed_pub = n.create_publisher(CompressedImage, self.mask_compressed_topic,
                                                      IMAGE_OUT_QOS)
        if confidence:
            self.confidence_pub = n.create_publisher(Image, self.topics.confidence,
                                                     IMAGE_OUT_QOS)
        self.color_pub = n.create_publisher(Image, self.topics.color, IMAGE_OUT_QOS)
        self.overlay_pub = n.create_publisher(Image, self.topics.overlay, IMAGE_OUT_QOS)
        self.width_pub = n.create_publisher(Float32, self.topics.active_width, LATCHED_QOS)
        if self.topics.width is not None:
            self._request_sub = n.create_subscription(
                Float32, self.topics.width, lambda msg: on_request(self.name, msg), CONTROL_QOS,
                callback_group=control_group)
        self.image_reliability = None
        self.update_subscription(image_qos())
        self._qos_timer = n.create_timer(qos_check_period_s,
                                         lambda: self.update_subscription(image_qos()),
                                         callback_group=self._image_group)

    def close(self) -> None:
        """Destroy everything :meth:`open` created (counters and latency figures stay)."""
        n = self.node
        if self._qos_timer is not None:
            n.destroy_timer(self._qos_timer)
            self._qos_timer = None
        for sub in (self.image_sub, self._request_sub):
            if sub is not None:
                n.destroy_subscription(sub)
        for pub in self._outputs() + [self.width_pub]:
            if pub is not None:
                n.destroy_publisher(pub)
        self.image_sub = self._request_sub = None
        self.mask_pub = self.mask_compressed_pub = self.color_pub = self.overlay_pub = None
        self.confidence_pub = self.width_pub = None
        self.image_reliability = None
        self.static_reference = None  # a mask of before the flow stopped is never reused

    # ----------------------------------------------------------------------------- QoS
    def _wanted_reliability(self, image_qos: str) -> tuple[ReliabilityPolicy | None, int]:
        """(reliability to subscribe with, number of publishers); None keeps the current one."""
        if image_qos == "reliable":
            return ReliabilityPolicy.RELIABLE, -1
        if image_qos == "best_effort":
            return ReliabilityPolicy.BEST_EFFORT, -1
        topic = self.image_sub.topic_name if self.image_sub is not None else self.image_topic
        infos = self.node.get_publishers_info_by_topic(topic)
        if not infos:  # nobody publishes yet: best effort matches publishers of both kinds
            return (None if self.image_sub is not None else ReliabilityPolicy.BEST_EFFORT), 0
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        return (ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                len(infos))

    def _warn_incompatible(self, image_qos: str) -> None:
        """Warn (once per change) about publishers a reliable subscription cannot hear."""
        incompatible = 0
        if self.image_sub is not None and self.image_reliability == ReliabilityPolicy.RELIABLE:
            incompatible = sum(
                i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                for i in self.node.get_publishers_info_by_topic(self.image_sub.topic_name))
        if incompatible and incompatible != self.incompatible_publishers:
            self.node.get_logger().warning(
                f"{incompatible} best-effort publisher(s) on '{self.image_sub.topic_name}' "
                f"cannot reach this reliable subscription (image_qos {image_qos}): no frames "
                f"from them; set image_qos to auto or best_effort")
        self.incompatible_publishers = incompatible

    def update_subscription(self, image_qos: str) -> None:
        """(Re)create the image subscription when the wanted reliability changes."""
        wanted, publishers = self._wanted_reliability(image_qos)
        self.image_publishers = publishers
        if wanted is not None and wanted != self.image_reliability:
            self._subscribe(wanted, publishers, image_qos)
        self._warn_incompatible(image_qos)

    def _subscribe(self, wanted: ReliabilityPolicy, publishers: int, image_qos: str) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=wanted,
                         durability=DurabilityPolicy.VOLATILE)
        # Make before break: the new subscription is matched while the old one still delivers.
        # No QoS event handlers on it: rclpy's executor takes a pending event (e.g. "incompatible
        # QoS", raised exactly when a publisher of the other kind appears) without guarding
        # against its destruction, so destroying the subscription at that moment made spin()
        # raise InvalidHandle and stopped the node. Incompatibility is reported from the graph
        # instead (_warn_incompatible).
        old, self.image_sub = self.image_sub, self.node.create_subscription(
            self.image_type, self.image_topic, lambda msg: self._on_image(self.name, msg), qos,
            callback_group=self._image_group,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        if old is not None:
            self.node.destroy_subscription(old)
        self.image_reliability = wanted
        why = (f"image_qos {image_qos}" if publishers < 0 else
               f"{publishers} publisher(s)" if publishers else "no publishers yet")
        self.node.get_logger().info(f"subscribed to '{self.image_sub.topic_name}' with "
                                    f"{reliability_name(wanted)} QoS, depth 1 ({why})")

    # ----------------------------------------------------------------------------- output
    def take_decision(self, decision: Decision, publish: bool) -> None:
        """
        Make ``decision`` this camera's active width; publish and log it when it changed.

        The first decision after :meth:`open` is always published (``active_width`` is latched).
        A change of ladder point at the same width (another input size) is logged, not
        published: ``active_width`` carries the width.
        """
        previous, self.decision = self.decision, decision
        point = decision.operating_point
        if not publish or previous is not None and point == previous.operating_point:
            return
        if self.width_pub is not None and (previous is None or decision.width != previous.width):
            self.width_pub.publish(Float32(data=float(decision.width)))
        if previous is not None:
            self.node.get_logger().info(f"{self.label}width {previous.operating_point:g} -> "
                                        f"{point:g}: {decision.reason}")

    def _outputs(self, color: bool = True, blend: bool = True) -> list[Any]:
        """Return the publishers of the masks (colour and overlay only where enabled)."""
        return [self.mask_pub, self.mask_compressed_pub, self.confidence_pub,
                *([self.color_pub] if color else []), *([self.overlay_pub] if blend else [])]

    def has_listeners(self, color: bool, blend: bool) -> bool:
        """Tell whether any enabled output has a subscriber (``color``, ``blend``: enabled)."""
        return any(pub is not None and pub.get_subscription_count() > 0
                   for pub in self._outputs(color, blend))

    @staticmethod
    def frame_key(header: Any) -> tuple[int, int, str]:
        """Return what tells frames apart: the stamp (s, ns) and the frame_id."""
        return int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id)

    def count_skip(self, why: str) -> None:
        """Count a frame taken but not inferred, for ``why`` (a :data:`~.contract.SKIPPED`)."""
        with self._stats_lock:
            self.skipped[why] = self.skipped.get(why, 0) + 1

    def skip_counts(self) -> dict[str, int]:
        """Return the frames taken but not inferred, per reason."""
        with self._stats_lock:
            return dict(self.skipped)

    def publish(self, header: Any, mask: np.ndarray, rgb: np.ndarray, lut: np.ndarray,
                color: bool, blend: bool, alpha: float,
                confidence: np.ndarray | None = None) -> None:
        """
        Publish the mask and the enabled outputs that have subscribers, with ``header``.

        The raw mask always goes out; the PNG mask, confidence, colour and overlay only while
        subscribed.
        """
        out = fill_image(Image(), mask, "mono8")
        out.header = header
        self.mask_pub.publish(out)
        if (confidence is not None and self.confidence_pub is not None
                and self.confidence_pub.get_subscription_count() > 0):
            conf = fill_image(Image(), confidence, "mono8")
            conf.header = header
            self.confidence_pub.publish(conf)
        if self.mask_compressed_pub.get_subscription_count() > 0:
            png = fill_png_mono8(CompressedImage(), mask, PNG_MONO8_FORMAT)
            png.header = header
            self.mask_compressed_pub.publish(png)
        want_color = color and self.color_pub.get_subscription_count() > 0
        want_overlay = blend and self.overlay_pub.get_subscription_count() > 0
        if not (want_color or want_overlay):
            return
        colour = colorize(mask, lut)
        if want_color:
            msg = fill_image(Image(), colour, "rgb8")
            msg.header = header
            self.color_pub.publish(msg)
        if want_overlay:
            msg = fill_image(Image(), overlay(rgb, colour, alpha), "rgb8")
            msg.header = header
            self.overlay_pub.publish(msg)

    def count_frame(self, frame: LastFrame) -> None:
        with self._stats_lock:
            self.processed += 1
            self.processed_at[frame.width] = self.processed_at.get(frame.width, 0) + 1
            self.last_frame = frame

    def stats(self) -> tuple[int, dict[float, int], LastFrame | None]:
        """(frames processed, per width, the last frame)."""
        with self._stats_lock:
            return self.processed, dict(self.processed_at), self.last_frame

    def counters(self, slots: FrameSlots[Any] | None) -> dict[str, Any]:
        """
        Return this camera's counters, for tests and tools.

        They are received, processed, dropped (from ``slots``), per-width, skipped (per
        reason), and the last frame (a :class:`~.contract.LastFrame`, None before the first).
        """
        processed, per_width, frame = self.stats()
        return {"received": slots.received[self.name] if slots else 0, "processed": processed,
                "dropped": slots.dropped[self.name] if slots else 0, "per_width": per_width,
                "skipped": self.skip_counts(), "last": frame}


def make_cameras(node: Node, names: list[str], values: Mapping[str, Any],
                 shared: Rejections) -> dict[str, CameraIO]:
    """
    Build the cameras ``names`` from the node's parameter ``values``.

    The single camera counts its rejected inputs in ``shared`` (the node's); each named camera
    has its own, so one camera's bad input never throttles another's warnings.
    """
    throttle = float(values["warn_throttle_s"])
    return {name: CameraIO(
        node, name, camera_topics(name),
        compressed=values["input_transport"] == "compressed",
        latency=LatencyStore(float(values["latency_window_s"]),
                             int(values["latency_window_frames"])),
        rejections=shared if name == SINGLE else Rejections(throttle_s=throttle))
        for name in names}
