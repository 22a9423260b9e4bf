"""OpenVINO and ONNX Runtime compute what the torch engine computes, on odd frame sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine_fixtures import randomise_bn, tiny_config, tiny_info
from slimseg_ros.models import build_model, save_checkpoint, set_width
from slimseg_ros.inference.backends import BackendError, default_precision, resolve_backend
from slimseg_ros.inference.backends.frame_graph import (
    FramePath, GraphCache, LogitsUpsample, UpsampledArgmax, bilinear_phase_taps, bilinear_taps,
    export_frame_graph, first_argmax, nearest_exact_indices)
from slimseg_ros.inference.engine import SegmentationEngine, postprocess_with_confidence

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from slimseg_ros.inference.backends.onnxruntime_backend import OnnxRuntimeFrameGraph  # noqa: E402
from slimseg_ros.inference.backends.openvino_backend import (  # noqa: E402
    OpenVINOFrameGraph, bypass_identity_resizes, shared_core)

SIZES = [(61, 83), (48, 64), (37, 29)]  # odd, even, smaller than the network input
# float32 logits of two graph compilers differ in rounding and in operation order
LOGIT_TOLERANCE = dict(atol=2e-3, rtol=1e-3)
RUNNERS = {"openvino": OpenVINOFrameGraph, "onnxruntime": OnnxRuntimeFrameGraph}


COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [90, 90, 90]])


def frame(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """
    Draw a noisy frame of coloured 12-pixel blocks and its class ids.

    One colour per class.
    """
    rng = np.random.default_rng(seed)
    ids = np.kron(rng.integers(0, len(COLOURS), (-(-h // 12), -(-w // 12))),
                  np.ones((12, 12), dtype=np.int64))[:h, :w]
    return np.clip(COLOURS[ids] + rng.normal(0, 15, (h, w, 3)), 0, 255).astype(np.uint8), ids


def fit_classifier(model: torch.nn.Module, steps: int = 300) -> None:
    """
    Fit the shared classifier on frozen features at every width, so masks follow the frame.

    A random network's masks are nearly constant, which would make any two backends agree.
    """
    classifier = model.head.classifier
    feats, targets = {}, {}
    hook = classifier.register_forward_hook(
        lambda _m, inp, _out: feats.__setitem__("x", inp[0].detach()))
    data = [frame(48, 64, seed) for seed in range(4)]
    with torch.no_grad():
        for w in model.widths if hasattr(model, "widths") else (0.25, 0.5, 0.75, 1.0):
            set_width(model, w)
            xs, ys = [], []
            for image, ids in data:
                x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - 127.0) / 128.0
                model(x)
                f = feats["x"]
                xs.append(f)
                ys.append(torch.nn.functional.interpolate(
                    torch.from_numpy(ids)[None, None].float(), size=f.shape[-2:],
                    mode="nearest")[0, 0].long())
            targets[w] = (torch.cat(xs), torch.stack(ys))
    hook.remove()
    opt = torch.optim.Adam([classifier.weight, classifier.bias], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        for w, (x, y) in targets.items():
            weight = classifier.weight[:, :x.shape[1]]
            logits = torch.nn.functional.conv2d(x, weight, classifier.bias)
            torch.nn.functional.cross_entropy(logits, y).backward()
        opt.step()
    set_width(model, 1.0)


# efficientnet_lite0 (the default model's backbone) pads its strided convolutions the way
# TensorFlow's "SAME" does, from each feature map's size: the exported graph must follow the
# frame's size there, not the export example's
@pytest.fixture(scope="module", params=[("mobilenetv2", None), ("mobilenetv2", (40, 56)),
                                        ("efficientnet_lite0", None)],
                ids=["native-size", "input-size", "tf-same-padding"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> SegmentationEngine:
    backbone, input_size = request.param
    torch.manual_seed(0)
    model = build_model(tiny_config(backbone)).eval()
    randomise_bn(model)
    fit_classifier(model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, tiny_info())
    return SegmentationEngine.from_checkpoint(path, device="cpu", input_size=input_size)


def test_nearest_exact_indices_equal_atens_resize() -> None:
    for n_in, n_out in [(5, 13), (13, 5), (360, 361), (90, 360), (7, 7)]:
        src = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in, 1)
        ref = torch.nn.functional.interpolate(src, size=(n_out, 1), mode="nearest-exact")
        got = nearest_exact_indices(torch.tensor(n_out), torch.tensor(n_in))
        assert got.tolist() == ref.flatten().long().tolist()


def test_the_deconvolution_upsample_is_torchs_bilinear_resize() -> None:
    torch.manual_seed(0)
    up = LogitsUpsample()
    # scales 2, 3, 4, 8, different per axis, 1 on one axis; equal size; a ratio that is not whole
    for (h, w), size in [((5, 7), (10, 21)), ((90, 120), (360, 480)), ((4, 3), (32, 9)),
                         ((6, 5), (6, 10)), ((6, 6), (6, 6)), ((5, 7), (11, 14))]:
        logits = torch.randn(1, 11, h, w, dtype=torch.float64)
        ref = torch.nn.functional.interpolate(logits, size=size, mode="bilinear",
                                              align_corners=False)
        # torch computes the source positions in float32, hence 1e-7 and not 1e-15
        torch.testing.assert_close(up(logits, size), ref, atol=1e-6, rtol=0)
    # x4: the triangle filter every bilinear x4 upsample is
    assert bilinear_taps(4) == (6, [0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125])
    with pytest.raises(ValueError, match="whole number"):
        bilinear_taps(0)


def test_the_per_class_upsample_argmax_is_torchs_resize_then_argmax() -> None:
    torch.manual_seed(0)
    up = UpsampledArgmax()
    # scales 2, 3, 4, 8, different per axis, 1 on one axis; equal size; a ratio that is not whole
    for (h, w), size in [((5, 7), (10, 21)), ((90, 120), (360, 480)), ((4, 3), (32, 9)),
                         ((6, 5), (6, 10)), ((6, 6), (6, 6)), ((5, 7), (11, 14))]:
        logits = torch.randn(2, 11, h, w, dtype=torch.float64)
        ref = torch.nn.functional.interpolate(logits, size=size, mode="bilinear",
                                              align_corners=False).argmax(dim=1)
        got = up(logits, size)
        assert got.dtype == torch.uint8 and got.shape == ref.shape
        assert torch.equal(got.long(), ref), (h, w, size)
        assert len(ref.unique()) >= 5  # the masks hold many classes: the order of pixels counts
    # x4: source offsets -3/8, -1/8, 1/8, 3/8 of a pixel
    assert bilinear_phase_taps(4) == [[0.375, 0.625, 0.0], [0.125, 0.875, 0.0],
                                      [0.0, 0.875, 0.125], [0.0, 0.625, 0.375]]
    with pytest.raises(ValueError, match="whole number"):
        bilinear_phase_taps(0)


def test_the_frame_graph_resizes_logits_only_where_no_whole_ratio_allows_convolutions() -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config("mobilenetv2")).eval()
    ops = {}
    for input_size, logits in [((40, 56), False), ((42, 56), False), ((40, 56), True)]:
        # 40x56 is 4x the logits; 42 is not
        onnx = export_frame_graph(model, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), input_size,
                                  logits=logits)
        ops[input_size, logits] = [op.get_type_name() for op in shared_core().read_model(
            onnx, b"").get_ordered_ops()]
    # the frame's resize to the input size (and the network's own) are in both; 42x56 resizes
    # the logits too
    assert (ops[(42, 56), False].count("Interpolate")
            == ops[(40, 56), False].count("Interpolate") + 1)
    assert "GroupConvolutionBackpropData" not in ops[(40, 56), False]
    assert "GroupConvolutionBackpropData" in ops[(40, 56), True]  # the logits for checks


def test_first_argmax_is_torchs_argmax_ties_included() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 11, 17, 23)
    logits[:, 3] = logits[:, 7]  # exact ties: the first index wins, as in torch
    logits[0, :, :4] = 1.5       # every class tied
    expected = logits.argmax(dim=1)
    got = first_argmax(logits)
    assert got.dtype == torch.uint8
    assert torch.equal(got.long(), expected)
    assert (expected == 3).any() and (got == 0).any()


def test_the_torch_frame_graph_is_the_engine_exactly(engine: SegmentationEngine) -> None:
    for width in engine.widths:
        graph = FramePath(engine.network(width), engine.info.mean, engine.info.std,
                          engine.input_size).eval()
        for h, w in SIZES:
            f, _ = frame(h, w)
            with torch.no_grad():
                got = graph(torch.from_numpy(f)[None])[0].numpy()
            np.testing.assert_array_equal(got, engine.infer(f, width=width))


def softmax_confidence(logits: torch.Tensor) -> torch.Tensor:
    """Return the confidence as defined: round(255 p) of the softmax maximum, half up."""
    p = torch.softmax(logits.double(), dim=1).max(dim=1).values
    return torch.floor(255.0 * p + 0.5)


def test_the_per_class_confidence_is_the_softmax_maximum_of_the_resized_logits() -> None:
    torch.manual_seed(1)
    up = UpsampledArgmax()
    for (h, w), size in [((90, 120), (360, 480)), ((5, 7), (10, 21)), ((5, 7), (11, 14)),
                         ((6, 6), (6, 6))]:
        logits = 3.0 * torch.randn(1, 11, h, w)
        resized = torch.nn.functional.interpolate(logits, size=size, mode="bilinear",
                                                  align_corners=False)
        ids, conf = up(logits, size, confidence=True)
        assert conf.dtype == torch.uint8 and conf.shape == ids.shape == (1, *size)
        assert torch.equal(ids.long(), resized.argmax(dim=1))
        ref = softmax_confidence(resized)
        assert (conf.double() - ref).abs().max() <= 1.0, (h, w, size)
        assert conf.min() >= 255 // 11 and len(conf.unique()) > 20  # a real spread, >= 1/C
        assert torch.equal(up(logits, size), ids)  # the mask-only graph is unchanged


def test_the_torch_frame_graph_with_confidence_is_the_engine(engine: SegmentationEngine) -> None:
    for width in engine.widths:
        graph = FramePath(engine.network(width), engine.info.mean, engine.info.std,
                          engine.input_size, confidence=True).eval()
        for h, w in SIZES:
            f, _ = frame(h, w, seed=w)
            with torch.no_grad():
                ids, conf = (o[0].numpy() for o in graph(torch.from_numpy(f)[None]))
            ref_ids, ref_conf = postprocess_with_confidence(engine.logits(f, width=width),
                                                            (h, w))
            np.testing.assert_array_equal(ids, ref_ids[0].numpy())
            np.testing.assert_array_equal(ids, engine.infer(f, width=width))
            assert np.abs(conf.astype(int) - ref_conf[0].numpy().astype(int)).max() <= 1


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_backend_confidence_agrees_with_torch_within_one_level(engine: SegmentationEngine,
                                                               backend: str) -> None:
    for width in (engine.widths[0], engine.widths[-1]):
        graph = RUNNERS[backend](export_frame_graph(
            engine.network(width), engine.info.mean, engine.info.std, engine.input_size,
            confidence=True), threads=1)
        for h, w in SIZES:
            f, _ = frame(h, w, seed=h + 1)
            ids, conf = graph.run_all(f)
            assert conf.shape == ids.shape == (h, w) and conf.dtype == np.uint8
            np.testing.assert_array_equal(graph.run(f), ids)  # run() is the mask output
            ref_ids, ref_conf = (t[0].numpy() for t in postprocess_with_confidence(
                engine.logits(f, width=width), (h, w)))
            same = ids == ref_ids
            assert same.mean() > 0.99
            assert np.abs(conf.astype(int) - ref_conf.astype(int))[same].max() <= 1


def test_an_engine_with_confidence_returns_it_and_caches_its_graphs_apart(
        engine: SegmentationEngine, tmp_path: Path) -> None:
    f, _ = frame(48, 64)
    mask, conf = engine.segment(f, engine.widths[-1])  # built without: no confidence
    assert conf is None and np.array_equal(mask, engine.infer(f, engine.widths[-1]))
    key = GraphCache.key("abc", 1.0, None)
    assert key != GraphCache.key("abc", 1.0, None, ["mask", "confidence"])
    assert key["outputs"] == ["mask"]


@pytest.mark.parametrize("backend", sorted(RUNNERS))
def test_backend_logits_and_masks_match_torch(engine: SegmentationEngine, backend: str) -> None:
    masks = {}
    for width in (engine.widths[0], engine.widths[-1]):
        net = engine.network(width)
        logit_graph = RUNNERS[backend](export_frame_graph(
            net, engine.info.mean, engine.info.std, engine.input_size, logits=True), threads=1)
        mask_graph = RUNNERS[backend](export_frame_graph(
            net, engine.info.mean, engine.info.std, engine.input_size), threads=1)
        for h, w in SIZES:
            f, _ = frame(h, w, seed=h)
            ref_logits = engine.logits(f, width=width)[0]
            torch.testing.assert_close(torch.from_numpy(logit_graph.run(f)), ref_logits,
                                       **LOGIT_TOLERANCE)
            ref = engine.infer(f, width=width)
            got = mask_graph.run(f)
            assert got.shape == (h, w) and got.dtype == np.uint8
            # argmax may flip only where two logits are within the tolerance of each other
            top2 = torch.topk(engine.logits(f, width=width)[0], 2, dim=0).values
            near_tie = (top2[0] - top2[1]) < 2 * LOGIT_TOLERANCE["atol"]
            if engine.input_size is None:
                differ = torch.from_numpy(got != ref)
                assert not (differ & ~near_tie).any()
            else:
                assert (got == ref).mean() > 0.99
            masks[(width, h, w)] = ref
    # the agreement must not come from constant masks: several classes, widths that differ
    for (width, h, w), m in masks.items():
        assert len(np.unique(m)) >= 2
    assert any(not np.array_equal(masks[(engine.widths[0], h, w)],
                                  masks[(engine.widths[-1], h, w)])
               for h, w in SIZES)


def test_openvino_drops_only_the_resize_a_frame_of_the_input_size_does_not_need(
        tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config("mobilenetv2")).eval()
    randomise_bn(model)
    fit_classifier(model, steps=100)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, tiny_info())
    engine = SegmentationEngine.from_checkpoint(path, device="cpu", input_size=(40, 56))
    net = engine.network(engine.widths[-1])
    logits = export_frame_graph(net, engine.info.mean, engine.info.std, engine.input_size,
                                logits=True)
    for size, removed in (((40, 56), 1), ((61, 83), 0)):
        graph = shared_core().read_model(logits)
        graph.reshape({graph.inputs[0]: [1, *size, 3]})
        interpolates = sum(op.get_type_name() == "Interpolate" for op in graph.get_ordered_ops())
        assert bypass_identity_resizes(graph) == removed, size
        left = sum(op.get_type_name() == "Interpolate" for op in graph.get_ordered_ops())
        assert left == interpolates - removed >= 1  # the head's upsampling stays
    # at the input size the graph without the frame resize still computes the same function
    f, _ = frame(40, 56, seed=3)
    got = OpenVINOFrameGraph(logits, threads=1).run(f)
    torch.testing.assert_close(torch.from_numpy(got), engine.logits(f, width=engine.widths[-1])[0],
                               **LOGIT_TOLERANCE)
    mask = OpenVINOFrameGraph(export_frame_graph(net, engine.info.mean, engine.info.std,
                                                 engine.input_size), threads=1).run(f)
    ref = engine.infer(f, width=engine.widths[-1])
    assert len(np.unique(ref)) >= 2 and (mask == ref).mean() > 0.99


def test_a_missing_runtime_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an uninstalled package looks like
    with pytest.raises(BackendError, match="'openvino' package is not installed"):
        resolve_backend("openvino", "cpu")
    assert resolve_backend("auto", "cpu") == "onnxruntime"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        resolve_backend("tensorrt", "cpu")


def test_bf16_masks_follow_the_fp32_masks_where_the_cpu_runs_bf16(
        engine: SegmentationEngine) -> None:
    from slimseg_ros.inference.backends.openvino_backend import cpu_supports_bf16
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    for width in (engine.widths[0], engine.widths[-1]):
        graph = OpenVINOFrameGraph(export_frame_graph(
            engine.network(width), engine.info.mean, engine.info.std, engine.input_size),
            precision="bf16", threads=1)
        assert graph.precision == "bf16"
        for h, w in SIZES:
            f, _ = frame(h, w, seed=h)
            ref = engine.infer(f, width=width)
            got = graph.run(f)
            assert got.shape == (h, w) and len(np.unique(ref)) >= 2
            # bf16 keeps 8 bits of mantissa: argmax flips only near ties
            assert (got == ref).mean() > 0.9, (width, h, w, (got == ref).mean())


def test_auto_precision_is_bf16_only_through_openvino_on_a_bf16_cpu(tmp_path: Path) -> None:
    from slimseg_ros.inference.backends.openvino_backend import cpu_supports_bf16
    openvino_choice = "bf16" if cpu_supports_bf16() else "fp32"
    assert default_precision("openvino", "cpu") == openvino_choice
    assert default_precision("onnxruntime", "cpu") == "fp32"
    assert default_precision("torch", "cpu") == "fp32"
    assert default_precision("torch", "cuda") == "fp32"
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, build_model(tiny_config("mobilenetv2")).eval(), tiny_info())
    for backend, expected in (("openvino", openvino_choice), ("onnxruntime", "fp32"),
                              ("torch", "fp32")):
        engine = SegmentationEngine.from_checkpoint(path, device="cpu", backend=backend,
                                                    precision="auto", input_size=(64, 96),
                                                    cache_dir=tmp_path / "cache")
        assert engine.precision == expected, backend
        assert engine.infer(frame(50, 70)[0], engine.widths[0]).shape == (50, 70)


def test_bf16_on_a_cpu_without_it_fails_with_one_sentence() -> None:
    from slimseg_ros.inference.backends.openvino_backend import cpu_supports_bf16
    if cpu_supports_bf16():
        pytest.skip("this CPU runs bf16")
    with pytest.raises(BackendError, match="needs a CPU with native bf16"):
        OpenVINOFrameGraph(b"", precision="bf16")


def test_cache_returns_what_was_stored_and_rebuilds_stale_or_corrupt_entries(
        tmp_path: Path) -> None:
    cache = GraphCache(tmp_path)
    key = cache.key("ab" * 32, 0.5, (40, 56))
    assert cache.get(key) is None
    cache.put(key, b"graph-bytes")
    assert cache.get(key) == b"graph-bytes"
    assert cache.get(cache.key("cd" * 32, 0.5, (40, 56))) is None  # another checkpoint
    assert cache.get(cache.key("ab" * 32, 0.25, (40, 56))) is None  # another width
    graph_file = next(tmp_path.glob("*.onnx"))
    graph_file.write_bytes(b"graph-bytez")  # corrupt (same length)
    assert cache.get(key) is None
    meta = next(tmp_path.glob("*.json"))
    cache.put(key, b"graph-bytes")
    meta.write_text(meta.read_text().replace('"width": 0.5', '"width": 0.75'))  # foreign entry
    assert cache.get(key) is None


SIGNAL_AFTER_GRAPHS_ARE_DROPPED = """
import gc, os, signal, sys
import torch
from slimseg_ros.inference.backends.frame_graph import export_frame_graph
from slimseg_ros.inference.backends.openvino_backend import OpenVINOFrameGraph
onnx = export_frame_graph(torch.nn.Conv2d(3, 2, 1), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), None,
                          example_size=(8, 8))
frame = torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()
first = OpenVINOFrameGraph(onnx)
first.run(frame)
second = OpenVINOFrameGraph(onnx)
second.run(frame)
del first  # dropped before the later one, as a node's graphs are when a size is replaced
gc.collect()
del second
gc.collect()
got = []
signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
os.kill(os.getpid(), signal.SIGTERM)
print("handled", got)
"""


def test_a_signal_after_openvino_graphs_are_dropped_is_handled() -> None:
    """
    A SIGTERM after OpenVINO graphs were dropped out of order is handled, not a crash.

    OpenVINO's CPU plugin swaps the thread's alternate signal stack per Core; Cores dropped out
    of order once left it unmapped, and the next SIGTERM or Ctrl-C crashed the process.
    """
    import subprocess
    done = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_GRAPHS_ARE_DROPPED],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "handled [15]" in done.stdout, (
        done.returncode, done.stderr[-2000:])
