"""
Evaluation at every width: mIoU (nanmean), per-class IoU, pixel accuracy, boundary F-score.

``slimseg-eval --checkpoint best_model.pt --dataset camvid --root ../shared/data/CamVid
--split test [--widths 0.25 1.0] [--output out_dir]`` prints a table and writes ``metrics.json``
and ``metrics.md``. Evaluation runs at the dataset's native resolution unless ``--size`` is
given; ``--sliding-window H W`` runs crops (e.g. Cityscapes 2048x1024 with 1024x1024 windows).
A ``folder`` dataset (your own images and id masks) needs ``--classes classes.yaml``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from slimseg_ros.inference.backends import CHOICES as BACKEND_CHOICES
from slimseg_ros.inference.engine import round_input_size
from slimseg_ros.models import load_checkpoint, set_width, trained_widths
from slimseg_ros.widths import find_width

from .metrics import IGNORE_INDEX, boundary_counts, confusion_matrix, summarize
from .transforms import normalize_batch


def sliding_window_logits(model: nn.Module, x: torch.Tensor, num_classes: int,
                          window: Sequence[int], overlap: float = 1 / 3) -> torch.Tensor:
    """Logits ``N x C x H x W`` averaged over overlapping ``window`` (h, w) crops of ``x``."""
    n, _, h, w = x.shape
    wh, ww = min(int(window[0]), h), min(int(window[1]), w)
    sh, sw = max(1, int(wh * (1 - overlap))), max(1, int(ww * (1 - overlap)))
    out = x.new_zeros((n, num_classes, h, w))
    count = x.new_zeros((1, 1, h, w))
    ys = list(range(0, max(h - wh, 0) + 1, sh))
    xs = list(range(0, max(w - ww, 0) + 1, sw))
    if ys[-1] + wh < h:
        ys.append(h - wh)
    if xs[-1] + ww < w:
        xs.append(w - ww)
    for y0 in ys:
        for x0 in xs:
            out[:, :, y0:y0 + wh, x0:x0 + ww] += model(x[:, :, y0:y0 + wh, x0:x0 + ww]).float()
            count[:, :, y0:y0 + wh, x0:x0 + ww] += 1
    return out / count


@torch.no_grad()
def evaluate(model: nn.Module | None, loader: DataLoader, num_classes: int,
             class_names: Sequence[str], mean: Sequence[float], std: Sequence[float],
             widths: Sequence[float] | None = None,
             device: torch.device | str = "cpu", boundary_tolerance: int | None = 3,
             sliding_window: Sequence[int] | None = None, channels_last: bool = False,
             amp: bool = False, progress: bool = False,
             per_image: dict[float, dict[str, list]] | None = None,
             predict: Callable[[torch.Tensor, float], torch.Tensor] | None = None
             ) -> dict[float, dict]:
    """
    Metrics per width over ``loader`` (batches of uint8 images and train-id labels).

    Every batch is read once and run at each width (one confusion matrix per width). The
    model is left in eval mode at its widest width. Returns ``{width: summarize(...) + fps}``.
    A ``per_image`` dict is filled with each image's confusion matrix and boundary counts per
    width (``{width: {"confusion": [...], "boundary": [...]}}``): what a paired bootstrap over
    images needs, without running the model again. ``predict(images, width)`` (uint8
    N x 3 x H x W -> N x H x W class ids) replaces the model's forward pass, e.g. an engine
    running another inference runtime; the metrics are computed the same way.
    """
    device = torch.device(device)
    if model is None and (predict is None or not widths):
        raise ValueError("evaluate() without a model needs predict and widths (a bundle)")
    all_widths = trained_widths(model) if model is not None else list(widths)
    widths = sorted(float(w) for w in (widths if widths else all_widths))
    for w in widths:
        if find_width(all_widths, w) is None:
            raise ValueError(f"width {w} is not one of the model's widths {list(all_widths)}")
    if model is not None:
        model.eval()
    cms = {w: torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
           for w in widths}
    bcs = {w: torch.zeros(4, dtype=torch.long, device=device) for w in widths}
    seconds = {w: 0.0 for w in widths}
    images_seen = 0
    iterator = loader
    if progress:
        from tqdm import tqdm
        iterator = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    for images, labels in iterator:
        if predict is None:
            x = normalize_batch(images.to(device, non_blocking=True), mean, std, channels_last)
        labels = labels.to(device, non_blocking=True)
        images_seen += images.shape[0]
        for w in widths:
            start = time.perf_counter()
            if predict is not None:
                pred = predict(images, w).to(device).long()
                seconds[w] += time.perf_counter() - start
            else:
                set_width(model, w)
                with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                    if sliding_window:
                        logits = sliding_window_logits(model, x, num_classes, sliding_window)
                    else:
                        logits = model(x)
                if logits.shape[-2:] != labels.shape[-2:]:
                    logits = F.interpolate(logits.float(), size=labels.shape[-2:],
                                           mode="bilinear", align_corners=False)
                pred = logits.argmax(1)
                seconds[w] += time.perf_counter() - start
            if per_image is None:
                cms[w] += confusion_matrix(pred, labels, num_classes, IGNORE_INDEX)
                if boundary_tolerance is not None:
                    bcs[w] += boundary_counts(pred, labels, boundary_tolerance, IGNORE_INDEX)
                continue
            store = per_image.setdefault(w, {"confusion": [], "boundary": []})
            for p_i, y_i in zip(pred, labels):
                cm_i = confusion_matrix(p_i, y_i, num_classes, IGNORE_INDEX)
                cms[w] += cm_i
                store["confusion"].append(cm_i.cpu())
                if boundary_tolerance is not None:
                    bc_i = boundary_counts(p_i[None], y_i[None], boundary_tolerance, IGNORE_INDEX)
                    bcs[w] += bc_i
                    store["boundary"].append(bc_i.cpu())
    if model is not None:
        set_width(model, max(all_widths))
    results: dict[float, dict] = {}
    for w in widths:
        r = summarize(cms[w].cpu(), list(class_names),
                      bcs[w].cpu() if boundary_tolerance is not None else None)
        r["images"] = images_seen
        r["seconds_per_image"] = seconds[w] / max(images_seen, 1)
        results[w] = r
    return results


def runtime_predictor(model: nn.Module, info: Any, args: argparse.Namespace,
                      device: torch.device
                      ) -> tuple[Callable[[torch.Tensor, float], torch.Tensor] | None, str]:
    """
    Return ``(predict, backend)``: masks from an engine on the runtime backend asked for.

    ``(None, "torch")`` for the slimmable model itself.
    """
    from slimseg_ros.inference.backends import is_graph_runtime, resolve_backend
    from slimseg_ros.inference.engine import SegmentationEngine

    backend = resolve_backend(args.backend, device.type, args.precision)
    if args.input_size and not is_graph_runtime(backend):
        if args.precision != "fp32":
            raise ValueError(f"--precision {args.precision} applies to the runtime backends")
        engine = SegmentationEngine(copy.deepcopy(model), info, device=device, backend=backend,
                                    input_size=tuple(args.input_size))
        return frame_predictor(engine), backend
    if not is_graph_runtime(backend):
        if args.precision != "fp32":
            raise ValueError(f"--precision {args.precision} applies to the runtime backends; "
                             f"--backend torch evaluates the slimmable model in fp32")
        return None, backend
    if args.sliding_window:
        raise ValueError("--sliding-window runs with --backend torch only")
    # with --size every frame arrives at the network input size, as in a node running the
    # checkpoint's input size: the graph then holds that fixed size (and its faster upsample);
    # --input-size runs the network at that size and maps the masks back to the frame's
    size = (tuple(args.input_size) if args.input_size
            else tuple(args.size) if args.size else None)
    engine = SegmentationEngine(copy.deepcopy(model), info, device=device, backend=backend,
                                precision=args.precision, checkpoint_path=args.checkpoint,
                                input_size=size, ladder=False)  # scores widths only
    return frame_predictor(engine), backend


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def frame_predictor(engine: Any) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """Return ``predict(images, width)``: masks from ``engine`` at the frames' own size."""
    def predict(images: torch.Tensor, width: float) -> torch.Tensor:
        trained = engine.widths.exact(width)  # evaluate's widths are floats: snapped here
        frames = images.permute(0, 2, 3, 1).contiguous().numpy()
        return torch.stack([torch.from_numpy(engine.infer(f, trained)) for f in frames])
    return predict


