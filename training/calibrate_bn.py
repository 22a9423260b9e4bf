"""
Per-width BatchNorm recalibration after training (Yu & Huang, universally slimmable networks).

During training each width's running statistics are an exponential average over augmented crops
(random scale, 240x320 say) while the weights kept changing. Re-estimating them once at the end,
as an exact average over un-augmented training images at the evaluation resolution, costs one
forward pass per image and width and often helps the narrow widths most. Weights do not change.

    slimseg-calibrate-bn --checkpoint best_model.pt --dataset camvid --root ../shared/data/CamVid \
        --split train --output calibrated.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from slimseg_ros.models import load_checkpoint, save_checkpoint, set_width, trained_widths
from slimseg_ros.models.slimmable import SwitchableBatchNorm2d

from .datasets import DATASET_NAMES, build_dataset
from .transforms import eval_transform, normalize_batch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor],
                   widths: Sequence[float] | None = None) -> None:
    """
    Replace each width's BN running statistics by their exact mean over ``batches``.

    ``batches`` yields normalised ``N x 3 x H x W`` float images (it is iterated once per
    width, so pass a re-iterable such as a list or DataLoader). Only the BNs of the width being
    calibrated see its batches; affine parameters and all weights stay as they are.
    """
    widths = list(trained_widths(model) if widths is None else widths)
    switchable = [m for m in model.modules() if isinstance(m, SwitchableBatchNorm2d)]
    was_training = model.training
    for w in widths:
        set_width(model, w)
        index = switchable[0].width_index if switchable else 0
        saved = []
        for sbn in switchable:
            bn = sbn.bn[index]
            saved.append((bn, bn.momentum))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average = exact mean over the batches
        model.train()
        for x in batches:
            model(x)
        for bn, momentum in saved:
            bn.momentum = momentum
    model.train(was_training)
    set_width(model, max(trained_widths(model)))


def _batches(loader: DataLoader, mean: Sequence[float], std: Sequence[float],
             device: torch.device, channels_last: bool) -> list[torch.Tensor]:
    out = []
    for images, _ in loader:
        out.append(normalize_batch(images.to(device), mean, std, channels_last))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slimseg-calibrate-bn",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="deployable model checkpoint (.pt)")
    parser.add_argument("--dataset", required=True, choices=list(DATASET_NAMES))
    parser.add_argument("--root", required=True)
    parser.add_argument("--classes", help="classes file of a folder dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize images to H W (default: native resolution)")
    parser.add_argument("--max-images", type=int, help="use the first N images")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--output", required=True, help="calibrated checkpoint to write")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.dataset == "folder" and not args.classes:
        parser.error("--dataset folder needs --classes (its classes file)")
    classes = str(Path(args.classes).expanduser().resolve()) if args.classes else None
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, info = load_checkpoint(args.checkpoint)
        dataset = build_dataset(args.dataset, args.root, args.split, eval_transform(args.size),
                                classes=classes)
    except (ValueError, FileNotFoundError) as exc:
        print(f"slimseg-calibrate-bn: error: {exc}", file=sys.stderr)
        return 2
    if args.max_images:
        dataset = Subset(dataset, range(min(args.max_images, len(dataset))))
    device = torch.device(args.device)
    model.to(device).to(memory_format=torch.channels_last)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, drop_last=True)
    batches = _batches(loader, info.mean, info.std, device, channels_last=True)
    recalibrate_bn(model, batches)
    save_checkpoint(args.output, model.cpu().to(memory_format=torch.contiguous_format), info,
                    extra={"bn_calibration": {"dataset": args.dataset, "split": args.split,
                                              "images": len(batches) * args.batch_size,
                                              "source": str(args.checkpoint)}})
    print(f"recalibrated BN statistics of widths {list(trained_widths(model))} on "
          f"{len(batches) * args.batch_size} {args.split} images; wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
