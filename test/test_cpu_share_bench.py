"""
The CPU-share bench run for real at toy settings.

A tiny stand-in model, 64x80 frames (HxW), the node and the camera in their own processes. The
figures are not judged (this machine's load decides them); the test checks that every width was
measured while the node served it, from outside and by the node itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node_harness import pick_domain_id
from slimseg_ros.tools.cpu_share_bench import HEADER, table_row
from slimseg_ros.tools.node_process import stand_in_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ros
@pytest.mark.slow
def test_every_width_is_measured_while_the_node_serves_it(tmp_path: Path) -> None:
    for module in ("rclpy", "sensor_msgs.msg", "psutil"):
        pytest.importorskip(module)
    checkpoint = stand_in_checkpoint(tmp_path / "tiny.pt", tiny=True)
    out = tmp_path / "cpu_share.json"
    cmd = [sys.executable, "-m", "slimseg_ros.tools.cpu_share_bench", "--rates", "10",
           "--widths", "0.25", "1.0", "--size", "64x80", "--seconds", "2",
           "--backend", "torch", "--checkpoint", str(checkpoint), "--json", str(out),
           "--domain", str(pick_domain_id())]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert report["settings"]["size"] == [64, 80]  # height, width
    assert "64x80 rgb8 (height 64, width 80)" in done.stdout
    assert [(r["rate"], r["width"]) for r in rows] == [(10.0, 0.25), (10.0, 1.0)]
    for r in rows:
        assert r["active_width"] == r["width"] and r["backend"] == "torch"
        assert r["masks_per_s"] > 0 and r["cpu_s"] > 0 and r["cores"] >= 1
        assert 0 < r["cpu_share"] <= 1.0
        assert r["node_cpu_share"] is not None and 0 <= r["node_cpu_share"] <= 1.0
        assert r["predicted_cpu_share"] is not None and r["predicted_cpu_share"] > 0
    assert HEADER.splitlines()[0] in done.stdout and table_row(rows[1]) in done.stdout


def test_table_row_shows_shares_as_percent_and_missing_figures_as_a_dash() -> None:
    row = {"rate": 30.0, "width": 0.5, "masks_per_s": 29.5, "cpu_share": 0.412,
           "node_cpu_share": None, "predicted_cpu_share": 0.39, "cpu_ms_per_mask": None}
    assert table_row(row) == "| 30 | 0.5 | 29.5 | 41 % | - | 39 % | - |"
