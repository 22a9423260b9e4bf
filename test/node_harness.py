"""
Shared helpers for the node tests: tiny checkpoints, a ROS domain per process, a probe node.

Not a test module (no ``test_`` prefix); the node tests import it. Everything here talks to the
real rclpy/DDS stack: the probe publishes and subscribes over real topics.

Every wait has the same generous deadline (:data:`DEADLINE`): discovery and delivery on a busy
machine take seconds, not a minute, so only a node that hangs or stops serving runs into it.
What the node tests assert is counts, order and who was served, never milliseconds; the
milliseconds are the benchmarks' (``slimseg_ros.tools.multicam_bench``, ``dds_bench``).
"""

from __future__ import annotations

import array
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slimseg_ros.ros.contract import (REJECTED, TOPICS, Diagnostics, camera_status_name,
                                      camera_topics, read_diagnostics)

NUM_CLASSES = 11
DEADLINE = 60.0  # seconds: what discovery, delivery or a diagnostics update may take at most
#: node parameters every node test starts with: quick QoS checks and diagnostics, torch on one
#: thread (quick to start), and the computer's own battery and temperature left out (on a
#: laptop on battery or with a hot CPU they would cap the widths the tests expect)
NODE_TEST_PARAMS = {"qos_check_period_s": 0.1, "diagnostics_period_s": 0.2, "backend": "torch",
                    "torch_threads": 1, "host_sensors": "off"}
PALETTE = [[(37 * i) % 256, (91 * i + 40) % 256, (53 * i + 7) % 256] for i in range(NUM_CLASSES)]


def make_tiny_checkpoint(path: Path, backbone: str = "resnet18",
                         input_size: tuple[int, int] | None = (64, 96)) -> Path:
    """Write a random-weight slimmable FCN checkpoint that runs in a few ms on CPU at 64x96."""
    import torch

    from slimseg_ros.models import ModelConfig, ModelInfo, build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=backbone, head="fcn", num_classes=NUM_CLASSES,
                                    head_channels=32)).eval()
    info = ModelInfo(class_names=[f"class_{i}" for i in range(NUM_CLASSES)], palette=PALETTE,
                     input_size=list(input_size) if input_size else None)
    save_checkpoint(path, model, info)
    return path


_CLAIMED_DOMAINS: list[Any] = []  # lock files held open until this process exits


def pick_domain_id() -> int:
    """
    Pick a ROS domain that no other process on this machine has claimed, and claim it.

    Two test processes on one domain (this run's and another's, or two modules of one run)
    would share node names and topics: one's probe served by the other's node. The claim is a
    lock on a file in the temporary folder, held until this process exits (child processes do
    not inherit it); with every domain claimed, a random one.
    """
    import fcntl
    import tempfile

    domains = random.Random(f"{os.getpid()}-{time.time_ns()}").sample(range(1, 101), 100)
    for domain in domains:
        claim = open(Path(tempfile.gettempdir()) / f"slimseg_ros_test_domain_{domain}.lock", "a")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another process, or by this one for another module
            claim.close()
            continue
        _CLAIMED_DOMAINS.append(claim)
        return domain
    return domains[0]


def wait_for(predicate: Callable[[], Any], timeout: float = DEADLINE, period: float = 0.02,
             action: Callable[[], None] | None = None, action_period: float = 0.1,
             describe: Callable[[], str] | None = None) -> Any:
    """
    Poll ``predicate`` until truthy (returned) or ``timeout`` (AssertionError).

    ``action`` (e.g. "publish a frame") runs every ``action_period`` seconds while waiting;
    ``describe`` says what the state was at the timeout, so a failure tells why.
    """
    deadline = time.monotonic() + timeout
    next_action = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now > deadline:
            state = f": {describe()}" if describe is not None else ""
            raise AssertionError(f"condition not met within {timeout} s{state}")
        if action is not None and now >= next_action:
            action()
            next_action = now + action_period
        time.sleep(period)


