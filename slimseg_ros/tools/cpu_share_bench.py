"""
The node's CPU share per width at given camera rates: what a CPU-share budget has to work with.

    python -m slimseg_ros.tools.cpu_share_bench [--rates 10 30] [--size 640x480]
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
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..ros.contract import Diagnostics, camera_topics
from ..resources import default_checkpoint
from ..widths import same_width
from .multicam_bench import (NODE_PER_CAMERA, Listener, Proc, parse_frame_size, spin_for,
                             spin_until, start_camera, start_nodes, stop_all, stop_camera)
from .node_process import PROFILE_VARS, node_environment

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


def measure_width(executor: Any, listener: Listener, node: Proc, width: float,
                  seconds: float, publish_width: Any) -> dict[str, Any]:
    """Request ``width``, wait until the node serves it, then measure one window."""
    masks = listener.masks[CAMERA]

    def serving() -> bool:
        d = listener.statuses.get(NODE)
        active = None if d is None else d.active_width
        return active is not None and same_width(active, width)

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not serving():
        publish_width(width)
        spin_for(executor, 0.5)
        if time.monotonic() > deadline:
            raise SystemExit(f"the node did not switch to width {width:g} within "
                             f"{SETTLE_TIMEOUT_S:.0f} s")
    first = len(masks)
    spin_until(executor, lambda: len(masks) >= first + SETTLE_FRAMES, SETTLE_TIMEOUT_S,
               [node], f"{SETTLE_FRAMES} masks at width {width:g}")
    n0, c0, t0 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    spin_for(executor, seconds)
    n1, c1, t1 = len(masks), process_cpu_seconds(node.proc.pid), time.monotonic()
    cores = usable_cores(node.proc.pid)
    spin_for(executor, 1.0)  # one more diagnostics period, taken inside the window's load
    d = listener.statuses.get(NODE, Diagnostics())
    host = d.host
    return {"width": width, "active_width": d.active_width, "window_s": t1 - t0,
            "masks_per_s": (n1 - n0) / (t1 - t0), "cpu_s": c1 - c0, "cores": cores,
            "cpu_share": (c1 - c0) / (t1 - t0) / cores,
            "node_cpu_share": None if host is None else host.node_cpu_share,
            "predicted_cpu_share": d.cpu_share.get(width),
            "cpu_ms_per_mask": 1000.0 * (c1 - c0) / (n1 - n0) if n1 > n0 else None}


def run_rate(rate: float, settings: dict[str, Any], domain: int, log_dir: Path
             ) -> list[dict[str, Any]]:
    """Start the node and a camera at ``rate`` on ``domain``, measure every width, stop."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32

    env = node_environment(domain, True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    listener = Listener(context, [CAMERA])
    width_topic = "/" + (camera_topics(CAMERA).width or "")
    pub = listener.node.create_publisher(Float32, width_topic, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener.node)
    procs: list[Proc] = []
    rows: list[dict[str, Any]] = []
    try:
        procs = start_nodes(NODE_PER_CAMERA, [CAMERA], settings["checkpoint"],
                            settings["backend"], env, log_dir)
        node = procs[0]
        spin_until(executor, lambda: NODE in listener.statuses, START_TIMEOUT_S, procs,
                   "diagnostics from the node (model prepared)")
        procs.append(start_camera(CAMERA, 0, settings["size"], rate, env, log_dir))
        spin_until(executor, lambda: bool(listener.masks[CAMERA]), SETTLE_TIMEOUT_S, procs,
                   "a first mask")
        for width in settings["widths"]:
            row = measure_width(executor, listener, node, width, settings["seconds"],
                                lambda w: pub.publish(Float32(data=float(w))))
            row.update(rate=rate, backend=listener.statuses[NODE].backend)
            rows.append(row)
            print(table_row(row), flush=True)
        stop_camera(procs.pop())
    finally:
        stop_all(procs)
        executor.shutdown()
        listener.node.destroy_node()
        rclpy.try_shutdown(context=context)
    return rows


HEADER = ("| camera rate, frames/s | width | masks/s served | node CPU share, measured | "
          "node CPU share, its own figure | CPU share its budget predicts | CPU ms per mask |\n"
          "|---:|---:|---:|---:|---:|---:|---:|")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.0f} %"


def table_row(row: dict[str, Any]) -> str:
    ms = row["cpu_ms_per_mask"]
    return (f"| {row['rate']:g} | {row['width']:g} | {row['masks_per_s']:.1f} | "
            f"{_pct(row['cpu_share'])} | {_pct(row['node_cpu_share'])} | "
            f"{_pct(row['predicted_cpu_share'])} | {'-' if ms is None else f'{ms:.0f}'} |")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0],
                        help="camera frames/s to measure at")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--size", type=parse_frame_size, default=(640, 480),
                        help="frame size, width x height (640x480)")
    parser.add_argument("--seconds", type=float, default=10.0, help="window per width")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model file (default: the packaged default model)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "openvino", "onnxruntime"))
    parser.add_argument("--domain", type=int, default=None,
                        help="first ROS domain id (1-100; default: a random one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if min(args.rates) <= 0 or args.seconds <= 0:
        parser.error("--rates and --seconds must be > 0")
    try:
        checkpoint = (args.checkpoint or default_checkpoint()).resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        parser.error(f"no model: {exc}")
    profile_env = node_environment(0, True)  # this process takes masks of any size too
    for var in PROFILE_VARS:
        os.environ.pop(var, None)
        if var in profile_env:
            os.environ[var] = profile_env[var]
    settings = {"rates": args.rates, "widths": args.widths, "size": args.size,
                "seconds": args.seconds, "checkpoint": checkpoint, "backend": args.backend}
    domain = args.domain if args.domain is not None else random.randint(1, 100)
    print(f"{args.size[0]}x{args.size[1]} rgb8, {args.seconds:g} s per width; model "
          f"{checkpoint.name}, backend {args.backend}; {os.cpu_count()} CPUs\n")
    print(HEADER, flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cpu_share_bench_") as tmp:
        for k, rate in enumerate(args.rates):
            rows += run_rate(rate, settings, (domain - 1 + k) % 100 + 1, Path(tmp))
    if args.json is not None:
        out = {"settings": {**settings, "size": list(args.size), "checkpoint": checkpoint.name,
                            "cpu_count": os.cpu_count()}, "rows": rows}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
