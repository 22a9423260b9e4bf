"""Engine: per-width outputs equal the slimmable model's, switching, sizes, BN folding."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from engine_fixtures import NUM_CLASSES, make_checkpoint
from torch import nn

from slimseg_ros.inference import backends
from slimseg_ros.inference.engine import SegmentationEngine
from slimseg_ros.inference.specialise import fold_batchnorm
from slimseg_ros.models import CheckpointError, load_checkpoint, set_width
from slimseg_ros.widths import TrainedWidths, Width


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("ckpt")
    return {bb: make_checkpoint(root / f"{bb}.pt", bb) for bb in ("resnet18", "mobilenetv2")}


@pytest.fixture(scope="module")
def engine(checkpoints: dict) -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(checkpoints["resnet18"], device="cpu")


@pytest.fixture(scope="module")
def mnet(checkpoints: dict) -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu")


@pytest.fixture(scope="module")
def mnet_small_input(checkpoints: dict) -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                              input_size=(32, 48))


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def reference_logits(model: nn.Module, info, image: np.ndarray, width: Width,
                     input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """
    Run the slimmable model in eval mode on an image preprocessed by hand.

    Float64 maths, then float32.
    """
    set_width(model, float(width))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    if input_size is not None:
        x = F.interpolate(x, size=input_size, mode="bilinear", align_corners=False)
    mean = torch.tensor(info.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return model(((x - mean) / std).float())


def assert_masks_agree(mask: np.ndarray, logits: torch.Tensor, margin: float = 1e-3) -> None:
    """Masks equal the reference argmax wherever the top-2 logits are not a near tie."""
    top2 = logits[0].topk(2, dim=0).values
    clear = (top2[0] - top2[1] > margin).numpy()
    expected = logits[0].argmax(0).numpy().astype(np.uint8)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(mask[clear], expected[clear])


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenetv2"])
@pytest.mark.parametrize("specialise", [True, False])
def test_every_width_matches_slimmable_model(checkpoints, backbone, specialise):
    eng = SegmentationEngine.from_checkpoint(checkpoints[backbone], device="cpu",
                                             specialise=specialise)
    model, info = load_checkpoint(checkpoints[backbone])
    if specialise:  # every BN of these architectures follows a conv and must have been folded
        assert all(n > 0 for n in eng.folded_bn.values())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in eng.network(1).modules())
    image = frame(45, 61)
    for w in eng.widths:
        ref = reference_logits(model, info, image, w)
        got = eng.logits(image, w)
        scale = ref.abs().max().item()
        assert (got - ref).abs().max().item() <= 1e-4 * max(1.0, scale)
        mask = eng.infer(image, w)
        assert mask.shape == (45, 61) and mask.dtype == np.uint8
        assert_masks_agree(mask, ref)


def test_widths_really_differ(engine):
    image = frame(32, 32)
    outs = [engine.logits(image, w) for w in engine.widths]
    for a, b in zip(outs, outs[1:]):
        assert (a - b).abs().max().item() > 1e-3


@pytest.fixture(scope="module")
def slim_engine(checkpoints: dict) -> SegmentationEngine:
    return SegmentationEngine.from_checkpoint(checkpoints["resnet18"], device="cpu",
                                              specialise=False)


@pytest.mark.parametrize("which", ["engine", "slim_engine"])
def test_switching_back_and_forth_is_identical(request, which):
    engine = request.getfixturevalue(which)
    image = frame(40, 56, seed=3)
    first = {w: engine.infer(image, w) for w in engine.widths}
    for i in (3, 0, 3, 1, 0, 2, 3):  # each call runs the width it names
        w = engine.widths[i]
        np.testing.assert_array_equal(engine.infer(image, w), first[w])
        np.testing.assert_array_equal(engine.infer(image, i), first[w])  # or its index
    assert engine.network(engine.widths[0]) is engine.network(0)  # a pointer swap, no rebuild
    with pytest.raises(TypeError):
        engine.infer(image)  # no width of its own to fall back on


@pytest.mark.parametrize("bad", [-1, 4, Width(1, 0.3), Width(4, 1.0),
                                 TrainedWidths([0.5, 1.0])[0]])
def test_a_width_the_engine_did_not_train_is_rejected(engine, bad):
    with pytest.raises(ValueError, match="width"):
        engine.network(bad)
    with pytest.raises(ValueError, match="width"):
        engine.infer(frame(16, 16), bad)


@pytest.mark.parametrize("bad", [0.5, 1.0, 0.3, float("nan"), np.float32(0.5), "0.5", True, None])
def test_a_float_width_raises_type_error(engine, bad):
    with pytest.raises(TypeError, match="Width"):
        engine.network(bad)
    with pytest.raises(TypeError, match="Width"):
        engine.infer(frame(16, 16), bad)


def test_a_float_width_names_the_edge_that_snaps_it(engine):
    for call in (lambda: engine.infer(frame(16, 16), 0.5), lambda: engine.network(0.5),
                 lambda: engine.logits(frame(16, 16), 0.5),
                 lambda: engine.infer_tensor(torch.zeros(1, 3, 8, 8), 0.5),
                 lambda: engine.warmup((8, 8), widths=[0.5])):
        with pytest.raises(TypeError, match=r"engine\.widths\.exact\(0\.5\)"):
            call()


def test_widths_are_trained_widths_indexed_in_order(engine):
    assert isinstance(engine.widths, TrainedWidths)
    assert engine.widths.values == (0.25, 0.5, 0.75, 1.0)
    assert [w.index for w in engine.widths] == [0, 1, 2, 3]
    assert engine.widths.exact(0.5000000001) == engine.widths[1]
    assert engine.widths.exact(0.5000000001).index == 1
    assert engine.widths.snap(0.6) == engine.widths[1]
    assert "widths=[0.25, 0.5, 0.75, 1.0]" in repr(engine)


def test_a_width_of_another_engines_equal_widths_works(engine, checkpoints):
    other = SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu")
    assert other.widths == engine.widths and other.widths is not engine.widths
    governor_widths = TrainedWidths([1.0, 0.75, 0.5, 0.25])  # what the governor holds
    image = frame(16, 16)
    for i, w in enumerate(other.widths):
        assert engine.network(w) is engine.network(i) is engine.network(governor_widths[i])
        np.testing.assert_array_equal(engine.infer(image, w), engine.infer(image, i))
    assert engine.member(np.int64(2)) is engine.widths[2]


def test_an_int_index_works_everywhere(engine):
    image = frame(24, 24)
    w = engine.widths[2]
    np.testing.assert_array_equal(engine.infer(image, 2), engine.infer(image, w))
    torch.testing.assert_close(engine.logits(image, 2), engine.logits(image, w))
    batch = torch.from_numpy(image).permute(2, 0, 1)
    torch.testing.assert_close(engine.infer_tensor(batch, 2), engine.infer_tensor(batch, w))
    engine.warmup((8, 8), widths=[0, engine.widths[3]])
    with pytest.raises(ValueError, match="width"):
        engine.warmup((8, 8), widths=[7])


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (101, 17)])
def test_mask_has_frame_size_with_input_size(mnet_small_input, size):
    mask = mnet_small_input.infer(frame(*size), mnet_small_input.widths[0])
    assert mask.shape == size and mask.dtype == np.uint8
    assert mask.max() < NUM_CLASSES


def test_input_size_resizes_then_maps_back_nearest(checkpoints):
    eng = SegmentationEngine.from_checkpoint(checkpoints["resnet18"], device="cpu",
                                             input_size=(32, 48))
    model, info = load_checkpoint(checkpoints["resnet18"])
    image = frame(64, 96, seed=5)  # exactly 2x the network size: nearest = each pixel twice
    ref = reference_logits(model, info, image, eng.widths[1], input_size=(32, 48))
    small = ref[0].argmax(0).numpy()
    got = eng.infer(image, eng.widths[1])
    top2 = ref[0].topk(2, dim=0).values
    clear = np.repeat(np.repeat((top2[0] - top2[1] > 1e-3).numpy(), 2, 0), 2, 1)
    expected = np.repeat(np.repeat(small, 2, 0), 2, 1)
    np.testing.assert_array_equal(got[clear], expected[clear])


@pytest.mark.parametrize("size", [(37, 53), (65, 31)])
def test_odd_frames_at_native_size(engine, size):
    assert engine.infer(frame(*size), engine.widths[0]).shape == size


def test_frame_validation_and_read_only_frames(engine):
    with pytest.raises(ValueError, match="uint8"):
        engine.infer(np.zeros((8, 8, 3), np.float32), 3)
    with pytest.raises(ValueError, match="shape"):
        engine.infer(np.zeros((8, 8), np.uint8), 3)
    with pytest.raises(ValueError, match="shape"):
        engine.infer(np.zeros((0, 8, 3), np.uint8), 3)
    with pytest.raises(ValueError, match="numpy"):
        engine.infer([[0, 0, 0]], 3)
    image = frame(24, 24)
    expected = engine.infer(image, 1)
    ro = np.frombuffer(image.tobytes(), np.uint8).reshape(24, 24, 3)  # like a ROS message buffer
    np.testing.assert_array_equal(engine.infer(ro, 1), expected)
    bgr = image[:, :, ::-1]  # negative strides
    np.testing.assert_array_equal(engine.infer(np.ascontiguousarray(bgr[:, :, ::-1]), 1),
                                  engine.infer(bgr[:, :, ::-1], 1))


def test_infer_tensor_batch_matches_infer(engine):
    images = [frame(32, 40, seed=s) for s in range(2)]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    w = engine.widths.exact(0.75)
    masks = engine.infer_tensor(batch, w)
    assert masks.shape == (2, 32, 40) and masks.dtype == torch.uint8
    for img, m in zip(images, masks):
        np.testing.assert_array_equal(m.numpy(), engine.infer(img, w))


@pytest.mark.parametrize("specialise", [True, False])
def test_calls_at_different_widths_from_two_threads(checkpoints, specialise):
    """
    No shared active width: concurrent calls each run the width they name.

    With specialise=False the shared slimmable model is switched under a lock.
    """
    eng = SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                             specialise=specialise)
    image = frame(16, 16)
    widths = (eng.widths.narrowest, eng.widths.widest)
    refs = {w: eng.infer(image, w) for w in widths}
    wrong: list[Width] = []

    def run(w: Width) -> None:
        for _ in range(10):
            if not np.array_equal(eng.infer(image, w), refs[w]):
                wrong.append(w)

    threads = [threading.Thread(target=run, args=(w,)) for w in widths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_memory_report(checkpoints, mnet):
    spec = mnet
    slim = SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                              specialise=False)
    assert slim.extra_memory_bytes() == 0
    full = sum(p.numel() * 4 for p in spec.network(spec.widths.widest).parameters())
    # four widths 0.25..1.0 cost more than the full network alone, less than four full copies
    assert full < spec.extra_memory_bytes() < 4 * full


def test_bad_arguments(checkpoints, tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt"):
        SegmentationEngine.from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="CUDA|fp32"):
        SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                           precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                           precision="int3")
    with pytest.raises(ValueError, match="input_size"):
        SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                           input_size=(0, 32))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cuda")


def test_bf16_on_cpu_runs(checkpoints, mnet):
    eng = SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                             precision="bf16")
    ref = mnet
    image = frame(32, 32)
    got, expected = eng.infer(image, eng.widths.widest), ref.infer(image, ref.widths.widest)
    assert got.shape == (32, 32)
    assert (got == expected).mean() > 0.5  # bf16 has ~3 significant digits


# -- BatchNorm folding on hand-made networks -------------------------------------------------

class _Residual(nn.Module):
    """conv -> bn, but the conv output is also added after the BN: folding must not happen."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class _OutOfOrder(nn.Module):
    """Attributes registered in another order than the data flows (bn before its conv)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.other = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.other(x)))


def _randomised(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
    return net.eval()


def test_fold_follows_data_flow_not_attribute_order():
    net = _randomised(_OutOfOrder())
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        ref = net(x)
    folded, n = fold_batchnorm(net, x)
    assert n == 1  # only bn (after conv); "other" sees the raw input
    assert isinstance(folded.bn, nn.Identity) and isinstance(folded.other, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref, rtol=1e-5, atol=1e-5)


def test_fold_skips_conv_whose_output_is_reused():
    net = _randomised(_Residual())
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        ref = net(x)
    folded, n = fold_batchnorm(net, x)
    assert n == 0 and isinstance(folded.bn, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref)


class _Moody(nn.Module):
    """
    A module that uses the conv output a second time only from its second call on.

    The trace sees a foldable pair; the check after folding sees a different network and must
    undo the fold.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.conv(x)
        return self.bn(y) + (y if self.calls > 1 else 0)


