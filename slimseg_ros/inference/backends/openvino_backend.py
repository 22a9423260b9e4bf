"""
OpenVINO: one frame graph per width, compiled once at the network input size, fp32 or bf16.

A frame graph whose network has a fixed input size (every exported model with ``input_size``)
is compiled once, static, at that size; a frame of another size is resized to it with OpenCV
(bilinear, as the graph's own resize) and the masks are resized back with the graph's nearest
("pixel centres") indices. A new frame size then costs no compile and no memory: compiling a
static graph per size stalled the first frame of a size by 0.4-0.7 s per width, and keeping
the compiled sizes cost 25-50 MiB each, while the static graph at the frame size was no faster
than the resize outside it (``python -m slimseg_ros.tools.size_bench``; docs/lean_runtime.md).
Graphs without a fixed input size (a network run at the frame's size) or with float outputs
(the logits graph of the checks) are compiled per frame size, the last :data:`MAX_SIZES` kept.

Compiled models are cached on disk (OpenVINO's ``CACHE_DIR``) where the caller names a folder:
a warm start imports them instead of compiling. A folder that cannot be written is no cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from . import BackendError

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
MAX_SIZES = 4  # frame sizes kept compiled per width where the graph is compiled per size


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def shared_core() -> Any:
    """
    Return the process's one ``openvino.Core``, created on first use and kept until exit.

    Each Core's CPU plugin installs an alternate signal stack on the thread that creates it and,
    when destroyed, puts back the one it found. Cores destroyed out of creation order leave the
    thread pointing at a stack already unmapped, and the next signal the thread handles (Ctrl-C,
    the SIGTERM of ``ros2 launch`` or a scheduler) kills the process with SIGSEGV. One Core for
    the whole process keeps that stack valid.
    """
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino as ov
            _CORE = ov.Core()
        return _CORE


def cpu_supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 (AVX512-BF16 / AMX)."""
    return "BF16" in shared_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def bypass_identity_resizes(model: Any) -> int:
    """
    Take out every Interpolate whose static output shape equals its input's; return how many.

    The frame graph always resizes the frame to the network's input size (frame sizes are
    dynamic), and a camera that already sends that size pays for a resize that copies each
    pixel: about a fifth of the whole graph's time at width 0.25. With equal sizes a bilinear
    or nearest resize samples exactly at the pixel centres, so taking it out changes no output.
    """
    removed = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Interpolate":
            continue
        src, dst = op.input(0).get_partial_shape(), op.output(0).get_partial_shape()
        if src.is_static and dst.is_static and src == dst:
            op.output(0).replace(op.input_value(0))
            removed += 1
    if removed:
        model.validate_nodes_and_infer_types()
    return removed


def network_input_size(model: Any) -> tuple[int, int] | None:
    """
    Return the fixed size a frame graph resizes every frame to, or None where it has none.

    That is the first Interpolate of the graph when its output is static while the frame's
    size is not: the frame resize, put in by the exporter for a network with an input size.
    """
    if model.inputs[0].get_partial_shape().is_static:
        return None
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Interpolate":
            out = op.output(0).get_partial_shape()
            if out.is_static and len(out) == 4:
                return int(out[2].get_length()), int(out[3].get_length())
            return None
    return None


def nearest_indices(out_size: int, in_size: int) -> np.ndarray:
    """Source index of each output pixel of a "nearest-exact" resize, as the graph computes it."""
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
    return np.minimum(idx.astype(np.int64), in_size - 1)


