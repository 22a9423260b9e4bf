"""Benchmark smoke run: tiny input, two rounds; checks the report's structure, not the times."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from engine_fixtures import make_checkpoint

from slimseg_ros.tools.bench import main, packaged_checkpoint, parse_size, resolve_model


def test_bench_smoke_writes_json_and_plot(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    out, fig = tmp_path / "bench.json", tmp_path / "bench.png"
    assert main(["--checkpoint", str(ckpt), "--device", "cpu", "--sizes", "64x64", "48x80",
                 "--iters", "2", "--warmup", "1", "--json", str(out), "--plot", str(fig),
                 "--onnx", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "engine/plain" in printed and "set_width" in printed
    assert "| 64x64 | 0.25 |" in printed and "| 48x80 | 1.00 |" in printed
    result = json.loads(out.read_text())  # strict JSON: no NaN/Infinity allowed
    widths = result["meta"]["widths"]
    assert widths == [0.25, 0.5, 0.75, 1.0]
    rows = result["results"]
    assert len(rows) == 2 * len(widths)
    assert {tuple(r["size"]) for r in rows} == {(64, 64), (48, 80)}
    for r in rows:
        assert r["engine_ms"]["n"] == 2 and r["plain_ms"]["n"] == 2 and r["onnx_ms"]["n"] == 2
        assert 0 < r["engine_ms"]["p50"] <= r["engine_ms"]["p90"]
        assert r["engine_over_plain"] > 0 and 0 < r["flops_ratio"] <= 1.0
        assert r["engine_over_plain_cpu"] > 0  # the tests run torch with one thread
        assert r["gflops"] > 0 and r["params_m"] > 0
    for size in ((64, 64), (48, 80)):
        flops = [r["gflops"] for r in rows if tuple(r["size"]) == size]
        assert flops == sorted(flops) and flops[0] < flops[-1]  # narrower is cheaper
    assert [s["width"] for s in result["switching"]] == widths
    assert all(s["switch_us_p50"] > 0 and s["load_ms_p50"] > 0 for s in result["switching"])
    assert result["memory"]["specialised_weights_bytes"] > 0
    assert list(result["memory"]["folded_bn_per_width"]) == ["0.25", "0.5", "0.75", "1.0"]
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_bad_arguments(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--quiet"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--sizes", "64by64"])
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("0x10")


def test_default_model_source():
    args = argparse.Namespace(checkpoint=None, config=None, backbone=None, head=None,
                              num_classes=None)
    model, info, source = resolve_model(args)
    if packaged_checkpoint() is not None:
        assert source == f"packaged checkpoint {packaged_checkpoint().name}"
    else:
        assert model.config.backbone == "resnet18" and model.config.head == "deeplabv3plus"
        assert model.config.num_classes == 19 and len(info.class_names) == 19


def test_config_file_source(tmp_path):
    cfg = tmp_path / "model.yaml"
    cfg.write_text("model:\n  backbone: mobilenetv2\n  num_classes: 7\n")
    args = argparse.Namespace(checkpoint=None, config=str(cfg), backbone=None, head="fcn",
                              num_classes=None)
    model, info, _ = resolve_model(args)
    assert (model.config.backbone, model.config.head, model.config.num_classes) == \
        ("mobilenetv2", "fcn", 7)
    cfg.write_text("model:\n  backbone: mobilenetv2\n  colour: red\n")
    with pytest.raises(ValueError, match="colour"):
        resolve_model(args)


def test_config_file_with_a_base_gives_the_whole_network(tmp_path):
    (tmp_path / "stage1.yaml").write_text("model:\n  backbone: mobilenetv2\n  num_classes: 7\n"
                                          "  head: fcn\n")
    child = tmp_path / "stage2.yaml"
    child.write_text("base: stage1.yaml\nmodel:\n  pretrained: null\n")
    args = argparse.Namespace(checkpoint=None, config=str(child), backbone=None, head=None,
                              num_classes=None)
    model, _, _ = resolve_model(args)
    assert (model.config.backbone, model.config.head, model.config.num_classes) == \
        ("mobilenetv2", "fcn", 7)
    child.write_text("base: stage0.yaml\n")
    with pytest.raises(ValueError, match="stage0.yaml"):
        resolve_model(args)


def test_backends_compared_each_in_its_own_process(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SLIMSEG_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    out = tmp_path / "backends.json"
    assert main(["--checkpoint", str(ckpt), "--backends", "torch", "onnxruntime", "--sizes",
                 "48x64", "--iters", "3", "--block", "2", "--warmup", "1", "--threads", "1",
                 "--json", str(out),
                 "--plot", str(tmp_path / "backends.png"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "speed-up vs torch" in printed and "LR-ASPP MNv3-L" in printed
    assert (tmp_path / "backends.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads(out.read_text())
    assert result["meta"]["best_runtime"] == "onnxruntime" and result["meta"]["block"] == 2
    for backend in ("torch", "onnxruntime"):
        lat = result["backends"][backend]["latency"]
        assert set(lat) == {"0.25", "0.5", "0.75", "1", "lraspp"}
        # 3 frames in blocks of 2: two whole blocks per width
        assert all(v["n"] == 4 and 0 < v["p50_ms"] <= v["p90_ms"] for v in lat.values())
    assert result["backends"]["onnxruntime"]["backend"] == "onnxruntime"
    assert all(0 < r["startup_s"] <= r["ready_s"] for r in result["backends"].values())
    assert "with the frame size prepared" in printed
    assert result["flops"]["0.25"] < result["flops"]["1"]
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--backends", "torch", "tensorrt"])
    assert main(["--checkpoint", str(ckpt), "--backends", "torch", "--rounds", "0"]) == 2
    assert "rounds and block must be >= 1, got 0 and 10" in capsys.readouterr().err
    assert main(["--checkpoint", str(ckpt), "--backends", "torch", "--block", "0"]) == 2
    assert "got 1 and 0" in capsys.readouterr().err
    assert main(["--checkpoint", str(ckpt), "--backends", "torch", "--idle-ms", "-5"]) == 2
    assert "idle time must be between 0 and 10000 ms, got -5" in capsys.readouterr().err


def test_idle_time_is_left_before_every_timed_frame_and_kept_out_of_its_latency(tmp_path):
    import time

    from slimseg_ros.tools.backend_bench import worker

    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    args = {"backend": "torch", "checkpoint": str(ckpt), "size": [48, 64], "threads": 1,
            "iters": 3, "warmup": 0, "precision": "fp32", "lraspp": False, "block": 1,
            "idle_ms": 300.0}
    started = time.perf_counter()
    result = worker(args)
    # 4 widths x 3 frames, each after 0.3 s idle: at least 3.6 s in all
    assert time.perf_counter() - started >= 3.6
    assert all(v["n"] == 3 and v["p50_ms"] < 300.0 for v in result["latency"].values())


def test_the_lraspp_reference_runs_at_the_runs_precision():
    pytest.importorskip("onnxruntime")
    from slimseg_ros.inference.backends import BackendError
    from slimseg_ros.tools.backend_bench import lraspp_engine_like

    mask = lraspp_engine_like("onnxruntime", 5, (32, 48), 1, "fp32")(
        np.zeros((40, 56, 3), dtype=np.uint8))
    assert mask.shape == (40, 56) and mask.dtype == np.uint8
    # a bf16 run asks the runtime for bf16, which ONNX Runtime refuses by name
    with pytest.raises(BackendError, match="'bf16'"):
        lraspp_engine_like("onnxruntime", 5, (32, 48), 1, "bf16")


def test_rounds_merge_to_medians_with_speed_ups_paired_per_round():
    from slimseg_ros.tools.backend_bench import merge_rounds

    def worker(p50s, startup):  # one worker's figures, shaped as the worker writes them
        return {"backend": "x", "precision": "fp32", "startup_s": startup,
                "ready_s": startup + 1.0, "prepared_from": "-", "switch_us_p50": 1.0,
                "latency": {k: {"p50_ms": v, "p90_ms": 2 * v, "n": 5} for k, v in p50s.items()}}
    # the machine slows in round 2 and recovers in round 3: torch and the runtime both move
    torch_rounds = [worker({"1": 40.0}, 1.0), worker({"1": 80.0}, 1.0), worker({"1": 44.0}, 1.0)]
    runtime = [worker({"1": 20.0}, 3.0), worker({"1": 40.0}, 9.0), worker({"1": 11.0}, 4.0)]
    merged = merge_rounds(runtime, torch_rounds)
    assert merged["latency"]["1"] == {"p50_ms": 20.0, "p90_ms": 40.0, "n": 15}
    assert merged["rounds"] == [{"1": 20.0}, {"1": 40.0}, {"1": 11.0}]
    assert merged["startup_s"] == 4.0
    assert merged["ready_s"] == 5.0
    # each round against its own torch: 2, 2 and 4, median 2 (medians' ratio would say 2.2)
    assert merged["speedup_vs_torch"] == {"1": 2.0}
    assert "speedup_vs_torch" not in merge_rounds(torch_rounds, None)


def test_accuracy_beside_latency_joins_eval_and_bench_per_width(tmp_path, capsys):
    from slimseg_ros.tools import accuracy_vs_latency

    metrics = {"results": {"0.25": {"miou": 0.4, "boundary_f": 0.5},
                           "1.0": {"miou": 0.6, "boundary_f": None}}}
    bench = {"meta": {"device": "cpu"}, "results": [
        {"size": [360, 480], "width": w, "gflops": g, "engine_ms": {"p50": p, "p90": p + 1}}
        for w, g, p in ((0.25, 0.5, 10.0), (0.5, 1.5, 20.0), (1.0, 6.0, 40.0))]
        + [{"size": [512, 1024], "width": 1.0, "gflops": 18.0,
            "engine_ms": {"p50": 99.0, "p90": 120.0}}]}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    (tmp_path / "b.json").write_text(json.dumps(bench))
    args = ["--metrics", str(tmp_path / "m.json"), "--bench", str(tmp_path / "b.json")]
    assert accuracy_vs_latency.main(args) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0")
            or line.startswith("| 1")]
    assert rows == ["| 0.25 | 40.0 | 50.0 | 0.50 | 10.0 / 11.0 |",
                    "| 1 | 60.0 | nan | 6.00 | 40.0 / 41.0 |"]  # 0.5 was not evaluated
    with pytest.raises(SystemExit, match="no width is in both files at size 100x100"):
        accuracy_vs_latency.main(args + ["--size", "100x100"])


def test_a_runtime_missing_here_is_named_with_what_is_installed(tmp_path, capsys, monkeypatch):
    from slimseg_ros.inference import backends

    monkeypatch.setattr(backends, "importable", lambda module: module == "onnxruntime")
    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    assert main(["--checkpoint", str(ckpt), "--backends", "torch", "openvino"]) == 2
    err = capsys.readouterr().err
    assert "backend(s) ['openvino'] not installed (pip install openvino)" in err
    assert "installed here: torch, onnxruntime" in err


def test_input_size_sets_the_network_input_inside_the_frame_graph(tmp_path, capsys):
    from slimseg_ros.tools.backend_bench import worker

    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    args = {"backend": "torch", "checkpoint": str(ckpt), "size": [48, 64], "threads": 1,
            "iters": 1, "warmup": 0, "precision": "fp32", "lraspp": False, "block": 1,
            "input_size": [24, 32]}
    assert set(worker(args)["latency"]) == {"0.25", "0.5", "0.75", "1"}
    for bad, says in ((["0", "32"], "positive number of pixels"),
                      (["24", "wide"], "positive number of pixels")):
        with pytest.raises(SystemExit):
            main(["--checkpoint", str(ckpt), "--backends", "torch", "--input-size", *bad])
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--input-size", "24", "32"])
    assert "use it with --backends" in capsys.readouterr().err
    from slimseg_ros.inference.engine import round_input_size
    assert round_input_size(291, 387) == (288, 384) and round_input_size("3", 4.2) == (8, 8)


def test_ladder_times_the_models_operating_points_beside_the_widths(tmp_path, capsys):
    from slimseg_ros.tools.backend_bench import format_comparison, worker

    ckpt = make_checkpoint(tmp_path / "tiny.pt", "mobilenetv2")
    args = {"backend": "torch", "checkpoint": str(ckpt), "size": [48, 64], "threads": 1,
            "iters": 1, "warmup": 0, "precision": "fp32", "lraspp": False, "block": 1,
            "input_size": [48, 64], "ladder": True}
    with pytest.raises(ValueError, match="--ladder: no ladder"):
        worker(args)
    (tmp_path / "tiny.ladder.json").write_text(json.dumps({
        "format": "slimseg-ladder", "version": 1, "input_size": [48, 64], "measured_on": "-",
        "split": "val", "points": [{"width": 0.5, "input_size": [24, 32], "latency_ms": 1.0}],
        "full": [{"width": w, "latency_ms": 2.0 * w} for w in (0.25, 0.5, 0.75, 1.0)]}))
    figures = worker(args)
    assert set(figures["latency"]) == {"0.25", "0.5", "0.75", "1", "0.5@24x32"}
    table = format_comparison({"backends": {"torch": figures}, "flops": {}, "meta": {}})
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows[-3:] == ["| 1", "| 0.5@24x32", "| LR-ASPP MNv3-L"]  # points after the widths
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(ckpt), "--ladder"])
    assert "use it with --backends" in capsys.readouterr().err
