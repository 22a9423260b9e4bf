"""
New frame sizes in OpenVINO: first-frame latency, steady latency and memory, per strategy.

    python -m slimseg_ros.tools.size_bench [--bundle DIR] [--threads 2] [--sizes 40]
        [--seed 0] [--steady 480x640] [--images N] [--json out.json]

The frame graph's network part has a fixed input size; only the frame size varies. Each
strategy runs, per width (the narrowest and the widest), in a fresh process of its own:

* ``static``: a static-shape graph compiled per frame size on first use, the last 4 kept (the
  backend before this tool);
* ``dynamic``: one graph with input shape ``[1, ?, ?, 3]``, compiled once;
* ``resize``: one static graph at the network input size; other frames resized to it with
  OpenCV (bilinear) and the mask resized back (nearest, pixel centres);
* ``backend``: what the OpenVINO backend's ``OpenVINOFrameGraph`` does now (the ``resize``
  strategy, since this tool chose it; no compiled-model cache here).

For each: seconds to build (read and compile what it compiles up front), the first frame of
each of ``--sizes`` random sizes (64x64 to 720x1280, seeded) one after the other (p50, max),
the process's resident memory after them, and then the steady latency (p50 of ``--iters``
frames, after a few) at ``--steady``. Then the masks of ``resize`` against ``static`` on real
CamVid test images (synthetic frames where CamVid is absent) resized to a few sizes: the share
of equal pixels, and the steady latency of ``static`` and ``resize`` timed in turn, frame by
frame, in one process (a fair comparison where another process shares the CPU). Nothing here
passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..resources import default_bundle
from .common import (cpu_name, format_size, json_worker_main, markdown_table, run_json_worker,
                     size_arg)

WORKER_FLAG = "--size-bench-worker"
STRATEGIES = ("static", "dynamic", "resize", "backend")
AGREEMENT_SIZES = ((480, 640), (720, 960), (240, 320), (720, 1280))
WARM_FRAMES = 5  # frames at the steady size before timing it


def random_sizes(count: int, seed: int) -> list[tuple[int, int]]:
    """Return ``count`` distinct sizes from 64x64 to 720x1280, the same for the same seed."""
    rng = np.random.default_rng(seed)
    sizes: list[tuple[int, int]] = []
    while len(sizes) < count:
        size = (int(rng.integers(64, 721)), int(rng.integers(64, 1281)))
        if size not in sizes:
            sizes.append(size)
    return sizes


def rss_mib() -> float:
    """Return this process's resident memory in MiB."""
    import psutil
    return psutil.Process().memory_info().rss / 2**20


class Static:
    """A static-shape graph per frame size, compiled on first use; the last ``keep`` kept."""

    def __init__(self, path: Path, config: dict[str, Any], keep: int = 4) -> None:
        from ..inference.backends.openvino_backend import shared_core
        self.core, self.config, self.keep = shared_core(), config, keep
        self.model = self.core.read_model(str(path))
        self.requests: dict[tuple[int, int], Any] = {}

    def run(self, frame: np.ndarray) -> np.ndarray:
        from ..inference.backends.openvino_backend import bypass_identity_resizes
        key = frame.shape[:2]
        request = self.requests.pop(key, None)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0]: [1, *key, 3]})
            bypass_identity_resizes(model)
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        self.requests[key] = request  # the newest last
        while len(self.requests) > self.keep:
            self.requests.pop(next(iter(self.requests)))
        request.infer({0: frame[None]})
        return request.get_output_tensor(0).data[0].copy()


class Dynamic:
    """One graph with a dynamic frame size, compiled once."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        from ..inference.backends.openvino_backend import shared_core
        core = shared_core()
        model = core.read_model(str(path))
        model.reshape({model.inputs[0]: [1, -1, -1, 3]})
        self.request = core.compile_model(model, "CPU", config).create_infer_request()

    def run(self, frame: np.ndarray) -> np.ndarray:
        self.request.infer({0: frame[None]})
        return self.request.get_output_tensor(0).data[0].copy()


class Resize:
    """One static graph at the network input size; frames resized to it, masks back."""

    def __init__(self, path: Path, config: dict[str, Any], input_size: tuple[int, int]) -> None:
        from ..inference.backends.openvino_backend import bypass_identity_resizes, shared_core
        core = shared_core()
        model = core.read_model(str(path))
        model.reshape({model.inputs[0]: [1, *input_size, 3]})
        bypass_identity_resizes(model)
        self.input_size = tuple(input_size)
        self.request = core.compile_model(model, "CPU", config).create_infer_request()

    def run(self, frame: np.ndarray) -> np.ndarray:
        import cv2
        h, w = frame.shape[:2]
        if (h, w) != self.input_size:
            frame = cv2.resize(frame, self.input_size[::-1], interpolation=cv2.INTER_LINEAR)
        self.request.infer({0: frame[None]})
        mask = self.request.get_output_tensor(0).data[0]
        if (h, w) == self.input_size:
            return mask.copy()
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


class Backend:
    """The backend's own frame graph, as the engines run it."""

    def __init__(self, path: Path, threads: int) -> None:
        from ..inference.backends.openvino_backend import OpenVINOFrameGraph
        self.graph = OpenVINOFrameGraph(str(path), "fp32", threads)  # no compiled-model cache
        if self.graph.input_size is not None:
            self.graph.prepare(*self.graph.input_size)

    def run(self, frame: np.ndarray) -> np.ndarray:
        return self.graph.run(frame)


