"""``slimseg-demo``: the whole system in one command, written up as a report folder.

Starts the real node (the ``slimseg_node`` console script with ``config/slimseg.yaml``) as a
separate process on a private ROS domain, plays a camera stream into it over DDS (an image
folder, a video file, or a synthetic street scene drawn here), drives a scripted scenario through
the node's real topics (explicit width commands, a draining battery, a thermal spike, a tight then
relaxed compute budget), records masks, active width, diagnostics and end-to-end latency, and
writes:

* ``timeline.png``: requested/active width, latency and budget, battery and temperature over time;
* ``montage.png``: one input frame and its colour mask at every trained width;
* ``latency.md`` / ``latency.json``: latency per width (end to end and as the node reports it);
* ``decisions.md`` / ``decisions.json``: every width decision with the reason the node gave;
* ``report.md``: what ran (checkpoint, frames, node command) and what each phase showed;
* ``node.log``: the node's own output.

Usage: ``slimseg-demo --output reports/demo [--images DIR_OR_VIDEO] [--checkpoint FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...contract import KEYS, NODE_NAME, TOPICS, is_segmentation_status, read_diagnostics
from ...node_support import default_checkpoint
from ...widths import find_width, same_width
from ..node_process import (CAMVID_CLASSES, CAMVID_PALETTE, default_params_file, log_tail,
                            node_command, node_environment, stand_in_checkpoint, stop_process)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class DemoError(RuntimeError):
    """The demo cannot run (bad input path, node failed to start, ...); the message says why."""


# ----------------------------------------------------------------------------------------------
# Files: the node's parameter file and the checkpoint it loads
# ----------------------------------------------------------------------------------------------

def find_params_file() -> Path:
    """``config/slimseg.yaml`` from the installed share folder or the source tree."""
    found = default_params_file()
    if found is None:
        raise DemoError("config/slimseg.yaml not found in share/slimseg_ros or the source tree; "
                        "pass --params FILE")
    return found


def flatten_params(params_file: Path) -> dict[str, Any]:
    """The node's ``ros__parameters`` from a ROS 2 parameter file, as dotted names."""
    import yaml

    data = yaml.safe_load(params_file.read_text()) or {}
    section: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).strip("/").split("/")[-1]
        if isinstance(value, dict) and "ros__parameters" in value and name in (NODE_NAME, "**"):
            section.update(value["ros__parameters"] or {})
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = node

    walk("", section)
    return flat


def find_default_checkpoint(params: dict[str, Any]) -> Path | None:
    """The model the node would load: the parameter file's checkpoint, else the packaged one."""
    value = str(params.get("checkpoint") or "")
    if value:
        path = Path(value).expanduser()
        return path.resolve() if path.is_file() else None
    try:
        return default_checkpoint().resolve()
    except FileNotFoundError:
        return None


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """Class names, palette and widths of a checkpoint (read without building the network)."""
    from ...models.checkpoint import safe_torch_load

    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or "widths" not in payload:
        raise DemoError(f"{path} is not a slimseg checkpoint (no 'widths')")
    return {"widths": [float(w) for w in payload["widths"]],
            "class_names": list(payload.get("class_names") or []),
            "palette": [list(map(int, c)) for c in payload.get("palette") or []],
            "untrained": bool((payload.get("extra") or {}).get("untrained", False))}


# ----------------------------------------------------------------------------------------------
# Frames: an image folder, a video file, or a synthetic street scene
# ----------------------------------------------------------------------------------------------

