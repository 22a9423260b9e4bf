"""
What a frame graph is, as files: its version, ONNX opset, input and outputs (no torch needed).

The exporter (:mod:`.backends.frame_graph`) writes graphs of this format; a model bundle
(:mod:`.bundle`) records it, and a node running a bundle checks it without importing torch.
Both engines check their frames with :func:`check_frame` and files with :func:`file_sha256`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# bump when the exported graph changes (2: TF-"SAME" padding follows the frame size)
GRAPH_VERSION = 6  # (3: argmax as a chain of comparisons; 4: logits upsample as a deconvolution;
#                     5: frame normalised before the layout change; 6: upsample + argmax per class)
OPSET = 17
#: file formats of a single width's export (slimseg-export --format) and their suffixes
EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def graph_outputs(logits: bool = False, confidence: bool = False) -> list[str]:
    """Return the output names of a frame graph, in order."""
    return ["logits"] if logits else ["mask", "confidence"] if confidence else ["mask"]


def check_frame(image_rgb: Any) -> np.ndarray:
    """Validate an H x W x 3 uint8 RGB frame; return a C-contiguous, writable array."""
    if not isinstance(image_rgb, np.ndarray):
        raise ValueError("expected an H x W x 3 uint8 numpy array, "
                         f"got {type(image_rgb).__name__}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or 0 in image_rgb.shape:
        raise ValueError(f"expected an H x W x 3 RGB frame, got shape {image_rgb.shape}")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got dtype {image_rgb.dtype}")
    if not image_rgb.flags.c_contiguous or not image_rgb.flags.writeable:
        # read-only buffers (e.g. from a ROS message) or flipped views: one cheap copy
        image_rgb = np.array(image_rgb, order="C", copy=True)
    return image_rgb


def file_sha256(path: str | os.PathLike) -> str:
    """Return the SHA-256 of a file's bytes (the graph cache's and the bundles' key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """
    Return the cache folder (exported graphs, OpenVINO's compiled models under ``openvino``).

    ``$SLIMSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/slimseg_ros``, else ``~/.cache/slimseg_ros``.
    """
    env = os.environ.get("SLIMSEG_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slimseg_ros"


def openvino_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder of OpenVINO's compiled models under ``cache_dir`` (default: ours)."""
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "openvino"


def prepare_sizes(graphs: Any, prepared: set[tuple[int, int]], height: int,
                  width: int) -> set[tuple[int, int]]:
    """
    Prepare every graph for frames of ``height`` x ``width`` unless that size was seen.

    Returns the sizes seen (a record, not what is compiled: at most 16, then only the new one),
    so a camera's steady size costs one set lookup per frame. Both engines use it.
    """
    key = (int(height), int(width))
    if key in prepared:
        return prepared
    for graph in graphs:
        prepare = getattr(graph, "prepare", None)
        if prepare is not None:
            prepare(*key)
    return {*prepared, key} if len(prepared) < 16 else {key}


def releasable(graphs: Iterable[Any]) -> bool:
    """Whether any of ``graphs`` can hand back its working memory (OpenVINO's can)."""
    return any(getattr(graph, "can_release_memory", False) for graph in graphs)


def release_graphs(graphs: Iterable[Any]) -> int:
    """
    Hand back the working memory of ``graphs`` where their runtime can; return how many did.

    Both engines use it. ONNX Runtime's sessions have no such call and keep theirs.
    """
    released = 0
    for graph in graphs:
        release = getattr(graph, "release_memory", None)
        if release is not None and release():
            released += 1
    return released
