"""
INT8 study: post-training quantization of every width of a bundle, CamVid accuracy and speed.

    python -m slimseg_ros.tools.int8_study [--bundle models/default_bundle]
        [--root data/CamVid] [--frames 300] [--out-dir DIR] [--preset performance]
        [--ignore-names REGEX ...] [--held-out-split val] [--full-bias-correction]
        [--rounds 60] [--threads 1 2] [--max-drop 1.0] [--lraspp] [--json out.json]

Per width of the bundle's OpenVINO graphs: quantize with NNCF
(:func:`slimseg_ros.inference.quantize.quantize_frame_graph`) on ``--frames`` CamVid **train**
images spread over the split; evaluate CamVid **test** mIoU and boundary F1 (the training
code's metrics) for fp32 and int8 through OpenVINO, and the share of mask pixels int8 and fp32
agree on. A width whose int8 mIoU is more than ``--max-drop`` points below fp32 is quantized
again with NNCF's accuracy-controlled quantization, checked on a held-out fifth of the
calibration frames (train images with their labels; never test), and that model is reported.
``--ignore-names`` keeps the convolutions whose op names match any of the regular expressions
in float (besides the frame's pre- and post-processing, which always stay float); the default
keeps the first block's pointwise projection (``blocks.0/project``) in float, the one layer
whose int8 kernel saturates on AVX2 CPUs without VNNI (docs/int8.md). Settings are chosen on
the ``--held-out-split`` (CamVid val: never calibrated on, never the test set), which is
scored for fp32 and int8 too.
Then p50 latency and CPU time per frame of fp32 and int8, frame by frame in turn (both see the
same machine load), with each ``--threads`` count. ``--lraspp`` adds torchvision's LR-ASPP
MobileNetV3-Large (random weights; fp32 in OpenVINO, at the same input size) for reference.
The quantized IRs are written to ``--out-dir``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slimseg_ros.inference.bundle_int8 import compile_static, masks_of
from slimseg_ros.inference.quantize import (evenly_spaced, float_ends, mask_agreement,
                                            quantize_frame_graph, split_frames)
from slimseg_ros.tools.common import cpu_name, markdown_table

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default_bundle"
DEFAULT_ROOT = Path("data") / "CamVid"
#: convolutions kept in float by default: the first block's pointwise projection. Its input
#: (ReLU6 outputs up to 6, i.e. u8 up to 255) times its int8 weights overflows the int16 pair
#: sums of AVX2's u8 x s8 multiply-add (no VNNI), as the stem's would without NNCF's overflow
#: fix; int8 there cost up to 2 mIoU points (docs/int8.md)
DEFAULT_IGNORE = (r"/backbone/blocks\.0/project/",)
_CONV_TYPES = ("Convolution", "GroupConvolution")


def ignored_names(model: Any, patterns: Sequence[str]) -> list[str]:
    """
    Return the names of ``model``'s convolutions that any of the regexes ``patterns`` matches.

    ``re.search`` on the op's friendly name; the exact names go to NNCF's ignored scope. A
    pattern that matches no convolution raises ValueError (a typo would silently quantize all).
    """
    names = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() in _CONV_TYPES]
    found: list[str] = []
    for pattern in patterns:
        rx = re.compile(pattern)
        hits = [n for n in names if rx.search(n)]
        if not hits:
            raise ValueError(f"--ignore-names {pattern!r} matches no convolution of the graph")
        found += [n for n in hits if n not in found]
    return found


def load_pairs(root: Path, split: str, limit: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``(RGB frame, train-id label)`` pairs of a CamVid split (``limit``: spread)."""
    from slimseg_ros.training.datasets import camvid_pairs, camvid_spec, read_image, read_label
    spec = camvid_spec()
    pairs = camvid_pairs(root, split)
    if limit:
        pairs = evenly_spaced(pairs, limit)
    return [(read_image(image), spec.lut[read_label(label)]) for image, label in pairs]


