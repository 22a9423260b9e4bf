"""
Inference runtimes behind the engine, one record each: torch itself, OpenVINO and ONNX Runtime.

:data:`BACKENDS` is the only list of runtimes: the engine, ``auto``, the validation messages,
the node's parameter choices, the bench, the stage profile and evaluation all read it. A record
says how to import the runtime, which precisions and devices it runs, what ``precision: auto``
means with it, and how the engine builds its per-width runner. Adding a runtime (or a precision
to one) is adding (or changing) one record.

Each graph runtime (a record with a ``runner``) runs the whole frame path of one width (see
:mod:`.frame_graph`) as one compiled graph: uint8 frame in, class ids out. ``auto`` takes, among
the installed runtimes whose ``auto_devices`` hold the device, the one of lowest ``auto_rank``
that runs the precision asked for: on a CPU OpenVINO, else ONNX Runtime, else torch; on CUDA,
torch. Nothing here imports a runtime until a record is asked to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"
INT8 = "int8"
#: the command that makes INT8 graphs, named wherever int8 cannot run
INT8_COMMAND = ("write them with slimseg-export --checkpoint MODEL.pt --bundle DIR --int8 "
                "--calibration FRAMES")
#: other spellings of a precision, accepted everywhere a precision is
PRECISION_ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}


class BackendError(ValueError):
    """A backend or precision that cannot run here; the message says which and why."""


def _fp32(_device_type: str) -> str:
    return "fp32"


@dataclass(frozen=True)
class Backend:
    """
    One inference runtime: how to import it, what it runs, how the engine builds its runner.

    - ``description``: a few words for messages.
    - ``module``: the Python package to import (None: torch itself, always there); ``pip``:
      what ``pip install`` takes when that differs from ``module``.
    - ``precisions``: the precisions it runs; ``devices``: the device types it runs on (None:
      every device torch has).
    - ``runner(onnx_bytes, precision, threads, device_type)``: compiles one width's frame
      graph into an object with ``run(frame) -> mask`` (and optionally ``prepare(h, w)``);
      None: the engine runs its torch networks itself.
    - ``compile_cache``: its ``runner`` and ``bundle_loader`` also take ``cache_dir=``, a
      folder where the runtime keeps what it compiles for the next start (None: nowhere).
    - ``default_precision(device_type)``: what ``precision: auto`` runs.
    - ``check_precision(precision, device_type)``: raises :class:`BackendError` where this
      host cannot run a listed precision.
    - ``auto_devices``: the device types ``auto`` may pick it for (None: every one), lowest
      ``auto_rank`` first.
    - ``operation_times``: its runner has ``operation_times(frame)``, the per-operation times
      the stage profile reads.
    """

    name: str
    description: str
    module: str | None
    precisions: tuple[str, ...]
    devices: tuple[str, ...] | None
    runner: Callable[..., Any] | None = None
    compile_cache: bool = False
    default_precision: Callable[[str], str] = _fp32
    check_precision: Callable[[str, str], None] | None = None
    auto_devices: tuple[str, ...] | None = ()
    auto_rank: int = 0
    pip: str | None = None
    operation_times: bool = False
    bundle_writer: Callable[[Path, str], list[str]] | None = None
    bundle_loader: Callable[..., Any] | None = None

    @property
    def is_graph_runtime(self) -> bool:
        """Whether it runs exported frame graphs (the per-width networks, prepared)."""
        return self.runner is not None

    @property
    def package(self) -> str:
        """Return the name ``pip install`` takes for it."""
        return self.pip or self.module or "torch"

    def runs_on(self, device_type: str) -> bool:
        """Whether it runs on a ``device_type`` ("cpu", "cuda", ...) device."""
        return self.devices is None or device_type in self.devices

    def auto_for(self, device_type: str) -> bool:
        """Whether ``auto`` may pick it on a ``device_type`` device."""
        return self.auto_devices is None or device_type in self.auto_devices

    def installed(self) -> bool:
        """Whether its Python package is importable (torch always is)."""
        return self.module is None or importable(self.module)

    def version(self) -> str:
        """Return the runtime's version string (torch's for torch)."""
        return str(importlib.import_module(self.module or "torch").__version__)


def importable(module: str) -> bool:
    """Whether ``module`` imports (the check behind :meth:`Backend.installed`)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# -- the runtimes' hooks (each imports its runtime only when called) ---------------------------

def _openvino_runner(onnx_bytes: bytes, precision: str, threads: int, device_type: str,
                     cache_dir: Path | None = None) -> Any:
    from .openvino_backend import OpenVINOFrameGraph
    return OpenVINOFrameGraph(onnx_bytes, precision, threads, cache_dir=cache_dir)


