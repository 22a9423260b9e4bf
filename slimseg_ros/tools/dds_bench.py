"""
DDS delivery check: camera frames into slimseg_node and class masks out, as on a robot.

Per frame size, camera reliability and Fast DDS profile, each side in its own process.

    python -m slimseg_ros.tools.dds_bench [--frames 20] [--rate 10] [--checkpoint FILE] [--quick]

For every case a separate "camera" process publishes ``--frames`` rgb8 frames at ``--rate`` Hz
(reliable or best effort; with or without the shipped large shared-memory profile) to a running
``slimseg_node`` (started from the console script with config/slimseg.yaml, with or without its
profile). This process counts the frames the node took in (its diagnostics) and the masks that
arrived at a reliable and at a best-effort subscriber (both with Fast DDS defaults), and prints a
Markdown table. Without ``--checkpoint`` a small random-weight model is used: delivery does not
depend on the weights. Nothing here passes or fails; it prints what this machine does. Frame
sizes are ``HxW``, height first (480x640, 720x1280, 1080x1920).
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..resources import default_dds_profile
from ..ros.contract import TOPICS, Diagnostics, is_segmentation_status, read_diagnostics
from .common import RosSession, format_size, markdown_header, markdown_row
from .node_process import (default_params_file, node_command, node_environment,
                           stand_in_checkpoint, stop_process)

SIZES = ((480, 640), (720, 1280), (1080, 1920))  # height, width
NODE_OVERRIDES = {"qos_check_period_s": 0.2, "diagnostics_period_s": 0.25,
                  "publish_color": False}


@dataclass
class Case:
    """One row: frame size, camera reliability, and which side has the shipped profile."""

    width: int
    height: int
    reliable: bool
    camera_profile: bool
    node_profile: bool

    @property
    def tag(self) -> str:
        """Name the case (``480x640-rel-cp-np``): the prefix of its frames' ``frame_id``."""
        return (f"{format_size(self.height, self.width)}-{'rel' if self.reliable else 'be'}-"
                f"{'cp' if self.camera_profile else 'cd'}-{'np' if self.node_profile else 'nd'}")