def scores(masks: Sequence[np.ndarray], labels: Sequence[np.ndarray],
           num_classes: int = 11) -> dict[str, float]:
    """Return mIoU and boundary F1 (percent) of ``masks`` against train-id ``labels``."""
    import torch

    from slimseg_ros.training.metrics import (IGNORE_INDEX, boundary_counts, boundary_f_score,
                                              confusion_matrix, mean_iou)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    bc = torch.zeros(4, dtype=torch.long)
    for mask, label in zip(masks, labels):
        pred = torch.from_numpy(mask.astype(np.int64))[None]
        target = torch.from_numpy(label.astype(np.int64))[None]
        cm += confusion_matrix(pred, target, num_classes, IGNORE_INDEX)
        bc += boundary_counts(pred, target, 3, IGNORE_INDEX)
    return {"miou": 100.0 * mean_iou(cm), "bf1": 100.0 * boundary_f_score(bc)}


def time_in_turn(compiled: dict[str, Any], frame: np.ndarray, rounds: int,
                 warmup: int = 5) -> dict[str, dict[str, float]]:
    """
    Time each compiled model on ``frame``, one frame each in turn, ``rounds`` times.

    Returns per name the p50 wall ms and the mean CPU ms per frame (process time, all threads).
    """
    requests = {name: c.create_infer_request() for name, c in compiled.items()}
    batch = frame[None]
    for _ in range(warmup):
        for request in requests.values():
            request.infer({0: batch})
    wall: dict[str, list[float]] = {name: [] for name in requests}
    cpu: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, request in requests.items():
            c0, t0 = time.process_time(), time.perf_counter()
            request.infer({0: batch})
            wall[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name].append((time.process_time() - c0) * 1e3)
    return {name: {"p50_ms": statistics.median(wall[name]),
                   "cpu_ms": statistics.fmean(cpu[name])} for name in requests}


def lraspp_model(core: Any, size: tuple[int, int], folder: Path) -> Any | None:
    """Return torchvision's LR-ASPP MobileNetV3-Large as an OpenVINO model, or None."""
    try:
        import torch
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large
    except ImportError:
        return None
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=11).eval()

    class Frame(torch.nn.Module):
        """uint8 NHWC frame -> uint8 class ids, as the frame graphs (for a fair timing)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, frame: torch.Tensor) -> torch.Tensor:
            x = (frame.to(torch.float32).permute(0, 3, 1, 2) - 127.0) / 128.0
            return self.net(x)["out"].argmax(1).to(torch.uint8)

    path = folder / "lraspp_mobilenet_v3_large.onnx"
    with torch.no_grad():
        torch.onnx.export(Frame().eval(), (torch.zeros(1, size[0], size[1], 3,
                                                       dtype=torch.uint8),),
                          str(path), dynamo=False, opset_version=17, input_names=["frame"],
                          output_names=["mask"])
    return core.read_model(str(path))


def study(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole study; return everything measured."""
    import nncf
    import openvino as ov
    core = ov.Core()
    bundle = Path(args.bundle)
    manifest = json.loads((bundle / "bundle.json").read_text())  # read as-is: files only
    size = tuple(int(v) for v in manifest["input_size"])
    graphs = manifest["graphs"]["openvino"]
    out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="int8_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(args.root)
    log = print if args.verbose else (lambda *a, **k: None)
    train = load_pairs(root, "train", args.frames)
    test = load_pairs(root, "test", args.test_limit)
    held = load_pairs(root, args.held_out_split) if args.held_out_split else []
    calib_frames = [f for f, _ in train]
    log(f"{len(calib_frames)} calibration frames (train), {len(held)} held-out frames "
        f"({args.held_out_split or 'none'}), {len(test)} test frames", flush=True)
    results: dict[str, Any] = {
        "cpu": cpu_name(), "openvino": ov.__version__, "nncf": nncf.__version__,
        "input_size": list(size), "calibration": {"split": "train", "frames": len(train),
                                                  "root": str(root)},
        "settings": {"preset": args.preset, "fast_bias_correction": not args.full_bias_correction,
                     "per_channel_weights": True, "target_device": "CPU",
                     "ignore_names": list(args.ignore_names),
                     "held_out_split": args.held_out_split, "max_drop_points": args.max_drop},
        "widths": {}}
    compiled_int8: dict[str, Any] = {}
    compiled_fp32: dict[str, Any] = {}
    for key in sorted(graphs, key=float):
        width = float(key)
        model = core.read_model(str(bundle / graphs[key]["file"]))
        ends = float_ends(model)
        extra = ignored_names(model, args.ignore_names)
        started = time.perf_counter()
        int8 = quantize_frame_graph(model, calib_frames, preset=args.preset,
                                    fast_bias_correction=not args.full_bias_correction,
                                    extra_ignored_names=extra)
        seconds = time.perf_counter() - started
        fp32_c, int8_c = compile_static(core, model, size), compile_static(core, int8, size)
        held_scores = {}
        if held:
            held_labels = [label for _, label in held]
            held_scores = {name: scores(masks_of(c, [f for f, _ in held]), held_labels)
                           for name, c in (("fp32", fp32_c), ("int8", int8_c))}
        labels = [label for _, label in test]
        fp32_masks = masks_of(fp32_c, [f for f, _ in test])
        int8_masks = masks_of(int8_c, [f for f, _ in test])
        fp32_s, int8_s = scores(fp32_masks, labels), scores(int8_masks, labels)
        row: dict[str, Any] = {
            "float_ends": {"head": ends.head, "logits": ends.logits, "tail_ops": len(ends.tail)},
            "quantize_s": seconds, "method": "plain", "fp32": fp32_s, "int8": int8_s,
            "agreement": mask_agreement(fp32_masks, int8_masks), "ignored_names": extra,
            "held_out": held_scores}
        log(f"width {width}: plain {row}", flush=True)
        if fp32_s["miou"] - int8_s["miou"] > args.max_drop:
            int8, row = retry_with_accuracy_control(core, model, train, size, row, args,
                                                    test, fp32_masks, extra)
        ov.save_model(int8, str(out_dir / f"width_{key}_int8.xml"), compress_to_fp16=False)
        results["widths"][key] = row
        compiled_int8[key] = int8
        compiled_fp32[key] = model
    lraspp = lraspp_model(core, size, out_dir) if args.lraspp else None
    frame = test[0][0]
    for threads in args.threads:
        for key in sorted(graphs, key=float):
            models = {"fp32": compile_static(core, compiled_fp32[key], size, threads),
                      "int8": compile_static(core, compiled_int8[key], size, threads)}
            if lraspp is not None and float(key) == max(float(k) for k in graphs):
                models["lraspp_fp32"] = compile_static(core, lraspp, size, threads)
            timing = time_in_turn(models, frame, args.rounds)
            results["widths"][key].setdefault("timing", {})[str(threads)] = timing
            log(f"width {key} threads {threads}: {timing}", flush=True)
    return results


