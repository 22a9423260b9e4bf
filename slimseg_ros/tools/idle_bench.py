"""
What the node costs when nobody listens: its process CPU with and without a mask subscriber.

    python -m slimseg_ros.tools.idle_bench [--rate 10] [--size 360x480] [--seconds 10]
        [--checkpoint FILE] [--backend auto] [--json out.json]

One ``slimseg_node`` process (default parameters, the shipped large-frame DDS profile) and a
camera process publishing rgb8 frames at ``--rate``, in three cases one after the other:
``lazy`` (the default) with nobody subscribed to any output; ``lazy`` with one mask subscriber
(this process); and, the subscriber gone, ``lazy`` set to false over the parameter service:
every frame inferred for nobody, as before ``lazy`` existed. In a window of ``--seconds`` after
a few seconds' settling this process reads the node process's CPU time (psutil, children
included) and counts the masks that arrive; the node's diagnostics give the frames it served and
skipped. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..inference.backends import CHOICES as BACKEND_CHOICES
from ..ros.contract import SKIPPED, Diagnostics
from .common import cpu_name, markdown_table
from .cpu_share_bench import process_cpu_seconds
from .node_bench import (NodeBench, add_common_options, add_run_options, frame_text,
                         listen_with_node_profile, on_own_domains, resolve_model, write_figures)

CAMERA = "cam0"
NODE = f"slimseg_{CAMERA}"
START_TIMEOUT_S = 300.0
FIRST_MASK_TIMEOUT_S = 60.0
CASES = ("lazy, nobody listens", "lazy, one mask subscriber", "lazy off, nobody listens")


def measure(bench: NodeBench, node: Any, name: str, settings: dict[str, Any]
            ) -> dict[str, Any]:
    """Settle, then measure one window of the running node: CPU, masks, served and skipped."""
    listener = bench.listener
    bench.spin_for(settings["settle"])
    before = listener.statuses[NODE]
    n0, c0, t0 = (len(listener.masks[CAMERA]), process_cpu_seconds(node.proc.pid),
                  time.monotonic())
    bench.spin_for(settings["seconds"])
    n1, c1, t1 = (len(listener.masks[CAMERA]), process_cpu_seconds(node.proc.pid),
                  time.monotonic())
    bench.spin_for(1.0)  # the diagnostics of the window's end
    after = listener.statuses.get(NODE, Diagnostics())
    window = t1 - t0
    return {"case": name, "window_s": window, "cpu_core_share": (c1 - c0) / window,
            "masks_per_s": (n1 - n0) / window,
            "served": after.frames_processed - before.frames_processed,
            "skipped_no_subscribers": (after.skipped.get(SKIPPED.no_subscribers, 0)
                                       - before.skipped.get(SKIPPED.no_subscribers, 0)),
            "received": after.frames_received - before.frames_received,
            "backend": after.backend}


def set_lazy(bench: NodeBench, value: bool) -> None:
    """Set the node's ``lazy`` over its parameter service (as ``ros2 param set`` does)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = bench.listener.node.create_client(SetParameters, f"/{CAMERA}/{NODE}/set_parameters")
    bench.wait_for(client.service_is_ready, START_TIMEOUT_S, "the node's parameter service")
    future = client.call_async(SetParameters.Request(parameters=[Parameter(
        name="lazy", value=ParameterValue(type=ParameterType.PARAMETER_BOOL,
                                          bool_value=value))]))
    bench.wait_for(future.done, START_TIMEOUT_S, "the parameter service's answer")
    if not future.result().results[0].successful:
        raise SystemExit(f"the node refused lazy:={value}: {future.result().results[0].reason}")


def run(settings: dict[str, Any], domain: int, log_dir: Path) -> list[dict[str, Any]]:
    """Start the node and the camera; measure the three cases in turn."""
    with NodeBench(domain, [CAMERA], log_dir, masks=False) as bench:
        listener = bench.listener
        [node] = bench.start_nodes([CAMERA], settings["checkpoint"], settings["backend"],
                                   one_node=False, overrides={"lazy": True})
        bench.wait_for(lambda: NODE in listener.statuses, START_TIMEOUT_S,
                       "diagnostics from the node (model prepared)")
        bench.start_camera(CAMERA, 0, settings["size"], settings["rate"])
        bench.wait_for(lambda: listener.statuses[NODE].frames_received > 0,
                       FIRST_MASK_TIMEOUT_S, "a first frame taken by the node")
        rows = [measure(bench, node, CASES[0], settings)]
        listener.listen_to_masks()
        bench.wait_for(lambda: bool(listener.masks[CAMERA]), FIRST_MASK_TIMEOUT_S,
                       "a first mask")
        rows.append(measure(bench, node, CASES[1], settings))
        listener.stop_listening_to_masks()
        set_lazy(bench, False)
        rows.append(measure(bench, node, CASES[2], settings))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure the three cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="camera frames/s")
    add_common_options(parser, size=(360, 480))  # --size HxW, --checkpoint
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per case")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds before each window (the node reaches its steady state)")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    add_run_options(parser)  # --domain, --json
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rate <= 0 or args.seconds <= 0 or args.settle < 0:
        parser.error("--rate and --seconds must be > 0, --settle >= 0")
    checkpoint = resolve_model(parser, args.checkpoint)
    listen_with_node_profile()
    settings = {"rate": args.rate, "size": args.size, "seconds": args.seconds,
                "settle": args.settle, "checkpoint": checkpoint, "backend": args.backend}
    print(f"{frame_text(args.size)} at {args.rate:g} Hz, {args.seconds:g} s window; model "
          f"{checkpoint.name}, backend {args.backend}; {cpu_name()}, {os.cpu_count()} CPUs\n",
          flush=True)
    [rows] = [run(settings, domain, log_dir)
              for _, domain, log_dir in on_own_domains([None], args.domain, "idle_bench_")]
    print(markdown_table(("case", "node process CPU, % of one core", "masks/s received",
                          "frames served", "frames skipped: no subscribers", "frames taken"),
                         [(r["case"], f"{100.0 * r['cpu_core_share']:.0f}",
                           f"{r['masks_per_s']:.1f}", r["served"], r["skipped_no_subscribers"],
                           r["received"]) for r in rows]))
    if args.json is not None:
        write_figures(args.json, {**settings, "cpu": cpu_name()}, "cases", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
