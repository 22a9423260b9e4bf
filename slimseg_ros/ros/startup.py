"""
The node's start-up: parameters declared from the table, the engine loaded from a checkpoint.

Everything here may fail on a user's input (a wrong type in YAML, a missing or corrupt file, a
backend this host lacks); each failure becomes one :class:`StartupError` sentence naming the
parameter or the file, which the plain node prints before exiting and the managed node reports
from ``configure``.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..governor import SINGLE
from ..governor.config import GovernorConfig
from ..governor.ladder import Ladder
from ..inference.bundle import is_bundle
from ..inference.working_memory import return_freed_heap
from ..resources import default_checkpoint
from .params import (MODEL_PARAMS, PARAMS, ParamSpec, check_camera_priorities, check_value,
                     governor_config_from_params)

_EMPTY_TYPES = {"str_array": Parameter.Type.STRING_ARRAY,
                "float_array": Parameter.Type.DOUBLE_ARRAY,
                "int_array": Parameter.Type.INTEGER_ARRAY}


class StartupError(RuntimeError):
    """The node cannot start (missing checkpoint, bad parameter); the message says why."""


def read_settings(values: dict[str, Any]) -> tuple[GovernorConfig, list[str], list[float]]:
    """
    Check every parameter's value; return the governor's config, cameras and their priorities.

    The camera names are ``[SINGLE]`` for a node without ``cameras``; the priorities are empty
    where none were given. Raises :class:`StartupError` naming the parameter.
    """
    try:
        for name, value in values.items():
            check_value(name, value)
        config = governor_config_from_params(values)
        names = [str(c) for c in values["cameras"]]
        priorities = [float(p) for p in values["camera_priorities"]]
        check_camera_priorities(names, priorities)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    return config, names or [SINGLE], priorities


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


def declare_parameters(node: Node, managed: bool) -> None:
    """
    Declare every parameter of the table on ``node``.

    Parameters fixed after start-up are read-only on the plain node; a managed node may change
    them while unconfigured. Raises :class:`StartupError` for a wrong type or range (YAML, -p).
    """
    try:
        for spec in PARAMS:
            node.declare_parameter(spec.name, _initial(spec),
                                   descriptor(spec, spec.read_only and not managed))
    except ParameterException as exc:
        raise StartupError(f"invalid parameter: {exc}") from None


def declare_model_params(node: Node, info: Any, widths: Sequence[float], managed: bool) -> None:
    """
    Declare (or, configured again, set) the checkpoint's class names, palette and widths.

    They are read-only parameters: what the loaded model is, for tools and users to read.
    """
    values = {"class_names": list(info.class_names),
              "palette": [int(v) for c in info.palette for v in c],
              "widths": [float(w) for w in widths]}
    if not node.has_parameter(MODEL_PARAMS[0].name):
        for spec in MODEL_PARAMS:
            node.declare_parameter(spec.name, values[spec.name], descriptor(spec, not managed),
                                   ignore_override=True)
    else:  # a managed node configured again, perhaps with another checkpoint
        node.set_parameters([Parameter(s.name, value=values[s.name]) for s in MODEL_PARAMS])


def load_engine(values: dict[str, Any], logger: Any, defer_points: bool = False) -> Any:
    """
    Build the engine the parameters ``values`` ask for; warm it up at its input size.

    Every failure becomes one :class:`StartupError` sentence naming the file. A ``checkpoint``
    that is a directory is a model bundle, run without PyTorch (:func:`load_bundle_engine`).
    """
    path = values["checkpoint"] or default_model(values)
    if is_bundle(path):
        return load_bundle_engine(values, path, logger, defer_points)
    import torch

    from ..inference.engine import SegmentationEngine
    from ..models.checkpoint import CheckpointError, load_checkpoint

    if values["torch_threads"] > 0:
        torch.set_num_threads(int(values["torch_threads"]))
    try:
        model, info = load_checkpoint(path)
    except (FileNotFoundError, CheckpointError) as exc:
        raise StartupError(str(exc)) from None
    size = list(values["input_size"])
    input_size = tuple(size) if size != [0, 0] else (
        tuple(info.input_size) if info.input_size else None)
    try:
        engine = SegmentationEngine(model, info, device=values["device"],
                                    specialise=values["specialise"],
                                    precision=values["precision"], input_size=input_size,
                                    backend=values["backend"], checkpoint_path=path,
                                    confidence=bool(values["publish_confidence"]),
                                    ladder=bool(values["use_ladder"]),
                                    defer_points=defer_points)
    except ValueError as exc:  # BackendError too: a precision or runtime this host lacks
        raise StartupError(f"cannot run checkpoint {path}: {exc}") from None
    if engine.input_size is not None:
        # first-call costs stay out of the budget; each width's tensors handed back after
        engine.warmup(size=engine.input_size, release=float(values["release_idle_s"]) > 0)
    logger.info(f"loaded checkpoint {path}: backend {engine.backend}, precision "
                f"{engine.precision}, device {engine.device}, widths {list(engine.widths.values)} "
                f"prepared in {engine.prepare_seconds:.1f} s ({engine.prepared_from}); "
                f"{engine.ladder_note}")
    return engine


def default_model(values: dict[str, Any]) -> str:
    """
    Return the packaged model for an empty ``checkpoint``: the bundle where it can serve, else .pt.

    The bundle (no PyTorch) serves a runtime backend on the CPU with its own input size and
    outputs: backend auto or openvino (the packaged bundle holds OpenVINO graphs), device cpu,
    or auto on a computer without an NVIDIA driver (where auto would pick CUDA), input_size
    [0, 0] and no confidence. Anything else runs the .pt (PyTorch), as before.
    """
    from ..inference.backends import BACKENDS, BackendError, resolve_backend
    from ..inference.bundle import BundleError, read_bundle
    from ..resources import default_bundle

    bundle = default_bundle()
    if bundle is None or values["publish_confidence"] or list(values["input_size"]) != [0, 0]:
        return str(default_checkpoint())
    device = str(values["device"])
    if device not in ("auto", "cpu") or (device == "auto" and Path("/dev/nvidiactl").exists()):
        return str(default_checkpoint())
    try:
        meta = read_bundle(bundle, check_files=False)
        backend = resolve_backend(values["backend"], "cpu")
    except (BundleError, BackendError):
        return str(default_checkpoint())
    if BACKENDS[backend].bundle_loader is None or backend not in meta["graphs"]:
        return str(default_checkpoint())
    return str(bundle)


def load_bundle_engine(values: dict[str, Any], path: str, logger: Any,
                       defer_points: bool = False) -> Any:
    """Run the model bundle at ``path`` (no torch); warm it up at its input size."""
    from ..inference.bundle import BundleEngine, BundleError

    from ..inference.backends import BACKENDS, bundle_runtimes

    record = BACKENDS.get(str(values["backend"]))
    if record is not None and record.bundle_loader is None:
        raise StartupError(f"checkpoint {path} is a model bundle (exported graphs): backend "
                           f"{record.name} needs the .pt checkpoint; use backend auto or "
                           f"{' or '.join(bundle_runtimes())}")
    try:
        engine = BundleEngine(path, backend=values["backend"], precision=values["precision"],
                              threads=int(values["torch_threads"]), device=values["device"],
                              input_size=list(values["input_size"]),
                              confidence=bool(values["publish_confidence"]),
                              ladder=bool(values["use_ladder"]), defer_points=defer_points)
    except BundleError as exc:
        raise StartupError(str(exc)) from None
    if engine.input_size is not None:  # as for a checkpoint (load_engine)
        engine.warmup(size=engine.input_size, release=float(values["release_idle_s"]) > 0)
    logger.info(f"loaded bundle {path}: backend {engine.backend}, precision {engine.precision} "
                f"[{engine.precision_reason}], widths {list(engine.widths.values)} prepared in "
                f"{engine.prepare_seconds:.1f} s (no PyTorch); {engine.ladder_note}")
    return engine


def governor_ladder(engine: Any) -> Ladder | None:
    """
    Return the governor's ladder of the engine's operating points (None: widths only).

    The points' measured latencies order the rungs; a point's width is matched exactly to a
    trained width (the engine has checked them).
    """
    spec = getattr(engine, "ladder", None)
    if spec is None or not spec.points:
        return None
    widths = engine.widths
    return Ladder(widths,
                  [(widths.exact(p.width), tuple(p.input_size), p.latency_ms)
                   for p in spec.points],
                  {widths.exact(w): ms for w, ms in spec.full_latency_ms.items()})


def free_memory(device: str) -> None:
    """Collect a dropped engine (a managed node's cleanup), the GPU cache of ``device`` too."""
    gc.collect()
    return_freed_heap()
    if device.startswith("cuda"):
        import torch
        torch.cuda.empty_cache()