def retry_with_accuracy_control(core: Any, model: Any, train: list, size: tuple[int, int],
                                plain: dict[str, Any], args: argparse.Namespace, test: list,
                                fp32_masks: list, extra_ignored: Sequence[str] = ()
                                ) -> tuple[Any, dict[str, Any]]:
    """Quantize ``model`` again with NNCF's accuracy control on held-out train frames."""
    calibration, held_out = split_frames(train, 0.2)
    held_frames = [f for f, _ in held_out]
    held_labels = [label for _, label in held_out]

    def validate(compiled: Any, data: Any) -> float:
        masks = [compiled(batch)[0][0] for batch in data]
        return scores(masks, held_labels)["miou"] / 100.0

    started = time.perf_counter()
    int8 = quantize_frame_graph(model, [f for f, _ in calibration], preset=args.preset,
                                fast_bias_correction=not args.full_bias_correction,
                                extra_ignored_names=extra_ignored,
                                held_out=held_frames, validation_fn=validate,
                                max_drop=args.ac_max_drop / 100.0)
    int8_c = compile_static(core, int8, size)
    labels = [label for _, label in test]
    int8_masks = masks_of(int8_c, [f for f, _ in test])
    fp32_layers = sum(op.get_type_name() in ("Convolution", "GroupConvolution")
                      for op in int8.get_ordered_ops())
    row = dict(plain)
    row.update({"method": "accuracy-controlled", "plain": {k: plain[k] for k in
                                                           ("int8", "agreement")},
                "int8": scores(int8_masks, labels),
                "agreement": mask_agreement(fp32_masks, int8_masks),
                "quantize_ac_s": time.perf_counter() - started,
                "held_out_frames": len(held_frames), "convolutions": fp32_layers})
    return int8, row


