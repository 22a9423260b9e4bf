"""OpenVINO: one compiled frame graph per width, on the CPU, fp32 or bf16."""

from __future__ import annotations

import numpy as np

from . import BackendError

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def cpu_supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 (AVX512-BF16 / AMX)."""
    import openvino as ov
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def version() -> str:
    import openvino as ov
    return ov.__version__


class OpenVINOFrameGraph:
    """A compiled frame graph: ``run(frame)`` maps H x W x 3 uint8 to H x W uint8 class ids."""

    def __init__(self, onnx_bytes: bytes, precision: str = "fp32", threads: int = 0,
                 cache_dir: str | None = None) -> None:
        import openvino as ov
        if precision not in PRECISION_HINTS:
            raise BackendError(f"precision {precision!r} is not available with OpenVINO; "
                               f"choose {' or '.join(PRECISION_HINTS)}")
        if precision == "bf16" and not cpu_supports_bf16():
            raise BackendError("precision 'bf16' needs a CPU with native bf16 (AVX512-BF16 or "
                               "AMX), which this CPU lacks; use fp32")
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
                  "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        model = core.read_model(onnx_bytes)
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.precision = precision

    def run(self, frame: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 frame -> the graph's output without the batch axis."""
        self._request.infer({0: frame[None]})
        return self._request.get_output_tensor(0).data[0].copy()
