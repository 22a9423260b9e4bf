"""The ROS 2 node: camera frames in, class masks out, width switched on the fly.

Glue only: :mod:`.conversions` turns messages into arrays, :class:`~.engine.SegmentationEngine`
runs the network, :class:`~.governor.Governor` picks the width. This module wires topics,
parameters, QoS and threads to them.

Threads: the image subscription callback only drops the message into a one-frame slot
(:class:`~.node_support.LatestSlot`); a dedicated inference thread takes the newest frame,
converts it, asks the governor for the width and runs the engine. Control topics, parameters and
timers run on a ``MultiThreadedExecutor`` in their own callback group, so a width command is
handled while a frame is being processed and applies to the next frame. Nothing queues more than
one frame: under overload stale frames are dropped (and counted), never processed late.

Topics (relative, so they can be remapped or namespaced; the names live in :mod:`.contract`):

==========================  ===============================  =================================
``image``                   sensor_msgs/Image (in)           rgb8/bgr8/mono8/rgba8/bgra8
``image/compressed``        sensor_msgs/CompressedImage (in) ``input_transport: compressed``; follows ``image``
``slimseg/mask``            sensor_msgs/Image (out)          mono8 class ids, input header/size
``slimseg/color``           sensor_msgs/Image (out)          rgb8 palette colours (lazy)
``slimseg/overlay``         sensor_msgs/Image (out)          rgb8 frame + colours (lazy, opt-in)
``slimseg/active_width``    std_msgs/Float32 (out)           transient-local
``/diagnostics``            diagnostic_msgs/DiagnosticArray  width, reason, latency, drops
``slimseg/width``           std_msgs/Float32 (in)            requested width
``battery_state``           sensor_msgs/BatteryState (in)    percentage 0-1, charging status
``temperature``             sensor_msgs/Temperature (in)     degrees Celsius
``slimseg/budget_ms``       std_msgs/Float32 (in)            latency budget per frame, ms
==========================  ===============================  =================================
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import BatteryState, CompressedImage, Image, Temperature
from std_msgs.msg import Float32

from .contract import (NODE_NAME, REJECTED, TOPICS, Diagnostics, LastFrame, compressed_topic,
                       diagnostics_values, status_name)
from .conversions import colorize, compressed_to_rgb, fill_image, image_to_rgb, overlay, palette_lut
from .governor import Decision, Governor
from .latency import LatencyStore
from .node_support import LatestSlot, Rejections, apply_dds_profile, default_checkpoint
from .params import (GOVERNOR_PREFIX, MODEL_PARAMS, PARAMS, ParamSpec, check_value,
                     governor_config_from_params)

_CHARGING = (BatteryState.POWER_SUPPLY_STATUS_CHARGING, BatteryState.POWER_SUPPLY_STATUS_FULL)


class StartupError(RuntimeError):
    """The node cannot start (missing checkpoint, bad parameter); the message says why."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                               additional_constraints=spec.constraints)
    if spec.lo is not None and spec.kind == "float":
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.lo),
                                                        to_value=float(spec.hi), step=0.0)]
    elif spec.lo is not None and spec.kind == "int":
        desc.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi),
                                           step=1)]
    return desc


def _reliability_name(policy: ReliabilityPolicy) -> str:
    return "reliable" if policy == ReliabilityPolicy.RELIABLE else "best_effort"


