"""
Fine-tuning a checkpoint to another class list, evaluating it and serving it over DDS.

``load_from`` with a new classifier, the template config for fine-tuning the packaged model on
a folder dataset, slimseg-eval on the result and the node serving it over real DDS.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from slimseg_ros.models import ModelInfo, build_model, load_checkpoint, save_checkpoint
from slimseg_ros.models.segmenter import classifier_keys
from slimseg_ros.training.config import ConfigError, load_config
from slimseg_ros.training.evaluate import main as eval_main
from slimseg_ros.training.train import (DistInfo, build_datasets, load_initial_weights,
                                        load_train_state, resolve_load_from, train)

from test_folder_dataset import NAMES, PALETTE, write_folder
from test_training_loop import WIDTHS, read_log, tiny_overrides

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
TEMPLATE = CONFIGS / "folder_finetune_from_default.yaml"
CLASSIFIER = ["head.classifier.weight", "head.classifier.bias"]
SOURCE_CLASSES = 11  # the stand-in for the shipped CamVid model


def folder_overrides(root: Path, out: Path, iterations: int = 3, **extra: object) -> list[str]:
    """
    Return the overrides of a tiny 4-class run on a folder dataset.

    See test_training_loop.tiny_overrides.
    """
    return tiny_overrides(root, out, iterations, **{
        "data.dataset": "folder", "data.classes": "classes.yaml", "model.num_classes": 4,
        "data.crop_size": [24, 32], **extra})


def stand_in_checkpoint(cfg, path: Path) -> dict[str, torch.Tensor]:
    """
    Write an 11-class checkpoint of ``cfg``'s network with weights unlike a fresh model's.

    Returns its state dict.
    """
    model = build_model({**cfg.model.to_dict(), "num_classes": SOURCE_CLASSES,
                         "pretrained": None})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.fill_(0.5)
    info = ModelInfo(class_names=[f"camvid_{i}" for i in range(SOURCE_CLASSES)],
                     palette=[[i, 2 * i, 3 * i] for i in range(SOURCE_CLASSES)])
    save_checkpoint(path, model, info)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset root, run folder) of a 4-iteration fine-tune from the 11-class stand-in."""
    tmp = tmp_path_factory.mktemp("finetune")
    write_folder(tmp / "data")
    out = tmp / "run"
    cfg = load_config(None, folder_overrides(tmp / "data", out, iterations=4,
                                             **{"load_from": str(tmp / "start.pt")}))
    stand_in_checkpoint(cfg, tmp / "start.pt")
    with contextlib.redirect_stderr(io.StringIO()):
        summary = train(cfg)
    assert summary["iteration"] == 4 and not summary["interrupted"]
    return tmp / "data", out


# ---------------------------------------------------------------------------------------------
# load_from with another class count