# ----------------------------------------------------------------------------- camera process
def camera_main(argv: list[str]) -> int:
    """Publish frames as the camera process: ``--camera H W reliable|best_effort N HZ TAG``."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    h, w, rel, tag = int(argv[0]), int(argv[1]), argv[2], argv[5]
    n, hz = int(argv[3]), float(argv[4])
    with RosSession() as ros:  # ROS_DOMAIN_ID from the environment the bench gave
        node = ros.node("dds_bench_camera")
        policy = (ReliabilityPolicy.RELIABLE if rel == "reliable"
                  else ReliabilityPolicy.BEST_EFFORT)
        pub = node.create_publisher(Image, TOPICS.image, QoSProfile(depth=1, reliability=policy))
        deadline = time.monotonic() + 15
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the node's auto QoS re-subscribes to match this publisher
        msg = Image(height=h, width=w, encoding="rgb8", step=3 * w)
        msg.data = array.array("B", os.urandom(3 * w * h))
        for i in range(n):
            msg.header.frame_id = f"{tag}/{i}"
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            time.sleep(1.0 / hz)
        time.sleep(1.0)  # reliable retransmissions finish before the participant goes away
        print(json.dumps({"sent": n}))
    return 0


# ----------------------------------------------------------------------------- measuring side
class Counter:
    """Subscribes to the node's masks (reliable and best effort) and diagnostics."""

    def __init__(self, ros: RosSession) -> None:
        """Make the counting node in ``ros`` and subscribe it."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.ros = ros
        self.node = ros.node("dds_bench_counter")
        self.masks: dict[str, set[str]] = {"reliable": set(), "best_effort": set()}
        self.diag: Diagnostics | None = None
        self.diag_seq = 0
        for name, policy in (("reliable", ReliabilityPolicy.RELIABLE),
                             ("best_effort", ReliabilityPolicy.BEST_EFFORT)):
            self.node.create_subscription(
                Image, TOPICS.mask, lambda m, k=name: self.masks[k].add(m.header.frame_id),
                QoSProfile(depth=5, reliability=policy))
        self.node.create_subscription(DiagnosticArray, TOPICS.diagnostics, self._on_diag, 10)

    def _on_diag(self, msg: Any) -> None:
        if msg.status and is_segmentation_status(msg.status[0].name):
            self.diag = read_diagnostics({kv.key: kv.value for kv in msg.status[0].values})
            self.diag_seq += 1

    def counts(self) -> tuple[int, int, int]:
        """
        Return the node's frames received, dropped and processed (= masks published).

        Read from a diagnostics message newer than this call.
        """
        seq = self.diag_seq
        self.ros.spin_until(lambda: self.diag_seq > seq + 1, timeout=5)
        d = self.diag or Diagnostics()
        return d.frames_received, d.frames_dropped, d.frames_processed


def run(cases: list[Case], frames: int, rate: float, checkpoint: Path | None,
        domain: int) -> list[dict[str, Any]]:
    """Measure ``cases`` on ``domain``, one node process per node profile; print each row."""
    if default_dds_profile() is None:
        raise SystemExit("the shipped Fast DDS profile (config/fastdds_large_shm.xml) is missing")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, RosSession(domain) as ros:
        ckpt = checkpoint or stand_in_checkpoint(Path(tmp) / "dds_bench_model.pt", tiny=True)
        cmd = node_command(default_params_file(), {"checkpoint": str(ckpt), **NODE_OVERRIDES})
        counter = Counter(ros)
        for node_profile in sorted({c.node_profile for c in cases}, reverse=True):
            node = subprocess.Popen(cmd, env=node_environment(domain, node_profile),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            try:
                if not ros.spin_until(lambda: counter.diag is not None, 90, step=0.1):
                    raise SystemExit("slimseg_node did not start (no diagnostics in 90 s)")
                for case in [c for c in cases if c.node_profile == node_profile]:
                    rows.append(_run_case(case, frames, rate, domain, counter))
                    print(_row_text(rows[-1]), flush=True)
            finally:
                stop_process(node)
                counter.diag = None
    return rows


def _run_case(case: Case, frames: int, rate: float, domain: int,
              counter: Counter) -> dict[str, Any]:
    before = counter.counts()
    env = node_environment(domain, case.camera_profile)
    cmd = [sys.executable, "-m", "slimseg_ros.tools.dds_bench", "--camera", str(case.height),
           str(case.width), "reliable" if case.reliable else "best_effort", str(frames),
           str(rate), case.tag]
    cam = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    counter.ros.spin_until(lambda: cam.poll() is not None, timeout=60)
    cam.wait(timeout=10)
    counter.ros.spin_for(1.0, step=0.05)
    after = counter.counts()
    received, dropped, processed = (a - b for a, b in zip(after, before))
    masks = {k: sum(1 for f in v if f.startswith(case.tag + "/"))
             for k, v in counter.masks.items()}
    return {"case": case, "sent": frames, "node_in": received, "node_dropped": dropped,
            "published": processed,
            "masks_reliable": masks["reliable"], "masks_best_effort": masks["best_effort"]}


HEADER = markdown_header(("frame", "camera QoS", "camera profile", "node profile", "frames sent",
                          "node took in", "skipped (newer frame waiting)", "masks published",
                          "masks at reliable sub", "masks at best-effort sub"))


def _row_text(row: dict[str, Any]) -> str:
    c: Case = row["case"]
    n, m = row["sent"], row["published"]

    def pct(key: str, total: int) -> str:
        return f"{row[key]}/{total} ({100 * row[key] / total:.0f}%)" if total else f"{row[key]}/0"
    return markdown_row([f"{format_size(c.height, c.width)} rgb8",
                         "reliable" if c.reliable else "best effort",
                         "large SHM" if c.camera_profile else "defaults",
                         "large SHM" if c.node_profile else "defaults", n, pct("node_in", n),
                         row["node_dropped"], m, pct("masks_reliable", m),
                         pct("masks_best_effort", m)])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--camera"]:
        return camera_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per case")
    parser.add_argument("--rate", type=float, default=10.0, help="camera rate, Hz")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--quick", action="store_true",
                        help="only the node with its profile (skip the node-defaults rows)")
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", 0)))
    args = parser.parse_args(argv)
    cases = [Case(width=w, height=h, reliable=rel, camera_profile=cam, node_profile=node)
             for node in ((True,) if args.quick else (True, False))
             for (h, w) in SIZES for rel in (True, False) for cam in (False, True)]
    print(f"{len(cases)} cases, {args.frames} frames at {args.rate:g} Hz each; "
          f"Fast DDS shared-memory profile: {default_dds_profile()}\n")
    print(HEADER, flush=True)
    run(cases, args.frames, args.rate, args.checkpoint, args.domain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
