"""
OpenVINO and frame sizes: a new size costs no compile, and compiled models are cached on disk.

A graph with a network input size is compiled once at that size; frames of other sizes are
resized to it outside the graph and their masks resized back with the graph's own nearest
indices, so the compiled set never grows. Compiled models go to ``openvino`` under the cache
folder, a second engine imports them, and a folder that cannot be written is simply no cache.
Real OpenVINO, a tiny random network; behaviour only, no timings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from node_harness import make_tiny_checkpoint, random_frame

ov = pytest.importorskip("openvino")

INPUT_SIZE = (32, 48)
NEW_SIZES = [(61, 83), (64, 96), (16, 24), (45, 45), (100, 30), (33, 47), (120, 160)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Write a tiny checkpoint with a 32x48 input size and its OpenVINO bundle."""
    from slimseg_ros.tools.export_cli import main as export_main

    tmp = tmp_path_factory.mktemp("sizes")
    checkpoint = make_tiny_checkpoint(tmp / "tiny.pt", input_size=INPUT_SIZE)
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(tmp / "b"),
                        "--runtimes", "openvino"]) == 0
    return checkpoint, tmp / "b"


def widest_ir(bundle: Path) -> Path:
    return bundle / "width_1.xml"


def static_mask(ir: Path, frame: np.ndarray) -> np.ndarray:
    """Return the mask of the graph compiled static at the frame's own size (the exact path)."""
    from slimseg_ros.inference.backends.openvino_backend import shared_core
    core = shared_core()
    model = core.read_model(str(ir))
    model.reshape({model.inputs[0]: [1, *frame.shape[:2], 3]})
    request = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": 1}).create_infer_request()
    request.infer({0: frame[None]})
    return request.get_output_tensor(0).data[0].copy()


def smooth_frame(h: int, w: int, seed: int) -> np.ndarray:
    """Return a frame of smooth regions (a camera's, not noise), so resizes round alike."""
    import cv2
    small = np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_the_mask_resize_uses_the_graphs_own_nearest_indices() -> None:
    import torch

    from slimseg_ros.inference.backends.frame_graph import nearest_exact_indices
    from slimseg_ros.inference.backends.openvino_backend import nearest_indices
    for out_size in (1, 7, 32, 61, 83, 360, 479, 480, 481, 700, 1111, 1280):
        for in_size in (8, 32, 48, 360, 480):
            want = nearest_exact_indices(torch.tensor(out_size), torch.tensor(in_size)).numpy()
            assert np.array_equal(nearest_indices(out_size, in_size), want), (out_size, in_size)


def test_new_sizes_compile_nothing_and_follow_the_static_path(tiny) -> None:
    from slimseg_ros.inference.backends.openvino_backend import OpenVINOFrameGraph
    ir = widest_ir(tiny[1])
    graph = OpenVINOFrameGraph(str(ir), threads=1)
    assert graph.input_size == INPUT_SIZE
    frame = random_frame(*INPUT_SIZE, seed=1)
    assert np.array_equal(graph.run(frame), static_mask(ir, frame))  # the input size: exact
    agreement = []
    for i, (h, w) in enumerate(NEW_SIZES):
        frame = smooth_frame(h, w, seed=i)
        got = graph.run(frame)
        assert got.shape == (h, w) and got.dtype == np.uint8
        agreement.append((got == static_mask(ir, frame)).mean())
        assert graph.compiled_sizes() == [INPUT_SIZE]
    # the same network on a frame resized outside the graph (uint8 rounding apart)
    assert np.mean(agreement) > 0.97 and min(agreement) > 0.9, agreement
    graph.prepare(480, 640)  # what the node asks per frame size: nothing more to compile
    assert graph.compiled_sizes() == [INPUT_SIZE]


def test_confidence_follows_the_ids_to_the_frame_size(tiny, tmp_path: Path) -> None:
    import cv2

    from slimseg_ros.inference.backends.openvino_backend import (OpenVINOFrameGraph,
                                                                 nearest_indices)
    from slimseg_ros.tools.export_cli import main as export_main
    assert export_main(["--checkpoint", str(tiny[0]), "--bundle", str(tmp_path / "c"),
                        "--runtimes", "openvino", "--confidence"]) == 0
    graph = OpenVINOFrameGraph(str(widest_ir(tmp_path / "c")), threads=1)
    frame = smooth_frame(61, 83, seed=3)
    outputs = graph.run_all(frame)
    small = graph.run_all(cv2.resize(frame, INPUT_SIZE[::-1], interpolation=cv2.INTER_LINEAR))
    rows, cols = nearest_indices(61, INPUT_SIZE[0]), nearest_indices(83, INPUT_SIZE[1])
    for got, at_input_size in zip(outputs, small, strict=True):
        assert got.shape == (61, 83) and got.dtype == np.uint8
        assert np.array_equal(got, at_input_size[rows][:, cols])
    assert len(outputs) == 2


