"""The trainer end to end on a tiny synthetic CamVid: loss down, exact resume, checkpoints, DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from slimseg_ros.models import build_model, load_checkpoint
from slimseg_ros.training.config import ConfigError, load_config
from slimseg_ros.training.evaluate import main as eval_main
from slimseg_ros.training.train import NonFiniteLossError, load_train_state, train
from slimseg_ros.training.train import main as train_main

from synthetic_data import write_camvid_tree

WIDTHS = (0.25, 0.5, 0.75, 1.0)


def tiny_overrides(root: Path, out: Path, iterations: int = 6, **extra: object) -> list[str]:
    values = {
        "model.backbone": "mobilenetv2", "model.num_classes": 11, "model.head_channels": 32,
        "model.low_level_channels": 16, "model.pretrained": None,
        "data.dataset": "camvid", "data.root": str(root), "data.crop_size": [32, 48],
        "data.scale_range": [0.75, 1.25], "data.batch_size": 2, "data.workers": 0,
        "optim.lr": 0.05, "schedule.iterations": iterations, "schedule.warmup_iters": 2,
        "eval.interval": 0, "runtime.tensorboard": False, "runtime.progress": False,
        "runtime.checkpoint_interval": 3, "runtime.log_interval": 1, "output_dir": str(out),
    }
    values.update(extra)
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


@pytest.fixture(scope="module")
def tiny_camvid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_camvid_tree(tmp_path_factory.mktemp("camvid"), {"train": 8, "val": 2, "test": 2},
                             size=(48, 64))


def read_log(out: Path, kind: str) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


@pytest.mark.slow
def test_loss_goes_down_at_every_width_and_checkpoints_are_written(
        tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(tiny_camvid, out, iterations=30,
                                           **{"eval.interval": 15, "runtime.tensorboard": True,
                                              "data.batch_size": 4}))
    summary = train(cfg)
    assert summary["iteration"] == 30 and not summary["interrupted"]
    records = read_log(out, "train")
    assert len(records) == 30
    for w in WIDTHS:
        ce = [r["loss"][f"{w:g}"]["ce"] for r in records]
        first, last = sum(ce[:4]) / 4, sum(ce[-4:]) / 4
        # CE starts near ln(11) = 2.40; narrow widths learn slower (they also follow a teacher)
        factor = 0.8 if w == 1.0 else 0.95
        assert last < factor * first, f"width {w}: CE {first:.3f} -> {last:.3f}"
        kd = [r["loss"][f"{w:g}"]["kd"] for r in records]
        assert (max(kd) == 0.0) == (w == 1.0)  # only narrower widths are distilled
    evals = read_log(out, "eval")
    assert [e["iteration"] for e in evals] == [15, 30]
    assert set(evals[-1]["miou"]) == {f"{w:g}" for w in WIDTHS}
    for name in ("last.pt", "best_model.pt", "final_model.pt", "config.yaml"):
        assert (out / name).is_file(), name
    assert list((out / "tb").iterdir())
    model, info = load_checkpoint(out / "best_model.pt")
    assert info.class_names[0] == "Sky" and info.input_size == [48, 64]
    state = load_train_state(out / "last.pt")
    assert state["iteration"] == 30 and state["config"]["data"]["root"] == str(tiny_camvid)
    assert state["best"]["iteration"] in (15, 30)

    # slimseg-eval on the deployable checkpoint writes JSON + Markdown
    rc = eval_main(["--checkpoint", str(out / "final_model.pt"), "--dataset", "camvid", "--root",
                    str(tiny_camvid), "--split", "test", "--widths", "0.25", "1.0", "--workers",
                    "0", "--output", str(tmp_path / "eval")])
    assert rc == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["results"]) == {"0.25", "1"}
    assert 0.0 <= metrics["results"]["1"]["miou"] <= 1.0
    assert "| 0.25 |" in (tmp_path / "eval" / "metrics.md").read_text()


STATE_KEYS = {"format", "model", "optimizer", "scheduler", "scaler", "iteration", "best", "rng",
              "config"}


def logged(out: Path, kind: str, after: int = 0) -> list[dict]:
    """Return the log records of one kind after an iteration, without the timing."""
    return [{k: v for k, v in r.items() if k != "it_per_s"} for r in read_log(out, kind)
            if r["iteration"] > after]


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_run(tiny_camvid: Path,
                                                          tmp_path: Path) -> None:
    # validation, snapshots and class weights on: the best score and the schedule carry over too
    extra = {"eval.interval": 2, "eval.max_images": 1, "runtime.snapshot_interval": 2,
             "distill.class_weights": "median_frequency"}
    full = train(load_config(None, tiny_overrides(tiny_camvid, tmp_path / "a", **extra)))
    part_cfg = load_config(None, tiny_overrides(tiny_camvid, tmp_path / "b", **extra))
    first = train(part_cfg, max_iterations=3)
    assert first["iteration"] == 3 and not (tmp_path / "b" / "final_model.pt").exists()
    stopped = load_train_state(tmp_path / "b" / "last.pt")
    # the checkpoint format older last.pt files were written in, which resume must keep reading
    assert set(stopped) == STATE_KEYS and stopped["iteration"] == 3
    # a fresh process would start from the command line: --resume reads the stored config
    assert train_main(["--resume", str(tmp_path / "b" / "last.pt")]) == 0
    resumed = load_train_state(tmp_path / "b" / "last.pt")
    assert resumed["iteration"] == 6
    for key, value in full["model"].state_dict().items():
        assert torch.equal(value, resumed["model"][key]), key
    # the same losses, LR and validation scores, iteration by iteration
    for kind in ("train", "eval"):
        assert logged(tmp_path / "b", kind, after=3) == logged(tmp_path / "a", kind, after=3)
    assert resumed["best"] == full["best"]
    snapshots = sorted(p.name for p in (tmp_path / "b" / "snapshots").iterdir())
    assert snapshots == sorted(p.name for p in (tmp_path / "a" / "snapshots").iterdir())
    assert snapshots == ["model_iter000002.pt", "model_iter000004.pt", "model_iter000006.pt"]


def test_non_finite_loss_stops_at_once(tiny_camvid: Path, tmp_path: Path) -> None:
    cfg = load_config(None, tiny_overrides(tiny_camvid, tmp_path / "nan", iterations=3,
                                           **{"optim.lr": 1e30, "schedule.warmup_iters": 0}))
    with pytest.raises(NonFiniteLossError, match="non-finite loss at iteration"):
        train(cfg)


def test_independent_mode_trains_a_plain_single_width_network(tiny_camvid: Path,
                                                              tmp_path: Path) -> None:
    cfg = load_config(None, tiny_overrides(tiny_camvid, tmp_path / "ind", iterations=2,
                                           **{"distill.mode": "independent",
                                              "distill.width": 0.5}))
    summary = train(cfg)
    assert summary["model"].config.widths == (0.5,)
    state = load_train_state(tmp_path / "ind" / "last.pt")
    assert state["config"]["model"]["widths"] == [0.5]
    assert list(read_log(tmp_path / "ind", "train")[0]["loss"]) == ["0.5"]


def test_cli_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "no_camvid"
    rc = train_main(["--config", str(Path(__file__).resolve().parents[1] / "training" / "configs"
                                     / "camvid_deeplabv3plus_r18.yaml"),
                     f"data.root={missing}", "model.pretrained=null",
                     f"output_dir={tmp_path / 'o'}"])
    assert rc == 2
    assert str(missing) in capsys.readouterr().err
    assert train_main(["--resume", str(tmp_path / "nothing.pt")]) == 2
    assert "nothing.pt" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    summary = train(load_config(None, overrides))
    model = summary["model"]
    torch.save({"params": {k: v.detach().clone() for k, v in model.named_parameters()},
                "state": {k: v.detach().clone() for k, v in model.state_dict().items()}},
               Path(out) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_process_gloo_ddp_stays_in_sync(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    out.mkdir()
    overrides = tiny_overrides(tiny_camvid, out, iterations=3,
                               **{"data.batch_size": 4, "eval.interval": 2,
                                  "eval.max_images": 1})
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(out)), nprocs=2, join=True)
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    # parameters are identical on both ranks (gradients were all-reduced at every width);
    # BN running statistics are per-rank (DDP broadcasts rank 0's before each forward)
    assert r0["params"].keys() == r1["params"].keys()
    for key in r0["params"]:
        assert torch.equal(r0["params"][key], r1["params"][key]), key
    state = load_train_state(out / "last.pt")  # written by rank 0 only, unwrapped keys
    assert state["iteration"] == 3
    assert not any(k.startswith("module.") for k in state["model"])
    for key, value in r0["state"].items():
        assert torch.equal(value, state["model"][key]), key
    # and every width's BN and the shared weights moved away from their initialisation
    torch.manual_seed(0)  # the trainer seeds with cfg.seed (0) right before building the model
    fresh = build_model(load_config(None, overrides).model).state_dict()
    for key in ("head.classifier.weight", "backbone.features.0.1.bn.0.weight",
                "backbone.features.0.1.bn.3.weight"):
        assert not torch.equal(fresh[key], r0["params"][key]), key


def test_sigterm_saves_last_pt_at_an_iteration_boundary(tiny_camvid: Path, tmp_path: Path) -> None:
    import signal
    import threading

    out = tmp_path / "term"
    cfg = load_config(None, tiny_overrides(tiny_camvid, out, iterations=500,
                                           **{"runtime.checkpoint_interval": 1000}))
    done = threading.Event()

    def terminate_after_first_iteration() -> None:
        while not done.is_set():
            if (out / "train_log.jsonl").exists():  # written after iteration 1
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=terminate_after_first_iteration, daemon=True)
    killer.start()
    try:
        summary = train(cfg)
    finally:
        done.set()
        killer.join()
    assert summary["interrupted"] and 0 < summary["iteration"] < 500
    state = load_train_state(out / "last.pt")
    assert state["iteration"] == summary["iteration"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_loader_workers_saves_last(tiny_camvid: Path,
                                                                     tmp_path: Path) -> None:
    """As a scheduler or systemd stops a job: SIGTERM to every process, loader workers included."""
    import subprocess
    import sys

    from slimseg_ros.training.config import save_config

    out = tmp_path / "group"
    cfg_file = tmp_path / "group.yaml"
    save_config(load_config(None, tiny_overrides(tiny_camvid, out, iterations=100000,
                                                 **{"data.workers": 1})), cfg_file)
    proc = subprocess.Popen([sys.executable, "-m", "slimseg_ros.training.train", "--config",
                             str(cfg_file)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "train_log.jsonl").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.05)
        assert (out / "train_log.jsonl").exists(), "training did not start in time"
        os.killpg(proc.pid, signal.SIGTERM)  # main process and its DataLoader worker alike
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "stopped by SIGTERM" in output and "killed by signal" not in output
    state = load_train_state(out / "last.pt")
    assert state["iteration"] >= 1


def test_gradient_accumulation_and_clipping_run(tiny_camvid: Path, tmp_path: Path) -> None:
    cfg = load_config(None, tiny_overrides(tiny_camvid, tmp_path / "acc", iterations=2,
                                           **{"optim.accum_steps": 2, "optim.grad_clip": 1.0,
                                              "distill.mode": "largest",
                                              "distill.boundary": False,
                                              "optim.bn_momentum": 0.05}))
    summary = train(cfg)
    assert summary["iteration"] == 2
    bns = [m for m in summary["model"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.05 for m in bns)
    records = read_log(tmp_path / "acc", "train")
    assert all(r["loss"]["0.5"]["boundary"] == 0.0 and r["loss"]["0.5"]["kd"] > 0 for r in records)


def test_resume_refuses_a_different_network(tiny_camvid: Path, tmp_path: Path) -> None:
    out = tmp_path / "mm"
    train(load_config(None, tiny_overrides(tiny_camvid, out, iterations=1)))
    other = load_config(None, tiny_overrides(tiny_camvid, out, iterations=2,
                                             **{"model.head_channels": 64}))
    with pytest.raises(ConfigError, match="model.head_channels"):
        train(other, resume=out / "last.pt")


def test_resume_followed_by_overrides_resumes_from_the_output_dir(tiny_camvid: Path,
                                                                  tmp_path: Path) -> None:
    """``--config C --resume key=value ...``: the override is not taken for the last.pt path."""
    from slimseg_ros.training.config import save_config

    out = tmp_path / "run"
    overrides = tiny_overrides(tiny_camvid, out, iterations=4)
    train(load_config(None, overrides), max_iterations=2)
    cfg_file = tmp_path / "run.yaml"
    save_config(load_config(None, overrides), cfg_file)
    assert train_main(["--config", str(cfg_file), "--resume", f"output_dir={out}"]) == 0
    assert load_train_state(out / "last.pt")["iteration"] == 4
