"""
What the node's extra outputs cost: the PNG mask's size and encode time, the confidence's latency.

    python -m slimseg_ros.tools.outputs_bench --images CamVid/test [--checkpoint FILE]
        [--backend auto] [--max-images 233] [--rounds 5] [--threads 2] [--json out.json]

PNG masks: every image of ``--images`` (a folder of frames, e.g. CamVid's test split) is
segmented at every width; each mask is encoded as the node encodes ``slimseg/mask/compressed``
(lossless PNG, level 3) at its own size (CamVid: 360x480) and nearest-resized to 720x1280 (a
720p camera's mask), and the bench prints bytes per mask against the raw mono8 mask and the
encode time per frame (p50). Decoding each PNG gives the exact ids, or the bench fails.

Confidence: each width's graph with and without the confidence output (``publish_confidence``),
timed on the same frames in alternating rounds, p50 of each and their ratio. The node's default
turns the confidence on only where its cost is under 5% at every width.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from ..inference.backends import CHOICES as BACKEND_CHOICES
from ..resources import default_checkpoint
from .common import cpu_name, markdown_table

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SIZES = ((None, "frame size"), ((720, 1280), "720x1280"))
CONFIDENCE_LIMIT = 1.05  # the default is on only where the confidence costs under 5 %


def read_frames(folder: Path, limit: int | None) -> list[np.ndarray]:
    """Return the RGB frames of ``folder`` in name order (at most ``limit``)."""
    import cv2

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    frames = []
    for path in paths[:limit]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        frames.append(bgr[:, :, ::-1].copy())
    return frames


def png_figures(masks: list[np.ndarray], size: tuple[int, int] | None) -> dict[str, float]:
    """Encode each mask (resized to ``size`` if given) as the node does; bytes and ms p50."""
    import cv2

    from ..ros.conversions import PNG_LEVEL

    raw, packed, ms = [], [], []
    for mask in masks:
        if size is not None:
            mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        start = time.perf_counter()
        ok, data = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        ms.append((time.perf_counter() - start) * 1e3)
        if not ok or not np.array_equal(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), mask):
            raise RuntimeError("a PNG mask did not decode to the exact ids")
        raw.append(mask.size)
        packed.append(data.size)
    return {"masks": len(masks), "raw_bytes": float(np.mean(raw)),
            "png_bytes_mean": float(np.mean(packed)), "png_bytes_max": float(np.max(packed)),
            "ratio": float(np.mean(raw) / np.mean(packed)),
            "encode_ms_p50": statistics.median(ms), "encode_ms_max": max(ms)}


def confidence_cost(checkpoint: Path, backend: str, threads: int, frames: list[np.ndarray],
                    rounds: int) -> dict[str, dict[str, float]]:
    """Time every width with and without the confidence output, alternating rounds."""
    import torch

    from ..inference.engine import SegmentationEngine

    if threads:
        torch.set_num_threads(threads)
    engines = {flag: SegmentationEngine.from_checkpoint(
        checkpoint, device="cpu", backend=backend, confidence=flag, ladder=False)
        for flag in (False, True)}
    for engine in engines.values():
        engine.warmup(size=frames[0].shape[:2], iters=2)
    times: dict[tuple[float, bool], list[float]] = {}
    for _ in range(rounds):
        for flag, engine in engines.items():
            for width in engine.widths:
                for frame in frames:
                    start = time.perf_counter()
                    engine.segment(frame, width)
                    times.setdefault((width.value, flag), []).append(
                        (time.perf_counter() - start) * 1e3)
    out = {}
    for width in engines[False].widths:
        plain = statistics.median(times[(width.value, False)])
        with_conf = statistics.median(times[(width.value, True)])
        out[f"{width.value:g}"] = {"mask_ms_p50": plain, "with_confidence_ms_p50": with_conf,
                                   "ratio": with_conf / plain}
    out["backend"] = {"name": engines[True].backend, "precision": engines[True].precision}
    return out


def masks_of(checkpoint: Path, backend: str, frames: list[np.ndarray]) -> dict[float, list]:
    """Return every width's masks of ``frames``."""
    from ..inference.engine import SegmentationEngine

    engine = SegmentationEngine.from_checkpoint(checkpoint, device="cpu", backend=backend,
                                                ladder=False)
    return {w.value: [engine.infer(f, w) for f in frames] for w in engine.widths}


def main(argv: list[str] | None = None) -> int:
    """Measure and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True,
                        help="folder of frames (e.g. CamVid's test split)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model checkpoint (default: the packaged model)")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--timing-images", type=int, default=10,
                        help="frames timed per width and round for the confidence cost")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.timing_images < 1 or (args.max_images is not None
                                                     and args.max_images < 1):
        parser.error("--rounds, --timing-images and --max-images must be >= 1")
    checkpoint = args.checkpoint or default_checkpoint()
    if not Path(checkpoint).is_file():
        parser.error(f"checkpoint {checkpoint} does not exist")
    try:
        frames = read_frames(args.images, args.max_images)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    print(f"{len(frames)} frames of {args.images}, model {Path(checkpoint).name}, "
          f"{cpu_name()}, {os.cpu_count()} CPUs\n")
    masks = masks_of(checkpoint, args.backend, frames)
    png = {f"{w:g}": {label: png_figures(ms, size) for size, label in SIZES}
           for w, ms in masks.items()}
    rows = [(w, label, f"{f['raw_bytes']:.0f}", f"{f['png_bytes_mean']:.0f}",
             f"{f['png_bytes_max']:.0f}", f"{f['ratio']:.1f}x", f"{f['encode_ms_p50']:.2f}")
            for w, by_size in png.items() for label, f in by_size.items()]
    print(markdown_table(("width", "mask size", "raw bytes", "PNG bytes mean", "PNG bytes max",
                          "smaller", "encode ms p50"), rows))
    cost = confidence_cost(checkpoint, args.backend, args.threads,
                           frames[:args.timing_images], args.rounds)
    runtime = cost.pop("backend")
    print(f"\nconfidence cost, {runtime['name']} {runtime['precision']}, "
          f"{args.timing_images} frames x {args.rounds} rounds:\n")
    print(markdown_table(("width", "mask only ms p50", "with confidence ms p50", "ratio"),
                         [(w, f"{c['mask_ms_p50']:.2f}", f"{c['with_confidence_ms_p50']:.2f}",
                           f"{c['ratio']:.3f}") for w, c in cost.items()]))
    worst = max(c["ratio"] for c in cost.values())
    print(f"\nworst ratio {worst:.3f}: confidence "
          f"{'under' if worst < CONFIDENCE_LIMIT else 'not under'} 5% at every width")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu_name(), "images": str(args.images),
                                         "frames": len(frames), "backend": runtime,
                                         "png": png, "confidence": cost}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
