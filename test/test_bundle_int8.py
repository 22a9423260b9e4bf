"""
INT8 graphs in a model bundle: written by slimseg-export, checked, refused when stale or absent.

A tiny checkpoint's bundle is quantized on a few synthetic frames (real NNCF, real OpenVINO);
what ``precision: auto`` picks is tested on the bundle's records (a made-up speed record for
this CPU), so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from node_harness import make_tiny_checkpoint, random_frame
from slimseg_ros.inference.bundle import BUNDLE_FILE, BundleEngine, BundleError
from slimseg_ros.inference.bundle_int8 import AUTO_SPEEDUP, auto_precisions
from slimseg_ros.inference.machine import cpu_key
from slimseg_ros.tools.export_cli import main as export_main

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """Write a tiny checkpoint's bundle and add INT8 graphs calibrated on 10 frames."""
    tmp = tmp_path_factory.mktemp("int8")
    checkpoint = make_tiny_checkpoint(tmp / "tiny.pt", input_size=(32, 48))
    frames = tmp / "frames" / "nested"
    frames.mkdir(parents=True)
    for i in range(10):  # smooth frames of another size: resized to the input size
        frame = cv2.GaussianBlur(random_frame(64, 96, seed=i), (9, 9), 0)
        cv2.imwrite(str(frames / f"f{i:02d}.png"), frame)
    (tmp / "frames" / "notes.txt").write_text("not an image")
    bundle = tmp / "b"
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(bundle),
                        "--runtimes", "openvino"]) == 0
    assert export_main(["--bundle", str(bundle), "--int8", "--calibration",
                        str(tmp / "frames"), "--calibration-frames", "10"]) == 0
    return checkpoint, bundle


def test_int8_graphs_are_recorded_and_run(int8_bundle) -> None:
    _, bundle = int8_bundle
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    int8 = meta["int8"]
    assert set(int8["graphs"]) == {f"{w:g}" for w in meta["widths"]}
    assert int8["calibration"]["frames"] == 10 and int8["calibration"]["resized"] == 10
    assert int8["calibration"]["held_out"] == 2 and "/" not in int8["calibration"]["folder"]
    assert all(g["fake_quantize"] > 0 for g in int8["graphs"].values())
    assert all("passed" in c and c["kind"] == "mask agreement" for c in int8["checks"].values())
    assert int8["settings"]["nncf"]
    engine = BundleEngine(bundle, backend="openvino", precision="int8")
    assert engine.precision == "int8"
    fp32 = BundleEngine(bundle, backend="openvino", precision="fp32")
    frame = cv2.GaussianBlur(random_frame(32, 48, seed=99), (9, 9), 0)
    for w in engine.widths:
        mask = engine.infer(frame, w)
        assert mask.shape == (32, 48) and mask.dtype == np.uint8
        assert np.mean(mask == fp32.infer(frame, w)) > 0.5  # the same network, in int8


def test_auto_runs_int8_only_where_this_cpu_measured_it_faster(int8_bundle, tmp_path) -> None:
    _, source = int8_bundle
    bundle = tmp_path / "b"
    shutil.copytree(source, bundle)
    meta = json.loads((bundle / BUNDLE_FILE).read_text())
    keys = [f"{w:g}" for w in meta["widths"]]
    engine = BundleEngine(bundle, backend="openvino", precision="auto")
    assert engine.precision == "fp32" and "no INT8 speed recorded" in engine.precision_reason
    for c in meta["int8"]["checks"].values():
        c["passed"] = True
    meta["int8"]["checks"][keys[0]]["passed"] = False
    fast = {k: {"speedup": AUTO_SPEEDUP + 0.2} for k in keys}
    fast[keys[1]] = {"speedup": AUTO_SPEEDUP - 0.05}
    meta["int8"]["speed"] = {cpu_key(): {"widths": fast},
                             "Another CPU [avx512_vnni]": {"widths": {k: {"speedup": 3.0}
                                                                      for k in keys}}}
    chosen, why = auto_precisions(meta, keys, "fp32")
    assert chosen[keys[0]] == "fp32" and "check failed" in why
    assert chosen[keys[1]] == "fp32" and f"< {AUTO_SPEEDUP}x" in why
    assert all(chosen[k] == "int8" for k in keys[2:])
    (bundle / BUNDLE_FILE).write_text(json.dumps(meta))
    engine = BundleEngine(bundle, backend="openvino", precision="auto")
    assert engine.precision.startswith("fp32 at") and "int8 at" in engine.precision
    from slimseg_ros.ros.contract import Diagnostics, diagnostics_values, read_diagnostics
    shown = read_diagnostics(diagnostics_values(Diagnostics(
        precision=engine.precision, precision_reason=engine.precision_reason)))
    assert (shown.precision, shown.precision_reason) == (engine.precision, why)
    assert engine.infer(random_frame(32, 48), engine.widths.widest).shape == (32, 48)


def test_int8_is_refused_where_it_cannot_run(int8_bundle, tmp_path) -> None:
    from slimseg_ros.inference.backends import BackendError
    from slimseg_ros.inference.engine import SegmentationEngine
    checkpoint, source = int8_bundle
    with pytest.raises(BackendError, match="slimseg-export .* --int8 --calibration"):
        SegmentationEngine.from_checkpoint(checkpoint, device="cpu", backend="openvino",
                                           precision="int8")
    with pytest.raises(BackendError, match="backend 'torch'.*--int8 --calibration"):
        SegmentationEngine.from_checkpoint(checkpoint, device="cpu", backend="torch",
                                           precision="int8")
    plain = tmp_path / "plain"
    assert export_main(["--checkpoint", str(checkpoint), "--bundle", str(plain),
                        "--runtimes", "openvino"]) == 0
    with pytest.raises(BundleError, match="no INT8 graph.*--int8 --calibration"):
        BundleEngine(plain, backend="openvino", precision="int8")
    stale = tmp_path / "stale"  # INT8 graphs of another export beside these fp32 graphs
    shutil.copytree(plain, stale)
    meta = json.loads((stale / BUNDLE_FILE).read_text())
    meta["int8"] = json.loads((source / BUNDLE_FILE).read_text())["int8"]
    for key, entry in meta["int8"]["graphs"].items():
        entry["from_sha256"] = {"x": "0" * 64}
        for name in entry["sha256"]:
            shutil.copy(source / name, stale / name)
    (stale / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="made from other fp32 graphs"):
        BundleEngine(stale, backend="openvino", precision="int8")


def test_an_empty_calibration_folder_writes_nothing(int8_bundle, tmp_path, capsys) -> None:
    _, source = int8_bundle
    bundle = tmp_path / "b"
    shutil.copytree(source, bundle)
    before = (bundle / BUNDLE_FILE).read_text()
    files = sorted(p.name for p in bundle.iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_main(["--bundle", str(bundle), "--int8", "--calibration", str(empty)]) == 2
    assert "holds no images" in capsys.readouterr().err
    assert export_main(["--bundle", str(bundle), "--int8"]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert (bundle / BUNDLE_FILE).read_text() == before
    assert sorted(p.name for p in bundle.iterdir()) == files
