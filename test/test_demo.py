"""
slimseg-demo: its pieces and a short real run against the real node over DDS.

The pieces are frame sources, diagnostics parsing, budgets, parameter file and the report's
verdict on the generated frames; the real run must produce every report file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.ros.contract import Diagnostics, HostStatus, diagnostics_values
from slimseg_ros.governor.latency import WidthLatency
from slimseg_ros.tools.demo import DemoError
from slimseg_ros.tools.demo.cli import find_params_file, flatten_params, main
from slimseg_ros.tools.demo.client import Record, parse_diagnostic_values
from slimseg_ros.tools.demo.report import (camera_story, phase_summary, static_agreement,
                                           write_report)
from slimseg_ros.tools.demo.scenario import camera_scenario, phase_budgets, scenario
from slimseg_ros.tools.demo.scene import (CLASS_MISMATCH_SENTENCE, CLASS_NAMES, MIOU_THRESHOLD,
                                          ROAD, SceneScore, street_scene)
from slimseg_ros.tools.demo.sources import FrameSource, SceneSource
from slimseg_ros.tools.node_process import stand_in_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_scene_source_replays_a_drawn_loop_with_its_label_maps(workers):
    src = SceneSource(3, (40, 48), seed=1, workers=workers)
    assert "loop of 3 frames of 40x48" in src.description
    indices, frames = [src.index], [src.first]
    for _ in range(4):
        frames.append(src.next())
        indices.append(src.index)
    assert indices == [0, 1, 2, 0, 1]  # the loop, its position published with each frame
    for index, rgb in zip(indices, frames):
        expected_rgb, expected_labels = street_scene(index, 40, 48, seed=1)
        assert np.array_equal(rgb, expected_rgb)
        assert np.array_equal(src.labels(index), expected_labels)
    with pytest.raises(DemoError, match="smaller than 32x32"):
        SceneSource(2, (20, 48))


def test_frame_source_folder_and_video(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i, c in enumerate(colours):  # written as BGR by OpenCV: read back as RGB
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((30, 40, 3), c[::-1], np.uint8))
    (folder / "notes.txt").write_text("not an image")
    src = FrameSource(folder, None)
    assert "3 images" in src.description
    seen = [tuple(src.first[0, 0])] + [tuple(src.next()[0, 0]) for _ in range(3)]
    assert seen == colours + colours[:1]  # in name order, looping
    assert FrameSource(folder, (20, 24)).next().shape == (20, 24, 3)
    later = FrameSource(folder, None, start=0.5)  # another camera, further into the folder
    assert tuple(later.first[0, 0]) == colours[1] and later.index == 0

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (40, 30))
    for i in range(3):
        writer.write(np.full((30, 40, 3), 60 * i, np.uint8))
    writer.release()
    src = FrameSource(video, None)
    frames = [src.first] + [src.next() for _ in range(4)]  # loops past the end
    assert all(f.shape == (30, 40, 3) for f in frames)
    assert abs(int(frames[3].mean()) - int(frames[0].mean())) < 8
    assert src.labels(src.index) is None  # real frames: nothing to score against


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "neither an image folder nor a video"),
    (lambda p: p, "holds no images"),
    (lambda p: (p / "bad.mp4").write_bytes(b"not a video") and p / "bad.mp4", "cannot open"),
])
def test_frame_source_rejects_bad_input(tmp_path, make, match):
    with pytest.raises(DemoError, match=match):
        FrameSource(make(tmp_path), None)


def test_parse_diagnostics_as_the_node_writes_them():
    latency = {0.25: WidthLatency(q=90.0, pq_ms=4.2, p50_ms=3.1, frames=20),
               1.0: WidthLatency(q=90.0, pq_ms=31.5, p50_ms=20.0, frames=5)}
    values = diagnostics_values(Diagnostics(
        active_width=0.5, reason="battery 12% <= 15%", caps={"battery": 0.5},
        latency=latency, frames_at={0.5: 7}))
    parsed = parse_diagnostic_values(values)
    assert parsed["width"] == 0.5 and parsed["reason"] == "battery 12% <= 15%"
    assert parsed["caps"] == "battery=0.5" and parsed["warnings"] == "none"
    assert parsed["latency"] == {0.25: {"p50": 3.1, "p90": 4.2}, 1.0: {"p50": 20.0, "p90": 31.5}}
    assert parse_diagnostic_values({}) == {}


def test_budgets_come_from_the_figures_the_governor_compared():
    def report(q: float, *pairs: tuple[float, float]) -> dict:
        return {"values": diagnostics_values(Diagnostics(latency={
            w: WidthLatency(q=q, pq_ms=ms * 1.2, p50_ms=ms, frames=20) for w, ms in pairs}))}

    # one report per width of the sweep; the last figure of each width counts
    record = Record(diagnostics=[report(95.0, (0.25, 40.0)), report(95.0, (0.25, 4.0)),
                                 report(95.0, (0.5, 9.0), (0.75, 16.0)),
                                 report(95.0, (1.0, 25.0))])
    b = phase_budgets(record, [0.25, 0.5, 0.75, 1.0], margin=0.9)
    assert 9.0 * 1.2 < b["tight"] * 0.9 < 16.0 * 1.2  # p95: fits 0.5 but not 0.75
    assert b["relaxed"] * 0.9 == pytest.approx(3 * 25.0 * 1.2, abs=0.01)
    assert phase_budgets(Record(), [0.25, 1.0], 0.9) == {"tight": 50.0, "relaxed": 1000.0}


def test_camera_budgets_keep_the_first_camera_at_full_width():
    def report(camera: str, *pairs: tuple[float, float]) -> dict:
        return {"camera": camera, "values": diagnostics_values(Diagnostics(latency={
            w: WidthLatency(q=90.0, pq_ms=ms, p50_ms=ms, frames=20) for w, ms in pairs}))}

    sweep = [(0.25, 4.0), (0.5, 9.0), (0.75, 16.0), (1.0, 25.0)]
    record = Record(cameras=["front", "left", "right"],
                    diagnostics=[report(None)] + [report(c, *sweep) for c in
                                                  ("front", "left", "right")])
    b = phase_budgets(record, [0.25, 0.5, 0.75, 1.0], margin=0.9)
    allowed = b["tight"] * 0.9
    assert 25.0 + 2 * 9.0 < allowed < 25.0 + 2 * 16.0  # front at 1.0, both sides at 0.5
    assert b["relaxed"] * 0.9 == pytest.approx(3 * 3 * 25.0, abs=0.01)


def test_camera_scenario_drops_the_last_camera_under_the_tight_budget():
    phases = camera_scenario(1.0, [0.25, 0.5, 0.75, 1.0], ["front", "left", "right"])
    assert [p.request for p in phases if p.montage] == [0.25, 0.5, 0.75, 1.0]
    silent = [i for i, p in enumerate(phases) if p.silent]
    assert len(silent) == 1 and phases[silent[0]].silent == ("right",)
    before, during, after = phases[silent[0] - 1], phases[silent[0]], phases[silent[0] + 1]
    assert before.budget == during.budget == after.budget == "tight"
    assert not after.silent and phases[-1].budget == 0.0
    with pytest.raises(ValueError, match="two cameras"):
        camera_scenario(1.0, [1.0], ["front"])


def test_camera_phases_are_summarised_per_camera():
    """
    Widths held per camera and phase (time-weighted), and the report's sentences from them.

    The sentences say the first camera kept the widest width and the silent one was served
    again.
    """
    record = Record(cameras=["front", "side"])
    record.phases = [
        {"name": "tight", "start": 0.0, "end": 4.0, "expect": "", "budget_ms": 20.0,
         "budget_kind": "tight", "silent": []},
        {"name": "side drops out", "start": 4.0, "end": 8.0, "expect": "", "budget_ms": 20.0,
         "budget_kind": "tight", "silent": ["side"]},
        {"name": "side returns", "start": 8.0, "end": 10.0, "expect": "", "budget_ms": 20.0,
         "budget_kind": "tight", "silent": []}]
    record.active = {"front": [(-1.0, 1.0), (1.0, 0.5), (1.5, 1.0)],          # a short drop
                     "side": [(-1.0, 1.0), (0.5, 0.5), (3.0, 0.75), (3.5, 0.5), (5.0, 1.0)]}
    for t, phase, cams in ((1.0, "tight", ("front", "side")), (5.0, "side drops out",
                                                               ("front",)),
                           (9.0, "side returns", ("front", "side"))):
        for cam in cams:
            record.frames.append({"t": t, "phase": phase, "camera": cam, "index": 0})
            record.masks.append({"t": t, "phase": phase, "camera": cam, "width": 1.0,
                                 "latency_ms": 5.0, "index": 0})
    record.decisions.append({"t": 6.0, "phase": "side drops out", "camera": "side",
                             "width": 1.0, "reason": "budget 20ms: no recent frame, holding 1"})
    summary = phase_summary(record)
    tight = summary[0]["cameras"]
    assert tight["front"]["mean_width"] == pytest.approx((3.5 * 1.0 + 0.5 * 0.5) / 4, abs=1e-3)
    assert tight["front"]["held_width"] == 1.0 and tight["side"]["held_width"] == 0.5
    assert tight["side"]["widths"] == [1.0, 0.5, 0.75, 0.5] and tight["side"]["final_width"] == 0.5
    gone = summary[1]["cameras"]["side"]
    assert (gone["frames_sent"], gone["masks_received"]) == (0, 0)
    story = "\n".join(camera_story(summary, record.cameras, [2.0, 1.0]))
    assert "front (priority 2) ran mostly at width 1" in story
    assert "front kept the widest width" in story
    assert "(priority 1) at 0.5 (0.59)" in story
    assert '"budget 20ms: no recent frame, holding 1"; the others\' widths' in story
    assert story.count(" -> 1") == 1  # only the cameras that sent frames: front 1 -> 1
    assert 'After it came back ("side returns") side was served again: 1 masks' in story


@pytest.mark.parametrize("cameras, match", [
    (["front"], "two names or more"), (["front", "front"], "repeat"),
    (["front", "9left"], "not a relative ROS name")])
def test_demo_rejects_bad_camera_lists(tmp_path, capsys, cameras, match):
    assert main(["--output", str(tmp_path), "--cameras", *cameras]) == 1
    assert match in capsys.readouterr().err


def test_scenario_covers_every_width_and_policy():
    phases = scenario(1.0, [0.25, 0.5, 0.75, 1.0])
    assert [p.request for p in phases if p.montage] == [0.25, 0.5, 0.75, 1.0]
    assert any(p.battery[1] < 15 and not p.charging for p in phases)
    assert any(p.charging for p in phases)
    assert any(p.temperature[1] >= 90 for p in phases)
    assert [p.budget for p in phases if isinstance(p.budget, str)] == ["tight", "relaxed"]
    cpu = [i for i, p in enumerate(phases) if p.cpu_budget == "tight"]
    assert len(cpu) == 1 and cpu[0] + 1 < len(phases)  # a tight CPU budget, then lifted
    assert phases[cpu[0]].budget == 0.0 and phases[cpu[0] + 1].cpu_budget == 0.0
    below = [i for i, p in enumerate(phases) if p.cpu_budget == "below"]
    assert len(below) == 1 and phases[below[0] + 1].cpu_budget == 0.0  # then lifted
    kept = [p for p in phases if p.keep_masks]  # the still scene, inferred then skipped
    assert [(p.still, p.skip_static) for p in kept] == [(True, False), (True, True)]
    assert phases[-1].skip_static and not phases[-1].still  # then it moves


def test_republished_masks_are_compared_with_full_inference_frame_by_frame():
    record = Record(phases=[{"name": "still", "keep_masks": True, "skip_static": False},
                            {"name": "static", "keep_masks": True, "skip_static": True}])
    same = np.zeros((4, 5), np.uint8)
    moved = same.copy()
    moved[0, :2] = 3  # 2 of 20 pixels differ
    record.kept = {("still", 0): same, ("static", 0): same, ("still", 1): same,
                   ("static", 1): moved, ("static", 2): same}  # frame 2: no reference
    a = static_agreement(record)
    assert a["frames"] == 2 and a["pixel_agreement"] == pytest.approx(0.95)
    assert a["worst_frame"] == pytest.approx(0.9)


def test_the_tight_cpu_budget_lies_between_the_middle_widths_predicted_shares():
    shares = {0.25: 0.05, 0.5: 0.09, 0.75: 0.16, 1.0: 0.25}
    record = Record(diagnostics=[
        {"values": diagnostics_values(Diagnostics(cpu_share={0.25: 0.5}))},  # superseded
        {"values": diagnostics_values(Diagnostics(cpu_share=shares))}])
    b = phase_budgets(record, [0.25, 0.5, 0.75, 1.0], margin=0.9)
    assert 0.09 < b["cpu_tight"] * 0.9 < 0.16  # fits 0.5, not 0.75
    assert b["cpu_below"] == 0.025  # half what the narrowest width costs
    assert "cpu_tight" not in phase_budgets(Record(), [0.25, 1.0], 0.9)  # nothing measured
    # with a ladder whose cheapest point costs half the narrowest width: below that point
    assert phase_budgets(record, [0.25, 0.5, 0.75, 1.0], 0.9, cheapest=0.5)["cpu_below"] == 0.0125


def test_the_cheapest_ratio_comes_from_the_models_ladder():
    from slimseg_ros.tools.demo.cli import cheapest_ratio, read_checkpoint_info
    from slimseg_ros.resources import default_bundle, default_checkpoint

    ladder = {"points": [{"latency_ms": 3.3}, {"latency_ms": 5.3}],
              "full": [{"width": 0.25, "latency_ms": 6.6}, {"width": 1.0, "latency_ms": 40.0}]}
    assert cheapest_ratio(ladder) == pytest.approx(0.5)
    assert cheapest_ratio(None) == 1.0 and cheapest_ratio({"points": []}) == 1.0
    shipped = [read_checkpoint_info(default_checkpoint())["cheapest"]]
    if default_bundle() is not None:
        shipped.append(read_checkpoint_info(default_bundle())["cheapest"])
    assert all(0.4 < r < 0.6 for r in shipped)  # 0.25@184x240 against 0.25 at 360x480


def test_phases_report_the_cpu_budget_and_the_nodes_own_cpu_share():
    record = Record()
    record.phases = [{"name": "tight CPU budget", "start": 0.0, "end": 4.0, "expect": "lowered",
                      "budget_ms": 0.0, "budget_kind": "", "cpu_budget": 0.12, "silent": []}]
    host = HostStatus(cores=2, cpu_budget=0.12)
    for t, share in ((0.5, 0.30), (1.5, 0.10), (2.5, 0.11), (9.0, 0.9)):  # the last is later
        record.diagnostics.append({"t": t, "camera": "", "values": diagnostics_values(
            Diagnostics(host=HostStatus(**{**host.__dict__, "node_cpu_share": share})))})
    record.active = {"": [(-1.0, 1.0), (1.0, 0.5)]}
    record.decisions.append({"t": 1.0, "phase": "tight CPU budget", "camera": "", "width": 0.5,
                             "reason": "cpu budget 12.0%: share at 0.75 = 16.0% > 10.8%"})
    row = phase_summary(record)[0]
    assert row["cpu_budget"] == 0.12 and row["node_cpu_share"] == pytest.approx(0.11, abs=1e-3)
    assert row["widths"] == [1.0, 0.5] and row["reasons"][0].startswith("cpu budget 12.0%")


def _scored_report(tmp_path: Path, predict, *, generated: bool = True,
                   class_names: tuple[str, ...] = CLASS_NAMES) -> tuple[str, dict]:
    """
    Write report.md and report.json from a record of scored masks; return their contents.

    The masks (``predict(truth)``, at widths 0.25 and 1.0, of two generated frames) were scored
    as the client scores them.
    """
    size = (40, 48)
    tmp_path.mkdir(exist_ok=True)
    scored = generated and class_names == CLASS_NAMES  # as the demo decides
    record = Record(scene=SceneScore() if scored else None)
    frame = street_scene(0, *size)[0]
    for index in range(2):
        truth = street_scene(index, *size)[1]
        for width in (0.25, 1.0):
            if record.scene is not None:
                record.scene.add(width, truth, predict(truth))
                record.scene_masks[width] = record.scene_masks.get(width, 0) + 1
                record.scene_frames.add(index)
            record.masks.append({"t": 0.1 * index, "latency_ms": 5.0, "width": width,
                                 "phase": "p", "index": index})
    info = {"widths": [0.25, 1.0], "class_names": list(class_names), "palette": [],
            "untrained": False}
    meta = {"checkpoint": "model.pt", "untrained": False, "source": "test frames",
            "frame_size": list(size), "fps": 10.0, "node_command": ["slimseg_node"],
            "startup_s": 1.0, "domain_id": 1, "device": "cpu", "masks_match_frames": True,
            "generated_frames": generated}
    files = write_report(tmp_path, record, frame, info, [0.25, 1.0], meta, t_end=1.0)
    return files["report"].read_text(), json.loads(files["report_json"].read_text())


def test_report_gives_the_figures_when_the_model_segments_the_scene(tmp_path):
    text, data = _scored_report(tmp_path, lambda truth: truth)
    assert "| 0.25 | 2 | 100.0 |" in text and "| 1 | 2 | 100.0 |" in text
    assert ("On 2 generated street frames of 40x48 pixels the model reaches mIoU 100.0 at "
            "width 0.25, 100.0 at width 1") in text
    assert "out of distribution" not in text
    assert data["scene"]["miou"] == {"0.25": 100.0, "1.0": 100.0}


def test_report_says_out_of_distribution_below_the_threshold(tmp_path):
    text, data = _scored_report(tmp_path, lambda truth: np.full_like(truth, ROAD))
    miou = data["scene"]["miou"]["1.0"]
    assert miou < MIOU_THRESHOLD
    assert "out of distribution for this model" in text and "--images" in text
    assert f"mIoU {miou:.1f} at width 1 is below {MIOU_THRESHOLD:g}" in text
    assert "reaches mIoU" not in text


def test_report_names_a_class_mismatch_and_is_silent_on_real_frames(tmp_path):
    text, data = _scored_report(tmp_path / "other", lambda truth: truth,
                                class_names=tuple(reversed(CLASS_NAMES)))
    assert CLASS_MISMATCH_SENTENCE in text and "| width | masks scored |" not in text
    assert data["scene"]["miou"] == {}
    text, data = _scored_report(tmp_path / "real", lambda truth: truth, generated=False)
    assert "generated" not in text and data["scene"] is None


def test_parameter_file_is_found_and_flattened():
    params = flatten_params(find_params_file())
    assert "governor.min_dwell_s" in params and "checkpoint" in params


def _run_demo(out: Path, *args: str, timeout: float = 150.0) -> str:
    """Run ``slimseg-demo --output out ARGS`` as a user runs it; return its stdout."""
    cmd = [sys.executable, "-m", "slimseg_ros.tools.demo", "--output", str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # own process group: on a time-out the demo's node process goes too, not only the demo
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the demo did not finish in {timeout:.0f} s:\n" + stdout[-3000:]
                    + stderr[-3000:])
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert f"report written to {out}" in stdout
    return stdout


@pytest.mark.slow
@pytest.mark.ros
def test_short_demo_run_writes_the_whole_report(tmp_path):
    pytest.importorskip("rclpy")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), street_scene(i, 48, 64)[0][:, :, ::-1])
    checkpoint = stand_in_checkpoint(tmp_path / "tiny.pt", tiny=True)
    out = tmp_path / "report"
    _run_demo(out, "--images", str(frames), "--checkpoint", str(checkpoint),
              "--phase-seconds", "0.4", "--fps", "10", "--device", "cpu",
              "--startup-timeout", "90")
    for name in ("report.md", "timeline.png", "montage.png", "latency.md", "latency.json",
                 "decisions.md", "decisions.json", "phases.json", "node.log"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in ("timeline.png", "montage.png"):
        img = cv2.imread(str(out / png))
        assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
    latency = json.loads((out / "latency.json").read_text())
    assert [r["width"] for r in latency["widths"]] == [0.25, 0.5, 0.75, 1.0]
    assert latency["meta"]["masks_match_frames"] is True
    assert sum(r["masks"] for r in latency["widths"]) > 10
    decisions = json.loads((out / "decisions.json").read_text())
    reasons = " ".join(d["reason"] for d in decisions["decisions"])
    assert "request 0.25" in reasons  # an explicit command reaches the node and its diagnostics
    assert 0.25 in [w for _, w in decisions["active_width"]]
    assert "| width |" in (out / "latency.md").read_text()
    assert "Masks against the generated label maps" not in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.ros
def test_short_multi_camera_run(tmp_path):
    """
    Three cameras on one node, end to end: every report file, a line per camera, masks for each.

    A smoke test: who slims under the tight budget and the silent camera's "no recent frame"
    are test_core_policy's (a fake clock), since on a loaded machine a short run decides them
    by chance.
    """
    pytest.importorskip("rclpy")
    checkpoint = stand_in_checkpoint(tmp_path / "tiny.pt", tiny=True)
    out = tmp_path / "report"
    cameras = ["front", "left", "right"]
    _run_demo(out, "--cameras", *cameras, "--checkpoint", str(checkpoint), "--size", "64x80",
              "--scene-frames", "6", "--phase-seconds", "0.6", "--fps", "10", "--device", "cpu",
              "--backend", "torch", "--startup-timeout", "90", timeout=300)
    for name in ("report.md", "report.json", "timeline.png", "montage.png", "latency.md",
                 "latency.json", "decisions.md", "decisions.json", "phases.json", "node.log"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["cameras"] == cameras and report["meta"]["masks_match_frames"]
    assert report["meta"]["camera_priorities"] == [2.0, 1.0, 1.0]
    assert set(report["cameras"]) == set(cameras)
    assert all(report["cameras"][c]["masks_received"] > 0 for c in cameras), report["cameras"]
    assert report["scene"]["masks"]  # generated frames of every camera are scored
    text = (out / "report.md").read_text()
    assert "| phase | expected | front | left | right |" in text
    assert all(f"{c} (priority" in text for c in cameras)
    decisions = json.loads((out / "decisions.json").read_text())
    assert set(decisions["active_width"]) == set(cameras)  # one timeline line per camera
    phases = [p["phase"] for p in json.loads((out / "phases.json").read_text())]
    assert "tight budget" in phases and "right drops out" in phases and "right returns" in phases
