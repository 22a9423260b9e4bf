"""
The ladder: (width, input size) operating points stored with the model and run by both engines.

A tiny checkpoint (32x48 input) gets a ladder from a made-up sweep through the tool, beside the
.pt and into its bundle (real OpenVINO and ONNX Runtime graphs); a point runs exactly what an
engine built at that input size runs, every broken ladder stops with one sentence naming the
file, and the shipped model's two ladders are the front of the published sweep. Behaviour only,
no timings.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from node_harness import make_tiny_checkpoint, random_frame
from slimseg_ros.inference.bundle import BUNDLE_FILE, BundleEngine, BundleError, read_bundle
from slimseg_ros.inference.engine import SegmentationEngine
from slimseg_ros.inference.ladder import (LADDER_OFF_NOTE, NO_INPUT_SIZE_NOTE, LadderError,
                                          LadderPoint, ladder_json, ladder_path_for,
                                          parse_ladder, read_ladder_file)
from slimseg_ros.tools.export_cli import main as export_main
from slimseg_ros.tools.resolution_sweep import main as sweep_main, pareto_front

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
WIDTHS = [0.25, 0.5, 0.75, 1.0]
SIZE = (32, 48)
POINTS = [(0.25, (16, 24)), (0.5, (16, 24)), (1.0, (24, 32))]  # the made-up sweep's front


def made_up_sweep(name: str = "tiny.pt", split: str = "val",
                  frame: tuple[int, int] = SIZE) -> dict:
    """Return a sweep of the tiny model whose front's reduced points are :data:`POINTS`."""
    figures = [(0.25, SIZE, 2.0, 40.0), (0.5, SIZE, 3.0, 45.0), (0.75, SIZE, 4.0, 50.0),
               (1.0, SIZE, 5.0, 55.0), (0.25, (16, 24), 1.0, 38.0), (0.5, (16, 24), 1.5, 42.0),
               (1.0, (24, 32), 3.5, 52.0), (0.75, (24, 32), 3.6, 49.0)]
    points = [{"width": w, "scale": s[0] / SIZE[0], "input_size": list(s), "miou": m,
               "p50_ms": ms} for w, s, ms, m in figures]
    return {"checkpoint": name, "split": split, "backend": "openvino",
            "frame_size": list(frame), "cpu": "Test CPU", "threads": 2, "points": points}


