"""
The node's parameters in one table: names, types, defaults, ranges, descriptions.

Pure Python (no rclpy) so the table, its defaults and the YAML file in ``config/`` can be checked
against each other without a ROS graph; the node turns each :class:`ParamSpec` into a
``ParameterDescriptor``. Governor settings live under ``governor.`` and map one to one onto
:class:`~slimseg_ros.governor.config.GovernorConfig` fields (threshold tables are flat lists
``[threshold, max_width, threshold, max_width, ...]`` because ROS 2 parameters cannot nest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .contract import check_camera_names
from ..governor.config import GovernorConfig
from ..governor.host_readings import DEFAULT_TEMPERATURE_SENSORS
from ..inference.backends import CHOICES as BACKEND_CHOICES, PRECISION_CHOICES

GOVERNOR_PREFIX = "governor."
IMAGE_QOS_CHOICES = ("auto", "reliable", "best_effort")
INPUT_TRANSPORTS = ("raw", "compressed")
HOST_SENSORS = ("auto", "off")
_THRESHOLD_PARAMS = ("battery_thresholds", "thermal_thresholds", "host_thermal_thresholds")


@dataclass(frozen=True)
class ParamSpec:
    """
    One parameter. ``kind`` is bool/int/float/str/int_array/float_array/str_array.

    ``lo``/``hi`` become an integer or floating-point range (inclusive); ``choices`` are listed
    in the descriptor's ``additional_constraints`` and enforced by the node; ``read_only``
    parameters are fixed after start-up (changing them would need a restart).
    """

    name: str
    kind: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    @property
    def constraints(self) -> str:
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.lo is not None:
            parts.append(f"range [{self.lo:g}, {self.hi:g}]")
        if self.read_only:
            parts.append("read-only after start-up")
        return "; ".join(parts)


def _flat(pairs: Any) -> list[float]:
    return [float(v) for pair in pairs for v in pair]


_GOV = GovernorConfig()

PARAMS: tuple[ParamSpec, ...] = (
    # --- model / engine (fixed after start-up) ---
    ParamSpec("checkpoint", "str", "",
              "Slimmable model checkpoint (.pt), or a model bundle directory written by "
              "slimseg-export --bundle (run by OpenVINO or ONNX Runtime without PyTorch). "
              "Empty: the packaged default model in share/slimseg_ros/models.", read_only=True),
    ParamSpec("device", "str", "auto",
              "Inference device: auto (cuda when available), cpu, cuda or cuda:N.",
              read_only=True),
    ParamSpec("backend", "str", "auto",
              "Inference runtime: auto (CPU: OpenVINO, else ONNX Runtime, else torch; CUDA: "
              "torch), torch, openvino or onnxruntime.",
              choices=BACKEND_CHOICES, read_only=True),
    ParamSpec("precision", "str", "auto",
              "Weights/activations precision: auto (bf16 with OpenVINO on a CPU with native "
              "bf16, else fp32; from a bundle with INT8 graphs, int8 at the widths where the "
              "bundle records a passed accuracy check and a speed-up >= 1.15x measured on this "
              "CPU), fp32; fp16 needs CUDA (torch); bf16 needs a CPU with native bf16 "
              "(OpenVINO) or torch; int8 runs a bundle's INT8 graphs (OpenVINO).",
              choices=PRECISION_CHOICES,
              read_only=True),
    ParamSpec("specialise", "bool", True,
              "Keep one plain, BatchNorm-folded copy of the network per width (faster; about "
              "1.9x the weights' memory). False: one slimmable network.", read_only=True),
    ParamSpec("torch_threads", "int", 0,
              "CPU threads for torch (0: torch's default).", lo=0, hi=256, read_only=True),
    ParamSpec("input_size", "int_array", [0, 0],
              "Network input [height, width] in pixels; frames are resized to it and masks "
              "resized back to the frame size. [0, 0]: the checkpoint's size, or the frame's "
              "own size when the checkpoint has none.", read_only=True),
    ParamSpec("use_ladder", "bool", True,
              "Let the latency and CPU budgets choose among the model's operating points "
              "(a width at a reduced network input, stored with the model by the resolution "
              "sweep) as well as the widths at the full input. Their graphs are prepared when a "
              "budget is first set (the widths serve meanwhile). False: widths only.",
              read_only=True),
    ParamSpec("release_idle_s", "float", 10.0,
              "Seconds a width or operating point may go unserved before its graph hands back "
              "its working memory (intermediate tensors, 2-20 MiB each with OpenVINO); the next "
              "frame there allocates it again (a few ms, kept out of the latency figures). 0: "
              "every one keeps its own (more memory). ONNX Runtime (its sessions share one arena) "
              "and torch keep theirs.",
              lo=0.0, hi=3600.0, read_only=True),
    # --- width request ---
    ParamSpec("width", "float", 1.0,
              "Requested width in (0, 1]; snaps to the nearest trained width not above it. "
              "The slimseg/width topic sets the same request (the later one wins).",
              lo=0.0, hi=1.0),
    # --- input ---
    ParamSpec("input_transport", "str", "raw",
              "raw: sensor_msgs/Image on 'image'; compressed: sensor_msgs/CompressedImage "
              "(jpeg/png) on 'image/compressed'.", choices=INPUT_TRANSPORTS, read_only=True),
    ParamSpec("cameras", "str_array", [],
              "Names of the cameras sharing the one model. Empty: one camera on 'image' and "
              "the plain topic names. Names given (e.g. [front, left]): camera N reads N/image "
              "(or N/image/compressed), publishes N/slimseg/mask, N/slimseg/color, "
              "N/slimseg/overlay and N/slimseg/active_width, and takes its own width request "
              "on N/slimseg/width.", read_only=True),
    ParamSpec("camera_priorities", "float_array", [],
              "One priority per camera (higher: served first): under slimseg/budget_ms or the "
              "CPU budget lower-priority cameras slim first and widen last. Empty: all equal."),
    ParamSpec("image_qos", "str", "auto",
              "Image subscription reliability (keep-last depth 1 always). auto: reliable when "
              "all publishers of the topic are reliable, best effort otherwise, re-checked as "
              "publishers come and go. reliable never hears a best-effort camera (logged as a "
              "warning).", choices=IMAGE_QOS_CHOICES),
    ParamSpec("qos_check_period_s", "float", 1.0,
              "Seconds between checks of the image publishers' QoS (image_qos auto follows "
              "them; reliable warns about best-effort ones).",
              lo=0.05, hi=60.0, read_only=True),
    # --- outputs ---
    ParamSpec("publish_color", "bool", True,
              "Publish the colour mask (rgb8) on slimseg/color while it has subscribers."),
    ParamSpec("publish_overlay", "bool", False,
              "Publish the frame blended with the colour mask (rgb8) on slimseg/overlay "
              "while it has subscribers."),
    ParamSpec("overlay_alpha", "float", 0.5, "Weight of the colour mask in the overlay.",
              lo=0.0, hi=1.0),
    ParamSpec("publish_confidence", "bool", False,
              "Add each pixel's confidence (softmax maximum as round(255 p), mono8) to every "
              "width's graph and publish it on slimseg/confidence while it has subscribers.",
              read_only=True),
    ParamSpec("lazy", "bool", True,
              "Infer a camera's frames only while one of its outputs (mask, compressed mask, "
              "colour, overlay, confidence) has a subscriber; its other frames are counted as "
              "skipped."),
    ParamSpec("skip_static", "bool", False,
              "Static scenes: while a camera's frame differs from the last frame it inferred "
              "by less than static_threshold, republish the last mask (and the outputs made "
              "from it) with the new frame's header instead of inferring, for up to "
              "static_max_age_s; then infer again. A change of frame size infers at once."),
    ParamSpec("static_threshold", "float", 2.0,
              "Mean absolute grey-level difference (0-255) on a 32x24 thumbnail below which a "
              "frame counts as the same scene (skip_static).", lo=0.0, hi=255.0),
    ParamSpec("static_max_age_s", "float", 1.0,
              "Longest time a republished mask may be older than its frame (skip_static); "
              "must be > 0.", lo=0.0, hi=3600.0),
    ParamSpec("diagnostics_period_s", "float", 1.0,
              "Seconds between diagnostics messages on /diagnostics.", lo=0.05, hi=60.0,
              read_only=True),
    ParamSpec("latency_window_s", "float", 3.0,
              "Only latencies measured within this many seconds feed the compute budget "
              "(and the latency shown in diagnostics).",
              lo=0.1, hi=600.0, read_only=True),
    ParamSpec("latency_window_frames", "int", 20,
              "At most this many recent frames per width feed the compute budget and the "
              "diagnostics (fewer frames: faster reaction to a machine that slows down).",
              lo=1, hi=1000,
              read_only=True),
    ParamSpec("warn_throttle_s", "float", 5.0,
              "At most one warning per kind of rejected input in this many seconds.",
              lo=0.0, hi=3600.0, read_only=True),
    # --- the computer's own readings and the CPU-share budget ---
    ParamSpec("host_sensors", "str", "auto",
              "auto: the computer's own battery and hottest CPU/SoC temperature (psutil) feed "
              "the battery and thermal caps while battery_state / temperature are silent "
              "(never heard, or older than governor.stale_timeout_s); a live topic always "
              "wins. off: not read. The node's own CPU share and memory are reported either "
              "way.", choices=HOST_SENSORS),
    ParamSpec("host_temperature_sensors", "str_array", list(DEFAULT_TEMPERATURE_SENSORS),
              "psutil temperature sensors to watch (the hottest counts): globs on the chip "
              "name (e.g. cpu_thermal) or on chip/label (e.g. coretemp/Package id*), "
              "case-insensitive."),
    ParamSpec("host_period_s", "float", 1.0,
              "Seconds between readings of the host's battery, temperature and the node's CPU "
              "share and memory.", lo=0.1, hi=60.0, read_only=True),
    ParamSpec("cpu_budget", "float", 0.0,
              "CPU-share budget: the fraction (0-1) of the usable cores (the node's CPU "
              "affinity) the node's inference may use; the widest width whose predicted share "
              "(CPU seconds per frame x frames per second served / cores) fits cpu_budget x "
              "governor.budget_margin. 0: none. The slimseg/cpu_budget topic sets the same "
              "budget (the later one wins).", lo=0.0, hi=1.0),
    # --- governor (GovernorConfig fields) ---
    ParamSpec("governor.battery_thresholds", "float_array", _flat(_GOV.battery_thresholds),
              "Battery caps as flat pairs [percent, max_width, ...]: at or below percent "
              "(0-100), run at most max_width. Ignored while charging."),
    ParamSpec("governor.thermal_thresholds", "float_array", _flat(_GOV.thermal_thresholds),
              "Thermal caps as flat pairs [celsius, max_width, ...]: at or above celsius, run "
              "at most max_width."),
    ParamSpec("governor.host_thermal_thresholds", "float_array",
              _flat(_GOV.host_thermal_thresholds),
              "Thermal caps for the host's own temperature (host_sensors auto), as flat pairs "
              "[celsius, max_width, ...]. Empty: 0.5 at 10 C and 0.25 at 5 C below the "
              "sensor's throttle point (psutil's critical, else its high, else 100 C), so a "
              "warm computer under normal load does not slim itself."),
    ParamSpec("governor.thermal_hysteresis_c", "float", _GOV.thermal_hysteresis_c,
              "A thermal cap (topic or host) is released only this many degrees Celsius below "
              "its threshold.",
              lo=0.0, hi=100.0),
    ParamSpec("governor.budget_percentile", "float", _GOV.budget_percentile,
              "Latency percentile (of recent frames per width) compared with the budget.",
              lo=1.0, hi=100.0),
    ParamSpec("governor.budget_margin", "float", _GOV.budget_margin,
              "A width fits the budget when its latency percentile <= budget x margin (and the "
              "CPU budget when its predicted share <= cpu_budget x margin).",
              lo=0.01, hi=1.0),
    ParamSpec("governor.min_dwell_s", "float", _GOV.min_dwell_s,
              "Seconds between automatic width increases (decreases and requests apply at "
              "once).", lo=0.0, hi=3600.0),
    ParamSpec("governor.stale_timeout_s", "float", _GOV.stale_timeout_s,
              "A battery/temperature/budget input older than this stops constraining "
              "(with a diagnostics warning).", lo=0.1, hi=86400.0),
    ParamSpec("governor.probe_interval_s", "float", _GOV.probe_interval_s,
              "Seconds between tries of a wider, not recently measured width under a budget.",
              lo=0.1, hi=3600.0),
    ParamSpec("governor.min_rate_hz", "float", _GOV.min_rate_hz,
              "Floor of a camera's serving rate (frames/s) when the CPU budget or overload "
              "has it served every k-th frame; in (0, 60].", lo=0.0, hi=60.0),
)

# Read-only parameters the node declares from the loaded checkpoint (YAML overrides ignored).
MODEL_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("class_names", "str_array", [], "Class names; mask value i is class_names[i].",
              read_only=True),
    ParamSpec("palette", "int_array", [],
              "Colour-mask palette as flat RGB triples: class i is palette[3i:3i+3].",
              read_only=True),
    ParamSpec("widths", "float_array", [], "Trained widths of the loaded model.",
              read_only=True),
)

SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def governor_config_from_params(values: Mapping[str, Any]) -> GovernorConfig:
    """
    Build the GovernorConfig from ``{"governor.<field>": value}`` (other keys ignored).

    Raises ``ValueError`` naming the parameter for a bad value.
    """
    fields = {k[len(GOVERNOR_PREFIX):]: v for k, v in values.items()
              if k.startswith(GOVERNOR_PREFIX)}
    for key in _THRESHOLD_PARAMS:
        if key in fields:
            fields[key] = [float(v) for v in fields[key]]
    try:
        return GovernorConfig.from_dict(fields)
    except ValueError as exc:
        raise ValueError(f"invalid governor parameters: {exc}") from None


def list_argument(name: str, text: str, item: type) -> list[Any]:
    """
    Parse a list given as one string (a launch argument).

    It reads ``[front, left]`` or ``front, left``; empty: ``[]``. Items are converted with
    ``item`` (str or float).

    Raises ``ValueError`` naming the argument for an item that does not convert.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    parts = [p.strip().strip("'\"") for p in body.split(",")] if body.strip() else []
    try:
        return [item(p) for p in parts]
    except ValueError:
        raise ValueError(f"launch argument '{name}' is {text!r}: give a list like "
                         f"{'[front, left]' if item is str else '[2.0, 1.0]'}") from None


