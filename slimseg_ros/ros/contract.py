"""
The node's public interface, written once: its name, its topics and its diagnostics.

The node, the tools that drive it (demo, dds_bench) and the tests import these names instead of
re-typing them, and read the node's diagnostics with :func:`read_diagnostics` instead of matching
its wording. Plain Python (no ROS): :func:`diagnostics_values` gives the key-values as strings and
the node wraps them in ``diagnostic_msgs/KeyValue``.

Topic names are relative (they follow the node's namespace and remappings) except
``/diagnostics``. A node with ``cameras`` has each camera's topics below the camera's name
(:func:`camera_topics`) and one diagnostics status per camera beside the shared one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..governor.latency import WidthLatency

NODE_NAME = "slimseg_node"
STATUS_SUFFIX = ": segmentation"  # the DiagnosticStatus name is "<node name>: segmentation"
CAMERA_STATUS_INFIX = ": segmentation of "  # per-camera status: "<node>: segmentation of <cam>"
COMPRESSED_SUFFIX = "/compressed"  # image_transport's compressed topic below an image topic
# The format string compressed_image_transport's publisher writes for a mono8 image sent as PNG
# (the encoding, then "; png compressed "; no colour target for a mono image), so its
# subscriber and cv2.imdecode(..., IMREAD_UNCHANGED) give back the exact class ids.
PNG_MONO8_FORMAT = "mono8; png compressed "
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Topics:
    """Every topic of the node (see the README's topic table for types and QoS)."""

    image: str = "image"
    compressed_image: str = "image" + COMPRESSED_SUFFIX
    mask: str = "slimseg/mask"
    mask_compressed: str = "slimseg/mask" + COMPRESSED_SUFFIX
    confidence: str = "slimseg/confidence"
    color: str = "slimseg/color"
    overlay: str = "slimseg/overlay"
    active_width: str = "slimseg/active_width"
    label_info: str = "slimseg/label_info"
    diagnostics: str = "/diagnostics"
    width: str = "slimseg/width"
    battery: str = "battery_state"
    temperature: str = "temperature"
    budget: str = "slimseg/budget_ms"
    cpu_budget: str = "slimseg/cpu_budget"


TOPICS = Topics()


def compressed_topic(image_topic: str) -> str:
    """
    Return the compressed topic of ``image_topic`` (resolved or relative).

    It is named as image_transport names it: ``/cam/image_raw`` -> ``/cam/image_raw/compressed``.
    """
    return image_topic.rstrip("/") + COMPRESSED_SUFFIX


@dataclass(frozen=True)
class CameraTopics:
    """
    One camera's own topics.

    With cameras ``[front, ...]`` they sit below the camera's name (``front/image``,
    ``front/slimseg/mask``, ...); the single camera keeps the plain names. ``width`` is the
    camera's own request topic (None for the single camera, whose request is the shared
    ``slimseg/width``).
    """

    image: str
    compressed_image: str
    mask: str
    color: str
    overlay: str
    active_width: str
    width: str | None
    confidence: str = ""
    mask_compressed: str = ""


def camera_topics(camera: str) -> CameraTopics:
    """Return the topics of ``camera`` ("" for the single camera of a node without ``cameras``)."""
    t = TOPICS
    if not camera:
        return CameraTopics(t.image, t.compressed_image, t.mask, t.color, t.overlay,
                            t.active_width, None, t.confidence, t.mask_compressed)
    p = camera + "/"
    return CameraTopics(p + t.image, compressed_topic(p + t.image), p + t.mask, p + t.color,
                        p + t.overlay, p + t.active_width, p + t.width, p + t.confidence,
                        compressed_topic(p + t.mask))


def check_camera_names(names: Sequence[str]) -> None:
    """
    Raise ``ValueError`` naming the problem unless ``names`` are distinct relative ROS names.

    A valid name looks like ``front``, ``rear_left`` or ``roof/front``: letters, digits and
    ``_``, no leading digit.
    """
    for name in names:
        tokens = name.split("/") if isinstance(name, str) else [""]
        if not all(_NAME_TOKEN.fullmatch(tok) for tok in tokens):
            raise ValueError(f"camera name {name!r} is not a relative ROS name (letters, digits "
                             f"and '_', not starting with a digit, '/' between parts)")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"camera names repeat {repeated}: each camera needs its own name")


