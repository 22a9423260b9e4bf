"""
Inference runtimes compared: frame to mask per width, each backend timed in its own process.

``slimseg-bench --backends torch openvino onnxruntime [--sizes 360x480] [--threads 2]`` runs one
worker process per backend (running two runtimes' thread pools in one process distorts both),
each timing ``SegmentationEngine.infer`` (uint8 frame in, class ids out: resize, normalisation,
network, post-processing) at every width in interleaved rounds, and adds torchvision's LR-ASPP
MobileNetV3-Large (random weights, the network a user would otherwise pick) in torch and in the
fastest runtime, through the same frame path. The report gives per width the p50/p90, the ratio
to torch eager and the ratio to width 1.0 beside the FLOPs ratio.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.backends import EAGER, is_graph_runtime
from .common import (cpu_name, format_size, json_worker_main, markdown_header, markdown_row,
                     run_json_worker)

WORKER_MODULE = "slimseg_ros.tools.backend_bench"
WORKER_FLAG = "--backend-worker"


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(samples, 50)),
            "p90_ms": float(np.percentile(samples, 90)), "n": len(samples)}


def lraspp_engine_like(backend: str, num_classes: int, input_size: tuple[int, int],
                       threads: int, precision: str = "fp32") -> Any:
    """
    Build LR-ASPP MobileNetV3-Large (random weights) as a callable ``frame -> mask``.

    It runs behind the same frame path as our widths, at the runtime's same ``precision`` (a
    bf16 run compares against the reference in bf16, not fp32).
    """
    import torch
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    from ..inference.backends import frame_graph_runner
    from ..inference.backends.frame_graph import FramePath, export_frame_graph

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                 num_classes=num_classes).eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)["out"]

    net = Logits().eval()
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    if not is_graph_runtime(backend):
        path = FramePath(net, mean, std, input_size).eval()

        def run(frame: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return path(torch.from_numpy(frame)[None])[0].numpy()
        return run
    graph = frame_graph_runner(backend, export_frame_graph(net, mean, std, input_size),
                               precision, threads)
    return graph.run


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """Time one backend (in this process only) and return its figures."""
    import torch

    from ..inference.engine import SegmentationEngine
    from ..models.checkpoint import load_checkpoint

    torch.set_num_threads(int(args["threads"]))
    h, w = args["size"]
    started = time.perf_counter()
    if Path(args["checkpoint"]).is_dir():  # a model bundle: its own graphs (int8 too)
        from ..inference.bundle import BundleEngine
        engine = BundleEngine(args["checkpoint"], backend=args["backend"],
                              precision=args["precision"], threads=int(args["threads"]),
                              cache_dir=args.get("cache"), ladder=bool(args.get("ladder")))
        info, input_size = engine.info, tuple(engine.input_size or (h, w))
    else:
        model, info = load_checkpoint(args["checkpoint"], map_location="cpu")
        input_size = tuple(args.get("input_size") or (h, w))  # the network's; frames h x w
        engine = SegmentationEngine(model, info, device="cpu", backend=args["backend"],
                                    precision=args["precision"], input_size=input_size,
                                    checkpoint_path=args["checkpoint"],
                                    cache_dir=args.get("cache"),
                                    ladder=bool(args.get("ladder")))
    startup_s = time.perf_counter() - started
    engine.prepare_size(h, w)  # a runtime compiles here (OpenVINO: the network input size)
    ready_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    runners = {f"{wd:g}": (lambda f, wd=wd: engine.infer(f, wd)) for wd in engine.widths}
    if args.get("ladder") and engine.ladder is None:
        raise ValueError(f"--ladder: {engine.ladder_note}")
    for point in engine.ladder.points if args.get("ladder") else ():  # "0.75@224x304"
        width = engine.widths.exact(point.width)
        runners[point.key] = (lambda f, wd=width, sz=point.input_size:
                              engine.infer(f, wd, input_size=sz))
    if args.get("lraspp"):
        runners["lraspp"] = lraspp_engine_like(args["backend"], len(info.class_names),
                                               input_size, int(args["threads"]),
                                               "fp32" if args["precision"] == "int8"
                                               else args["precision"])
    for run in runners.values():
        for _ in range(int(args["warmup"])):
            run(frame)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    block, idle_s = int(args.get("block", 1)), float(args.get("idle_ms", 0.0)) / 1000.0
    for _ in range(-(-int(args["iters"]) // block)):  # whole blocks, at least iters frames
        for key, run in runners.items():
            for _ in range(block):  # a width's frames in a row, as the node serves them
                if idle_s:  # the gap a camera leaves between frames (time.sleep, untimed)
                    time.sleep(idle_s)
                t = time.perf_counter()
                run(frame)
                samples[key].append((time.perf_counter() - t) * 1000.0)
    switch = [0.0]  # a bundle has no torch networks to switch between
    for _ in range(2000 if hasattr(engine, "network") else 0):
        t = time.perf_counter_ns()
        engine.network(engine.widths[0])
        engine.network(engine.widths[-1])
        switch.append((time.perf_counter_ns() - t) / 2000.0)
    return {"backend": engine.backend, "precision": engine.precision,
            "startup_s": startup_s, "ready_s": ready_s, "prepared_from": engine.prepared_from,
            "switch_us_p50": float(np.percentile(switch, 50)),
            "latency": {k: _percentiles(v) for k, v in samples.items()}}


def run_worker(backend: str, checkpoint: str, size: tuple[int, int], threads: int, iters: int,
               warmup: int, precision: str, lraspp: bool, cache: str | None,
               block: int = 1, idle_ms: float = 0.0,
               input_size: tuple[int, int] | None = None,
               ladder: bool = False) -> dict[str, Any]:
    """One backend in a fresh process (``python -m slimseg_ros.tools.backend_bench``)."""
    payload = {"backend": backend, "checkpoint": checkpoint, "size": list(size),
               "threads": threads, "iters": iters, "warmup": warmup, "precision": precision,
               "lraspp": lraspp, "cache": cache, "block": block, "idle_ms": idle_ms,
               "input_size": list(input_size) if input_size else None, "ladder": ladder}
    return run_json_worker(WORKER_MODULE, WORKER_FLAG, payload,
                           env={"OMP_NUM_THREADS": str(threads)},
                           what=f"backend {backend}")


def _median(values: list[float]) -> float:
    return float(np.median(values))


def merge_rounds(rounds: list[dict[str, Any]], torch_rounds: list[dict[str, Any]] | None
                 ) -> dict[str, Any]:
    """
    One backend's figures over several rounds: medians, each round kept, paired speed-ups.

    Each round's worker ran right beside a torch worker, so the speed-up per width is the median
    of each round's own torch / backend ratio: a machine that drifts between rounds moves both.
    """
    keys = list(rounds[0]["latency"])
    merged = {**rounds[0], "startup_s": _median([r["startup_s"] for r in rounds]),
              "ready_s": _median([r["ready_s"] for r in rounds]),
              "switch_us_p50": _median([r["switch_us_p50"] for r in rounds]),
              "latency": {k: {"p50_ms": _median([r["latency"][k]["p50_ms"] for r in rounds]),
                              "p90_ms": _median([r["latency"][k]["p90_ms"] for r in rounds]),
                              "n": sum(r["latency"][k]["n"] for r in rounds)} for k in keys},
              "rounds": [{k: v["p50_ms"] for k, v in r["latency"].items()} for r in rounds]}
    if torch_rounds is not None:
        merged["speedup_vs_torch"] = {
            k: _median([t["latency"][k]["p50_ms"] / r["latency"][k]["p50_ms"]
                        for t, r in zip(torch_rounds, rounds)])
            for k in keys if k in torch_rounds[0]["latency"]}
    return merged


def compare_backends(checkpoint: str, backends: list[str], size: tuple[int, int], threads: int,
                     iters: int, warmup: int, precision: str = "fp32",
                     cache: str | None = None, log: Any = print,
                     rounds: int = 1, block: int = 1, idle_ms: float = 0.0,
                     input_size: tuple[int, int] | None = None,
                     reference: bool = True, ladder: bool = False) -> dict[str, Any]:
    """
    Every backend's figures, the FLOPs per width, and the LR-ASPP reference (``reference``).

    ``input_size`` is the network input (default: the frame ``size``): frames are resized to it
    inside the graph and the masks back, as in the node; FLOPs are counted at it.

    With ``rounds`` > 1 the backends take turns, a fresh worker each per round, and the figures
    are medians over the rounds: on a shared machine one process can run 30% slower than the
    next with the same settings, which a single worker per backend would read as the backend.
    Within a worker the widths take turns ``block`` frames at a time: the node serves one
    width for many frames, and a narrow width's frame right after another width's runs slower
    than in a run of its own (1: every frame another width). ``idle_ms`` leaves that much idle
    time before every timed frame, as a camera does between frames (a frame after a gap runs
    slower than one right after another). ``ladder`` times the model's ladder points too
    (keyed ``0.75@224x304``).
    """
    import torch

    from ..models.checkpoint import load_checkpoint
    from ..models.slimmable import trained_widths
    from .flops import count_flops

    if rounds < 1 or block < 1:
        raise ValueError(f"rounds and block must be >= 1, got {rounds} and {block}")
    if not 0 <= idle_ms <= 10_000:
        raise ValueError(f"idle time must be between 0 and 10000 ms, got {idle_ms:g}")
    network_size = tuple(input_size) if input_size else tuple(size)
    if Path(checkpoint).is_dir():  # a bundle: graphs only, no network to count or run in torch
        if EAGER in backends:
            raise ValueError(f"{checkpoint} is a model bundle: it runs in the graph runtimes, "
                             f"not {EAGER}; leave {EAGER} out of --backends")
        flops: dict[float, float] = {}
    else:
        model, _ = load_checkpoint(checkpoint, map_location="cpu")
        flops = {w: count_flops(model, w, network_size) for w in trained_widths(model)}
    runtime = [b for b in backends if is_graph_runtime(b)]
    per_round: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    best: str | None = None
    for r in range(rounds):
        for b in backends:
            log(f"round {r + 1}/{rounds}: timing {b} in its own process ...")
            per_round[b].append(run_worker(b, checkpoint, size, threads, iters, warmup,
                                           precision if is_graph_runtime(b) else "fp32",
                                           lraspp=b == EAGER, cache=cache, block=block,
                                           idle_ms=idle_ms, input_size=input_size,
                                           ladder=ladder and is_graph_runtime(b)))
        if best is None and runtime and reference:  # the best runtime times LR-ASPP
            best = min(runtime, key=lambda b: per_round[b][0]["latency"]["1"]["p50_ms"])
        if best is not None:
            log(f"round {r + 1}/{rounds}: timing LR-ASPP in {best} ...")
            extra = run_worker(best, checkpoint, size, threads, iters, warmup, precision,
                               lraspp=True, cache=cache, block=block, idle_ms=idle_ms,
                               input_size=input_size)
            per_round[best][-1]["latency"]["lraspp"] = extra["latency"]["lraspp"]
    torch_rounds = per_round.get(EAGER)
    results = {b: merge_rounds(per_round[b], torch_rounds if b != EAGER else None)
               for b in backends}
    return {"meta": {"checkpoint": checkpoint, "size": list(size),
                     "input_size": list(network_size), "threads": threads,
                     "iters": iters, "rounds": rounds, "block": block, "idle_ms": idle_ms,
                     "torch": torch.__version__,
                     "best_runtime": best, "cpu": cpu_name()},
            "flops": {f"{w:g}": f for w, f in flops.items()}, "backends": results}


def format_comparison(result: dict[str, Any]) -> str:
    """Markdown: per width, each backend's p50 / p90 and ratios; start-up and switch times."""
    backends = result["backends"]
    first = backends[EAGER] if EAGER in backends else next(iter(backends.values()))
    widths = sorted((k for k in first["latency"] if k != "lraspp" and "@" not in k), key=float)
    points = {k: v["p50_ms"] for b in backends.values() for k, v in b["latency"].items()
              if "@" in k}  # ladder points (any backend that ran them), cheapest first
    widths += sorted(points, key=points.get)
    names = list(backends)
    headers = ["width", "FLOPs / FLOPs(1.0)"]
    for b in names:
        headers += [f"{b} p50 / p90 ms", f"speed-up vs {EAGER}", f"{b} w / w1.0"]
    lines = [markdown_header(headers, "r")]
    f1 = result["flops"].get("1")
    for w in widths + ["lraspp"]:
        cells = [w if w != "lraspp" else "LR-ASPP MNv3-L",
                 f"{result['flops'][w] / f1:.3f}" if f1 and w in result["flops"] else "-"]
        for b in names:
            lat = backends[b]["latency"].get(w)
            if lat is None:
                cells += ["-", "-", "-"]
                continue
            torch_lat = backends.get(EAGER, {}).get("latency", {}).get(w)
            ratio = backends[b].get("speedup_vs_torch", {}).get(w)  # paired, over rounds
            if ratio is None and torch_lat and b != EAGER:
                ratio = torch_lat["p50_ms"] / lat["p50_ms"]
            rel = lat["p50_ms"] / backends[b]["latency"]["1"]["p50_ms"]
            cells += [f"{lat['p50_ms']:.1f} / {lat['p90_ms']:.1f}",
                      f"{ratio:.2f}x" if ratio else "-", f"{rel:.3f}"]
        lines.append(markdown_row(cells))
    lines.append("")
    meta = result.get("meta", {})
    if meta.get("size") and meta.get("input_size"):
        lines.append(f"- frames {format_size(*meta['size'])}, network input "
                     f"{format_size(*meta['input_size'])}")
    for b in names:
        r = backends[b]
        lines.append(f"- {b} ({r['precision']}): start-up {r['startup_s']:.1f} s "
                     f"({r['prepared_from']}), {r['ready_s']:.1f} s with "
                     f"the frame size prepared, width switch {r['switch_us_p50']:.2f} us")
    return "\n".join(lines) + "\n"