def check_camera_priorities(cameras: list[str], priorities: list[float]) -> None:
    """Raise ``ValueError`` unless ``priorities`` is empty or holds one value per camera."""
    if priorities and len(priorities) != len(cameras):
        raise ValueError(f"parameter 'camera_priorities' has {len(priorities)} value(s) "
                         f"{list(priorities)} for {len(cameras)} camera(s) {list(cameras)}; "
                         f"give one per camera, or none for equal priorities")


def host_sensors_on(value: Any) -> bool:
    """
    Tell whether a ``host_sensors`` value asks for the host's readings (auto) or not (off).

    YAML and ``-p host_sensors:=off`` read an unquoted ``off`` as the boolean false (and ``on``
    as true), so the booleans are accepted beside the two words.
    """
    if value is True or value == "auto":
        return True
    if value is False or value == "off":
        return False
    raise ValueError(f"parameter 'host_sensors' is {value!r}; "
                     f"choose one of {list(HOST_SENSORS)}")


@dataclass(frozen=True)
class ParamChanges:
    """A validated set of parameter changes, with what the governor needs of them."""

    updates: dict[str, Any]
    governor_config: GovernorConfig | None = None  # the new config when a governor.* changed
    priorities: list[float] | None = None  # the new camera priorities when they changed

    def changed(self, *names: str) -> bool:
        """Tell whether any of ``names`` is among the changes."""
        return any(n in self.updates for n in names)


