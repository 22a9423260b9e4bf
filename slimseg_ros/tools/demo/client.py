"""
The demo's own rclpy node: it drives the node under test and records what comes back.

It plays the cameras and the policy inputs into the node under test, subscribes to its outputs
and records everything with the scenario clock's times.

One camera ("", the plain topic names) or several (the node's ``cameras``: each camera's topics
below its name, :func:`~slimseg_ros.ros.contract.camera_topics`); every row recorded per frame,
mask, width or decision names its camera.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from ...ros.contract import (KEYS, TOPICS, camera_topics, is_segmentation_status, read_diagnostics,
                             status_camera)
from ..common import RosSession
from . import DemoError
from .scene import SceneScore


@dataclass
class Record:
    """
    Everything the demo saw; times are seconds since the scenario clock started.

    ``cameras`` names the node's cameras ("" alone: the single camera of a node without
    ``cameras``).
    """

    cameras: list[str] = field(default_factory=lambda: [""])
    frames: list[dict[str, Any]] = field(default_factory=list)       # t, phase, camera, index
    masks: list[dict[str, Any]] = field(default_factory=list)  # t, latency_ms, width, camera...
    active: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # camera: (t, w)
    requests: list[tuple[float, float]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)       # t, battery, temp, budget
    # t, camera (None: the shared status of a node with cameras), level, message, values
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # t, phase, camera, width, ...
    phases: list[dict[str, Any]] = field(default_factory=list)       # name, start, end, ...
    montage: dict[float, np.ndarray] = field(default_factory=dict)   # width -> mono8 mask
    montage_color: dict[float, np.ndarray] = field(default_factory=dict)
    montage_confidence: dict[float, np.ndarray] = field(default_factory=dict)  # mono8, 255: sure
    # The masks scored against the generated frames' label maps (None: not scored, e.g. real
    # frames): confusion per width, masks per width, the (camera, index) frames they came from.
    scene: SceneScore | None = None
    scene_masks: dict[float, int] = field(default_factory=dict)
    scene_frames: set[tuple[str, int]] = field(default_factory=set)
    scene_error: str = ""
    # masks kept to compare two phases frame by frame: (phase, tag of the frame) -> mono8 mask
    kept: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)


def frame_id_of(camera: str) -> str:
    """Return the frame_id the demo stamps on a camera's frames (and must see on their masks)."""
    return f"demo_{camera}_camera" if camera else "demo_camera"


def parse_diagnostic_values(values: dict[str, str]) -> dict[str, Any]:
    """
    Read width, reason, caps, warnings and per-width latencies from the node's diagnostics.

    The input is the diagnostics key-values; caps and warnings are kept as shown, the latency
    figures are in ms, ``{width: {"p50": A, "p90": B}}``, B at the governor's percentile.
    """
    d = read_diagnostics(values)
    out: dict[str, Any] = {}
    if d.active_width is not None:
        out["width"] = d.active_width
    for name, key in (("reason", KEYS.reason), ("caps", KEYS.caps), ("warnings", KEYS.warnings)):
        if key in values:
            out[name] = values[key]
    if d.latency:
        out["latency"] = {w: {"p50": r.p50_ms, f"p{r.q:g}": r.pq_ms}
                          for w, r in d.latency.items()}
    return out


def _reason_key(width: float, reason: str) -> tuple[float, str]:
    """
    Return what makes two diagnostics the same decision.

    That is the width and the reason's wording, with changing figures (countdowns, latencies,
    percentages) masked.
    """
    return width, re.sub(r"\d+(\.\d+)?", "#", reason)


