"""
Uniform weight averaging of model checkpoints of one network (SWA snapshots, model soups).

Averaging the weights of several checkpoints of the same network, e.g. the snapshots a
constant-learning-rate run keeps (``runtime.snapshot_interval``; stochastic weight averaging,
Izmailov et al. 2018) or fine-tuned models from one start ("model soups", Wortsman et al. 2022),
often generalises better than any one of them at no inference cost. Every width's BatchNorm
running statistics are averaged too; ``slimseg-calibrate-bn`` re-estimates them exactly where
the averaged models are far apart.

    slimseg-average runs/x/snapshots/model_iter*.pt --output averaged.pt
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slimseg_ros.models import ModelInfo, save_checkpoint
from slimseg_ros.models.checkpoint import CheckpointError, model_from_payload, safe_torch_load
from slimseg_ros.models.config import model_config_differences
from slimseg_ros.models.segmenter import SlimSegmenter

# what must agree besides the network (model config) and the weights' names and shapes
_SAME_INFO = ("class_names", "mean", "std")


def average_checkpoints(paths: Sequence[str | os.PathLike]
                        ) -> tuple[SlimSegmenter, ModelInfo]:
    """
    Return the network of ``paths[0]`` with every floating tensor the mean over all ``paths``.

    Every file is read and checked like any model checkpoint; all must hold the same network,
    classes and normalisation (the ImageNet source may differ), else :class:`CheckpointError`
    names the file and what differs. Integer buffers (BN batch counters) come from the first.
    """
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    first = safe_torch_load(paths[0])
    model, info = model_from_payload(first, str(paths[0]))
    sums = {k: v.double() for k, v in model.state_dict().items() if v.is_floating_point()}
    for path in paths[1:]:
        payload = safe_torch_load(path)
        other, _ = model_from_payload(payload, str(path))
        diff = model_config_differences(payload["config"], first["config"])
        diff = ", ".join(filter(None, [diff] + [k for k in _SAME_INFO
                                                if payload.get(k) != first.get(k)]))
        if diff:
            raise CheckpointError(f"checkpoint file {path} holds a different network than "
                                  f"{paths[0]}: {diff} differ")
        for k, v in other.state_dict().items():
            if k in sums:
                sums[k] += v.double()
    state = model.state_dict()
    for k, total in sums.items():
        state[k] = (total / len(paths)).to(state[k].dtype)
    model.load_state_dict(state)
    return model, info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slimseg-average",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="deployable model checkpoints (.pt)")
    parser.add_argument("--output", required=True, help="averaged checkpoint to write")
    parser.add_argument("--half", action="store_true", help="store fp16 weights (for shipping)")
    args = parser.parse_args(argv)
    output = Path(args.output)
    if any(output.resolve() == Path(p).resolve() for p in args.checkpoints):
        print(f"slimseg-average: error: --output {output} is one of the inputs; "
              "write the average to a new file", file=sys.stderr)
        return 2
    try:
        model, info = average_checkpoints(args.checkpoints)
    except CheckpointError as exc:
        print(f"slimseg-average: error: {exc}", file=sys.stderr)
        return 2
    save_checkpoint(output, model, info, half=args.half,
                    extra={"averaged_from": [str(p) for p in args.checkpoints]})
    print(f"averaged {len(args.checkpoints)} checkpoints; wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