def validate_changes(updates: Mapping[str, Any], current: Callable[[str], Any], *,
                     configured: bool, cameras: Sequence[str]) -> ParamChanges:
    """
    Validate a set of parameter changes as a whole; apply none of them.

    ``current`` reads a parameter's present value (for the governor fields not changed);
    ``configured``: a model is loaded, so parameters fixed after start-up are refused;
    ``cameras``: the configured camera names (empty for the single camera). Raises
    ``ValueError`` with the sentence the parameter service returns.
    """
    updates = dict(updates)
    for name, value in updates.items():
        check_value(name, value)
    model = [s.name for s in MODEL_PARAMS if s.name in updates]
    if model:
        raise ValueError(f"parameter(s) {model} are read-only: set from the checkpoint")
    fixed = [n for n in updates if n in SPECS and SPECS[n].read_only]
    if fixed and configured:  # only a managed node gets here (else read-only)
        raise ValueError(f"parameter(s) {fixed} can only be changed while the node is "
                         f"unconfigured (clean it up first)")
    if not configured:
        return ParamChanges(updates)  # read by the next configure
    gov_config = None
    if any(name.startswith(GOVERNOR_PREFIX) for name in updates):
        present = {s.name: current(s.name) for s in PARAMS if s.name.startswith(GOVERNOR_PREFIX)}
        gov_config = governor_config_from_params({**present, **updates})
    priorities = None
    if "camera_priorities" in updates:
        priorities = [float(p) for p in updates["camera_priorities"]]
        check_camera_priorities(list(cameras), priorities)
    return ParamChanges(updates, gov_config, priorities)


