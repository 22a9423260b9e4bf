"""The confidence report: bins, calibration error, sure against unsure pixels; the bench."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.tools.outputs_bench import main as outputs_bench, png_figures
from slimseg_ros.training.calibration import ConfidenceBins, markdown_report


def test_a_calibrated_and_an_overconfident_model_are_told_apart() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, (200, 300))
    label[:10] = 255  # ignored pixels never count
    honest, proud = ConfidenceBins(), ConfidenceBins()
    for bins, claimed in ((honest, None), (proud, 250)):
        p = rng.uniform(0.35, 1.0, label.shape)  # each pixel right with probability p
        right = rng.uniform(size=label.shape) < p
        pred = np.where(right, label, (label + 1) % 3)
        level = np.round(255 * p) if claimed is None else np.full(label.shape, claimed)
        bins.update(level.astype(np.uint8), pred, label, ignore_index=255)
    h, o = honest.summary(), proud.summary()
    assert h["pixels"] == o["pixels"] == 190 * 300
    assert h["ece"] < 0.02 < 0.2 < o["ece"]  # claimed 0.98 while right about 2 times in 3
    assert h["accuracy_above_0.9"] > 0.9 > 0.5 > h["accuracy_below_0.5"]
    assert sum(b["share"] for b in h["bins"]) == pytest.approx(1.0)
    assert o["bins"][-1]["pixels"] == o["pixels"] and o["share_below_0.5"] == 0.0
    table = markdown_report({1.0: h, 0.25: o})
    assert "| 1 | " in table and "Reliability at width 0.25:" in table
    with pytest.raises(ValueError, match="one shape"):
        honest.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3)), np.zeros((2, 2)), 255)


def test_png_masks_are_smaller_and_exact() -> None:
    mask = np.zeros((360, 480), np.uint8)
    mask[100:250, 40:400] = 3
    mask[300:, :] = 7
    f = png_figures([mask, mask], None)
    assert f["masks"] == 2 and f["raw_bytes"] == 360 * 480 and f["ratio"] > 20
    big = png_figures([mask], (720, 1280))
    assert big["raw_bytes"] == 720 * 1280


def test_outputs_bench_runs_on_a_folder_of_frames(tmp_path: Path, capsys) -> None:
    from node_harness import make_tiny_checkpoint

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 256, (48, 64, 3), np.uint8))
    checkpoint = make_tiny_checkpoint(tmp_path / "tiny.pt", input_size=(32, 48))
    out = tmp_path / "outputs.json"
    assert outputs_bench(["--images", str(frames), "--checkpoint", str(checkpoint),
                          "--backend", "torch", "--rounds", "1", "--timing-images", "1",
                          "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["png"]) == set(report["confidence"]) == {"0.25", "0.5", "0.75", "1"}
    assert report["png"]["1"]["720x1280"]["raw_bytes"] == 720 * 1280
    assert all(c["ratio"] > 0 for c in report["confidence"].values())
    printed = capsys.readouterr().out
    assert "| width | mask size |" in printed and "worst ratio" in printed
    with pytest.raises(SystemExit):
        outputs_bench(["--images", str(tmp_path / "nowhere")])