@dataclass(frozen=True)
class Keys:
    """Keys of the diagnostics key-values; per-width and per-kind keys come from the methods."""

    active_width: str = "active width"
    input_size: str = "input size"
    reason: str = "reason"
    requested_width: str = "requested width"
    caps: str = "caps"
    trained_widths: str = "trained widths"
    frames_received: str = "frames received"
    frames_processed: str = "frames processed"
    frames_dropped: str = "frames dropped"
    frames_served: str = "frames served"
    serving_stride: str = "serving stride"
    serving_rate_hz: str = "serving rate hz"
    rate_reason: str = "rate reason"
    served_cpu_share: str = "served cpu share"
    image_topic: str = "image topic"
    image_qos: str = "image qos"
    image_publishers: str = "image publishers"
    device: str = "device"
    backend: str = "backend"
    precision: str = "precision"
    precision_reason: str = "precision reason"
    ladder: str = "ladder"
    working_memory: str = "working memory"
    camera: str = "camera"
    priority: str = "priority"
    cameras: str = "cameras"
    last_frame_width: str = "last frame width"
    last_frame_size: str = "last frame size"
    last_frame_delay_ms: str = "last frame delay ms"
    last_frame_age_ms: str = "last source frame age ms"
    warnings: str = "warnings"
    decided_by: str = "decided by"
    usable_cores: str = "usable cores"
    cpu_budget: str = "cpu budget"
    node_cpu_share: str = "node cpu share"
    node_memory_mb: str = "node memory MB"
    host_battery: str = "host battery"
    host_temperature: str = "host temperature"
    battery_source: str = "battery source"
    thermal_source: str = "thermal source"
    latency_prefix: str = "latency ms at "
    cpu_share_prefix: str = "cpu share at "
    frames_at_prefix: str = "frames at "
    rejected_prefix: str = "rejected "
    last_rejected_prefix: str = "last rejected "
    skipped_prefix: str = "frames skipped: "

    def latency_at(self, step: Any) -> str:
        return self.latency_prefix + _step_text(step)

    def cpu_share_at(self, step: Any) -> str:
        return self.cpu_share_prefix + _step_text(step)

    def frames_at(self, width: float) -> str:
        return self.frames_at_prefix + _width_text(width)

    def rejected(self, kind: str) -> str:
        return self.rejected_prefix + kind

    def last_rejected(self, kind: str) -> str:
        return self.last_rejected_prefix + kind

    def skipped(self, why: str) -> str:
        return self.skipped_prefix + why


KEYS = Keys()


@dataclass(frozen=True)
class Rejected:
    """Kinds of rejected input, as named in the ``rejected <kind>`` keys."""

    image: str = "image"
    width: str = "width"
    battery: str = "battery"
    temperature: str = "temperature"
    budget: str = "budget"
    cpu_budget: str = "cpu budget"
    inference: str = "inference"  # a frame whose inference failed (an error, not bad input)


REJECTED = Rejected()


@dataclass(frozen=True)
class Skipped:
    """Why a frame was taken but not inferred, as named in the ``frames skipped: <why>`` keys."""

    no_subscribers: str = "no subscribers"  # lazy: none of the camera's outputs is listened to
    duplicate: str = "duplicate"  # the stamp and frame_id of the camera's last served frame
    rate: str = "rate"  # not the camera's k-th frame while the governor serves every k-th
    static: str = "static scene"  # skip_static: the last mask republished with the new header