def test_fold_is_undone_when_the_check_fails():
    net = _randomised(_Moody())
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="unfolded"):
        folded, n = fold_batchnorm(net, x)
    assert n == 0 and isinstance(folded.bn, nn.BatchNorm2d)
    assert type(folded.conv) is nn.Conv2d and folded.conv.bias is not None
    with torch.no_grad():
        torch.testing.assert_close(folded(x), folded.bn(folded.conv(x)) + folded.conv(x))


def test_fold_needs_eval_mode():
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(_Residual().train())


# ----------------------------------------------------------------------------------------------
# The backend table: the one list of runtimes that the engine, auto and the messages read
# (here rather than in test_backends.py, which is skipped where a runtime is not installed)
# ----------------------------------------------------------------------------------------------

def _pretend_installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make the table's import check see only ``modules`` (torch needs none)."""
    monkeypatch.setattr(backends, "importable", lambda module: module in modules)


def test_an_unknown_backend_lists_every_choice() -> None:
    with pytest.raises(backends.BackendError) as err:
        backends.resolve_backend("tensorrt", "cpu")
    message = str(err.value)
    assert "unknown backend 'tensorrt'; choose one of auto, torch, openvino, onnxruntime" \
        in message
    assert "installed here: torch" in message


def test_a_missing_runtime_is_named_with_what_is_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, "onnxruntime")
    with pytest.raises(backends.BackendError) as err:
        backends.resolve_backend("openvino", "cpu")
    message = str(err.value)
    assert "'openvino' package is not installed (pip install openvino)" in message
    assert "installed here: torch, onnxruntime" in message
    assert "not installed: openvino (pip install openvino)" in message
    assert "backend:=auto" in message
    assert backends.resolve_backend("auto", "cpu") == "onnxruntime"
    _pretend_installed(monkeypatch)
    assert backends.resolve_backend("auto", "cpu") == "torch"
    assert backends.resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(backends.BackendError, match="not installed: openvino .*, onnxruntime"):
        backends.resolve_backend("onnxruntime", "cpu")


