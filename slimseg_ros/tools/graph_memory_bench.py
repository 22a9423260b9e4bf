"""
What each compiled OpenVINO graph of a bundle holds; what handing back its working memory costs.

    python -m slimseg_ros.tools.graph_memory_bench [--bundle DIR] [--threads 2]
        [--precision auto] [--repeats 5] [--cache-dir DIR] [--json out.json]

In this one process, each of the bundle's graphs (every width, then every ladder point) is
loaded and compiled as the node does (in the precision ``--precision`` picks for its width, at
its network input size, the compiled-model cache used), and kept, one after another. For each
it prints the resident memory it added once compiled, what its first frame added (its
intermediate tensors), what it holds after ``release_memory()`` (and ``malloc_trim``), the
median warm frame time and the median time of the first frame after a release (``--repeats``
of each). Frames are black, at the bundle's input size (a ladder point resizes them to its
own). Run it twice: the first run fills the compiled-model cache, the second imports from it as
the node's warm start does. Figures of one graph depend on what the C heap had free before it:
the totals are steadier. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.bundle import read_bundle
from ..inference.graph_format import openvino_cache_dir
from ..inference.working_memory import return_freed_heap
from ..resources import default_bundle
from .common import cpu_name, markdown_table
from .common import trimmed_rss_mib as rss_mib

RUNTIME = "openvino"


def bundle_graphs(folder: Path, precision: str, threads: int) -> list[tuple[str, Path, str]]:
    """
    Return (step, graph file, precision) of every width, then every ladder point.

    As the node's OpenVINO engine loads them (``precision: auto`` picks int8 per width).
    """
    from ..inference.bundle import BundleEngine
    engine = BundleEngine(folder, backend=RUNTIME, precision=precision, threads=threads,
                          defer_points=True)
    return engine.graph_sources()


def load_code(threads: int, graphs: list[tuple[str, Path, str]], frame: np.ndarray,
              cache_dir: Path) -> None:
    """
    Load what every graph shares, so that no graph is charged for it.

    The first graph of each kind of weights is compiled, run and dropped: that loads OpenVINO's
    CPU plugin, its IR reader, its kernels (fp32 and int8) and thread pool, and OpenCV (a
    ladder point resizes frames with it).
    """
    import cv2  # noqa: F401

    from ..inference.backends.openvino_backend import OpenVINOFrameGraph
    firsts = {weights_of(path, precision): (path, precision) for _, path, precision in graphs}
    for path, precision in firsts.values():
        OpenVINOFrameGraph(path, precision, threads, cache_dir=cache_dir).run_all(frame)


def weights_of(path: Path, precision: str) -> str:
    """Return the kind of weights a graph computes with: int8 (a quantized graph), or its own."""
    return "int8" if path.stem.endswith("_int8") else precision


def timed_ms(graph: Any, frame: np.ndarray) -> float:
    """Run one frame through ``graph``; return its milliseconds."""
    started = time.perf_counter()
    graph.run_all(frame)
    return (time.perf_counter() - started) * 1e3


def measure(name: str, path: Path, precision: str, frame: np.ndarray, threads: int,
            cache_dir: Path, repeats: int) -> tuple[dict[str, Any], Any]:
    """Load, compile, run and release one graph; return its figures and the graph (kept)."""
    from ..inference.backends.openvino_backend import OpenVINOFrameGraph
    before = rss_mib()
    graph = OpenVINOFrameGraph(path, precision, threads, cache_dir=cache_dir)
    started = time.perf_counter()
    graph.prepare(*frame.shape[:2])
    compile_s = time.perf_counter() - started
    compiled = rss_mib()
    graph.run_all(frame)
    first_frame = rss_mib()
    warm = [timed_ms(graph, frame) for _ in range(repeats)]
    if not graph.release_memory():
        raise SystemExit(f"this OpenVINO cannot release a compiled model's working memory "
                         f"({name})")
    released = rss_mib()
    cold = []
    for _ in range(repeats):
        cold.append(timed_ms(graph, frame))
        graph.release_memory()
        return_freed_heap()
    return {"graph": name, "weights": weights_of(path, precision),
            "compile_or_import_s": compile_s,
            "compiled_mib": compiled - before, "first_frame_mib": first_frame - compiled,
            "after_release_mib": released - before, "warm_ms": statistics.median(warm),
            "first_after_release_ms": statistics.median(cold)}, graph


def main(argv: list[str] | None = None) -> int:
    """Measure every graph of the bundle; print the table and the totals."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=None, help="the bundle (default: packaged)")
    p.add_argument("--threads", type=int, default=2, help="OpenVINO's threads (0: its own)")
    p.add_argument("--precision", default="auto",
                   help="as the node's parameter (auto: int8 where the bundle measured it faster "
                        "on this CPU)")
    p.add_argument("--repeats", type=int, default=5, help="frames timed warm and cold each")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="compiled-model cache (default: the node's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.repeats < 1 or args.threads < 0:
        p.error("--repeats must be >= 1 and --threads >= 0")
    folder = args.bundle or default_bundle()
    if folder is None or not (folder / "bundle.json").is_file():
        p.error("no bundle: pass --bundle DIR (slimseg-export --bundle writes one)")
    meta = read_bundle(folder)
    if not meta.get("input_size"):
        p.error(f"bundle {folder} has no input size: its graphs are compiled per frame size")
    import openvino as ov
    cache = openvino_cache_dir(args.cache_dir)
    warm_cache = cache.is_dir() and any(cache.iterdir())
    height, width = meta["input_size"]
    frame = np.zeros((height, width, 3), np.uint8)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; OpenVINO {ov.__version__}, {args.threads} "
          f"threads; bundle {folder.name}, frames {height}x{width}; compiled-model cache "
          f"{'warm' if warm_cache else 'empty'}\n", flush=True)
    graphs = bundle_graphs(folder, args.precision, args.threads)
    gc.collect()  # the engine that listed them (it holds a cycle) goes before anything counts
    start = rss_mib()
    load_code(args.threads, graphs, frame, cache)
    base = rss_mib()
    kept, rows = [], []
    for name, path, precision in graphs:
        row, graph = measure(name, path, precision, frame, args.threads, cache, args.repeats)
        kept.append(graph)  # as the node keeps every graph it compiled
        rows.append(row)
    end = rss_mib()
    print(markdown_table(
        ("graph", "weights", "compile or import, s", "compiled, MiB", "first frame, +MiB",
         "after release, MiB", "warm frame, ms", "first frame after release, ms"),
        [(r["graph"], r["weights"], f"{r['compile_or_import_s']:.2f}", f"{r['compiled_mib']:.1f}",
          f"{r['first_frame_mib']:+.1f}", f"{r['after_release_mib']:.1f}",
          f"{r['warm_ms']:.1f}", f"{r['first_after_release_ms']:.1f}") for r in rows],
        align="llrrrrrr"))
    totals = {"process_start_mib": start, "shared_mib": base - start,
              "all_graphs_released_mib": end - base,
              "working_memory_mib": sum(r["first_frame_mib"] for r in rows)}
    print(f"\nprocess {start:.0f} MiB before its first graph, +{totals['shared_mib']:.0f} "
          f"MiB what every graph shares (the runtime's code, OpenCV); every graph compiled "
          f"and released +{totals['all_graphs_released_mib']:.0f} MiB; their working memory, "
          f"were each kept, +{totals['working_memory_mib']:.0f} MiB")
    if args.json is not None:
        args.json.write_text(json.dumps(
            {"settings": {"cpu": cpu_name(), "cpu_count": os.cpu_count(),
                          "openvino": ov.__version__, "threads": args.threads,
                          "precision": args.precision, "bundle": folder.name,
                          "frame": [height, width],
                          "repeats": args.repeats, "cache": "warm" if warm_cache else "empty"},
             "totals": totals, "graphs": rows}, indent=2) + "\n")
    del kept
    return 0


if __name__ == "__main__":
    sys.exit(main())
