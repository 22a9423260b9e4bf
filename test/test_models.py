"""Slimmable backbones x heads: shapes, slicing, per-width BN, to_plain, ImageNet mapping."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from slimseg_ros.models import (ModelConfig, SlimmableConv2d, SwitchableBatchNorm2d, build_model,
                                channels_at, set_width, to_plain)
from slimseg_ros.models.pretrained import PretrainedError, load_full_width, read_state_dict
from slimseg_ros.models.registry import BACKBONES, HEADS
from slimseg_ros.models.segmenter import build_backbone

WIDTHS = (0.25, 0.5, 0.75, 1.0)
NUM_CLASSES = 5
ODD = (65, 97)  # odd height and width: padding/rounding mistakes show up here

FULL_CHANNELS = {"resnet18": (64, 512), "resnet50": (256, 2048), "resnet101": (256, 2048),
                 "mobilenetv2": (24, 320)}
TV_NAMES = {"resnet18": "resnet18", "resnet50": "resnet50", "mobilenetv2": "mobilenet_v2"}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def make(backbone: str, head: str = "deeplabv3plus", output_stride: int = 16, **kw) -> nn.Module:
    cfg = ModelConfig(backbone=backbone, head=head, num_classes=NUM_CLASSES, widths=WIDTHS,
                      output_stride=output_stride, head_channels=64, low_level_channels=16, **kw)
    return build_model(cfg)


def randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics/affine, so eval-mode outputs depend on every BN tensor."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


CASES = [(b, h) for b in ("resnet18", "resnet50", "mobilenetv2") for h in ("deeplabv3plus", "fcn")]
CASES.append(("resnet101", "deeplabv3plus"))


@pytest.mark.parametrize(("backbone", "head"), CASES)
def test_shapes_and_channels_at_every_width(backbone: str, head: str) -> None:
    model = make(backbone, head).eval()
    assert (model.backbone.low_channels, model.backbone.high_channels) == FULL_CHANNELS[backbone]
    x = torch.randn(1, 3, *ODD)
    feats_seen = {}
    hook = model.backbone.register_forward_hook(lambda m, i, o: feats_seen.update(o))
    for w in WIDTHS:
        set_width(model, w)
        with torch.no_grad():
            out = model(x)
        assert out.shape == (1, NUM_CLASSES, *ODD)
        assert torch.isfinite(out).all()
        low_c, high_c = FULL_CHANNELS[backbone]
        assert feats_seen["low"].shape == (1, channels_at(low_c, w), ceil_div(ODD[0], 4),
                                           ceil_div(ODD[1], 4))
        assert feats_seen["high"].shape == (1, channels_at(high_c, w), ceil_div(ODD[0], 16),
                                            ceil_div(ODD[1], 16))
    hook.remove()


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_registered_backbone_builds(backbone: str) -> None:
    """The registry is the only list of backbones: each entry imports, builds and runs."""
    net = build_backbone(ModelConfig(backbone=backbone, widths=WIDTHS, output_stride=32)).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 64, 64))
    assert feats["low"].shape == (1, net.low_channels, 16, 16)
    assert feats["high"].shape == (1, net.high_channels, 2, 2)


@pytest.mark.parametrize("head", list(HEADS))
def test_every_registered_head_builds(head: str) -> None:
    with torch.no_grad():
        assert make("resnet18", head).eval()(torch.randn(1, 3, 64, 64)).shape == (
            1, NUM_CLASSES, 64, 64)


def test_unknown_backbone_or_head_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'resnet19'.*'resnet18'.*'efficientnet_lite2'"):
        ModelConfig(backbone="resnet19")
    with pytest.raises(ValueError, match=r"'pspnet'.*'deeplabv3plus', 'fcn'"):
        ModelConfig(head="pspnet")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "mobilenetv2"])
@pytest.mark.parametrize("output_stride", [8, 32])
def test_output_stride(backbone: str, output_stride: int) -> None:
    model = build_backbone(ModelConfig(backbone=backbone, widths=WIDTHS,
                                       output_stride=output_stride)).eval()
    set_width(model, 0.25)
    with torch.no_grad():
        f = model(torch.randn(1, 3, 64, 64))
    assert f["low"].shape[-2:] == (16, 16)
    assert f["high"].shape[-2:] == (64 // output_stride, 64 // output_stride)


def calibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    """
    Set the active width's BN statistics from ``x``, then switch to eval mode.

    Activations then keep unit scale through a random network instead of fading out.
    """
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _perturb(model: nn.Module, index: int, inside: bool) -> None:
    """
    Add noise where width ``index`` must not read, or where it must.

    inside=False: to every parameter/buffer entry width ``index`` must not read; inside=True: to
    the active slice of one convolution.
    """
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SlimmableConv2d):
                cin, cout = m.in_channels_list[index], m.out_channels_list[index]
                noise = torch.randn(m.weight.shape, generator=gen)
                mask = torch.ones_like(m.weight, dtype=torch.bool)
                if m.depthwise:
                    mask[:cout] = False
                else:
                    mask[:cout, :cin] = False
                m.weight.add_(noise * mask)
                if m.bias is not None:
                    m.bias[cout:] += 1.0
            elif isinstance(m, SwitchableBatchNorm2d):
                for j, bn in enumerate(m.bn):
                    if j != index:
                        bn.weight.add_(1.0)
                        bn.running_mean.add_(1.0)
        if inside:
            conv = next(m for m in model.modules() if isinstance(m, SlimmableConv2d))
            conv.weight[0].add_(1.0)


@pytest.mark.parametrize(("backbone", "head"), [("resnet18", "deeplabv3plus"), ("resnet50", "fcn"),
                                                ("mobilenetv2", "deeplabv3plus")])
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_output_depends_only_on_active_slices(backbone: str, head: str, width: float) -> None:
    model = make(backbone, head)
    randomize_bn(model)
    set_width(model, width)
    index = WIDTHS.index(width)
    x = torch.randn(1, 3, 64, 64)
    calibrate_bn(model, torch.randn(2, 3, 64, 64))
    with torch.no_grad():
        ref = model(x)
        _perturb(model, index, inside=False)
        same = model(x)
        _perturb(model, index, inside=True)
        changed = model(x)
    assert torch.equal(ref, same)
    assert (ref - changed).abs().max() > 1e-3 * ref.abs().max()


def _bn_state(model: nn.Module, index: int) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, SwitchableBatchNorm2d)
            for t in (m.bn[index].running_mean, m.bn[index].running_var)]


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2"])
def test_per_width_bn_statistics_are_separate(backbone: str) -> None:
    model = make(backbone).train()
    before = {i: _bn_state(model, i) for i in range(len(WIDTHS))}
    set_width(model, 0.5)
    active = WIDTHS.index(0.5)
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    for i in range(len(WIDTHS)):
        after = _bn_state(model, i)
        unchanged = [torch.equal(a, b) for a, b in zip(before[i], after)]
        if i == active:
            assert not any(unchanged), "every BN of the active width should have updated"
        else:
            assert all(unchanged), f"width {WIDTHS[i]} BN statistics changed"


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2"])
def test_to_plain_matches_slimmable(backbone: str) -> None:
    model = make(backbone).eval()
    randomize_bn(model)
    x = torch.randn(1, 3, *ODD)
    for w in WIDTHS:
        set_width(model, w)
        plain = to_plain(model, w).eval()
        assert not any(isinstance(m, (SlimmableConv2d, SwitchableBatchNorm2d))
                       for m in plain.modules())
        with torch.no_grad():
            torch.testing.assert_close(plain(x), model(x), rtol=1e-4, atol=1e-5)


def test_residual_downsample_slims() -> None:
    model = build_backbone(ModelConfig(backbone="resnet50", widths=WIDTHS))
    ds = model.layer1[0].downsample
    assert isinstance(ds[0], SlimmableConv2d) and isinstance(ds[1], SwitchableBatchNorm2d)
    assert ds[0].in_channels_list == [16, 32, 48, 64]
    assert ds[0].out_channels_list == [64, 128, 192, 256]
    assert model.conv1.in_channels_list == [3, 3, 3, 3]  # RGB input never slims


# ---------------------------------------------------------------- torchvision ImageNet mapping

def _torchvision_model(name: str) -> nn.Module:
    tv = getattr(torchvision.models, name)(weights=None)
    randomize_bn(tv)
    return tv.eval()


def _tv_features(tv: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(tv, "layer4"):
        low = tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x)))))
        return low, tv.layer4(tv.layer3(tv.layer2(low)))
    low = tv.features[:4](x)
    return low, tv.features[4:18](low)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "mobilenetv2"])
def test_torchvision_weights_map_onto_full_width(backbone: str, tmp_path: Path) -> None:
    tv = _torchvision_model(TV_NAMES[backbone])
    path = tmp_path / f"{backbone}.pth"
    torch.save(tv.state_dict(), path)
    ours = build_backbone(ModelConfig(backbone=backbone, widths=WIDTHS, output_stride=32,
                                      pretrained=str(path))).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tv_low, tv_high = _tv_features(tv, x)
        f = ours(x)
    torch.testing.assert_close(f["low"], tv_low, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f["high"], tv_high, rtol=1e-5, atol=1e-5)
    # Narrower widths start from the first channels of the full-width BN.
    tv_sd = tv.state_dict()
    bn_name = "bn1" if backbone.startswith("resnet") else "features.0.1"
    switchable = ours.get_submodule(bn_name)
    for i, bn in enumerate(switchable.bn):
        c = switchable.channels_list[i]
        assert torch.equal(bn.running_var, tv_sd[f"{bn_name}.running_var"][:c])
        assert torch.equal(bn.weight.detach(), tv_sd[f"{bn_name}.weight"][:c])
    # And output stride 16 builds and runs from the same file.
    ours16 = build_backbone(ModelConfig(backbone=backbone, widths=WIDTHS, output_stride=16,
                                        pretrained=str(path))).eval()
    set_width(ours16, 0.5)
    with torch.no_grad():
        assert ours16(x)["high"].shape[-2:] == (4, 4)


def test_pretrained_rejects_bad_files(tmp_path: Path) -> None:
    sd = _torchvision_model("resnet18").state_dict()
    cases = {}
    missing = dict(sd)
    del missing["layer2.0.conv1.weight"]
    cases["missing.pth"] = (missing, "layer2.0.conv1.weight")
    cases["extra.pth"] = ({**sd, "layer5.weight": torch.zeros(3)}, "layer5.weight")
    cases["shape.pth"] = (_torchvision_model("resnet50").state_dict(), "shape mismatch")
    for name, (state, needle) in cases.items():
        torch.save(state, tmp_path / name)
        with pytest.raises(PretrainedError, match=name) as err:
            build_backbone(ModelConfig(backbone="resnet18", pretrained=str(tmp_path / name)))
        assert needle in str(err.value)
    with pytest.raises(PretrainedError, match="does not exist"):
        build_backbone(ModelConfig(backbone="resnet18", pretrained=str(tmp_path / "nope.pth")))


def test_pretrained_accepts_old_and_wrapped_state_dicts(tmp_path: Path) -> None:
    tv = _torchvision_model("resnet18")
    # Old torchvision files lack num_batches_tracked; training scripts wrap and prefix keys.
    old = {f"module.{k}": v for k, v in tv.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": old, "epoch": 90}, tmp_path / "wrapped.pth")
    ours = build_backbone(ModelConfig(backbone="resnet18", output_stride=32,
                                      pretrained=str(tmp_path / "wrapped.pth"))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)["high"], _tv_features(tv, x)[1])


def test_pretrained_file_with_code_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Payload()}, path)
    with pytest.raises(PretrainedError, match="evil.pth.*holds pickled code or objects") as err:
        read_state_dict(path)
    assert "weights_only" not in str(err.value)
    assert not marker.exists()


def test_failed_load_leaves_model_untouched() -> None:
    model = build_backbone(ModelConfig(backbone="resnet18"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = {k: torch.ones_like(v) for k, v in _torchvision_model("resnet18").state_dict().items()}
    sd["layer4.1.conv2.weight"] = torch.zeros(1)
    with pytest.raises(PretrainedError, match="layer4.1.conv2.weight"):
        load_full_width(model, sd, "in-memory")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_torchvision_download_failure_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    # An empty hub cache and a download that fails the way an offline machine's does.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(PretrainedError, match="set 'pretrained' to its path") as err:
        build_backbone(ModelConfig(backbone="mobilenetv2", pretrained="torchvision"))
    assert "mobilenet_v2" in str(err.value) and "name resolution" in str(err.value)