def write_per_image(path: str | Path, per_image: dict[float, dict[str, list]]) -> None:
    """
    Write ``per_image.npz``: confusion matrices (and boundary counts) per width and image.

    ``widths``, ``confusion`` (widths x images x C x C) and, when boundary counts were taken,
    ``boundary`` (widths x images x 4), all int64.
    """
    import numpy as np
    widths = sorted(per_image)
    arrays = {"widths": np.asarray(widths, dtype=np.float64),
              "confusion": np.stack([torch.stack(per_image[w]["confusion"]).numpy()
                                     for w in widths])}
    if all(per_image[w]["boundary"] for w in widths):
        arrays["boundary"] = np.stack([torch.stack(per_image[w]["boundary"]).numpy()
                                       for w in widths])
    np.savez_compressed(path, **arrays)


def markdown_table(results: dict[float, dict], class_names: Sequence[str]) -> str:
    """Two Markdown tables: summary per width, then per-class IoU (percent)."""
    def pct(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    lines = ["| width | mIoU (%) | pixel acc (%) | mean class acc (%) | boundary F (%) |",
             "|---|---|---|---|---|"]
    for w, r in sorted(results.items()):
        lines.append(f"| {w:g} | {pct(r['miou'])} | {pct(r['pixel_accuracy'])} | "
                     f"{pct(r['mean_class_accuracy'])} | {pct(r.get('boundary_f'))} |")
    lines += ["", "| width | " + " | ".join(class_names) + " |",
              "|---|" + "---|" * len(class_names)]
    for w, r in sorted(results.items()):
        lines.append(f"| {w:g} | " + " | ".join(pct(r["per_class_iou"][c]) for c in class_names)
                     + " |")
    lines.append("")
    lines.append("mIoU is the nanmean of the per-class IoU (classes absent from both the ground "
                 "truth and the predictions are left out).")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from .datasets import DATASET_NAMES, build_dataset
    from .transforms import eval_transform

    parser = argparse.ArgumentParser(prog="slimseg-eval",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="deployable model checkpoint (.pt)")
    parser.add_argument("--dataset", required=True, choices=list(DATASET_NAMES))
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--classes", help="classes file of a folder dataset (names, palette, "
                                          "ignore_index)")
    parser.add_argument("--split", default="test", help="split, e.g. test, val, train+val")
    parser.add_argument("--widths", type=float, nargs="+", help="widths (default: all trained)")
    parser.add_argument("--output", help="folder for metrics.json and metrics.md")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize images to H W (default: native resolution)")
    parser.add_argument("--input-size", nargs=2, metavar=("H", "W"),
                        help="run the network at this input size (sides rounded to a multiple "
                             "of 8) and score the masks at the label size, as the node "
                             "publishes them; unlike --size, the labels are not resized")
    parser.add_argument("--sliding-window", type=int, nargs=2, metavar=("H", "W"),
                        help="sliding-window inference with H x W crops")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--max-images", type=int, help="evaluate the first N images only")
    parser.add_argument("--boundary-tolerance", type=int, default=3, help="pixels")
    parser.add_argument("--channels-last", action="store_true",
                        help="NHWC memory format (often faster on CPU)")
    parser.add_argument("--backend", default="auto",
                        choices=BACKEND_CHOICES,
                        help="inference runtime (default auto: on a CPU OpenVINO, else ONNX "
                             "Runtime, else torch); torch evaluates the slimmable model itself")
    parser.add_argument("--precision", default="fp32",
                        help="with a runtime backend: fp32, or bf16 (OpenVINO on CPUs with "
                             "native bf16)")
    parser.add_argument("--confidence", action="store_true",
                        help="also measure what the node's confidence output means: accuracy "
                             "per confidence bin, expected calibration error, accuracy above "
                             "0.9 against below 0.5, per width (confidence.md/.json)")
    parser.add_argument("--per-image", action="store_true",
                        help="also write per_image.npz (each image's confusion matrix and "
                             "boundary counts per width, for paired bootstrap intervals)")
    args = parser.parse_args(argv)
    if args.input_size is not None:
        if args.size or args.sliding_window:
            parser.error("--input-size scores at the label size: it goes with neither --size "
                         "(which resizes the labels too) nor --sliding-window")
        try:
            asked = args.input_size
            args.input_size = round_input_size(*asked)
        except ValueError as exc:
            parser.error(f"--input-size: {exc}")
        if list(args.input_size) != [_number(v) for v in asked]:
            print(f"input size {asked[0]}x{asked[1]} rounded to {args.input_size[0]}x"
                  f"{args.input_size[1]} (sides a multiple of 8)", file=sys.stderr)
    if args.per_image and not args.output:
        parser.error("--per-image needs --output (the folder that receives per_image.npz)")
    if args.dataset == "folder" and not args.classes:
        parser.error("--dataset folder needs --classes (its classes file)")
    classes = str(Path(args.classes).expanduser().resolve()) if args.classes else None

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    bundle = Path(args.checkpoint).is_dir()
    try:
        if bundle:  # a model bundle: its exported graphs, in OpenVINO or ONNX Runtime
            from slimseg_ros.inference.bundle import BundleEngine
            model, engine = None, BundleEngine(
                args.checkpoint, backend=args.backend, precision=args.precision,
                input_size=args.input_size or args.size, ladder=False)
            info = engine.info
        else:
            model, info = load_checkpoint(args.checkpoint, map_location="cpu")
        dataset = build_dataset(args.dataset, args.root, args.split,
                                eval_transform(args.size), check=True, classes=classes)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError / DatasetError / Bundle
        print(f"slimseg-eval: error: {exc}", file=sys.stderr)
        return 2
    if list(info.class_names) != list(dataset.spec.class_names):
        print(f"slimseg-eval: error: checkpoint {args.checkpoint} predicts classes "
              f"{info.class_names}, dataset {args.dataset} has {list(dataset.spec.class_names)}",
              file=sys.stderr)
        return 2
    if args.max_images:
        dataset = Subset(dataset, range(min(args.max_images, len(dataset))))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                        num_workers=args.workers, pin_memory=device.type == "cuda")
    try:
        predict, backend = ((frame_predictor(engine), engine.backend) if bundle
                            else runtime_predictor(model, info, args, device))
    except ValueError as exc:  # BackendError: a runtime or precision this host lacks
        print(f"slimseg-eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"backend {backend}, precision {args.precision if predict else 'fp32'}",
          file=sys.stderr)
    if model is not None:
        model.to(device)
    if args.channels_last and model is not None:
        model.to(memory_format=torch.channels_last)
    widths = args.widths or (list(engine.widths.values) if bundle else None)
    per_image: dict[float, dict[str, list]] | None = {} if args.per_image else None
    results = evaluate(model, loader, len(info.class_names), info.class_names, info.mean,
                       info.std, widths, device, args.boundary_tolerance,
                       args.sliding_window, channels_last=args.channels_last,
                       progress=sys.stderr.isatty(), per_image=per_image, predict=predict)
    table = markdown_table(results, info.class_names)
    print(table)
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"checkpoint": str(args.checkpoint), "dataset": args.dataset,
                   "classes": classes, "split": args.split, "size": args.size,
                   "input_size": list(args.input_size) if args.input_size else None,
                   "sliding_window": args.sliding_window,
                   "backend": backend, "precision": args.precision if predict else "fp32",
                   "boundary_tolerance_px": args.boundary_tolerance,
                   "results": {f"{w:g}": r for w, r in results.items()}}
        (out / "metrics.json").write_text(json.dumps(payload, indent=2))
        (out / "metrics.md").write_text(table)
        print(f"wrote {out / 'metrics.json'} and {out / 'metrics.md'}")
        if per_image is not None:
            write_per_image(out / "per_image.npz", per_image)
            print(f"wrote {out / 'per_image.npz'}")
    if args.confidence and bundle:
        print("slimseg-eval: --confidence needs the .pt checkpoint (it builds graphs with the "
              "confidence output)", file=sys.stderr)
        return 2
    if args.confidence:
        confidence_report(model, info, args, device, backend, loader, list(results))
    return 0


