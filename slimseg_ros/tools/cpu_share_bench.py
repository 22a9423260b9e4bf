"""
The node's CPU share per width at given camera rates: what a CPU-share budget has to work with.

    python -m slimseg_ros.tools.cpu_share_bench [--rates 10 30] [--size 480x640]
        [--widths 0.25 0.5 0.75 1.0] [--seconds 10] [--checkpoint FILE] [--backend auto]
        [--json out.json]

One ``slimseg_node`` process (default parameters, the shipped large-frame DDS profile) and one
camera process publishing rgb8 frames at each rate in turn. For every width, requested on the
node's width topic, the window opens once the node reports that width and a few frames have
been served; in it this process reads the node process's CPU time (psutil, its children
included) and counts the masks that come back. Per rate and width it prints: masks/s served,
the node's CPU share measured from outside (CPU seconds over wall seconds over the node's usable
cores, the figure ``cpu_budget`` is a fraction of), the share the node itself reports
(``node cpu share``) and the share its CPU budget would predict for that width
(``cpu share at W``). Nothing here passes or fails; it prints what this machine does.
``--size`` is ``HxW``, height first (``480x640``: 640 pixels wide), and printed spelt out.

``--budget-share F`` adds, per rate, one more window after the widths: the width request goes
back to 1.0 and ``slimseg/cpu_budget`` is set to ``F`` times the share measured at the narrowest
width (0.5: half what the narrowest width costs), so only serving fewer frames can hold it. After
``--settle`` seconds it prints the same figures with the budget, the share the node predicts
for the width and rate it serves (``served cpu share``) against ``cpu_budget x margin``, and the
serving stride and its reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..inference.backends import CHOICES as BACKEND_CHOICES
from ..ros.contract import TOPICS, Diagnostics, camera_topics
from ..widths import same_width
from .common import markdown_header, markdown_row
from .node_bench import (NodeBench, Proc, add_common_options, add_run_options, frame_text,
                         listen_with_node_profile, on_own_domains, resolve_model, write_figures)

CAMERA = "cam0"
NODE = f"slimseg_{CAMERA}"
START_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 60.0
SETTLE_FRAMES = 3  # masks at the new width before the window opens


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live children, so far."""
    import psutil

    top = psutil.Process(pid)
    total = 0.0
    for p in [top, *top.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def usable_cores(pid: int) -> int:
    """Count the cores ``pid`` may run on: the node's own denominator for its CPU share."""
    try:
        return len(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def measure_width(bench: NodeBench, node: Proc, width: float, seconds: float,
                  publish_width: Any) -> dict[str, Any]:
    """Request ``width``, wait until the node serves it, then measure one window."""
    listener = bench.listener
    masks = listener.masks[CAMERA]

    def serving() -> bool:
        d = listener.statuses.get(NODE)
        active = None if d is None else d.active_width
        return active is not None and same_width(active, width)

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not serving():
        publish_width(width)
        bench.spin_for(0.5)
        if time.monotonic() > deadline:
            raise SystemExit(f"the node did not switch to width {width:g} within "
                             f"{SETTLE_TIMEOUT_S:.0f} s")
    first = len(masks)
    bench.wait_for(lambda: len(masks) >= first + SETTLE_FRAMES, SETTLE_TIMEOUT_S,
                   f"{SETTLE_FRAMES} masks at width {width:g}")
    n0, c0, t0 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    bench.spin_for(seconds)
    n1, c1, t1 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    cores = usable_cores(node.proc.pid)
    bench.spin_for(1.0)  # one more diagnostics period, taken inside the window's load
    d = listener.statuses.get(NODE, Diagnostics())
    host = d.host
    return {"width": width, "active_width": d.active_width, "window_s": t1 - t0,
            "masks_per_s": (n1 - n0) / (t1 - t0), "cpu_s": c1 - c0, "cores": cores,
            "cpu_share": (c1 - c0) / (t1 - t0) / cores,
            "node_cpu_share": None if host is None else host.node_cpu_share,
            "predicted_cpu_share": d.cpu_share.get(width),
            "cpu_ms_per_mask": 1000.0 * (c1 - c0) / (n1 - n0) if n1 > n0 else None}


MARGIN = 0.9  # the node's default governor.budget_margin


def measure_budget(bench: NodeBench, node: Proc, narrowest: dict[str, Any], share: float,
                   settle_s: float, seconds: float, publish_width: Any,
                   publish_budget: Any) -> dict[str, Any]:
    """Set a CPU budget of ``share`` x the narrowest width's measured share; measure a window."""
    listener = bench.listener
    masks = listener.masks[CAMERA]
    budget = share * narrowest["cpu_share"]
    end = time.monotonic() + settle_s
    while time.monotonic() < end:  # topics are best effort for the budget: say it again
        publish_width(1.0)
        publish_budget(budget)
        bench.spin_for(0.5)
    n0, c0, t0 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    bench.spin_for(seconds)
    n1, c1, t1 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    cores = usable_cores(node.proc.pid)
    bench.spin_for(1.0)
    d = listener.statuses.get(NODE, Diagnostics())
    host = d.host
    served = getattr(d, "served_cpu_share", None)
    if served is None and d.active_width is not None:  # a node without the rate actuator
        served = d.cpu_share.get(d.active_width)
    return {"width": "budget", "budget": budget, "allowed": budget * MARGIN,
            "active_width": d.active_width, "window_s": t1 - t0,
            "masks_per_s": (n1 - n0) / (t1 - t0), "cpu_s": c1 - c0, "cores": cores,
            "cpu_share": (c1 - c0) / (t1 - t0) / cores,
            "node_cpu_share": None if host is None else host.node_cpu_share,
            "predicted_cpu_share": served,
            "stride": getattr(d, "serving_stride", None),
            "rate_reason": getattr(d, "rate_reason", "") or d.reason,
            "cpu_ms_per_mask": 1000.0 * (c1 - c0) / (n1 - n0) if n1 > n0 else None}


def run_rate(rate: float, settings: dict[str, Any], domain: int, log_dir: Path
             ) -> list[dict[str, Any]]:
    """Start the node and a camera at ``rate`` on ``domain``, measure every width, stop."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32

    rows: list[dict[str, Any]] = []
    with NodeBench(domain, [CAMERA], log_dir) as bench:
        listener = bench.listener
        width_topic = "/" + (camera_topics(CAMERA).width or "")
        pub = listener.node.create_publisher(Float32, width_topic, QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE))
        [node] = bench.start_nodes([CAMERA], settings["checkpoint"], settings["backend"],
                                   one_node=False,
                                   overrides={"precision": settings.get("precision", "auto"),
                                              "torch_threads": settings.get("threads", 0)})
        bench.wait_for(lambda: NODE in listener.statuses, START_TIMEOUT_S,
                       "diagnostics from the node (model prepared)")
        camera = bench.start_camera(CAMERA, 0, settings["size"], rate)
        bench.wait_for(lambda: bool(listener.masks[CAMERA]), SETTLE_TIMEOUT_S, "a first mask")
        for width in settings["widths"]:
            row = measure_width(bench, node, width, settings["seconds"],
                                lambda w: pub.publish(Float32(data=float(w))))
            row.update(rate=rate, backend=listener.statuses[NODE].backend)
            rows.append(row)
            print(table_row(row), flush=True)
        if settings.get("budget_share"):
            budget_pub = listener.node.create_publisher(Float32, f"/{CAMERA}/{TOPICS.cpu_budget}",
                                                        QoSProfile(depth=1))
            row = measure_budget(bench, node, min(rows, key=lambda r: r["width"]),
                                 settings["budget_share"], settings["settle"],
                                 settings["seconds"],
                                 lambda w: pub.publish(Float32(data=float(w))),
                                 lambda b: budget_pub.publish(Float32(data=float(b))))
            row.update(rate=rate, backend=listener.statuses[NODE].backend)
            rows.append(row)
            print(table_row(row), flush=True)
            print(f"\nCPU budget {_pct(row['budget'])} (x margin {MARGIN}: "
                  f"{_pct(row['allowed'])}); the node predicts "
                  f"{_pct(row['predicted_cpu_share'])} at width {row['active_width']}, "
                  f"stride {row['stride']}: {row['rate_reason']}", flush=True)
        bench.stop_camera(camera)
    return rows


HEADER = markdown_header(("camera rate, frames/s", "width", "masks/s served",
                          "node CPU share, measured", "node CPU share, its own figure",
                          "CPU share its budget predicts", "CPU ms per mask"), "r")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.0f} %"


def table_row(row: dict[str, Any]) -> str:
    """Return the Markdown row of one rate and width."""
    ms = row["cpu_ms_per_mask"]
    width = (f"{row['width']:g}" if row["width"] != "budget"
             else f"budget {_pct(row['budget'])}: {row['active_width']}")
    return markdown_row([f"{row['rate']:g}", width, f"{row['masks_per_s']:.1f}",
                         _pct(row["cpu_share"]), _pct(row["node_cpu_share"]),
                         _pct(row["predicted_cpu_share"]), "-" if ms is None else f"{ms:.0f}"])


def build_parser() -> argparse.ArgumentParser:
    """Return the command line (``--size`` is ``HxW``, height first)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0],
                        help="camera frames/s to measure at")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    add_common_options(parser)  # --size HxW, --checkpoint
    parser.add_argument("--seconds", type=float, default=10.0, help="window per width")
    parser.add_argument("--backend", default="auto",
                        choices=BACKEND_CHOICES)
    parser.add_argument("--precision", default="auto",
                        help="the node's precision (int8: a bundle's INT8 graphs)")
    parser.add_argument("--threads", type=int, default=0,
                        help="the node's inference threads (torch_threads; 0: the runtime's)")
    parser.add_argument("--budget-share", type=float, default=0.0,
                        help="add a window with a CPU budget of this fraction of the narrowest "
                             "width's measured share (0: none)")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds the budget acts before its window")
    add_run_options(parser)  # --domain, --json
    return parser


