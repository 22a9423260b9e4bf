"""
Width x input resolution: accuracy and latency of every (width, input size) point, and its front.

    python -m slimseg_ros.tools.resolution_sweep --root data/CamVid [--split val]
        [--scales 1.0 0.875 0.75 0.625 0.5] [--checkpoint FILE] [--backend openvino]
        [--rounds 3] [--iters 10] [--threads 2] --output docs/resolution

For every input scale of the checkpoint's input size (sides rounded to a multiple of 8, as
``--input-size`` rounds them) it runs ``slimseg-eval --input-size`` on the split (every width;
masks scored at the label size, what the node publishes) and ``slimseg-bench --backends
<backend> --input-size`` on frames of the label size (the same graphs, fresh processes, rounds
taking turns). It writes ``sweep.json`` (every point), ``sweep.md`` (the table, the points on
the Pareto front marked) and ``sweep.png`` (mIoU against latency p50, every point, the front
drawn). A point is on the front when no other point is at least as accurate and at least as
fast, and better in one. Choose on val, never on test; this tool refuses ``--split test``.

``--write-ladder TARGET`` stores the front's reduced-input points with the model as its ladder
(the node's operating points): TARGET is a ``.pt`` checkpoint (``NAME.ladder.json`` beside it)
or a model bundle (a graph per point per runtime, exported from ``--checkpoint``, default the
packaged ``default.pt``, which must be the bundle's source). ``--from SWEEP_JSON`` takes the
points from a finished sweep instead of measuring:

    python -m slimseg_ros.tools.resolution_sweep --from docs/resolution/sweep.json \
        --write-ladder models/default_bundle
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..inference.backends import CHOICES as BACKEND_CHOICES
from ..inference.engine import round_input_size
from ..resources import default_checkpoint
from .common import cpu_name, format_size, markdown_table

DEFAULT_SCALES = (1.0, 0.875, 0.75, 0.625, 0.5)


def input_sizes(base: tuple[int, int], scales: list[float]) -> dict[float, tuple[int, int]]:
    """Return each scale's input size: ``scale`` x ``base`` per side, rounded to 8."""
    return {s: round_input_size(base[0] * s, base[1] * s) for s in scales}


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the points no other point beats on both mIoU (higher) and latency (lower)."""
    front = []
    for p in points:
        beaten = any(q is not p and q["miou"] >= p["miou"] and q["p50_ms"] <= p["p50_ms"]
                     and (q["miou"] > p["miou"] or q["p50_ms"] < p["p50_ms"]) for q in points)
        if not beaten:
            front.append(p)
    return sorted(front, key=lambda p: p["p50_ms"])


def evaluate_at(checkpoint: Path, root: Path, split: str, size: tuple[int, int], backend: str,
                out: Path) -> dict[str, Any]:
    """
    Run ``slimseg-eval --input-size`` (every width) and return its metrics.json.

    A metrics.json already in ``out`` for the same checkpoint, split, backend and input size is
    reused: a sweep stopped half-way resumes where it stopped.
    """
    from ..training.evaluate import main as eval_main

    done = out / "metrics.json"
    if done.is_file():
        try:
            found = json.loads(done.read_text())
        except ValueError:
            found = {}
        if (found.get("checkpoint") == str(checkpoint) and found.get("split") == split
                and found.get("backend") == backend
                and found.get("input_size") == list(size)):
            print(f"  reusing {done}", flush=True)
            return found
    out.mkdir(parents=True, exist_ok=True)
    argv = ["--checkpoint", str(checkpoint), "--dataset", "camvid", "--root", str(root),
            "--split", split, "--input-size", str(size[0]), str(size[1]),
            "--backend", backend, "--workers", "2", "--output", str(out)]
    if eval_main(argv) != 0:
        raise SystemExit(f"slimseg-eval failed at input size {format_size(*size)}")
    return json.loads((out / "metrics.json").read_text())


def time_at(checkpoint: Path, frame: tuple[int, int], size: tuple[int, int], backend: str,
            rounds: int, iters: int, threads: int) -> dict[str, Any]:
    """Time every width's graph at input ``size`` on frames of ``frame`` (fresh processes)."""
    from .backend_bench import compare_backends

    result = compare_backends(str(checkpoint), [backend], frame, threads, iters, 2,
                              log=lambda _msg: None, rounds=rounds, input_size=size,
                              reference=False)
    return result