SKIPPED = Skipped()
NONE = "none"  # the value of caps and warnings when there are none
UNAVAILABLE = "unavailable"  # a reading this machine does not have (never written as 0)
OFF = "off"  # host readings not read (host_sensors: off)


@dataclass(frozen=True)
class HostStatus:
    """
    The computer the node runs on and the CPU budget.

    ``cores`` usable by the node, the CPU budget (fraction of them, None: none), the node
    process's CPU share (0-1 of the usable cores) and resident memory (None: unavailable), the
    host battery and temperature as text (``"42% discharging"``,
    ``"71.0C coretemp/Package id 0 (high 100C, critical 100C)"``, ``"unavailable"`` or
    ``"off"``) and which source the battery and thermal caps read (``"topic"``, ``"host"`` or
    ``"none"``).
    """

    cores: int = 0
    cpu_budget: float | None = None
    node_cpu_share: float | None = None
    node_memory_mb: float | None = None
    battery: str = ""
    temperature: str = ""
    battery_source: str = NONE
    thermal_source: str = NONE


@dataclass(frozen=True)
class LastFrame:
    """The most recently processed frame."""

    width: float        # the network width it ran at
    width_px: int
    height_px: int
    delay_ms: float     # taken from the subscription -> mask published
    age_ms: float       # source stamp -> mask published (NaN when the stamp is unset)


@dataclass(frozen=True)
class Diagnostics:
    """
    What the node reports each diagnostics period.

    Missing or unreadable values read back as the defaults (None, 0, empty), so a reader never
    fails on a message of another version.

    ``latency`` holds, per width with recent frames, exactly the figures the governor compared
    with the budget (``pq_ms`` at its ``budget_percentile``), shown as ``"p50 A, p90 B, frames N"``
    (and ``", cpu C"``, the mean CPU ms per frame, where measured); ``cpu_share`` the predicted
    CPU share per width the CPU budget compared. ``decided_by`` names what set the width
    (``request``, ``battery``, ``host thermal``, ``budget``, ``cpu budget``, ...). ``host`` is
    in the status that reports the computer (the single one, or the shared one with cameras).
    """

    active_width: float | None = None
    input_size: str = ""  # per camera: the network input run ("full" or "HxW", a ladder point)
    reason: str = ""
    requested_width: float | None = None
    caps: Mapping[str, float] = field(default_factory=dict)
    trained_widths: tuple[float, ...] = ()
    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_served: int | None = None    # per camera: inferred or republished (static scene)
    serving_stride: int | None = None   # per camera: served every k-th frame (the rate)
    serving_rate_hz: float | None = None
    rate_reason: str = ""
    served_cpu_share: float | None = None  # predicted at the width and rate served
    image_topic: str = ""
    image_qos: str = ""
    image_publishers: int = 0
    device: str = ""
    backend: str = ""
    precision: str = ""
    precision_reason: str = ""  # why (a bundle's precision auto: which widths run int8)
    ladder: str = ""  # the operating points the budgets choose from, or why widths only
    working_memory: str = ""  # which operating points hold their intermediate tensors
    camera: str = ""                    # per-camera status: the camera's name
    priority: float | None = None       # per-camera status: its priority under a budget
    cameras: tuple[str, ...] = ()       # shared status of a node with cameras: their names
    last_frame: LastFrame | None = None
    latency: Mapping[float, WidthLatency] = field(default_factory=dict)
    # read back: the latency of the ladder's reduced-input points, by "0.75@224x304"
    point_latency: Mapping[str, WidthLatency] = field(default_factory=dict)
    frames_at: Mapping[float, int] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    last_rejected: Mapping[str, str] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)  # frames not inferred, per why
    warnings: tuple[str, ...] = ()
    decided_by: tuple[str, ...] = ()
    cpu_share: Mapping[float, float] = field(default_factory=dict)
    host: HostStatus | None = None


def status_name(node_name: str) -> str:
    """Return the DiagnosticStatus name the node ``node_name`` publishes under."""
    return node_name + STATUS_SUFFIX


