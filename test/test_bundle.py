"""
Model bundles: exported per-width graphs the node runs without PyTorch.

``slimseg-export --bundle`` writes them from a checkpoint; :class:`BundleEngine` runs them with
the masks of the torch-built engine; every broken bundle stops with one sentence naming the
file; a node process started from a bundle never imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from node_harness import make_tiny_checkpoint, pick_domain_id, random_frame
from slimseg_ros.inference.bundle import BUNDLE_FILE, BundleEngine, BundleError, read_bundle
from slimseg_ros.tools.export_cli import main as export_main

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    """Write a tiny checkpoint (32x48 input) and its bundle, both runtimes."""
    tmp = tmp_path_factory.mktemp("bundle")
    checkpoint = make_tiny_checkpoint(tmp / "tiny.pt", input_size=(32, 48))
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(tmp / "b")]) == 0
    return checkpoint, tmp / "b"


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(bundle, out)
    return out


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_a_bundle_gives_the_masks_of_the_checkpoint_in_the_same_runtime(bundle, backend) -> None:
    from slimseg_ros.inference.engine import SegmentationEngine

    checkpoint, folder = bundle
    meta = read_bundle(folder)
    assert meta["input_size"] == [32, 48] and meta["widths"] == [0.25, 0.5, 0.75, 1.0]
    assert meta["source"]["sha256"] and set(meta["graphs"]) == {"openvino", "onnxruntime"}
    assert set(meta["graphs"]["openvino"]["1"]["sha256"]) == {"width_1.xml", "width_1.bin"}
    engine = BundleEngine(folder, backend=backend)
    reference = SegmentationEngine.from_checkpoint(checkpoint, device="cpu", backend=backend,
                                                   input_size=(32, 48))
    assert engine.info.class_names == list(reference.info.class_names)
    for width, ref_width in zip(engine.widths, reference.widths):
        for h, w in ((32, 48), (61, 83)):
            frame = random_frame(h, w, seed=h)
            got, want = engine.infer(frame, width), reference.infer(frame, ref_width)
            assert got.shape == (h, w) and got.dtype == np.uint8
            # ONNX Runtime runs the very same graph; OpenVINO's IR keeps fp16 weights
            assert (got == want).mean() >= (1.0 if backend == "onnxruntime" else 0.98)


def test_every_broken_bundle_stops_with_one_sentence_naming_the_file(bundle, tmp_path) -> None:
    _, folder = bundle
    cases = []
    missing = copy_of(folder, tmp_path / "1")
    (missing / "width_0.5.xml").unlink()
    cases.append((missing, "width_0.5.xml is missing"))
    corrupt = copy_of(folder, tmp_path / "2")
    (corrupt / "width_1.onnx").write_bytes(b"not a graph")
    cases.append((corrupt, "does not match the SHA-256"))
    for field, value, says in (("format_version", 99, "format version 99"),
                               ("graph_version", 1, "frame graphs of version 1"),
                               ("format", "other", "not a slimseg model bundle")):
        other = copy_of(folder, tmp_path / field)
        meta = json.loads((other / BUNDLE_FILE).read_text())
        meta[field] = value
        (other / BUNDLE_FILE).write_text(json.dumps(meta))
        cases.append((other, says))
    no_width = copy_of(folder, tmp_path / "w")
    meta = json.loads((no_width / BUNDLE_FILE).read_text())
    del meta["graphs"]["openvino"]["0.75"]
    (no_width / BUNDLE_FILE).write_text(json.dumps(meta))
    cases.append((no_width, "width 0.75 has no openvino graph"))
    garbage = copy_of(folder, tmp_path / "g")
    (garbage / BUNDLE_FILE).write_text("{not json")
    cases.append((garbage, "not readable JSON"))
    cases.append((tmp_path, "has no bundle.json"))
    for path, says in cases:
        with pytest.raises(BundleError, match=says) as err:
            BundleEngine(path)
        assert "\n" not in str(err.value)
    for kwargs, says in (({"backend": "torch"}, "cannot run a bundle"),
                         ({"input_size": [64, 96]}, "differs from the bundle's"),
                         ({"confidence": True}, "no confidence output"),
                         ({"device": "cuda"}, "runs on the CPU")):
        with pytest.raises(BundleError, match=says):
            BundleEngine(folder, **kwargs)


def test_export_refuses_a_folder_in_use_and_writes_nothing_on_failure(bundle, tmp_path,
                                                                      capsys) -> None:
    checkpoint, folder = bundle
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(folder)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert export_main(["--checkpoint", str(tmp_path / "none.pt"), "--bundle",
                        str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))


@pytest.mark.ros
def test_a_node_started_from_a_bundle_serves_masks_without_importing_torch(bundle) -> None:
    pytest.importorskip("rclpy")
    _, folder = bundle
    script = (
        "import sys, numpy as np, rclpy\n"
        "from rclpy.parameter import Parameter\n"
        "from slimseg_ros.ros.node import SlimSegNode\n"
        "from node_harness import pick_domain_id\n"
        "rclpy.init(domain_id=pick_domain_id())\n"
        "node = SlimSegNode(parameter_overrides=[Parameter('checkpoint', value=sys.argv[1]),\n"
        "    Parameter('host_sensors', value='off')])\n"
        "mask, _ = node.engine.segment(np.zeros((40, 56, 3), np.uint8), node.engine.widths[0])\n"
        "print('mask', mask.shape, 'torch' in sys.modules)\n"
        "node.destroy_node(); rclpy.try_shutdown()\n")
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mask (40, 56) False" in done.stdout  # served, and torch never imported
    assert "loaded bundle" in done.stderr and "no PyTorch" in done.stderr


@pytest.mark.ros
def test_the_memory_stages_follow_the_node_without_importing_torch(bundle, tmp_path) -> None:
    pytest.importorskip("rclpy")
    _, folder = bundle
    out = tmp_path / "stages.json"
    env = {**os.environ, "ROS_DOMAIN_ID": str(pick_domain_id())}
    done = subprocess.run([sys.executable, "-m", "slimseg_ros.tools.memory_stages", "--bundle",
                           str(folder), "--frame", "40x56", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    stages = json.loads(out.read_text())["stages"]
    assert [s["stage"] for s in stages][-3:] == [
        "every width compiled and run once, working memory handed back",
        "one 40x56 frame at width 1", "a ROS node (its DDS participant)"]
    assert not any(s["torch_imported"] for s in stages)
    assert stages[-1]["mib"] > stages[0]["mib"] > 0
    assert "| OpenVINO |" in done.stdout


def test_the_packaged_bundle_is_the_packaged_checkpoint() -> None:
    from slimseg_ros.inference.graph_format import file_sha256
    from slimseg_ros.resources import default_bundle, default_checkpoint

    bundle = default_bundle()
    assert bundle is not None, "models/default_bundle is missing"
    meta = read_bundle(bundle)  # every file's SHA-256 checked too
    assert meta["source"]["sha256"] == file_sha256(default_checkpoint())
    assert meta["source"]["checkpoint"] == "default.pt" and "openvino" in meta["graphs"]


@pytest.mark.parametrize(("changes", "bundle_expected"), [
    ({}, True), ({"backend": "openvino"}, True), ({"backend": "torch"}, False),
    ({"backend": "onnxruntime"}, False),  # the packaged bundle holds OpenVINO graphs only
    ({"input_size": [288, 384]}, False), ({"publish_confidence": True}, False),
    ({"device": "cuda"}, False)])
def test_an_empty_checkpoint_runs_the_bundle_only_where_it_can_serve(changes,
                                                                     bundle_expected) -> None:
    pytest.importorskip("rclpy")
    from slimseg_ros.ros.startup import default_model

    values = {"backend": "auto", "device": "cpu", "input_size": [0, 0],
              "publish_confidence": False, **changes}
    chosen = default_model(values)
    assert chosen.endswith("default_bundle") is bundle_expected, chosen
    assert bundle_expected or chosen.endswith("default.pt")


def test_eval_scores_a_bundle_like_its_checkpoint_in_the_same_runtime(bundle, tmp_path) -> None:
    from slimseg_ros.training.evaluate import main as eval_main
    from synthetic_data import write_camvid_tree

    import torch

    from slimseg_ros.models import load_checkpoint, save_checkpoint
    from slimseg_ros.training.datasets import build_dataset

    write_camvid_tree(tmp_path / "cv", {"test": 2}, size=(32, 48))
    model, info = load_checkpoint(bundle[0])  # the tiny model, with CamVid's class names
    info.class_names = list(build_dataset("camvid", tmp_path / "cv", "test").spec.class_names)
    with torch.no_grad():  # masks of several classes, so the scores can differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    checkpoint = save_checkpoint(tmp_path / "camvid_tiny.pt", model, info) or \
        tmp_path / "camvid_tiny.pt"
    folder = tmp_path / "camvid_bundle"
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(folder),
                        "--runtimes", "onnxruntime"]) == 0
    scores = {}
    for name, model in (("pt", checkpoint), ("bundle", folder)):
        out = tmp_path / name
        assert eval_main(["--checkpoint", str(model), "--dataset", "camvid", "--root",
                          str(tmp_path / "cv"), "--workers", "0", "--backend", "onnxruntime",
                          "--size", "32", "48", "--output", str(out)]) == 0
        scores[name] = json.loads((out / "metrics.json").read_text())["results"]
    assert set(scores["bundle"]) == {"0.25", "0.5", "0.75", "1"}
    for w, r in scores["pt"].items():
        assert scores["bundle"][w]["miou"] == pytest.approx(r["miou"], abs=1e-9)
