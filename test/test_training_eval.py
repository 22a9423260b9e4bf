"""Evaluation: per-width metrics match a hand-run loop, sliding window, Markdown, CLI errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from slimseg_ros.models import ModelConfig, ModelInfo, build_model, save_checkpoint, set_width
from slimseg_ros.training.datasets import build_dataset
from slimseg_ros.training.evaluate import (evaluate, main as eval_main, markdown_table,
                                           sliding_window_logits)
from slimseg_ros.training.metrics import confusion_matrix, mean_iou
from slimseg_ros.training.transforms import normalize_batch

from synthetic_data import write_camvid_tree

MEAN, STD = [127.0] * 3, [128.0] * 3


def tiny_model() -> torch.nn.Module:
    return build_model(ModelConfig(backbone="mobilenetv2", num_classes=11, head_channels=32,
                                   low_level_channels=16, widths=(0.5, 1.0))).eval()


def test_evaluate_matches_a_hand_run_loop_at_every_width(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"val": 3}, size=(40, 56))
    ds = build_dataset("camvid", tmp_path, "val")
    model = tiny_model()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    results = evaluate(model, DataLoader(ds, batch_size=2), 11, ds.spec.class_names, MEAN, STD)
    assert set(results) == {0.5, 1.0}
    for w in (0.5, 1.0):
        set_width(model, w)
        cm = torch.zeros(11, 11, dtype=torch.long)
        with torch.no_grad():
            for i in range(len(ds)):
                image, label = ds[i]
                pred = model(normalize_batch(image[None], MEAN, STD)).argmax(1)
                cm += confusion_matrix(pred, label[None], 11)
        assert results[w]["miou"] == pytest.approx(mean_iou(cm))
        assert results[w]["images"] == 3
        assert 0.0 <= results[w]["boundary_f"] <= 1.0
    table = markdown_table(results, ds.spec.class_names)
    assert "| 0.5 |" in table and "Bicyclist" in table and "nanmean" in table
    with pytest.raises(ValueError, match="0.25"):
        evaluate(model, DataLoader(ds), 11, ds.spec.class_names, MEAN, STD, widths=[0.25])


def test_sliding_window_equals_one_pass_when_the_window_covers_the_image() -> None:
    model = tiny_model()
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        full = model(x)
        same = sliding_window_logits(model, x, 11, (48, 64))
        larger = sliding_window_logits(model, x, 11, (96, 128))
    torch.testing.assert_close(same, full)
    torch.testing.assert_close(larger, full)


@pytest.mark.parametrize("size", [(48, 64), (50, 71)])  # windows that do and don't tile evenly
def test_sliding_window_equals_one_pass_for_a_per_pixel_model(size: tuple[int, int]) -> None:
    """
    Sliding windows over a 1x1 convolution stitch back to the full image's logits.

    A 1x1 convolution sees one pixel, so every overlapping window gives each pixel the full
    image's logits: the stitched average must equal them (a pixel missed, counted twice or
    shifted shows up).
    """
    model = torch.nn.Conv2d(3, 11, 1).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        full = model(x)
        tiled = sliding_window_logits(model, x, 11, (32, 32))
    torch.testing.assert_close(tiled, full)


def test_eval_cli_rejects_mismatched_classes_and_missing_files(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_camvid_tree(tmp_path / "cv", {"test": 1})
    model = build_model(ModelConfig(backbone="mobilenetv2", num_classes=3, head_channels=32,
                                    low_level_channels=16))
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(["a", "b", "c"], [[0, 0, 0]] * 3))
    assert eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                      str(tmp_path / "cv"), "--workers", "0"]) == 2
    assert "classes" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(tmp_path / "none.pt"), "--dataset", "camvid",
                      "--root", str(tmp_path / "cv")]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_per_image_counts_sum_to_the_dataset_figures_and_reach_the_npz(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path / "cv", {"test": 3}, size=(40, 56))
    model = tiny_model()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(
        list(build_dataset("camvid", tmp_path / "cv", "test").spec.class_names), [[0, 0, 0]] * 11,
        mean=MEAN, std=STD))
    out = tmp_path / "eval"
    assert eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                      str(tmp_path / "cv"), "--workers", "0", "--batch-size", "2",
                      "--per-image", "--output", str(out)]) == 0
    import json

    import numpy as np

    from slimseg_ros.training.metrics import boundary_f_score
    results = json.loads((out / "metrics.json").read_text())["results"]
    with np.load(out / "per_image.npz") as data:
        assert data["confusion"].shape == (2, 3, 11, 11) and data["boundary"].shape == (2, 3, 4)
        for i, w in enumerate(data["widths"]):
            assert mean_iou(data["confusion"][i].sum(0)) == pytest.approx(
                results[f"{w:g}"]["miou"])
            assert boundary_f_score(data["boundary"][i].sum(0)) == pytest.approx(
                results[f"{w:g}"]["boundary_f"])
        assert not np.array_equal(data["confusion"][0][0], data["confusion"][0][1])
    with pytest.raises(SystemExit):
        eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                   str(tmp_path / "cv"), "--per-image"])


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_eval_through_a_runtime_backend_scores_like_torch(tmp_path: Path, backend: str) -> None:
    pytest.importorskip(backend)
    import json
    write_camvid_tree(tmp_path / "cv", {"test": 2}, size=(40, 56))
    model = tiny_model()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(
        list(build_dataset("camvid", tmp_path / "cv", "test").spec.class_names), [[0, 0, 0]] * 11,
        mean=MEAN, std=STD))
    scores = {}
    for name in ("torch", backend):
        out = tmp_path / name
        assert eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid",
                          "--root", str(tmp_path / "cv"), "--workers", "0", "--backend", name,
                          "--output", str(out)]) == 0
        payload = json.loads((out / "metrics.json").read_text())
        assert payload["backend"] == name
        scores[name] = {w: r["miou"] for w, r in payload["results"].items()}
    for w, v in scores["torch"].items():
        assert scores[backend][w] == pytest.approx(v, abs=1e-3)
    assert eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                      str(tmp_path / "cv"), "--backend", "onnxruntime", "--precision",
                      "bf16"]) == 2


def test_input_size_runs_the_network_smaller_and_scores_at_the_label_size(
        tmp_path: Path, capsys) -> None:
    import json

    import numpy as np

    from slimseg_ros.inference.engine import SegmentationEngine

    write_camvid_tree(tmp_path / "cv", {"test": 2}, size=(40, 56))
    model = tiny_model()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.classifier.weight, std=1.0)
    info = ModelInfo(list(build_dataset("camvid", tmp_path / "cv", "test").spec.class_names),
                     [[0, 0, 0]] * 11, mean=MEAN, std=STD)
    save_checkpoint(tmp_path / "m.pt", model, info)
    out = tmp_path / "small"
    assert eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                      str(tmp_path / "cv"), "--workers", "0", "--backend", "torch",
                      "--input-size", "21", "29", "--widths", "1.0", "--output", str(out)]) == 0
    assert "rounded to 24x32" in capsys.readouterr().err
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["input_size"] == [24, 32] and payload["size"] is None
    # the same figures as masks made at 24x32 by the engine and scored against 40x56 labels
    engine = SegmentationEngine(model, info, device="cpu", backend="torch", input_size=(24, 32))
    dataset = build_dataset("camvid", tmp_path / "cv", "test")
    cm = torch.zeros(11, 11, dtype=torch.long)
    for image, label in dataset:
        frame = image.permute(1, 2, 0).contiguous().numpy()
        mask = engine.infer(frame, engine.widths.exact(1.0))
        assert mask.shape == (40, 56)
        cm += confusion_matrix(torch.from_numpy(mask.astype(np.int64)), label, 11)
    assert payload["results"]["1"]["miou"] == pytest.approx(mean_iou(cm), abs=1e-6)
    for bad in (["0", "32"], ["24", "x"]):
        with pytest.raises(SystemExit):
            eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                       str(tmp_path / "cv"), "--input-size", *bad])
        assert "positive number of pixels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "camvid", "--root",
                   str(tmp_path / "cv"), "--input-size", "24", "32", "--size", "40", "56"])
    assert "goes with neither --size" in capsys.readouterr().err
