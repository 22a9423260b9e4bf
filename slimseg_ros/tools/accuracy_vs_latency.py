"""
Accuracy beside cost per width: ``slimseg-eval`` metrics.json joined with ``slimseg-bench`` JSON.

    python -m slimseg_ros.tools.accuracy_vs_latency --metrics runs/x/test/metrics.json \
        --bench bench.json --size 360x480 --plot docs/accuracy_vs_latency.png

Prints a Markdown table (width, mIoU, boundary F, GFLOPs, engine latency p50/p90) and draws
mIoU against latency, one point per width.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..widths import find_width
from .common import format_size, markdown_table, size_arg


def join(metrics: dict, bench: dict, size: tuple[int, int]) -> list[dict]:
    """One row per width present in both files (latency at ``size``)."""
    by_width = {float(k): m for k, m in metrics["results"].items()}
    rows = []
    for r in bench["results"]:
        if tuple(r["size"]) != size:
            continue
        w = find_width(tuple(by_width), r["width"])
        if w is None:
            continue
        m = by_width[w]
        rows.append({"width": r["width"], "miou": 100 * m["miou"],
                     "boundary_f": 100 * m["boundary_f"] if m.get("boundary_f") is not None
                     else float("nan"),
                     "gflops": r["gflops"], "p50": r["engine_ms"]["p50"],
                     "p90": r["engine_ms"]["p90"]})
    if not rows:
        raise SystemExit(f"no width is in both files at size {format_size(*size)}")
    return sorted(rows, key=lambda row: row["width"])


def main(argv: list[str] | None = None) -> int:
    """Print the joined table and draw the plot."""
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    p.add_argument("--metrics", required=True, help="metrics.json written by slimseg-eval")
    p.add_argument("--bench", required=True, help="JSON written by slimseg-bench --json")
    p.add_argument("--size", type=size_arg, default=(360, 480), metavar="HxW",
                   help="HxW of the bench rows to use (default 360x480)")
    p.add_argument("--plot", help="PNG to write")
    args = p.parse_args(argv)
    h, w = args.size
    rows = join(json.loads(Path(args.metrics).read_text()),
                json.loads(Path(args.bench).read_text()), (h, w))
    print(markdown_table(("width", "mIoU %", "boundary F %", "GFLOPs", "latency p50 / p90 ms"),
                         [(f"{r['width']:g}", f"{r['miou']:.1f}", f"{r['boundary_f']:.1f}",
                           f"{r['gflops']:.2f}", f"{r['p50']:.1f} / {r['p90']:.1f}")
                          for r in rows], "r"))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot([r["p50"] for r in rows], [r["miou"] for r in rows], "o-")
        for r in rows:
            ax.annotate(f"w={r['width']:g}", (r["p50"], r["miou"]), textcoords="offset points",
                        xytext=(5, -12))
        ax.set_xlabel(f"latency p50 (ms, {format_size(h, w)}, "
                      f"{json.loads(Path(args.bench).read_text())['meta']['device']})")
        ax.set_ylabel("test mIoU (%)")
        ax.set_title("one slimmable model, four widths")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