def main(argv: list[str] | None = None) -> int:
    """Measure every width at every camera rate and print the table."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if min(args.rates) <= 0 or args.seconds <= 0:
        parser.error("--rates and --seconds must be > 0")
    if not 0.0 <= args.budget_share <= 1.0 or args.settle < 0:
        parser.error("--budget-share must be in [0, 1] and --settle >= 0")
    checkpoint = resolve_model(parser, args.checkpoint)
    listen_with_node_profile()  # the masks of any size come in here too
    settings = {"rates": args.rates, "widths": args.widths, "size": args.size,
                "seconds": args.seconds, "checkpoint": checkpoint, "backend": args.backend,
                "budget_share": args.budget_share, "settle": args.settle,
                "precision": args.precision, "threads": args.threads}
    print(f"{frame_text(args.size)}, {args.seconds:g} s per width; model "
          f"{checkpoint.name}, backend {args.backend}, precision {args.precision}; "
          f"{os.cpu_count()} CPUs\n")
    print(HEADER, flush=True)
    rows: list[dict[str, Any]] = []
    for rate, domain, log_dir in on_own_domains(args.rates, args.domain, "cpu_share_"):
        rows += run_rate(rate, settings, domain, log_dir)
    if args.json is not None:
        write_figures(args.json, settings, "rows", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