def plot_comparison(results: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """
    Plot p50 frame-to-mask latency against width for every backend and precision in ``results``.

    Several runs (e.g. an fp32 one and a bf16 one) go on one figure; a backend and precision
    already drawn from an earlier run is not drawn again, so torch appears once. LR-ASPP, where
    measured, is a dashed line in its backend's colour; the FLOPs ratio is on the right.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_comparison needs at least one result")
    fig, (ax_ms, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn: list[tuple[str, str]] = []
    for result in results:
        for backend, r in result["backends"].items():
            key = (backend, r["precision"])
            if key in drawn:
                continue
            drawn.append(key)
            color = colors[(len(drawn) - 1) % len(colors)]
            lat = r["latency"]
            widths = sorted((k for k in lat if k != "lraspp"), key=float)
            xs = [float(w) for w in widths]
            ax_ms.plot(xs, [lat[w]["p50_ms"] for w in widths], "o-", color=color,
                       label=f"{backend} {r['precision']}")
            ax_ratio.plot(xs, [lat[w]["p50_ms"] / lat["1"]["p50_ms"] for w in widths], "o-",
                          color=color, label=f"{backend} {r['precision']}")
            if "lraspp" in lat:
                ax_ms.axhline(lat["lraspp"]["p50_ms"], color=color, linestyle="--", linewidth=1,
                              label=f"LR-ASPP MNv3-L, {backend} {r['precision']}")
    flops = results[0]["flops"]
    fw = sorted(flops, key=float)
    ax_ratio.plot([float(w) for w in fw], [flops[w] / flops["1"] for w in fw], "k:",
                  label="FLOPs")
    meta = results[0]["meta"]
    size = format_size(*meta["size"])
    ax_ms.set(xlabel="width", ylabel="frame to mask p50, ms",
              title=f"{size}, {meta['threads']} threads, {meta.get('cpu', '')}")
    ax_ratio.set(xlabel="width", ylabel="latency / latency at width 1.0",
                 title="relative to width 1.0")
    for ax in (ax_ms, ax_ratio):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    answered = json_worker_main(sys.argv[1:], WORKER_FLAG, worker)
    if answered is not None:
        sys.exit(answered)
    if len(sys.argv) >= 4 and sys.argv[1] == "--plot":
        # python -m slimseg_ros.tools.backend_bench --plot OUT.png run1.json [run2.json ...]
        plot_comparison([json.loads(Path(f).read_text()) for f in sys.argv[3:]], sys.argv[2])
        print(f"wrote {sys.argv[2]}")
        sys.exit(0)
    sys.exit("usage: slimseg-bench --backends ... [--plot OUT.png], or python -m "
             "slimseg_ros.tools.backend_bench --plot OUT.png RUN.json [RUN.json ...]")
