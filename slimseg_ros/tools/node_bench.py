"""
The harness of the benches that run the node as a process and measure it from outside.

``multicam_bench`` and ``cpu_share_bench`` both, on a fresh ROS domain per case, start
``slimseg_node`` processes (the console script with ``config/slimseg.yaml``) and camera processes
publishing rgb8 frames at a rate, all with the shipped large-frame DDS profile, and listen here
to every camera's masks and the nodes' diagnostics; each then measures its own figures. Written
once here, with the command-line options and the start of a run they share.

Frame sizes are ``HxW`` (height first), as everywhere in the tools: the default ``480x640`` is
a VGA camera's 640-pixel-wide frame.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..resources import default_checkpoint
from ..ros.contract import (NODE_NAME, Diagnostics, camera_topics, is_segmentation_status,
                            read_diagnostics)
from .common import (SIZE_FORMAT, RosSession, describe_size, format_size, last_json_line,
                     size_arg)
from .node_process import (PROFILE_VARS, default_params_file, log_tail, node_command,
                           node_environment, stop_process)

DEFAULT_SIZE = (480, 640)  # height, width
NODE_OVERRIDES = {"qos_check_period_s": 0.2, "diagnostics_period_s": 0.5,
                  "publish_color": False}
CAMERA_MODULE = "slimseg_ros.tools.node_bench"
CAMERA_FLAG = "--camera"
Item = TypeVar("Item")


@dataclass
class Proc:
    """A node or camera process and the file its output goes to (shown when it fails)."""

    name: str
    proc: subprocess.Popen
    log: Path


# ----------------------------------------------------------------------------- camera process
def camera_main(argv: list[str]) -> int:
    """
    Run the publishing side, as its own process: ``--camera TOPIC FRAME_ID H W HZ SEED``.

    Publishes until its stdin closes (the bench closes it, or dies), then prints the stamps (ns)
    of every frame it sent as JSON, so the bench counts the frames sent in its window exactly.
    """
    import numpy as np
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic, frame_id = argv[0], argv[1]
    height, width, hz, seed = int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5])
    with RosSession() as ros:  # ROS_DOMAIN_ID from the environment the bench gave
        node = ros.node(f"bench_camera_{frame_id}")
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
    return 0


def start_camera(camera: str, index: int, size: tuple[int, int], rate: float,
                 env: dict[str, str], log_dir: Path) -> Proc:
    """Start a camera process publishing ``size`` (H, W) frames on ``camera``'s image topic."""
    cmd = [sys.executable, "-m", CAMERA_MODULE, CAMERA_FLAG, "/" + camera_topics(camera).image,
           f"{camera}_optical_frame", str(size[0]), str(size[1]), str(rate), str(index)]
    log = log_dir / f"camera_{camera}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    return Proc(f"camera {camera}", proc, log)


def stop_camera(camera: Proc) -> list[int]:
    """Close its stdin and read the stamps it sent ([] when it failed)."""
    try:
        out, _ = camera.proc.communicate(timeout=15)
        return list(last_json_line(out)["stamps_ns"])
    except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        stop_process(camera.proc)
        return []


# ----------------------------------------------------------------------------- node processes
def start_nodes(cameras: Sequence[str], checkpoint: Path, backend: str, env: dict[str, str],
                log_dir: Path, one_node: bool,
                overrides: dict[str, Any] | None = None) -> list[Proc]:
    """
    Start one node with ``cameras`` set, or one plain node per camera in its namespace.

    Each per-camera node is renamed ``slimseg_<camera>``, so each publishes its own diagnostics
    status. ``overrides`` sets further parameters.
    """
    base = {"checkpoint": str(checkpoint), "backend": backend, **NODE_OVERRIDES,
            **(overrides or {})}
    if one_node:
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


