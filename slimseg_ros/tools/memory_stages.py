"""
Where the bundle node's resident memory goes: what it holds after each stage of its start.

    python -m slimseg_ros.tools.memory_stages [--bundle DIR] [--frame 480x640] [--json out.json]

Run as a fresh process (imports count only once): it takes the node's stages in its order and
prints this process's resident memory after each (``malloc_trim`` first): the interpreter, NumPy,
OpenCV, rclpy and the message packages, the node's own modules, OpenVINO, the engine reading
the bundle (``precision: auto``, the ladder's points left unprepared, as a node without a
budget), every width compiled and run once with its working memory handed back (the node's
warm-up), one frame at the widest width, and a ROS node (its DDS participant, with the shipped
large-frame profile unless ``FASTDDS_DEFAULT_PROFILES_FILE`` names another). torch must not be
imported at any stage: it says so where it is. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

TORCH_MODULE = "torch"  # the module no stage may import (not the backend's name)


def measure(bundle: Path | None, frame_size: tuple[int, int]) -> list[dict[str, Any]]:
    """Take the stages in the node's order; return each one's name, MiB after it and added."""
    from .common import trimmed_rss_mib
    rows: list[dict[str, Any]] = []

    def stage(name: str) -> None:
        now = trimmed_rss_mib()
        added = now - rows[-1]["mib"] if rows else now
        rows.append({"stage": name, "mib": now, "added_mib": added,
                     "torch_imported": TORCH_MODULE in sys.modules})

    stage("interpreter")
    import numpy as np
    stage("NumPy")
    import cv2  # noqa: F401
    stage("OpenCV")
    import diagnostic_msgs.msg  # noqa: F401
    import rclpy
    import sensor_msgs.msg  # noqa: F401
    import std_msgs.msg  # noqa: F401
    stage("rclpy and the message packages")
    from ..ros import node as _node  # noqa: F401
    stage("the node's modules")
    import openvino  # noqa: F401
    stage("OpenVINO")
    from ..inference.bundle import BundleEngine
    from ..resources import default_bundle
    engine = BundleEngine(bundle or default_bundle(), backend="openvino", precision="auto",
                          defer_points=True)
    stage("the bundle read (its widths' IR, the CPU plugin)")
    engine.warmup(size=engine.input_size, release=True)
    stage("every width compiled and run once, working memory handed back")
    engine.infer(np.zeros((*frame_size, 3), np.uint8), engine.widths[-1])
    stage(f"one {frame_size[0]}x{frame_size[1]} frame at width {engine.widths[-1].value:g}")
    from ..ros.dds import apply_dds_profile
    apply_dds_profile()  # as the node does before rclpy.init
    rclpy.init()
    try:
        node = rclpy.create_node("slimseg_memory_stages")
        stage("a ROS node (its DDS participant)")
        node.destroy_node()
    finally:
        rclpy.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure the stages; print the table."""
    from .common import cpu_name, markdown_table, size_arg
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=None, help="the bundle (default: packaged)")
    p.add_argument("--frame", type=size_arg, default=(480, 640), help="HxW of the one frame")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if TORCH_MODULE in sys.modules:
        p.error("run it as a fresh process: python -m slimseg_ros.tools.memory_stages")
    rows = measure(args.bundle, args.frame)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs\n")
    print(markdown_table(("stage", "resident, MiB", "added, MiB", "torch imported"),
                         [(r["stage"], f"{r['mib']:.1f}", f"{r['added_mib']:+.1f}",
                           "yes" if r["torch_imported"] else "no") for r in rows],
                         align="lrrl"))
    if args.json is not None:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "cpu_count": os.cpu_count(),
                                         "frame": list(args.frame), "stages": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
