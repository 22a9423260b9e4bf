"""
Several cameras on one model: one node serving N cameras against N nodes serving one each.

Every camera and every node runs in its own process, as on a robot.

    python -m slimseg_ros.tools.multicam_bench [--cameras 1 2 4] [--rate 10] [--size 480x640]
        [--seconds 20] [--warmup 3] [--checkpoint FILE] [--backend auto] [--json out.json]
        [--flood-rate 100]

For each camera count N and each layout a fresh ROS domain holds either one ``slimseg_node`` with
``cameras:=[cam0, ...]`` or N nodes, node K in namespace ``/camK``; both give camera K the same
topics (``/camK/image`` in, ``/camK/slimseg/mask`` out), so the camera processes and this
process's mask subscribers do not change between layouts. Each camera process publishes rgb8
frames of its own content and ``frame_id`` at ``--rate`` Hz, stamped with the publish time.
``--size`` is ``HxW``, height first (``480x640``: 640 pixels wide), and printed spelt out.

The model's start-up is left out: cameras start once every node publishes diagnostics, and the
window opens ``--warmup`` seconds after every camera's first mask. In the window, per camera:
masks/s received here, source-frame age of those masks (receive time - header stamp, the delay a
robot sees), frames served / frames sent (frames stamped in the window that came back as masks);
and the node processes' total resident memory (children included, sampled, the largest sum).
``--flood-rate`` makes camera 0 publish that fast in cases of two cameras or more (a driver gone
wrong), so the table shows what a flood costs the steady cameras beside it: their masks/s and
source-frame age against the same case without a flood.
RSS counts pages shared between processes (libraries, the shared-memory transport) once per
process, so the N-node sum overstates what each further node really adds. Nothing here passes
or fails; it prints what this machine does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..inference.backends import CHOICES as BACKEND_CHOICES
from ..ros.contract import Diagnostics
from .common import markdown_header, markdown_row
from .node_bench import (NodeBench, Proc, add_common_options, add_run_options, frame_text,
                         listen_with_node_profile, on_own_domains, resolve_model, write_figures)

ONE_NODE = "one node, N cameras"
NODE_PER_CAMERA = "N nodes, one camera each"
LAYOUTS = (ONE_NODE, NODE_PER_CAMERA)
RSS_PERIOD_S = 0.5
START_TIMEOUT_S = 300.0  # N nodes preparing the default model at once on a small CPU
FIRST_MASK_TIMEOUT_S = 60.0


def camera_names(count: int) -> list[str]:
    """Name ``count`` cameras: cam0, cam1, ..."""
    return [f"cam{i}" for i in range(count)]


def total_rss(nodes: Sequence[Proc]) -> int:
    """Resident bytes of the node processes and their children, now."""
    import psutil

    total = 0
    for node in nodes:
        try:
            top = psutil.Process(node.proc.pid)
            procs = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total


def camera_rate(index: int, count: int, settings: dict[str, Any]) -> float:
    """Frames/s of camera ``index`` of ``count``: camera 0 floods where asked and not alone."""
    flood = settings.get("flood_rate")
    return float(flood) if flood and index == 0 and count > 1 else float(settings["rate"])


def camera_figures(masks: list[tuple[int, int]], sent: list[int], t0: int,
                   t1: int) -> dict[str, Any]:
    """
    Return the per-camera figures of the window [t0, t1) (ns).

    They are the masks received in it, their age, and which of the frames stamped in it came
    back as masks.
    """
    received = [(r, s) for r, s in masks if t0 <= r < t1]
    ages = [(r - s) / 1e6 for r, s in received]
    sent_in = {s for s in sent if t0 <= s < t1}
    served = {s for _, s in masks} & sent_in
    return {"masks": len(received), "masks_per_s": len(received) / ((t1 - t0) / 1e9),
            "age_p50_ms": statistics.median(ages) if ages else None,
            "age_max_ms": max(ages) if ages else None,
            "frames_sent": len(sent_in), "frames_served": len(served)}


def run_case(count: int, layout: str, domain: int, settings: dict[str, Any],
             log_dir: Path) -> dict[str, Any]:
    """One camera count in one layout on ``domain``: start, measure, stop, summarise."""
    cameras = camera_names(count)
    with NodeBench(domain, cameras, log_dir) as bench:
        listener = bench.listener
        nodes = bench.start_nodes(cameras, settings["checkpoint"], settings["backend"],
                                  one_node=layout == ONE_NODE)
        bench.wait_for(lambda: all(n.name in listener.statuses for n in nodes),
                       START_TIMEOUT_S, "diagnostics from every node (model prepared)")
        cams = [bench.start_camera(c, i, settings["size"], camera_rate(i, count, settings))
                for i, c in enumerate(cameras)]
        bench.wait_for(lambda: all(listener.masks.values()), FIRST_MASK_TIMEOUT_S,
                       "a first mask on every camera")
        bench.spin_for(settings["warmup"])
        rss: list[int] = []
        t0 = time.time_ns()
        bench.spin_for(settings["seconds"], lambda: rss.append(total_rss(nodes)), RSS_PERIOD_S)
        t1 = time.time_ns()
        sent = {c: bench.stop_camera(p) for c, p in zip(cameras, cams)}
        ages = [(r - s) / 1e9 for m in listener.masks.values() for r, s in m if r >= t0]
        bench.spin_for(min(10.0, max(1.0, 1.5 * max(ages, default=0.0))))  # in flight
    diag = listener.statuses.get(nodes[0].name, Diagnostics())
    return {"cameras": count, "layout": layout, "node_processes": len(nodes),
            "rates_hz": {c: camera_rate(i, count, settings) for i, c in enumerate(cameras)},
            "domain_id": domain, "window_s": (t1 - t0) / 1e9,
            "rss_max_mib": max(rss, default=0) / 2**20, "rss_samples": len(rss),
            "backend": diag.backend, "device": diag.device,
            "per_camera": {c: camera_figures(listener.masks[c], sent[c], t0, t1)
                           for c in cameras}}


def run(settings: dict[str, Any], domain: int | None) -> list[dict[str, Any]]:
    """Every case, each on its own domain (``domain``, the next, ...; None: a random first)."""
    cases = [(n, layout) for n in settings["cameras"] for layout in LAYOUTS]
    rows: list[dict[str, Any]] = []
    for (count, layout), case_domain, log_dir in on_own_domains(cases, domain, "multicam_"):
        rows.append(run_case(count, layout, case_domain, settings, log_dir))
        print(table_rows(rows[-1]), flush=True)
    return rows


# ----------------------------------------------------------------------------- report
HEADER = markdown_header(("cameras", "layout", "camera", "frames/s sent", "masks/s",
                          "source-frame age p50 / max, ms", "frames served / sent",
                          "node processes", "node RSS, max MiB"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table_rows(case: dict[str, Any]) -> str:
    """Return the case's Markdown rows: one per camera, then the total with the node memory."""
    lines = []
    per_camera = case["per_camera"]
    for cam, f in per_camera.items():
        rate = case.get("rates_hz", {}).get(cam)
        lines.append(markdown_row([case["cameras"], case["layout"], cam,
                                   "-" if rate is None else f"{rate:g}",
                                   f"{f['masks_per_s']:.1f}",
                                   f"{_ms(f['age_p50_ms'])} / {_ms(f['age_max_ms'])}",
                                   f"{f['frames_served']}/{f['frames_sent']}", "", ""]))
    total = sum(f["masks_per_s"] for f in per_camera.values())
    served = sum(f["frames_served"] for f in per_camera.values())
    sent = sum(f["frames_sent"] for f in per_camera.values())
    lines.append(markdown_row([case["cameras"], case["layout"], "all", "", f"{total:.1f}", "",
                               f"{served}/{sent}", case["node_processes"],
                               f"{case['rss_max_mib']:.0f}"]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the command line (``--size`` is ``HxW``, height first)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4],
                        help="camera counts to measure")
    parser.add_argument("--rate", type=float, default=10.0, help="frames/s of each camera")
    add_common_options(parser)  # --size HxW, --checkpoint
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per case")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after every camera's first mask before the window")
    parser.add_argument("--backend", default="auto",
                        choices=BACKEND_CHOICES)
    parser.add_argument("--flood-rate", type=float, default=None, metavar="HZ",
                        help="camera 0 publishes this fast where there are 2 cameras or more")
    add_run_options(parser)  # --domain, --json
    return parser