def sweep(args: argparse.Namespace, checkpoint: Path) -> dict[str, Any]:
    """Measure every scale; return every point with its figures."""
    from ..models.checkpoint import load_checkpoint

    _, info = load_checkpoint(checkpoint, map_location="cpu")
    if not info.input_size:
        raise SystemExit(f"checkpoint {checkpoint} records no input size to scale")
    base = tuple(int(v) for v in info.input_size)
    sizes = input_sizes(base, args.scales)
    points = []
    for scale, size in sizes.items():
        print(f"scale {scale:g}: input {format_size(*size)} ...", flush=True)
        metrics = evaluate_at(checkpoint, args.root, args.split, size, args.backend,
                              args.output / f"eval_{size[0]}x{size[1]}")
        if args.eval_only:
            continue
        timing = time_at(checkpoint, base, size, args.backend, args.rounds, args.iters,
                         args.threads)
        latency = timing["backends"][args.backend]["latency"]
        for key, m in metrics["results"].items():
            lat = latency[key]
            points.append({"width": float(key), "scale": scale, "input_size": list(size),
                           "miou": 100.0 * m["miou"],
                           "boundary_f": (100.0 * m["boundary_f"]
                                          if m.get("boundary_f") is not None else None),
                           "p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"],
                           "gflops": timing["flops"][key] / 1e9})
    front = pareto_front(points)
    for p in points:
        p["on_front"] = any(p is q for q in front)
    return {"checkpoint": checkpoint.name, "split": args.split, "backend": args.backend,
            "frame_size": list(base), "cpu": cpu_name(), "rounds": args.rounds,
            "iters": args.iters, "threads": args.threads, "points": points,
            "reduced_scale_on_front": any(p["on_front"] and p["scale"] != 1.0 for p in points)}


def table(result: dict[str, Any]) -> str:
    """Return the Markdown table of every point, fastest first, the front marked."""
    rows = sorted(result["points"], key=lambda p: p["p50_ms"])
    return markdown_table(
        ("width", "input size", "scale", "mIoU %", "boundary F %", "GFLOPs",
         "latency p50 / p90 ms", "on the front"),
        [(f"{p['width']:g}", format_size(*p["input_size"]), f"{p['scale']:g}",
          f"{p['miou']:.1f}", "-" if p["boundary_f"] is None else f"{p['boundary_f']:.1f}",
          f"{p['gflops']:.2f}", f"{p['p50_ms']:.1f} / {p['p90_ms']:.1f}",
          "yes" if p["on_front"] else "") for p in rows])