def good_ladder() -> dict:
    return {"format": "slimseg-ladder", "version": 1, "input_size": [32, 48],
            "measured_on": "Test CPU, openvino fp32, 2 threads, frames 32x48", "split": "val",
            "points": [{"width": 0.5, "input_size": [16, 24], "latency_ms": 1.5, "miou": 42.0},
                       {"width": 0.25, "input_size": [16, 24], "latency_ms": 1.0, "miou": 38}],
            "full": [{"width": w, "latency_ms": 2.0 + i, "miou": None}
                     for i, w in enumerate(WIDTHS)]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Write a tiny checkpoint, its bundle (both runtimes), a sweep, and its ladders (the tool)."""
    tmp = tmp_path_factory.mktemp("ladder")
    checkpoint = make_tiny_checkpoint(tmp / "tiny.pt", input_size=SIZE)
    plain = tmp / "plain"
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(plain)]) == 0
    bundle = tmp / "b"
    shutil.copytree(plain, bundle)
    sweep = tmp / "sweep.json"
    sweep.write_text(json.dumps(made_up_sweep()))
    for target in (bundle, checkpoint):
        assert sweep_main(["--from", str(sweep), "--write-ladder", str(target),
                           "--checkpoint", str(checkpoint)]) == 0
    return {"checkpoint": checkpoint, "bundle": bundle, "plain": plain, "sweep": sweep,
            "cache": tmp / "cache", "tmp": tmp}


def keys(spec) -> list[tuple[float, tuple[int, int]]]:
    return [(p.width, p.input_size) for p in spec.points]


# -- the file ------------------------------------------------------------------------------------

def test_a_ladder_reads_back_as_written_cheapest_first() -> None:
    spec = parse_ladder(good_ladder(), "models/x.ladder.json", WIDTHS, (32, 48))
    assert keys(spec) == [(0.25, (16, 24)), (0.5, (16, 24))]  # sorted by latency
    assert spec.points[0] == LadderPoint(0.25, (16, 24), 1.0, 38.0)
    assert spec.full_latency_ms == {0.25: 2.0, 0.5: 3.0, 0.75: 4.0, 1.0: 5.0}
    assert spec.input_size == (32, 48) and spec.source == "models/x.ladder.json"
    assert spec.points[0].key == "0.25@16x24" and spec.sizes_of(0.5) == [(16, 24)]
    again = parse_ladder(json.loads(json.dumps(ladder_json(spec))), spec.source, WIDTHS, None)
    assert again == spec and "source" not in ladder_json(spec)
    assert ladder_path_for("models/default.pt") == Path("models/default.ladder.json")


def _changed(path: tuple, value: object) -> dict:
    data = good_ladder()
    target = data
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(("path", "value", "says"), [
    (("format",), "other", "not a slimseg ladder"),
    (("version",), 2, "ladder version 2"),
    (("split",), "test", "never on test"),
    (("input_size",), [40, 56], "measured at input 40x56, but the model's input size is 32x48"),
    (("input_size",), [32], "two positive integers"),
    (("measured_on",), "", "measured_on"),
    (("points", 0, "width"), 0.3, "width 0.3 is not a trained width"),
    (("points", 0, "input_size"), [16.0, 24], "two positive integers"),
    (("points", 0, "input_size"), [-16, 24], "two positive integers"),
    (("points", 0, "input_size"), [20, 24], "not multiples of 8"),
    (("points", 0, "input_size"), [40, 24], "not smaller than the full input 32x48"),
    (("points", 0, "input_size"), [32, 48], "not smaller than the full input"),
    (("points", 0, "latency_ms"), float("nan"), "finite number of milliseconds > 0"),
    (("points", 0, "latency_ms"), 0, "finite number of milliseconds > 0"),
    (("points", 0, "latency_ms"), True, "finite number of milliseconds > 0"),
    (("points", 0, "miou"), 140.0, "percentage"),
    (("points", 1, "width"), 0.5, "point 0.5@16x24 is listed twice"),
    (("full", 2), KeyError, None),  # filled in below: a width missing
    (("full", 0, "width"), 0.9, "width 0.9 is not a trained width"),
    (("points",), {}, "points and full must be lists"),
])
def test_every_bad_ladder_is_one_sentence_naming_the_file(path, value, says) -> None:
    if value is KeyError:  # drop width 0.75's full-input entry
        data = good_ladder()
        data["full"] = [f for f in data["full"] if f["width"] != 0.75]
        says = "no latency for trained width 0.75"
    else:
        data = _changed(path, value)
    with pytest.raises(LadderError, match=says) as err:
        parse_ladder(data, "models/x.ladder.json", WIDTHS, (32, 48))
    assert "\n" not in str(err.value) and "models/x.ladder.json" in str(err.value)


def test_a_file_that_is_no_json_object_is_one_sentence_naming_it(tmp_path) -> None:
    for name, text, says in (("a.json", "{not json", "not a readable JSON ladder"),
                             ("b.json", "[1, 2]", "must be a JSON object")):
        (tmp_path / name).write_text(text)
        with pytest.raises(LadderError, match=says) as err:
            read_ladder_file(tmp_path / name, WIDTHS, (32, 48))
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)


def test_the_reader_imports_no_torch() -> None:
    code = ("import sys; import slimseg_ros.inference.ladder, slimseg_ros.inference.bundle; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


# -- writing it ----------------------------------------------------------------------------------

def test_the_tool_writes_the_fronts_reduced_points_beside_the_checkpoint(tiny) -> None:
    path = ladder_path_for(tiny["checkpoint"])
    spec = read_ladder_file(path, WIDTHS, SIZE)
    assert keys(spec) == POINTS
    assert spec.full_latency_ms == {0.25: 2.0, 0.5: 3.0, 0.75: 4.0, 1.0: 5.0}
    assert spec.measured_on == "Test CPU, openvino fp32, 2 threads, frames 32x48"
    assert len(path.read_text().splitlines()) < 20  # one line per point: small and readable


def test_the_tool_refuses_a_sweep_of_another_model_size_or_split(tiny, tmp_path,
                                                                 capsys) -> None:
    widths_only = made_up_sweep()
    widths_only["points"] = [p for p in widths_only["points"] if p["input_size"] == [32, 48]]
    cases = ((made_up_sweep(name="other.pt"), "measured 'other.pt', not 'tiny.pt'"),
             (made_up_sweep(split="test"), "never on test"),
             (made_up_sweep(frame=(64, 96)), "not the model's input size 32x48"),
             (widths_only, "no reduced-input point is on the front"))
    for sweep_data, says in cases:
        sweep = tmp_path / "sweep.json"
        sweep.write_text(json.dumps(sweep_data))
        assert sweep_main(["--from", str(sweep), "--write-ladder", str(tiny["bundle"]),
                           "--checkpoint", str(tiny["checkpoint"])]) == 2
        err = capsys.readouterr().err
        assert says in err and str(sweep) in err and err.count("\n") == 1
    other = make_tiny_checkpoint(tmp_path / "tiny.pt", input_size=(40, 56))
    assert sweep_main(["--from", str(tiny["sweep"]), "--write-ladder", str(tiny["bundle"]),
                       "--checkpoint", str(other)]) == 2
    assert "is not the checkpoint bundle" in capsys.readouterr().err
    read_bundle(tiny["bundle"])  # untouched
    (tmp_path / "sizeless").mkdir()
    sizeless = make_tiny_checkpoint(tmp_path / "sizeless" / "tiny.pt", input_size=None)
    assert sweep_main(["--from", str(tiny["sweep"]), "--write-ladder", str(sizeless)]) == 2
    err = capsys.readouterr().err
    assert "records no input size" in err and err.count("\n") == 1
    assert not ladder_path_for(sizeless).exists()


def test_a_bundle_exported_from_a_model_with_a_ladder_carries_it(
        tiny, tmp_path, capsys) -> None:
    folder = tmp_path / "carried"
    assert export_main(["--checkpoint", str(tiny["checkpoint"]), "--bundle", str(folder)]) == 0
    assert "ladder of 3 operating points carried from" in capsys.readouterr().out
    meta = read_bundle(folder)  # every point's graph there and hashed
    beside = read_ladder_file(ladder_path_for(tiny["checkpoint"]), WIDTHS, SIZE)
    assert [(p["width"], tuple(p["input_size"])) for p in meta["ladder"]["points"]] == \
        keys(beside)
    assert BundleEngine(folder).ladder is not None


def test_a_new_ladder_replaces_the_old_and_its_files(tiny, tmp_path, capsys) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(tiny["bundle"], bundle)
    sweep = made_up_sweep()
    sweep["points"] = [p for p in sweep["points"] if p["input_size"] != [24, 32]]
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    assert sweep_main(["--from", str(tmp_path / "sweep.json"), "--write-ladder", str(bundle),
                       "--checkpoint", str(tiny["checkpoint"])]) == 0
    meta = read_bundle(bundle)
    assert [p["input_size"] for p in meta["ladder"]["points"]] == [[16, 24], [16, 24]]
    assert not list(bundle.glob("ladder_1_24x32.*")) and list(bundle.glob("ladder_0.5_16x24.*"))
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # nothing staged left


# -- the engines ---------------------------------------------------------------------------------

def test_a_torch_engine_runs_a_point_as_an_engine_built_at_that_size(tiny) -> None:
    engine = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                                backend="torch", input_size=SIZE,
                                                confidence=True)
    assert keys(engine.ladder) == POINTS
    assert engine.ladder_note.startswith(f"ladder of 3 points from "
                                         f"{ladder_path_for(tiny['checkpoint'])} (measured on")
    engine.prepare_size(*SIZE)
    engine.warmup(iters=1)
    frames = [random_frame(*SIZE, seed=1), random_frame(45, 61, seed=2)]
    others = {size: SegmentationEngine.from_checkpoint(
        tiny["checkpoint"], device="cpu", backend="torch", input_size=size, confidence=True,
        ladder=False) for size in {size for _, size in POINTS}}
    for width, size in POINTS:
        member, other = engine.widths.exact(width), others[size]
        for frame in frames:
            mask, conf = engine.segment(frame, member, size)
            want_mask, want_conf = other.segment(frame, member)
            assert mask.shape == frame.shape[:2]
            assert np.array_equal(mask, want_mask) and np.array_equal(conf, want_conf)
            assert np.array_equal(engine.infer(frame, member, list(size)), want_mask)
    full = engine.segment(frames[0], engine.widths[0], SIZE)[0]  # the input size: the width
    assert np.array_equal(full, engine.segment(frames[0], engine.widths[0])[0])


def test_an_openvino_engine_runs_a_points_own_graph(tiny) -> None:
    kwargs = {"device": "cpu", "backend": "openvino", "cache_dir": tiny["cache"]}
    engine = SegmentationEngine.from_checkpoint(tiny["checkpoint"], input_size=SIZE, **kwargs)
    assert keys(engine.ladder) == POINTS
    engine.prepare_size(*SIZE)
    engine.warmup(iters=1)
    frame = random_frame(*SIZE, seed=3)
    others = {size: SegmentationEngine.from_checkpoint(tiny["checkpoint"], input_size=size,
                                                       ladder=False, **kwargs)
              for size in {size for _, size in POINTS}}
    for width, size in POINTS:
        member, other = engine.widths.exact(width), others[size]
        assert np.array_equal(engine.infer(frame, member, size), other.infer(frame, member))
    assert engine.prepared_from.startswith("0 of 7 graphs from the cache")
    # a point's graph is its width's graph at that input size: one cache entry for both
    assert others[(16, 24)].prepared_from.startswith("2 of 4 graphs from the cache")
    assert others[(24, 32)].prepared_from.startswith("1 of 4 graphs from the cache")


def test_a_point_not_in_the_ladder_is_a_value_error_listing_the_points(tiny) -> None:
    engine = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                                backend="torch", input_size=SIZE)
    frame = random_frame(*SIZE)
    for width, size in ((0.75, (16, 24)), (0.25, (24, 32)), (0.25, (8, 8))):
        with pytest.raises(ValueError, match="is not a point of the ladder") as err:
            engine.infer(frame, engine.widths.exact(width), size)
        message = str(err.value)
        assert f"width {width:g} at input {size[0]}x{size[1]}" in message
        assert "0.25@16x24, 0.5@16x24, 1@24x32" in message
    off = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu", backend="torch",
                                             input_size=SIZE, ladder=False)
    assert off.ladder is None and off.ladder_note == LADDER_OFF_NOTE
    with pytest.raises(ValueError, match="has no ladder"):
        off.infer(frame, off.widths[0], (16, 24))


def test_each_engine_says_why_it_has_no_ladder(tiny, tmp_path) -> None:
    from slimseg_ros.models import load_checkpoint

    bare = tmp_path / "bare.pt"
    shutil.copy(tiny["checkpoint"], bare)
    engine = SegmentationEngine.from_checkpoint(bare, device="cpu", backend="torch",
                                                input_size=SIZE)
    assert engine.ladder is None and "widths only" in engine.ladder_note
    assert "--write-ladder" in engine.ladder_note and str(bare) in engine.ladder_note
    other = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                               backend="torch", input_size=(40, 56))
    assert other.ladder is None and other.ladder_note == (
        "no ladder: the ladder was measured at input 32x48, this engine runs 40x56 "
        "(widths only)")
    model, info = load_checkpoint(tiny["checkpoint"])
    loose = SegmentationEngine(copy.deepcopy(model), info, device="cpu", backend="torch",
                               input_size=SIZE)
    assert loose.ladder is None and "without a checkpoint file" in loose.ladder_note
    free = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                              backend="torch")  # runs at the frame size
    assert free.ladder is None and free.ladder_note == NO_INPUT_SIZE_NOTE
    plain = BundleEngine(tiny["plain"], backend="onnxruntime")
    assert plain.ladder is None and plain.ladder_note == (
        f"no ladder: bundle {tiny['plain']} has none (widths only; add one with python -m "
        f"slimseg_ros.tools.resolution_sweep --from SWEEP_JSON --write-ladder {tiny['plain']})")
    broken = tmp_path / "broken.pt"
    shutil.copy(tiny["checkpoint"], broken)
    ladder_path_for(broken).write_text("{}")
    with pytest.raises(LadderError, match="broken.ladder.json is not a slimseg ladder"):
        SegmentationEngine.from_checkpoint(broken, device="cpu", backend="torch",
                                           input_size=SIZE)


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_a_bundles_points_give_the_masks_of_the_checkpoint_at_that_size(tiny, backend) -> None:
    meta = read_bundle(tiny["bundle"])
    graphs = meta["ladder"]["graphs"]
    assert set(graphs) == {"openvino", "onnxruntime"}
    assert set(graphs["openvino"]) == {"0.25@16x24", "0.5@16x24", "1@24x32"}
    assert graphs["openvino"]["1@24x32"]["file"] == "ladder_1_24x32.xml"
    hashed = set(graphs["openvino"]["1@24x32"]["sha256"])
    assert hashed == {"ladder_1_24x32.xml", "ladder_1_24x32.bin"}
    assert graphs["onnxruntime"]["1@24x32"]["file"] == "ladder_1_24x32.onnx"
    engine = BundleEngine(tiny["bundle"], backend=backend)
    assert keys(engine.ladder) == POINTS
    assert engine.ladder_note.startswith(f"ladder of 3 points from bundle {tiny['bundle']}")
    engine.prepare_size(*SIZE)
    engine.warmup(iters=1)
    references = {size: SegmentationEngine.from_checkpoint(
        tiny["checkpoint"], device="cpu", backend=backend, input_size=size, ladder=False,
        cache_dir=tiny["cache"]) for size in {size for _, size in POINTS}}
    for width, size in POINTS:
        reference, member = references[size], engine.widths.exact(width)
        for frame in (random_frame(*SIZE, seed=4), random_frame(45, 61, seed=5)):
            got = engine.infer(frame, member, size)
            want = reference.infer(frame, reference.widths.exact(width))
            assert got.shape == frame.shape[:2]
            # ONNX Runtime runs the very same graph; OpenVINO's IR keeps fp16 weights
            assert (got == want).mean() >= (1.0 if backend == "onnxruntime" else 0.98)
    with pytest.raises(ValueError, match="is not a point of the ladder"):
        engine.segment(random_frame(*SIZE), engine.widths[2], (16, 24))


@pytest.mark.parametrize("model", ["bundle", "checkpoint"])
def test_openvino_graphs_hand_back_their_working_memory_and_run_the_same_after(
        tiny, model) -> None:
    if model == "bundle":
        engine = BundleEngine(tiny["bundle"], backend="openvino", cache_dir=tiny["cache"])
    else:
        engine = SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                                    backend="openvino", input_size=SIZE,
                                                    cache_dir=tiny["cache"])
    steps = [(w, None) for w in engine.widths] + [(engine.widths.exact(w), s)
                                                  for w, s in POINTS]
    frames = (random_frame(*SIZE, seed=6), random_frame(45, 61, seed=7))
    before = [engine.segment(f, w, s)[0] for w, s in steps for f in frames]
    assert engine.releases_memory
    assert engine.release_memory([steps[0], steps[-1]]) == 2  # one width, one point
    assert engine.release_memory() == len(steps) - 2  # the others that still held theirs
    assert engine.release_memory() == 0
    after = [engine.segment(f, w, s)[0] for w, s in steps for f in frames]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("model", ["bundle", "checkpoint"])
def test_a_releasing_warm_up_leaves_no_graph_holding_working_memory(tiny, model) -> None:
    kwargs = {"backend": "openvino", "cache_dir": tiny["cache"], "defer_points": True}
    engine = (BundleEngine(tiny["bundle"], **kwargs) if model == "bundle" else
              SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                                 input_size=SIZE, **kwargs))
    engine.warmup(size=SIZE, release=True)
    engine.prepare_points(warm_size=SIZE, release=True)
    graphs = engine._graphs + engine._point_graphs
    assert len(graphs) == 7 and not any(g.holds_memory for g in graphs)
    engine.segment(random_frame(*SIZE), engine.widths[1], (16, 24))
    assert [g.holds_memory for g in graphs] == [False] * 5 + [True, False]
    engine.warmup(size=SIZE)  # without release every graph keeps what its run allocated
    assert all(g.holds_memory for g in graphs)


def test_a_warm_start_leaves_the_process_locale_as_it_was(tiny) -> None:
    # OpenVINO switches the C locale around reading a compiled model back from its cache; two
    # such reads at once once left the whole process in the C locale (Python then read files
    # as ASCII), so the start-up reads them one at a time
    import locale
    before = locale.setlocale(locale.LC_CTYPE)
    for _ in range(2):  # the second start imports every graph from the cache
        engine = BundleEngine(tiny["bundle"], backend="openvino", cache_dir=tiny["cache"],
                              defer_points=True)
        engine.warmup(size=SIZE, release=True)
        engine.prepare_points(warm_size=SIZE, release=True)
    assert locale.setlocale(locale.LC_CTYPE) == before


def test_the_graph_memory_bench_measures_every_graph_the_node_loads(
        tiny, tmp_path, capsys) -> None:
    from slimseg_ros.tools.graph_memory_bench import main
    engine = BundleEngine(tiny["bundle"], backend="openvino", defer_points=True)
    sources = engine.graph_sources()
    assert [name for name, _, _ in sources] == (
        [f"width {w.value:g}" for w in engine.widths]
        + [f"point {w:g}@{h}x{wd}" for w, (h, wd) in POINTS])
    assert all(path.is_file() and precision == "fp32" for _, path, precision in sources)
    out = tmp_path / "graphs.json"
    assert main(["--bundle", str(tiny["bundle"]), "--threads", "1", "--repeats", "1",
                 "--cache-dir", str(tiny["cache"]), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [r["graph"] for r in figures["graphs"]] == [name for name, _, _ in sources]
    assert all(r["warm_ms"] > 0 and r["first_after_release_ms"] > 0 for r in figures["graphs"])
    assert "| point 0.25@16x24 | fp32 |" in capsys.readouterr().out


def test_onnx_runtime_sessions_share_one_arena_and_give_the_same_masks(tiny) -> None:
    import onnxruntime as ort

    from slimseg_ros.inference.backends.onnxruntime_backend import shared_cpu_arena
    engine = BundleEngine(tiny["bundle"], backend="onnxruntime")
    assert shared_cpu_arena() and shared_cpu_arena()  # registered once, then reused
    sessions = [g._session for g in engine._graphs + engine._point_graphs]
    assert len(sessions) == 7 and all(
        s.get_session_options().get_session_config_entry("session.use_env_allocators") == "1"
        for s in sessions)
    steps = [(w, None) for w in engine.widths] + [(engine.widths.exact(w), s) for w, s in POINTS]
    frame = random_frame(*SIZE, seed=8)
    for (width, size), (_, path, _) in zip(steps, engine.graph_sources()):
        alone = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # own arena
        mask = alone.run(None, {"frame": frame[None]})[0][0]
        assert np.array_equal(engine.segment(frame, width, size)[0], mask), (width, size)


def test_runtimes_that_keep_their_memory_release_nothing(tiny) -> None:
    kept = (BundleEngine(tiny["bundle"], backend="onnxruntime"),
            SegmentationEngine.from_checkpoint(tiny["checkpoint"], device="cpu",
                                               backend="torch", input_size=SIZE))
    for engine in kept:
        assert not engine.releases_memory and engine.release_memory() == 0, engine


def _broken(tiny, tmp_path: Path, name: str, change) -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny["bundle"], folder)
    meta = json.loads((folder / BUNDLE_FILE).read_text())
    change(folder, meta)
    (folder / BUNDLE_FILE).write_text(json.dumps(meta))
    return folder


def test_every_broken_ladder_stops_the_bundle_with_one_sentence(tiny, tmp_path) -> None:
    def tamper(folder, meta):
        (folder / "ladder_0.5_16x24.onnx").write_bytes(b"not a graph")

    def missing(folder, meta):
        (folder / "ladder_1_24x32.bin").unlink()

    def no_graph(folder, meta):
        del meta["ladder"]["graphs"]["openvino"]["0.25@16x24"]

    def stray(folder, meta):
        graphs = meta["ladder"]["graphs"]["onnxruntime"]
        graphs["0.75@16x24"] = graphs["0.5@16x24"]

    def bad_width(folder, meta):
        meta["ladder"]["points"][0]["width"] = 0.3

    def bad_size(folder, meta):
        meta["ladder"]["points"][0]["input_size"] = [32, 48]

    def no_runtime(folder, meta):
        del meta["ladder"]["graphs"]["onnxruntime"]

    cases = [(tamper, "ladder_0.5_16x24.onnx does not match the SHA-256"),
             (missing, "ladder_1_24x32.bin is missing from the bundle (ladder point 1@24x32"),
             (no_graph, "ladder point 0.25@16x24 has no openvino graph"),
             (stray, "ladder graph '0.75@16x24' (onnxruntime) matches no point"),
             (bad_width, "width 0.3 is not a trained width"),
             (bad_size, "is not smaller than the full input"),
             (no_runtime, "the ladder has no onnxruntime graphs")]
    for change, says in cases:
        folder = _broken(tiny, tmp_path, change.__name__, change)
        with pytest.raises(BundleError, match=re.escape(says)) as err:
            BundleEngine(folder, backend="onnxruntime")
        assert "\n" not in str(err.value) and str(folder) in str(err.value)
        with pytest.raises(BundleError, match=re.escape(says)):
            read_bundle(folder)
    off = BundleEngine(tmp_path / "tamper", backend="onnxruntime", ladder=False)
    assert off.ladder is None and off.ladder_note == LADDER_OFF_NOTE


# -- the shipped model ---------------------------------------------------------------------------

def test_the_shipped_model_has_the_front_of_the_published_sweep_as_its_ladder() -> None:
    from slimseg_ros.resources import default_bundle, default_checkpoint

    bundle = default_bundle()
    meta = read_bundle(bundle)  # every file's SHA-256 checked, the ladder's too
    assert meta["int8"]["graphs"] and meta["source"]["checkpoint"] == "default.pt"
    from_bundle = BundleEngine(bundle, backend="openvino", precision="int8")
    assert from_bundle.ladder_note.endswith("; ladder points run fp32")
    spec = from_bundle.ladder
    beside = read_ladder_file(ladder_path_for(default_checkpoint()), meta["widths"],
                              meta["input_size"])
    assert keys(beside) == keys(spec) and beside.full_latency_ms == spec.full_latency_ms
    sweep = json.loads((REPO / "docs" / "resolution" / "sweep.json").read_text())
    front = [(p["width"], tuple(p["input_size"])) for p in pareto_front(sweep["points"])
             if p["scale"] < 1]
    assert keys(spec) == front == [(0.25, (184, 240)), (0.25, (224, 304)), (0.5, (184, 240)),
                                   (0.75, (184, 240)), (1.0, (184, 240)), (0.75, (224, 304))]
    assert spec.input_size == (360, 480) and "openvino fp32" in spec.measured_on
    frame = random_frame(360, 480)
    mask = from_bundle.infer(frame, from_bundle.widths[0], (184, 240))
    assert mask.shape == (360, 480) and mask.dtype == np.uint8
