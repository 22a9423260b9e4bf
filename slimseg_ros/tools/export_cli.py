"""
``slimseg-export``: write a checkpoint's widths as ONNX or TorchScript files, each checked.

``slimseg-export --checkpoint model.pt --width 0.5 --format onnx --output model_w050.onnx``
(``--width all`` writes one file per trained width). Each file is loaded back and run beside the
PyTorch network at the export size and at a second size; the maximum absolute difference is
printed and the command fails (exit code 1) when it exceeds the tolerance. The conversion itself
is :mod:`slimseg_ros.inference.export`, which the runtime uses too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..inference.backends import bundle_runtimes
from ..inference.engine import SegmentationEngine
from ..inference.export import FORMATS, ExportError, export_width
from ..models.checkpoint import CheckpointError
from ..widths import Width
from .common import format_size, size_arg


def output_path(template: str | Path, width: float, fmt: str, many: bool) -> Path:
    """
    Where the file for ``width`` goes.

    ``{width}`` in the template is replaced by e.g. ``0.50``; otherwise, when several widths are
    exported, ``_w0.50`` is added before the suffix. A directory gets ``slimseg_w0.50.onnx``.
    """
    text = str(template)
    tag = f"{width:.2f}"
    if "{width}" in text:
        return Path(text.replace("{width}", tag))
    path = Path(text)
    if path.is_dir():
        return path / f"slimseg_w{tag}{FORMATS[fmt]}"
    if many:
        suffix = path.suffix or FORMATS[fmt]
        return path.with_name(f"{path.stem}_w{tag}{suffix}")
    return path


def chosen_widths(engine: SegmentationEngine, text: str) -> list[Width]:
    """
    Read ``--width``: ``all`` (every trained width) or a number, snapped to its trained width.

    The command line is an edge: the number becomes a Width of ``engine.widths`` here, by
    ``exact``; ValueError when it is not a number or no trained width.
    """
    if text.strip().lower() == "all":
        return list(engine.widths)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"width must be a number, got {text!r}") from None
    return [engine.widths.exact(value)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimseg-export", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="slimseg checkpoint (.pt)")
    p.add_argument("--width", default="all",
                   help="trained width to export (e.g. 0.5) or 'all' (default: all)")
    p.add_argument("--format", choices=sorted(FORMATS), default="onnx")
    p.add_argument("--output",
                   help="output file; with --width all '_w0.50' is added before the suffix "
                        "(or put '{width}' in the name, or give a directory)")
    p.add_argument("--bundle", metavar="DIR",
                   help="write a model bundle instead: every width's frame graph for OpenVINO "
                        "(IR, fp16 weights) and ONNX Runtime plus bundle.json, what the node "
                        "runs without PyTorch (DIR must be new or empty)")
    p.add_argument("--runtimes", nargs="+", default=None, choices=bundle_runtimes(),
                   help="with --bundle: graphs for these (default: every one)")
    p.add_argument("--confidence", action="store_true",
                   help="with --bundle: graphs with the confidence output too")
    p.add_argument("--size", type=size_arg, default=None,
                   help="example input HxW for tracing (default: the checkpoint's input_size, "
                        "else 512x512); the exported axes stay dynamic")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="max allowed |exported - torch|, relative to max(1, max |logit|)")
    p.add_argument("--static", action="store_true", help="fixed input size (ONNX only)")
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers separate")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bundle:
        return bundle_main(args)
    if not args.output:
        parser.error("one of --output or --bundle is required")
    try:
        engine = SegmentationEngine.from_checkpoint(args.checkpoint, device="cpu",
                                                    channels_last=False,
                                                    fold_bn=not args.no_fold_bn)
    except CheckpointError as exc:
        print(f"slimseg-export: {exc}", file=sys.stderr)
        return 2
    try:
        widths = chosen_widths(engine, args.width)
    except ValueError as exc:
        print(f"slimseg-export: {exc}", file=sys.stderr)
        return 2
    size = args.size or tuple(engine.info.input_size or (512, 512))
    exporter = ("torch.onnx TorchScript-based (dynamo=False)" if args.format == "onnx"
                else "torch.jit.trace")
    print(f"exporting {args.checkpoint} widths {[w.value for w in widths]} as {args.format} "
          f"via {exporter}, "
          f"example {format_size(*size)}, {'static' if args.static else 'dynamic'} H/W")
    failed = False
    for w in widths:
        path = output_path(args.output, w.value, args.format, many=len(widths) > 1)
        try:
            res = export_width(engine, w, args.format, path, size, opset=args.opset,
                               tolerance=args.tolerance, dynamic=not args.static)
        except ExportError as exc:
            print(f"FAILED width {w.value}: {exc}", file=sys.stderr)
            failed = True
            continue
        checked = ", ".join(format_size(*hw) for hw in res["sizes"])
        print(f"width {w:.2f} -> {res['path']}  max |diff| = {res['max_diff']:.3g} "
              f"(checked at {checked})")
    return 1 if failed else 0


def bundle_main(args: argparse.Namespace) -> int:
    """``--bundle DIR``: write the model bundle and say what is in it."""
    from ..inference.backends import BackendError
    from ..inference.bundle_export import write_bundle

    try:
        meta = write_bundle(args.checkpoint, args.bundle, args.runtimes, args.confidence)
    except (CheckpointError, BackendError, ValueError, FileNotFoundError) as exc:
        print(f"slimseg-export: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.bundle)
    sizes = {r: sum((folder / n).stat().st_size for e in per_width.values() for n in e["sha256"])
             for r, per_width in meta["graphs"].items()}
    print(f"wrote bundle {folder}: widths {meta['widths']}, input size {meta['input_size']}, "
          f"outputs {meta['outputs']}; " + ", ".join(f"{r} {n / 2**20:.1f} MiB"
                                                     for r, n in sizes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
