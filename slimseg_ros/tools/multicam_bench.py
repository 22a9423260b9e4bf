"""
Several cameras on one model: one node serving N cameras against N nodes serving one each.

Every camera and every node runs in its own process, as on a robot.

    python -m slimseg_ros.tools.multicam_bench [--cameras 1 2 4] [--rate 10] [--size 640x480]
        [--seconds 20] [--warmup 3] [--checkpoint FILE] [--backend auto] [--json out.json]

For each camera count N and each layout a fresh ROS domain holds either one ``slimseg_node`` with
``cameras:=[cam0, ...]`` or N nodes, node K in namespace ``/camK``; both give camera K the same
topics (``/camK/image`` in, ``/camK/slimseg/mask`` out), so the camera processes and this
process's mask subscribers do not change between layouts. Each camera process publishes rgb8
frames of its own content and ``frame_id`` at ``--rate`` Hz, stamped with the publish time.

The model's start-up is left out: cameras start once every node publishes diagnostics, and the
window opens ``--warmup`` seconds after every camera's first mask. In the window, per camera:
masks/s received here, source-frame age of those masks (receive time - header stamp, the delay a
robot sees), frames served / frames sent (frames stamped in the window that came back as masks);
and the node processes' total resident memory (children included, sampled, the largest sum).
RSS counts pages shared between processes (libraries, the shared-memory transport) once per
process, so the N-node sum overstates what each further node really adds. Nothing here passes
or fails; it prints what this machine does.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ros.contract import (NODE_NAME, Diagnostics, camera_topics, is_segmentation_status,
                            read_diagnostics)
from ..resources import default_checkpoint
from .node_process import (PROFILE_VARS, default_params_file, log_tail, node_command,
                           node_environment, stop_process)

ONE_NODE = "one node, N cameras"
NODE_PER_CAMERA = "N nodes, one camera each"
LAYOUTS = (ONE_NODE, NODE_PER_CAMERA)
NODE_OVERRIDES = {"qos_check_period_s": 0.2, "diagnostics_period_s": 0.5,
                  "publish_color": False}
RSS_PERIOD_S = 0.5
START_TIMEOUT_S = 300.0  # N nodes preparing the default model at once on a small CPU
FIRST_MASK_TIMEOUT_S = 60.0


def camera_names(count: int) -> list[str]:
    return [f"cam{i}" for i in range(count)]


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480): width x height, as cameras are named."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 640x480 (width x height), got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


@dataclass
class Proc:
    """A node or camera process and the file its output goes to (shown when it fails)."""

    name: str
    proc: subprocess.Popen
    log: Path


# ----------------------------------------------------------------------------- camera process
def camera_main(argv: list[str]) -> int:
    """
    Run the publishing side, as its own process: ``--camera TOPIC FRAME_ID W H HZ SEED``.

    Publishes until its stdin closes (the bench closes it, or dies), then prints the stamps (ns)
    of every frame it sent as JSON, so the bench counts the frames sent in its window exactly.
    """
    import numpy as np
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic, frame_id = argv[0], argv[1]
    width, height, hz, seed = int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5])
    rclpy.init()
    node = Node(f"multicam_bench_{frame_id}")
    pub = node.create_publisher(Image, topic, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE))  # what camera drivers default to
    msg = Image(height=height, width=width, encoding="rgb8", step=3 * width)
    msg.header.frame_id = frame_id
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg.data = array.array("B", pixels.tobytes())
    stamps: list[int] = []
    due = time.monotonic()
    while not select.select([sys.stdin], [], [], max(0.0, due - time.monotonic()))[0]:
        now = node.get_clock().now()
        msg.header.stamp = now.to_msg()
        pub.publish(msg)
        stamps.append(now.nanoseconds)
        due = max(due + 1.0 / hz, time.monotonic())  # late: no burst to catch up
    print(json.dumps({"stamps_ns": stamps}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def start_camera(camera: str, index: int, size: tuple[int, int], rate: float,
                 env: dict[str, str], log_dir: Path) -> Proc:
    cmd = [sys.executable, "-m", "slimseg_ros.tools.multicam_bench", "--camera",
           "/" + camera_topics(camera).image, f"{camera}_optical_frame", str(size[0]),
           str(size[1]), str(rate), str(index)]
    log = log_dir / f"camera_{camera}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    return Proc(f"camera {camera}", proc, log)


def stop_camera(camera: Proc) -> list[int]:
    """Close its stdin and read the stamps it sent ([] when it failed)."""
    try:
        out, _ = camera.proc.communicate(timeout=15)
        return list(json.loads(out.strip().splitlines()[-1])["stamps_ns"])
    except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
        stop_process(camera.proc)
        return []


# ----------------------------------------------------------------------------- node processes
def start_nodes(layout: str, cameras: Sequence[str], checkpoint: Path, backend: str,
                env: dict[str, str], log_dir: Path) -> list[Proc]:
    """
    Start one node with ``cameras`` set, or one plain node per camera in its namespace.

    Each per-camera node is renamed, so each publishes its own diagnostics status.
    """
    base = {"checkpoint": str(checkpoint), "backend": backend, **NODE_OVERRIDES}
    if layout == ONE_NODE:
        specs = [(NODE_NAME, node_command(default_params_file(),
                                          {**base, "cameras": list(cameras)}))]
    else:
        specs = [(f"slimseg_{c}", node_command(default_params_file(), base)
                  + ["-r", f"__ns:=/{c}", "-r", f"__node:=slimseg_{c}"]) for c in cameras]
    nodes = []
    for name, cmd in specs:
        log = log_dir / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        nodes.append(Proc(name, proc, log))
    return nodes


def stop_all(procs: Sequence[Proc]) -> None:
    """SIGINT to all first, so N nodes shut down together rather than one after another."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGINT)
    for p in procs:
        stop_process(p.proc)


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


