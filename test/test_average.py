"""Weight averaging of checkpoints (slimseg-average) and the snapshots a run keeps for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slimseg_ros.models import CheckpointError, ModelConfig, ModelInfo, build_model, \
    load_checkpoint, save_checkpoint
from slimseg_ros.training.average import average_checkpoints, main
from slimseg_ros.training.config import load_config
from slimseg_ros.training.train import train

from synthetic_data import write_camvid_tree
from test_training_loop import tiny_overrides

CONFIG = dict(backbone="mobilenetv2", num_classes=3, widths=(0.5, 1.0), head_channels=16,
              low_level_channels=8, pretrained=None)


def _info(names: list[str] | None = None) -> ModelInfo:
    names = names or ["a", "b", "c"]
    return ModelInfo(class_names=names, palette=[[i, i, i] for i in range(len(names))])


def _saved(path: Path, seed: int, info: ModelInfo | None = None, **config: object
           ) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**{**CONFIG, **config}))
    with torch.no_grad():  # distinct BN statistics too, so their averaging is checked
        for name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.add_(torch.rand_like(buf))
    save_checkpoint(path, model, info or _info())
    return model


def test_average_is_the_mean_of_every_weight_and_bn_statistic(tmp_path: Path) -> None:
    models = [_saved(tmp_path / f"m{i}.pt", seed=i) for i in range(3)]
    averaged, info = average_checkpoints([tmp_path / f"m{i}.pt" for i in range(3)])
    states = [m.state_dict() for m in models]
    checked = 0
    for k, v in averaged.state_dict().items():
        if v.is_floating_point():
            expected = sum(s[k].double() for s in states) / 3
            assert torch.allclose(v.double(), expected, atol=1e-6), k
            checked += 1
        else:
            assert torch.equal(v, states[0][k]), k
    assert checked > 50
    conv = next(k for k, v in states[0].items() if v.ndim == 4)
    assert not torch.equal(averaged.state_dict()[conv], states[0][conv])
    assert info.class_names == ["a", "b", "c"]


def test_different_networks_or_classes_are_refused_by_name(tmp_path: Path) -> None:
    _saved(tmp_path / "a.pt", seed=0)
    _saved(tmp_path / "wide.pt", seed=1, head_channels=32)
    _saved(tmp_path / "names.pt", seed=2, info=_info(["x", "y", "z"]))
    with pytest.raises(CheckpointError, match=r"wide\.pt.*model\.head_channels"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "wide.pt"])
    with pytest.raises(CheckpointError, match=r"names\.pt.*class_names"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "names.pt"])
    with pytest.raises(CheckpointError, match="at least 2"):
        average_checkpoints([tmp_path / "a.pt"])
    (tmp_path / "state.pt").write_bytes((tmp_path / "a.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="state.pt"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "state.pt"])


def test_cli_writes_a_loadable_checkpoint_and_never_overwrites_an_input(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _saved(tmp_path / "a.pt", seed=0)
    _saved(tmp_path / "b.pt", seed=1)
    before = (tmp_path / "a.pt").read_bytes()
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                 "--output", str(tmp_path / "a.pt")]) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert (tmp_path / "a.pt").read_bytes() == before
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "wide.pt"),
                 "--output", str(tmp_path / "out.pt")]) == 2
    assert not (tmp_path / "out.pt").exists()
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--half",
                 "--output", str(tmp_path / "out.pt")]) == 0
    model, info = load_checkpoint(tmp_path / "out.pt")
    payload = torch.load(tmp_path / "out.pt", weights_only=True)
    assert payload["extra"]["averaged_from"] == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    assert all(v.dtype == torch.float16 for v in payload["state_dict"].values()
               if v.is_floating_point())
    x = torch.randn(1, 3, 32, 48)
    assert model(x).shape == (1, 3, 32, 48)


@pytest.mark.slow
def test_run_keeps_snapshots_that_average(tmp_path: Path) -> None:
    camvid = write_camvid_tree(tmp_path / "camvid", {"train": 4, "val": 1}, size=(48, 64))
    out = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(camvid, out, iterations=4,
                                           **{"runtime.snapshot_interval": 2}))
    train(cfg)
    snapshots = sorted((out / "snapshots").glob("*.pt"))
    assert [p.name for p in snapshots] == ["model_iter000002.pt", "model_iter000004.pt"]
    payload = torch.load(snapshots[-1], weights_only=True)
    assert payload["extra"]["iteration"] == 4
    final = torch.load(out / "final_model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(final[k], v) for k, v in payload["state_dict"].items())
    averaged, _ = average_checkpoints(snapshots)
    assert averaged(torch.randn(1, 3, 48, 64)).shape == (1, 11, 48, 64)


def test_snapshot_interval_is_checked(tmp_path: Path) -> None:
    from slimseg_ros.training.config import ConfigError
    with pytest.raises(ConfigError, match="snapshot_interval"):
        load_config(None, tiny_overrides(tmp_path, tmp_path / "run",
                                         **{"runtime.snapshot_interval": -1}))