def _openvino_check(precision: str, device_type: str) -> None:
    if precision == "bf16":
        from .openvino_backend import cpu_supports_bf16
        if not cpu_supports_bf16():
            raise BackendError("precision 'bf16' with OpenVINO needs a CPU with native bf16 "
                               "(AVX512-BF16 or AMX), which this CPU lacks; use fp32")


def _openvino_default(device_type: str) -> str:
    """
    Return bf16 on a CPU with native bf16, else fp32.

    bf16 is chosen only there because it was measured there: the default model's CamVid test
    mIoU through OpenVINO bf16 is within 0.2 points of fp32 at every width, at 1.7-2.1x the
    fp32 speed. Torch's own bf16 and CUDA's fp16 stay opt-in.
    """
    if device_type == "cpu":
        from .openvino_backend import cpu_supports_bf16
        if cpu_supports_bf16():
            return "bf16"
    return "fp32"


def _onnxruntime_runner(onnx_bytes: bytes, precision: str, threads: int,
                        device_type: str) -> Any:
    from .onnxruntime_backend import OnnxRuntimeFrameGraph
    return OnnxRuntimeFrameGraph(onnx_bytes, precision, threads, device_type)


def _openvino_bundle_writer(onnx_path: Path, stem: str) -> list[str]:
    """Convert the ONNX graph beside it into an IR with fp16 weights; return its file names."""
    import openvino as ov
    model = ov.Core().read_model(str(onnx_path))
    ov.save_model(model, str(onnx_path.parent / f"{stem}.xml"), compress_to_fp16=True)
    return [f"{stem}.xml", f"{stem}.bin"]


def _openvino_bundle_loader(path: Path, precision: str, threads: int,
                            cache_dir: Path | None = None) -> Any:
    from .openvino_backend import OpenVINOFrameGraph
    # reads the .bin beside the .xml
    return OpenVINOFrameGraph(str(path), precision, threads, cache_dir=cache_dir)


def _onnxruntime_bundle_writer(onnx_path: Path, stem: str) -> list[str]:
    """Keep the ONNX graph itself; return its file name."""
    return [onnx_path.name]


def _onnxruntime_bundle_loader(path: Path, precision: str, threads: int) -> Any:
    from .onnxruntime_backend import OnnxRuntimeFrameGraph
    return OnnxRuntimeFrameGraph(str(path), precision, threads)  # not held as bytes


#: every runtime, in the order choices are listed
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("torch", "the torch networks themselves", module=None,
            precisions=("fp32", "fp16", "bf16"), devices=None, auto_devices=None,
            auto_rank=100),
    Backend("openvino", "OpenVINO, a compiled frame graph per width", module="openvino",
            precisions=("fp32", "bf16", "int8"), devices=("cpu",), runner=_openvino_runner,
            default_precision=_openvino_default, check_precision=_openvino_check,
            auto_devices=("cpu",), auto_rank=10, operation_times=True, compile_cache=True,
            bundle_writer=_openvino_bundle_writer, bundle_loader=_openvino_bundle_loader),
    Backend("onnxruntime", "ONNX Runtime, a session per width (CUDA: onnxruntime-gpu)",
            module="onnxruntime", precisions=("fp32",), devices=("cpu", "cuda"),
            runner=_onnxruntime_runner, auto_devices=("cpu",), auto_rank=20,
            bundle_writer=_onnxruntime_bundle_writer, bundle_loader=_onnxruntime_bundle_loader),
)}


def bundle_runtimes() -> list[str]:
    """Return the runtimes whose graphs a model bundle can hold, in auto order."""
    return [b.name for b in sorted(BACKENDS.values(), key=lambda b: b.auto_rank)
            if b.bundle_writer is not None]


def choices() -> tuple[str, ...]:
    """Return ``auto`` and every runtime of :data:`BACKENDS`, as the table holds them now."""
    return (AUTO, *BACKENDS)


def precision_choices() -> tuple[str, ...]:
    """Return ``auto`` and every precision some runtime runs, in the table's order."""
    return (AUTO, *dict.fromkeys(p for b in BACKENDS.values() for p in b.precisions))


#: the backend choices (parameters, command lines)
CHOICES: tuple[str, ...] = choices()
#: the precision choices (parameters, command lines)
PRECISION_CHOICES: tuple[str, ...] = precision_choices()
#: the runtime that runs the torch networks themselves: the reference the others are timed against
EAGER: str = next(name for name, b in BACKENDS.items() if not b.is_graph_runtime)


