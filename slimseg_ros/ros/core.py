"""
The node's work over ROS, written once for the plain node and the managed one.

The plain node is :mod:`.node`, the managed one :mod:`.lifecycle_node`. The work is the
parameters, the engine and governor, per-camera topics, the inference thread and diagnostics.

Phases, as a managed node has them: the constructor declares the parameters; :meth:`configure`
loads the checkpoint and prepares every width (the slow, failable part); :meth:`activate`
creates subscriptions, publishers and timers and starts the inference thread; :meth:`deactivate`
stops and destroys them, keeping the model warm; :meth:`cleanup` frees the model. The plain node
runs configure and activate in its constructor.

Threads: the image subscription callbacks only drop each message into its camera's one-frame
slot (:class:`~.frame_slots.FrameSlots`); one inference thread takes frames round-robin over
the cameras with a frame waiting, converts, asks the governor for every camera's width and runs
the one engine at the frame's camera's width. Control topics, parameters and timers run on the
executor's thread (one is enough: :func:`.node.run`), so a width command is handled while a
frame is being processed and applies to the next frame. Nothing queues more than one frame per
camera: under overload stale frames are dropped (and counted), never processed late.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Float32

from .contract import (REJECTED, TOPICS, Diagnostics, LastFrame, camera_status_name,
                       camera_topics, diagnostics_values, status_name)
from .conversions import compressed_to_rgb, image_to_rgb, palette_lut
from ..governor.decision import SINGLE, Decision, Governor
from ..widths import Width
from ..governor.latency import LatencyStore
from .camera import CONTROL_QOS, CameraIO, reliability_name
from .host_watch import HostWatch
from ..resources import default_checkpoint
from .frame_slots import FrameSlots
from .rejections import Rejections
from .signals import stop_signals_blocked
from .params import (GOVERNOR_PREFIX, MODEL_PARAMS, PARAMS, SPECS, ParamSpec,
                     check_camera_priorities, check_value, governor_config_from_params,
                     host_sensors_on)

_CHARGING = (BatteryState.POWER_SUPPLY_STATUS_CHARGING, BatteryState.POWER_SUPPLY_STATUS_FULL)
_EMPTY_TYPES = {"str_array": Parameter.Type.STRING_ARRAY,
                "float_array": Parameter.Type.DOUBLE_ARRAY,
                "int_array": Parameter.Type.INTEGER_ARRAY}
_SHARED = "shared"  # key of the shared rejections' diagnostics counts


class StartupError(RuntimeError):
    """The node cannot start (missing checkpoint, bad parameter); the message says why."""


def descriptor(spec: ParamSpec, read_only: bool) -> ParameterDescriptor:
    """Return the ROS descriptor of ``spec`` (``read_only`` as the node enforces it)."""
    desc = ParameterDescriptor(description=spec.description, read_only=read_only,
                               additional_constraints=spec.constraints,
                               # an unquoted off arrives as a boolean (YAML), see host_sensors_on
                               dynamic_typing=spec.name == "host_sensors")
    if spec.lo is not None and spec.kind == "float":
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.lo),
                                                        to_value=float(spec.hi), step=0.0)]
    elif spec.lo is not None and spec.kind == "int":
        desc.integer_range = [IntegerRange(from_value=int(spec.lo), to_value=int(spec.hi),
                                           step=1)]
    return desc


def _initial(spec: ParamSpec) -> Any:
    """Return the declared default; an empty list is declared by type (rclpy cannot infer it)."""
    return _EMPTY_TYPES[spec.kind] if spec.default == [] else spec.default


class SlimSegCore:
    """
    Segmentation of one or several cameras' frames on ``node``, at widths set by the governor.

    The widths are chosen by request, battery, heat and compute budget. ``managed``: parameters
    fixed after start-up can be changed while unconfigured (a lifecycle node), not only before
    construction.
    """

    def __init__(self, node: Node, managed: bool = False) -> None:
        self.node = node
        self.managed = managed
        self.engine: Any = None
        self._governor: Governor | None = None
        self._cameras: dict[str, CameraIO] = {}
        self._slots: FrameSlots[tuple[Any, float]] | None = None
        self._worker: threading.Thread | None = None
        self._active = False
        self._gov_lock = threading.Lock()
        self._setting_model = False
        self._model_declared = False
        self._entities: list[tuple[str, Any]] = []  # ("sub"|"pub"|"timer", entity) of activate
        self._diag_counts: dict[str, dict[str, int]] = {}
        self._host: HostWatch | None = None
        try:
            for spec in PARAMS:
                node.declare_parameter(spec.name, _initial(spec),
                                       descriptor(spec, spec.read_only and not managed))
        except ParameterException as exc:  # wrong type or out of range in YAML / -p
            raise StartupError(f"invalid parameter: {exc}") from None
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # ----------------------------------------------------------------------------- state
    @property
    def configured(self) -> bool:
        return self.engine is not None

    @property
    def active(self) -> bool:
        return self._active

    @property
    def single(self) -> bool:
        """Whether the node has no ``cameras``: one camera on the plain topic names."""
        return list(self._cameras) == [SINGLE]

    def value(self, name: str) -> Any:
        """Return a parameter's value; a list declared empty by type reads as the empty default."""
        try:
            return self.node.get_parameter(name).value
        except ParameterUninitializedException:
            return list(SPECS[name].default)

    def camera(self, name: str | None = None) -> CameraIO:
        """Return the camera ``name`` (None: the only one)."""
        if name is None and len(self._cameras) == 1:
            return next(iter(self._cameras.values()))
        if name not in self._cameras:
            raise ValueError(f"unknown camera {name!r}; cameras: {list(self._cameras)}")
        return self._cameras[name]

    # ----------------------------------------------------------------------------- configure
    def configure(self) -> None:
        """
        Validate the parameters, load the checkpoint and prepare every width.

        Raises :class:`StartupError` with one sentence; the core is then left unconfigured.
        """
        values = {spec.name: self.value(spec.name) for spec in PARAMS}
        try:
            for name, value in values.items():
                check_value(name, value)
            gov_config = governor_config_from_params(values)
            names = [str(c) for c in values["cameras"]]
            priorities = [float(p) for p in values["camera_priorities"]]
            check_camera_priorities(names, priorities)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        with stop_signals_blocked():  # the runtime's thread pool starts here: no stop signals
            engine = self._load_engine(values)
        info = engine.info
        names = names or [SINGLE]
        governor = Governor(engine.widths, gov_config, cameras=names,
                            priorities=priorities or None)
        governor.request(governor.widths.snap(float(values["width"])))
        governor.update_cpu_budget(float(values["cpu_budget"]) or None)
        self._declare_model_params({"class_names": list(info.class_names),
                                    "palette": [int(v) for c in info.palette for v in c],
                                    "widths": [float(w) for w in engine.widths]})
        self._lut = palette_lut(info.palette)
        self._publish_color = bool(values["publish_color"])
        self._publish_overlay = bool(values["publish_overlay"])
        self._overlay_alpha = float(values["overlay_alpha"])
        self._image_qos = str(values["image_qos"])
        self._compressed = values["input_transport"] == "compressed"
        self._values = values
        self._rejections = Rejections(throttle_s=float(values["warn_throttle_s"]))
        self._cameras = {name: CameraIO(
            self.node, name, camera_topics(name), compressed=self._compressed,
            latency=LatencyStore(float(values["latency_window_s"]),
                                 int(values["latency_window_frames"])),
            rejections=(self._rejections if name == SINGLE
                        else Rejections(throttle_s=float(values["warn_throttle_s"]))))
            for name in names}
        self._host = HostWatch(self.node.get_logger(), host_sensors_on(values["host_sensors"]),
                               [str(p) for p in values["host_temperature_sensors"]])
        self._governor = governor
        self._diag_counts = {}
        self.engine = engine
        # The model, torch and the runtimes leave ~10^5 long-lived objects: one full collection
        # over them stalls every thread for a few hundred ms, a frame's worth of latency or more.
        # Freezing them keeps later collections to the objects that frames create.
        gc.collect()
        gc.freeze()

    def _declare_model_params(self, model_values: dict[str, Any]) -> None:
        """Declare the checkpoint's class names, palette and widths as read-only parameters."""
        self._setting_model = True
        try:
            if not self._model_declared:
                for spec in MODEL_PARAMS:
                    self.node.declare_parameter(spec.name, model_values[spec.name],
                                                descriptor(spec, not self.managed),
                                                ignore_override=True)
                self._model_declared = True
            else:  # a managed node configured again, perhaps with another checkpoint
                self.node.set_parameters([Parameter(s.name, value=model_values[s.name])
                                          for s in MODEL_PARAMS])
        finally:
            self._setting_model = False

    def _load_engine(self, values: dict[str, Any]) -> Any:
        """Build the engine; every failure becomes one StartupError sentence naming the file."""
        import torch

        from ..inference.engine import SegmentationEngine
        from ..models.checkpoint import CheckpointError, load_checkpoint

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
        self.node.get_logger().info(
            f"loaded checkpoint {path}: backend {engine.backend}, precision {engine.precision}, "
            f"device {engine.device}, widths {list(engine.widths)} prepared in "
            f"{engine.prepare_seconds:.1f} s ({engine.prepared_from})")
        return engine

    # ----------------------------------------------------------------------------- activate
    def activate(self) -> None:
        """Start the flow: subscriptions, publishers, timers and the inference thread."""
        n, v = self.node, self._values
        control = MutuallyExclusiveCallbackGroup()
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        self._diag_pub = n.create_publisher(DiagnosticArray, TOPICS.diagnostics, 10)
        self._entities = [("pub", self._diag_pub)] + [("sub", n.create_subscription(
            msg_type, topic, callback, qos, callback_group=control)) for msg_type, topic,
            callback, qos in ((Float32, TOPICS.width, self._on_width, CONTROL_QOS),
                              (Float32, TOPICS.budget, self._on_budget, CONTROL_QOS),
                              (Float32, TOPICS.cpu_budget, self._on_cpu_budget, CONTROL_QOS),
                              (BatteryState, TOPICS.battery, self._on_battery, sensor),
                              (Temperature, TOPICS.temperature, self._on_temperature, sensor))]
        self._slots = FrameSlots(list(self._cameras))
        for cam in self._cameras.values():
            cam.open(self._on_image, self._on_camera_request, lambda: self._image_qos,
                     float(v["qos_check_period_s"]), control)
            cam.decision = None  # the first decision publishes the active width (latched)
        self._entities.append(("timer", n.create_timer(
            float(v["diagnostics_period_s"]), self._publish_diagnostics,
            callback_group=control)))
        self._entities.append(("timer", n.create_timer(
            float(v["host_period_s"]), self._read_host, callback_group=control)))
        self._active = True
        self._read_host()  # the host's readings count from the first frame on
        self._worker = threading.Thread(target=self._inference_loop, args=(self._slots,),
                                        name="slimseg_inference", daemon=True)
        with stop_signals_blocked():  # the model's thread (and the pools it starts) keep them off
            self._worker.start()
        inputs = ", ".join(f"'{c.image_sub.topic_name}'" for c in self._cameras.values())
        n.get_logger().info(
            f"ready: {self.engine!r}, {len(self.engine.info.class_names)} classes, input "
            f"{inputs} ({'compressed' if self._compressed else 'raw'})")

    def deactivate(self) -> None:
        """Stop the flow and destroy what :meth:`activate` made; the model stays loaded."""
        self._active = False
        if self._slots is not None:
            self._slots.close()  # wakes the inference thread, which then ends
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10.0)
        with self._gov_lock:  # no decision publishes while its publisher goes away
            for kind, entity in self._entities:
                {"sub": self.node.destroy_subscription, "pub": self.node.destroy_publisher,
                 "timer": self.node.destroy_timer}[kind](entity)
            self._entities = []
            for cam in self._cameras.values():
                cam.close()

    def cleanup(self) -> None:
        """Free the model and the per-camera state (a managed node configures again)."""
        if self._active:
            self.deactivate()
        device = str(getattr(self.engine, "device", ""))
        self.engine = None
        self._governor = None
        self._cameras = {}
        gc.unfreeze()  # the frozen model becomes collectable again
        gc.collect()
        if device.startswith("cuda"):
            import torch
            torch.cuda.empty_cache()

    def shutdown(self) -> None:
        """From any state: stop the flow and free the model."""
        if self._active:
            self.deactivate()
        if self.configured:
            self.cleanup()

    # ----------------------------------------------------------------------------- inputs
    def _reject(self, rejections: Rejections, kind: str, message: str, label: str = "") -> None:
        line = rejections.reject(kind, message, time.monotonic())
        if line is not None:
            self.node.get_logger().warning(label + line)

    def _on_image(self, camera: str, msg: Any) -> None:
        now = time.monotonic()
        self._slots.put(camera, (msg, now), now)

    def _on_width(self, msg: Float32) -> None:
        self._request(None, msg, self._rejections)

    def _on_camera_request(self, camera: str, msg: Float32) -> None:
        self._request(camera, msg, self._cameras[camera].rejections)

    def _request(self, camera: str | None, msg: Float32, rejections: Rejections) -> None:
        now = time.monotonic()
        try:
            with self._gov_lock:
                governor = self._governor
                snapped = governor.request(governor.widths.snap(float(msg.data)), camera)
        except ValueError as exc:
            label = self._cameras[camera].label if camera else ""
            self._reject(rejections, REJECTED.width, f"{exc}; keeping the current request",
                         label)
            return
        self.node.get_logger().debug(f"width request {msg.data:g} -> {snapped:g}")
        self._decide(now)

    def _on_battery(self, msg: BatteryState) -> None:
        now = time.monotonic()
        fraction = float(msg.percentage)
        charging = msg.power_supply_status in _CHARGING
        if not (0.0 <= fraction <= 1.0):  # also catches NaN ("unknown" in BatteryState)
            self._reject(self._rejections, REJECTED.battery,
                         f"percentage {fraction} is not a fraction in [0, 1] "
                         "(BatteryState.percentage is 0-1, not 0-100)")
            return
        with self._gov_lock:
            self._governor.update_battery(fraction * 100.0, charging, now)
        self._decide(now)

    def _on_temperature(self, msg: Temperature) -> None:
        now = time.monotonic()
        self._policy_input(lambda: self._governor.update_temperature(float(msg.temperature), now),
                           REJECTED.temperature, "", now)

    def _on_budget(self, msg: Float32) -> None:
        now, ms = time.monotonic(), float(msg.data)
        self._policy_input(lambda: self._governor.update_budget(ms if ms != 0.0 else None, now),
                           REJECTED.budget, "milliseconds per frame; 0 removes the budget", now)

    def _on_cpu_budget(self, msg: Float32) -> None:
        self._policy_input(lambda: self._governor.update_cpu_budget(float(msg.data)),
                           REJECTED.cpu_budget,
                           "a fraction of the usable cores; 0 removes the budget",
                           time.monotonic())

    def _policy_input(self, update: Callable[[], None], kind: str, hint: str,
                      now: float) -> None:
        """Apply one input to the governor; a ValueError rejects it and keeps the state."""
        try:
            with self._gov_lock:
                update()
        except ValueError as exc:
            self._reject(self._rejections, kind, f"{exc} ({hint})" if hint else str(exc))
            return
        self._decide(now)

    def _read_host(self) -> None:
        """Read the computer (battery, temperature, the node's CPU share and memory)."""
        now = time.monotonic()
        self._host.read(self._governor, self._gov_lock, now)
        self._decide(now)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate every changed parameter first, then apply them all (or none)."""
        if self._setting_model:
            return SetParametersResult(successful=True)
        updates = {p.name: p.value for p in params}
        try:
            for name, value in updates.items():
                check_value(name, value)
            model = [s.name for s in MODEL_PARAMS if s.name in updates]
            if model:
                raise ValueError(f"parameter(s) {model} are read-only: set from the checkpoint")
            fixed = [n for n in updates if n in SPECS and SPECS[n].read_only]
            if fixed and self.configured:  # only a managed node gets here (else read-only)
                raise ValueError(f"parameter(s) {fixed} can only be changed while the node is "
                                 f"unconfigured (clean it up first)")
            if not self.configured:
                return SetParametersResult(successful=True)  # read by the next configure
            gov_config = None
            if any(name.startswith(GOVERNOR_PREFIX) for name in updates):
                current = {s.name: self.value(s.name) for s in PARAMS
                           if s.name.startswith(GOVERNOR_PREFIX)}
                gov_config = governor_config_from_params({**current, **updates})
            width = (self._governor.widths.snap(float(updates["width"]))
                     if "width" in updates else None)
            if "camera_priorities" in updates:
                priorities = [float(p) for p in updates["camera_priorities"]]
                check_camera_priorities([c for c in self._cameras if c != SINGLE], priorities)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        now = time.monotonic()
        with self._gov_lock:
            if gov_config is not None:
                self._governor.update_config(gov_config)
            if width is not None:
                self._governor.request(width)
            if "camera_priorities" in updates:
                self._governor.set_priorities(priorities or None)
            if "cpu_budget" in updates:
                self._governor.update_cpu_budget(float(updates["cpu_budget"]))
        host = self._host.apply_parameters(updates, self.value, self._governor, self._gov_lock,
                                           now)
        self._publish_color = bool(updates.get("publish_color", self._publish_color))
        self._publish_overlay = bool(updates.get("publish_overlay", self._publish_overlay))
        self._overlay_alpha = float(updates.get("overlay_alpha", self._overlay_alpha))
        if "image_qos" in updates:
            self._image_qos = str(updates["image_qos"])
            # applied by the next QoS check (a timer), not from inside this callback
        if {"width", "camera_priorities", "cpu_budget"} & set(updates) or host or gov_config:
            self._decide(now)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------- width
    def _decide(self, now: float) -> dict[str, Decision]:
        """
        Ask the governor for every camera's width; publish each one that changes.

        The decisions are the only record of the active widths: a frame runs at its camera's.
        Only cameras with a fresh frame (within the latency window) share the budget.
        """
        with self._gov_lock:
            governor, slots = self._governor, self._slots
            if governor is None:
                return {}
            active = None
            window = float(self._values["latency_window_s"])
            if not self.single:
                active = slots.fresh(now, window) if slots is not None else set()
            rates = ({name: slots.rate(name, now, window) for name in self._cameras}
                     if slots is not None else {})
            decisions = governor.decide_from_stores(
                now, {name: cam.latency for name, cam in self._cameras.items()}, active,
                frame_rates=rates, cores=self._host.cores)
            for name, decision in decisions.items():
                cam = self._cameras[name]
                previous, cam.decision = cam.decision, decision
                if self._active and (previous is None or decision.width != previous.width):
                    cam.publish_width(decision.width)
                    if previous is not None:
                        self.node.get_logger().info(
                            f"{cam.label}width {previous.width:g} -> {decision.width:g}: "
                            f"{decision.reason}")
        return decisions

    # ----------------------------------------------------------------------------- inference
    def _inference_loop(self, slots: FrameSlots[tuple[Any, float]]) -> None:
        while not slots.closed and self.node.context.ok():
            item = slots.take(timeout=0.5)
            if item is None:
                continue
            camera, (msg, received) = item
            cam = self._cameras[camera]
            try:
                self._process(cam, msg, received)
            except Exception as exc:  # keep serving frames; report the failure
                if slots.closed or not self.node.context.ok():
                    break
                self._reject(cam.rejections, REJECTED.inference,
                             f"{type(exc).__name__}: {exc}", cam.label)

    def _process(self, cam: CameraIO, msg: Any, received: float) -> None:
        try:
            rgb = compressed_to_rgb(msg) if self._compressed else image_to_rgb(msg)
        except ValueError as exc:
            self._reject(cam.rejections, REJECTED.image, str(exc), cam.label)
            return
        decision = self._decide(time.monotonic())[cam.name]
        # a runtime may compile its graphs for a new frame size: not a cost of the width
        self.engine.prepare_size(rgb.shape[0], rgb.shape[1])
        mask = self._timed_infer(cam, rgb, decision.width)
        cam.publish(msg.header, mask, rgb, self._lut, self._publish_color,
                    self._publish_overlay, self._overlay_alpha)
        done = time.monotonic()
        stamp = Time.from_msg(msg.header.stamp)
        age_ms = ((self.node.get_clock().now() - stamp).nanoseconds / 1e6 if stamp.nanoseconds
                  else math.nan)  # meaningful when the camera stamps with this clock
        cam.count_frame(LastFrame(width=float(decision.width), width_px=int(mask.shape[1]),
                                  height_px=int(mask.shape[0]),
                                  delay_ms=(done - received) * 1e3, age_ms=age_ms))

    def _timed_infer(self, cam: CameraIO, rgb: Any, width: Width) -> Any:
        """
        Run the engine; record the frame's latency and CPU time in the camera's store.

        CPU time is the process's (``time.process_time``) over the call, not the thread's
        (``time.thread_time``): the runtimes run the network on their own thread pools (torch
        intra-op threads, OpenVINO and ONNX Runtime workers), which the calling thread's clock
        misses, so a network on four threads would look a quarter as costly. What the other
        threads do meanwhile (callbacks dropping a frame into its slot) is counted too: small,
        and part of serving frames.
        """
        cpu, start = time.process_time(), time.perf_counter()
        mask = self.engine.infer(rgb, float(width))
        wall_ms = (time.perf_counter() - start) * 1000.0
        cam.latency.record(width, wall_ms, time.monotonic(),
                           cpu_ms=(time.process_time() - cpu) * 1000.0)
        return mask

    # ----------------------------------------------------------------------------- diagnostics
    def _new_rejections(self, key: str, rejections: Rejections
                        ) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
        """Return (counts, last messages, counts new since the last report) of ``rejections``."""
        counts, last = rejections.snapshot()
        before = self._diag_counts.get(key, {})
        self._diag_counts[key] = counts
        return counts, last, {k: n - before.get(k, 0) for k, n in counts.items()
                              if n > before.get(k, 0)}

    def _status(self, name: str, report: Diagnostics, message: str, warnings: tuple[str, ...],
                new: dict[str, int]) -> DiagnosticStatus:
        level = DiagnosticStatus.OK
        problems = list(warnings) + [f"{n} {k} input(s) rejected" for k, n in sorted(new.items())]
        if problems:
            level = DiagnosticStatus.ERROR if REJECTED.inference in new else DiagnosticStatus.WARN
            message += " (" + "; ".join(problems) + ")"
        values = [KeyValue(key=k, value=v) for k, v in diagnostics_values(report).items()]
        return DiagnosticStatus(level=level, name=name, message=message,
                                hardware_id=str(self.engine.device), values=values)

    def _engine_fields(self) -> dict[str, Any]:
        e = self.engine
        return {"trained_widths": tuple(e.widths), "device": str(e.device),
                "backend": e.backend, "precision": e.precision}

    def _camera_status(self, cam: CameraIO, decision: Decision) -> DiagnosticStatus:
        key = cam.name if not self.single else _SHARED
        counts, last, new = self._new_rejections(key, cam.rejections)
        processed, per_width, frame = cam.stats()
        report = Diagnostics(
            active_width=decision.width, reason=decision.reason,
            requested_width=self._governor.requested_for(cam.name), caps=decision.caps,
            frames_received=self._slots.received[cam.name], frames_processed=processed,
            frames_dropped=self._slots.dropped[cam.name],
            image_topic=cam.image_sub.topic_name,
            image_qos=reliability_name(cam.image_reliability),
            image_publishers=cam.image_publishers, camera=cam.name,
            priority=None if self.single else self._governor.priorities[cam.name],
            last_frame=frame, latency=decision.latency, frames_at=per_width, rejected=counts,
            last_rejected=last, warnings=decision.warnings, decided_by=decision.decided_by,
            cpu_share=decision.cpu_share,
            host=self._host.status(decision, self._governor.cpu_budget) if self.single else None,
            **self._engine_fields())
        name = (status_name(self.node.get_name()) if self.single
                else camera_status_name(self.node.get_name(), cam.name))
        return self._status(name, report, f"width {decision.width:g}: {decision.reason}",
                            decision.warnings, new)

    def _shared_status(self, decisions: dict[str, Decision]) -> DiagnosticStatus:
        counts, last, new = self._new_rejections(_SHARED, self._rejections)
        first = next(iter(decisions.values()))
        warnings = tuple(w for w in first.warnings
                         if all(w in d.warnings for d in decisions.values()))
        summary = "; ".join(f"{n} {d.width:g}" for n, d in decisions.items())
        totals = [sum(c.stats()[0] for c in self._cameras.values()),
                  sum(self._slots.received.values()), sum(self._slots.dropped.values())]
        report = Diagnostics(
            reason=summary, requested_width=self._governor.requested,
            caps={k: v for k, v in first.caps.items() if k in ("battery", "thermal")},
            frames_received=totals[1], frames_processed=totals[0], frames_dropped=totals[2],
            cameras=tuple(self._cameras), rejected=counts, last_rejected=last,
            warnings=warnings, host=self._host.status(first, self._governor.cpu_budget),
            **self._engine_fields())
        return self._status(status_name(self.node.get_name()), report,
                            f"{len(decisions)} cameras: {summary}", warnings, new)

    def _publish_diagnostics(self) -> None:
        decisions = self._decide(time.monotonic())  # also refreshes stale-input warnings
        if not decisions or not self._active:
            return
        statuses = [] if self.single else [self._shared_status(decisions)]
        statuses += [self._camera_status(self._cameras[n], d) for n, d in decisions.items()]
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.node.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    # ----------------------------------------------------------------------------- accessors
    def frame_stats(self, camera: str | None = None) -> dict[str, Any]:
        """
        Return the counters of ``camera`` (None: the only one), for tests and tools.

        They are received, processed, dropped, per-width, and the last frame (a
        :class:`~.contract.LastFrame`, None before the first).
        """
        cam = self.camera(camera)
        processed, per_width, frame = cam.stats()
        slots = self._slots
        return {"received": slots.received[cam.name] if slots else 0, "processed": processed,
                "dropped": slots.dropped[cam.name] if slots else 0, "per_width": per_width,
                "last": frame}
