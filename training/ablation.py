"""
The ablation table: one metrics file per run, paired bootstrap intervals, one plot.

    python -m slimseg_ros.training.ablation collect RUN_DIR --name a_seed0 --row a \
        --out docs/ablation
    python -m slimseg_ros.training.ablation report docs/ablation \
        [--plot docs/ablation/miou_vs_width.png]

``collect`` reads a finished run folder (``config.yaml``, ``train_log.jsonl``, ``train.log``,
``commit.txt``, ``time_train_*.txt`` from ``/usr/bin/time -v``, and the ``eval_test`` /
``eval_val`` folders written by ``slimseg-eval --output``, test with ``--per-image``) into
``<name>.json`` and ``<name>_test_per_image.npz``. ``report`` applies the decision rule of
``docs/ablation/README.md``: a difference is real only if it exceeds the seed spread and its paired
per-image bootstrap 95% interval excludes zero.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .metrics import iou_per_class

ROWS = {
    "a": "SlimSeg (stepwise KD + boundary loss)",
    "b": "stepwise KD, no boundary loss",
    "c": "largest-teacher KD + boundary loss",
    "d": "no KD (joint training) + boundary loss",
    "e": "independent plain networks, one per width",
}
BOOTSTRAP_SAMPLES = 2000


class AblationError(ValueError):
    """A run folder or metrics folder that cannot be read into the table."""


def width_key(w: float) -> str:
    return f"{float(w):g}"


# ---------------------------------------------------------------------------------------------
# collect


def cpu_seconds(run: Path) -> tuple[float | None, int]:
    """
    Training CPU seconds (user + sys) and the iterations they cover.

    Each ``slimseg-train`` invocation of the run wrote one ``time_train_<t>.txt`` (in order of
    ``<t>``) and, when it resumed, one "resumed from ... at iteration N" line in ``train.log``;
    an invocation whose time file is empty (the timer was killed with it) is left out, with its
    iterations. A run trained without the timer has no time files: not measured, ``(None, 0)``.
    """
    files = sorted(run.glob("time_train_*.txt"), key=lambda p: int(re.findall(r"\d+", p.name)[-1]))
    if not files:
        return None, 0
    log = (run / "train.log").read_text(errors="replace") if (run / "train.log").exists() else ""
    starts = [0] + [int(m) for m in re.findall(r"resumed from \S+ at iteration (\d+)", log)]
    final = last_iteration(run)
    if len(starts) != len(files):
        raise AblationError(f"{run}: {len(files)} time files but {len(starts)} training starts "
                            f"in train.log")
    ends = starts[1:] + [final]
    total, iterations = 0.0, 0
    for path, start, end in zip(files, starts, ends):
        text = path.read_text()
        user = re.search(r"User time \(seconds\): ([\d.]+)", text)
        system = re.search(r"System time \(seconds\): ([\d.]+)", text)
        if not (user and system):
            continue
        total += float(user.group(1)) + float(system.group(1))
        iterations += end - start
    return (total if iterations else None), iterations


def wall_seconds_per_iteration(run: Path) -> float | None:
    """Median wall-clock seconds per iteration over the run's logged training intervals."""
    rates = []
    with open(run / "train_log.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "train" and rec.get("it_per_s"):
                rates.append(1.0 / float(rec["it_per_s"]))
    return float(np.median(rates)) if rates else None


def last_iteration(run: Path) -> int:
    last = 0
    with open(run / "train_log.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "train":
                last = max(last, int(rec["iteration"]))
    return last


def read_eval(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.exists():
        raise AblationError(f"{path} is missing: run slimseg-eval --output {folder}")
    results = json.loads(path.read_text())["results"]
    return {w: {"miou": r["miou"], "boundary_f": r.get("boundary_f"),
                "pixel_accuracy": r["pixel_accuracy"], "per_class_iou": r["per_class_iou"]}
            for w, r in results.items()}


def collect(run: str | Path, name: str, row: str, out: str | Path) -> Path:
    """Write ``<out>/<name>.json`` (and the per-image test counts) for one finished run."""
    run, out = Path(run), Path(out)
    if row not in ROWS:
        raise AblationError(f"row must be one of {sorted(ROWS)}, got {row!r}")
    if not (run / "final_model.pt").exists():
        raise AblationError(f"{run} has no final_model.pt: the run has not finished")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    per_image = run / "eval_test" / "per_image.npz"
    if not per_image.exists():
        raise AblationError(f"{per_image} is missing: evaluate test with --per-image")
    seconds, covered = cpu_seconds(run)
    iterations = last_iteration(run)
    payload = {
        "name": name, "row": row, "description": ROWS[row],
        "config": "training/configs/camvid_ablation_efficientnet_lite0.yaml",
        "distill": cfg["distill"], "seed": cfg["seed"], "iterations": iterations,
        "schedule": cfg["schedule"], "batch_size": cfg["data"]["batch_size"],
        "crop_size": cfg["data"]["crop_size"],
        "commit": (run / "commit.txt").read_text().strip(),
        "train_cpu_seconds": seconds, "train_cpu_seconds_iterations": covered,
        "train_cpu_seconds_per_iteration": (seconds / covered) if seconds else None,
        "train_wall_seconds_per_iteration": wall_seconds_per_iteration(run),
        "test": read_eval(run / "eval_test"), "val": read_eval(run / "eval_val"),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    with np.load(per_image) as data:
        arrays = {k: data[k] for k in data.files}
    arrays = {k: (v.astype(np.int32) if k != "widths" else v) for k, v in arrays.items()}
    np.savez_compressed(out / f"{name}_test_per_image.npz", **arrays)
    return out / f"{name}.json"


# ---------------------------------------------------------------------------------------------
# report


def load_runs(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every ``<name>.json`` of the folder with its per-image counts (``per_image``)."""
    runs = {}
    for path in sorted(Path(folder).glob("*.json")):
        run = json.loads(path.read_text())
        npz = path.with_name(f"{run['name']}_test_per_image.npz")
        with np.load(npz) as data:
            run["per_image"] = {width_key(w): {"confusion": data["confusion"][i].astype(np.int64),
                                               "boundary": data["boundary"][i].astype(np.int64)}
                                for i, w in enumerate(data["widths"])}
        runs[run["name"]] = run
    return runs


def miou_of(confusion: np.ndarray) -> float:
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def paired_bootstrap(conf_a: np.ndarray, conf_b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """
    mIoU(a) - mIoU(b) over the whole set and its paired per-image bootstrap 95% interval.

    ``conf_*``: images x C x C confusion matrices of the same images in the same order. Each
    resample draws image indices with replacement, the same indices for both models.
    """
    if conf_a.shape != conf_b.shape:
        raise AblationError(f"per-image counts differ in shape: {conf_a.shape} vs {conf_b.shape}")
    n = conf_a.shape[0]
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for s in range(samples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        diffs[s] = (miou_of(np.tensordot(counts, conf_a, axes=1))
                    - miou_of(np.tensordot(counts, conf_b, axes=1)))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return miou_of(conf_a.sum(0)) - miou_of(conf_b.sum(0)), float(lo), float(hi)


def row_widths(runs: dict[str, dict], row: str, seed: int) -> dict[str, dict[str, Any]]:
    """Width -> the run and its figures for ``row`` at ``seed`` (row e: one run per width)."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs.values():
        if run["row"] != row or run["seed"] != seed:
            continue
        for w in run["test"]:
            out[w] = run
    return out


def seed_spread(runs: dict[str, dict]) -> dict[str, float]:
    """Width -> |mIoU(seed 0) - mIoU(seed 1)| (test, in points), largest over rows a and e."""
    spread: dict[str, float] = {}
    for row in ("a", "e"):
        s0, s1 = row_widths(runs, row, 0), row_widths(runs, row, 1)
        for w in set(s0) & set(s1):
            d = 100 * abs(s0[w]["test"][w]["miou"] - s1[w]["test"][w]["miou"])
            spread[w] = max(spread.get(w, 0.0), d)
    return spread


def comparisons(runs: dict[str, dict], spread: dict[str, float]) -> list[dict[str, Any]]:
    """Row a against each other row, per width it shares, with the decision rule applied."""
    ours = row_widths(runs, "a", 0)
    fallback = max(spread.values()) if spread else None
    result = []
    for other in ("e", "b", "c", "d"):
        theirs = row_widths(runs, other, 0)
        for w in sorted(set(ours) & set(theirs), key=float):
            diff, lo, hi = paired_bootstrap(ours[w]["per_image"][w]["confusion"],
                                            theirs[w]["per_image"][w]["confusion"])
            noise = spread.get(w, fallback)
            excludes_zero = lo > 0 or hi < 0
            if noise is None:
                verdict = "interval excludes 0; seed spread not yet measured" if excludes_zero \
                    else "within the bootstrap interval of 0"
            else:
                verdict = "real" if excludes_zero and abs(100 * diff) > noise else "not real"
            result.append({"row": other, "width": w, "diff": 100 * diff, "lo": 100 * lo,
                           "hi": 100 * hi, "seed_spread": noise, "verdict": verdict})
    return result


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def markdown(runs: dict[str, dict]) -> str:
    """
    Render the README table, the seed spread, the comparisons and the training cost.

    The table's rows a-e hold test mIoU per width, boundary F1 at 0.25 and 1.0 and the val mean.
    """
    widths = ["0.25", "0.5", "0.75", "1"]
    lines = ["| row | " + " | ".join(f"mIoU {w}" for w in widths)
             + " | BF1 0.25 | BF1 1.0 | val mIoU (mean) |",
             "|---|" + "---:|" * (len(widths) + 3)]
    for row, label in ROWS.items():
        per = row_widths(runs, row, 0)
        if not per:
            lines.append(f"| ({row}) {label} | " + " | ".join("not run" for _ in widths)
                         + " | - | - | - |")
            continue
        val = [per[w]["val"][w]["miou"] for w in widths if w in per]
        lines.append(
            f"| ({row}) {label} | "
            + " | ".join(_pct(per[w]["test"][w]["miou"]) if w in per else "-" for w in widths)
            + f" | {_pct(per['0.25']['test']['0.25']['boundary_f']) if '0.25' in per else '-'}"
            + f" | {_pct(per['1']['test']['1']['boundary_f']) if '1' in per else '-'}"
            + f" | {_pct(float(np.mean(val))) if len(val) == len(widths) else '-'} |")
    spread = seed_spread(runs)
    lines += ["", "Seed spread (|seed 0 - seed 1|, test mIoU points): "
              + (", ".join(f"width {w}: {spread[w]:.1f}" for w in sorted(spread, key=float))
                 if spread else "not measured yet (row f not run)") + "."]
    lines += ["", "| comparison | width | difference (points) | paired bootstrap 95% interval "
              "| seed spread | verdict |", "|---|---:|---:|---|---:|---|"]
    for c in comparisons(runs, spread):
        noise = "-" if c["seed_spread"] is None else f"{c['seed_spread']:.1f}"
        lines.append(f"| (a) - ({c['row']}) | {c['width']} | {c['diff']:+.1f} | "
                     f"[{c['lo']:+.1f}, {c['hi']:+.1f}] | {noise} | {c['verdict']} |")
    a = row_widths(runs, "a", 0)
    e = row_widths(runs, "e", 0)
    if a and len(e) == len(widths):
        a_cost = next(iter(a.values())).get("train_cpu_seconds_per_iteration")
        e_costs = [e[w].get("train_cpu_seconds_per_iteration") for w in widths]
        e_cost = sum(e_costs) if None not in e_costs else None
        if a_cost and e_cost:
            each = ", ".join(f"{w}: {e[w]['train_cpu_seconds_per_iteration']:.1f}" for w in widths)
            lines += ["", f"Training cost: row (a) {a_cost:.1f} CPU-seconds per iteration (all "
                      f"four widths in one model); the four row (e) networks together "
                      f"{e_cost:.1f} ({each})."]
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict], path: str | Path) -> None:
    """Plot mIoU (test) against width, one line per row (seed 0), row e as markers per width."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row, label in ROWS.items():
        per = row_widths(runs, row, 0)
        if not per:
            continue
        ws = sorted(per, key=float)
        ax.plot([float(w) for w in ws], [100 * per[w]["test"][w]["miou"] for w in ws],
                marker="o", linestyle="--" if row == "e" else "-", label=f"({row}) {label}")
    ax.set_xlabel("width")
    ax.set_ylabel("CamVid test mIoU (%)")
    ax.set_xticks([0.25, 0.5, 0.75, 1.0])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("SlimSeg ablation, 600 iterations, scored at the last iteration", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slimseg_ros.training.ablation",
                                     description=__doc__.strip().split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="one finished run folder into <out>/<name>.json")
    c.add_argument("run")
    c.add_argument("--name", required=True)
    c.add_argument("--row", required=True, choices=sorted(ROWS))
    c.add_argument("--out", default="docs/ablation")
    r = sub.add_parser("report", help="table, intervals and plot from a metrics folder")
    r.add_argument("folder", nargs="?", default="docs/ablation")
    r.add_argument("--plot", help="PNG of mIoU against width (default: FOLDER/miou_vs_width.png)")
    args = parser.parse_args(argv)
    try:
        if args.command == "collect":
            print(f"wrote {collect(args.run, args.name, args.row, args.out)}")
            return 0
        runs = load_runs(args.folder)
        if not runs:
            raise AblationError(f"no metrics files in {args.folder}")
        text = markdown(runs)
        print(text)
        (Path(args.folder) / "results.md").write_text(text)
        plot(runs, args.plot or Path(args.folder) / "miou_vs_width.png")
    except (AblationError, FileNotFoundError, KeyError) as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
