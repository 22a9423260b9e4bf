"""Training on several splits at once (``data.train_split: [train, val]``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimseg_ros.training.config import ConfigError, DataConfig, split_names
from slimseg_ros.training.datasets import build_dataset
from synthetic_data import write_camvid_tree


def test_a_list_of_splits_and_the_plus_form_name_the_same_splits() -> None:
    assert DataConfig(train_split=["train", "val"]).train_split == ("train", "val")
    assert DataConfig(train_split="train+val").train_split == "train+val"
    assert split_names(("train", "val")) == split_names("train+val") == ["train", "val"]


@pytest.mark.parametrize("value, message", [
    ([], "empty split"), (["train", ""], "empty split"), ("train+", "empty split"),
    (["train", "train"], "repeats a split"), (["train+val"], "either a list"),
    (3, "split name or a list"), ([1, 2], "split name or a list")])
def test_bad_split_values_are_refused_by_name(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        DataConfig(train_split=value)  # type: ignore[arg-type]
    assert "data.train_split" in str(err.value)


def test_val_split_stays_one_split() -> None:
    with pytest.raises(ConfigError, match="data.val_split must be one split"):
        DataConfig(val_split=["val"])  # type: ignore[arg-type]


def test_a_dataset_of_two_splits_holds_both(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"train": 3, "val": 2}, size=(24, 32))
    both = build_dataset("camvid", tmp_path, ("train", "val"))
    assert len(both) == 5
    assert [p[0].parent.name for p in both.pairs] == ["train"] * 3 + ["val"] * 2
    assert [p[0] for p in both.pairs] == [p[0] for p in build_dataset(
        "camvid", tmp_path, "train+val").pairs]


def test_a_run_on_train_and_val_records_its_splits(tmp_path: Path) -> None:
    from slimseg_ros.models.checkpoint import safe_torch_load
    from slimseg_ros.training.config import load_config
    from slimseg_ros.training.train import train
    from test_training_loop import tiny_overrides

    root = write_camvid_tree(tmp_path / "cv", {"train": 3, "val": 2}, size=(48, 64))
    out = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(root, out, iterations=2,
                                           **{"data.train_split": ["train", "val"]}))
    train(cfg)
    assert "- train\n  - val\n" in (out / "config.yaml").read_text()
    assert safe_torch_load(out / "final_model.pt")["extra"]["train_splits"] == ["train", "val"]