def test_checkpoint_of_other_classes_loads_everything_but_the_classifier(tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    cfg = load_config(None, folder_overrides(tmp_path / "data", tmp_path / "run"))
    source = stand_in_checkpoint(cfg, tmp_path / "start.pt")
    model = build_model(cfg.model)
    assert classifier_keys(model) == CLASSIFIER
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_initial_weights(cfg, model, tmp_path / "start.pt", NAMES)
    state = model.state_dict()
    assert set(state) == set(source)
    for key, value in state.items():
        if key in CLASSIFIER:
            assert value.shape[0] == 4 and source[key].shape[0] == SOURCE_CLASSES
            assert torch.equal(value, fresh[key]), key  # its fresh initialisation, untouched
        else:
            assert torch.equal(value, source[key]), key
    assert (report.loaded, report.new) == (len(source) - 2, CLASSIFIER)
    assert report.describe(str(tmp_path / "start.pt")) == (
        f"load_from {tmp_path / 'start.pt'}: {len(source) - 2} tensors loaded, 2 new "
        f"(classifier for 4 classes; the checkpoint had {SOURCE_CLASSES})")


def test_same_class_count_keeps_the_classifier_and_notes_other_names(tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    cfg = load_config(None, folder_overrides(tmp_path / "data", tmp_path / "run",
                                             **{"model.num_classes": SOURCE_CLASSES}))
    source = stand_in_checkpoint(cfg, tmp_path / "start.pt")
    model = build_model(cfg.model)
    report = load_initial_weights(cfg, model, tmp_path / "start.pt",
                                  [f"mine_{i}" for i in range(SOURCE_CLASSES)])
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert (report.loaded, report.new) == (len(source), [])
    line = report.describe("start.pt")
    assert line.startswith(f"load_from start.pt ({tmp_path / 'start.pt'}): {len(source)} "
                           f"tensors loaded, 0 new; note: the class names differ")
    assert "camvid_0, camvid_1" in line


def test_another_backbone_or_head_is_still_refused_by_name(tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    cfg = load_config(None, folder_overrides(tmp_path / "data", tmp_path / "run"))
    stand_in_checkpoint(cfg, tmp_path / "start.pt")
    for changes, named in [({"model.backbone": "resnet18"}, "model.backbone"),
                           ({"model.head_channels": 16}, "model.head_channels"),
                           ({"model.widths": [0.5, 1.0]}, "model.widths")]:
        other = load_config(None, folder_overrides(tmp_path / "data", tmp_path / "run",
                                                   **changes))
        target = build_model(other.model)
        before = {k: v.clone() for k, v in target.state_dict().items()}
        with pytest.raises(ConfigError, match=r"start\.pt holds a different network: ") as err:
            load_initial_weights(other, target, tmp_path / "start.pt")
        message = str(err.value)
        assert f"{named} (" in message and "model.num_classes (11 there, 4 here)" in message
        assert message.endswith("(only model.num_classes may differ: the classifier then "
                                "starts afresh)")
        assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_training_loads_the_checkpoint_over_imagenet_weights_and_logs_the_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torchvision = pytest.importorskip("torchvision")
    write_folder(tmp_path / "data")
    torch.save(torchvision.models.mobilenet_v2().state_dict(), tmp_path / "imagenet.pth")
    out = tmp_path / "run"
    cfg = load_config(None, folder_overrides(tmp_path / "data", out, **{
        "model.pretrained": str(tmp_path / "imagenet.pth"), "load_from": str(tmp_path / "s.pt")}))
    source = stand_in_checkpoint(cfg, tmp_path / "s.pt")
    imagenet = build_model(cfg.model).state_dict()  # what model.pretrained alone gives
    train(cfg, max_iterations=0)  # stops before the first step: last.pt holds the start
    start = load_train_state(out / "last.pt")["model"]
    backbone = [k for k in source if k.startswith("backbone.") and k.endswith(".weight")]
    assert backbone and not any(torch.equal(imagenet[k], source[k]) for k in backbone)
    for key, value in start.items():
        if key in CLASSIFIER:
            assert value.shape[0] == 4
        else:
            assert torch.equal(value, source[key]), key
    assert (f"load_from {tmp_path / 's.pt'}: {len(source) - 2} tensors loaded, 2 new "
            f"(classifier for 4 classes; the checkpoint had 11)") in capsys.readouterr().err


def test_class_count_against_the_classes_file_says_what_to_set(tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    cfg = load_config(None, folder_overrides(tmp_path / "data", tmp_path / "run",
                                             **{"model.num_classes": 11}))
    with pytest.raises(ConfigError, match=r"model\.num_classes is 11 but the classes file "
                                          r".*classes\.yaml names 4 classes \(road, vehicle, "
                                          r"person, background\); set model\.num_classes: 4"):
        build_datasets(cfg, DistInfo())


# ---------------------------------------------------------------------------------------------
# a short fine-tune, evaluated


def test_finetune_trains_every_width_with_the_recipe_for_the_new_classes(
        finetuned: tuple[Path, Path]) -> None:
    _, out = finetuned
    model, info = load_checkpoint(out / "final_model.pt")
    assert model.config.num_classes == 4
    assert list(info.class_names) == NAMES and [list(c) for c in info.palette] == PALETTE
    records = read_log(out, "train")
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert set(r["loss"]) == {f"{w:g}" for w in WIDTHS}
        for w in WIDTHS:
            terms = r["loss"][f"{w:g}"]
            assert terms["boundary"] > 0  # boundary-guided CE at every width
            assert (terms["kd"] > 0) == (w != 1.0)  # stepwise KD below the widest
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["distill"]["mode"] == "stepwise" and stored["distill"]["boundary"] is True


def test_slimseg_eval_scores_the_finetuned_model(finetuned: tuple[Path, Path]) -> None:
    root, out = finetuned
    assert eval_main(["--checkpoint", str(out / "final_model.pt"), "--dataset", "folder",
                      "--root", str(root), "--classes", str(root / "classes.yaml"),
                      "--split", "test", "--backend", "torch", "--workers", "0",
                      "--output", str(out / "test")]) == 0
    payload = json.loads((out / "test" / "metrics.json").read_text())
    assert payload["backend"] == "torch"
    assert set(payload["results"]) == {f"{w:g}" for w in WIDTHS}
    for result in payload["results"].values():
        assert result["images"] == 2 and list(result["per_class_iou"]) == NAMES
        assert 0.0 <= result["miou"] <= 1.0


# ---------------------------------------------------------------------------------------------
# the template config


def test_template_is_the_default_models_network_and_loads_it(tmp_path: Path) -> None:
    write_folder(tmp_path / "data")
    cfg = load_config(TEMPLATE, [f"data.root={tmp_path / 'data'}"])
    train_set, val_set = build_datasets(cfg, DistInfo())  # 4 classes, as the classes file
    assert train_set.spec.class_names == tuple(NAMES) and len(val_set) == 1
    assert (cfg.data.dataset, cfg.data.classes) == ("folder", "classes.yaml")
    assert (cfg.distill.mode, cfg.distill.boundary) == ("stepwise", True)
    assert cfg.schedule.iterations <= 1000 and cfg.model.pretrained is None
    default = load_config(CONFIGS / "camvid_default_efficientnet_lite0_cpu.yaml")
    ignore = {"num_classes", "pretrained"}
    assert {k: v for k, v in cfg.model.to_dict().items() if k not in ignore} == \
        {k: v for k, v in default.model.to_dict().items() if k not in ignore}

    path = resolve_load_from(cfg.load_from)
    assert path == REPO / "models" / "default.pt"
    _, shipped = load_checkpoint(path)
    assert (list(cfg.data.mean), list(cfg.data.std)) == (shipped.mean, shipped.std)
    model = build_model(cfg.model)
    report = load_initial_weights(cfg, model, path, NAMES)
    assert (report.new, report.classes, report.checkpoint_classes) == (CLASSIFIER, 4, 11)
    assert report.notes == []


def test_packaged_names_resolve_in_the_models_folder_or_are_named() -> None:
    assert resolve_load_from("packaged:default.pt") == REPO / "models" / "default.pt"
    assert resolve_load_from("runs/x.pt") == Path("runs/x.pt")
    with pytest.raises(ConfigError, match=r"no model other\.pt in .*models; packaged models: "
                                          r"default\.pt"):
        resolve_load_from("packaged:other.pt")
    for bad in ("packaged:", "packaged:../default.pt", "packaged:models/default.pt"):
        with pytest.raises(ConfigError, match="file name of a packaged model"):
            resolve_load_from(bad)


# ---------------------------------------------------------------------------------------------
# the node serves the fine-tuned model


@pytest.fixture(scope="module")
def ros_context():
    rclpy = pytest.importorskip("rclpy")
    pytest.importorskip("sensor_msgs.msg")
    pytest.importorskip("diagnostic_msgs.msg")
    from node_harness import pick_domain_id

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id())
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.mark.ros
def test_node_serves_the_finetuned_model_with_its_classes_and_palette(
        ros_context, finetuned: tuple[Path, Path]) -> None:
    from builtin_interfaces.msg import Time
    from rclpy.parameter import Parameter

    from node_harness import Probe, Spinner, image_msg, wait_for
    from slimseg_ros.ros.conversions import colorize, palette_lut
    from slimseg_ros.ros.node import SlimSegNode

    _, out = finetuned
    node = SlimSegNode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(out / "final_model.pt")),
        Parameter("backend", value="torch"), Parameter("publish_color", value=True)])
    probe = Probe(ros_context)
    spinner = Spinner(ros_context, node, probe.node)
    try:
        assert node.get_parameter("class_names").value == NAMES
        assert list(node.get_parameter("palette").value) == [v for c in PALETTE for v in c]
        probe.subscribe_color()
        wait_for(lambda: probe.count(probe.widths) > 0)  # latched active width: node is up
        h, w = 36, 52
        pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        sent = []

        def send() -> None:  # a new stamp per frame pairs each colour image with its mask
            sent.append(image_msg(pixels, "rgb8", frame_id="robot_cam",
                                  stamp=Time(sec=len(sent) + 1)))
            probe.image_pub.publish(sent[-1])

        wait_for(lambda: probe.count(probe.colors) > 0, action=send)
        with probe.lock:
            color = probe.colors[-1]
            masks = [m for m in probe.masks if m.header.stamp == color.header.stamp]
        assert (color.height, color.width, color.encoding) == (h, w, "rgb8")
        assert masks, "the colour image's mask"
        ids = np.frombuffer(masks[-1].data, np.uint8).reshape(h, w)
        assert ids.max() < 4
        rgb = np.frombuffer(color.data, np.uint8).reshape(h, w, 3)
        np.testing.assert_array_equal(rgb, colorize(ids, palette_lut(PALETTE)))
        assert {tuple(c) for c in rgb.reshape(-1, 3)} <= {tuple(c) for c in PALETTE}
    finally:
        spinner.stop()
        node.destroy_node()
        probe.destroy()