def table(results: dict[str, Any]) -> str:
    """Return the markdown table of a study's results."""
    headers = ["width", "method", "mIoU fp32", "mIoU int8", "Δ", "BF1 fp32", "BF1 int8",
               "mask agree"]
    held = any(r.get("held_out") for r in results["widths"].values())
    if held:
        headers += [f"Δ {results['settings'].get('held_out_split') or 'held-out'}"]
    threads = sorted({t for r in results["widths"].values() for t in r.get("timing", {})}, key=int)
    for t in threads:
        headers += [f"p50 fp32/int8 ms ({t}T)", f"speed-up ({t}T)", f"CPU ms fp32/int8 ({t}T)"]
    rows = []
    for key, r in sorted(results["widths"].items(), key=lambda kv: float(kv[0])):
        cells = [key, r["method"], f"{r['fp32']['miou']:.2f}", f"{r['int8']['miou']:.2f}",
                 f"{r['int8']['miou'] - r['fp32']['miou']:+.2f}", f"{r['fp32']['bf1']:.2f}",
                 f"{r['int8']['bf1']:.2f}", f"{100 * r['agreement']:.1f}%"]
        if held:
            h = r.get("held_out") or {}
            cells += [f"{h['int8']['miou'] - h['fp32']['miou']:+.2f}" if h else ""]
        for t in threads:
            tm = r.get("timing", {}).get(t)
            if tm is None:
                cells += ["", "", ""]
                continue
            f, i = tm["fp32"], tm["int8"]
            cells += [f"{f['p50_ms']:.1f} / {i['p50_ms']:.1f}",
                      f"{f['p50_ms'] / i['p50_ms']:.2f}x",
                      f"{f['cpu_ms']:.1f} / {i['cpu_ms']:.1f}"]
        rows.append(cells)
    text = markdown_table(headers, rows)
    lines = []
    for key, r in results["widths"].items():
        for t, tm in r.get("timing", {}).items():
            if "lraspp_fp32" in tm:
                lr = tm["lraspp_fp32"]
                lines.append(f"LR-ASPP MobileNetV3-Large fp32 ({t}T): p50 {lr['p50_ms']:.1f} ms, "
                             f"CPU {lr['cpu_ms']:.1f} ms/frame; width {key} int8 p50 "
                             f"{tm['int8']['p50_ms']:.1f} ms (LR-ASPP / int8: "
                             f"{lr['p50_ms'] / tm['int8']['p50_ms']:.2f}x)")
    return text + ("\n\n" + "\n".join(lines) if lines else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the study, print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE))
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="CamVid (SegNet layout)")
    parser.add_argument("--frames", type=int, default=300, help="calibration frames (train)")
    parser.add_argument("--test-limit", type=int, default=0, help="test frames (0: all)")
    parser.add_argument("--out-dir", default=None,
                        help="where the int8 IRs go (default: a new temporary folder)")
    parser.add_argument("--rounds", type=int, default=60, help="timed frames per model")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", choices=["performance", "mixed"], default="performance")
    parser.add_argument("--full-bias-correction", action="store_true")
    parser.add_argument("--ignore-names", nargs="*", default=list(DEFAULT_IGNORE),
                        metavar="REGEX",
                        help="keep the convolutions whose op name matches (re.search) in float; "
                             "give no REGEX to quantize every convolution "
                             f"(default: {' '.join(DEFAULT_IGNORE)})")
    parser.add_argument("--held-out-split", default="val",
                        help="CamVid split to score fp32/int8 on for choosing settings "
                             "('' to skip; never the test split)")
    parser.add_argument("--max-drop", type=float, default=1.0,
                        help="mIoU points int8 may lose before accuracy control is tried")
    parser.add_argument("--ac-max-drop", type=float, default=0.5,
                        help="mIoU points accuracy control allows on the held-out frames")
    parser.add_argument("--lraspp", action="store_true", help="time LR-ASPP MobileNetV3-L")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quiet", dest="verbose", action="store_false")
    args = parser.parse_args(argv)
    if args.held_out_split == "test":
        parser.error("--held-out-split chooses settings: it must not be the test split")
    results = study(args)
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