class SlimSegNode(Node):
    """Semantic segmentation of camera frames at a width chosen by request, battery, heat and
    compute budget. Raises :class:`StartupError` when the model or a parameter is unusable."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        try:
            self._setup()
        except BaseException:
            Node.destroy_node(self)  # leave no half-made node in the graph
            raise

    def _setup(self) -> None:
        try:
            for spec in PARAMS:
                self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except ParameterException as exc:  # wrong type or out of range in YAML / -p
            raise StartupError(f"invalid parameter: {exc}") from None
        values = {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}
        try:
            for name, value in values.items():
                check_value(name, value)
            gov_config = governor_config_from_params(values)
        except ValueError as exc:
            raise StartupError(str(exc)) from None

        self._engine = self._load_engine(values)
        info = self._engine.info
        self._lut = palette_lut(info.palette)
        self._governor = Governor(self._engine.widths, gov_config)
        self._gov_lock = threading.Lock()
        self._governor.request(float(values["width"]))
        model_values = {"class_names": list(info.class_names),
                        "palette": [int(v) for c in info.palette for v in c],
                        "widths": [float(w) for w in self._engine.widths]}
        for spec in MODEL_PARAMS:
            self.declare_parameter(spec.name, model_values[spec.name], _descriptor(spec),
                                   ignore_override=True)

        self._publish_color = bool(values["publish_color"])
        self._publish_overlay = bool(values["publish_overlay"])
        self._overlay_alpha = float(values["overlay_alpha"])
        self._image_qos = str(values["image_qos"])
        self._compressed = values["input_transport"] == "compressed"
        self._latency = LatencyStore(float(values["latency_window_s"]),
                                     int(values["latency_window_frames"]))
        self._rejections = Rejections(throttle_s=float(values["warn_throttle_s"]))
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._stats_lock = threading.Lock()
        self._processed = 0
        self._processed_at: dict[float, int] = {}
        self._last_frame: LastFrame | None = None
        self._decision: Decision | None = None  # the governor's last one: the active width
        self._diag_counts: dict[str, int] = {}

        # --- outputs ---
        image_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._mask_pub = self.create_publisher(Image, TOPICS.mask, image_out)
        self._color_pub = self.create_publisher(Image, TOPICS.color, image_out)
        self._overlay_pub = self.create_publisher(Image, TOPICS.overlay, image_out)
        self._width_pub = self.create_publisher(Float32, TOPICS.active_width, latched)
        self._diag_pub = self.create_publisher(DiagnosticArray, TOPICS.diagnostics, 10)

        # --- inputs ---
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._image_group = MutuallyExclusiveCallbackGroup()
        control = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                             reliability=ReliabilityPolicy.RELIABLE)
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        self.create_subscription(Float32, TOPICS.width, self._on_width, control,
                                 callback_group=self._control_group)
        self.create_subscription(Float32, TOPICS.budget, self._on_budget, control,
                                 callback_group=self._control_group)
        self.create_subscription(BatteryState, TOPICS.battery, self._on_battery, sensor,
                                 callback_group=self._control_group)
        self._temperature_sub = self.create_subscription(
            Temperature, TOPICS.temperature, self._on_temperature, sensor,
            callback_group=self._control_group)
        self._image_type = CompressedImage if self._compressed else Image
        self._image_topic = self._input_topic()
        self._image_sub = None
        self._image_reliability: ReliabilityPolicy | None = None
        self._image_publishers = 0
        self._incompatible_publishers = 0
        self._update_image_subscription()
        # Same mutually exclusive group as the image subscription: the subscription is never
        # destroyed while the executor is taking a message from it (rclpy then leaves the
        # group marked busy and the new subscription would never run).
        self.create_timer(float(values["qos_check_period_s"]), self._update_image_subscription,
                          callback_group=self._image_group)
        self.create_timer(float(values["diagnostics_period_s"]), self._publish_diagnostics,
                          callback_group=self._control_group)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._decide(time.monotonic())  # publishes the initial active width (latched)
        self._worker = threading.Thread(target=self._inference_loop, name="slimseg_inference",
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._engine!r}, {len(info.class_names)} classes, input "
            f"'{self._image_sub.topic_name}' ({'compressed' if self._compressed else 'raw'})")

    # ----------------------------------------------------------------------------- start-up
    def _load_engine(self, values: dict[str, Any]) -> Any:
        """Build the engine; every failure becomes one StartupError sentence naming the file."""
        import torch

        from .engine import SegmentationEngine
        from .models.checkpoint import CheckpointError, load_checkpoint

        if values["torch_threads"] > 0:
            torch.set_num_threads(int(values["torch_threads"]))
        try:
            path = values["checkpoint"] or str(default_checkpoint())
        except FileNotFoundError as exc:
            raise StartupError(str(exc)) from None
        try:
            model, info = load_checkpoint(path)
        except CheckpointError as exc:
            raise StartupError(str(exc)) from None
        size = list(values["input_size"])
        input_size = tuple(size) if size != [0, 0] else (
            tuple(info.input_size) if info.input_size else None)
        try:
            engine = SegmentationEngine(model, info, device=values["device"],
                                        specialise=values["specialise"],
                                        precision=values["precision"], input_size=input_size,
                                        backend=values["backend"], checkpoint_path=path)
        except ValueError as exc:  # BackendError too: a precision or runtime this host lacks
            raise StartupError(f"cannot run checkpoint {path}: {exc}") from None
        if engine.input_size is not None:
            engine.warmup(size=engine.input_size)  # first-call costs stay out of the budget
        self.get_logger().info(
            f"loaded checkpoint {path}: backend {engine.backend}, precision {engine.precision}, "
            f"device {engine.device}, widths {list(engine.widths)} prepared in "
            f"{engine.prepare_seconds:.1f} s ({engine.prepared_from})")
        return engine

    def _input_topic(self) -> str:
        """The image topic to subscribe to. Compressed frames follow the resolved (remapped,
        namespaced) name of ``image`` as image_transport does: ``-r image:=/cam/image_raw``
        moves ``image/compressed`` to ``/cam/image_raw/compressed``. A remapping of
        ``image/compressed`` itself still applies on top (rcl remaps the absolute name too)."""
        if not self._compressed:
            return TOPICS.image
        return compressed_topic(self.resolve_topic_name(TOPICS.image))

    # ----------------------------------------------------------------------------- QoS
    def _wanted_reliability(self) -> tuple[ReliabilityPolicy | None, int]:
        """(reliability to subscribe with, number of publishers); None keeps the current one."""
        if self._image_qos == "reliable":
            return ReliabilityPolicy.RELIABLE, -1
        if self._image_qos == "best_effort":
            return ReliabilityPolicy.BEST_EFFORT, -1
        topic = self._image_sub.topic_name if self._image_sub is not None else self._image_topic
        infos = self.get_publishers_info_by_topic(topic)
        if not infos:  # nobody publishes yet: best effort matches publishers of both kinds
            return (None if self._image_sub is not None else ReliabilityPolicy.BEST_EFFORT), 0
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        return (ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                len(infos))

    def _warn_incompatible(self) -> None:
        """Warn (once per change) about publishers a reliable subscription cannot hear."""
        incompatible = 0
        if self._image_sub is not None and self._image_reliability == ReliabilityPolicy.RELIABLE:
            incompatible = sum(
                i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                for i in self.get_publishers_info_by_topic(self._image_sub.topic_name))
        if incompatible and incompatible != self._incompatible_publishers:
            self.get_logger().warning(
                f"{incompatible} best-effort publisher(s) on '{self._image_sub.topic_name}' "
                f"cannot reach this reliable subscription (image_qos {self._image_qos}): no frames "
                f"from them; set image_qos to auto or best_effort")
        self._incompatible_publishers = incompatible

    def _update_image_subscription(self) -> None:
        """(Re)create the image subscription when the wanted reliability changes."""
        wanted, publishers = self._wanted_reliability()
        self._image_publishers = publishers
        if wanted is not None and wanted != self._image_reliability:
            self._subscribe_images(wanted, publishers)
        self._warn_incompatible()

    def _subscribe_images(self, wanted: ReliabilityPolicy, publishers: int) -> None:
        """Replace the image subscription by one with ``wanted`` reliability."""
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=wanted,
                         durability=DurabilityPolicy.VOLATILE)
        # Make before break: the new subscription is matched while the old one still delivers.
        # No QoS event handlers on it: rclpy's executor takes a pending event (e.g. "incompatible
        # QoS", raised exactly when a publisher of the other kind appears) without guarding
        # against its destruction, so destroying the subscription at that moment made spin()
        # raise InvalidHandle and stopped the node. Incompatibility is reported from the graph
        # instead (_warn_incompatible).
        old, self._image_sub = self._image_sub, self.create_subscription(
            self._image_type, self._image_topic, self._on_image, qos,
            callback_group=self._image_group,
            event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        if old is not None:
            self.destroy_subscription(old)
        self._image_reliability = wanted
        why = (f"image_qos {self._image_qos}" if publishers < 0 else
               f"{publishers} publisher(s)" if publishers else "no publishers yet")
        self.get_logger().info(f"subscribed to '{self._image_sub.topic_name}' with "
                               f"{_reliability_name(wanted)} QoS, depth 1 ({why})")

    # ----------------------------------------------------------------------------- inputs
    def _reject(self, kind: str, message: str) -> None:
        line = self._rejections.reject(kind, message, time.monotonic())
        if line is not None:
            self.get_logger().warning(line)

    def _on_image(self, msg: Any) -> None:
        self._slot.put((msg, time.monotonic()))

    def _on_width(self, msg: Float32) -> None:
        now = time.monotonic()
        try:
            with self._gov_lock:
                snapped = self._governor.request(float(msg.data))
        except ValueError as exc:
            self._reject(REJECTED.width, f"{exc}; keeping the current request")
            return
        self.get_logger().debug(f"width request {msg.data:g} -> {snapped:g}")
        self._decide(now)

    def _on_battery(self, msg: BatteryState) -> None:
        now = time.monotonic()
        fraction = float(msg.percentage)
        charging = msg.power_supply_status in _CHARGING
        if not (0.0 <= fraction <= 1.0):  # also catches NaN ("unknown" in BatteryState)
            self._reject(REJECTED.battery, f"percentage {fraction} is not a fraction in [0, 1] "
                                    "(BatteryState.percentage is 0-1, not 0-100)")
            return
        with self._gov_lock:
            self._governor.update_battery(fraction * 100.0, charging, now)
        self._decide(now)

    def _on_temperature(self, msg: Temperature) -> None:
        now = time.monotonic()
        try:
            with self._gov_lock:
                self._governor.update_temperature(float(msg.temperature), now)
        except ValueError as exc:
            self._reject(REJECTED.temperature, str(exc))
            return
        self._decide(now)

    def _on_budget(self, msg: Float32) -> None:
        now = time.monotonic()
        value = float(msg.data)
        try:
            with self._gov_lock:
                self._governor.update_budget(value if value != 0.0 else None, now)
        except ValueError as exc:
            self._reject(REJECTED.budget, f"{exc} (milliseconds per frame; 0 removes the budget)")
            return
        self._decide(now)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate every changed parameter first, then apply them all (or none)."""
        updates = {p.name: p.value for p in params}
        try:
            for name, value in updates.items():
                check_value(name, value)
            gov_config = None
            if any(name.startswith(GOVERNOR_PREFIX) for name in updates):
                current = {s.name: self.get_parameter(s.name).value for s in PARAMS
                           if s.name.startswith(GOVERNOR_PREFIX)}
                gov_config = governor_config_from_params({**current, **updates})
            if "width" in updates:
                with self._gov_lock:
                    self._governor.snap(float(updates["width"]))
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        now = time.monotonic()
        with self._gov_lock:
            if gov_config is not None:
                self._governor.update_config(gov_config)
            if "width" in updates:
                self._governor.request(float(updates["width"]))
        self._publish_color = bool(updates.get("publish_color", self._publish_color))
        self._publish_overlay = bool(updates.get("publish_overlay", self._publish_overlay))
        self._overlay_alpha = float(updates.get("overlay_alpha", self._overlay_alpha))
        if "image_qos" in updates:
            self._image_qos = str(updates["image_qos"])
            # applied by the next QoS check (a timer), not from inside this callback
        if "width" in updates or gov_config is not None:
            self._decide(now)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------- width
    def _decide(self, now: float) -> Decision:
        """Ask the governor for the width of the next frame; publish it when it changes.

        The decision is the only record of the active width: the frame is run at its width.
        """
        with self._gov_lock:
            previous, decision = self._decision, self._governor.decide_from(now, self._latency)
            self._decision = decision
            if previous is None or decision.width != previous.width:
                self._width_pub.publish(Float32(data=float(decision.width)))
                if previous is not None:
                    self.get_logger().info(f"width {previous.width:g} -> {decision.width:g}: "
                                           f"{decision.reason}")
        return decision

    # ----------------------------------------------------------------------------- inference
    def _inference_loop(self) -> None:
        while not self._slot.closed and self.context.ok():
            item = self._slot.take(timeout=0.5)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception as exc:  # keep serving frames; report the failure
                if self._slot.closed or not self.context.ok():
                    break
                self._reject(REJECTED.inference, f"{type(exc).__name__}: {exc}")

    def _process(self, msg: Any, received: float) -> None:
        try:
            rgb = compressed_to_rgb(msg) if self._compressed else image_to_rgb(msg)
        except ValueError as exc:
            self._reject(REJECTED.image, str(exc))
            return
        decision = self._decide(time.monotonic())
        # a runtime may compile its graphs for a new frame size: not a cost of the width
        self._engine.prepare_size(rgb.shape[0], rgb.shape[1])
        start = time.perf_counter()
        mask = self._engine.infer(rgb, decision.width)
        self._latency.record(decision.width, (time.perf_counter() - start) * 1000.0,
                             time.monotonic())

        out = fill_image(Image(), mask, "mono8")
        out.header = msg.header
        self._mask_pub.publish(out)
        want_color = self._publish_color and self._color_pub.get_subscription_count() > 0
        want_overlay = (self._publish_overlay
                        and self._overlay_pub.get_subscription_count() > 0)
        if want_color or want_overlay:
            colour = colorize(mask, self._lut)
            if want_color:
                msg_color = fill_image(Image(), colour, "rgb8")
                msg_color.header = msg.header
                self._color_pub.publish(msg_color)
            if want_overlay:
                msg_overlay = fill_image(Image(), overlay(rgb, colour, self._overlay_alpha),
                                         "rgb8")
                msg_overlay.header = msg.header
                self._overlay_pub.publish(msg_overlay)

        done = time.monotonic()
        stamp = Time.from_msg(msg.header.stamp)
        age_ms = ((self.get_clock().now() - stamp).nanoseconds / 1e6 if stamp.nanoseconds
                  else math.nan)  # meaningful when the camera stamps with this clock
        with self._stats_lock:
            self._processed += 1
            self._processed_at[decision.width] = self._processed_at.get(decision.width, 0) + 1
            self._last_frame = LastFrame(width=decision.width, width_px=int(mask.shape[1]),
                                         height_px=int(mask.shape[0]),
                                         delay_ms=(done - received) * 1e3, age_ms=age_ms)

    # ----------------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        decision = self._decide(time.monotonic())  # also refreshes stale-input warnings
        counts, last = self._rejections.snapshot()
        new = {k: n - self._diag_counts.get(k, 0) for k, n in counts.items()
               if n > self._diag_counts.get(k, 0)}
        self._diag_counts = counts
        with self._stats_lock:
            processed, per_width = self._processed, dict(self._processed_at)
            frame = self._last_frame

        report = Diagnostics(
            active_width=decision.width, reason=decision.reason,
            requested_width=self._governor.requested, caps=decision.caps,
            trained_widths=tuple(self._engine.widths), frames_received=self._slot.received,
            frames_processed=processed, frames_dropped=self._slot.dropped,
            image_topic=self._image_sub.topic_name,
            image_qos=_reliability_name(self._image_reliability),
            image_publishers=self._image_publishers, device=str(self._engine.device),
            backend=self._engine.backend, precision=self._engine.precision,
            last_frame=frame, latency=decision.latency,
            frames_at=per_width, rejected=counts, last_rejected=last,
            warnings=decision.warnings)
        values = [KeyValue(key=k, value=v) for k, v in diagnostics_values(report).items()]
        level, message = DiagnosticStatus.OK, f"width {decision.width:g}: {decision.reason}"
        problems = list(decision.warnings) + [f"{n} {k} input(s) rejected"
                                              for k, n in sorted(new.items())]
        if problems:
            level = DiagnosticStatus.ERROR if REJECTED.inference in new else DiagnosticStatus.WARN
            message += " (" + "; ".join(problems) + ")"
        status = DiagnosticStatus(level=level, name=status_name(self.get_name()),
                                  message=message, hardware_id=str(self._engine.device),
                                  values=values)
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    # ----------------------------------------------------------------------------- accessors
    @property
    def engine(self) -> Any:
        """The :class:`~slimseg_ros.engine.SegmentationEngine` (read-only use)."""
        return self._engine

    def frame_stats(self) -> dict[str, Any]:
        """Counters for tests and tools: received, processed, dropped, per-width, and the last
        frame (a :class:`~.contract.LastFrame`, None before the first)."""
        with self._stats_lock:
            return {"received": self._slot.received, "processed": self._processed,
                    "dropped": self._slot.dropped, "per_width": dict(self._processed_at),
                    "last": self._last_frame}

    def destroy_node(self) -> None:
        self._slot.close()  # wakes the inference thread, which then ends
        worker = getattr(self, "_worker", None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script ``slimseg_node``: ``slimseg_node --ros-args --params-file FILE``."""
    apply_dds_profile()  # before rclpy.init: Fast DDS reads it when the participant is made
    rclpy.init(args=args)
    node = None
    executor = None
    try:
        node = SlimSegNode()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C in a terminal reaches the node twice (from the terminal and from ros2 launch):
        # a second SIGINT must not interrupt the clean-up half way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
