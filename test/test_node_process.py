"""
The node as its own process, started from the ``slimseg_node`` console script.

It runs with ``--ros-args --params-file config/slimseg.yaml`` and is driven over real DDS from
this process.

Also measures what a flood of frames does to the node: its memory stays flat and the source
frame of each published mask stays recent (printed; run with ``-s`` to see the figures).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("sensor_msgs.msg")
psutil = pytest.importorskip("psutil")

from node_harness import Probe, Spinner, image_msg, make_tiny_checkpoint, pick_domain_id, wait_for  # noqa: E402,E501
from slimseg_ros.ros.contract import REJECTED  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "slimseg.yaml"
EXE = Path(sys.executable).with_name("slimseg_node")
_PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                 "SLIMSEG_DDS_PROFILE")


def _node_env(domain: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROFILE_VARS}
    env.update(ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def node_process(tmp_path_factory):
    if not EXE.is_file():
        pytest.skip(f"console script {EXE} not installed (pip install -e .)")
    tmp = tmp_path_factory.mktemp("node_process")
    checkpoint = make_tiny_checkpoint(tmp / "tiny.pt")
    domain = pick_domain_id()
    log_path = tmp / "node.log"
    cmd = [str(EXE), "--ros-args", "--params-file", str(PARAMS_FILE),
           "-p", f"checkpoint:={checkpoint}", "-p", "torch_threads:=1",
           "-p", "diagnostics_period_s:=0.2", "-p", "qos_check_period_s:=0.2",
           "-p", "governor.min_dwell_s:=0.2", "-p", "warn_throttle_s:=0.5"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=_node_env(domain), stdout=log,
                                stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    # best-effort mask subscriber: large masks reach it only through the node's SHM profile
    probe = Probe(context, name="process_probe", mask_reliability="best_effort")
    spinner = Spinner(context, probe.node)
    try:
        wait_for(lambda: probe.count(probe.widths) > 0 or proc.poll() is not None, timeout=90)
        if proc.poll() is not None:
            pytest.fail(f"node exited with {proc.returncode}:\n{log_path.read_text()}")
        yield proc, probe, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            spinner.stop()
        finally:
            probe.destroy()
            rclpy.try_shutdown(context=context)


def _send_until_mask(probe, msg, count: int = 1, timeout: float = 20.0):
    start = probe.count(probe.masks)
    wait_for(lambda: probe.count(probe.masks) >= start + count, timeout,
             action=lambda: probe.image_pub.publish(msg), action_period=0.15)
    with probe.lock:
        return probe.masks[-1]


def test_720p_frames_in_masks_out_with_header_and_size(node_process) -> None:
    proc, probe, log = node_process
    rgb = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    stamp = rclpy.time.Time(seconds=42, nanoseconds=7).to_msg()
    mask = _send_until_mask(probe, image_msg(rgb, "rgb8", frame_id="front", stamp=stamp))
    assert (mask.height, mask.width, mask.encoding) == (720, 1280, "mono8")
    assert mask.header.frame_id == "front"
    assert (mask.header.stamp.sec, mask.header.stamp.nanosec) == (42, 7)
    assert "loaded checkpoint" in log.read_text()


def test_width_command_and_policies_reach_the_process(node_process) -> None:
    proc, probe, _ = node_process
    msg = image_msg(np.zeros((60, 80, 3), np.uint8), "bgr8")
    probe.send_width(0.25)
    wait_for(lambda: probe.widths[-1] == 0.25)
    _send_until_mask(probe, msg)
    d = probe.fresh_diag(lambda v: v.last_frame is not None and v.last_frame.width == 0.25)
    assert d.reason == "request 0.25"

    probe.send_width(1.0)
    wait_for(lambda: probe.widths[-1] == 1.0)
    probe.send_battery(0.2)  # 20 %: the 30 % row caps at 0.5
    d = probe.fresh_diag(lambda v: v.active_width == 0.5)
    assert "battery 20% <= 30%" in d.reason
    probe.send_battery(0.2, charging=True)
    probe.fresh_diag(lambda v: v.active_width == 1.0)
    probe.send_temperature(95.0)
    d = probe.fresh_diag(lambda v: v.active_width == 0.25)
    assert "thermal 95.0C >= 90C" in d.reason
    probe.send_temperature(30.0)
    probe.fresh_diag(lambda v: v.active_width == 1.0)


def test_bad_inputs_are_reported_and_the_process_keeps_serving(node_process) -> None:
    proc, probe, log = node_process
    bad = image_msg(np.zeros((20, 30, 3), np.uint8), "rgb8")
    bad.encoding = "nv12_unknown"
    wait_for(lambda: "nv12_unknown" in probe.diag().last_rejected.get(REJECTED.image, ""),
             action=lambda: probe.image_pub.publish(bad), timeout=15)
    probe.send_battery(math.nan)
    probe.send_width(7.0)
    d = probe.fresh_diag(lambda v: REJECTED.battery in v.rejected and "7.0" in
                         v.last_rejected.get(REJECTED.width, ""))
    assert d.active_width == 1.0
    mask = _send_until_mask(probe, image_msg(np.zeros((20, 30, 3), np.uint8), "rgb8",
                                             frame_id="after_bad"))
    assert mask.header.frame_id == "after_bad"
    text = log.read_text()
    assert "rejected image: unsupported image encoding 'nv12_unknown'" in text
    assert "rejected width: width 7.0 is not in (0, 1]" in text


def test_flood_keeps_memory_flat_and_masks_recent(node_process) -> None:
    """Hundreds of 640x480 frames per second for a few seconds; print what happened."""
    proc, probe, _ = node_process
    node_ps = psutil.Process(proc.pid)
    rgb = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = image_msg(rgb, "rgb8", frame_id="flood")
    clock = probe.node.get_clock()

    def flood(seconds: float) -> tuple[int, list[float]]:
        sent, rss = 0, []
        end = time.monotonic() + seconds
        next_sample = time.monotonic()
        while time.monotonic() < end:
            msg.header.stamp = clock.now().to_msg()
            probe.image_pub.publish(msg)
            sent += 1
            if time.monotonic() >= next_sample:
                rss.append(node_ps.memory_info().rss / 2**20)
                next_sample += 0.25
            time.sleep(0.002)
        return sent, rss

    flood(1.0)  # warm-up: allocator arenas and buffers reach their working size
    time.sleep(0.5)
    with probe.lock:
        first = len(probe.masks)
    stats_before = probe.diag()
    t0 = time.monotonic()
    sent, rss = flood(4.0)
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    with probe.lock:
        masks = probe.masks[first:]
        arrivals = probe.mask_arrival[first:]
    ages = [(t - rclpy.time.Time.from_msg(m.header.stamp).nanoseconds) / 1e6
            for m, t in zip(masks, arrivals) if m.header.frame_id == "flood"]
    after = probe.fresh_diag(lambda v: True)
    dropped = after.frames_dropped - stats_before.frames_dropped
    received = after.frames_received - stats_before.frames_received
    print(f"\nflood: {sent} frames 640x480 rgb8 in {elapsed:.1f} s ({sent / elapsed:.0f}/s); "
          f"the node's depth-1 subscription took {received}, its latest-frame slot dropped "
          f"{dropped} of those; {len(ages)} masks out")
    print(f"mask source-frame age ms: p50 {np.percentile(ages, 50):.1f}, "
          f"p95 {np.percentile(ages, 95):.1f}, max {max(ages):.1f}")
    print(f"node RSS MiB: start {rss[0]:.1f}, end {rss[-1]:.1f}, max {max(rss):.1f} "
          f"({len(rss)} samples)")
    if sent / elapsed <= 100:  # this process could not publish a flood: nothing to judge
        pytest.skip(f"the machine published only {sent / elapsed:.0f} frames/s, no flood")
    # the flood outran the node somewhere: in its latest-frame slot, or before it (best-effort
    # DDS drops large frames it cannot deliver in time, so the node may never see most of them)
    assert len(ages) > 10 and (dropped > 0 or received < sent / 2), \
        "the node took and served every frame: this was no flood"
    assert max(rss) - rss[0] < 64, f"node memory grew from {rss[0]:.0f} to {max(rss):.0f} MiB"
    assert np.percentile(ages, 95) < 1000 and max(ages) < 3000, "masks lag behind the camera"


def test_sigint_stops_the_process_cleanly(node_process) -> None:
    proc, _, log = node_process
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0, log.read_text()[-2000:]


def test_missing_checkpoint_fails_start_up_naming_the_file(tmp_path) -> None:
    if not EXE.is_file():
        pytest.skip(f"console script {EXE} not installed")
    missing = tmp_path / "no_such_model.pt"
    result = subprocess.run(
        [str(EXE), "--ros-args", "--params-file", str(PARAMS_FILE),
         "-p", f"checkpoint:={missing}"],
        env=_node_env(pick_domain_id()), capture_output=True, text=True, timeout=90)
    assert result.returncode == 1
    assert f"checkpoint file {missing} does not exist" in result.stdout + result.stderr
