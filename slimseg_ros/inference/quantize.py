"""
INT8 post-training quantization of one width's frame graph with NNCF (no torch needed).

A frame graph (:mod:`.graph_format`) maps a uint8 ``1 x H x W x 3`` frame to uint8 class ids:
the frame's normalisation and resize to the network input size, the network, then the logits
upsample, the argmax and (where asked) the confidence. Only the network is quantized: the
quantizers NNCF would put on the frame's normalisation or resize, and on the per-class
upsample convolutions, comparisons and exponentials after the logits, cost accuracy (the argmax
decides between logits a few hundredths apart) and buy no speed (a few elementwise passes).
Both ends are found from the graph's structure, not its op names, so one rule serves every
width and every export: the head is everything between the frame and the first convolution,
the tail everything after the last convolution that every path to the outputs goes through
(the classifier; the per-class upsample convolutions each sit on one class's path only).

Calibration frames come from a folder of images (the model's training images or any frames of
the user's camera), see :func:`load_calibration_frames` and :func:`split_frames`. Models without
labels are checked by :func:`mask_agreement`: the fraction of mask pixels that int8 and fp32
agree on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: file suffixes read as calibration images (whatever else cv2 reads is tried too)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: a few hundred frames: NNCF's own default subset size, enough for stable activation ranges
DEFAULT_FRAMES = 300
#: ops of a graph's shape arithmetic (dynamic frame size) and its constants: never data
_SHAPE_SOURCES = {"ShapeOf"}
_CONVOLUTIONS = {"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                 "GroupConvolutionBackpropData", "MatMul"}


@dataclass
class CalibrationFrames:
    """Frames read from a folder, as the graph takes them (H x W x 3 uint8 RGB)."""

    folder: Path
    frames: list[np.ndarray]
    files: list[Path]
    resized: int = 0  #: how many frames were resized to the graph's frame size
    unreadable: list[Path] = field(default_factory=list)  #: files cv2 could not read

    def note(self) -> str:
        """Return one line saying what was read, for logs and the bundle's record."""
        text = f"{len(self.frames)} frames from {self.folder}"
        if self.resized:
            text += f" ({self.resized} resized to the graph's frame size)"
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable files skipped"
        return text


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Return the image files under ``folder``, recursively, sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"calibration folder {root} does not exist or is not a folder")
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def evenly_spaced(items: Sequence[Any], count: int) -> list[Any]:
    """Return ``count`` items spread over ``items`` (all when fewer): a whole video's variety."""
    if count <= 0 or len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def load_calibration_frames(folder: str | os.PathLike, size: tuple[int, int] | None = None,
                            limit: int = DEFAULT_FRAMES) -> CalibrationFrames:
    """
    Read up to ``limit`` frames from ``folder`` (recursively), spread over its sorted files.

    Each is converted to RGB and, where ``size`` (height, width) is given and differs, resized
    to it (bilinear, as the node resizes camera frames) so that all frames share one shape.
    An empty folder, or one with no image cv2 can read, raises ValueError.
    """
    import cv2
    root = Path(folder)
    files = evenly_spaced(image_files(root), limit)
    if not files:
        raise ValueError(f"calibration folder {root} holds no images "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    result = CalibrationFrames(root, [], [])
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            result.unreadable.append(path)
            continue
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if size is not None and image.shape[:2] != tuple(size):
            image = cv2.resize(image, (int(size[1]), int(size[0])),
                               interpolation=cv2.INTER_LINEAR)
            result.resized += 1
        result.frames.append(np.ascontiguousarray(image))
        result.files.append(path)
    if not result.frames:
        raise ValueError(f"calibration folder {root} holds no image that OpenCV can read "
                         f"({len(result.unreadable)} files tried)")
    return result


def split_frames(frames: Sequence[Any], held_out: float = 0.2) -> tuple[list[Any], list[Any]]:
    """
    Split ``frames`` deterministically into (calibration, held-out) parts.

    Every ``round(1 / held_out)``-th frame is held out, so both parts span the whole folder
    (a video's frames are sorted by time); the held-out part is what accuracy-controlled
    quantization may check against, never the test set.
    """
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must be in [0, 1), got {held_out}")
    if held_out == 0.0 or len(frames) < 2:
        return list(frames), []
    step = max(2, int(round(1.0 / held_out)))
    calibration = [f for i, f in enumerate(frames) if i % step != step - 1]
    kept = [f for i, f in enumerate(frames) if i % step == step - 1]
    return calibration, kept


def _data_ops(model: Any) -> list[Any]:
    """Return the model's ops in topological order, less constants and shape arithmetic."""
    static: set[str] = set()  # constants, what folds into one, and the dynamic-shape arithmetic
    data = []
    for op in model.get_ordered_ops():
        kind, name = op.get_type_name(), op.get_friendly_name()
        inputs = [v.get_node().get_friendly_name() for v in op.input_values()]
        if kind != "Parameter" and (kind == "Constant" or kind in _SHAPE_SOURCES
                                    or all(n in static for n in inputs)):
            static.add(name)
            continue
        data.append(op)
    return data


def _consumers(op: Any) -> list[Any]:
    return [t.get_node() for out in op.outputs() for t in out.get_target_inputs()]


def cut_ops(model: Any) -> list[Any]:
    """
    Return the data ops that every path from the frame to the outputs goes through, in order.

    In topological order an op is such a cut when no data edge jumps over it.
    """
    ops = _data_ops(model)
    position = {op.get_friendly_name(): i for i, op in enumerate(ops)}
    spanned = np.zeros(len(ops) + 1, dtype=np.int64)
    for i, op in enumerate(ops):
        for consumer in _consumers(op):
            j = position.get(consumer.get_friendly_name())
            if j is not None and j > i + 1:
                spanned[i + 1] += 1
                spanned[j] -= 1
    covered = np.cumsum(spanned)[:len(ops)]
    return [op for i, op in enumerate(ops) if covered[i] == 0]


@dataclass
class FloatEnds:
    """The op names that stay in float: the frame's pre-processing and the post-processing."""

    head: list[str]  #: frame -> network input (cast, normalisation, layout, resize)
    tail: list[str]  #: logits -> outputs (upsample, argmax, confidence, mask resize)
    head_inputs: list[str]
    head_outputs: list[str]
    tail_inputs: list[str]
    tail_outputs: list[str]
    logits: str  #: the op whose output is the logits (the last quantized op)

    def ignored_scope(self) -> Any:
        """Return the NNCF ``IgnoredScope`` of both ends, as subgraph boundaries."""
        import nncf
        subgraphs = [nncf.Subgraph(inputs=self.tail_inputs, outputs=self.tail_outputs)]
        if self.head_inputs and self.head_outputs:
            subgraphs.insert(0, nncf.Subgraph(inputs=self.head_inputs,
                                              outputs=self.head_outputs))
        return nncf.IgnoredScope(subgraphs=subgraphs, validate=False)


def float_ends(model: Any) -> FloatEnds:
    """
    Find a frame graph's pre- and post-processing from its structure (any width, any export).

    The head: the ops between the frame (Parameter) and the first convolution. The logits: the
    last convolution that is a cut of the graph (see :func:`cut_ops`), or the bias Add right
    after it; the tail: every data op after it up to the outputs.
    """
    ops = _data_ops(model)
    order = {op.get_friendly_name(): i for i, op in enumerate(ops)}
    first_conv = next((i for i, op in enumerate(ops) if op.get_type_name() in _CONVOLUTIONS),
                      None)
    if first_conv is None:
        raise ValueError("the graph holds no convolution: not a segmentation frame graph")
    conv = ops[first_conv]
    head = [op for op in ops[:first_conv]
            if op.get_type_name() != "Parameter" and _reaches(op, conv, order)]
    head_names = {op.get_friendly_name() for op in head}
    head_inputs = [op.get_friendly_name() for op in head
                   if not any(v.get_node().get_friendly_name() in head_names
                              for v in op.input_values())]
    head_outputs = [v.get_node().get_friendly_name() for v in conv.input_values()
                    if v.get_node().get_friendly_name() in head_names]
    cuts = [op for op in cut_ops(model) if op.get_type_name() in _CONVOLUTIONS]
    if not cuts:
        raise ValueError("found no convolution that every path to the outputs goes through "
                         "(the classifier): is this a frame graph?")
    logits = cuts[-1]
    after = [c for c in _consumers(logits) if c.get_friendly_name() in order]
    if (len(after) == 1 and after[0].get_type_name() == "Add" and sum(
            v.get_node().get_friendly_name() in order for v in after[0].input_values()) == 1):
        logits = after[0]  # the classifier's bias (its other input: a constant)
    start = order[logits.get_friendly_name()]
    tail = [op for op in ops[start + 1:] if op.get_type_name() not in ("Result", "Parameter")]
    tail_names = {op.get_friendly_name() for op in tail}
    tail_inputs = [c.get_friendly_name() for c in _consumers(logits)
                   if c.get_friendly_name() in tail_names]
    tail_outputs = sorted({r.input_value(0).get_node().get_friendly_name()
                           for r in model.get_results()}
                          & tail_names)
    return FloatEnds([op.get_friendly_name() for op in head],
                     [op.get_friendly_name() for op in tail], head_inputs, head_outputs,
                     tail_inputs, tail_outputs, logits.get_friendly_name())


def _reaches(op: Any, target: Any, order: dict[str, int]) -> bool:
    """Whether a data path leads from ``op`` to ``target`` (searching forward in order)."""
    goal = target.get_friendly_name()
    limit = order[goal]
    stack, seen = [op], set()
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        if name == goal:
            return True
        if name in seen or order.get(name, limit + 1) > limit:
            continue
        seen.add(name)
        stack.extend(_consumers(node))
    return False


def _frame_batches(frames: Iterable[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(f[None]) for f in frames]


def quantize_frame_graph(model: Any, frames: Sequence[np.ndarray], *,
                         fast_bias_correction: bool = True, preset: str = "performance",
                         extra_ignored_types: Sequence[str] = (),
                         extra_ignored_names: Sequence[str] = (),
                         extra_ignored_patterns: Sequence[str] = (),
                         held_out: Sequence[np.ndarray] = (),
                         validation_fn: Callable[[Any, Iterable[Any]], float] | None = None,
                         max_drop: float = 0.01, subset_size: int | None = None) -> Any:
    """
    Return an INT8 copy of ``model`` (an ``openvino.Model`` frame graph) calibrated on ``frames``.

    Weights are quantized per output channel, symmetric 8 bit (NNCF's default for the CPU);
    activations per tensor, with the CPU's ``performance`` preset (symmetric) or ``mixed``
    (asymmetric activations). Fast bias correction (the default) shifts each layer's bias by the
    mean error int8 adds, from one pass; the full one (``fast_bias_correction=False``) measures
    it layer by layer and takes minutes. SmoothQuant is a transformer-only algorithm (it moves
    activation outliers of MatMuls into weights) and stays off for this CNN. The frame's
    normalisation and resize and everything after the logits stay in float (:func:`float_ends`);
    ``extra_ignored_types`` / ``extra_ignored_names`` / ``extra_ignored_patterns`` (regular
    expressions on op names, the same at every width) keep more ops in float.

    With ``held_out`` frames and ``validation_fn(compiled_model, frames) -> metric`` it runs
    NNCF's accuracy-controlled quantization instead, which returns layers to float, most
    harmful first, until the metric drops by at most ``max_drop``. The input model is unchanged.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    if not frames:
        raise ValueError("quantize_frame_graph needs at least one calibration frame")
    ends = float_ends(model)
    scope = ends.ignored_scope()
    scope.types.extend(extra_ignored_types)
    scope.names.extend(extra_ignored_names)
    names = [op.get_friendly_name() for op in model.get_ordered_ops()]
    for pattern in extra_ignored_patterns:  # searched anywhere in a name, as grep would
        if not any(re.search(pattern, name) for name in names):
            raise ValueError(f"the pattern {pattern!r} of ops to keep in float matches no op "
                             f"of this graph")
        scope.patterns.append(f".*(?:{pattern})")
    presets = {"performance": nncf.QuantizationPreset.PERFORMANCE,
               "mixed": nncf.QuantizationPreset.MIXED}
    if preset not in presets:
        raise ValueError(f"preset must be one of {sorted(presets)}, got {preset!r}")
    calibration = nncf.Dataset(_frame_batches(frames))
    common = dict(preset=presets[preset], target_device=nncf.TargetDevice.CPU,
                  subset_size=subset_size or len(frames),
                  fast_bias_correction=fast_bias_correction, model_type=None,
                  ignored_scope=scope)
    advanced = AdvancedQuantizationParameters()
    source = model.clone()
    if held_out and validation_fn is not None:
        return nncf.quantize_with_accuracy_control(
            source, calibration, nncf.Dataset(_frame_batches(held_out)), _metric(validation_fn),
            max_drop=max_drop, advanced_quantization_parameters=advanced, **common)
    return nncf.quantize(source, calibration, advanced_parameters=advanced, **common)


def _metric(fn: Callable[[Any, Iterable[Any]], float]
            ) -> Callable[[Any, Iterable[Any]], tuple[float, None]]:
    """Adapt ``fn(compiled, frames) -> metric`` to NNCF's ``(metric, per-sample values)``."""
    def validate(compiled: Any, data: Iterable[Any]) -> tuple[float, None]:
        return float(fn(compiled, data)), None
    return validate


def fake_quantize_inputs(model: Any, names: Iterable[str]) -> list[str]:
    """Return the ops among ``names`` with a FakeQuantize among their direct inputs."""
    wanted = set(names)
    hits = []
    for op in model.get_ordered_ops():
        if op.get_friendly_name() not in wanted:
            continue
        if any(_through_converts(v.get_node()).get_type_name() == "FakeQuantize"
               for v in op.input_values()):
            hits.append(op.get_friendly_name())
    return hits


def _through_converts(node: Any) -> Any:
    while node.get_type_name() == "Convert" and node.get_input_size() == 1:
        node = node.input_value(0).get_node()
    return node


def mask_agreement(reference: np.ndarray | Sequence[np.ndarray],
                   other: np.ndarray | Sequence[np.ndarray]) -> float:
    """
    Return the fraction of mask pixels on which two sets of class-id masks agree (0-1).

    The check for a model without labels: int8 against fp32 masks of the same frames.
    """
    ref = [np.asarray(m) for m in (reference if isinstance(reference, (list, tuple))
                                   else [reference])]
    oth = [np.asarray(m) for m in (other if isinstance(other, (list, tuple)) else [other])]
    if len(ref) != len(oth) or not ref:
        raise ValueError(f"mask_agreement needs as many masks on both sides, got {len(ref)} "
                         f"and {len(oth)}")
    equal = total = 0
    for a, b in zip(ref, oth):
        if a.shape != b.shape:
            raise ValueError(f"mask shapes differ: {a.shape} and {b.shape}")
        equal += int(np.count_nonzero(a == b))
        total += a.size
    return equal / total if total else 1.0


def count_fake_quantize(model: Any) -> int:
    """Return how many FakeQuantize ops ``model`` holds (0: nothing was quantized)."""
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())