# ----------------------------------------------------------------------------- measuring side
class Listener:
    """
    Every camera's masks and the nodes' diagnostics statuses, heard by ``node``.

    Masks are kept as (receive ns, stamp ns) per camera, statuses by node name.
    """

    def __init__(self, node: Any, cameras: Sequence[str], masks: bool = True) -> None:
        """
        Subscribe ``node`` to ``/diagnostics`` and to every camera's mask topic.

        ``masks`` False leaves the masks unsubscribed until :meth:`listen_to_masks` (a node
        nobody listens to infers nothing).
        """
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.cameras = list(cameras)
        self.masks: dict[str, list[tuple[int, int]]] = {cam: [] for cam in cameras}
        self._mask_subs: list[Any] = []
        self.statuses: dict[str, Diagnostics] = {}
        if masks:
            self.listen_to_masks()
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def listen_to_masks(self) -> None:
        """Subscribe to every camera's masks."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for cam in self.cameras:
            self._mask_subs.append(self.node.create_subscription(
                Image, "/" + camera_topics(cam).mask, lambda m, c=cam: self._on_mask(c, m), qos))

    def stop_listening_to_masks(self) -> None:
        """Drop the mask subscriptions (the masks heard so far stay)."""
        for sub in self._mask_subs:
            self.node.destroy_subscription(sub)
        self._mask_subs = []

    def _on_mask(self, camera: str, msg: Any) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.masks[camera].append((time.time_ns(), stamp))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if is_segmentation_status(status.name):
                node = status.name.rsplit(":", 1)[0]
                self.statuses[node] = read_diagnostics({kv.key: kv.value for kv in status.values})


class NodeBench:
    """
    One case on one ROS domain: the listener here, the processes it starts, their teardown.

    ``with NodeBench(domain, cameras, log_dir) as bench:`` start nodes and cameras, wait and
    spin; leaving the block stops every process (SIGINT to all at once), then rclpy.
    """

    def __init__(self, domain: int, cameras: Sequence[str], log_dir: Path,
                 masks: bool = True) -> None:
        """Join ``domain`` with the large-frame profile and listen to ``cameras`` (``masks``)."""
        self.env = node_environment(domain, True)  # 480x640 rgb8 is > 512 KB
        self.log_dir = log_dir
        self.nodes: list[Proc] = []
        self.cameras: list[Proc] = []
        self.ros = RosSession(domain)
        try:
            self.listener = Listener(self.ros.node("node_bench_listener"), cameras, masks)
        except BaseException:
            self.ros.close()
            raise

    def start_nodes(self, cameras: Sequence[str], checkpoint: Path, backend: str,
                    one_node: bool, overrides: dict[str, Any] | None = None) -> list[Proc]:
        """Start the node processes (see :func:`start_nodes`)."""
        nodes = start_nodes(cameras, checkpoint, backend, self.env, self.log_dir, one_node,
                            overrides)
        self.nodes += nodes
        return nodes

    def start_camera(self, camera: str, index: int, size: tuple[int, int],
                     rate: float) -> Proc:
        """Start a camera process (see :func:`start_camera`)."""
        proc = start_camera(camera, index, size, rate, self.env, self.log_dir)
        self.cameras.append(proc)
        return proc

    def stop_camera(self, camera: Proc) -> list[int]:
        """Stop a camera process; return the stamps (ns) of the frames it sent."""
        self.cameras.remove(camera)
        return stop_camera(camera)

    def wait_for(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Spin until ``done()``; a process exiting or the timeout ends the bench, with a log."""
        procs = self.nodes + self.cameras

        def check() -> bool:
            if done():
                return True
            for p in procs:
                if p.proc.poll() is not None:
                    raise SystemExit(f"{p.name} exited with {p.proc.returncode} while waiting "
                                     f"for {what}; its log ends:\n{log_tail(p.log)}")
            return False

        if not self.ros.spin_until(check, timeout):
            raise SystemExit(f"no {what} within {timeout:.0f} s; the log of {procs[0].name} "
                             f"ends:\n{log_tail(procs[0].log)}")

    def spin_for(self, seconds: float, every: Callable[[], None] | None = None,
                 period: float = 0.5) -> None:
        """Spin for ``seconds``, calling ``every()`` every ``period`` seconds."""
        self.ros.spin_for(seconds, every, period)

    def close(self) -> None:
        """Stop every process this case started, then this process's rclpy."""
        try:
            stop_all(self.cameras + self.nodes)
        finally:
            self.ros.close()

    def __enter__(self) -> NodeBench:
        """Return the case itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop everything (:meth:`close`)."""
        self.close()


# ----------------------------------------------------------------------------- command line
def add_common_options(parser: argparse.ArgumentParser,
                       size: tuple[int, int] = DEFAULT_SIZE) -> None:
    """Add the options every such bench takes: ``--size`` (default ``size``), ``--checkpoint``."""
    parser.add_argument("--size", type=size_arg, default=size, metavar="HxW",
                        help=f"camera frame size, {SIZE_FORMAT} (default {format_size(*size)})")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model file (default: the packaged default model)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--domain`` and ``--json``."""
    parser.add_argument("--domain", type=int, default=None,
                        help="first ROS domain id (1-100; default: a random one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")


def resolve_model(parser: argparse.ArgumentParser, checkpoint: Path | None) -> Path:
    """Return the model file (``checkpoint`` or the packaged one); a missing one ends here."""
    try:
        return (checkpoint or default_checkpoint()).resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:
        parser.error(f"no model: {exc}")


def listen_with_node_profile() -> None:
    """Give this process the nodes' DDS profile: its subscribers take masks of any size too."""
    profile_env = node_environment(0, True)
    for var in PROFILE_VARS:
        os.environ.pop(var, None)
        if var in profile_env:
            os.environ[var] = profile_env[var]


def frame_text(size: tuple[int, int]) -> str:
    """Say the frames: ``480x640 rgb8 (height 480, width 640)``."""
    return f"{format_size(*size)} rgb8 ({describe_size(*size)})"


def on_own_domains(items: Iterable[Item], first_domain: int | None, prefix: str
                   ) -> Iterator[tuple[Item, int, Path]]:
    """
    Give each item its own ROS domain (``first_domain``, the next, ... within 1-100).

    Yields (item, domain, log folder); ``first_domain`` None picks a random one. The log folder
    is a temporary one, removed after the last item.
    """
    first = first_domain if first_domain is not None else random.randint(1, 100)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for k, item in enumerate(items):
            yield item, (first - 1 + k) % 100 + 1, Path(tmp)


def write_figures(path: Path, settings: dict[str, Any], key: str,
                  rows: list[dict[str, Any]]) -> None:
    """
    Write ``{"settings": ..., key: rows}`` as JSON.

    ``settings.size`` is [height, width], spelt out in ``settings.frame``; the checkpoint is
    written by name.
    """
    height, width = settings["size"]
    out = {"settings": {**settings, "size": [height, width],
                        "frame": describe_size(height, width),
                        "checkpoint": Path(settings["checkpoint"]).name,
                        "cpu_count": os.cpu_count()}, key: rows}
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == [CAMERA_FLAG]:
        sys.exit(camera_main(sys.argv[2:]))
    sys.exit(f"usage: python -m {CAMERA_MODULE} {CAMERA_FLAG} TOPIC FRAME_ID H W HZ SEED "
             "(multicam_bench and cpu_share_bench start it)")