def main(argv: list[str] | None = None) -> int:
    """Measure every camera count in both layouts and print the table."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if min(args.cameras) < 1 or args.rate <= 0 or args.seconds <= 0 or args.warmup < 0 \
            or (args.flood_rate is not None and not args.flood_rate > 0):
        parser.error("--cameras must be >= 1, --rate, --flood-rate and --seconds > 0, "
                     "--warmup >= 0")
    checkpoint = resolve_model(parser, args.checkpoint)
    listen_with_node_profile()  # the masks of any size come in here too
    settings = {"cameras": args.cameras, "rate": args.rate, "size": args.size,
                "seconds": args.seconds, "warmup": args.warmup, "checkpoint": checkpoint,
                "backend": args.backend, "flood_rate": args.flood_rate}
    flood = (f" (camera 0 at {args.flood_rate:g} Hz where not alone)"
             if args.flood_rate else "")
    print(f"{frame_text(args.size)} at {args.rate:g} Hz per camera{flood}, "
          f"{args.seconds:g} s window after {args.warmup:g} s warm-up; model {checkpoint.name}, "
          f"backend {args.backend}; {os.cpu_count()} CPUs\n")
    print(HEADER, flush=True)
    rows = run(settings, args.domain)
    if args.json is not None:
        write_figures(args.json, settings, "cases", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
