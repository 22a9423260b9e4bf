"""Class-weighted label terms and fine-tuning from a checkpoint (``load_from``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slimseg_ros.models import ModelInfo, build_model, save_checkpoint
from slimseg_ros.training.config import ConfigError, DistillConfig, load_config
from slimseg_ros.training.datasets import build_dataset, class_pixel_counts
from slimseg_ros.training.losses import cross_entropy, median_frequency_weights, weighted_mean
from slimseg_ros.training.slimseg import width_losses
from slimseg_ros.training.train import class_weights_for, load_initial_weights, train

from synthetic_data import write_camvid_tree
from test_datasets import write_png
from test_training_loop import read_log, tiny_overrides


def test_median_frequency_weights_by_hand() -> None:
    # class 0: 60 of 100 px in the one image it is in -> 0.6; class 1: 10 of 200 -> 0.05;
    # class 2: 30 of 100 -> 0.3; median 0.3
    w = median_frequency_weights([60, 10, 30], [100, 200, 100])
    assert w.tolist() == pytest.approx([0.5, 6.0, 1.0])
    assert median_frequency_weights([60, 10, 30], [100, 200, 100], power=0.5).tolist() == \
        pytest.approx([0.5 ** 0.5, 6.0 ** 0.5, 1.0])
    assert median_frequency_weights([60, 10, 30], [100, 200, 100], power=0.0).tolist() == \
        pytest.approx([1.0, 1.0, 1.0])
    # a class absent from every label keeps weight 1 and does not move the median
    assert median_frequency_weights([60, 0, 30], [100, 0, 100]).tolist() == \
        pytest.approx([0.45 / 0.6, 1.0, 0.45 / 0.3])
    with pytest.raises(ValueError, match="no class"):
        median_frequency_weights([0, 0], [0, 0])


def test_weighted_ce_matches_pytorch_weighted_mean_and_ignores_255() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, 0, :3] = 255
    w = torch.tensor([0.5, 2.0, 1.0, 4.0])
    expected = F.cross_entropy(logits, target, weight=w, ignore_index=255)
    assert cross_entropy(logits, target, class_weights=w).item() == \
        pytest.approx(expected.item(), rel=1e-6)
    plain = F.cross_entropy(logits, target, ignore_index=255)
    assert cross_entropy(logits, target).item() == pytest.approx(plain.item(), rel=1e-6)
    # restricted to a mask: the weighted mean over those pixels only
    mask = torch.zeros_like(target, dtype=torch.bool)
    mask[:, 2:] = True
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    keep = mask & (target != 255)
    pixel_w = w[target.clamp(max=3)] * keep
    by_hand = (per_pixel * pixel_w).sum() / pixel_w.sum()
    assert weighted_mean(per_pixel, target, w, mask=mask).item() == pytest.approx(by_hand.item(),
                                                                                  rel=1e-6)
    # every pixel ignored: 0, not NaN
    assert cross_entropy(logits, torch.full_like(target, 255), class_weights=w).item() == 0.0


def test_class_weights_raise_the_label_terms_of_a_rare_class() -> None:
    # one wrong pixel of class 1 among correct class-0 pixels: weighting class 1 up raises CE
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0] = 3.0
    target = torch.tensor([[[0, 0, 0, 1]]])
    cfg = DistillConfig(boundary=False)
    plain = width_losses(logits, target, None, cfg, True, None)["ce"]
    weighted = width_losses(logits, target, None, cfg, True, None,
                            class_weights=torch.tensor([1.0, 9.0]))["ce"]
    assert weighted.item() > 2 * plain.item()


def test_class_weight_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="class_weights"):
        load_config(None, ["distill.class_weights=inverse_sqrt"])
    with pytest.raises(ConfigError, match="class_weights"):
        load_config(None, ["distill.class_weights=[1.0, -2.0]"])
    with pytest.raises(ConfigError, match="class_weight_power"):
        load_config(None, ["distill.class_weight_power=2"])
    cfg = load_config(None, ["distill.class_weights=[1, 2, 3]"])
    assert cfg.distill.class_weights == (1.0, 2.0, 3.0)
    with pytest.raises(ConfigError, match="3 values for 11 classes"):
        class_weights_for(load_config(None, ["distill.class_weights=[1, 2, 3]",
                                             "model.num_classes=11"]), None)


def test_class_pixel_counts_from_label_files(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    write_png(tmp_path / "train" / "a.png", rgb)
    write_png(tmp_path / "trainannot" / "a.png", np.array([[0, 0, 1], [1, 1, 11]], np.uint8))
    write_png(tmp_path / "train" / "b.png", rgb)
    write_png(tmp_path / "trainannot" / "b.png", np.array([[0, 0, 0], [0, 0, 2]], np.uint8))
    class_pixels, image_pixels = class_pixel_counts(build_dataset("camvid", tmp_path, "train"))
    assert class_pixels[:4].tolist() == [7, 3, 1, 0]
    assert class_pixels.sum() == 11  # the void pixel is not counted
    assert image_pixels[:4].tolist() == [12, 6, 6, 0]


def _tiny_checkpoint(cfg, path: Path, half: bool) -> torch.nn.Module:
    model = build_model(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    info = ModelInfo(class_names=[f"c{i}" for i in range(11)],
                     palette=[[i, i, i] for i in range(11)])
    save_checkpoint(path, model, info, half=half)
    return model


def test_load_from_starts_from_the_checkpoint_weights(tmp_path: Path) -> None:
    camvid = write_camvid_tree(tmp_path / "camvid", {"train": 4, "val": 1}, size=(48, 64))
    cfg = load_config(None, tiny_overrides(camvid, tmp_path / "run", iterations=1))
    source = _tiny_checkpoint(cfg, tmp_path / "start.pt", half=True)
    fresh = build_model(cfg.model)
    load_initial_weights(cfg, fresh, tmp_path / "start.pt")
    for (k, a), b in zip(source.state_dict().items(), fresh.state_dict().values()):
        expected = a.half().float() if a.is_floating_point() else a
        assert torch.equal(expected, b), k

    # a different network is refused, naming the difference, and nothing is copied
    other = load_config(None, tiny_overrides(camvid, tmp_path / "run", iterations=1,
                                             **{"model.head_channels": 64}))
    target = build_model(other.model)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError, match="model.head_channels"):
        load_initial_weights(other, target, tmp_path / "start.pt")
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    # a training state is not a model checkpoint
    train(cfg)
    with pytest.raises(ConfigError, match="--resume"):
        load_initial_weights(cfg, fresh, tmp_path / "run" / "last.pt")


@pytest.mark.slow
def test_fine_tuning_run_with_median_frequency_weights(tmp_path: Path) -> None:
    camvid = write_camvid_tree(tmp_path / "camvid", {"train": 6, "val": 2}, size=(48, 64))
    base = load_config(None, tiny_overrides(camvid, tmp_path / "base", iterations=1))
    _tiny_checkpoint(base, tmp_path / "start.pt", half=False)
    out = tmp_path / "ft"
    cfg = load_config(None, tiny_overrides(camvid, out, iterations=3, **{
        "load_from": str(tmp_path / "start.pt"), "distill.class_weights": "median_frequency",
        "distill.class_weight_power": 0.5, "optim.lr": 1e-9, "optim.momentum": 0.0,
        "optim.weight_decay": 0.0}))
    summary = train(cfg)
    assert summary["iteration"] == 3
    (record,) = read_log(out, "class_weights")
    weights = list(record["weights"].values())
    assert len(weights) == 11 and all(w > 0 for w in weights) and max(weights) > min(weights)
    # with a vanishing learning rate the run's convolution weights are the checkpoint's
    start = torch.load(tmp_path / "start.pt", weights_only=True)["state_dict"]
    last = torch.load(out / "last.pt", weights_only=True)["model"]
    convs = [k for k, v in start.items() if k.endswith("weight") and v.ndim == 4]
    assert convs and all(torch.allclose(start[k], last[k], atol=1e-6) for k in convs)
    assert json.loads((out / "train_log.jsonl").read_text().splitlines()[0])["type"] == \
        "class_weights"
