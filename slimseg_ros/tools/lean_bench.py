"""
The node from a model bundle against the node from the .pt: memory and start-up to first mask.

    python -m slimseg_ros.tools.lean_bench [--bundle DIR] [--checkpoint FILE] [--runs 2]
        [--seconds 5] [--json out.json] [--ladder | --widths-only] [--release-idle-s S]
        [--cpu-budget F] [--backend auto|openvino|onnxruntime]

For each model (the .pt checkpoint, run by the default runtime through PyTorch, and the bundle,
run without it) and each run, a fresh ``slimseg_node`` process (default parameters, the shipped
large-frame DDS profile) serves first one camera (480x640 rgb8 at 10 frames/s), then, in a
second node, three cameras of different sizes (480x640, 360x480, 720x1280) at once. It prints:
seconds from starting the process to the first mask, and the node process's resident memory
(children included, the largest of samples every 0.25 s over ``--seconds`` once every camera
gets masks). The first run may fill caches (the .pt's exported graphs); the last run is the warm
one. A node prepares its ladder's operating points only once a budget is set: ``--cpu-budget``
sets the nodes' ``cpu_budget`` (1.0: every core, a budget that prepares the points and slims
nothing at these settings). With ``--ladder`` it compares the bundle node with its ladder
prepared (``use_ladder: true``) against the same node with widths only, one camera, both with
``cpu_budget`` 1.0 unless ``--cpu-budget`` says otherwise. ``--release-idle-s`` sets the nodes'
``release_idle_s`` (0: every width and point keeps its working memory). Nothing here passes or
fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..resources import default_bundle
from .common import cpu_name, markdown_table
from .multicam_bench import total_rss
from .node_bench import (NodeBench, listen_with_node_profile, on_own_domains, resolve_model,
                         write_figures)

ONE = [("cam0", (480, 640))]
THREE = [("cam0", (480, 640)), ("cam1", (360, 480)), ("cam2", (720, 1280))]
START_TIMEOUT_S = 300.0


def run_case(model: Path, cameras: list[tuple[str, tuple[int, int]]], seconds: float,
             domain: int, log_dir: Path, overrides: dict[str, Any] | None = None,
             backend: str = "auto") -> dict[str, Any]:
    """Start one node for ``cameras`` (``overrides``: parameters); time it; sample its memory."""
    names = [c for c, _ in cameras]
    with NodeBench(domain, names, log_dir) as bench:
        listener = bench.listener
        for i, (name, size) in enumerate(cameras):  # publishing before the node is up
            bench.start_camera(name, i, size, 10.0)
        started = time.monotonic()
        nodes = bench.start_nodes(names, model, backend, one_node=len(names) > 1,
                                  overrides=overrides)
        bench.wait_for(lambda: bool(listener.masks[names[0]]), START_TIMEOUT_S, "a first mask")
        first_mask_s = time.monotonic() - started
        bench.wait_for(lambda: all(listener.masks.values()), START_TIMEOUT_S,
                       "masks on every camera")
        rss: list[int] = []
        bench.spin_for(seconds, lambda: rss.append(total_rss(nodes)), 0.25)
    return {"model": model.name, "cameras": len(cameras), "first_mask_s": first_mask_s,
            "rss_max_mib": max(rss) / 2**20}


def main(argv: list[str] | None = None) -> int:
    """Measure both models, print the table and the ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="the .pt (default: packaged)")
    p.add_argument("--bundle", type=Path, default=None, help="the bundle (default: packaged)")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--domain", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--ladder", action="store_true",
                   help="the bundle with its ladder against widths only (one camera)")
    p.add_argument("--widths-only", action="store_true",
                   help="both nodes with use_ladder false (no operating points prepared)")
    p.add_argument("--backend", default="auto",
                   help="both nodes' backend (onnxruntime needs a bundle exported for it: "
                        "slimseg-export --bundle DIR --runtimes onnxruntime)")
    p.add_argument("--cpu-budget", type=float, default=None,
                   help="the nodes' cpu_budget (a budget makes them prepare the ladder's points)")
    p.add_argument("--release-idle-s", type=float, default=None,
                   help="the nodes' release_idle_s (default: the node's; 0 keeps every "
                        "step's working memory)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.seconds <= 0:
        p.error("--runs must be >= 1 and --seconds > 0")
    if args.release_idle_s is not None and not 0 <= args.release_idle_s <= 3600:
        p.error("--release-idle-s must be within [0, 3600]")
    if args.cpu_budget is not None and not 0 <= args.cpu_budget <= 1:
        p.error("--cpu-budget must be within [0, 1]")
    checkpoint = resolve_model(p, args.checkpoint)
    bundle = (args.bundle or default_bundle())
    if bundle is None or not (bundle / "bundle.json").is_file():
        p.error("no bundle: pass --bundle DIR (slimseg-export --bundle writes one)")
    listen_with_node_profile()
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; .pt {checkpoint.name}, bundle {bundle.name}\n",
          flush=True)
    if args.ladder:
        return ladder_main(args, bundle)
    cases = [(model, cams) for _ in range(args.runs) for model in (checkpoint, bundle)
             for cams in (ONE, THREE)]
    params = {**({"use_ladder": False} if args.widths_only else {}), **released(args)}
    rows = [dict(run_case(model, cams, args.seconds, domain, log_dir, params, args.backend),
                 run=k // 4 + 1)
            for k, ((model, cams), domain, log_dir) in enumerate(
                on_own_domains(cases, args.domain, "lean_bench_"))]
    print(markdown_table(("run", "model", "cameras", "start to first mask, s",
                          "node RSS, max MiB"),
                         [(r["run"], r["model"], r["cameras"], f"{r['first_mask_s']:.1f}",
                           f"{r['rss_max_mib']:.0f}") for r in rows]))
    last = {(r["model"], r["cameras"]): r for r in rows if r["run"] == args.runs}
    pt1, pt3 = last[(checkpoint.name, 1)], last[(checkpoint.name, 3)]
    b1, b3 = last[(bundle.name, 1)], last[(bundle.name, 3)]
    ratios = {"rss_bundle_vs_pt": b1["rss_max_mib"] / pt1["rss_max_mib"],
              "rss_three_vs_one_bundle": b3["rss_max_mib"] / b1["rss_max_mib"],
              "rss_three_vs_one_pt": pt3["rss_max_mib"] / pt1["rss_max_mib"],
              "first_mask_bundle_vs_pt": b1["first_mask_s"] / pt1["first_mask_s"]}
    print(f"\nrun {args.runs}: bundle/.pt memory {ratios['rss_bundle_vs_pt']:.2f}x, three "
          f"cameras/one {ratios['rss_three_vs_one_bundle']:.2f}x (bundle), "
          f"{ratios['rss_three_vs_one_pt']:.2f}x (.pt); start to first mask bundle/.pt "
          f"{ratios['first_mask_bundle_vs_pt']:.2f}x")
    if args.json is not None:
        write_figures(args.json, {"checkpoint": checkpoint, "bundle": bundle.name,
                                  "size": [480, 640], "cpu": cpu_name(), "runs": args.runs,
                                  "seconds": args.seconds, "ratios": ratios,
                                  "use_ladder": not args.widths_only, "backend": args.backend,
                                  **released(args)},
                      "cases", rows)
    return 0


def released(args: argparse.Namespace) -> dict[str, float]:
    """Return the ``release_idle_s`` and ``cpu_budget`` asked for (none: the node's default)."""
    return {**({} if args.release_idle_s is None else {"release_idle_s": args.release_idle_s}),
            **({} if args.cpu_budget is None else {"cpu_budget": args.cpu_budget})}


def ladder_main(args: argparse.Namespace, bundle: Path) -> int:
    """Compare the bundle node with its ladder and with widths only: memory, first mask."""
    budget = {"cpu_budget": 1.0, **released(args)}  # the same budget both: one prepares points
    modes = {"widths only": {"use_ladder": False, **budget},
             "with ladder": {"use_ladder": True, **budget}}
    cases = [(mode, params) for _ in range(args.runs) for mode, params in modes.items()]
    rows = [dict(run_case(bundle, ONE, args.seconds, domain, log_dir, params, args.backend),
                 mode=mode, run=k // 2 + 1)
            for k, ((mode, params), domain, log_dir) in enumerate(
                on_own_domains(cases, args.domain, "lean_bench_ladder_"))]
    print(markdown_table(("run", "bundle node", "start to first mask, s", "node RSS, max MiB"),
                         [(r["run"], r["mode"], f"{r['first_mask_s']:.1f}",
                           f"{r['rss_max_mib']:.0f}") for r in rows]))
    last = {r["mode"]: r for r in rows if r["run"] == args.runs}
    plain, ladder = last["widths only"], last["with ladder"]
    ratios = {"rss_ladder_vs_widths": ladder["rss_max_mib"] / plain["rss_max_mib"],
              "first_mask_ladder_vs_widths": ladder["first_mask_s"] / plain["first_mask_s"]}
    extra = ladder["rss_max_mib"] - plain["rss_max_mib"]
    print(f"\nrun {args.runs}: with ladder / widths only: memory "
          f"{ratios['rss_ladder_vs_widths']:.2f}x ({extra:+.0f} MiB), start to first mask "
          f"{ratios['first_mask_ladder_vs_widths']:.2f}x")
    if args.json is not None:
        write_figures(args.json, {"checkpoint": bundle, "size": [480, 640], "cpu": cpu_name(),
                                  "runs": args.runs, "seconds": args.seconds, "ratios": ratios,
                                  **released(args)},
                      "cases", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
