"""INT8 post-training quantization of a frame graph (slimseg_ros.inference.quantize), fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from slimseg_ros.inference import quantize as q

ov = pytest.importorskip("openvino")

REPO_ROOT = Path(__file__).resolve().parents[1]
GRAPH = REPO_ROOT / "models" / "default_bundle" / "width_0.25.xml"
SIZE = (360, 480)  # the bundle's network input size: no resize inside the graph


def smooth_frame(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Return a smooth RGB frame: a few large blurred colour blobs over a gradient."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    frame = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0, 60, size[0], dtype=np.float32)[:, None, None]
    return np.clip(frame.astype(np.float32) * 0.8 + ramp, 0, 255).astype(np.uint8)


def compile_static(core: Any, model: Any) -> Any:
    model = model.clone()
    model.reshape({model.inputs[0]: [1, SIZE[0], SIZE[1], 3]})
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1})


@pytest.fixture(scope="module")
def graphs() -> dict[str, Any]:
    """Return the narrowest width of the default bundle and its int8 copy (6 smooth frames)."""
    pytest.importorskip("nncf")
    if not GRAPH.is_file():
        pytest.skip(f"{GRAPH} is absent")
    core = ov.Core()
    model = core.read_model(str(GRAPH))
    frames = [smooth_frame(i) for i in range(6)]
    int8 = q.quantize_frame_graph(model, frames)
    return {"core": core, "fp32": model, "int8": int8, "frames": frames}


def test_float_ends_found_from_structure(graphs: dict[str, Any]) -> None:
    ends = q.float_ends(graphs["fp32"])
    ops = {op.get_friendly_name(): op.get_type_name() for op in graphs["fp32"].get_ordered_ops()}
    # the head ends at the first convolution's input: cast, normalisation, layout, resize
    assert {"Convert", "Subtract", "Multiply", "Transpose", "Interpolate"} <= {
        ops[n] for n in ends.head}
    # the tail starts after the classifier and holds the per-class upsample convolutions
    assert ops[ends.logits] in ("Add", "Convolution")
    assert "Convolution" in {ops[n] for n in ends.tail}
    assert ends.tail_outputs == ["mask"]


def test_quantized_graph_runs_with_the_same_contract(graphs: dict[str, Any]) -> None:
    assert q.count_fake_quantize(graphs["int8"]) > 10
    assert q.count_fake_quantize(graphs["fp32"]) == 0  # the input model is left as it was
    compiled = compile_static(graphs["core"], graphs["int8"])
    mask = compiled(graphs["frames"][0][None])[0]
    assert mask.shape == (1, *SIZE) and mask.dtype == np.uint8
    assert int(mask.max()) < 11


def test_pre_and_post_processing_stay_float(graphs: dict[str, Any]) -> None:
    ends = q.float_ends(graphs["fp32"])
    int8 = graphs["int8"]
    assert q.fake_quantize_inputs(int8, ends.tail + ends.head) == []
    # the network itself is quantized: the classifier's input passes a FakeQuantize
    classifier = next(op for op in int8.get_ordered_ops()
                      if op.get_friendly_name() == ends.logits)
    conv = classifier if classifier.get_type_name() == "Convolution" else next(
        v.get_node() for v in classifier.input_values()
        if v.get_node().get_type_name() == "Convolution")
    assert q.fake_quantize_inputs(int8, [conv.get_friendly_name()])


def test_int8_masks_agree_with_fp32(graphs: dict[str, Any]) -> None:
    core = graphs["core"]
    fp32, int8 = compile_static(core, graphs["fp32"]), compile_static(core, graphs["int8"])
    frames = [smooth_frame(100 + i) for i in range(3)]
    a = [fp32(f[None])[0][0] for f in frames]
    b = [int8(f[None])[0][0] for f in frames]
    assert q.mask_agreement(a, b) > 0.8


def test_mask_agreement() -> None:
    a = np.zeros((4, 5), np.uint8)
    b = a.copy()
    b[0, :2] = 3
    assert q.mask_agreement(a, b) == pytest.approx(18 / 20)
    assert q.mask_agreement([a, a], [a, b]) == pytest.approx(38 / 40)
    with pytest.raises(ValueError):
        q.mask_agreement([a], [a, a])
    with pytest.raises(ValueError):
        q.mask_agreement(a, np.zeros((5, 4), np.uint8))


def test_empty_or_unreadable_calibration_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path)):
        q.load_calibration_frames(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="no image that OpenCV can read"):
        q.load_calibration_frames(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        q.load_calibration_frames(tmp_path / "missing")


def test_calibration_frames_are_read_resized_and_split(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for i in range(10):
        size = (40, 60) if i % 2 else (30, 40)
        bgr = np.full((*size, 3), (255, 0, i), np.uint8)  # blue in BGR
        cv2.imwrite(str(tmp_path / ("sub" if i > 5 else "") / f"f{i:02d}.png"), bgr)
    (tmp_path / "notes.txt").write_text("not an image")
    frames = q.load_calibration_frames(tmp_path, size=(40, 60))
    assert len(frames.frames) == 10 and frames.resized == 5
    assert all(f.shape == (40, 60, 3) and f.dtype == np.uint8 for f in frames.frames)
    assert frames.frames[0][0, 0, 2] == 255  # RGB order: blue last
    assert "5 resized" in frames.note()
    assert len(q.load_calibration_frames(tmp_path, limit=4).frames) == 4
    calibration, held_out = q.split_frames(list(range(10)), held_out=0.2)
    assert held_out == [4, 9] and calibration == [0, 1, 2, 3, 5, 6, 7, 8]
    assert q.split_frames(list(range(10)), held_out=0.2) == (calibration, held_out)
    with pytest.raises(ValueError):
        q.split_frames([1, 2], held_out=1.0)