def test_operation_times_of_a_new_size_include_the_resizes_outside_the_graph(tiny) -> None:
    from slimseg_ros.inference.backends.openvino_backend import OpenVINOFrameGraph
    graph = OpenVINOFrameGraph(str(widest_ir(tiny[1])), threads=1)
    times = graph.operation_times(random_frame(61, 83, seed=4))
    assert times[0][0] == "frame resize (OpenCV)" and times[-1][0] == "mask resize (NumPy)"
    assert len(times) > 3 and all(ms >= 0 for _, ms in times)
    inside = graph.operation_times(random_frame(*INPUT_SIZE, seed=4))
    assert "frame resize (OpenCV)" not in dict(inside)
    assert graph.compiled_sizes() == [INPUT_SIZE]


def test_graphs_without_an_input_size_keep_a_bounded_set_of_sizes(tmp_path: Path) -> None:
    from slimseg_ros.inference.backends.openvino_backend import MAX_SIZES, OpenVINOFrameGraph
    from slimseg_ros.tools.export_cli import main as export_main
    checkpoint = make_tiny_checkpoint(tmp_path / "native.pt", input_size=None)
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(tmp_path / "b"),
                        "--runtimes", "openvino"]) == 0
    graph = OpenVINOFrameGraph(str(widest_ir(tmp_path / "b")), threads=1)
    assert graph.input_size is None  # the network runs at the frame's size: static per size
    for i, (h, w) in enumerate(NEW_SIZES[:MAX_SIZES + 2]):
        frame = random_frame(h, w, seed=i)
        assert np.array_equal(graph.run(frame), static_mask(widest_ir(tmp_path / "b"), frame))
        assert len(graph.compiled_sizes()) == min(i + 1, MAX_SIZES)
    assert graph.compiled_sizes()[-1] == NEW_SIZES[MAX_SIZES + 1]


def test_compiled_models_are_cached_and_a_second_engine_imports_them(tiny,
                                                                     tmp_path: Path) -> None:
    from slimseg_ros.inference.bundle import BundleEngine
    cache = tmp_path / "cache"
    first = BundleEngine(tiny[1], backend="openvino", threads=1, cache_dir=cache)
    first.warmup(size=INPUT_SIZE)
    blobs = sorted((cache / "openvino").glob("*.blob"))
    assert len(blobs) == len(first.widths)
    stamps = {p: p.stat().st_mtime_ns for p in blobs}
    second = BundleEngine(tiny[1], backend="openvino", threads=1, cache_dir=cache)
    for width in second.widths:
        for size in (INPUT_SIZE, (61, 83)):
            frame = random_frame(*size, seed=width.index)
            assert np.array_equal(second.infer(frame, width), first.infer(frame, width))
    assert sorted((cache / "openvino").glob("*.blob")) == blobs  # read, not compiled again
    assert {p: p.stat().st_mtime_ns for p in blobs} == stamps


def test_an_unwritable_cache_folder_is_no_cache(tiny, tmp_path: Path) -> None:
    from slimseg_ros.inference.bundle import BundleEngine
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a file in the way: unwritable even for root
    engine = BundleEngine(tiny[1], backend="openvino", threads=1, cache_dir=blocker / "cache")
    reference = BundleEngine(tiny[1], backend="openvino", threads=1, cache_dir=tmp_path / "ok")
    for width in engine.widths:
        frame = random_frame(*INPUT_SIZE, seed=2)
        assert np.array_equal(engine.infer(frame, width), reference.infer(frame, width))
    assert blocker.read_text() == "not a folder"


def test_the_checkpoint_engine_caches_compiled_models_beside_its_graphs(
        tiny, tmp_path: Path) -> None:
    from slimseg_ros.inference.engine import SegmentationEngine
    cache = tmp_path / "cache"
    engine = SegmentationEngine.from_checkpoint(tiny[0], device="cpu", backend="openvino",
                                                input_size=INPUT_SIZE, cache_dir=cache)
    engine.warmup(size=INPUT_SIZE)
    assert len(list(cache.glob("*.onnx"))) == len(engine.widths)
    assert len(list((cache / "openvino").glob("*.blob"))) == len(engine.widths)


def test_the_size_bench_measures_every_strategy_it_is_asked_for(
        tiny, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from slimseg_ros.tools.size_bench import main, random_sizes
    monkeypatch.delenv("SLIMSEG_CAMVID", raising=False)  # synthetic frames for the agreement
    assert random_sizes(5, seed=3) == random_sizes(5, seed=3)
    assert len(set(random_sizes(40, seed=0))) == 40
    out = tmp_path / "sizes.json"
    assert main(["--bundle", str(tiny[1]), "--threads", "1", "--sizes", "2", "--iters", "1",
                 "--images", "1", "--strategies", "static", "resize", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [(r["width"], r["strategy"]) for r in figures["strategies"]] == [
        (0.25, "static"), (0.25, "resize"), (1.0, "static"), (1.0, "resize")]
    assert all(len(r["first_ms"]) == 2 for r in figures["strategies"])
    assert [a["source"] for a in figures["agreement"]] == ["synthetic"] * 2
    assert all(0.0 <= v <= 1.0 for a in figures["agreement"] for v in a["agreement"].values())
    assert "| 1 | resize |" in capsys.readouterr().out
