"""Inference runtimes behind the engine: torch itself, OpenVINO and ONNX Runtime.

Each non-torch backend runs the whole frame path of one width (see :mod:`.frame_graph`) as one
compiled graph: uint8 frame in, class ids out. ``auto`` picks, on a CPU, OpenVINO where it is
importable, else ONNX Runtime, else torch; on CUDA, torch.
"""

from __future__ import annotations

import importlib

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


def resolve_backend(name: str, device_type: str) -> str:
    """The backend ``name`` (or ``auto``) resolves to on a ``device_type`` ("cpu" / "cuda")."""
    key = str(name).strip().lower()
    if key not in CHOICES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    if key == "auto":
        if device_type != "cpu":
            return "torch"
        return next(b for b in ("openvino", "onnxruntime", "torch") if available(b))
    if not available(key):
        raise BackendError(f"backend {key!r} was asked for but the {_MODULES[key]!r} package is "
                           f"not installed (pip install {_MODULES[key]}); or use backend:=auto")
    if key == "openvino" and device_type != "cpu":
        raise BackendError(f"backend 'openvino' runs on the CPU here; the device is {device_type}")
    return key
