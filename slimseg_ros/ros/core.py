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

Time and cost are injected (:mod:`.timing`): policy time comes from the ``clock`` the node
passes, each inference's wall and CPU time from its ``meter``; nothing here reads a clock but the
ROS clock for header ages. Without the inference thread (``activate(worker=False)``) a caller
serves frames itself with :meth:`SlimSegCore.serve_next`, which is how the policy is tested on a
fake clock with scripted costs.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..governor import SINGLE, Decision, Governor
from ..governor.host_readings import PsutilSample, read_psutil
from ..inference.working_memory import WorkingMemory, return_freed_heap
from .camera import CameraIO, make_cameras
from .contract import TOPICS
from .conversions import palette_lut
from .diagnostics import DiagnosticsReport
from .frame_slots import FrameSlots
from .host_watch import HostWatch
from .inputs import PolicyInputs
from .labels import publish_label_info
from .params import PARAMS, SPECS, host_sensors_on, validate_changes
from .rejections import Rejections
from .serving import FrameServer
from .signals import stop_signals_blocked
from .startup import (StartupError, declare_model_params, declare_parameters, free_memory,
                      governor_ladder, load_engine, read_settings)
from .timing import Clock, InferenceMeter

__all__ = ["SlimSegCore", "StartupError"]


class SlimSegCore:
    """
    Segmentation of one or several cameras' frames on ``node``, at widths set by the governor.

    ``clock`` gives policy time in seconds (steady; the node's is ``time.monotonic``), ``meter``
    each inference's cost (the node's is :class:`~.timing.ProcessMeter`), ``host_reader`` the
    host's battery, temperatures and the process's CPU (psutil).
    ``managed``: parameters fixed after start-up can be changed while unconfigured (a lifecycle
    node), not only before construction.
    """

    def __init__(self, node: Node, *, clock: Clock, meter: InferenceMeter, managed: bool = False,
                 host_reader: Callable[..., PsutilSample] = read_psutil) -> None:
        self.node = node
        self.managed = managed
        self.clock = clock
        self.meter = meter
        self._host_reader = host_reader
        self.engine: Any = None
        self._governor: Governor | None = None
        self._cameras: dict[str, CameraIO] = {}
        self._slots: FrameSlots[tuple[Any, float, int]] | None = None
        self._server: FrameServer | None = None
        self._memory: WorkingMemory | None = None  # which steps hold their working memory
        self._worker: threading.Thread | None = None
        self._points_thread: threading.Thread | None = None  # prepares the ladder's points
        self._points_for: Any = None  # the engine whose points were started (None: not yet)
        self._points_on_thread = True  # False: on the caller's thread (no inference thread)
        self._points_start = threading.Lock()
        self._active = False
        self._gov_lock = threading.Lock()
        self._setting_model = False
        self._entities: list[tuple[str, Any]] = []  # ("sub"|"pub"|"timer", entity) of activate
        self._report = DiagnosticsReport(node.get_name())
        self._host: HostWatch | None = None
        declare_parameters(node, managed)
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

    @property
    def governor(self) -> Governor | None:
        """Return the governor of the configured model (None while unconfigured)."""
        return self._governor

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
        gov_config, names, priorities = read_settings(values)
        with stop_signals_blocked():  # the runtime's thread pool starts here: no stop signals
            engine = load_engine(values, self.node.get_logger(), defer_points=True)
        info = engine.info
        governor = Governor(engine.widths, gov_config, cameras=names,
                            priorities=priorities or None, ladder=governor_ladder(engine),
                            points_ready=engine.points_ready)
        governor.request(governor.widths.snap(float(values["width"])))
        governor.update_cpu_budget(float(values["cpu_budget"]) or None)
        self._setting_model = True  # the set-parameters callback lets these through
        try:
            declare_model_params(self.node, info, engine.widths, self.managed)
        finally:
            self._setting_model = False
        self._lut = palette_lut(info.palette)
        self._values = values
        self._compressed = values["input_transport"] == "compressed"
        self.rejections = Rejections(throttle_s=float(values["warn_throttle_s"]))
        self._cameras = make_cameras(self.node, names, values, self.rejections)
        self._host = HostWatch(self.node.get_logger(), host_sensors_on(values["host_sensors"]),
                               [str(p) for p in values["host_temperature_sensors"]],
                               reader=self._host_reader)
        self._governor = governor
        # the warm-up handed back each width's tensors: a width allocates them on first use
        self._memory = WorkingMemory(engine.release_memory, float(values["release_idle_s"]),
                                     enabled=engine.releases_memory)
        self.inputs = PolicyInputs(governor, self._gov_lock, self.clock, self.node.get_logger(),
                                   self.decide, self.rejections, self._cameras)
        self._report.reset()
        self.engine = engine
        # The model, torch and the runtimes leave ~10^5 long-lived objects: one full collection
        # over them stalls every thread for a few hundred ms, a frame's worth of latency or more.
        # Freezing them keeps later collections to the objects that frames create.
        gc.collect()
        gc.freeze()
        return_freed_heap()  # what preparing the graphs freed goes back to the system

    # ----------------------------------------------------------------------------- activate
    def activate(self, worker: bool = True) -> None:
        """
        Start the flow: subscriptions, publishers, timers and the inference thread.

        ``worker=False`` starts no inference thread: the caller serves frames itself with
        :meth:`serve_next` (tests on a fake clock).
        """
        n, v = self.node, self._values
        self._points_on_thread = worker
        control = MutuallyExclusiveCallbackGroup()
        self._diag_pub = n.create_publisher(DiagnosticArray, TOPICS.diagnostics, 10)
        inputs = self.inputs
        self._entities = [("pub", self._diag_pub)] + [
            ("sub", sub) for sub in inputs.subscribe(n, control)]
        labels = publish_label_info(n, self.engine.info.class_names)
        if labels is not None:
            self._entities.append(("pub", labels))
        self._slots = slots = FrameSlots(list(self._cameras))
        self._server = FrameServer(
            n, self.engine, clock=self.clock, meter=self.meter, cameras=self._cameras,
            inputs=inputs, decide=self.decide, value=self.value, compressed=self._compressed,
            lut=self._lut, stopping=lambda: slots.closed or not n.context.ok(),
            memory=self._memory, preparing=self._preparing_points)
        for cam in self._cameras.values():
            cam.open(self.on_image, inputs.on_camera_request, lambda: self.value("image_qos"),
                     float(v["qos_check_period_s"]), control, self.engine.confidence)
            cam.decision = None  # the first decision publishes the active width (latched)
        for period, callback in ((v["diagnostics_period_s"], self.publish_diagnostics),
                                 (v["host_period_s"], self.read_host)):
            self._entities.append(("timer", n.create_timer(float(period), callback,
                                                           callback_group=control)))
        self._active = True
        self.read_host()  # readings count from the first frame; its decision may start the points
        if worker:
            self._worker = threading.Thread(target=self._inference_loop, args=(self._slots,),
                                            name="slimseg_inference", daemon=True)
            with stop_signals_blocked():  # the model's thread (and its pools) keep them off
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

    def _prepare_points_once_budgeted(self) -> None:
        """
        Start preparing the ladder's points when a budget is first set: only budgets use them.

        Until then the node holds none of their compiled graphs (about 120 MiB for the shipped
        model in OpenVINO); a budget is met at the widths while they are prepared, on a thread
        of their own beside the frames (on the caller's without an inference thread).
        """
        engine, governor = self.engine, self._governor
        if (engine is None or governor is None or not self._active or engine.points_ready
                or getattr(engine, "ladder", None) is None or not governor.has_budget):
            return
        with self._points_start:  # (cleanup forgets them under it: no start after it looked)
            if self._points_for is engine or not self._active or self.engine is not engine:
                return
            self._points_for = engine
            if not self._points_on_thread:
                self._prepare_points(engine, governor)
                return
            self._points_thread = threading.Thread(
                target=self._prepare_points, args=(engine, governor), name="slimseg_ladder",
                daemon=True)
            with stop_signals_blocked():
                self._points_thread.start()

    def _preparing_points(self) -> bool:
        """Tell whether the points are being compiled beside the frames (on their thread)."""
        thread = self._points_thread
        return thread is not None and thread.is_alive()

    def _prepare_points(self, engine: Any, governor: Governor) -> None:
        """Prepare the ladder's points, then let the governor offer them (or say why not)."""
        logger = self.node.get_logger()
        started = self.clock()
        try:
            engine.prepare_points(warm_size=engine.input_size,  # one point's tensors at a time
                                  release=self._memory is not None and self._memory.enabled)
        except Exception as exc:  # noqa: BLE001 - the node goes on with the widths
            engine.ladder_note = (f"no ladder: its operating points could not be prepared "
                                  f"({exc}) (widths only)")
            engine.ladder = None
            logger.error(f"{engine.ladder_note}")
            return
        return_freed_heap()  # what compiling them freed, as after start-up
        with self._gov_lock:
            governor.set_points_ready()
        logger.info(f"ladder ready: {len(engine.ladder.points)} operating points prepared in "
                    f"{self.clock() - started:.1f} s ({governor.ladder.describe()})")

    def cleanup(self) -> None:
        """Free the model and the per-camera state (a managed node configures again)."""
        if self._active:
            self.deactivate()
        with self._points_start:
            points, self._points_thread = self._points_thread, None
            self._points_for = None
        if points is not None:  # the model it prepares goes now: let it finish first
            points.join(timeout=120.0)
        device = str(getattr(self.engine, "device", ""))
        self.engine = self._governor = self._server = self._memory = None
        self._cameras = {}
        gc.unfreeze()  # the frozen model becomes collectable again
        free_memory(device)

    def shutdown(self) -> None:
        """From any state: stop the flow and free the model."""
        if self._active:
            self.deactivate()
        if self.configured:
            self.cleanup()

    # ----------------------------------------------------------------------------- inputs
    def on_image(self, camera: str, msg: Any) -> None:
        """Drop a camera frame into its slot (replacing one nobody took)."""
        now = self.clock()
        cam = self._cameras[camera]
        cam.arrivals += 1  # this camera's callbacks run one at a time (its own group)
        self._slots.put(camera, (msg, now, cam.arrivals), now)

    def read_host(self) -> None:
        """Read the computer (battery, temperature, the node's CPU share and memory)."""
        self._host.read(self._governor, self._gov_lock, self.clock())
        self.decide()

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate every changed parameter first, then apply them all (or none)."""
        if self._setting_model:
            return SetParametersResult(successful=True)
        try:
            change = validate_changes({p.name: p.value for p in params}, self.value,
                                      configured=self.configured,
                                      cameras=[c for c in self._cameras if c != SINGLE])
            width = (self._governor.widths.snap(float(change.updates["width"]))
                     if change.changed("width") and self.configured else None)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self.configured:
            self.inputs.on_parameters(change, width, self._host, self.value)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------- width
    def decide(self) -> dict[str, Decision]:
        """
        Ask the governor for every camera's width now; publish each one that changes.

        The decisions are the only record of the active widths: a frame runs at its camera's.
        Only cameras with a fresh frame (within the latency window) share the budget; an idle
        camera (nobody listens) holds its width and counts as serving no frames.
        """
        now = self.clock()
        with self._gov_lock:
            governor, slots = self._governor, self._slots
            if governor is None:
                return {}
            window = float(self._values["latency_window_s"])
            idle = {name for name, cam in self._cameras.items() if cam.idle}
            active = None  # the single camera shares nothing: it is active unless idle
            if not self.single:
                active = (slots.fresh(now, window) if slots is not None else set()) - idle
            elif idle:
                active = set()
            rates = ({name: 0.0 if name in idle else slots.rate(name, now, window)
                      for name in self._cameras} if slots is not None else {})
            decisions = governor.decide_from_stores(
                now, {name: cam.latency for name, cam in self._cameras.items()}, active,
                frame_rates=rates, cores=self._host.cores)
            for name, decision in decisions.items():
                self._cameras[name].take_decision(decision, self._active)
        self._prepare_points_once_budgeted()
        return decisions

    # ----------------------------------------------------------------------------- inference
    def _inference_loop(self, slots: FrameSlots[tuple[Any, float, int]]) -> None:
        while not slots.closed and self.node.context.ok():
            try:
                self.serve_next(timeout=0.5)
            except Exception:  # serve_next reports a frame's failure itself; stop on shutdown
                if slots.closed or not self.node.context.ok():
                    break
                raise

    def serve_next(self, timeout: float | None = 0.0) -> bool:
        """
        Serve the next waiting frame (round-robin over cameras); False when none came.

        Waits up to ``timeout`` seconds of real time for a frame (the inference thread's
        loop); a test on a fake clock puts frames first and passes 0.
        """
        slots = self._slots
        item = slots.take(timeout=timeout) if slots is not None else None
        if item is None:
            if self._server is not None:  # no frame: idle steps still hand theirs back
                self._server.release_idle(self.clock())
            return False
        camera, (msg, received, index) = item
        self._server.serve(camera, msg, received, index)
        return True

    # ----------------------------------------------------------------------------- diagnostics
    def publish_diagnostics(self) -> None:
        """Publish every camera's diagnostics (also refreshes stale-input warnings)."""
        decisions = self.decide()
        if not decisions or not self._active:
            return
        statuses = self._report.statuses(
            decisions, engine=self.engine, governor=self._governor, cameras=self._cameras,
            slots=self._slots, shared_rejections=self.rejections, host=self._host,
            single=self.single, memory=self._memory,
            points_started=self._points_for is not None)
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.node.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def frame_stats(self, camera: str | None = None) -> dict[str, Any]:
        """
        Return the counters of ``camera`` (None: the only one), for tests and tools.

        They are received, processed, dropped, per-width, and the last frame (a
        :class:`~.contract.LastFrame`, None before the first).
        """
        return self.camera(camera).counters(self._slots)
