"""The stage profile splits each backend's frame path into the same named stages, per width."""

from __future__ import annotations

import json

import pytest

from engine_fixtures import make_checkpoint
from slimseg_ros.tools.stage_profile import PROFILED, STAGES, main, openvino_stage


def test_openvino_operations_fall_into_the_stages_by_name() -> None:
    assert openvino_stage("/Cast_original", seen_network=False) == "frame in"
    assert openvino_stage("/Mul_abcd_acdb_/net/backbone/stem", seen_network=False) == "frame in"
    assert openvino_stage("/net/backbone/blocks.0/Conv", seen_network=False) == "network"
    assert openvino_stage("/net/Resize", seen_network=True) == "logits upsample"
    assert openvino_stage("/upsample/ConvTranspose", seen_network=True) == "logits upsample"
    assert openvino_stage("/upsample/Pad", seen_network=True) == "logits upsample"
    assert openvino_stage("/net/Resize_bf16_acdb_f32_abcd_/Gather_7", True) == "logits upsample"
    assert openvino_stage("/Greater_4", seen_network=True) == "argmax + resize to frame"
    # the per-class upsample and argmax of the mask graph
    assert openvino_stage("/upsampled_argmax/Conv_7", True) == "logits upsample"
    assert openvino_stage("/upsampled_argmax/Pad_acdb_abcd_/upsampled_argmax/Transpose_1",
                          True) == "logits upsample"
    assert openvino_stage("/upsampled_argmax/Where_4", True) == "argmax + resize to frame"
    assert openvino_stage("/upsampled_argmax/Transpose_2", True) == "argmax + resize to frame"


def test_the_profiled_backends_come_from_the_table() -> None:
    """Torch eager, and each graph runtime whose runner reports per-operation times."""
    from slimseg_ros.inference.backends import BACKENDS

    assert PROFILED == ("torch", "openvino")
    assert all(not BACKENDS[b].is_graph_runtime or BACKENDS[b].operation_times
               for b in PROFILED)
    with pytest.raises(SystemExit):
        main(["--checkpoint", "x.pt", "--backends", "onnxruntime"])


def test_every_width_of_each_backend_gets_its_stages(tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setenv("SLIMSEG_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    out = tmp_path / "stages.json"
    assert main(["--checkpoint", str(ckpt), "--size", "48x64", "--iters", "2", "--threads", "1",
                 "--json", str(out)]) == 0
    assert "| 0.25 | network |" in capsys.readouterr().out
    results = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"torch", "openvino"}
    for backend, result in results.items():
        assert set(result["widths"]) == {"0.25", "0.5", "0.75", "1"}
        for times in result["widths"].values():
            assert set(times) <= set(STAGES) and times["network"] > 0, backend
            assert all(ms >= 0 for ms in times.values())
        # OpenVINO's counters see the frame graph's own stages, torch's clock the copy out
        assert ("logits upsample" in result["widths"]["1"]) == (backend == "openvino")


def test_a_missing_checkpoint_is_named(tmp_path, capsys) -> None:
    assert main(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_stages_are_timed_on_a_given_picture(tmp_path, capsys, monkeypatch) -> None:
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    monkeypatch.setenv("SLIMSEG_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    picture = tmp_path / "street.png"  # another size than --size: resized to it
    cv2.imwrite(str(picture), np.random.default_rng(3).integers(0, 256, (30, 50, 3), np.uint8))
    out = tmp_path / "stages.json"
    assert main(["--checkpoint", str(ckpt), "--size", "48x64", "--iters", "2", "--threads", "1",
                 "--backends", "torch", "--image", str(picture), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["image"] == "street.png"
    assert main(["--checkpoint", str(ckpt), "--image", str(tmp_path / "none.png")]) == 2
    assert "no image at" in capsys.readouterr().err
