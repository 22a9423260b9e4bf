"""Export: ONNX (onnxruntime) and TorchScript files match the engine's network at one width."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from engine_fixtures import NUM_CLASSES, make_checkpoint

from slimseg_ros.inference.engine import SegmentationEngine
from slimseg_ros.inference.export import ExportError, export_width, verify
from slimseg_ros.tools.export_cli import chosen_widths, main, output_path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", "mobilenetv2")


@pytest.fixture(scope="module")
def engine(checkpoint) -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(checkpoint, device="cpu", channels_last=False)


def test_onnx_export_matches_engine_at_other_size(checkpoint, engine, tmp_path, capsys):
    out = tmp_path / "w050.onnx"
    assert main(["--checkpoint", str(checkpoint), "--width", "0.5", "--format", "onnx",
                 "--output", str(out), "--size", "32x48"]) == 0
    printed = capsys.readouterr().out
    assert "max |diff|" in printed and "widths [0.5] as onnx" in printed
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["slimseg.width"]) == 0.5
    assert len(json.loads(meta["slimseg.class_names"])) == NUM_CLASSES
    # run at a size and batch never seen during export: the axes are dynamic
    x = torch.randn(2, 3, 41, 67)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = engine.network(engine.widths.exact(0.5))(x).numpy()
    assert got.shape == (2, NUM_CLASSES, 41, 67)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # and it is the 0.5 network, not another width
        other = engine.network(engine.widths.widest)(x).numpy()
    assert np.abs(got - other).max() > 1e-3


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_export_matches_engine(checkpoint, engine, tmp_path):
    out = tmp_path / "w025.pt"
    assert main(["--checkpoint", str(checkpoint), "--width", "0.25", "--format", "torchscript",
                 "--output", str(out), "--size", "32x32"]) == 0
    extra = {"slimseg_info.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(json.loads(extra["slimseg_info.json"])["slimseg.width"]) == 0.25
    x = torch.randn(1, 3, 35, 29)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), engine.network(0)(x), atol=1e-4, rtol=1e-4)


def test_verify_fails_loudly_on_a_different_network(engine, tmp_path):
    out = tmp_path / "w1.onnx"
    res = export_width(engine, engine.widths.widest, "onnx", out, (32, 32))
    assert res["max_diff"] < 1e-4 and len(res["sizes"]) == 2 and res["width"] == 1.0
    with pytest.raises(ExportError, match="exceeds the tolerance"):
        verify(engine.network(0), out, "onnx", [(32, 32)], tolerance=1e-3)
    with pytest.raises(TypeError, match="exact"):
        export_width(engine, 1.0, "onnx", out, (32, 32))  # floats are snapped at the edge


def test_output_names_for_all_widths(tmp_path):
    assert output_path(tmp_path / "m.onnx", 0.5, "onnx", many=True) == tmp_path / "m_w0.50.onnx"
    assert output_path(tmp_path / "m.onnx", 0.5, "onnx", many=False) == tmp_path / "m.onnx"
    assert output_path(str(tmp_path / "m_{width}.pt"), 0.25, "torchscript", many=True) == \
        tmp_path / "m_0.25.pt"
    assert output_path(tmp_path, 1.0, "onnx", many=True) == tmp_path / "slimseg_w1.00.onnx"


def test_bad_inputs_exit_with_a_message(checkpoint, tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope.pt"), "--output", str(tmp_path / "x")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--width", "0.6",
                 "--output", str(tmp_path / "x.onnx")]) == 2
    assert "0.6" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--width", "wide",
                 "--output", str(tmp_path / "x.onnx")]) == 2
    assert "width must be a number, got 'wide'" in capsys.readouterr().err


def test_the_width_on_the_command_line_is_snapped_to_a_trained_width(engine):
    assert chosen_widths(engine, "all") == list(engine.widths)
    assert chosen_widths(engine, "0.5000000001") == [engine.widths[1]]
    assert chosen_widths(engine, " ALL ") == list(engine.widths)
