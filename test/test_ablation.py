"""The ablation table's arithmetic: paired bootstrap intervals, the decision rule, CPU cost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimseg_ros.training import ablation
from slimseg_ros.training.metrics import mean_iou


def _confusions(rng: np.random.Generator, images: int, classes: int, accuracy: float
                ) -> np.ndarray:
    """Per-image confusion matrices of a classifier right with probability ``accuracy``."""
    out = np.zeros((images, classes, classes), dtype=np.int64)
    for i in range(images):
        truth = rng.integers(0, classes, 400)
        wrong = rng.random(400) > accuracy
        pred = np.where(wrong, (truth + rng.integers(1, classes, 400)) % classes, truth)
        np.add.at(out[i], (truth, pred), 1)
    return out


def test_bootstrap_of_a_model_against_itself_is_zero():
    conf = _confusions(np.random.default_rng(0), 30, 4, 0.7)
    diff, lo, hi = ablation.paired_bootstrap(conf, conf, samples=200)
    assert diff == lo == hi == 0.0


def test_bootstrap_separates_a_clearly_better_model_and_not_a_noisy_twin():
    rng = np.random.default_rng(1)
    weak = _confusions(rng, 40, 4, 0.6)
    strong = _confusions(rng, 40, 4, 0.8)
    twin = _confusions(rng, 40, 4, 0.6)
    diff, lo, hi = ablation.paired_bootstrap(strong, weak, samples=300)
    assert diff == pytest.approx(mean_iou(strong.sum(0)) - mean_iou(weak.sum(0)))
    assert 0 < lo < diff < hi
    _, lo, hi = ablation.paired_bootstrap(twin, weak, samples=300)
    assert lo < 0 < hi


def test_bootstrap_refuses_counts_of_different_images():
    rng = np.random.default_rng(2)
    with pytest.raises(ablation.AblationError, match="differ in shape"):
        ablation.paired_bootstrap(_confusions(rng, 5, 3, 0.5), _confusions(rng, 6, 3, 0.5))


def _time_file(path, user, system):
    path.write_text(f"\tCommand being timed: \"slimseg-train\"\n\tUser time (seconds): {user}\n"
                    f"\tSystem time (seconds): {system}\n")


def test_cpu_seconds_leave_out_an_invocation_whose_timer_died(tmp_path):
    (tmp_path / "train_log.jsonl").write_text(
        "\n".join(json.dumps({"type": "train", "iteration": i}) for i in (10, 20, 30)) + "\n")
    (tmp_path / "train.log").write_text("iter 10\nresumed from x/last.pt at iteration 10\n")
    (tmp_path / "time_train_100.txt").write_text("")  # killed with the first invocation
    _time_file(tmp_path / "time_train_200.txt", 50.0, 10.0)
    seconds, iterations = ablation.cpu_seconds(tmp_path)
    assert (seconds, iterations) == (60.0, 20)
    _time_file(tmp_path / "time_train_300.txt", 1.0, 1.0)
    with pytest.raises(ablation.AblationError, match="3 time files but 2 training starts"):
        ablation.cpu_seconds(tmp_path)


def test_a_run_trained_without_the_timer_has_no_cpu_time_but_its_wall_time(tmp_path):
    (tmp_path / "train_log.jsonl").write_text("\n".join(
        json.dumps({"type": "train", "iteration": i, "it_per_s": r})
        for i, r in ((10, 2.0), (20, 0.5), (30, 1.0))) + "\n")
    (tmp_path / "train.log").write_text("resumed from x/last.pt at iteration 10\n")
    assert ablation.cpu_seconds(tmp_path) == (None, 0)  # not measured, not zero
    assert ablation.wall_seconds_per_iteration(tmp_path) == pytest.approx(1.0)


def _run(name, row, seed, widths, conf, rng):
    per = {"confusion": {}, "boundary": {}}
    figures = {}
    for w in widths:
        c = conf[w]
        per["confusion"][w] = c
        per["boundary"][w] = rng.integers(1, 50, (c.shape[0], 4))
        figures[w] = {"miou": mean_iou(c.sum(0)), "boundary_f": 0.5, "pixel_accuracy": 0.8,
                      "per_class_iou": {}}
    return {"name": name, "row": row, "seed": seed, "test": figures, "val": figures,
            "train_cpu_seconds_per_iteration": 1.0,
            "per_image": {w: {"confusion": per["confusion"][w], "boundary": per["boundary"][w]}
                          for w in widths}}


def test_rule_needs_both_the_interval_and_the_seed_spread():
    rng = np.random.default_rng(3)
    weak, strong = _confusions(rng, 40, 4, 0.6), _confusions(rng, 40, 4, 0.8)
    runs = {"a0": _run("a0", "a", 0, ["1"], {"1": strong}, rng),
            "e0": _run("e0", "e", 0, ["1"], {"1": weak}, rng)}
    (only,) = ablation.comparisons(runs, {})
    assert only["verdict"].startswith("interval excludes 0; seed spread not yet")
    real_gap = only["diff"]
    assert ablation.comparisons(runs, {"1": real_gap / 2})[0]["verdict"] == "real"
    assert ablation.comparisons(runs, {"1": real_gap * 2})[0]["verdict"] == "not real"
    text = ablation.markdown(runs)
    assert "| (b) stepwise KD, no boundary loss | not run" in text
    assert "not measured yet" in text