def is_segmentation_status(name: str) -> bool:
    """Tell whether ``name`` is the (shared) DiagnosticStatus of a segmentation node (any name)."""
    return name.endswith(STATUS_SUFFIX)


def camera_status_name(node_name: str, camera: str) -> str:
    """
    Return the DiagnosticStatus name of ``camera`` of the node ``node_name``.

    Nodes with cameras publish one per camera beside the shared one.
    """
    return node_name + CAMERA_STATUS_INFIX + camera


def status_camera(name: str) -> str | None:
    """Return the camera a DiagnosticStatus name is about, or None (shared or another status)."""
    head, sep, camera = name.rpartition(CAMERA_STATUS_INFIX)
    return camera if sep and head and camera else None


# ------------------------------------------------------------------------------------ writing
def _width_text(width: float) -> str:
    return f"{float(width):g}"


def _step_text(step: Any) -> str:
    """Write a width (``0.75``) or a ladder rung (``0.75@224x304``)."""
    return format(step, "g")


def _number(value: float) -> str:
    return f"{float(value):.4g}"


def _latency_text(r: WidthLatency) -> str:
    tail = f"p{r.q:g} {r.pq_ms:.1f}, " if r.q != 50.0 else ""
    cpu = f", cpu {r.cpu_ms:.1f}" if r.cpu_ms is not None else ""
    return f"p50 {r.p50_ms:.1f}, {tail}frames {int(r.frames)}{cpu}"


def _percent(share: float | None, missing: str = UNAVAILABLE) -> str:
    return missing if share is None else f"{share * 100.0:.1f}%"


def _host_values(h: HostStatus) -> dict[str, str]:
    k = KEYS
    return {
        k.usable_cores: str(int(h.cores)),
        k.cpu_budget: _percent(h.cpu_budget, NONE),
        k.node_cpu_share: _percent(h.node_cpu_share),
        k.node_memory_mb: (UNAVAILABLE if h.node_memory_mb is None
                           else f"{h.node_memory_mb:.1f}"),
        k.host_battery: h.battery,
        k.host_temperature: h.temperature,
        k.battery_source: h.battery_source,
        k.thermal_source: h.thermal_source,
    }


def diagnostics_values(d: Diagnostics) -> dict[str, str]:
    """Return the key-values (in display order) the node publishes for ``d``."""
    k = KEYS
    values = {
        k.active_width: _width_text(d.active_width) if d.active_width is not None else "",
        **({k.input_size: d.input_size} if d.input_size else {}),
        k.reason: d.reason,
        k.requested_width: (_width_text(d.requested_width) if d.requested_width is not None
                            else ""),
        k.caps: ", ".join(f"{name}={_width_text(w)}" for name, w in d.caps.items()) or NONE,
        k.trained_widths: ", ".join(_width_text(w) for w in d.trained_widths),
        k.frames_received: str(int(d.frames_received)),
        k.frames_processed: str(int(d.frames_processed)),
        k.frames_dropped: str(int(d.frames_dropped)),
        k.image_topic: d.image_topic,
        k.image_qos: d.image_qos,
        k.image_publishers: str(int(d.image_publishers)),
        k.device: d.device,
        k.backend: d.backend,
        k.precision: d.precision,
        **({k.precision_reason: d.precision_reason} if d.precision_reason else {}),
        **({k.ladder: d.ladder} if d.ladder else {}),
        **({k.working_memory: d.working_memory} if d.working_memory else {}),
    }
    if d.frames_served is not None:
        values[k.frames_served] = str(int(d.frames_served))
    if d.serving_stride is not None:
        values[k.serving_stride] = str(int(d.serving_stride))
        values[k.serving_rate_hz] = ("" if d.serving_rate_hz is None
                                     else f"{d.serving_rate_hz:.2f}")
        values[k.rate_reason] = d.rate_reason
        values[k.served_cpu_share] = _percent(d.served_cpu_share)
    if d.camera:
        values[k.camera] = d.camera
    if d.priority is not None:
        values[k.priority] = _number(d.priority)
    if d.cameras:
        values[k.cameras] = ", ".join(d.cameras)
    if d.decided_by:
        values[k.decided_by] = ", ".join(d.decided_by)
    if d.host is not None:
        values.update(_host_values(d.host))
    f = d.last_frame
    if f is not None:
        values[k.last_frame_width] = _width_text(f.width)
        values[k.last_frame_size] = f"{int(f.width_px)}x{int(f.height_px)}"
        values[k.last_frame_delay_ms] = _number(f.delay_ms)
        values[k.last_frame_age_ms] = _number(f.age_ms)
    for w in sorted(d.latency):
        values[k.latency_at(w)] = _latency_text(d.latency[w])
    for w in sorted(d.cpu_share):
        values[k.cpu_share_at(w)] = _percent(d.cpu_share[w])
    for w in sorted(d.frames_at):
        values[k.frames_at(w)] = str(int(d.frames_at[w]))
    for kind in sorted(d.rejected):
        values[k.rejected(kind)] = str(int(d.rejected[kind]))
        values[k.last_rejected(kind)] = d.last_rejected.get(kind, "")
    for why in sorted(d.skipped):
        values[k.skipped(why)] = str(int(d.skipped[why]))
    values[k.warnings] = " | ".join(d.warnings) or NONE
    return values