def check_value(name: str, value: Any) -> None:
    """
    Validate what a range/type check in ROS does not: choices, NaN, input_size shape.

    Raises ``ValueError`` with a sentence naming the parameter and the value.
    """
    spec = SPECS.get(name)
    if spec is None:
        return
    if name == "host_sensors":
        host_sensors_on(value)
        return
    if spec.choices and value not in spec.choices:
        raise ValueError(f"parameter '{name}' is {value!r}; choose one of {list(spec.choices)}")
    if spec.kind == "float" and isinstance(value, float) and math.isnan(value):
        raise ValueError(f"parameter '{name}' must not be NaN")
    if name in ("static_max_age_s", "governor.min_rate_hz") and not float(value) > 0.0:
        raise ValueError(f"parameter '{name}' is {value}; it must be > 0")
    if name == "width" and not 0.0 < float(value) <= 1.0:
        raise ValueError(f"parameter 'width' is {value}; it must be in (0, 1]")
    if name == "input_size":
        size = list(value)
        if len(size) != 2 or any(v < 0 for v in size) or (0 in size and size != [0, 0]):
            raise ValueError(f"parameter 'input_size' is {size}; give [height, width] in "
                             f"pixels, or [0, 0] for the checkpoint's size")
    if name == "cameras":
        try:
            check_camera_names(list(value))
        except ValueError as exc:
            raise ValueError(f"parameter 'cameras' is {list(value)}: {exc}") from None
    if name == "camera_priorities" and not all(math.isfinite(float(v)) for v in value):
        raise ValueError(f"parameter 'camera_priorities' is {list(value)}; every priority "
                         f"must be a finite number")
    if name == "host_temperature_sensors" and not all(str(v).strip() for v in value):
        raise ValueError(f"parameter 'host_temperature_sensors' is {list(value)}; every entry "
                         f"must name a sensor (e.g. coretemp/Package id*, cpu_thermal)")
    if name == "device":
        dev = str(value).strip().lower()
        cuda_n = dev.startswith("cuda:") and dev[5:].isdigit()
        if not (dev in ("auto", "cpu", "cuda") or cuda_n):
            raise ValueError(f"parameter 'device' is {value!r}; use auto, cpu, cuda or cuda:N")