# ----------------------------------------------------------------------------- measuring side
@dataclass
class Listener:
    """
    This process's ROS side: every camera's masks and the nodes' shared diagnostics statuses.

    Masks are kept as (receive ns, stamp ns) per camera, statuses by node name.
    """

    context: Any
    cameras: Sequence[str]
    masks: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    statuses: dict[str, Diagnostics] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = Node("multicam_bench_listener", context=self.context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for cam in self.cameras:
            self.masks[cam] = []
            self.node.create_subscription(Image, "/" + camera_topics(cam).mask,
                                          lambda m, c=cam: self._on_mask(c, m), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_mask(self, camera: str, msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.masks[camera].append((time.time_ns(), stamp))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if is_segmentation_status(status.name):
                node = status.name.rsplit(":", 1)[0]
                self.statuses[node] = read_diagnostics({kv.key: kv.value for kv in status.values})


def spin_until(executor: Any, done: Callable[[], bool], timeout: float,
               procs: Sequence[Proc], what: str) -> None:
    """Spin until ``done()``; a process that exits or the timeout ends the bench, with a log."""
    deadline = time.monotonic() + timeout
    while not done():
        for p in procs:
            if p.proc.poll() is not None:
                raise SystemExit(f"{p.name} exited with {p.proc.returncode} while waiting for "
                                 f"{what}; its log ends:\n{log_tail(p.log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout:.0f} s; the log of {procs[0].name} "
                             f"ends:\n{log_tail(procs[0].log)}")
        executor.spin_once(timeout_sec=0.05)


def spin_for(executor: Any, seconds: float, every: Callable[[], None] | None = None) -> None:
    end, next_call = time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < end:
        if every is not None and time.monotonic() >= next_call:
            every()
            next_call += RSS_PERIOD_S
        executor.spin_once(timeout_sec=0.02)


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
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    cameras = camera_names(count)
    env = node_environment(domain, True)  # the large-frame profile: 640x480 rgb8 is > 512 KB
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    listener = Listener(context, cameras)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener.node)
    nodes: list[Proc] = []
    cams: list[Proc] = []
    try:
        nodes = start_nodes(layout, cameras, settings["checkpoint"], settings["backend"], env,
                            log_dir)
        spin_until(executor, lambda: all(n.name in listener.statuses for n in nodes),
                   START_TIMEOUT_S, nodes, "diagnostics from every node (model prepared)")
        cams = [start_camera(c, i, settings["size"], settings["rate"], env, log_dir)
                for i, c in enumerate(cameras)]
        spin_until(executor, lambda: all(listener.masks.values()), FIRST_MASK_TIMEOUT_S,
                   nodes + cams, "a first mask on every camera")
        spin_for(executor, settings["warmup"])
        rss: list[int] = []
        t0 = time.time_ns()
        spin_for(executor, settings["seconds"], lambda: rss.append(total_rss(nodes)))
        t1 = time.time_ns()
        sent = {c: stop_camera(p) for c, p in zip(cameras, cams)}
        ages = [(r - s) / 1e9 for m in listener.masks.values() for r, s in m if r >= t0]
        spin_for(executor, min(10.0, max(1.0, 1.5 * max(ages, default=0.0))))  # in flight
    finally:
        stop_all(cams + nodes)
        executor.shutdown()
        listener.node.destroy_node()
        rclpy.try_shutdown(context=context)
    diag = listener.statuses.get(nodes[0].name, Diagnostics())
    return {"cameras": count, "layout": layout, "node_processes": len(nodes),
            "domain_id": domain, "window_s": (t1 - t0) / 1e9,
            "rss_max_mib": max(rss, default=0) / 2**20, "rss_samples": len(rss),
            "backend": diag.backend, "device": diag.device,
            "per_camera": {c: camera_figures(listener.masks[c], sent[c], t0, t1)
                           for c in cameras}}


def run(settings: dict[str, Any], domain: int) -> list[dict[str, Any]]:
    """Every case, each on its own domain (``domain``, ``domain + 1``, ... within 1-100)."""
    cases = [(n, layout) for n in settings["cameras"] for layout in LAYOUTS]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="multicam_bench_") as tmp:
        for k, (count, layout) in enumerate(cases):
            rows.append(run_case(count, layout, (domain - 1 + k) % 100 + 1, settings, Path(tmp)))
            print(table_rows(rows[-1]), flush=True)
    return rows


# ----------------------------------------------------------------------------- report
HEADER = ("| cameras | layout | camera | masks/s | source-frame age p50 / max, ms | "
          "frames served / sent | node processes | node RSS, max MiB |\n"
          "|---|---|---|---|---|---|---|---|")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table_rows(case: dict[str, Any]) -> str:
    """Return the case's Markdown rows: one per camera, then the total with the node memory."""
    lines = []
    per_camera = case["per_camera"]
    for cam, f in per_camera.items():
        lines.append(f"| {case['cameras']} | {case['layout']} | {cam} | {f['masks_per_s']:.1f} | "
                     f"{_ms(f['age_p50_ms'])} / {_ms(f['age_max_ms'])} | "
                     f"{f['frames_served']}/{f['frames_sent']} | | |")
    total = sum(f["masks_per_s"] for f in per_camera.values())
    served = sum(f["frames_served"] for f in per_camera.values())
    sent = sum(f["frames_sent"] for f in per_camera.values())
    lines.append(f"| {case['cameras']} | {case['layout']} | all | {total:.1f} | | "
                 f"{served}/{sent} | {case['node_processes']} | {case['rss_max_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--camera"]:
        return camera_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4],
                        help="camera counts to measure")
    parser.add_argument("--rate", type=float, default=10.0, help="frames/s of each camera")
    parser.add_argument("--size", type=parse_frame_size, default=(640, 480),
                        help="frame size, width x height (640x480)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per case")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds after every camera's first mask before the window")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model file (default: the packaged default model)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "openvino", "onnxruntime"))
    parser.add_argument("--domain", type=int, default=None,
                        help="first ROS domain id (1-100; default: a random one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if min(args.cameras) < 1 or args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--cameras must be >= 1, --rate and --seconds > 0, --warmup >= 0")
    try:
        checkpoint = (args.checkpoint or default_checkpoint()).resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        parser.error(f"no model: {exc}")
    # this process's subscribers take masks of any size too: the same profile as the nodes
    profile_env = node_environment(0, True)
    for var in PROFILE_VARS:
        os.environ.pop(var, None)
        if var in profile_env:
            os.environ[var] = profile_env[var]
    settings = {"cameras": args.cameras, "rate": args.rate, "size": args.size,
                "seconds": args.seconds, "warmup": args.warmup, "checkpoint": checkpoint,
                "backend": args.backend}
    domain = args.domain if args.domain is not None else random.randint(1, 100)
    print(f"{args.size[0]}x{args.size[1]} rgb8 at {args.rate:g} Hz per camera, "
          f"{args.seconds:g} s window after {args.warmup:g} s warm-up; model {checkpoint.name}, "
          f"backend {args.backend}; {os.cpu_count()} CPUs\n")
    print(HEADER, flush=True)
    rows = run(settings, domain)
    if args.json is not None:
        out = {"settings": {**settings, "size": list(args.size), "checkpoint": checkpoint.name,
                            "cpu_count": os.cpu_count()}, "cases": rows}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
