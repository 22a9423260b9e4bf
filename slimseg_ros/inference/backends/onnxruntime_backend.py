"""ONNX Runtime: one session per width; CPU, or CUDA / TensorRT with onnxruntime-gpu."""

from __future__ import annotations

import threading

import numpy as np

from . import BackendError

#: whether every CPU session of this process shares one memory arena (None: not tried yet)
_SHARED_ARENA: bool | None = None
_SHARED_ARENA_LOCK = threading.Lock()


def shared_cpu_arena() -> bool:
    """
    Register one CPU memory arena for every session of this process (once); tell if it is there.

    A session otherwise keeps its own arena, grown to its largest runs, for the process's life:
    the shipped model's four widths held 127 MiB after one 360x480 frame each and 223 MiB after
    twenty, one shared arena 50 / 100 MiB, at the same speed and with the same masks, while the
    node runs one frame at a time. False where this ONNX Runtime cannot share one.
    """
    global _SHARED_ARENA
    with _SHARED_ARENA_LOCK:
        if _SHARED_ARENA is None:
            import onnxruntime as ort
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                         ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
                _SHARED_ARENA = True
            except Exception:  # noqa: BLE001 - an older build: each session keeps its own
                _SHARED_ARENA = False
        return _SHARED_ARENA


def providers_for(device_type: str) -> list[str]:
    """
    List the execution providers for ``device_type``, the preferred one first.

    On CUDA this needs the ``onnxruntime-gpu`` build (TensorRT first where it is installed);
    untested on the project's machines, which have no GPU build of ONNX Runtime.
    """
    import onnxruntime as ort
    have = ort.get_available_providers()
    if device_type == "cpu":
        return ["CPUExecutionProvider"]
    wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in have]
    if not wanted:
        raise BackendError(f"backend 'onnxruntime' on {device_type} needs onnxruntime-gpu (the "
                           f"installed build offers {have}); use backend:=torch on CUDA")
    return wanted + ["CPUExecutionProvider"]


class OnnxRuntimeFrameGraph:
    """
    A frame-graph session: ``run(frame)`` maps H x W x 3 uint8 to H x W uint8 class ids.

    ``run_all`` returns every output (the ids and, in a graph with it, the confidence).
    ``onnx_bytes`` is the graph or the path of its ONNX file. A session runs every frame size
    with no compile per size; on the CPU every session draws on the process's one memory arena
    (:func:`shared_cpu_arena`), which grows to the largest frame's buffers.
    """

    def __init__(self, onnx_bytes: bytes | str, precision: str = "fp32", threads: int = 0,
                 device_type: str = "cpu") -> None:
        import onnxruntime as ort
        if precision != "fp32":
            raise BackendError(f"precision {precision!r} is not available with ONNX Runtime "
                               f"here; use fp32 (or backend:=openvino for bf16)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if device_type == "cpu" and shared_cpu_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
        self._session = ort.InferenceSession(onnx_bytes, opts,
                                             providers=providers_for(device_type))
        self.precision = precision

    def run(self, frame: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 frame -> the graph's (first) output without the batch axis."""
        return self.run_all(frame)[0]

    def run_all(self, frame: np.ndarray) -> list[np.ndarray]:
        """H x W x 3 uint8 frame -> every output of the graph, without the batch axis."""
        return [out[0] for out in self._session.run(None, {"frame": frame[None]})]
