"""
``slimseg-export``: write a checkpoint's widths as ONNX or TorchScript files, each checked.

``slimseg-export --checkpoint model.pt --width 0.5 --format onnx --output model_w050.onnx``
(``--width all`` writes one file per trained width). Each file is loaded back and run beside the
PyTorch network at the export size and at a second size; the maximum absolute difference is
printed and the command fails (exit code 1) when it exceeds the tolerance. The conversion itself
is :mod:`slimseg_ros.inference.export`, which the runtime uses too.

``--bundle DIR`` writes a model bundle instead; ``--int8 --calibration FRAMES`` adds INT8 graphs
to it (to an existing bundle without ``--checkpoint``); ``--measure`` times them against fp32
on this machine, for ``precision: auto``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..inference.backends import bundle_runtimes
from ..inference.graph_format import EXPORT_FORMATS as FORMATS
from ..widths import Width
from .common import format_size, size_arg

# torch is imported only where a checkpoint is read: adding INT8 graphs to a bundle and timing
# them (--int8, --measure) work on a robot without it


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


def chosen_widths(engine: Any, text: str) -> list[Width]:
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
    p.add_argument("--checkpoint", help="slimseg checkpoint (.pt); not needed to add INT8 "
                   "graphs to, or to --measure, an existing bundle")
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
    p.add_argument("--int8", action="store_true",
                   help="with --bundle: add every width's OpenVINO graph quantized to INT8 "
                        "(NNCF), checked on frames held out of --calibration")
    p.add_argument("--calibration", metavar="FRAMES",
                   help="with --int8: a folder of images (the model's training images or your "
                        "own frames; searched recursively)")
    p.add_argument("--calibration-frames", type=int, default=300,
                   help="with --int8: how many frames, spread over the folder (default 300)")
    p.add_argument("--int8-preset", choices=["performance", "mixed"], default="performance",
                   help="with --int8: NNCF's preset (mixed: asymmetric activations)")
    p.add_argument("--int8-keep-float", nargs="+", default=[], metavar="REGEX",
                   help="with --int8: regular expressions on op names (the same at every "
                        "width) of further ops to keep in float, e.g. 'blocks\\.0/project/'")
    p.add_argument("--check-root", metavar="CAMVID",
                   help="with --int8: check each width by CamVid val mIoU (labels; at most "
                        "1.0 point lost) instead of int8/fp32 mask agreement")
    p.add_argument("--measure", action="store_true",
                   help="with --bundle: time fp32 against int8 per width on this machine and "
                        "record it (precision auto runs int8 only where it measured faster)")
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
    if args.int8 or args.measure:
        parser.error("--int8 and --measure need --bundle DIR")
    if not args.checkpoint:
        parser.error("--checkpoint is required")
    from ..inference.engine import SegmentationEngine
    from ..inference.export import ExportError, export_width
    from ..models.checkpoint import CheckpointError
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

    folder = Path(args.bundle)
    if args.int8 and not args.calibration:
        print("slimseg-export: --int8 needs --calibration FRAMES (a folder of images)",
              file=sys.stderr)
        return 2
    try:
        if args.checkpoint:
            from ..inference.bundle_export import write_bundle
            meta = write_bundle(args.checkpoint, args.bundle, args.runtimes, args.confidence)
            describe_bundle(folder, meta)
            from ..inference.ladder_export import carry_checkpoint_ladder
            ladder = carry_checkpoint_ladder(args.checkpoint, folder,
                                             log=lambda msg: print(f"  {msg}"))
            if ladder is not None:
                print(f"ladder of {len(ladder.points)} operating points carried from "
                      f"{ladder.source}: {ladder.describe()}")
        elif not (args.int8 or args.measure):
            print("slimseg-export: --bundle needs --checkpoint (or --int8 / --measure on an "
                  "existing bundle)", file=sys.stderr)
            return 2
        if args.int8:
            from ..inference.bundle_int8 import add_int8
            check = camvid_check(args.check_root) if args.check_root else None
            settings: dict[str, Any] = {"preset": args.int8_preset}
            if args.int8_keep_float:
                settings["extra_ignored_patterns"] = list(args.int8_keep_float)
            meta = add_int8(folder, args.calibration, args.calibration_frames, check=check,
                            **settings)
            passed = [w for w, c in meta["int8"]["checks"].items() if c["passed"]]
            print(f"INT8 graphs added to {folder}; check passed at widths {passed or 'none'}")
        if args.measure:
            from ..inference.bundle_int8 import measure_int8
            measure_int8(folder)
    except (BackendError, ValueError, FileNotFoundError, ImportError) as exc:  # CheckpointError
        print(f"slimseg-export: {exc}", file=sys.stderr)
        return 2
    return 0


def camvid_check(root: str) -> Any:
    """Return the labelled INT8 check: CamVid val mIoU of int8 within 1.0 point of fp32."""
    from ..inference.bundle_int8 import MIOU_DROP_ALLOWED
    from ..inference.bundle_int8 import masks_of
    from .int8_study import load_pairs, scores

    pairs = load_pairs(Path(root), "val")
    frames, labels = [f for f, _ in pairs], [label for _, label in pairs]

    def check(width: str, fp32: Any, int8: Any) -> dict[str, Any]:
        a, b = scores(masks_of(fp32, frames), labels), scores(masks_of(int8, frames), labels)
        drop = a["miou"] - b["miou"]
        return {"kind": "CamVid val mIoU", "frames": len(frames),
                "miou_fp32": round(a["miou"], 2), "miou_int8": round(b["miou"], 2),
                "bf1_fp32": round(a["bf1"], 2), "bf1_int8": round(b["bf1"], 2),
                "allowed_drop": MIOU_DROP_ALLOWED, "passed": drop <= MIOU_DROP_ALLOWED}
    return check


def describe_bundle(folder: Path, meta: dict[str, Any]) -> None:
    """Say what a newly written bundle holds."""
    sizes = {r: sum((folder / n).stat().st_size for e in per_width.values() for n in e["sha256"])
             for r, per_width in meta["graphs"].items()}
    print(f"wrote bundle {folder}: widths {meta['widths']}, input size {meta['input_size']}, "
          f"outputs {meta['outputs']}; " + ", ".join(f"{r} {n / 2**20:.1f} MiB"
                                                     for r, n in sizes.items()))


if __name__ == "__main__":
    sys.exit(main())