# ------------------------------------------------------------------------------------ reading
def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _finite_width(text: str) -> float | None:
    w = _float(text.strip())
    return w if w is not None and math.isfinite(w) else None


def _read_caps(text: str) -> dict[str, float]:
    caps: dict[str, float] = {}
    if text.strip() in ("", NONE):
        return caps
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        w = _float(value)
        if name and w is not None:
            caps[name] = w
    return caps


def _read_latency(text: str) -> WidthLatency | None:
    figures: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.strip().partition(" ")
        v = _float(value)
        if name and v is not None:
            figures[name] = v
    p50, frames = figures.pop("p50", None), figures.pop("frames", None)
    cpu = figures.pop("cpu", None)
    tails = [(q, v) for q, v in ((_float(n[1:]) if n.startswith("p") else None, v)
                                 for n, v in figures.items()) if q is not None]
    if p50 is None or frames is None or len(tails) > 1:
        return None
    q, pq = tails[0] if tails else (50.0, p50)
    return WidthLatency(q=q, pq_ms=pq, p50_ms=p50, frames=int(frames), cpu_ms=cpu)


def _read_percent(text: str | None) -> float | None:
    if text is None or not text.strip().endswith("%"):
        return None
    v = _float(text.strip()[:-1])
    return v / 100.0 if v is not None and math.isfinite(v) else None


def _read_host(values: Mapping[str, str]) -> HostStatus | None:
    k = KEYS
    if k.usable_cores not in values:
        return None
    return HostStatus(
        cores=_int(values.get(k.usable_cores)),
        cpu_budget=_read_percent(values.get(k.cpu_budget)),
        node_cpu_share=_read_percent(values.get(k.node_cpu_share)),
        node_memory_mb=_float(values.get(k.node_memory_mb)),
        battery=values.get(k.host_battery, ""), temperature=values.get(k.host_temperature, ""),
        battery_source=values.get(k.battery_source, NONE),
        thermal_source=values.get(k.thermal_source, NONE))


def _read_last_frame(values: Mapping[str, str]) -> LastFrame | None:
    k = KEYS
    width = _float(values.get(k.last_frame_width))
    size = values.get(k.last_frame_size, "")
    w_px, _, h_px = size.partition("x")
    if width is None or not (w_px.isdigit() and h_px.isdigit()):
        return None
    delay = _float(values.get(k.last_frame_delay_ms))
    age = _float(values.get(k.last_frame_age_ms))
    return LastFrame(width=width, width_px=int(w_px), height_px=int(h_px),
                     delay_ms=math.nan if delay is None else delay,
                     age_ms=math.nan if age is None else age)


