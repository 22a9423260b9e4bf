"""
The node as its own process, started from the ``slimseg_node`` console script.

It runs with ``--ros-args --params-file config/slimseg.yaml`` and is driven over real DDS from
this process: 720p frames in and masks out, a width command, bad inputs, a flood, SIGINT.

Under a flood of 640x480 frames the node's memory stays flat and it keeps no queue: counts, not
milliseconds. How old the masks' source frames are is a benchmark's figure:
``python -m slimseg_ros.tools.multicam_bench`` prints ``age_p50_ms`` and ``age_max_ms`` per
camera (``--cameras 1 --rate 300`` for a flood like this one).
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

from node_harness import (DEADLINE, Probe, Spinner, image_msg,  # noqa: E402
                          make_tiny_checkpoint, pick_domain_id, send_until_mask, settled,
                          try_publish, wait_for, wait_matched)
from slimseg_ros.ros.contract import REJECTED  # noqa: E402
from slimseg_ros.ros.labels import label_info_type  # noqa: E402

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
        wait_matched([probe.width_pub, probe.battery_pub])  # the process's side is not seen
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


def _send_until_mask(probe, msg, count: int = 1):
    return send_until_mask(probe, msg, count=count, period=0.15)


def test_720p_frames_in_masks_out_with_header_and_size(node_process) -> None:
    proc, probe, log = node_process
    rgb = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    stamp = rclpy.time.Time(seconds=42, nanoseconds=7).to_msg()
    mask = _send_until_mask(probe, image_msg(rgb, "rgb8", frame_id="front", stamp=stamp))
    assert (mask.height, mask.width, mask.encoding) == (720, 1280, "mono8")
    assert mask.header.frame_id == "front"
    assert (mask.header.stamp.sec, mask.header.stamp.nanosec) == (42, 7)
    text = log.read_text()
    assert "loaded checkpoint" in text
    if label_info_type() is None:  # said once at start-up, naming the package; nothing stops
        assert text.count("vision_msgs is not installed") == 1


def test_width_command_reaches_the_process(node_process) -> None:
    """A width request reaches the process; battery and temperature are test_node's."""
    proc, probe, _ = node_process
    probe.send_width(0.25)
    wait_for(lambda: probe.widths[-1] == 0.25)
    _send_until_mask(probe, image_msg(np.zeros((60, 80, 3), np.uint8), "bgr8",
                                      frame_id="at_quarter"))
    d = probe.fresh_diag(lambda v: v.last_frame is not None and v.last_frame.width == 0.25)
    assert d.reason == "request 0.25"
    probe.send_width(1.0)
    wait_for(lambda: probe.widths[-1] == 1.0)


def test_bad_inputs_are_reported_and_the_process_keeps_serving(node_process) -> None:
    proc, probe, log = node_process
    bad = image_msg(np.zeros((20, 30, 3), np.uint8), "rgb8")
    bad.encoding = "nv12_unknown"
    wait_for(lambda: "nv12_unknown" in probe.diag().last_rejected.get(REJECTED.image, ""),
             action=lambda: probe.image_pub.publish(bad))

    def send() -> None:  # battery is best effort: sent again until the process counts it
        probe.send_battery(math.nan)
        probe.send_width(7.0)
    d = probe.fresh_diag(lambda v: REJECTED.battery in v.rejected and "7.0" in
                         v.last_rejected.get(REJECTED.width, ""), action=send, action_period=1.0)
    assert d.active_width == 1.0
    mask = _send_until_mask(probe, image_msg(np.zeros((20, 30, 3), np.uint8), "rgb8",
                                             frame_id="after_bad"))
    assert mask.header.frame_id == "after_bad"
    text = log.read_text()
    assert "rejected image: unsupported image encoding 'nv12_unknown'" in text
    assert "rejected width: width 7.0 is not in (0, 1]" in text


def test_flood_keeps_memory_flat_and_no_queue(node_process) -> None:
    """
    Hundreds of 640x480 frames a second: the node drops what it cannot serve, and no more.

    Its memory stays flat, it serves masks all along, frames are dropped (in its latest-frame
    slot, or by DDS before it), and once the flood stops only what was already in hand comes
    out. Counts only: the flood lasts until enough masks came, however slow the machine.
    """
    proc, probe, _ = node_process
    node_ps = psutil.Process(proc.pid)
    rgb = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = image_msg(rgb, "rgb8", frame_id="flood")
    clock = probe.node.get_clock()

    def flood(seconds: float, masks: int = 0) -> tuple[int, list[float]]:
        """
        Publish for ``seconds`` and until ``masks`` new masks came; sample the node's RSS.

        Returns the frames DDS took (a reliable writer may refuse one while the last is still
        on its way: that frame is not sent) and the samples.
        """
        sent, rss = 0, []
        start = probe.count(probe.masks)
        t0 = time.monotonic()
        next_sample = t0
        while time.monotonic() < t0 + seconds or probe.count(probe.masks) < start + masks:
            assert time.monotonic() < t0 + DEADLINE, \
                f"{probe.count(probe.masks) - start} masks for {sent} frames in {DEADLINE} s"
            msg.header.stamp = clock.now().to_msg()
            sent += try_publish(probe.image_pub, msg)
            if time.monotonic() >= next_sample:
                rss.append(node_ps.memory_info().rss / 2**20)
                next_sample += 0.25
            time.sleep(0.002)
        return sent, rss

    flood(1.0)  # warm-up: allocator arenas and buffers reach their working size
    before = probe.fresh_diag(lambda v: True)
    first = probe.count(probe.masks)
    t0 = time.monotonic()
    sent, rss = flood(4.0, masks=11)
    elapsed = time.monotonic() - t0
    stopped_ns = clock.now().nanoseconds
    after = probe.fresh_diag(settled)  # idle again: nothing waits, nothing is being inferred
    at_stop = wait_for(lambda: probe.first_diag_after(stopped_ns))  # its counts as it stopped
    masks = probe.count(probe.masks) - first
    dropped = after.frames_dropped - before.frames_dropped
    received = after.frames_received - before.frames_received
    served_after_stop = after.frames_processed - at_stop.frames_processed
    print(f"\nflood: {sent} frames 640x480 rgb8 in {elapsed:.1f} s ({sent / elapsed:.0f}/s); "
          f"the node's depth-1 subscription took {received}, its latest-frame slot dropped "
          f"{dropped} of those; {masks} masks out, {served_after_stop} served after the flood "
          f"stopped")
    print(f"node RSS MiB: start {rss[0]:.1f}, end {rss[-1]:.1f}, max {max(rss):.1f} "
          f"({len(rss)} samples)")
    # the flood outran the node somewhere: in its latest-frame slot, or before it (best-effort
    # DDS drops large frames it cannot deliver in time, so the node may never see most of them)
    assert masks > 10 and (dropped > 0 or received < sent / 2), \
        "the node took and served every frame: this was no flood"
    assert max(rss) - rss[0] < 64, f"node memory grew from {rss[0]:.0f} to {max(rss):.0f} MiB"
    # no queue: after the flood, at most the frame it was inferring, the one in its slot and
    # one still in transit to its depth-1 subscription; a queue would keep serving for long
    assert served_after_stop <= 3, f"{served_after_stop} frames served after the flood stopped"


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
