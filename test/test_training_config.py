"""Training config: YAML -> frozen dataclasses, overrides, unknown keys named, shipped configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from slimseg_ros.training.config import (ConfigError, apply_overrides, config_from_dict,
                                         load_config, save_config)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_defaults_are_frozen_dataclasses() -> None:
    cfg = config_from_dict({})
    assert cfg.distill.mode == "stepwise" and cfg.optim.momentum == 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]


def test_overrides_use_dotted_keys_and_yaml_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"backbone": "resnet18", "num_classes": 11},
                                    "optim": {"lr": 0.01}}))
    cfg = load_config(path, ["optim.lr=0.05", "data.crop_size=[240, 320]", "eval.widths=[0.5,1.0]",
                             "data.root=/somewhere/CamVid", "distill.boundary=false",
                             "model.widths=[0.5, 1.0]", "seed=7"])
    assert cfg.optim.lr == 0.05
    assert cfg.data.crop_size == (240, 320)
    assert cfg.eval.widths == (0.5, 1.0)
    assert cfg.data.root == "/somewhere/CamVid"
    assert cfg.distill.boundary is False
    assert cfg.model.widths == (0.5, 1.0) and cfg.model.num_classes == 11
    assert cfg.seed == 7


@pytest.mark.parametrize("data,name", [({"optim": {"lrr": 0.1}}, "optim.lrr"),
                                       ({"modle": {}}, "modle"),
                                       ({"model": {"backbon": "x"}}, "backbon"),
                                       ({"distill": {"mode": "sideways"}}, "sideways")])
def test_unknown_keys_and_values_are_named(data: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        config_from_dict(data)


def test_bad_overrides_are_rejected() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="data.crop"):
        load_config(None, ["data.crop=[1, 2]"])
    with pytest.raises(ConfigError, match="distill.width"):
        load_config(None, ["distill.mode=independent"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/config.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, ["data.crop_size=[64, 96]", "distill.mode=largest"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


@pytest.mark.parametrize("name", ["cityscapes_deeplabv3plus_r50.yaml",
                                  "cityscapes_deeplabv3plus_r18.yaml",
                                  "camvid_deeplabv3plus_r18.yaml",
                                  "camvid_deeplabv3plus_mbv2.yaml",
                                  "camvid_deeplabv3plus_efficientnet_lite0.yaml",
                                  "camvid_default_efficientnet_lite0_cpu.yaml",
                                  "camvid_default_efficientnet_lite0_cpu_finetune.yaml",
                                  "camvid_default_efficientnet_lite0_cpu_swa.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    cfg = load_config(CONFIG_DIR / name)
    dataset = name.split("_")[0]
    assert cfg.data.dataset == dataset
    assert cfg.model.num_classes == {"cityscapes": 19, "camvid": 11}[dataset]
    assert cfg.model.widths == (0.25, 0.5, 0.75, 1.0)
    if dataset == "cityscapes":
        assert min(cfg.data.crop_size) >= 512 and cfg.schedule.iterations >= 40000
    else:
        assert cfg.data.crop_size in ((360, 480), (240, 320), (720, 960))


def test_numbers_in_exponent_form_and_wrong_types() -> None:
    cfg = load_config(None, ["optim.lr=1e-3", "schedule.iterations=2e3", "data.root=2024"])
    assert cfg.optim.lr == 0.001 and cfg.schedule.iterations == 2000 and cfg.data.root == "2024"
    for bad, key in [("optim.lr=fast", "optim.lr"), ("schedule.iterations=2.5", "iterations"),
                     ("distill.boundary=maybe", "distill.boundary")]:
        with pytest.raises(ConfigError, match=key):
            load_config(None, [bad])
