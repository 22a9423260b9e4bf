"""
Inference runtimes behind the engine: torch itself, OpenVINO and ONNX Runtime.

Each non-torch backend runs the whole frame path of one width (see :mod:`.frame_graph`) as one
compiled graph: uint8 frame in, class ids out. ``auto`` picks, on a CPU, OpenVINO where it is
importable, else ONNX Runtime, else torch; on CUDA, torch.
"""

from __future__ import annotations

import importlib
from typing import Any

BACKENDS = ("torch", "openvino", "onnxruntime")
CHOICES = ("auto",) + BACKENDS
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


class BackendError(ValueError):
    """A backend or precision that cannot run here; the message says which and why."""


def available(backend: str) -> bool:
    """Whether ``backend``'s Python package is importable (torch always is)."""
    if backend == "torch":
        return True
    try:
        importlib.import_module(_MODULES[backend])
    except ImportError:
        return False
    return True


def resolve_backend(name: str, device_type: str, precision: str | None = None) -> str:
    """
    Resolve ``name`` (or ``auto``) to the backend that runs on a ``device_type`` ("cpu" / "cuda").

    ``auto`` takes the first importable runtime that can run ``precision`` here (OpenVINO,
    ONNX Runtime, torch on a CPU; torch on CUDA).
    """
    key = str(name).strip().lower()
    if key not in CHOICES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    if key == "auto":
        if device_type != "cpu":
            return "torch"
        for candidate in ("openvino", "onnxruntime"):
            if not available(candidate):
                continue
            try:
                if precision is not None:
                    check_backend_precision(candidate, precision)
            except BackendError:
                continue
            return candidate
        return "torch"
    if not available(key):
        raise BackendError(f"backend {key!r} was asked for but the {_MODULES[key]!r} package is "
                           f"not installed (pip install {_MODULES[key]}); or use backend:=auto")
    if key == "openvino" and device_type != "cpu":
        raise BackendError(f"backend 'openvino' runs on the CPU here; the device is {device_type}")
    return key


PRECISIONS = {"torch": ("fp32", "fp16", "bf16"), "openvino": ("fp32", "bf16"),
              "onnxruntime": ("fp32",)}


def check_backend_precision(backend: str, precision: str) -> str:
    """``precision`` normalised ("fp32", "bf16", ...) if ``backend`` can run it here."""
    key = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(
        str(precision).strip().lower(), str(precision).strip().lower())
    if key not in PRECISIONS[backend]:
        raise BackendError(f"precision {precision!r} is not available with backend {backend!r}; "
                           f"choose {' or '.join(PRECISIONS[backend])}")
    if backend == "openvino" and key == "bf16":
        from .openvino_backend import cpu_supports_bf16
        if not cpu_supports_bf16():
            raise BackendError("precision 'bf16' with OpenVINO needs a CPU with native bf16 "
                               "(AVX512-BF16 or AMX), which this CPU lacks; use fp32")
    return key


def default_precision(backend: str, device_type: str) -> str:
    """
    Return what ``precision: auto`` runs: bf16 with OpenVINO on a native-bf16 CPU, else fp32.

    bf16 is chosen only there because it was measured there: the default model's CamVid test
    mIoU through OpenVINO bf16 is within 0.2 points of fp32 at every width, at 1.7-2.1x the
    fp32 speed. Torch's own bf16 and CUDA's fp16 stay opt-in.
    """
    if backend == "openvino" and device_type == "cpu":
        from .openvino_backend import cpu_supports_bf16
        if cpu_supports_bf16():
            return "bf16"
    return "fp32"


def frame_graph_runner(backend: str, onnx_bytes: bytes, precision: str, threads: int,
                       device_type: str = "cpu") -> Any:
    """Return a compiled frame graph of ``backend`` with a ``run(frame) -> mask`` method."""
    if backend == "openvino":
        from .openvino_backend import OpenVINOFrameGraph
        return OpenVINOFrameGraph(onnx_bytes, precision, threads)
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeFrameGraph
        return OnnxRuntimeFrameGraph(onnx_bytes, precision, threads, device_type)
    raise BackendError(f"backend {backend!r} has no frame graph")


def backend_version(backend: str) -> str:
    """Return the runtime's version string (torch's for ``torch``)."""
    if backend == "openvino":
        from .openvino_backend import version
        return version()
    if backend == "onnxruntime":
        from .onnxruntime_backend import version
        return version()
    import torch
    return torch.__version__