def _listing(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


def installed_summary() -> str:
    """Say which runtimes are installed here and which are not (imports each to find out)."""
    have = [name for name, b in BACKENDS.items() if b.installed()]
    missing = [f"{name} (pip install {b.package})" for name, b in BACKENDS.items()
               if name not in have]
    return (f"installed here: {_listing(have)}"
            + (f"; not installed: {_listing(missing)}" if missing else ""))


def get_backend(name: str) -> Backend:
    """Return the record of runtime ``name`` (not ``auto``); unknown names list the choices."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        what = "; ".join(f"{n}: {b.description}" for n, b in BACKENDS.items())
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(choices())} "
                           f"({what}; {installed_summary()})")
    return BACKENDS[key]


def available(name: str) -> bool:
    """Whether runtime ``name``'s Python package is importable (torch always is)."""
    return get_backend(name).installed()


def is_graph_runtime(name: str) -> bool:
    """Whether runtime ``name`` runs exported frame graphs rather than the torch networks."""
    return get_backend(name).is_graph_runtime


def resolve_backend(name: str, device_type: str, precision: str | None = None,
                    specialised: bool = True) -> str:
    """
    Resolve ``name`` (or ``auto``) to the backend that runs on a ``device_type`` ("cpu" / "cuda").

    ``auto`` takes the first installed runtime (by ``auto_rank``) that may run on the device and
    runs ``precision`` here (OpenVINO, ONNX Runtime, torch on a CPU; torch on CUDA); the last
    candidate is taken even when it cannot, so its own check names the precision. Graph runtimes
    run the prepared per-width networks, so without them (``specialised=False``) ``auto`` takes
    the eager runtime and a graph runtime asked for by name is refused.
    """
    key = str(name).strip().lower()
    if key == AUTO:
        # in rank order, and only as far as needed: checking a runtime imports it (memory)
        ranked = sorted((b for b in BACKENDS.values() if b.auto_for(device_type)
                         and (specialised or not b.is_graph_runtime)), key=lambda b: b.auto_rank)
        last = None
        for candidate in ranked:
            if not candidate.installed():
                continue
            last = candidate
            try:
                if precision is not None:
                    check_backend_precision(candidate.name, precision, device_type)
            except BackendError:
                continue
            return candidate.name
        if last is None:
            raise BackendError(f"no backend for {device_type} is installed "
                               f"({installed_summary()})")
        return last.name
    record = get_backend(key)
    if not record.installed():
        raise BackendError(f"backend {key!r} was asked for but the {record.module!r} package is "
                           f"not installed (pip install {record.package}); "
                           f"{installed_summary()}; or use backend:=auto")
    if not record.runs_on(device_type):
        runs = [b.name for b in BACKENDS.values() if b.runs_on(device_type)]
        raise BackendError(f"backend {key!r} runs on {' or '.join(record.devices)} only; the "
                           f"device is {device_type} (backends for {device_type}: "
                           f"{_listing(runs)}; or use backend:=auto)")
    if record.is_graph_runtime and not specialised:
        raise BackendError(f"backend {key!r} runs the prepared per-width networks; "
                           f"specialise=False needs backend {EAGER!r}")
    return key


def normalise_precision(precision: str) -> str:
    """Return ``precision`` in its short spelling ("float32" -> "fp32"), lower case."""
    key = str(precision).strip().lower()
    return PRECISION_ALIASES.get(key, key)


def check_backend_precision(name: str, precision: str, device_type: str = "cpu") -> str:
    """``precision`` normalised ("fp32", "bf16", ...) if runtime ``name`` can run it here."""
    record = get_backend(name)
    key = normalise_precision(precision)
    if key not in record.precisions:
        runs = [b.name for b in BACKENDS.values() if key in b.precisions]
        hint = f" ({key} runs with {_listing(runs)})" if runs else ""
        made = f"; int8 runs the INT8 graphs of a model bundle: {INT8_COMMAND}" \
            if key == INT8 else ""
        raise BackendError(f"precision {precision!r} is not available with backend {name!r}; "
                           f"choose {' or '.join(record.precisions)}{hint}{made}")
    if record.check_precision is not None:
        record.check_precision(key, device_type)
    return key


def default_precision(name: str, device_type: str) -> str:
    """Return what ``precision: auto`` runs with runtime ``name`` on ``device_type``."""
    return get_backend(name).default_precision(device_type)


def frame_graph_runner(name: str, onnx_bytes: bytes, precision: str, threads: int,
                       device_type: str = "cpu", cache_dir: Path | None = None) -> Any:
    """
    Return a compiled frame graph of runtime ``name`` with a ``run(frame) -> mask`` method.

    ``cache_dir``: a folder where a runtime with ``compile_cache`` keeps what it compiles.
    """
    record = get_backend(name)
    if record.runner is None:
        graphs = [n for n, b in BACKENDS.items() if b.is_graph_runtime]
        raise BackendError(f"backend {name!r} has no frame graph; the graph runtimes are "
                           f"{_listing(graphs)}")
    if record.compile_cache:
        return record.runner(onnx_bytes, precision, threads, device_type, cache_dir=cache_dir)
    return record.runner(onnx_bytes, precision, threads, device_type)


def backend_version(name: str) -> str:
    """Return runtime ``name``'s version string (torch's for ``torch``)."""
    return get_backend(name).version()
