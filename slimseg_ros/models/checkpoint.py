"""
Deployable checkpoints: config, widths, classes, palette, normalisation and weights in one file.

Files are read with ``torch.load(weights_only=True)``, so loading never runs code from the file,
and are written atomically (temporary file in the same folder + ``os.replace``) so a crash never
leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .segmenter import SlimSegmenter, build_model

FORMAT = "slimseg_ros/model"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, truncated or does not match the model."""


@dataclass
class ModelInfo:
    """
    What a consumer needs besides the weights to interpret the network's input and output.

    ``mean``/``std`` are per RGB channel on the 0-255 pixel scale: ``x = (pixel - mean) / std``.
    """

    class_names: list[str]
    palette: list[list[int]]
    mean: list[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    std: list[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])
    input_size: list[int] | None = None  # [height, width] the network was trained/evaluated at

    def validate(self, num_classes: int) -> None:
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        if len(self.palette) != num_classes or any(len(c) != 3 for c in self.palette):
            raise ValueError(f"the palette needs {num_classes} RGB triples")
        if any(not 0 <= v <= 255 for c in self.palette for v in c):
            raise ValueError("palette values must be in 0..255")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need 3 values each, std > 0")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def refused_pickle(exc: BaseException) -> str | None:
    """
    Name what a ``weights_only`` load refused to unpickle; None when ``exc`` is no such refusal.

    The name looks like ``"posix.system"`` (``""`` if torch gave none).

    torch's own message is not worth relaying: it suggests loading again with
    ``weights_only=False``, which would run whatever code the file holds.
    """
    text = str(exc)
    if not isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" not in text:
        return None
    found = re.search(r"(?:GLOBAL|Unsupported class)\s+([\w.]+)", text)
    if found:
        return found.group(1).rstrip(".")
    # "Unsupported operand N" and the like: bytes that are no pickle at all, a corrupt file
    return None if "Unsupported operand" in text else ""


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with one clear sentence naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not a valid file"
        refused = refused_pickle(exc)
        if refused is not None:
            what = f" ({refused})" if refused else ""
            raise CheckpointError(
                f"checkpoint file {path} holds pickled code or objects{what} that a slimseg "
                "checkpoint never contains; it was not loaded and nothing in it was run") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint file {path} is corrupt, truncated or not a safe "
                              f"slimseg checkpoint ({reason[:200]})") from None


def model_payload(model: SlimSegmenter, info: ModelInfo, half: bool = False,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    Build the dict written to disk.

    ``half=True`` stores floating weights as fp16 (half the size).
    """
    config: ModelConfig = model.config
    info.validate(config.num_classes)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "widths": list(config.widths),
        "class_names": list(info.class_names),
        "palette": [list(map(int, c)) for c in info.palette],
        "mean": [float(v) for v in info.mean],
        "std": [float(v) for v in info.std],
        "input_size": list(info.input_size) if info.input_size else None,
        "state_dict": state,
    }
    if extra:
        payload["extra"] = extra
    return payload


def save_checkpoint(path: str | os.PathLike, model: SlimSegmenter, info: ModelInfo,
                    half: bool = False, extra: dict[str, Any] | None = None) -> None:
    """Write a deployable checkpoint atomically."""
    atomic_torch_save(model_payload(model, info, half=half, extra=extra), path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[SlimSegmenter, ModelInfo]:
    """
    Rebuild the network from a checkpoint and load its weights (fp32, eval mode).

    Raises :class:`CheckpointError` with a sentence naming the file for any bad input.
    """
    payload = safe_torch_load(path, map_location)
    return model_from_payload(payload, str(path))


def model_from_payload(payload: Any, source: str) -> tuple[SlimSegmenter, ModelInfo]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint file {source} is not a slimseg_ros model checkpoint "
                              f"(missing format tag {FORMAT!r})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint file {source} has format version "
                              f"{payload.get('format_version')}, this code reads {FORMAT_VERSION}")
    try:
        config_dict = dict(payload["config"])
        config_dict["pretrained"] = None  # trained weights follow; never re-read ImageNet files
        config = ModelConfig.from_dict(config_dict)
        info = ModelInfo(class_names=list(payload["class_names"]),
                         palette=[list(c) for c in payload["palette"]],
                         mean=list(payload["mean"]), std=list(payload["std"]),
                         input_size=payload.get("input_size"))
        info.validate(config.num_classes)
        model = build_model(config)
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in payload["state_dict"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint file {source} does not match its model: "
                              f"{' '.join(str(exc).split())[:400]}") from None
    if missing or unexpected:
        raise CheckpointError(f"checkpoint file {source} does not match its model: "
                              f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                              f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    model.eval()
    return model, info


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, half: bool = True,
                       input_size: list[int] | None = None) -> None:
    """
    Re-write a model checkpoint, e.g. as fp16 weights for shipping (about half the size).

    The network is rebuilt and loaded first, so a bad source fails before anything is written.
    """
    model, info = load_checkpoint(src)
    if input_size is not None:
        info.input_size = list(input_size)
    save_checkpoint(dst, model, info, half=half)


def main(argv: list[str] | None = None) -> int:
    """``python -m slimseg_ros.models.checkpoint SRC DST [--fp32] [--input-size H W]``."""
    import argparse

    parser = argparse.ArgumentParser(description="Convert a slimseg model checkpoint "
                                     "(default: fp16 weights, for shipping).")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--fp32", action="store_true", help="keep fp32 weights")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="network input size stored for the node and the engine")
    args = parser.parse_args(argv)
    try:
        convert_checkpoint(args.src, args.dst, half=not args.fp32, input_size=args.input_size)
    except CheckpointError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"wrote {args.dst} ({Path(args.dst).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