def confidence_report(model: nn.Module, info: Any, args: argparse.Namespace,
                      device: torch.device, backend: str, loader: DataLoader,
                      widths: Sequence[float]) -> dict[float, dict]:
    """
    Run the engine with its confidence output over ``loader``; print and write the report.

    The engine is the node's (same backend, precision and graphs), so the confidence measured is
    the one the node publishes.
    """
    from slimseg_ros.inference.engine import SegmentationEngine

    from .calibration import collect, markdown_report

    engine = SegmentationEngine(copy.deepcopy(model), info, device=device, backend=backend,
                                precision=args.precision, checkpoint_path=args.checkpoint,
                                input_size=(tuple(args.input_size) if args.input_size
                                            else tuple(args.size) if args.size else None),
                                confidence=True, ladder=False)
    trained = [engine.widths.exact(w) for w in widths]
    found = collect(engine.segment, loader, trained, IGNORE_INDEX)
    summaries = {float(w): bins.summary() for w, bins in found.items()}
    table = markdown_report(summaries)
    print(table)
    if args.output:
        out = Path(args.output)
        (out / "confidence.json").write_text(json.dumps(
            {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
             "backend": engine.backend, "precision": engine.precision,
             "results": {f"{w:g}": s for w, s in summaries.items()}}, indent=2))
        (out / "confidence.md").write_text(table)
        print(f"wrote {out / 'confidence.json'} and {out / 'confidence.md'}")
    return summaries


if __name__ == "__main__":
    sys.exit(main())
