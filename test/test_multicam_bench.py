"""
The multi-camera bench run for real at toy settings.

A tiny stand-in model, 2 cameras of 64x80 frames (HxW), camera 0 flooding, every camera and
node in its own process (two cameras are the smallest case where the layouts differ). The
figures are not judged (this machine's load decides them); the test checks that every case was
measured and that the two layouts really are one process against one per camera.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from node_harness import pick_domain_id
from slimseg_ros.tools.multicam_bench import (LAYOUTS, NODE_PER_CAMERA, ONE_NODE,
                                              build_parser, camera_figures)
from slimseg_ros.tools.node_process import stand_in_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ros
@pytest.mark.slow
def test_every_case_is_measured_with_one_process_or_one_per_camera(tmp_path: Path) -> None:
    for module in ("rclpy", "sensor_msgs.msg", "psutil"):
        pytest.importorskip(module)
    checkpoint = stand_in_checkpoint(tmp_path / "tiny.pt", tiny=True)
    out = tmp_path / "multicam.json"
    cmd = [sys.executable, "-m", "slimseg_ros.tools.multicam_bench", "--cameras", "2",
           "--size", "64x80", "--rate", "10", "--seconds", "2", "--warmup", "1",
           "--flood-rate", "40",
           "--backend", "torch", "--checkpoint", str(checkpoint), "--json", str(out),
           "--domain", str(pick_domain_id())]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    cases = {(c["cameras"], c["layout"]): c for c in report["cases"]}
    assert set(cases) == {(2, layout) for layout in LAYOUTS}
    for (n, layout), case in cases.items():
        assert list(case["per_camera"]) == [f"cam{i}" for i in range(n)]
        for name, cam in case["per_camera"].items():
            assert cam["masks"] > 0, (n, layout, name)
            assert cam["frames_sent"] > 0 and 0 < cam["frames_served"] <= cam["frames_sent"]
            assert 0 < cam["age_p50_ms"] <= cam["age_max_ms"]
        assert case["rss_max_mib"] > 0 and case["backend"] == "torch"
        assert case["rates_hz"] == {"cam0": 40.0, "cam1": 10.0}  # camera 0 floods beside cam1
    assert cases[(2, ONE_NODE)]["node_processes"] == 1
    assert cases[(2, NODE_PER_CAMERA)]["node_processes"] == 2
    assert "| 2 | " + NODE_PER_CAMERA + " | cam1 |" in done.stdout  # the Markdown table
    assert "64x80 rgb8 (height 64, width 80)" in done.stdout
    assert "| 2 | " + ONE_NODE + " | cam0 | 40 |" in done.stdout
    settings = report["settings"]
    assert settings["size"] == [64, 80] and settings["frame"] == "height 64, width 80"


def test_window_counts_only_frames_stamped_and_masks_received_in_it() -> None:
    s = 1_000_000_000
    sent = [0, s, 2 * s, 3 * s]  # stamps; the window is [1 s, 3 s)
    masks = [(s // 2, 0), (s + s // 10, s), (3 * s + s // 5, 2 * s)]  # (received, stamp)
    f = camera_figures(masks, sent, t0=s, t1=3 * s)
    assert f["masks"] == 1 and f["masks_per_s"] == pytest.approx(0.5)
    assert f["age_p50_ms"] == pytest.approx(100.0) and f["age_max_ms"] == pytest.approx(100.0)
    assert (f["frames_served"], f["frames_sent"]) == (2, 2)  # the 2 s frame came back late


def test_frame_size_is_height_by_width_and_bad_text_says_so(capsys) -> None:
    assert build_parser().parse_args([]).size == (480, 640)
    assert build_parser().parse_args(["--size", "720x1280"]).size == (720, 1280)
    for bad, says in (("640", "HxW (height x width)"), ("0x480", "positive")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--size", bad])
        assert says in capsys.readouterr().err
