"""
Training config: YAML -> frozen dataclasses, overrides and ``base:`` inheritance.

Also that unknown keys are named and that the shipped configs are valid.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from slimseg_ros.training.config import (ConfigError, apply_overrides, config_from_dict,
                                         load_config, read_config_file, save_config)
from slimseg_ros.training.train import load_train_state, train

from synthetic_data import write_camvid_tree

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


# ---------------------------------------------------------------------------------------------
# base: inheritance

DEFAULT_STAGE = "camvid_default_efficientnet_lite0_cpu.yaml"
# what the later stages of the default model change, as their full files held it before they
# were written as differences from the first stage
STAGE_DIFFERENCES = {
    "camvid_default_efficientnet_lite0_cpu_finetune.yaml": {
        "model": {"pretrained": None}, "load_from": "runs/default_stage2.pt",
        "optim": {"lr": 0.01}, "schedule": {"iterations": 800, "warmup_iters": 30},
        "distill": {"class_weights": "median_frequency", "class_weight_power": 0.5},
        "eval": {"interval": 200}, "runtime": {"threads": 2},
        "output_dir": "runs/camvid_default_efficientnet_lite0_cpu_finetune", "seed": 1},
    "camvid_default_efficientnet_lite0_cpu_swa.yaml": {
        "model": {"pretrained": None}, "load_from": "runs/default_soup.pt",
        "optim": {"lr": 0.005}, "schedule": {"iterations": 1100, "warmup_iters": 20, "power": 0.0},
        "distill": {"class_weights": "median_frequency", "class_weight_power": 0.5},
        "eval": {"interval": 0}, "runtime": {"threads": 2, "snapshot_interval": 50},
        "output_dir": "runs/camvid_default_efficientnet_lite0_cpu_swa", "seed": 2},
}


def with_changes(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for section, value in changes.items():
        if isinstance(value, dict):
            out.setdefault(section, {}).update(value)
        else:
            out[section] = value
    return out


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("name", sorted(STAGE_DIFFERENCES))
def test_later_stages_hold_only_their_differences_and_resolve_as_before(name: str) -> None:
    changes = STAGE_DIFFERENCES[name]
    assert yaml.safe_load((CONFIG_DIR / name).read_text()) == {"base": DEFAULT_STAGE, **changes}
    full = with_changes(yaml.safe_load((CONFIG_DIR / DEFAULT_STAGE).read_text()), changes)
    assert read_config_file(CONFIG_DIR / name) == full
    assert load_config(CONFIG_DIR / name) == config_from_dict(full)


def test_base_merges_per_nested_key_lists_whole_overrides_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_yaml(tmp_path / "shared" / "base.yaml", {
        "model": {"backbone": "resnet18", "num_classes": 11},
        "data": {"crop_size": [240, 320], "batch_size": 4},
        "optim": {"lr": 0.01, "momentum": 0.8}, "eval": {"widths": [0.5, 1.0]}, "seed": 3})
    child = write_yaml(tmp_path / "stages" / "child.yaml", {
        "base": "../shared/base.yaml",  # relative to the child's folder, not the working one
        "data": {"crop_size": [64]}, "optim": {"lr": 0.05, "grad_clip": 1.0},
        "eval": {"widths": [1.0]}, "model": {"pretrained": None}})
    monkeypatch.chdir(tmp_path)
    assert read_config_file(child) == {
        "model": {"backbone": "resnet18", "num_classes": 11, "pretrained": None},
        "data": {"crop_size": [64], "batch_size": 4},
        "optim": {"lr": 0.05, "momentum": 0.8, "grad_clip": 1.0},
        "eval": {"widths": [1.0]}, "seed": 3}
    cfg = load_config(child, ["optim.lr=0.3", "data.crop_size=[32, 48]"])
    assert cfg.optim.lr == 0.3 and cfg.optim.momentum == 0.8 and cfg.optim.grad_clip == 1.0
    assert cfg.data.crop_size == (32, 48) and cfg.data.batch_size == 4
    assert cfg.eval.widths == (1.0,) and cfg.model.backbone == "resnet18" and cfg.seed == 3


def test_a_base_may_have_a_base(tmp_path: Path) -> None:
    write_yaml(tmp_path / "a.yaml", {"optim": {"lr": 0.1, "momentum": 0.5}, "seed": 1})
    write_yaml(tmp_path / "b.yaml", {"base": "a.yaml", "optim": {"lr": 0.2}, "seed": 2})
    c = write_yaml(tmp_path / "c.yaml", {"base": str(tmp_path / "b.yaml"), "seed": 3})
    cfg = load_config(c)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.seed) == (0.2, 0.5, 3)


def test_missing_circular_and_malformed_bases_are_named(tmp_path: Path) -> None:
    child = write_yaml(tmp_path / "child.yaml", {"base": "gone.yaml"})
    with pytest.raises(ConfigError, match=r"child\.yaml: its base .*gone\.yaml does not exist"):
        load_config(child)
    write_yaml(tmp_path / "a.yaml", {"base": "b.yaml"})
    write_yaml(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ConfigError, match=r"circular base: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(tmp_path / "a.yaml")
    write_yaml(tmp_path / "self.yaml", {"base": "self.yaml"})
    with pytest.raises(ConfigError, match=r"circular base: .*self\.yaml -> .*self\.yaml"):
        load_config(tmp_path / "self.yaml")
    write_yaml(tmp_path / "list.yaml", {"base": ["a.yaml"]})
    with pytest.raises(ConfigError, match=r"list\.yaml: base must be the path"):
        load_config(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="'base'"):
        load_config(None, ["base=a.yaml"])


def test_run_folder_and_checkpoint_hold_the_resolved_config(tmp_path: Path) -> None:
    root = write_camvid_tree(tmp_path / "camvid", {"train": 2, "val": 1}, size=(48, 64))
    write_yaml(tmp_path / "base.yaml", {
        "model": {"backbone": "mobilenetv2", "num_classes": 11, "head_channels": 32,
                  "low_level_channels": 16, "pretrained": None},
        "data": {"root": str(root), "crop_size": [32, 48], "batch_size": 2, "workers": 0},
        "schedule": {"iterations": 5, "warmup_iters": 0}, "eval": {"interval": 0},
        "runtime": {"tensorboard": False, "progress": False}})
    child = write_yaml(tmp_path / "child.yaml", {"base": "base.yaml",
                                                 "output_dir": str(tmp_path / "run")})
    cfg = load_config(child, ["optim.lr=0.02"])
    train(cfg, max_iterations=1)
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored == cfg.to_dict() and "base" not in stored
    assert stored["model"]["backbone"] == "mobilenetv2" and stored["optim"]["lr"] == 0.02
    assert load_train_state(tmp_path / "run" / "last.pt")["config"] == cfg.to_dict()
