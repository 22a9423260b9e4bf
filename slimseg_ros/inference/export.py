"""
The engine's per-width networks as ONNX or TorchScript files, checked against PyTorch.

Runtime code: the inference backends need the ONNX graph at start-up; the ``slimseg-export``
command line around it is :mod:`slimseg_ros.tools.export_cli`. The exported graph is exactly
what the engine runs at that width: the plain, BatchNorm-folded network, mapping a normalised
float32 N x 3 x H x W image (``(pixel - mean) / std`` on the 0-255 scale) to logits
N x classes x H x W. Batch, height and width are dynamic. Class names, palette, mean/std and the
width are stored in the file (ONNX ``metadata_props``; TorchScript extra file
``slimseg_info.json``).

ONNX uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based one needs the
``onnxscript`` package, which is not a dependency of this project.

After writing, each file is loaded back (onnxruntime or ``torch.jit.load``) and run on random input
at the export size and at a second size; :func:`verify` raises :class:`ExportError` when the
maximum absolute difference to the PyTorch network exceeds the tolerance.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .graph_format import EXPORT_FORMATS
from torch import nn

from .engine import SegmentationEngine
from ..widths import Width

FORMATS = EXPORT_FORMATS


class ExportError(RuntimeError):
    """The exported file disagrees with the PyTorch network (or cannot be loaded back)."""


def metadata(engine: SegmentationEngine, width: Width | int) -> dict[str, str]:
    """Return the string metadata stored with the exported file (values JSON-encoded)."""
    width = engine.member(width)
    info = asdict(engine.info)
    return {
        "slimseg.width": json.dumps(width.value),
        "slimseg.widths": json.dumps(list(engine.widths.values)),
        "slimseg.class_names": json.dumps(info["class_names"]),
        "slimseg.palette": json.dumps(info["palette"]),
        "slimseg.mean": json.dumps(info["mean"]),
        "slimseg.std": json.dumps(info["std"]),
        "slimseg.input_size": json.dumps(info["input_size"]),
        "slimseg.config": json.dumps(engine.config.to_dict() if engine.config else None),
        "slimseg.input": "image: float32 N x 3 x H x W, (pixel - mean) / std on the 0-255 scale",
        "slimseg.output": "logits: float32 N x classes x H x W",
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' deprecation notes and the tracer's note on the shape check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, meta: dict[str, str],
                opset: int = 17, dynamic: bool = True) -> None:
    """Write ``net`` as ONNX (TorchScript-based exporter) with dynamic batch/height/width axes."""
    import onnx

    axes = {0: "batch", 2: "height", 3: "width"}
    with _quiet():
        torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes} if dynamic else None,
                          do_constant_folding=True)
    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path,
                       meta: dict[str, str]) -> None:
    """Write ``net`` traced with ``torch.jit.trace`` (shapes stay symbolic for resizes)."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(path),
                       _extra_files={"slimseg_info.json": json.dumps(meta).encode()})


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """Run an exported file on ``x`` (float32 N x 3 x H x W, CPU) and return the logits."""
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return session.run(None, {"image": x.numpy()})[0]
    with _quiet(), torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(x).numpy()


def verify(net: nn.Module, path: Path, fmt: str, sizes: list[tuple[int, int]],
           tolerance: float) -> list[float]:
    """Max |exported - PyTorch| on random input at each size; raises :class:`ExportError`."""
    gen = torch.Generator().manual_seed(0)
    diffs = []
    for h, w in sizes:
        x = torch.randn(1, 3, h, w, generator=gen)
        with torch.no_grad():
            ref = net(x).numpy()
        try:
            got = run_exported(path, fmt, x)
        except Exception as exc:  # a runtime refusing the graph is a failed export, say which
            raise ExportError(f"{path}: running the exported {fmt} model at {h}x{w} failed: "
                              f"{str(exc).splitlines()[0][:300]}") from None
        if got.shape != ref.shape:
            raise ExportError(f"{path}: output shape {got.shape} at {h}x{w}, expected {ref.shape}")
        diff = float(np.abs(got - ref).max())
        limit = tolerance * max(1.0, float(np.abs(ref).max()))
        diffs.append(diff)
        if not diff <= limit:
            raise ExportError(f"{path}: max |{fmt} - torch| = {diff:.3g} at {h}x{w} exceeds the "
                              f"tolerance {limit:.3g}")
    return diffs


def export_width(engine: SegmentationEngine, width: Width | int, fmt: str, path: Path,
                 size: tuple[int, int], opset: int = 17, tolerance: float = 1e-3,
                 dynamic: bool = True) -> dict[str, Any]:
    """
    Export one width, verify it and return ``{"width", "path", "max_diff", "sizes"}``.

    ``width``: a Width of ``engine.widths`` (or its index); the result gives its fraction.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    width = engine.member(width)
    net = engine.network(width)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    meta = metadata(engine, width)
    if fmt == "onnx":
        export_onnx(net, example, path, meta, opset=opset, dynamic=dynamic)
    else:
        export_torchscript(net, example, path, meta)
    sizes = [tuple(size)]
    if dynamic:  # a second, odd size proves the height/width axes really are dynamic
        sizes.append((size[0] + 37, size[1] + 21))
    diffs = verify(net, path, fmt, sizes, tolerance)
    return {"width": width.value, "path": str(path), "max_diff": max(diffs), "sizes": sizes}