def settled(d: Diagnostics) -> bool:
    """
    Say whether every frame the node took was served, replaced, rejected or skipped.

    Then nothing waits in its latest-frame slot or is being inferred: true of a node that keeps
    no queue once its cameras stop, and never of one serving a backlog. Skipped frames are
    those nobody listened to and repeats of a served frame.
    """
    failed = d.rejected.get(REJECTED.image, 0) + d.rejected.get(REJECTED.inference, 0)
    return d.frames_received == (d.frames_processed + d.frames_dropped + failed
                                 + sum(d.skipped.values()))


def random_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Return an ``h`` x ``w`` RGB frame of random pixels (the same for the same seed)."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str, frame_id: str = "camera", stamp: Any = None,
              pad: int = 0) -> Any:
    """Build a sensor_msgs/Image holding ``pixels`` with ``pad`` extra bytes per row."""
    from sensor_msgs.msg import Image

    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, step=rows.shape[1])
    msg.data = array.array("B", np.ascontiguousarray(rows).tobytes())
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


class CameraChannel:
    """
    The probe's side of one camera of a node with ``cameras``.

    It holds a frame publisher, the camera's own width request, and what the node publishes for
    it (masks with their arrival times on the probe's clock, active widths).
    """

    def __init__(self, probe: Probe, name: str) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import Float32

        self.name = name
        self.probe = probe
        self.topics = camera_topics(name)
        n = probe.node
        self.masks: list[Any] = []
        self.mask_arrival: list[int] = []
        self.widths: list[float] = []
        n.create_subscription(Image, self.topics.mask, self._on_mask, probe.out_qos)
        n.create_subscription(Float32, self.topics.active_width,
                              probe._store(self.widths, "data"),
                              QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.image_pub = n.create_publisher(Image, self.topics.image, QoSProfile(depth=1))
        self.compressed_pub = n.create_publisher(CompressedImage, self.topics.compressed_image,
                                                 QoSProfile(depth=1))
        self.width_pub = n.create_publisher(Float32, self.topics.width, 10)

    def _on_mask(self, msg: Any) -> None:
        now = self.probe.node.get_clock().now().nanoseconds
        with self.probe.lock:
            self.masks.append(msg)
            self.mask_arrival.append(now)
            self.probe.events.append((self.name, msg))

    def send_width(self, value: float) -> None:
        from std_msgs.msg import Float32
        self.width_pub.publish(Float32(data=float(value)))

    def width(self) -> float | None:
        """Return the latest active width the node announced for this camera."""
        with self.probe.lock:
            return self.widths[-1] if self.widths else None

    def mask_count(self) -> int:
        with self.probe.lock:
            return len(self.masks)

    def masks_since(self, start: int) -> list[Any]:
        """Return the masks that arrived after the first ``start``."""
        with self.probe.lock:
            return self.masks[start:]

    def diag(self) -> Diagnostics:
        """Return this camera's status in the latest diagnostics (defaults before the first)."""
        status = self.probe.status_named(camera_status_name(self.probe.node_under_test,
                                                            self.name))
        return read_diagnostics({kv.key: kv.value for kv in status.values}) if status else \
            Diagnostics()

    def fresh_diag(self, predicate: Callable[[Diagnostics], bool],
                   timeout: float = DEADLINE, **wait_options: Any) -> Diagnostics:
        """
        Wait for diagnostics whose status of this camera satisfies ``predicate``.

        Only a message newer than the call counts.
        """
        return self.probe.fresh_status(
            predicate, timeout,
            status=camera_status_name(self.probe.node_under_test, self.name),
            **wait_options)[2]


class Probe:
    """A test-side node: publishes frames and control inputs, records everything the node says."""

    node_under_test = "slimseg_node"  # whose per-camera statuses camera channels read

    def __init__(self, context: Any, name: str = "probe",
                 mask_reliability: str = "reliable") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import BatteryState, CompressedImage, Image, Temperature
        from std_msgs.msg import Float32

        self.node = Node(name, context=context)
        self.lock = threading.Lock()
        self.masks: list[Any] = []
        self.colors: list[Any] = []
        self.overlays: list[Any] = []
        self.widths: list[float] = []
        self.diagnostics: list[Any] = []
        self.mask_arrival: list[float] = []  # node clock (ns) when each mask arrived
        # every camera channel's masks as ``(camera, mask)`` in the order they arrived, and what
        # a test notes between them (:meth:`note`): who was served while something waited
        self.events: list[tuple[str, Any]] = []
        rel = (ReliabilityPolicy.RELIABLE if mask_reliability == "reliable"
               else ReliabilityPolicy.BEST_EFFORT)
        out_qos = QoSProfile(depth=5, reliability=rel)
        self.out_qos = out_qos
        n = self.node
        self.mask_sub = n.create_subscription(Image, TOPICS.mask, self._on_mask, out_qos)
        n.create_subscription(Float32, TOPICS.active_width, self._store(self.widths, "data"),
                              QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        n.create_subscription(DiagnosticArray, TOPICS.diagnostics, self._store(self.diagnostics),
                              10)
        self.image_pub = n.create_publisher(Image, TOPICS.image, QoSProfile(depth=1))
        self.compressed_pub = n.create_publisher(CompressedImage, TOPICS.compressed_image,
                                                 QoSProfile(depth=1))
        self.width_pub = n.create_publisher(Float32, TOPICS.width, 10)
        self.budget_pub = n.create_publisher(Float32, TOPICS.budget, 10)
        self.cpu_budget_pub = n.create_publisher(Float32, TOPICS.cpu_budget, 10)
        self.battery_pub = n.create_publisher(BatteryState, TOPICS.battery, 10)
        self.temperature_pub = n.create_publisher(Temperature, TOPICS.temperature, 10)
        self._out_qos = out_qos
        self._color_sub = None
        self._overlay_sub = None

    def control_publishers(self) -> list[Any]:
        """Return the publishers of the node's control and sensor inputs (not images)."""
        return [self.width_pub, self.budget_pub, self.cpu_budget_pub, self.battery_pub,
                self.temperature_pub]

    def make_publisher(self, msg_type: Any, topic: str, qos: Any) -> Any:
        """
        Create a publisher a test may destroy while the executor spins.

        It has no QoS event handlers: rclpy's executor takes a pending event (e.g. "incompatible
        QoS") without guarding against its destruction, and spin() then dies with InvalidHandle.
        """
        try:
            from rclpy.event_handler import PublisherEventCallbacks
        except ImportError:  # Humble
            from rclpy.qos_event import PublisherEventCallbacks
        return self.node.create_publisher(
            msg_type, topic, qos,
            event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))

    def _store(self, target: list, attr: str | None = None) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                target.append(getattr(msg, attr) if attr else msg)
        return callback

    def _on_mask(self, msg: Any) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self.lock:
            self.masks.append(msg)
            self.mask_arrival.append(now)

    def subscribe_color(self) -> None:
        from sensor_msgs.msg import Image
        self._color_sub = self.node.create_subscription(Image, TOPICS.color,
                                                        self._store(self.colors), self._out_qos)

    def stop_listening_to_masks(self) -> None:
        """Drop the mask subscription: with nothing else subscribed, nobody listens to the node."""
        if self.mask_sub is not None:
            self.node.destroy_subscription(self.mask_sub)
            self.mask_sub = None

    def listen(self, msg_type: Any, topic: str, qos: Any = None) -> list[Any]:
        """Subscribe ``topic``; return the list its messages are appended to (under the lock)."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, self._store(received),
                                      qos if qos is not None else self._out_qos)
        return received

    def subscribe_overlay(self) -> None:
        from sensor_msgs.msg import Image
        self._overlay_sub = self.node.create_subscription(
            Image, TOPICS.overlay, self._store(self.overlays), self._out_qos)

    # ------------------------------------------------------------------ sending
    def send_width(self, value: float) -> None:
        from std_msgs.msg import Float32
        self.width_pub.publish(Float32(data=float(value)))

    def send_budget(self, ms: float) -> None:
        from std_msgs.msg import Float32
        self.budget_pub.publish(Float32(data=float(ms)))

    def send_cpu_budget(self, fraction: float) -> None:
        from std_msgs.msg import Float32
        self.cpu_budget_pub.publish(Float32(data=float(fraction)))

    def send_battery(self, fraction: float, charging: bool = False) -> None:
        from sensor_msgs.msg import BatteryState
        status = (BatteryState.POWER_SUPPLY_STATUS_CHARGING if charging
                  else BatteryState.POWER_SUPPLY_STATUS_DISCHARGING)
        self.battery_pub.publish(BatteryState(percentage=float(fraction),
                                              power_supply_status=status))

    def send_temperature(self, celsius: float) -> None:
        from sensor_msgs.msg import Temperature
        self.temperature_pub.publish(Temperature(temperature=float(celsius)))

    def add_camera(self, name: str) -> CameraChannel:
        """Publish and listen on camera ``name``'s topics (a node with ``cameras``)."""
        return CameraChannel(self, name)

    def note(self, event: str, value: Any = None) -> None:
        """Append ``(event, value)`` to :attr:`events`, between the masks that arrived."""
        with self.lock:
            self.events.append((event, value))

    # ------------------------------------------------------------------ reading
    def status_named(self, name: str) -> Any:
        """Return the status called ``name`` in the latest diagnostics holding one, or None."""
        with self.lock:
            for msg in reversed(self.diagnostics):
                for status in msg.status:
                    if status.name == name:
                        return status
        return None

    def mask_count(self) -> int:
        with self.lock:
            return len(self.masks)

    def masks_since(self, start: int) -> list[Any]:
        """Return the masks that arrived after the first ``start``."""
        with self.lock:
            return self.masks[start:]

    def first_diag_after(self, stamp_ns: int) -> Diagnostics | None:
        """
        Return the first status of the first diagnostics stamped at or after ``stamp_ns``.

        The stamp is the node's clock when it published them, so this is what the node counted
        at that instant. None until such a message arrived.
        """
        from rclpy.time import Time
        with self.lock:
            msgs = list(self.diagnostics)
        for msg in msgs:
            if Time.from_msg(msg.header.stamp).nanoseconds >= stamp_ns and msg.status:
                status = msg.status[0]
                return read_diagnostics({kv.key: kv.value for kv in status.values})
        return None

    def latest_status(self) -> Any:
        with self.lock:
            return self.diagnostics[-1].status[0] if self.diagnostics else None

    def diag(self) -> Diagnostics:
        """Return the latest diagnostics (all defaults before the first message)."""
        status = self.latest_status()
        return read_diagnostics({kv.key: kv.value for kv in status.values}) if status else \
            Diagnostics()

    def fresh_status(self, predicate: Callable[[Diagnostics], bool],
                     timeout: float = DEADLINE, status: str | None = None,
                     **wait_options: Any) -> tuple[int, str, Diagnostics]:
        """
        Wait for a diagnostics message (newer than now) whose values satisfy ``predicate``.

        Returns its level, message and values. ``status`` names the status to read (default:
        the first, the shared one); ``wait_options`` go to :func:`wait_for` (e.g. an
        ``action`` that keeps frames coming while the node settles).
        """
        with self.lock:
            start = len(self.diagnostics)

        def pick(msg: Any) -> Any:
            if status is None:
                return msg.status[0]
            return next((s for s in msg.status if s.name == status), None)

        def check() -> tuple[int, str, Diagnostics] | None:
            with self.lock:
                new = self.diagnostics[start:]
            for msg in reversed(new):
                found = pick(msg)
                if found is None:
                    continue
                d = read_diagnostics({kv.key: kv.value for kv in found.values})
                if predicate(d):
                    level = (int.from_bytes(found.level, "little")
                             if isinstance(found.level, bytes) else int(found.level))
                    return level, found.message, d
            return None
        return wait_for(check, timeout, **wait_options)

    def fresh_diag(self, predicate: Callable[[Diagnostics], bool],
                   timeout: float = DEADLINE, **wait_options: Any) -> Diagnostics:
        """Wait for a diagnostics message (newer than now) whose values satisfy ``predicate``."""
        return self.fresh_status(predicate, timeout, **wait_options)[2]

    def count(self, items: list) -> int:
        with self.lock:
            return len(items)

    def destroy(self) -> None:
        self.node.destroy_node()


def try_publish(pub: Any, msg: Any) -> bool:
    """
    Publish ``msg``; False where DDS refused it for now ("cannot publish data").

    A reliable writer holding a large frame not yet acknowledged refuses the next one after a
    short wait, which a busy machine turns from rare into common: the frame is not sent.
    """
    from rclpy.impl.implementation_singleton import rclpy_implementation

    try:
        pub.publish(msg)
    except rclpy_implementation.RCLError as exc:
        if "cannot publish data" not in str(exc):
            raise
        return False
    return True


def send_until_mask(receiver: Probe | CameraChannel, msg: Any, pub: Any = None,
                    count: int = 1, timeout: float = DEADLINE, period: float = 0.1) -> Any:
    """
    Publish ``msg`` every ``period`` s until ``count`` new masks of it arrived; return the last.

    ``receiver`` is the probe (the single-camera topics) or one of its camera channels; ``pub``
    defaults to its image publisher. A mask counts when its ``frame_id`` is ``msg``'s: a mask
    of a frame sent before this call (still being served) is no answer to it. Republishing
    covers discovery (the first frames may find no subscription yet) and a frame the node
    replaced with a newer one.
    """
    pub = pub or receiver.image_pub
    start = receiver.mask_count()
    frame_id = msg.header.frame_id

    def answered() -> list[Any]:
        return [m for m in receiver.masks_since(start) if m.header.frame_id == frame_id]
    wait_for(lambda: len(answered()) >= count, timeout, action=lambda: try_publish(pub, msg),
             action_period=period,
             describe=lambda: f"{len(answered())} of {count} mask(s) of frame_id {frame_id!r}, "
                              f"{receiver.mask_count() - start} mask(s) in all")
    return answered()[-1]


def wait_matched(publishers: list[Any], node: Any = None, timeout: float = DEADLINE) -> None:
    """
    Wait until DDS discovery matched each of ``publishers`` to a subscription.

    With ``node`` (a node in this process), also until ``node``'s subscription on each topic
    matched a publisher: a reader drops what a writer it has not discovered yet sends, so a
    single message published earlier could be lost. A node in another process is only seen
    from the publishers' side.
    """
    def node_side(topic: str) -> bool:
        for sub in list(node.subscriptions):
            try:  # a subscription the node replaced meanwhile has no handle left
                if sub.topic_name == topic and sub.get_publisher_count() > 0:
                    return True
            except Exception:
                continue
        return False

    def unmatched() -> list[str]:
        return [p.topic_name for p in publishers if p.get_subscription_count() == 0
                or (node is not None and not node_side(p.topic_name))]
    wait_for(lambda: not unmatched(), timeout,
             describe=lambda: f"not matched: {unmatched()}")


class Spinner:
    """
    An executor spinning some nodes in a background thread, as the node's own process does.

    Single-threaded, like :func:`slimseg_ros.ros.node.run`: rclpy's MultiThreadedExecutor spins
    without waiting while a callback it queued has not started, and with the node and the probe
    in one process that loop took 95% of a core and slowed inference of a 2 ms frame to seconds.
    """

    def __init__(self, context: Any, *nodes: Any) -> None:
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=context)
        self.error: Exception | None = None
        self.error_trace = ""
        self.stopping = False
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception as exc:  # a callback raised, or the context shut down at teardown
            if not self.stopping:
                self.error = exc
                self.error_trace = traceback.format_exc()

    def stop(self) -> None:
        """Shut down; raise if spin() died before, so a dead executor never passes silently."""
        self.stopping = True
        # callbacks still running when the nodes are destroyed can crash rclpy (seen once, on a
        # loaded machine, as SIGSEGV in destroy_node): give a busy callback time to finish
        self.executor.shutdown(timeout_sec=10.0)
        self.thread.join(timeout=10.0)
        if self.error is not None:
            raise AssertionError(f"the executor stopped spinning: {self.error!r}\n"
                                 f"{self.error_trace}")
