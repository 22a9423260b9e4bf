"""
One frame's way through the node: skip, convert, decide the width, infer, publish, count.

The order per frame, one rule after the other:

1. a camera none of whose outputs has a subscriber (with ``lazy``) is idle: skipped;
2. a frame with the stamp and frame_id of the camera's last served one is a duplicate: skipped;
3. while the governor serves the camera every k-th frame (its decision's ``stride``), a frame
   fewer than k arrivals after the last one served is skipped by rate, so the frames served are
   evenly spaced in the camera's own sequence (not whichever the slot happened to keep);
4. with ``skip_static``, a frame whose grey thumbnail is within ``static_threshold`` of the last
   inferred frame's (same size and width, younger than ``static_max_age_s``) republishes its
   mask and confidence with the new header (colour, overlay and PNG are made from them, so any
   output a new subscriber asks for is there);
5. anything else is inferred.

Skips are counted per reason (:data:`~.contract.SKIPPED`) and cost no inference, so only
inferred frames feed the latency and CPU figures, except the first frame at a step whose
working memory was handed back (it spent part of its time allocating it again); after each
frame the steps idle for ``release_idle_s`` that no camera decides for hand theirs back
(:mod:`~slimseg_ros.inference.working_memory`).

The node core (:mod:`.core`) takes frames from the slots and hands each to
:meth:`FrameServer.serve`; the per-frame order lives here, so the core keeps only the phases and
the wiring. Time comes from the injected clock and each inference's cost from the injected meter
(:mod:`.timing`), so the order is tested on a fake clock with scripted costs; only header ages
read the ROS clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from rclpy.time import Time

from ..governor import Decision
from ..governor.static_scene import THUMBNAIL_SIZE, StaticReference, reusable
from ..inference.working_memory import WorkingMemory, return_freed_heap
from .camera import CameraIO
from .contract import REJECTED, SKIPPED, LastFrame
from .conversions import compressed_to_rgb, grey_thumbnail, image_to_rgb
from .inputs import PolicyInputs
from .timing import Clock, InferenceMeter


class FrameServer:
    """
    Serve frames of the node's cameras with one engine.

    ``decide`` asks the governor for every camera's width now (it is the core's, which publishes
    what changed); ``value`` reads a parameter (outputs can be switched at runtime);
    ``stopping`` says the flow is being torn down, when a failure is not the frame's fault.
    """

    def __init__(self, node: Any, engine: Any, *, clock: Clock, meter: InferenceMeter,
                 cameras: Mapping[str, CameraIO], inputs: PolicyInputs,
                 decide: Callable[[], Mapping[str, Decision]], value: Callable[[str], Any],
                 stopping: Callable[[], bool], compressed: bool, lut: np.ndarray,
                 memory: WorkingMemory | None = None,
                 preparing: Callable[[], bool] = lambda: False) -> None:
        self._node, self._engine = node, engine
        self._memory, self._preparing = memory, preparing
        self._clock, self._meter = clock, meter
        self._cameras, self._inputs = cameras, inputs
        self._decide, self._value, self._stopping = decide, value, stopping
        self._compressed, self._lut = compressed, lut

    def serve(self, camera: str, msg: Any, received: float, index: int) -> None:
        """
        Serve one frame of ``camera``, its ``index``-th, that arrived at ``received`` (seconds).

        A frame that cannot be converted or inferred is rejected (counted, logged) and the node
        goes on; while the flow is stopping the failure is raised instead.
        """
        try:
            self._serve(self._cameras[camera], msg, received, index)
        finally:
            self.release_idle(self._clock())

    def _serve(self, cam: CameraIO, msg: Any, received: float, index: int) -> None:
        if self._skipped(cam, msg.header, index):
            return
        try:
            rgb = compressed_to_rgb(msg) if self._compressed else image_to_rgb(msg)
        except ValueError as exc:
            self._inputs.reject(cam.rejections, REJECTED.image, str(exc), cam.label)
            return
        thumbnail = None
        if bool(self._value("skip_static")):
            thumbnail = grey_thumbnail(rgb, THUMBNAIL_SIZE)
            if self._republished(cam, msg, rgb, thumbnail, index, received):
                return
        try:
            self._infer_and_publish(cam, msg, rgb, received, index, thumbnail)
        except Exception as exc:  # keep serving frames; report the failure
            if self._stopping():
                raise
            self._inputs.reject(cam.rejections, REJECTED.inference,
                                f"{type(exc).__name__}: {exc}", cam.label)

    def _skipped(self, cam: CameraIO, header: Any, index: int) -> bool:
        """Count and skip a frame nobody would receive, the last served again, or off-rate."""
        value = self._value
        if bool(value("lazy")) and not cam.has_listeners(bool(value("publish_color")),
                                                         bool(value("publish_overlay"))):
            cam.idle = True
            cam.count_skip(SKIPPED.no_subscribers)
            return True
        cam.idle = False
        key = cam.frame_key(header)
        if key[:2] == (0, 0):
            if not cam.zero_stamps_noted:
                cam.zero_stamps_noted = True
                self._node.get_logger().info(
                    f"{cam.label}frames stamped 0 on '{cam.image_topic}': such frames are "
                    f"never taken for duplicates (a stamp tells a new frame from a repeat)")
        elif key == cam.last_served:
            cam.count_skip(SKIPPED.duplicate)
            return True
        stride = cam.decision.stride if cam.decision is not None else 1
        if stride > 1 and index - cam.last_served_index < stride:
            cam.count_skip(SKIPPED.rate)
            return True
        return False

    def _republished(self, cam: CameraIO, msg: Any, rgb: np.ndarray, thumbnail: np.ndarray,
                     index: int, received: float) -> bool:
        """
        Republish the last inferred mask for a frame of the same scene; tell if it did.

        The reference's age is counted between the two frames' arrivals.
        """
        value = self._value
        step = self._decide()[cam.name].operating_point
        if not reusable(cam.static_reference, thumbnail, rgb.shape[:2], step, received,
                        float(value("static_threshold")), float(value("static_max_age_s"))):
            return False
        ref = cam.static_reference
        cam.publish(msg.header, ref.mask, rgb, self._lut, bool(value("publish_color")),
                    bool(value("publish_overlay")), float(value("overlay_alpha")),
                    ref.confidence)
        cam.last_served, cam.last_served_index = cam.frame_key(msg.header), index
        cam.count_skip(SKIPPED.static)
        return True

    def _infer_and_publish(self, cam: CameraIO, msg: Any, rgb: np.ndarray, received: float,
                           index: int, thumbnail: np.ndarray | None) -> None:
        decision = self._decide()[cam.name]
        width, step, size = decision.width, decision.operating_point, decision.input_size
        # a runtime may prepare something for a new frame size: not a cost of the width
        self._engine.prepare_size(rgb.shape[0], rgb.shape[1])
        beside_compile = self._preparing()
        if size is None:  # the width at the model's full input
            (mask, confidence), cost = self._meter.measure(
                lambda: self._engine.segment(rgb, width), step)
        else:  # a ladder point: the width at a reduced network input
            (mask, confidence), cost = self._meter.measure(
                lambda: self._engine.segment(rgb, width, input_size=size), step)
        measured = self._clock()
        warm = self._memory is None or self._memory.served((width, size), measured)
        # (a step whose working memory was handed back spent part of this frame allocating it
        # again, and a frame beside the points' compile shared the CPU with it and counts its
        # CPU time as its own: neither is what the step costs, so not a latency figure)
        if warm and not (beside_compile or self._preparing()):
            cam.latency.record(step, cost.wall_ms, measured, cpu_ms=cost.cpu_ms)
        value = self._value
        cam.publish(msg.header, mask, rgb, self._lut, bool(value("publish_color")),
                    bool(value("publish_overlay")), float(value("overlay_alpha")), confidence)
        done = self._clock()
        stamp = Time.from_msg(msg.header.stamp)
        age_ms = ((self._node.get_clock().now() - stamp).nanoseconds / 1e6 if stamp.nanoseconds
                  else math.nan)  # meaningful when the camera stamps with this clock
        cam.last_served, cam.last_served_index = cam.frame_key(msg.header), index
        cam.static_reference = None if thumbnail is None else StaticReference(
            thumbnail, (int(mask.shape[0]), int(mask.shape[1])), received, step, mask,
            confidence)
        cam.count_frame(LastFrame(width=float(width), width_px=int(mask.shape[1]),
                                  height_px=int(mask.shape[0]),
                                  delay_ms=(done - received) * 1e3, age_ms=age_ms))

    def release_idle(self, now: float) -> None:
        """
        Hand back the working memory of steps idle long enough that no camera decides for.

        Called on the inference thread after every frame (served, skipped or rejected) and
        while none comes, so a step is never released while it runs. A runtime that fails to
        release is logged once and left holding its memory (the release is switched off).
        """
        memory = self._memory
        if memory is None or not memory.enabled:
            return
        deciding = [(c.decision.width, c.decision.input_size) for c in self._cameras.values()
                    if c.decision is not None]
        try:
            released = memory.release_idle(now, deciding)
        except Exception as exc:  # noqa: BLE001 - memory kept is no reason to stop serving
            memory.enabled = False
            self._node.get_logger().error(
                f"working memory: handing back an idle step's failed ({type(exc).__name__}: "
                f"{exc}); every step keeps its own from now on")
            return
        if released:
            return_freed_heap()
