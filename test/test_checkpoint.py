"""Checkpoints: exact round trip at every width, fp16 files, refusal of unsafe or wrong files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from slimseg_ros.models import (CheckpointError, ModelConfig, ModelInfo, build_model,
                                load_checkpoint, save_checkpoint, set_width)

WIDTHS = (0.25, 0.5, 0.75, 1.0)
NUM_CLASSES = 4
X = torch.randn(1, 3, 65, 97, generator=torch.Generator().manual_seed(3))  # odd size on purpose


def make(backbone: str = "resnet18", num_classes: int = NUM_CLASSES) -> nn.Module:
    cfg = ModelConfig(backbone=backbone, num_classes=num_classes, widths=WIDTHS,
                      head_channels=64, low_level_channels=16)
    model = build_model(cfg)
    # Non-default BN statistics/affine so the round trip must carry every BN buffer.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
    return model.eval()


def info(num_classes: int = NUM_CLASSES) -> ModelInfo:
    return ModelInfo(class_names=[f"class{i}" for i in range(num_classes)],
                     palette=[[10 * i, 20 * i, 30 * i] for i in range(num_classes)],
                     input_size=[64, 96])


def outputs(model: nn.Module, x: torch.Tensor) -> dict[float, torch.Tensor]:
    result = {}
    with torch.no_grad():
        for w in WIDTHS:
            set_width(model, w)
            result[w] = model(x)
    return result


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[float, torch.Tensor]]:
    """Save a resnet18 checkpoint; return its path and its reference outputs at every width."""
    torch.manual_seed(0)
    model = make()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, info())
    return path, outputs(model, X)


def test_round_trip_is_exact_at_every_width(saved) -> None:
    path, ref = saved
    model, meta = load_checkpoint(path)
    assert not model.training
    assert meta.class_names == info().class_names and meta.input_size == [64, 96]
    got = outputs(model, X)
    for w in WIDTHS:
        assert torch.equal(got[w], ref[w]), f"width {w} differs after save/load"


def test_round_trip_mobilenetv2(tmp_path: Path) -> None:
    model = make("mobilenetv2")
    ref = outputs(model, X)
    save_checkpoint(tmp_path / "m.pt", model, info())
    got = outputs(load_checkpoint(tmp_path / "m.pt")[0], X)
    for w in WIDTHS:
        assert torch.equal(got[w], ref[w])


def test_half_checkpoint_is_smaller_and_close(saved, tmp_path: Path) -> None:
    path, ref = saved
    model, _ = load_checkpoint(path)
    half_path = tmp_path / "half.pt"
    save_checkpoint(half_path, model, info(), half=True)
    assert half_path.stat().st_size < 0.6 * path.stat().st_size
    loaded, _ = load_checkpoint(half_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    got = outputs(loaded, X)
    for w in WIDTHS:
        scale = ref[w].abs().max().item()
        torch.testing.assert_close(got[w], ref[w], rtol=0, atol=2e-2 * scale)


def test_pickled_code_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    zipped = tmp_path / "evil_zip.pt"
    torch.save({"format": "slimseg_ros/model", "state_dict": Evil()}, zipped)
    legacy = tmp_path / "evil_pickle.pt"
    legacy.write_bytes(pickle.dumps(Evil(), protocol=2))
    for path in (zipped, legacy):
        with pytest.raises(CheckpointError, match=path.name) as err:
            load_checkpoint(path)
        _says_pickled_code_without_unsafe_advice(str(err.value))
        assert "system" in str(err.value)  # the refused callable is named
    assert not marker.exists(), "loading a checkpoint executed code from the file"


class Custom:
    """A class that is no part of a checkpoint (what an unrelated training script might pickle)."""

    def __init__(self) -> None:
        self.weights = torch.zeros(2)


def test_pickled_custom_object_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "with_object.pt"
    torch.save({"format": "slimseg_ros/model", "extra": Custom()}, path)
    with pytest.raises(CheckpointError, match="with_object.pt") as err:
        load_checkpoint(path)
    _says_pickled_code_without_unsafe_advice(str(err.value))
    assert "Custom" in str(err.value)


def _says_pickled_code_without_unsafe_advice(message: str) -> None:
    assert "holds pickled code or objects" in message, message
    assert "weights_only" not in message and "trust" not in message, message


def test_truncated_file_is_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "truncated.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(cut)


def test_random_bytes_and_missing_file_are_refused(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="noise.pt"):
        load_checkpoint(noise)
    with pytest.raises(CheckpointError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def _edited(saved_path: Path, out: Path, **config_changes) -> Path:
    """Copy of the checkpoint with changed config fields (class names/palette kept valid)."""
    payload = torch.load(saved_path, weights_only=True)
    payload["config"].update(config_changes)
    n = payload["config"]["num_classes"]
    payload["class_names"] = [f"c{i}" for i in range(n)]
    payload["palette"] = [[0, 0, 0]] * n
    torch.save(payload, out)
    return out


def test_other_architecture_is_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    wrong = _edited(path, tmp_path / "says_mobilenet.pt", backbone="mobilenetv2")
    with pytest.raises(CheckpointError, match="says_mobilenet.pt") as err:
        load_checkpoint(wrong)
    assert "does not match its model" in str(err.value)


def test_wrong_num_classes_is_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    wrong = _edited(path, tmp_path / "seven_classes.pt", num_classes=7)
    with pytest.raises(CheckpointError, match="seven_classes.pt") as err:
        load_checkpoint(wrong)
    assert "head.classifier.weight" in str(err.value)


def test_missing_weights_are_refused(saved, tmp_path: Path) -> None:
    path, _ = saved
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]["backbone.layer3.1.conv2.weight"]
    torch.save(payload, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="incomplete.pt") as err:
        load_checkpoint(tmp_path / "incomplete.pt")
    assert "backbone.layer3.1.conv2.weight" in str(err.value)


def test_pretrained_path_in_saved_config_is_not_reread(saved, tmp_path: Path) -> None:
    # A checkpoint trained from ImageNet weights must load where that file no longer exists.
    path, ref = saved
    edited = _edited(path, tmp_path / "from_imagenet.pt", pretrained=str(tmp_path / "gone.pth"))
    model, _ = load_checkpoint(edited)
    assert torch.equal(outputs(model, X)[1.0], ref[1.0])


def test_convert_to_fp16_halves_the_file_and_keeps_outputs(tmp_path: Path) -> None:
    from slimseg_ros.models import set_width
    from slimseg_ros.models.checkpoint import main as convert_main

    model = build_model(ModelConfig(backbone="mobilenetv2", head="fcn", num_classes=3,
                                    head_channels=32)).eval()
    info = ModelInfo(class_names=["a", "b", "c"], palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]])
    src, dst = tmp_path / "fp32.pt", tmp_path / "fp16.pt"
    save_checkpoint(src, model, info)
    assert convert_main([str(src), str(dst), "--input-size", "96", "128"]) == 0
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    half_model, half_info = load_checkpoint(dst)
    assert half_info.input_size == [96, 128] and half_info.class_names == ["a", "b", "c"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for w in (0.25, 1.0):
            ref = set_width(model, w)(x)
            got = set_width(half_model, w)(x)
            assert (got.argmax(1) == ref.argmax(1)).float().mean() > 0.99
    with pytest.raises(SystemExit):
        convert_main([str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")])
    assert not (tmp_path / "out.pt").exists()
