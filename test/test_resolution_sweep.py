"""The width x resolution sweep: its sizes, its front, and a run at toy settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from slimseg_ros.models import ModelConfig, ModelInfo, build_model, save_checkpoint
from slimseg_ros.tools.resolution_sweep import input_sizes, main, pareto_front
from slimseg_ros.training.datasets import build_dataset
from synthetic_data import write_camvid_tree


def test_scales_round_each_side_to_a_multiple_of_eight() -> None:
    sizes = input_sizes((360, 480), [1.0, 0.75, 0.5])
    assert sizes == {1.0: (360, 480), 0.75: (272, 360), 0.5: (184, 240)}  # 180: half up
    assert all(h % 8 == 0 and w % 8 == 0 for h, w in sizes.values())


def test_the_front_keeps_only_points_nothing_beats_on_both() -> None:
    points = [{"miou": 60.0, "p50_ms": 10.0}, {"miou": 65.0, "p50_ms": 20.0},
              {"miou": 64.0, "p50_ms": 25.0},  # slower and worse than the one before
              {"miou": 60.0, "p50_ms": 12.0},  # as accurate as the first, slower
              {"miou": 70.0, "p50_ms": 40.0}]
    assert [(p["miou"], p["p50_ms"]) for p in pareto_front(points)] == [
        (60.0, 10.0), (65.0, 20.0), (70.0, 40.0)]


def test_the_sweep_measures_every_width_at_every_scale_on_val(tmp_path: Path, capsys) -> None:
    write_camvid_tree(tmp_path / "cv", {"val": 2, "test": 1}, size=(40, 56))
    model = build_model(ModelConfig(backbone="mobilenetv2", num_classes=11, head_channels=32,
                                    low_level_channels=16, widths=(0.5, 1.0))).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    names = list(build_dataset("camvid", tmp_path / "cv", "val").spec.class_names)
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(names, [[0, 0, 0]] * 11,
                                                        mean=[127.0] * 3, std=[128.0] * 3,
                                                        input_size=(40, 56)))
    out = tmp_path / "sweep"
    assert main(["--root", str(tmp_path / "cv"), "--checkpoint", str(tmp_path / "m.pt"),
                 "--backend", "torch", "--scales", "1.0", "0.5", "--rounds", "1", "--iters", "1",
                 "--threads", "1", "--output", str(out)]) == 0
    result = json.loads((out / "sweep.json").read_text())
    keys = {(p["width"], tuple(p["input_size"])) for p in result["points"]}
    assert keys == {(w, s) for w in (0.5, 1.0) for s in ((40, 56), (24, 32))}
    assert any(p["on_front"] for p in result["points"]) and result["split"] == "val"
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "| on the front |" in (out / "sweep.md").read_text()
    capsys.readouterr()
    assert main(["--root", str(tmp_path / "cv"), "--checkpoint", str(tmp_path / "m.pt"),
                 "--backend", "torch", "--scales", "1.0", "0.5", "--eval-only",
                 "--output", str(out)]) == 0
    assert capsys.readouterr().out.count("reusing") == 2  # a stopped sweep resumes
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path / "cv"), "--split", "test", "--output", str(out)])
    assert "never on test" in capsys.readouterr().err