def build(strategy: str, path: Path, threads: int, input_size: tuple[int, int]) -> Any:
    """Return the runner of ``strategy`` for the graph at ``path``."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if strategy == "static":
        return Static(path, config)
    if strategy == "dynamic":
        return Dynamic(path, config)
    if strategy == "resize":
        return Resize(path, config, input_size)
    return Backend(path, threads)


def frame_of(size: tuple[int, int], seed: int) -> np.ndarray:
    """Return a random H x W x 3 uint8 frame."""
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """Measure one strategy at one width in this process; return its figures."""
    path, threads = Path(args["graph"]), int(args["threads"])
    input_size = tuple(args["input_size"])
    rss_start = rss_mib()
    started = time.perf_counter()
    runner = build(args["strategy"], path, threads, input_size)
    build_s = time.perf_counter() - started
    first_ms = []
    for i, size in enumerate(args["sizes"]):
        frame = frame_of(tuple(size), i)
        t = time.perf_counter()
        runner.run(frame)
        first_ms.append((time.perf_counter() - t) * 1e3)
    rss_sizes = rss_mib()
    steady = tuple(args["steady"])
    frame = frame_of(steady, 1000)
    for _ in range(WARM_FRAMES):  # a static graph compiles the size in the first
        runner.run(frame)
    steady_ms = []
    for _ in range(int(args["iters"])):
        t = time.perf_counter()
        runner.run(frame)
        steady_ms.append((time.perf_counter() - t) * 1e3)
    return {"strategy": args["strategy"], "width": args["width"], "build_s": build_s,
            "first_ms": first_ms, "first_p50_ms": float(np.median(first_ms)),
            "first_max_ms": float(np.max(first_ms)), "steady_p50_ms": float(np.median(steady_ms)),
            "rss_start_mib": rss_start, "rss_after_sizes_mib": rss_sizes,
            "rss_end_mib": rss_mib()}


def agreement_frames(count: int, camvid: Path | None) -> tuple[list[np.ndarray], str]:
    """Return ``count`` RGB frames: CamVid test images where present, else synthetic scenes."""
    import cv2
    files = sorted((camvid / "test").glob("*.png"))[::10][:count] if camvid else []
    if files:
        return [cv2.imread(str(f))[:, :, ::-1].copy() for f in files], "CamVid test"
    frames = []
    for i in range(count):  # smooth blobs: something with regions rather than noise
        rng = np.random.default_rng(i)
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        frames.append(cv2.resize(small, (480, 360), interpolation=cv2.INTER_CUBIC))
    return frames, "synthetic"


def agreement_worker(args: dict[str, Any]) -> dict[str, Any]:
    """Share of equal mask pixels, ``resize`` against ``static``, per frame size."""
    import cv2
    path, threads = Path(args["graph"]), int(args["threads"])
    static = build("static", path, threads, tuple(args["input_size"]))
    resize = build("resize", path, threads, tuple(args["input_size"]))
    frames, source = agreement_frames(int(args["images"]),
                                      Path(args["camvid"]) if args["camvid"] else None)
    per_size = {}
    for h, w in args["sizes"]:
        equal = total = 0
        for image in frames:
            frame = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            a, c = static.run(frame), resize.run(frame)
            equal += int((a == c).sum())
            total += a.size
        per_size[format_size(h, w)] = equal / total
    # both at the steady size, frame by frame in turn: the same load on both (a shared CPU)
    frame = frame_of(tuple(args["steady"]), 1000)
    times: dict[str, list[float]] = {"static": [], "resize": []}
    for k in range(WARM_FRAMES + int(args["iters"])):
        for name, runner in (("static", static), ("resize", resize)):
            t = time.perf_counter()
            runner.run(frame)
            if k >= WARM_FRAMES:
                times[name].append((time.perf_counter() - t) * 1e3)
    return {"width": args["width"], "source": source, "images": len(frames),
            "agreement": per_size,
            "steady_interleaved_p50_ms": {k: float(np.median(v)) for k, v in times.items()}}


def dispatch(args: dict[str, Any]) -> dict[str, Any]:
    """Run the worker ``args`` names."""
    return agreement_worker(args) if args.get("agreement") else worker(args)


def main(argv: list[str] | None = None) -> int:
    """Measure every strategy at the narrowest and widest width; print the tables."""
    answered = json_worker_main(sys.argv[1:] if argv is None else argv, WORKER_FLAG, dispatch)
    if answered is not None:
        return answered
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: packaged)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", type=int, default=40, help="how many random new sizes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steady", type=size_arg, default=(480, 640), help="the steady frame size")
    p.add_argument("--iters", type=int, default=20, help="steady frames timed")
    p.add_argument("--images", type=int, default=10, help="frames for the mask agreement")
    p.add_argument("--camvid", type=Path, default=None,
                   help="CamVid root (SegNet layout); default $SLIMSEG_CAMVID if set")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    bundle = args.bundle or default_bundle()
    if bundle is None or not (bundle / "bundle.json").is_file():
        p.error("no bundle: pass --bundle DIR (slimseg-export --bundle writes one)")
    meta = json.loads((bundle / "bundle.json").read_text())
    widths = [min(meta["widths"]), max(meta["widths"])]
    camvid = args.camvid or (Path(os.environ["SLIMSEG_CAMVID"])
                             if os.environ.get("SLIMSEG_CAMVID") else None)
    sizes = random_sizes(args.sizes, args.seed)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads; bundle {bundle.name}, "
          f"{len(sizes)} new sizes (seed {args.seed}), steady {format_size(*args.steady)}\n",
          flush=True)
    rows, agreement = [], []
    for width in widths:
        entry = meta["graphs"]["openvino"][f"{float(width):g}"]
        common = {"graph": str(bundle / entry["file"]), "threads": args.threads,
                  "input_size": meta["input_size"], "width": width}
        for strategy in args.strategies:
            rows.append(run_json_worker(
                "slimseg_ros.tools.size_bench", WORKER_FLAG,
                {**common, "strategy": strategy, "sizes": sizes, "steady": list(args.steady),
                 "iters": args.iters}, what=f"{strategy} at width {width:g}"))
            r = rows[-1]
            print(f"width {width:g} {strategy}: first frame p50 {r['first_p50_ms']:.0f} ms, "
                  f"steady {r['steady_p50_ms']:.1f} ms, RSS {r['rss_after_sizes_mib']:.0f} MiB",
                  flush=True)
        if args.images:
            agreement.append(run_json_worker(
                "slimseg_ros.tools.size_bench", WORKER_FLAG,
                {**common, "agreement": True, "images": args.images,
                 "sizes": [list(s) for s in AGREEMENT_SIZES], "steady": list(args.steady),
                 "iters": args.iters,
                 "camvid": str(camvid) if camvid else None}, what="agreement"))
    print()
    print(markdown_table(
        ("width", "strategy", "build, s", "first frame of a new size, ms p50 / max",
         f"steady {format_size(*args.steady)}, ms p50", "RSS after the sizes, MiB",
         "RSS at the end, MiB"),
        [(f"{r['width']:g}", r["strategy"], f"{r['build_s']:.1f}",
          f"{r['first_p50_ms']:.0f} / {r['first_max_ms']:.0f}", f"{r['steady_p50_ms']:.1f}",
          f"{r['rss_after_sizes_mib']:.0f}", f"{r['rss_end_mib']:.0f}") for r in rows]))
    if agreement:
        print()
        print(markdown_table(
            ("width", "frames", *(f"resize = static at {format_size(*s)}, %"
                                  for s in AGREEMENT_SIZES),
             f"steady {format_size(*args.steady)} in turn, static / resize, ms p50"),
            [(f"{a['width']:g}", f"{a['images']} {a['source']}",
              *(f"{100 * a['agreement'][format_size(*s)]:.2f}" for s in AGREEMENT_SIZES),
              "{static:.1f} / {resize:.1f}".format(**a["steady_interleaved_p50_ms"]))
             for a in agreement]))
    if args.json is not None:
        args.json.write_text(json.dumps(
            {"settings": {"bundle": bundle.name, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
                          "threads": args.threads, "seed": args.seed, "sizes": sizes,
                          "steady": list(args.steady), "iters": args.iters},
             "strategies": rows, "agreement": agreement}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