def synthetic_street(index: int, height: int = 360, width: int = 480) -> np.ndarray:
    """A street-like RGB frame (sky, buildings, road with lane marks, pavement, trees, a pole and
    a car that moves with ``index``): ``height x width x 3`` uint8."""
    import cv2

    h, w = height, width
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(0.42 * h)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    img[:horizon] = (np.array([150, 190, 235], np.float32) * (1 - 0.25 * t)
                     + np.array([60, 40, 10], np.float32) * 0.25 * t).astype(np.uint8)[:, None, :]
    shift = (index * 6) % w
    rng = np.random.default_rng(7)
    x = -shift
    while x < w:  # building facades scrolling past
        bw = int(rng.integers(w // 8, w // 4))
        top = int(rng.integers(int(0.08 * h), int(0.3 * h)))
        colour = tuple(int(c) for c in rng.integers(70, 170, 3))
        cv2.rectangle(img, (x, top), (x + bw - 2, horizon + 5), colour, -1)
        for wy in range(top + 8, horizon - 8, 18):  # windows
            for wx in range(x + 6, x + bw - 12, 16):
                cv2.rectangle(img, (wx, wy), (wx + 7, wy + 9), (200, 210, 230), -1)
        x += bw
    road = np.array([[0, h], [w, h], [int(0.62 * w), horizon], [int(0.38 * w), horizon]])
    img[horizon:] = (110, 110, 100)  # pavement
    cv2.fillPoly(img, [road.astype(np.int32)], (80, 72, 88))
    for k in range(8):  # dashed centre line coming towards the camera
        f0 = ((k + (index % 4) / 4.0) / 8.0) ** 2
        f1 = min(1.0, f0 + 0.03)
        y0, y1 = horizon + f0 * (h - horizon), horizon + f1 * (h - horizon)
        cv2.line(img, (w // 2, int(y0)), (w // 2, int(y1)), (230, 230, 220), max(1, int(6 * f1)))
    for tx in (int(0.08 * w), int(0.9 * w)):  # trees
        cv2.rectangle(img, (tx - 3, horizon - 10), (tx + 3, horizon + 25), (70, 50, 30), -1)
        cv2.circle(img, (tx, horizon - 25), max(8, h // 12), (40, 110, 40), -1)
    px = int(0.7 * w)  # a pole with a sign
    cv2.rectangle(img, (px, int(0.2 * h)), (px + 3, horizon + 30), (180, 180, 150), -1)
    cv2.rectangle(img, (px - 8, int(0.2 * h)), (px + 11, int(0.2 * h) + 14), (200, 40, 40), -1)
    cx = int(0.25 * w + 0.3 * w * (0.5 + 0.5 * math.sin(index / 10.0)))  # a car
    cy = horizon + int(0.35 * (h - horizon))
    cw, ch = w // 6, h // 10
    cv2.rectangle(img, (cx, cy), (cx + cw, cy + ch), (30, 40, 150), -1)
    cv2.rectangle(img, (cx + cw // 5, cy - ch // 2), (cx + 4 * cw // 5, cy), (40, 50, 160), -1)
    for wx in (cx + cw // 5, cx + 4 * cw // 5):
        cv2.circle(img, (wx, cy + ch), max(3, ch // 3), (20, 20, 20), -1)
    return img


class FrameSource:
    """Endless RGB frames (``H x W x 3`` uint8) from a folder, a video (looped) or the synthetic
    scene; ``size`` (height, width) resizes every frame."""

    def __init__(self, path: str | os.PathLike | None, size: tuple[int, int] | None) -> None:
        self.size = size
        self._files: list[Path] = []
        self._video = None
        self.path = Path(path).expanduser() if path else None
        if self.path is None:
            self.description = "synthetic street scene generated by the demo"
        elif self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir()
                                 if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self._files:
                raise DemoError(f"image folder {self.path} holds no images "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            self.description = f"{len(self._files)} images from {self.path}"
        elif self.path.is_file():
            import cv2

            self._video = cv2.VideoCapture(str(self.path))
            if not self._video.isOpened():
                raise DemoError(f"cannot open video file {self.path} with OpenCV")
            self.description = f"video file {self.path}"
        else:
            raise DemoError(f"--images {self.path} is neither an image folder nor a video file")
        self._index = 0
        self.first = self._read(0)

    def _resize(self, img: np.ndarray) -> np.ndarray:
        if self.size is None or img.shape[:2] == self.size:
            return img
        import cv2

        return cv2.resize(img, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)

    def _read(self, index: int) -> np.ndarray:
        if self.path is None:
            h, w = self.size or (360, 480)
            return synthetic_street(index, h, w)
        import cv2

        if self._files:
            f = self._files[index % len(self._files)]
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DemoError(f"cannot read image {f}")
        else:
            ok, bgr = self._video.read()
            if not ok:  # end of the video: loop
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._video.read()
                if not ok:
                    raise DemoError(f"video file {self.path} yields no frames")
        return self._resize(np.ascontiguousarray(bgr[:, :, ::-1]))

    def next(self) -> np.ndarray:
        self._index += 1
        return self._read(self._index)


# ----------------------------------------------------------------------------------------------
# The scenario
# ----------------------------------------------------------------------------------------------

@dataclass
class Phase:
    """One step of the scenario; ramps run linearly from the first to the second value."""

    name: str
    seconds: float
    request: float | None = None           # width command sent at the start
    battery: tuple[float, float] = (100.0, 100.0)   # percent, start -> end
    charging: bool = False
    temperature: tuple[float, float] = (45.0, 45.0)  # celsius, start -> end
    budget: str | float = 0.0              # ms; "tight"/"relaxed" are set from measured latency
    montage: bool = False                  # hold one frame for the per-width montage
    expect: str = ""                       # what the phase should show, for the report


def scenario(phase_s: float, widths: list[float]) -> list[Phase]:
    """The scripted story; ``phase_s`` scales every phase."""
    p = phase_s
    phases = [Phase("start at full width", p, request=max(widths), expect="width 1.0 by request")]
    for w in sorted(widths):
        phases.append(Phase(f"request {w:g}", p, request=w, montage=True,
                            expect=f"width {w:g} by request"))
    phases += [
        Phase("battery drains", 2.5 * p, battery=(80.0, 5.0),
              expect="width steps down as the battery crosses 50/30/15%"),
        Phase("charger plugged in", p, battery=(5.0, 8.0), charging=True,
              expect="battery cap lifted while charging"),
        Phase("thermal spike", 2.0 * p, battery=(8.0, 10.0), charging=True,
              temperature=(50.0, 95.0), expect="width steps down at 70/80/90C"),
        Phase("cooling down", 1.5 * p, battery=(10.0, 12.0), charging=True,
              temperature=(95.0, 50.0), expect="caps released only below threshold - hysteresis"),
        Phase("tight budget", 2.0 * p, battery=(12.0, 14.0), charging=True,
              budget="tight", expect="width lowered to fit the latency budget"),
        Phase("relaxed budget", 2.5 * p, battery=(14.0, 16.0), charging=True,
              budget="relaxed", expect="width probes back up to full"),
    ]
    return phases


# ----------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------

@dataclass
class Record:
    """Everything the demo saw; times are seconds since the scenario clock started."""

    frames: list[dict[str, Any]] = field(default_factory=list)       # t, stamp, phase
    masks: list[dict[str, Any]] = field(default_factory=list)        # t, latency_ms, width
    active: list[tuple[float, float]] = field(default_factory=list)  # (t, width)
    requests: list[tuple[float, float]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)       # t, battery, temp, budget
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # t, level, message, values
    decisions: list[dict[str, Any]] = field(default_factory=list)    # t, phase, width, reason
    phases: list[dict[str, Any]] = field(default_factory=list)       # name, start, end
    montage: dict[float, np.ndarray] = field(default_factory=dict)   # width -> mono8 mask
    montage_color: dict[float, np.ndarray] = field(default_factory=dict)


def parse_diagnostic_values(values: dict[str, str]) -> dict[str, Any]:
    """Width, reason, caps (as shown), warnings (as shown) and per-width latency figures (ms,
    ``{width: {"p50": A, "p90": B}}``, B at the governor's percentile) from the node's
    diagnostics key-values."""
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
    """What makes two diagnostics the same decision: the width and the reason's wording, with
    changing figures (countdowns, latencies, percentages) masked."""
    return width, re.sub(r"\d+(\.\d+)?", "#", reason)


class DemoClient:
    """The demo's own rclpy node: camera and policy publishers, output subscribers, recording."""

    def __init__(self, record: Record, clock: Callable[[], float]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
        from sensor_msgs.msg import BatteryState, Image, Temperature
        from std_msgs.msg import Float32

        self._rclpy = rclpy
        self.msgs = {"Image": Image, "BatteryState": BatteryState, "Temperature": Temperature,
                     "Float32": Float32}
        self.record = record
        self.clock = clock
        self.lock = threading.Lock()
        self.node = rclpy.create_node("slimseg_demo")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        camera = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            history=HistoryPolicy.KEEP_LAST)
        outputs = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        n = self.node
        self.pub_image = n.create_publisher(Image, TOPICS.image, camera)
        self.pub_width = n.create_publisher(Float32, TOPICS.width, reliable)
        self.pub_battery = n.create_publisher(BatteryState, TOPICS.battery, reliable)
        self.pub_temp = n.create_publisher(Temperature, TOPICS.temperature, reliable)
        self.pub_budget = n.create_publisher(Float32, TOPICS.budget, reliable)
        n.create_subscription(Image, TOPICS.mask, self._on_mask, outputs)
        n.create_subscription(Float32, TOPICS.active_width, self._on_active, latched)
        n.create_subscription(DiagnosticArray, TOPICS.diagnostics, self._on_diag, reliable)
        # Subscribed for the whole run: creating/destroying subscriptions from this thread while
        # the executor spins in another one can hang rclpy; _on_color keeps only montage frames.
        n.create_subscription(Image, TOPICS.color, self._on_color, outputs)
        self.stamps: dict[tuple[int, int], tuple[float, str]] = {}
        self.montage_width: float | None = None  # capture masks for this width...
        self.montage_after: float = math.inf     # ...of frames sent after this time
        self.active_width: float | None = None
        self.last_decision: tuple[float, str] | None = None
        self.phase = ""
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the executor stops with an exception at shutdown
            pass

    # -- callbacks (executor thread)
    def _on_mask(self, msg: Any) -> None:
        t = self.clock()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self.lock:
            sent = self.stamps.get(key)
            if sent is None:
                return
            width = self.active_width
            self.record.masks.append({"t": t, "latency_ms": (t - sent[0]) * 1000.0,
                                      "width": width, "phase": sent[1],
                                      "frame_id": msg.header.frame_id,
                                      "size": [msg.height, msg.width]})
            mw = self.montage_width
            if mw is not None and sent[0] >= self.montage_after and mw not in self.record.montage:
                mask = np.frombuffer(bytes(msg.data), np.uint8)
                mask = mask.reshape(msg.height, msg.step)[:, : msg.width].copy()
                self.record.montage[mw] = mask

    def _on_color(self, msg: Any) -> None:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self.lock:
            sent = self.stamps.get(key)
            mw = self.montage_width
            if (sent is None or mw is None or sent[0] < self.montage_after
                    or mw in self.record.montage_color or msg.encoding != "rgb8"):
                return
            img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
            self.record.montage_color[mw] = img[:, : msg.width * 3].reshape(
                msg.height, msg.width, 3).copy()

    def _on_active(self, msg: Any) -> None:
        t = self.clock()
        with self.lock:
            self.active_width = float(msg.data)
            self.record.active.append((t, float(msg.data)))

    def _on_diag(self, msg: Any) -> None:
        t = self.clock()
        for status in msg.status:
            if not is_segmentation_status(status.name):
                continue
            values = {kv.key: kv.value for kv in status.values}
            parsed = parse_diagnostic_values(values)
            level = status.level if isinstance(status.level, int) else int.from_bytes(
                bytes(status.level), "little")
            with self.lock:
                self.record.diagnostics.append({"t": t, "name": status.name, "level": level,
                                                "message": status.message, "values": values})
                width = parsed.get("width", self.active_width)
                reason = parsed.get("reason", status.message)
                if width is None:
                    continue
                key = _reason_key(width, reason)
                if key != self.last_decision:
                    self.record.decisions.append({
                        "t": round(t, 3), "phase": self.phase, "width": width,
                        "reason": reason, "caps": parsed.get("caps", ""),
                        "warnings": parsed.get("warnings", "none")})
                    self.last_decision = key

    # -- publishing (main thread)
    def publish_frame(self, rgb: np.ndarray) -> None:
        msg = self.msgs["Image"]()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "demo_camera"
        msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        msg.data = np.ascontiguousarray(rgb).tobytes()
        t = self.clock()
        with self.lock:
            self.stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (t, self.phase)
            if len(self.stamps) > 2000:
                for k in list(self.stamps)[:1000]:
                    del self.stamps[k]
            self.record.frames.append({"t": t, "phase": self.phase})
        self.pub_image.publish(msg)

    def publish_width(self, width: float) -> None:
        self.pub_width.publish(self.msgs["Float32"](data=float(width)))
        self.record.requests.append((self.clock(), float(width)))

    def publish_inputs(self, battery: float, charging: bool, celsius: float,
                       budget_ms: float) -> None:
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
        self.record.inputs.append({"t": self.clock(), "battery": battery, "charging": charging,
                                   "temperature": celsius, "budget_ms": budget_ms})

    def connected(self) -> bool:
        """True once the node subscribes to the image and control topics."""
        return (self.pub_image.get_subscription_count() > 0
                and self.pub_width.get_subscription_count() > 0)

    def close(self) -> None:
        try:
            self._executor.shutdown(timeout_sec=1.0)
        except Exception:
            pass
        self.node.destroy_node()


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def latency_table(record: Record, widths: list[float]) -> list[dict[str, Any]]:
    """Per width: end-to-end latency (publish -> mask received) and the node's own figures
    (inference only, from its last diagnostics that had that width)."""
    node_figs: dict[float, dict[str, float]] = {}
    for d in record.diagnostics:
        for w, figs in parse_diagnostic_values(d["values"]).get("latency", {}).items():
            node_figs[w] = figs
    rows = []
    for w in widths:
        e2e = [m["latency_ms"] for m in record.masks
               if m["width"] is not None and same_width(m["width"], w)]
        node = node_figs.get(find_width(tuple(node_figs), w), {})
        rows.append({
            "width": w, "masks": len(e2e),
            "e2e_mean_ms": float(np.mean(e2e)) if e2e else None,
            "e2e_p50_ms": _percentile(e2e, 50), "e2e_p90_ms": _percentile(e2e, 90),
            "node_p50_ms": node.get("p50"), "node_p90_ms": node.get("p90"),
        })
    return rows


def _fmt(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _step_series(points: list[tuple[float, float]], t_end: float
                 ) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for t, v in points:
        xs.append(t)
        ys.append(v)
    if xs:
        xs.append(t_end)
        ys.append(ys[-1])
    return xs, ys


def plot_timeline(record: Record, path: Path, t_end: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.2, 1.0]})
    ax_w, ax_l, ax_e = axes
    colours = ["#f4f4f4", "#e3ecf7"]
    for i, ph in enumerate(record.phases):
        for ax in axes:
            ax.axvspan(ph["start"], ph["end"], color=colours[i % 2], zorder=0)
        ax_w.text((ph["start"] + ph["end"]) / 2, 1.13, ph["name"], ha="center", va="bottom",
                  fontsize=7, rotation=20)
    xs, ys = _step_series(record.requests, t_end)
    ax_w.step(xs, ys, where="post", color="tab:gray", ls="--", label="requested width")
    xs, ys = _step_series(record.active, t_end)
    ax_w.step(xs, ys, where="post", color="tab:blue", lw=2, label="active width")
    ax_w.set_ylim(0, 1.1)
    ax_w.set_ylabel("width")
    ax_w.legend(loc="lower left", fontsize=8)
    if record.masks:
        ax_l.scatter([m["t"] for m in record.masks], [m["latency_ms"] for m in record.masks],
                     s=6, c=[m["width"] if m["width"] is not None else 0 for m in record.masks],
                     cmap="viridis", vmin=0, vmax=1,
                     label="end to end, per frame (colour: width)")
    seen = []  # what the governor compares with the budget: the node's p90 at the active width
    for d in record.diagnostics:
        parsed = parse_diagnostic_values(d["values"])
        figs = parsed.get("latency", {}).get(parsed.get("width"))
        if figs and "p90" in figs:
            seen.append((d["t"], figs["p90"]))
    if seen:
        ax_l.plot([p[0] for p in seen], [p[1] for p in seen], color="black", lw=1,
                  label="node inference p90 at the active width")
    bud = [(d["t"], d["budget_ms"] if d["budget_ms"] > 0 else float("nan"))
           for d in record.inputs]
    if bud:
        ax_l.plot([b[0] for b in bud], [b[1] for b in bud], color="tab:red", label="budget")
    ax_l.set_ylabel("ms")
    ax_l.legend(loc="upper left", fontsize=8)
    if record.inputs:
        ts = [d["t"] for d in record.inputs]
        ax_e.plot(ts, [d["battery"] for d in record.inputs], color="tab:green",
                  label="battery %")
        ax_e.set_ylabel("battery %")
        ax_t = ax_e.twinx()
        ax_t.plot(ts, [d["temperature"] for d in record.inputs], color="tab:orange",
                  label="temperature C")
        ax_t.set_ylabel("temperature C")
        ax_e.legend(loc="upper left", fontsize=8)
        ax_t.legend(loc="upper right", fontsize=8)
    ax_e.set_xlabel("time since start of the scenario (s)")
    ax_e.set_xlim(0.0, t_end)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_montage(record: Record, frame: np.ndarray, info: dict[str, Any], widths: list[float],
                 table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ...conversions import colorize, palette_lut

    lut = palette_lut(info["palette"] or CAMVID_PALETTE)
    e2e = {r["width"]: r["e2e_p50_ms"] for r in table}
    fig, axes = plt.subplots(1, len(widths) + 1, figsize=(3.2 * (len(widths) + 1), 3.4))
    axes[0].imshow(frame)
    axes[0].set_title("input", fontsize=9)
    for ax, w in zip(axes[1:], widths):
        if w in record.montage_color:
            img, src = record.montage_color[w], "slimseg/color"
        elif w in record.montage:
            img, src = colorize(record.montage[w], lut), "slimseg/mask"
        else:
            img, src = np.zeros_like(frame), "no mask received"
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"width {w:g} (p50 {_fmt(e2e.get(w))} ms)\n{src}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    names = info["class_names"] or list(CAMVID_CLASSES)
    handles = [Patch(color=np.asarray(lut[i]) / 255.0, label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 11), fontsize=7)
    title = "one frame at every width"
    if info.get("untrained"):
        title += " (UNTRAINED model: masks mean nothing)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def phase_summary(record: Record) -> list[dict[str, Any]]:
    """Per phase: the widths seen on the active-width topic and the reasons given."""
    out = []
    for ph in record.phases:
        before = [w for t, w in record.active if t <= ph["start"]]
        seen = ([before[-1]] if before else []) + [w for t, w in record.active
                                                   if ph["start"] < t <= ph["end"]]
        reasons = []
        for d in record.decisions:
            if ph["start"] <= d["t"] <= ph["end"] and d["reason"] not in reasons:
                reasons.append(d["reason"])
        masks = [m for m in record.masks if m["phase"] == ph["name"]]
        frames = [f for f in record.frames if f["phase"] == ph["name"]]
        out.append({"phase": ph["name"], "expect": ph["expect"],
                    "start_s": round(ph["start"], 2), "end_s": round(ph["end"], 2),
                    "widths": seen, "min_width": min(seen) if seen else None,
                    "final_width": seen[-1] if seen else None, "reasons": reasons,
                    "frames_sent": len(frames), "masks_received": len(masks),
                    "budget_ms": ph.get("budget_ms")})
    return out


def write_report(out: Path, record: Record, frame: np.ndarray, info: dict[str, Any],
                 widths: list[float], meta: dict[str, Any], t_end: float) -> dict[str, Path]:
    """Write every report file; returns their paths by name."""
    files = {name: out / fname for name, fname in (
        ("timeline", "timeline.png"), ("montage", "montage.png"), ("latency_md", "latency.md"),
        ("latency_json", "latency.json"), ("decisions_md", "decisions.md"),
        ("decisions_json", "decisions.json"), ("report", "report.md"))}
    table = latency_table(record, widths)
    plot_timeline(record, files["timeline"], t_end)
    plot_montage(record, frame, info, widths, table, files["montage"])
    files["latency_json"].write_text(json.dumps({"widths": table, "meta": meta}, indent=2))
    lines = ["# Latency per width", "",
             f"End to end = camera message published -> mask received by the demo over DDS "
             f"(frames {meta['frame_size'][1]}x{meta['frame_size'][0]}, device "
             f"`{meta['device']}`). Node p50/p90 = inference time as the node reports it in its "
             f"diagnostics (last report with that width).", "",
             "| width | masks | e2e mean ms | e2e p50 ms | e2e p90 ms | node p50 ms | "
             "node p90 ms |", "|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['width']:g} | {r['masks']} | {_fmt(r['e2e_mean_ms'])} | "
                     f"{_fmt(r['e2e_p50_ms'])} | {_fmt(r['e2e_p90_ms'])} | "
                     f"{_fmt(r['node_p50_ms'])} | {_fmt(r['node_p90_ms'])} |")
    files["latency_md"].write_text("\n".join(lines) + "\n")
    files["decisions_json"].write_text(json.dumps(
        {"decisions": record.decisions, "active_width": record.active,
         "requests": record.requests}, indent=2))
    lines = ["# Width decisions", "",
             "Every change of (width, reason) in the node's `/diagnostics`, with the scenario "
             "phase it happened in (t = seconds since the scenario started).", "",
             "| t (s) | phase | width | reason | caps | warnings |", "|---|---|---|---|---|---|"]
    for d in record.decisions:
        cells = [str(d.get(k, "")).replace("|", "\\|") for k in ("reason", "caps", "warnings")]
        lines.append(f"| {d['t']:.2f} | {d['phase']} | {d['width']:g} | " + " | ".join(cells)
                     + " |")
    if not record.decisions:
        lines.append("| - | - | - | no diagnostics received from the node | | |")
    files["decisions_md"].write_text("\n".join(lines) + "\n")
    summary = phase_summary(record)
    (out / "phases.json").write_text(json.dumps(summary, indent=2))
    lines = ["# slimseg_ros demo", ""]
    if info.get("untrained"):
        lines += ["**The model is UNTRAINED (random segmentation head): the masks mean nothing. "
                  "The demo shows the plumbing (width switching, policies, latency), not "
                  "segmentation quality.**", ""]
    lines += [f"- checkpoint: `{meta['checkpoint']}`", f"- frames: {meta['source']}",
              f"- frame size: {meta['frame_size'][1]}x{meta['frame_size'][0]}, "
              f"{meta['fps']:g} fps offered",
              f"- node: `{' '.join(meta['node_command'])}`",
              f"- node start-up (process start -> first mask): {meta['startup_s']:.1f} s",
              f"- frames sent: {len(record.frames)}, masks received: {len(record.masks)}; every "
              f"mask carries its frame's stamp, frame_id and size: "
              f"{'yes' if meta['masks_match_frames'] else 'NO'}",
              f"- ROS_DOMAIN_ID: {meta['domain_id']}", "",
              "Files: `timeline.png`, `montage.png`, `latency.md`/`latency.json`, "
              "`decisions.md`/`decisions.json`, `phases.json`, `node.log`.", "",
              "## Phases", "", "| phase | expected | widths seen | reasons given |",
              "|---|---|---|---|"]
    for s in summary:
        ws = " -> ".join(f"{w:g}" for w in _dedupe(s["widths"])) or "none"
        reasons = "<br>".join(str(r).replace("|", "\\|") for r in s["reasons"][:6]) or "-"
        extra = f" (budget {s['budget_ms']:.1f} ms)" if s.get("budget_ms") else ""
        lines.append(f"| {s['phase']}{extra} | {s['expect']} | {ws} | {reasons} |")
    lines += ["", "![timeline](timeline.png)", "", "![montage](montage.png)", ""]
    files["report"].write_text("\n".join(lines))
    return files


def _dedupe(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise argparse.ArgumentTypeError(f"--size wants HEIGHTxWIDTH (>= 8 each), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimseg-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="reports/demo", help="report folder (created)")
    p.add_argument("--images", help="an image folder or a video file to replay; default: a "
                                    "synthetic street scene")
    p.add_argument("--checkpoint", help="model file; default: the packaged model, or an "
                                        "untrained stand-in if none is installed")
    p.add_argument("--params", help="node parameter file; default: config/slimseg.yaml")
    p.add_argument("--size", type=_parse_size, help="resize frames to HEIGHTxWIDTH "
                                                    "(synthetic default 360x480)")
    p.add_argument("--fps", type=float, default=10.0, help="frames offered per second")
    p.add_argument("--phase-seconds", type=float, default=4.0,
                   help="length of one scenario step; the whole scenario is about 16 steps")
    p.add_argument("--device", help="override the node's device parameter (cpu/cuda/auto)")
    p.add_argument("--startup-timeout", type=float, default=180.0,
                   help="seconds to wait for the node's first mask")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: a private one)")
    return p


def run_demo(args: argparse.Namespace) -> dict[str, Path]:
    """Run the whole demo; returns the report files. Raises :class:`DemoError` on failure."""
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.fps <= 0 or args.phase_seconds <= 0:
        raise DemoError("--fps and --phase-seconds must be > 0")
    params_file = Path(args.params).resolve() if args.params else find_params_file()
    if not params_file.is_file():
        raise DemoError(f"parameter file {params_file} does not exist")
    params = flatten_params(params_file)

    if args.checkpoint:
        checkpoint = Path(args.checkpoint).expanduser().resolve()
        if not checkpoint.is_file():
            raise DemoError(f"checkpoint {checkpoint} does not exist")
    else:
        checkpoint = find_default_checkpoint(params)
        if checkpoint is None:
            checkpoint = out / "untrained_model.pt"
            print(f"[demo] no trained model is installed: building an UNTRAINED "
                  f"model at {checkpoint} (its masks mean nothing; pass --checkpoint FILE for a "
                  f"real one)", flush=True)
            stand_in_checkpoint(checkpoint)
    info = read_checkpoint_info(checkpoint)
    if info["untrained"]:
        print("[demo] WARNING: the checkpoint is UNTRAINED", flush=True)
    widths = sorted(info["widths"])

    source = FrameSource(args.images, args.size)
    frame_size = source.first.shape[:2]
    domain_id = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 100
    env = node_environment(domain_id, localhost_only=True)
    os.environ.update(env)  # this process joins the same private domain

    phase_s = float(args.phase_seconds)
    overrides: dict[str, Any] = {"checkpoint": str(checkpoint)}
    if args.device:
        overrides["device"] = args.device
    # Short scenario steps need a governor that settles within a step; say so in the report.
    gov_prefix = next((k.rsplit(".", 1)[0] + "." for k in params if k.endswith("min_dwell_s")),
                      "governor.")
    dwell = float(params.get(gov_prefix + "min_dwell_s", 2.0))
    overrides[gov_prefix + "min_dwell_s"] = round(min(dwell, 0.3 * phase_s), 3)
    overrides[gov_prefix + "probe_interval_s"] = round(
        min(float(params.get(gov_prefix + "probe_interval_s", 3.0)), 0.4 * phase_s), 3)
    overrides[gov_prefix + "stale_timeout_s"] = max(2.0, 2 * phase_s)
    overrides["diagnostics_period_s"] = 0.2  # a fine-grained decision log
    margin = float(params.get(gov_prefix + "budget_margin", 0.9))

    cmd = node_command(params_file, overrides)
    log_path = out / "node.log"
    print(f"[demo] starting the node on ROS_DOMAIN_ID={domain_id}: {' '.join(cmd)}", flush=True)

    import rclpy

    record = Record()
    origin = [time.monotonic()]  # the scenario clock restarts at 0 once the node is up

    def clock() -> float:
        return time.monotonic() - origin[0]

    rclpy.init()
    client = None
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            client = DemoClient(record, clock)
            startup_s = _wait_for_node(client, proc, source, args, log_path, record)
            with client.lock:
                shift = time.monotonic() - origin[0]
                origin[0] += shift
                _shift_times(record, -shift)
            t_end = _play(client, proc, source, args, record, widths, phase_s, margin, clock,
                          log_path)
        finally:
            if client is not None:
                client.close()
            stop_process(proc)
            rclpy.try_shutdown()
    meta = {"checkpoint": str(checkpoint), "untrained": info["untrained"],
            "source": source.description, "frame_size": list(frame_size), "fps": args.fps,
            "node_command": cmd, "startup_s": startup_s, "domain_id": domain_id,
            "device": args.device or params.get("device", "default"),
            "masks_match_frames": bool(record.masks) and all(
                m["frame_id"] == "demo_camera" and m["size"] == list(frame_size)
                for m in record.masks),
            "phase_seconds": phase_s, "governor_overrides": {
                k: v for k, v in overrides.items() if k.startswith(gov_prefix)}}
    files = write_report(out, record, source.first, info, widths, meta, t_end)
    files["node_log"] = log_path
    return files


def _shift_times(record: Record, dt: float) -> None:
    """Move everything recorded so far by ``dt`` seconds (start-up happens before t = 0)."""
    record.active[:] = [(t + dt, w) for t, w in record.active]
    record.requests[:] = [(t + dt, w) for t, w in record.requests]
    for rows in (record.frames, record.masks, record.inputs, record.diagnostics,
                 record.decisions):
        for row in rows:
            row["t"] = round(row["t"] + dt, 3)


def _wait_for_node(client: DemoClient, proc: subprocess.Popen, source: FrameSource,
                   args: argparse.Namespace, log_path: Path, record: Record) -> float:
    """Offer frames until the first mask comes back; the seconds it took."""
    start = time.monotonic()
    client.phase = "start-up"
    frame = source.first
    while time.monotonic() - start < args.startup_timeout:
        if proc.poll() is not None:
            raise DemoError(f"the node exited with code {proc.returncode} during start-up; "
                            f"last lines of {log_path}:\n{log_tail(log_path)}")
        if client.connected():
            client.publish_frame(frame)
        time.sleep(0.25)
        with client.lock:
            if record.masks:
                break
    else:
        raise DemoError(f"no mask from the node within {args.startup_timeout:.0f} s; "
                        f"last lines of {log_path}:\n{log_tail(log_path)}")
    # Start-up frames are not part of the scenario.
    with client.lock:
        record.masks.clear()
        record.frames.clear()
    return time.monotonic() - start


def _budgets(record: Record, widths: list[float], margin: float) -> dict[str, float]:
    """Budgets from the latency the governor compared during the width sweep (the last figure
    per width in the node's diagnostics; end to end where there is none): "tight" lies between
    the two middle widths (the governor should settle on a middle width), "relaxed" is three
    times the widest width's latency (the governor should probe its way back to full width)."""
    compared: dict[float, float] = {}
    for d in record.diagnostics:
        for w, r in read_diagnostics(d["values"]).latency.items():
            compared[w] = r.pq_ms
    e2e = {r["width"]: r["e2e_p90_ms"] for r in latency_table(record, widths)}

    def typical(w: float) -> float | None:
        return compared.get(find_width(tuple(compared), w)) or e2e.get(w)

    ws = sorted(widths)
    lo, hi = ws[max(0, len(ws) // 2 - 1)], ws[min(len(ws) - 1, len(ws) // 2)]
    a, b = typical(lo), typical(hi)
    known = [v for v in (typical(w) for w in ws) if v is not None]
    if a is None or b is None or not known:
        return {"tight": 50.0, "relaxed": 1000.0}
    tight = math.sqrt(a * b) / margin if b > a else a * 1.05 / margin
    return {"tight": round(tight, 2), "relaxed": round(3.0 * max(known) / margin, 2)}


def _play(client: DemoClient, proc: subprocess.Popen, source: FrameSource,
          args: argparse.Namespace, record: Record, widths: list[float], phase_s: float,
          margin: float, clock: Callable[[], float], log_path: Path) -> float:
    """Run the scenario; returns the end time on the scenario clock."""
    period = 1.0 / args.fps
    input_period = 0.25
    budgets: dict[str, float] = {}
    for ph in scenario(phase_s, widths):
        if proc.poll() is not None:
            raise DemoError(f"the node exited with code {proc.returncode}; last lines of "
                            f"{log_path}:\n{log_tail(log_path)}")
        if isinstance(ph.budget, str) and not budgets:
            budgets = _budgets(record, widths, margin)
        budget = budgets.get(ph.budget, 0.0) if isinstance(ph.budget, str) else ph.budget
        start = clock()
        entry = {"name": ph.name, "start": start, "end": start + ph.seconds, "expect": ph.expect,
                 "budget_ms": budget}
        record.phases.append(entry)
        client.phase = ph.name
        print(f"[demo] {start:6.1f} s  {ph.name}" + (f" ({budget:.1f} ms)" if budget else ""),
              flush=True)
        if ph.request is not None:
            client.publish_width(ph.request)
        next_frame = next_input = clock()
        armed = False
        while (now := clock()) < start + ph.seconds:
            frac = (now - start) / ph.seconds
            if now >= next_input:
                client.publish_inputs(_lerp(ph.battery, frac), ph.charging,
                                      _lerp(ph.temperature, frac), budget)
                next_input = now + input_period
            if now >= next_frame:
                if ph.montage:
                    with client.lock:
                        if (not armed and client.active_width is not None
                                and same_width(client.active_width, ph.request)):
                            client.montage_width = ph.request
                            client.montage_after = clock()
                            armed = True
                    client.publish_frame(source.first)
                else:
                    client.publish_frame(source.next())
                next_frame = max(next_frame + period, now)
            time.sleep(max(0.0, min(next_frame, next_input) - clock()))
        if ph.montage:
            with client.lock:
                client.montage_width = None
        entry["end"] = clock()
    time.sleep(min(1.0, phase_s / 2))  # let the last masks and diagnostics arrive
    return clock()


def _lerp(pair: tuple[float, float], frac: float) -> float:
    a, b = pair
    return a + (b - a) * min(max(frac, 0.0), 1.0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        files = run_demo(args)
    except DemoError as exc:
        print(f"slimseg-demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("slimseg-demo: interrupted", file=sys.stderr)
        return 130
    folder = files["report"].parent
    print(f"[demo] report written to {folder}")
    for name in ("report", "timeline", "montage", "latency_md", "decisions_md", "node_log"):
        print(f"         {files[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
