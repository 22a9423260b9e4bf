"""
The idle bench run for real at toy settings: a node nobody listens to infers nothing.

A tiny stand-in model and 64x80 frames (HxW); the node and the camera are processes of their
own. CPU figures are printed, not judged; the frame counts are: with ``lazy`` and nobody
listening the node serves no frame and skips every one it takes, with a subscriber it serves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node_harness import pick_domain_id
from slimseg_ros.tools.node_process import stand_in_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ros
@pytest.mark.slow
def test_nobody_listening_costs_no_inference(tmp_path: Path) -> None:
    for module in ("rclpy", "sensor_msgs.msg", "psutil"):
        pytest.importorskip(module)
    checkpoint = stand_in_checkpoint(tmp_path / "tiny.pt", tiny=True)
    out = tmp_path / "idle.json"
    cmd = [sys.executable, "-m", "slimseg_ros.tools.idle_bench", "--size", "64x80",
           "--rate", "10", "--seconds", "1.5", "--settle", "0.5", "--backend", "torch",
           "--checkpoint", str(checkpoint), "--json", str(out), "--domain", str(pick_domain_id())]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    cases = {c["case"]: c for c in json.loads(out.read_text())["cases"]}
    idle, heard, eager = (cases["lazy, nobody listens"], cases["lazy, one mask subscriber"],
                          cases["lazy off, nobody listens"])
    assert idle["served"] == 0 and idle["skipped_no_subscribers"] > 0
    assert heard["served"] > 0 and heard["masks_per_s"] > 0
    assert eager["served"] > 0 and eager["skipped_no_subscribers"] == 0  # lazy:=false at runtime
    assert "| lazy, nobody listens |" in done.stdout
