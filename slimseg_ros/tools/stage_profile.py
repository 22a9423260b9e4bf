"""
Where a frame's time goes: the frame path split into its stages, per width, torch and OpenVINO.

``python -m slimseg_ros.tools.stage_profile --checkpoint models/default.pt --size 360x480``
times, for every width, the stages of ``SegmentationEngine.infer`` in torch eager (frame in:
layout, resize, normalisation; the network, its logits upsampled to the network input size
included; argmax and the nearest resize of the class ids to the frame size; the copy out) and
reads OpenVINO's own per-operation counters for the same stages of its compiled frame graph (any
runtime whose record in :data:`~slimseg_ros.inference.backends.BACKENDS` says
``operation_times``). Each backend runs in its own process (two runtimes' thread pools in one
process distort both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.backends import BACKENDS, is_graph_runtime
from ..widths import Width
from .common import (json_worker_main, markdown_header, markdown_row, run_json_worker,
                     size_arg)

# torch's network includes its logits upsample (one module); OpenVINO's counters have no copy out
STAGES = ("frame in", "network", "logits upsample", "argmax + resize to frame", "copy out")
WORKER_FLAG = "--stage-worker"
#: the backends whose stages can be told apart: torch eager, and the graph runtimes whose
#: runners report per-operation times
PROFILED = tuple(name for name, b in BACKENDS.items()
                 if not b.is_graph_runtime or b.operation_times)


def openvino_stage(name: str, seen_network: bool) -> str:
    """Which stage an operation of the exported frame graph belongs to, from its name."""
    if name.startswith(("/upsample/", "/net/Resize", "/upsampled_argmax/Pad",
                        "/upsampled_argmax/Conv")):
        return "logits upsample"  # the per-class phase convolutions with their edge pad (or
        # the deconvolution of the logits graph, or the network's own last resize)
    if name.startswith("/net/"):
        return "network"
    return "argmax + resize to frame" if seen_network else "frame in"


def _torch_stages(engine: Any, frame: np.ndarray, width: Width, iters: int) -> dict[str, float]:
    import torch

    from ..inference.engine import frames_to_batch, postprocess

    net = engine.network(width)
    samples: dict[str, list[float]] = {s: [] for s in STAGES if s != "logits upsample"}
    with torch.inference_mode():
        for i in range(iters + 2):
            t0 = time.perf_counter()
            x = engine._preprocess(frames_to_batch(frame, engine.device))
            t1 = time.perf_counter()
            logits = net(x)
            t2 = time.perf_counter()
            mask = postprocess(logits, frame.shape[:2])
            t3 = time.perf_counter()
            mask[0].cpu().numpy()
            t4 = time.perf_counter()
            if i >= 2:  # warm-up rounds left out
                for stage, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    samples[stage].append(seconds * 1e3)
    return {stage: float(np.median(v)) for stage, v in samples.items()}


def _graph_stages(engine: Any, frame: np.ndarray, width: Width,
                  iters: int) -> dict[str, float]:
    graph = engine._graphs[engine.member(width).index]
    graph.operation_times(frame)  # compiles this size with the counters on
    samples: dict[str, list[float]] = {s: [] for s in STAGES if s != "copy out"}
    for i in range(iters + 2):
        times = graph.operation_times(frame)
        if i < 2:
            continue
        totals = dict.fromkeys(samples, 0.0)
        seen_network = False
        for name, ms in times:
            stage = openvino_stage(name, seen_network)
            seen_network = seen_network or stage != "frame in"
            totals[stage] += ms
        for stage, ms in totals.items():
            samples[stage].append(ms)
    return {stage: float(np.median(v)) for stage, v in samples.items()}


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One backend's stage times per width, in this process."""
    import torch

    from ..inference.engine import SegmentationEngine

    torch.set_num_threads(args["threads"])
    h, w = args["size"]
    engine = SegmentationEngine.from_checkpoint(args["checkpoint"], device="cpu",
                                                backend=args["backend"],
                                                precision=args["precision"], input_size=(h, w),
                                                ladder=False)
    frame = (load_frame(args["image"], (h, w)) if args.get("image") else
             np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    stages = _graph_stages if BACKENDS[engine.backend].operation_times else _torch_stages
    return {"backend": engine.backend, "precision": engine.precision,
            "widths": {f"{wd:g}": stages(engine, frame, wd, args["iters"])
                       for wd in engine.widths}}


def load_frame(path: str, size: tuple[int, int]) -> np.ndarray:
    """Read an image as RGB at ``size`` (H, W): the frame every stage is timed on."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read an image from {path}")
    if bgr.shape[:2] != tuple(size):
        bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def run_worker(backend: str, checkpoint: str, size: tuple[int, int], threads: int, iters: int,
               precision: str, image: str | None = None) -> dict[str, Any]:
    """Run :func:`worker` for ``backend`` in a fresh interpreter; return its result."""
    payload = {"backend": backend, "checkpoint": checkpoint, "size": list(size),
               "threads": threads, "iters": iters, "precision": precision, "image": image}
    return run_json_worker("slimseg_ros.tools.stage_profile", WORKER_FLAG, payload,
                           env={"OMP_NUM_THREADS": str(threads)}, what=backend)


def format_stages(results: list[dict[str, Any]]) -> str:
    """Markdown: per width, each backend's stage times (ms) and their share of its total."""
    names = [f"{r['backend']} {r['precision']}" for r in results]
    lines = [markdown_header(["width", "stage", *(f"{n} ms (share)" for n in names)],
                             "rl" + "r" * len(names))]
    for width in results[0]["widths"]:
        for stage in STAGES:
            cells = []
            for r in results:
                times = r["widths"][width]
                if stage not in times:
                    cells.append("-")
                    continue
                share = 100 * times[stage] / sum(times.values())
                cells.append(f"{times[stage]:.2f} ({share:.0f}%)")
            lines.append(markdown_row([width, stage, *cells]))
        totals = [f"{sum(r['widths'][width].values()):.2f}" for r in results]
        lines.append(markdown_row([width, "**total**", *totals]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m slimseg_ros.tools.stage_profile",
                                description=__doc__.strip().splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--size", type=size_arg, default=(360, 480), metavar="HxW")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--backends", nargs="+", default=list(PROFILED), choices=PROFILED)
    p.add_argument("--precision", default="fp32", help="OpenVINO's precision (torch: fp32)")
    p.add_argument("--image", help="time the stages on this picture (resized to --size) "
                                   "instead of a noise frame: OpenVINO's counters read a noise "
                                   "frame's logits upsample 2-3x slower than a camera frame's")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        print(f"stage_profile: no checkpoint at {args.checkpoint}", file=sys.stderr)
        return 2
    if args.image and not Path(args.image).is_file():
        print(f"stage_profile: no image at {args.image}", file=sys.stderr)
        return 2
    try:
        results = [run_worker(b, args.checkpoint, args.size, args.threads, args.iters,
                              args.precision if is_graph_runtime(b) else "fp32", args.image)
                   for b in args.backends]
    except RuntimeError as exc:
        print(f"stage_profile: {exc}", file=sys.stderr)
        return 2
    print(format_stages(results))
    if args.json:
        out = {"size": list(args.size), "threads": args.threads, "iters": args.iters,
               "image": Path(args.image).name if args.image else None, "results": results}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    answered = json_worker_main(sys.argv[1:], WORKER_FLAG, worker)
    sys.exit(main() if answered is None else answered)