def test_a_runtime_on_a_device_it_does_not_run_on_names_the_ones_that_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, "openvino", "onnxruntime")
    with pytest.raises(backends.BackendError,
                       match=r"'openvino' runs on cpu only; the device is cuda "
                             r"\(backends for cuda: torch, onnxruntime"):
        backends.resolve_backend("openvino", "cuda")


def test_auto_takes_the_runtimes_in_the_tables_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, "openvino", "onnxruntime")
    assert backends.resolve_backend("auto", "cpu", "fp32") == "openvino"
    assert backends.resolve_backend("AUTO", "cuda") == "torch"
    assert backends.resolve_backend("auto", "mps") == "torch"  # torch runs where torch does
    assert backends.resolve_backend("torch", "mps") == "torch"
    # a precision the first choice cannot run moves auto on; the last one is taken regardless
    assert backends.resolve_backend("auto", "cpu", "fp16") == "torch"
    # the graph runtimes run the prepared per-width networks, not one slimmable network
    assert backends.resolve_backend("auto", "cpu", specialised=False) == "torch"
    with pytest.raises(backends.BackendError, match="specialise=False needs backend 'torch'"):
        backends.resolve_backend("openvino", "cpu", specialised=False)


def test_the_table_is_the_only_list_of_runtimes_and_precisions() -> None:
    from slimseg_ros.ros.params import SPECS
    from slimseg_ros.tools.bench import build_parser

    assert backends.CHOICES == ("auto", *backends.BACKENDS) == backends.choices()
    assert SPECS["backend"].choices == backends.CHOICES
    assert SPECS["precision"].choices == backends.PRECISION_CHOICES == (
        "auto", "fp32", "fp16", "bf16", "int8")
    bench_backends = next(a for a in build_parser()._actions if a.dest == "backends")
    assert tuple(bench_backends.choices) == tuple(backends.BACKENDS)
    assert backends.EAGER == "torch"
    assert [n for n, b in backends.BACKENDS.items() if b.is_graph_runtime] == [
        "openvino", "onnxruntime"]


