"""
The governor's inputs: its topics, and its parameters when they change at runtime.

The topics are width requests, battery, temperature and the two budgets.

Each message is checked, applied to the governor under its lock and followed by a decision, so
``active_width`` changes on the input itself, not only at the next frame. A bad one is rejected:
counted for diagnostics, logged (throttled per kind) and otherwise ignored, so the node keeps its
last good state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Float32

from ..governor import Governor
from ..widths import Width
from .camera import CONTROL_QOS, CameraIO
from .contract import REJECTED, TOPICS
from .host_watch import HostWatch
from .params import ParamChanges
from .rejections import Rejections
from .timing import Clock

_CHARGING = (BatteryState.POWER_SUPPLY_STATUS_CHARGING, BatteryState.POWER_SUPPLY_STATUS_FULL)


class PolicyInputs:
    """
    The handlers of the node's policy topics, over one governor.

    ``decide`` asks the governor for every camera's width now and publishes what changed;
    ``shared`` counts rejections of the node-wide inputs, each camera's own request counts in
    its camera's.
    """

    def __init__(self, governor: Governor, lock: threading.Lock, clock: Clock, logger: Any,
                 decide: Callable[[], Any], shared: Rejections,
                 cameras: Mapping[str, CameraIO]) -> None:
        self._governor, self._lock, self._clock = governor, lock, clock
        self._logger, self._decide = logger, decide
        self._shared, self._cameras = shared, cameras

    def subscribe(self, node: Node, group: CallbackGroup) -> list[Any]:
        """Subscribe the node-wide policy topics (a camera's own request is the camera's)."""
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        return [node.create_subscription(kind, topic, handler, qos, callback_group=group)
                for kind, topic, handler, qos in (
                    (Float32, TOPICS.width, self.on_width, CONTROL_QOS),
                    (Float32, TOPICS.budget, self.on_budget, CONTROL_QOS),
                    (Float32, TOPICS.cpu_budget, self.on_cpu_budget, CONTROL_QOS),
                    (BatteryState, TOPICS.battery, self.on_battery, sensor),
                    (Temperature, TOPICS.temperature, self.on_temperature, sensor))]

    def on_parameters(self, change: ParamChanges, width: Width | None, host: HostWatch,
                      value: Callable[[str], Any]) -> None:
        """
        Apply validated parameter changes to the governor and the host sensing.

        ``width`` is the ``width`` parameter snapped (None: unchanged); ``value`` reads the
        parameters not changed. Decides again when anything the governor uses changed.
        """
        updates, now = change.updates, self._clock()
        with self._lock:
            if change.governor_config is not None:
                self._governor.update_config(change.governor_config)
            if width is not None:
                self._governor.request(width)
            if change.changed("camera_priorities"):
                self._governor.set_priorities(change.priorities or None)
            if change.changed("cpu_budget"):
                self._governor.update_cpu_budget(float(updates["cpu_budget"]))
        sensing = host.apply_parameters(updates, value, self._governor, self._lock, now)
        if change.changed("width", "camera_priorities", "cpu_budget") or sensing \
                or change.governor_config is not None:
            self._decide()

    def reject(self, rejections: Rejections, kind: str, message: str, label: str = "") -> None:
        """Count one rejected input of ``kind``; log it unless that kind is throttled."""
        line = rejections.reject(kind, message, self._clock())
        if line is not None:
            self._logger.warning(label + line)

    def on_width(self, msg: Float32) -> None:
        """Handle a width request for every camera."""
        self._request(None, msg, self._shared)

    def on_camera_request(self, camera: str, msg: Float32) -> None:
        """Handle a width request for one camera."""
        self._request(camera, msg, self._cameras[camera].rejections)

    def _request(self, camera: str | None, msg: Float32, rejections: Rejections) -> None:
        try:
            with self._lock:
                snapped = self._governor.request(self._governor.widths.snap(float(msg.data)),
                                                 camera)
        except ValueError as exc:
            label = self._cameras[camera].label if camera else ""
            self.reject(rejections, REJECTED.width, f"{exc}; keeping the current request",
                        label)
            return
        self._logger.debug(f"width request {msg.data:g} -> {snapped:g}")
        self._decide()

    def on_battery(self, msg: BatteryState) -> None:
        """Handle a battery reading (percentage as a fraction 0-1)."""
        fraction = float(msg.percentage)
        if not (0.0 <= fraction <= 1.0):  # also catches NaN ("unknown" in BatteryState)
            self.reject(self._shared, REJECTED.battery,
                        f"percentage {fraction} is not a fraction in [0, 1] "
                        "(BatteryState.percentage is 0-1, not 0-100)")
            return
        charging = msg.power_supply_status in _CHARGING
        self._apply(lambda now: self._governor.update_battery(fraction * 100.0, charging, now),
                    REJECTED.battery, "")

    def on_temperature(self, msg: Temperature) -> None:
        """Handle a temperature reading in degrees Celsius."""
        celsius = float(msg.temperature)
        self._apply(lambda now: self._governor.update_temperature(celsius, now),
                    REJECTED.temperature, "")

    def on_budget(self, msg: Float32) -> None:
        """Handle a latency budget in milliseconds per frame (0 removes it)."""
        ms = float(msg.data)
        self._apply(lambda now: self._governor.update_budget(ms if ms != 0.0 else None, now),
                    REJECTED.budget, "milliseconds per frame; 0 removes the budget")

    def on_cpu_budget(self, msg: Float32) -> None:
        """Handle a CPU-share budget, a fraction of the usable cores (0 removes it)."""
        share = float(msg.data)
        self._apply(lambda now: self._governor.update_cpu_budget(share), REJECTED.cpu_budget,
                    "a fraction of the usable cores; 0 removes the budget")

    def _apply(self, update: Callable[[float], None], kind: str, hint: str) -> None:
        """Apply one input to the governor; a ValueError rejects it and keeps the state."""
        try:
            with self._lock:
                update(self._clock())
        except ValueError as exc:
            self.reject(self._shared, kind, f"{exc} ({hint})" if hint else str(exc))
            return
        self._decide()