class DemoClient:
    """The demo's own rclpy node: camera and policy publishers, output subscribers, recording."""

    def __init__(self, ros: RosSession, record: Record, clock: Callable[[], float],
                 labels: Callable[[str, int], np.ndarray | None] | None = None) -> None:
        """
        Open the publishers and subscribers on the topics of the cameras ``record.cameras``.

        The node is made in ``ros``, whose executor spins in a thread of its own until
        :meth:`close`. ``labels(camera, index)``: the label map of the frame published with
        ``index`` (None: none), for scoring masks into ``record.scene``. The montage is taken
        from the first camera.
        """
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
        from sensor_msgs.msg import BatteryState, Image, Temperature
        from std_msgs.msg import Float32

        self.ros = ros
        self.msgs = {"Image": Image, "BatteryState": BatteryState, "Temperature": Temperature,
                     "Float32": Float32}
        self.record = record
        self.clock = clock
        self.lock = threading.Lock()
        self.cameras = list(record.cameras)
        self.single = self.cameras == [""]
        self.node = ros.node("slimseg_demo")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        camera = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            history=HistoryPolicy.KEEP_LAST)
        outputs = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        n = self.node
        self.pub_image = {}
        for cam in self.cameras:
            topics = camera_topics(cam)
            self.pub_image[cam] = n.create_publisher(Image, topics.image, camera)
            n.create_subscription(Image, topics.mask, partial(self._on_mask, cam), outputs)
            n.create_subscription(Float32, topics.active_width, partial(self._on_active, cam),
                                  latched)
        self.pub_width = n.create_publisher(Float32, TOPICS.width, reliable)
        self.pub_battery = n.create_publisher(BatteryState, TOPICS.battery, reliable)
        self.pub_temp = n.create_publisher(Temperature, TOPICS.temperature, reliable)
        self.pub_budget = n.create_publisher(Float32, TOPICS.budget, reliable)
        self.pub_cpu_budget = n.create_publisher(Float32, TOPICS.cpu_budget, reliable)
        n.create_subscription(DiagnosticArray, TOPICS.diagnostics, self._on_diag, reliable)
        # Subscribed for the whole run: creating/destroying subscriptions from this thread while
        # the executor spins in another one can hang rclpy; _on_montage keeps only montage frames.
        self.montage_camera = self.cameras[0]
        n.create_subscription(Image, camera_topics(self.montage_camera).color,
                              partial(self._on_montage, self.record.montage_color, "rgb8"),
                              outputs)
        n.create_subscription(Image, camera_topics(self.montage_camera).confidence,
                              partial(self._on_montage, self.record.montage_confidence, "mono8"),
                              outputs)
        self.labels = labels
        self.stamps: dict[tuple[str, int, int], tuple[float, str, int | None]] = {}
        self.montage_width: float | None = None  # capture masks for this width...
        self.montage_after: float = math.inf     # ...of frames sent after this time
        self.active_width: dict[str, float | None] = {cam: None for cam in self.cameras}
        self.last_decision: dict[str, tuple[float, str]] = {}
        self.phase = ""
        self.keep_masks = False  # keep the masks of tagged frames (Record.kept)
        self.tags: dict[tuple[str, int, int], int] = {}  # frame stamp -> its tag
        self.node_name = "slimseg_node"  # whose parameters set_parameter sets
        self._param_clients: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.ros.executor.spin()
        except Exception:  # the executor stops with an exception at shutdown
            pass

    # -- callbacks (executor thread)
    def _on_mask(self, camera: str, msg: Any) -> None:
        t = self.clock()
        key = (camera, msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self.lock:
            sent = self.stamps.get(key)
            if sent is None:
                return
            width = self.active_width[camera]
            self.record.masks.append({"t": t, "latency_ms": (t - sent[0]) * 1000.0,
                                      "width": width, "phase": sent[1], "camera": camera,
                                      "index": sent[2], "frame_id": msg.header.frame_id,
                                      "size": [msg.height, msg.width]})
            mw = self.montage_width
            montage = (camera == self.montage_camera and mw is not None
                       and sent[0] >= self.montage_after and mw not in self.record.montage)
            tag = self.tags.get(key)
        if tag is not None:
            kept = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
            with self.lock:
                self.record.kept[(sent[1], tag)] = kept[:, : msg.width].copy()
        truth = None
        if self.record.scene is not None and self.labels is not None and sent[2] is not None:
            truth = self.labels(camera, sent[2])
        if not montage and (truth is None or width is None):
            return
        mask = np.frombuffer(bytes(msg.data), np.uint8)
        mask = mask.reshape(msg.height, msg.step)[:, : msg.width]
        if montage:
            with self.lock:
                self.record.montage[mw] = mask.copy()
        if truth is not None and width is not None:
            self._score(width, (camera, sent[2]), truth, mask)

    def _score(self, width: float, frame: tuple[str, int], truth: np.ndarray,
               mask: np.ndarray) -> None:
        """Count one mask against its frame's label map (executor thread only)."""
        rec = self.record
        try:
            rec.scene.add(width, truth, mask)
        except ValueError as exc:  # never stop the executor: say so in the report instead
            rec.scene_error, rec.scene = str(exc), None
            return
        rec.scene_masks[width] = rec.scene_masks.get(width, 0) + 1
        rec.scene_frames.add(frame)

    def _on_montage(self, store: dict[float, np.ndarray], encoding: str, msg: Any) -> None:
        """Keep the first colour mask or confidence map of a montage frame, per width."""
        key = (self.montage_camera, msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self.lock:
            sent = self.stamps.get(key)
            mw = self.montage_width
            if (sent is None or mw is None or sent[0] < self.montage_after
                    or mw in store or msg.encoding != encoding):
                return
            channels = 3 if encoding == "rgb8" else 1
            img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
            img = img[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
            store[mw] = (img if channels == 3 else img[:, :, 0]).copy()

    def _on_active(self, camera: str, msg: Any) -> None:
        t = self.clock()
        with self.lock:
            self.active_width[camera] = float(msg.data)
            self.record.active.setdefault(camera, []).append((t, float(msg.data)))

    def _on_diag(self, msg: Any) -> None:
        t = self.clock()
        for status in msg.status:
            camera = status_camera(status.name)
            if camera is None:
                if not is_segmentation_status(status.name):
                    continue
                camera = "" if self.single else None  # None: the shared status of cameras
            elif camera not in self.active_width:
                continue
            values = {kv.key: kv.value for kv in status.values}
            parsed = parse_diagnostic_values(values)
            level = status.level if isinstance(status.level, int) else int.from_bytes(
                bytes(status.level), "little")
            with self.lock:
                self.record.diagnostics.append({"t": t, "camera": camera, "name": status.name,
                                                "level": level, "message": status.message,
                                                "values": values})
                if camera is None:
                    continue
                width = parsed.get("width", self.active_width[camera])
                reason = parsed.get("reason", status.message)
                if width is None:
                    continue
                key = _reason_key(width, reason)
                if key != self.last_decision.get(camera):
                    self.record.decisions.append({
                        "t": round(t, 3), "phase": self.phase, "camera": camera,
                        "width": width, "reason": reason, "caps": parsed.get("caps", ""),
                        "warnings": parsed.get("warnings", "none")})
                    self.last_decision[camera] = key

    # -- publishing (main thread)
    def publish_frame(self, rgb: np.ndarray, index: int | None = None, camera: str = "",
                      tag: int | None = None) -> None:
        """
        Publish ``rgb`` as ``camera``'s next frame.

        ``index`` (its position in the source) comes back with its mask, by stamp; with
        ``keep_masks`` on, the mask of a frame with a ``tag`` is kept under (phase, tag).
        """
        msg = self.msgs["Image"]()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = frame_id_of(camera)
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        msg.data = np.ascontiguousarray(rgb).tobytes()
        t = self.clock()
        with self.lock:
            key = (camera, msg.header.stamp.sec, msg.header.stamp.nanosec)
            self.stamps[key] = (t, self.phase, index)
            if tag is not None and self.keep_masks:
                self.tags[key] = tag
            if len(self.stamps) > 4000:
                for k in list(self.stamps)[:2000]:
                    del self.stamps[k]
                    self.tags.pop(k, None)
            self.record.frames.append({"t": t, "phase": self.phase, "camera": camera,
                                       "index": index})
        self.pub_image[camera].publish(msg)

    def publish_width(self, width: float) -> None:
        self.pub_width.publish(self.msgs["Float32"](data=float(width)))
        self.record.requests.append((self.clock(), float(width)))

    def publish_inputs(self, battery: float, charging: bool, celsius: float,
                       budget_ms: float, cpu_budget: float = 0.0) -> None:
        """Publish the battery, temperature and both budgets (0: no budget) of this moment."""
        b = self.msgs["BatteryState"]()
        b.header.stamp = self.node.get_clock().now().to_msg()
        b.percentage = float(battery) / 100.0
        b.present = True
        b.power_supply_status = (b.POWER_SUPPLY_STATUS_CHARGING if charging
                                 else b.POWER_SUPPLY_STATUS_DISCHARGING)
        self.pub_battery.publish(b)
        tm = self.msgs["Temperature"]()
        tm.header.stamp = b.header.stamp
        tm.header.frame_id = "cpu"
        tm.temperature = float(celsius)
        self.pub_temp.publish(tm)
        self.pub_budget.publish(self.msgs["Float32"](data=float(budget_ms)))
        self.pub_cpu_budget.publish(self.msgs["Float32"](data=float(cpu_budget)))
        self.record.inputs.append({"t": self.clock(), "battery": battery, "charging": charging,
                                   "temperature": celsius, "budget_ms": budget_ms,
                                   "cpu_budget": cpu_budget})

    def set_parameter(self, name: str, value: Any, timeout_s: float = 10.0) -> None:
        """
        Set one parameter of the node (``ros2 param set``); raise DemoError if refused.

        Waits for the answer (the executor thread spins the client).
        """
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self._param_clients.get(self.node_name)
        if client is None:
            client = self.node.create_client(SetParameters, f"/{self.node_name}/set_parameters")
            self._param_clients[self.node_name] = client
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise DemoError(f"the node's parameter service did not answer within {timeout_s} s")
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]))
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise DemoError(f"setting {name} on the node took over {timeout_s} s")
            time.sleep(0.01)
        result = future.result().results[0]
        if not result.successful:
            raise DemoError(f"the node refused {name}={value!r}: {result.reason}")

    def connected(self) -> bool:
        """Tell whether the node subscribes to every camera's image and the control topics."""
        return (all(p.get_subscription_count() > 0 for p in self.pub_image.values())
                and self.pub_width.get_subscription_count() > 0)

    def close(self) -> None:
        """Stop recording: the executor, this node and rclpy go down (:meth:`RosSession.close`)."""
        self.ros.close()
        self._thread.join(timeout=2.0)