def _runtime_name_literals(source: str, names: set[str], where: str = "") -> list[str]:
    """Comparisons with a runtime's name, and literal lists of two or more names, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            if sum(isinstance(i, ast.Constant) and i.value in names for i in items) >= 2:
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:60]}")
    return found


def test_no_source_file_but_the_table_compares_or_lists_runtime_names() -> None:
    repo = Path(__file__).resolve().parents[1]
    table = repo / "slimseg_ros" / "inference" / "backends" / "__init__.py"
    names = set(backends.BACKENDS)
    found = [hit for path in sorted([*(repo / "slimseg_ros").rglob("*.py"),
                                     *(repo / "training").rglob("*.py")]) if path != table
             for hit in _runtime_name_literals(path.read_text(), names,
                                               str(path.relative_to(repo)))]
    assert found == []
    probe = 'if backend != "torch":\n    pass\nchoices = ("auto", "openvino", "onnxruntime")\n'
    assert len(_runtime_name_literals(probe, names)) == 2  # the scan can fail


class _FakeGraph:
    """A frame graph that paints every pixel with one class: proves the engine ran it."""

    built: list[tuple[str, int, str]] = []

    def __init__(self, onnx_bytes: bytes, precision: str, threads: int,
                 device_type: str) -> None:
        assert onnx_bytes  # the engine exported the width's frame graph for it
        self.built.append((precision, threads, device_type))

    def run(self, frame: np.ndarray) -> np.ndarray:
        return np.full(frame.shape[:2], 3, np.uint8)


def test_one_more_record_is_seen_by_auto_validation_and_the_engine(
        monkeypatch: pytest.MonkeyPatch, checkpoints) -> None:
    record = backends.Backend("fastrt", "a test runtime (CPU)", module="fastrt_pkg",
                              precisions=("fp32", "int8"), devices=("cpu",), runner=_FakeGraph,
                              auto_devices=("cpu",), auto_rank=1)
    monkeypatch.setitem(backends.BACKENDS, "fastrt", record)
    _pretend_installed(monkeypatch, "fastrt_pkg")
    assert "fastrt" in backends.choices() and "int8" in backends.precision_choices()
    assert backends.resolve_backend("auto", "cpu") == "fastrt"
    assert backends.resolve_backend("auto", "cpu", "bf16") == "torch"  # fastrt runs no bf16
    assert backends.resolve_backend("auto", "cuda") == "torch"
    assert backends.check_backend_precision("fastrt", "INT8") == "int8"
    with pytest.raises(backends.BackendError,
                       match=r"choose fp32 \(int8 runs with openvino, fastrt\)"):
        backends.check_backend_precision("onnxruntime", "int8")
    with pytest.raises(backends.BackendError, match="runs on cpu only; the device is cuda"):
        backends.resolve_backend("fastrt", "cuda")
    with pytest.raises(backends.BackendError, match="choose one of auto, .*, fastrt"):
        backends.resolve_backend("tensorrt", "cpu")
    _FakeGraph.built.clear()
    engine = SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                                precision="auto", input_size=(32, 48),
                                                checkpoint_path=None)
    assert engine.backend == "fastrt" and engine.precision == "fp32"
    assert [b[0] for b in _FakeGraph.built] == ["fp32"] * len(engine.widths)
    assert (engine.infer(np.zeros((20, 30, 3), np.uint8), engine.widths[0]) == 3).all()
    _pretend_installed(monkeypatch)  # the runtime's package gone: named, the others listed
    with pytest.raises(backends.BackendError,
                       match="'fastrt_pkg' package is not installed .*installed here: torch"):
        SegmentationEngine.from_checkpoint(checkpoints["mobilenetv2"], device="cpu",
                                           backend="fastrt")