class OpenVINOFrameGraph:
    """
    A compiled frame graph: ``run(frame)`` maps H x W x 3 uint8 to H x W uint8 class ids.

    ``run_all`` returns every output (the ids and, in a graph with it, the confidence).
    ``source`` is the graph's ONNX bytes or the path of an ONNX file or OpenVINO IR.
    """

    def __init__(self, source: bytes | str | Path, precision: str = "fp32", threads: int = 0,
                 cache_dir: str | Path | None = None) -> None:
        if precision not in PRECISION_HINTS:
            raise BackendError(f"precision {precision!r} is not available with OpenVINO; "
                               f"choose {' or '.join(PRECISION_HINTS)}")
        if precision == "bf16" and not cpu_supports_bf16():
            raise BackendError("precision 'bf16' needs a CPU with native bf16 (AVX512-BF16 or "
                               "AMX), which this CPU lacks; use fp32")
        self._core = shared_core()
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                                        "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._cache_dir = str(cache_dir) if cache_dir else None
        self._source = str(source) if isinstance(source, Path) else source
        model = self._core.read_model(self._source)
        import openvino as ov
        frame_sized = all(out.get_element_type() == ov.Type.u8 for out in model.outputs)
        #: the network input size every frame is resized to (None: compiled per frame size)
        self.input_size = network_input_size(model) if frame_sized else None
        # kept for the compiles per frame size; with an input size only until its one compile
        # (operation_times reads the source again)
        self._model: Any = model
        self._requests: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.precision = precision
        #: whether a run has allocated working memory that no release has handed back since
        self.holds_memory = False
        #: whether this OpenVINO can hand it back (``CompiledModel.release_memory``; not in
        #: older releases)
        self.can_release_memory = hasattr(ov.CompiledModel, "release_memory")

    def _compile(self, model: Any) -> Any:
        """Compile ``model`` with the cache where there is one; without it where it fails."""
        if self._cache_dir:
            try:
                Path(self._cache_dir).mkdir(parents=True, exist_ok=True)
                return self._core.compile_model(model, "CPU",
                                                {**self._config, "CACHE_DIR": self._cache_dir})
            except (OSError, RuntimeError):
                self._cache_dir = None  # not writable (read-only, a file in the way): no cache
        return self._core.compile_model(model, "CPU", self._config)

    def compiled_sizes(self) -> list[tuple[int, int]]:
        """Return the frame sizes compiled now, the most recently used last."""
        with self._lock:
            return list(self._requests)

    def prepare(self, height: int, width: int) -> None:
        """
        Compile what frames of ``height`` x ``width`` run on: once, at the input size, if any.

        Without an input size, static shapes per frame size: they run much faster than
        dynamic ones in OpenVINO's CPU plugin.
        """
        if self.input_size is not None:
            height, width = self.input_size
        self._request_for(height, width)

    def _request_for(self, height: int, width: int) -> Any:
        key = (int(height), int(width))
        with self._lock:
            request = self._requests.get(key)
            if request is not None:
                self._requests.move_to_end(key)
                return request
            if self._model is None:
                model = self._core.read_model(self._source)
            elif self.input_size is None:
                model = self._model.clone()
            else:  # the one compile: the read model is not needed again
                model, self._model = self._model, None
            model.reshape({model.inputs[0]: [1, key[0], key[1], 3]})
            bypass_identity_resizes(model)
            request = self._compile(model).create_infer_request()
            self._requests[key] = request
            while len(self._requests) > MAX_SIZES:
                self._requests.popitem(last=False)
            return request

    def release_memory(self) -> bool:
        """
        Hand back the working memory (intermediate tensors) of every compiled size; tell if held.

        The weights and compiled kernels stay: the next run allocates the tensors again (a few
        milliseconds of page faults at 360x480), compiles nothing and gives the same output.
        A frame graph holds them for its whole life otherwise, 2-20 MiB per width and size.
        """
        if not self.can_release_memory:
            return False
        with self._lock, self._run_lock:
            for request in self._requests.values():
                request.get_compiled_model().release_memory()
            held, self.holds_memory = self.holds_memory, False
            return held

    def run(self, frame: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 frame -> the graph's (first) output without the batch axis."""
        return self.run_all(frame)[0]

    def run_all(self, frame: np.ndarray) -> list[np.ndarray]:
        """H x W x 3 uint8 frame -> every output of the graph, without the batch axis."""
        height, width = frame.shape[:2]
        if self.input_size is None or (height, width) == self.input_size:
            return self._infer(self._request_for(height, width), frame)
        import cv2
        in_h, in_w = self.input_size
        small = cv2.resize(frame, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        outputs = self._infer(self._request_for(in_h, in_w), small)
        rows, cols = nearest_indices(height, in_h), nearest_indices(width, in_w)
        return [np.take(np.take(out, rows, 0), cols, 1) for out in outputs]

    def _infer(self, request: Any, frame: np.ndarray) -> list[np.ndarray]:
        with self._run_lock:  # one request per size: one frame at a time through it
            request.infer({0: frame[None]})
            self.holds_memory = True
            return [request.get_output_tensor(i).data[0].copy()
                    for i in range(len(request.model_outputs))]

    def operation_times(self, frame: np.ndarray) -> list[tuple[str, float]]:
        """
        Run ``frame`` once and return OpenVINO's ``(operation name, ms)`` per executed operation.

        The first call turns the plugin's per-operation counters on, which needs a fresh compile:
        the sizes compiled so far are dropped and compiled again on use. A frame of another size
        than the input size is timed as :meth:`run_all` runs it: the resizes outside the graph
        are the first and the last entries.
        """
        with self._lock:
            if not self._config.get("PERF_COUNT"):
                self._config["PERF_COUNT"] = True
                self._requests.clear()
        height, width = frame.shape[:2]
        outside = self.input_size is not None and (height, width) != self.input_size
        before: list[tuple[str, float]] = []
        if outside:
            import cv2
            started = time.perf_counter()
            frame = cv2.resize(frame, self.input_size[::-1], interpolation=cv2.INTER_LINEAR)
            before.append(("frame resize (OpenCV)", (time.perf_counter() - started) * 1e3))
        request = self._request_for(frame.shape[0], frame.shape[1])
        with self._run_lock:
            request.infer({0: frame[None]})
            times = [(info.node_name, info.real_time.total_seconds() * 1e3)
                     for info in request.profiling_info]
            ids = request.get_output_tensor(0).data[0]
            if outside:
                started = time.perf_counter()
                np.take(np.take(ids, nearest_indices(height, ids.shape[0]), 0),
                        nearest_indices(width, ids.shape[1]), 1)
                times.append(("mask resize (NumPy)", (time.perf_counter() - started) * 1e3))
        return before + times
