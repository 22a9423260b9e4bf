"""OpenVINO: one frame graph per width, compiled per frame size on first use, fp32 or bf16."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from . import BackendError

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
MAX_SIZES = 4  # frame sizes kept compiled per width (a camera's size rarely changes)


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


class OpenVINOFrameGraph:
    """
    A compiled frame graph: ``run(frame)`` maps H x W x 3 uint8 to H x W uint8 class ids.

    ``run_all`` returns every output (the ids and, in a graph with it, the confidence).
    """

    def __init__(self, onnx_bytes: bytes, precision: str = "fp32", threads: int = 0,
                 cache_dir: str | None = None) -> None:
        if precision not in PRECISION_HINTS:
            raise BackendError(f"precision {precision!r} is not available with OpenVINO; "
                               f"choose {' or '.join(PRECISION_HINTS)}")
        if precision == "bf16" and not cpu_supports_bf16():
            raise BackendError("precision 'bf16' needs a CPU with native bf16 (AVX512-BF16 or "
                               "AMX), which this CPU lacks; use fp32")
        self._core = shared_core()
        self._config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                        "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir:  # per compiled model: the shared Core serves other caches too
            self._config["CACHE_DIR"] = str(cache_dir)
        self._model = self._core.read_model(onnx_bytes)
        self._requests: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.precision = precision

    def prepare(self, height: int, width: int) -> None:
        """
        Compile the graph for frames of ``height`` x ``width``; the last few sizes stay compiled.

        Static shapes run much faster than dynamic ones in OpenVINO's CPU plugin.
        """
        self._request_for(height, width)

    def _request_for(self, height: int, width: int) -> Any:
        key = (int(height), int(width))
        with self._lock:
            request = self._requests.get(key)
            if request is not None:
                self._requests.move_to_end(key)
                return request
            model = self._model.clone()
            model.reshape({model.inputs[0]: [1, key[0], key[1], 3]})
            bypass_identity_resizes(model)
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            self._requests[key] = request
            while len(self._requests) > MAX_SIZES:
                self._requests.popitem(last=False)
            return request

    def run(self, frame: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 frame -> the graph's (first) output without the batch axis."""
        return self.run_all(frame)[0]

    def run_all(self, frame: np.ndarray) -> list[np.ndarray]:
        """H x W x 3 uint8 frame -> every output of the graph, without the batch axis."""
        request = self._request_for(frame.shape[0], frame.shape[1])
        request.infer({0: frame[None]})
        return [request.get_output_tensor(i).data[0].copy()
                for i in range(len(request.model_outputs))]

    def operation_times(self, frame: np.ndarray) -> list[tuple[str, float]]:
        """
        Run ``frame`` once and return OpenVINO's ``(operation name, ms)`` per executed operation.

        The first call turns the plugin's per-operation counters on, which needs a fresh compile:
        the sizes compiled so far are dropped and compiled again on use.
        """
        with self._lock:
            if not self._config.get("PERF_COUNT"):
                self._config["PERF_COUNT"] = True
                self._requests.clear()
        request = self._request_for(frame.shape[0], frame.shape[1])
        request.infer({0: frame[None]})
        return [(info.node_name, info.real_time.total_seconds() * 1e3)
                for info in request.profiling_info]