def read_diagnostics(values: Mapping[str, str]) -> Diagnostics:
    """Return the :class:`Diagnostics` in a status's key-values (``{key: value}``)."""
    k = KEYS
    latency: dict[float, WidthLatency] = {}
    point_latency: dict[str, WidthLatency] = {}
    cpu_share: dict[float, float] = {}
    frames_at: dict[float, int] = {}
    rejected: dict[str, int] = {}
    last_rejected: dict[str, str] = {}
    skipped: dict[str, int] = {}
    for key, value in values.items():
        if key.startswith(k.latency_prefix):
            text = key[len(k.latency_prefix):]
            w = _finite_width(text)
            figures = _read_latency(value)
            if figures is not None and w is not None:
                latency[w] = figures
            elif figures is not None and "@" in text:
                point_latency[text.strip()] = figures
        elif key.startswith(k.cpu_share_prefix):
            w = _finite_width(key[len(k.cpu_share_prefix):])
            share = _read_percent(value)
            if w is not None and share is not None:
                cpu_share[w] = share
        elif key.startswith(k.frames_at_prefix):
            w = _finite_width(key[len(k.frames_at_prefix):])
            if w is not None:
                frames_at[w] = _int(value)
        elif key.startswith(k.last_rejected_prefix):
            last_rejected[key[len(k.last_rejected_prefix):]] = value
        elif key.startswith(k.rejected_prefix):
            rejected[key[len(k.rejected_prefix):]] = _int(value)
        elif key.startswith(k.skipped_prefix):
            skipped[key[len(k.skipped_prefix):]] = _int(value)
    warnings = values.get(k.warnings, NONE)
    trained = [_finite_width(t) for t in values.get(k.trained_widths, "").split(",")]
    return Diagnostics(
        active_width=_float(values.get(k.active_width)),
        input_size=values.get(k.input_size, ""),
        reason=values.get(k.reason, ""),
        requested_width=_float(values.get(k.requested_width)),
        caps=_read_caps(values.get(k.caps, "")),
        trained_widths=tuple(w for w in trained if w is not None),
        frames_received=_int(values.get(k.frames_received)),
        frames_processed=_int(values.get(k.frames_processed)),
        frames_dropped=_int(values.get(k.frames_dropped)),
        frames_served=(_int(values[k.frames_served]) if k.frames_served in values else None),
        serving_stride=(_int(values[k.serving_stride]) if k.serving_stride in values
                        else None),
        serving_rate_hz=_float(values.get(k.serving_rate_hz)),
        rate_reason=values.get(k.rate_reason, ""),
        served_cpu_share=_read_percent(values.get(k.served_cpu_share, "")),
        image_topic=values.get(k.image_topic, ""),
        image_qos=values.get(k.image_qos, ""),
        image_publishers=_int(values.get(k.image_publishers)),
        device=values.get(k.device, ""),
        backend=values.get(k.backend, ""),
        precision=values.get(k.precision, ""),
        precision_reason=values.get(k.precision_reason, ""),
        ladder=values.get(k.ladder, ""),
        working_memory=values.get(k.working_memory, ""),
        camera=values.get(k.camera, ""),
        priority=_float(values.get(k.priority)),
        cameras=tuple(c.strip() for c in values.get(k.cameras, "").split(",") if c.strip()),
        last_frame=_read_last_frame(values),
        latency=latency,
        point_latency=point_latency,
        frames_at=frames_at,
        rejected=rejected,
        last_rejected=last_rejected,
        skipped=skipped,
        warnings=() if warnings.strip() in ("", NONE) else tuple(warnings.split(" | ")),
        decided_by=tuple(n.strip() for n in values.get(k.decided_by, "").split(",")
                         if n.strip()),
        cpu_share=cpu_share,
        host=_read_host(values),
    )
