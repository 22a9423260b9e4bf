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

from .backends import BACKENDS, BackendError, backend_version
from .backends.frame_graph import export_frame_graph
from .bundle import BUNDLE_FILE, FORMAT, FORMAT_VERSION, file_sha256
from .engine import SegmentationEngine
from .graph_format import GRAPH_VERSION, OPSET, graph_outputs
from ..models.checkpoint import load_checkpoint

RUNTIMES = ("openvino", "onnxruntime")


def write_bundle(checkpoint: str | os.PathLike, folder: str | os.PathLike,
                 runtimes: Sequence[str] = RUNTIMES, confidence: bool = False,
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
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise ValueError(f"a bundle holds graphs for {' and '.join(RUNTIMES)}, "
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
            onnx = export_frame_graph(engine.network(width), info.mean, info.std,
                                      engine.input_size, confidence=confidence)
            (staging / f"{stem}.onnx").write_bytes(onnx)
            if "onnxruntime" in runtimes:
                graphs["onnxruntime"][f"{width.value:g}"] = {"file": f"{stem}.onnx"}
            if "openvino" in runtimes:
                import openvino as ov
                model = ov.Core().read_model(str(staging / f"{stem}.onnx"))
                ov.save_model(model, str(staging / f"{stem}.xml"), compress_to_fp16=True)
                graphs["openvino"][f"{width.value:g}"] = {"file": f"{stem}.xml"}
            if "onnxruntime" not in runtimes:
                (staging / f"{stem}.onnx").unlink()
        for per_width in graphs.values():
            for entry in per_width.values():
                names = [entry["file"]]
                if entry["file"].endswith(".xml"):
                    names.append(entry["file"][:-4] + ".bin")
                entry["sha256"] = {n: file_sha256(staging / n) for n in names}
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
                              **{r: backend_version(r) for r in runtimes},
                              "openvino_weights": "fp16" if "openvino" in runtimes else None},
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