def plot(result: dict[str, Any], path: Path) -> None:
    """Draw mIoU against latency p50: a marker per width, labelled by scale; the front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    widths = sorted({p["width"] for p in result["points"]})
    for w, marker in zip(widths, "os^Dv"):
        pts = sorted((p for p in result["points"] if p["width"] == w), key=lambda p: p["p50_ms"])
        ax.plot([p["p50_ms"] for p in pts], [p["miou"] for p in pts], marker=marker,
                linestyle=":", label=f"width {w:g}")
        for p in pts:
            ax.annotate(f"{p['scale']:g}", (p["p50_ms"], p["miou"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    front = sorted((p for p in result["points"] if p["on_front"]), key=lambda p: p["p50_ms"])
    ax.step([p["p50_ms"] for p in front], [p["miou"] for p in front], where="post",
            color="black", linewidth=1.2, label="Pareto front")
    ax.set_xlabel(f"latency p50, ms ({result['backend']}, frames "
                  f"{format_size(*result['frame_size'])}, {result['cpu']})")
    ax.set_ylabel(f"mIoU % (CamVid {result['split']})")
    ax.set_title("width x input scale (labels: scale of the input size)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_ladder(target: Path, result: dict[str, Any], where: str,
                 checkpoint: Path | None) -> str:
    """Store the sweep's front as ``target``'s ladder (a bundle or a .pt); say what was written."""
    from ..inference.bundle import is_bundle, read_bundle
    from ..inference.ladder_export import (checkpoint_facts, ladder_from_sweep,
                                           write_bundle_ladder, write_checkpoint_ladder)

    from ..inference.bundle import BundleError
    from ..inference.ladder import LadderError

    front = pareto_front(result["points"])
    if is_bundle(target):
        meta = read_bundle(target, check_ladder=False)
        source = meta.get("source") if isinstance(meta.get("source"), dict) else {}
        if not meta.get("input_size") or not source.get("checkpoint"):
            raise BundleError(f"bundle {target} records no input size or no source checkpoint: "
                              f"a ladder needs both (export it again with slimseg-export)")
        spec = ladder_from_sweep(result, front, where, source["checkpoint"],
                                 meta["widths"], meta["input_size"])
        write_bundle_ladder(target, spec, checkpoint, log=lambda msg: print(f"  {msg}"))
        written = f"bundle {target} ({target / 'bundle.json'} and its ladder graphs)"
    else:
        widths, size = checkpoint_facts(target)
        if not size:
            raise LadderError(f"{target} records no input size: a ladder's points are reduced "
                              f"input sizes of it")
        spec = ladder_from_sweep(result, front, where, target.name, widths, size)
        written = str(write_checkpoint_ladder(target, spec))
    return (f"ladder of {len(spec.points)} points ({spec.describe()}) measured on "
            f"{spec.measured_on} -> {written}")


def main(argv: list[str] | None = None) -> int:
    """Run the sweep (or read one), print the table, write the files and the ladder."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=None,
                   help="CamVid root folder (needed unless --from)")
    p.add_argument("--split", default="val", help="never test: the choice is made here")
    p.add_argument("--scales", type=float, nargs="+", default=list(DEFAULT_SCALES))
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--backend", default="openvino", choices=BACKEND_CHOICES)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path, default=None,
                   help="folder for the files; evaluations found there are reused (needed "
                        "unless --from)")
    p.add_argument("--eval-only", action="store_true",
                   help="only the evaluations (accuracy needs no quiet machine; timing does)")
    p.add_argument("--write-ladder", type=Path, metavar="TARGET", default=None,
                   help="store the front's reduced-input points as the ladder of TARGET: a "
                        "bundle folder or a .pt checkpoint")
    p.add_argument("--from", dest="from_sweep", type=Path, metavar="SWEEP_JSON", default=None,
                   help="with --write-ladder: take the points from this finished sweep.json "
                        "instead of measuring")
    args = p.parse_args(argv)
    if args.from_sweep is not None:
        if args.write_ladder is None:
            p.error("--from SWEEP_JSON needs --write-ladder TARGET")
        return ladder_main(args.from_sweep, args.write_ladder, args.checkpoint)
    if args.root is None or args.output is None:
        p.error("--root and --output are needed to measure (or give --from SWEEP_JSON)")
    if args.write_ladder is not None and args.eval_only:
        p.error("--write-ladder needs the timings: leave out --eval-only")
    if "test" in args.split.split("+"):
        p.error("--split test: the operating points are chosen on val, never on test")
    if not all(0 < s <= 1 for s in args.scales) or args.rounds < 1 or args.iters < 1:
        p.error("--scales must be in (0, 1], --rounds and --iters >= 1")
    checkpoint = (args.checkpoint or default_checkpoint()).resolve()
    args.output.mkdir(parents=True, exist_ok=True)
    result = sweep(args, checkpoint)
    if args.eval_only:
        print(f"evaluations in {args.output}; run again without --eval-only to time them")
        return 0
    text = table(result)
    print(text)
    (args.output / "sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output / "sweep.md").write_text(text)
    plot(result, args.output / "sweep.png")
    print(f"reduced-scale points on the front: {result['reduced_scale_on_front']}; wrote "
          f"{args.output / 'sweep.json'}, sweep.md, sweep.png")
    if args.write_ladder is not None:
        return ladder_main(args.output / "sweep.json", args.write_ladder, args.checkpoint)
    return 0


def ladder_main(sweep_json: Path, target: Path, checkpoint: Path | None) -> int:
    """``--write-ladder``: read the sweep, write the ladder, say what was written."""
    from ..inference.backends import BackendError

    try:
        result = json.loads(sweep_json.read_text())
        if not isinstance(result, dict):
            raise ValueError(f"{sweep_json} is not a sweep (a JSON object)")
        print(write_ladder(target, result, str(sweep_json), checkpoint))
    except (BackendError, ValueError, OSError, KeyError) as exc:  # Bundle/Ladder/Checkpoint
        message = (f"{sweep_json} is not a sweep (no {exc} where one was expected)"
                   if isinstance(exc, KeyError) else str(exc))
        print(f"resolution_sweep: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
