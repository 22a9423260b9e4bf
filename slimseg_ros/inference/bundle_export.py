"""
Write a model bundle (:mod:`.bundle`) from a checkpoint: the only part of bundles that needs torch.

Per width the frame graph is exported once to ONNX (for ONNX Runtime) and converted to an
OpenVINO IR with fp16-compressed weights (OpenVINO computes in fp32 or bf16 as before; only the
stored weights are halved). Files are written into a temporary folder beside the target and
renamed into place at the end, so an interrupted export leaves no half bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .backends import BACKENDS, BackendError, backend_version, bundle_runtimes
from .backends.frame_graph import export_frame_graph
from .bundle import BUNDLE_FILE, FORMAT, FORMAT_VERSION
from .engine import SegmentationEngine
from .graph_format import GRAPH_VERSION, OPSET, file_sha256, graph_outputs
from ..models.checkpoint import load_checkpoint


def write_bundle(checkpoint: str | os.PathLike, folder: str | os.PathLike,
                 runtimes: Sequence[str] | None = None, confidence: bool = False,
                 input_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """
    Export every width of ``checkpoint`` into the bundle ``folder``; return its metadata.

    ``folder`` must not exist yet or be empty. ``input_size`` defaults to the checkpoint's.
    Raises ``ValueError`` (a :class:`~.backends.BackendError` for a runtime that is missing).
    """
    import torch

    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} exists and is not an empty folder: choose a new one")
    runtimes = list(runtimes) if runtimes else bundle_runtimes()
    for runtime in runtimes:
        if runtime not in bundle_runtimes():
            raise ValueError(f"a bundle holds graphs for {' and '.join(bundle_runtimes())}, "
                             f"not {runtime!r}")
        if not BACKENDS[runtime].installed():
            raise BackendError(f"{runtime} is not installed (pip install "
                               f"{BACKENDS[runtime].package}): it converts the graphs")
    model, info = load_checkpoint(checkpoint, map_location="cpu")
    size_asked = input_size or (tuple(info.input_size) if info.input_size else None)
    engine = SegmentationEngine(model, info, device="cpu", backend="torch",
                                input_size=size_asked)
    size = list(engine.input_size) if engine.input_size else None
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        graphs: dict[str, dict[str, Any]] = {r: {} for r in runtimes}
        for width in engine.widths:
            stem = f"width_{width.value:g}"
            onnx_path = staging / f"{stem}.onnx"
            onnx_path.write_bytes(export_frame_graph(engine.network(width), info.mean, info.std,
                                                     engine.input_size, confidence=confidence))
            kept: set[str] = set()
            for runtime in runtimes:  # each runtime's files, made from the one ONNX export
                names = BACKENDS[runtime].bundle_writer(onnx_path, stem)
                kept.update(names)
                graphs[runtime][f"{width.value:g}"] = {
                    "file": names[0], "sha256": {n: file_sha256(staging / n) for n in names}}
            if onnx_path.name not in kept:
                onnx_path.unlink()
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "graph_version": GRAPH_VERSION, "opset": OPSET,
                "outputs": graph_outputs(confidence=confidence),
                "class_names": list(info.class_names),
                "palette": [list(map(int, c)) for c in info.palette],
                "mean": list(map(float, info.mean)), "std": list(map(float, info.std)),
                "input_size": size, "widths": [w.value for w in engine.widths],
                "source": {"checkpoint": Path(checkpoint).name,
                           "sha256": file_sha256(Path(checkpoint))},
                "made_with": {"torch": torch.__version__, "opset": OPSET,
                              **{r: backend_version(r) for r in runtimes}},
                "graphs": graphs}
        (staging / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from other users
        if folder.exists():
            folder.rmdir()
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta
