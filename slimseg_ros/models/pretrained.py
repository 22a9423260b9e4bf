"""
Load ImageNet weights (a torchvision state dict) into the full width of a slimmable backbone.

Our backbones keep torchvision's module names, so keys match *by name*, never by position:

* a ``SlimmableConv2d`` at ``layer1.0.conv1`` takes ``layer1.0.conv1.weight`` as is (the full
  tensor; narrower widths are slices of it, so they start from the first filters/channels);
* a ``SwitchableBatchNorm2d`` at ``bn1`` holds one BatchNorm per width (``bn1.bn.<i>.*``); every
  one of them is initialised from ``bn1.*``: the full-width BN gets all of it, a narrower BN its
  first ``channels_list[i]`` entries (statistics and affine). That is the natural start for a
  narrower width, which sees exactly those first channels.

Anything in the file that the backbone does not use must be listed in ``ignore_prefixes`` (the
ImageNet classifier ``fc.``); any other unused key, any backbone tensor the file lacks and any
shape mismatch raise :class:`PretrainedError`, which names the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, refused_pickle
from .slimmable import SwitchableBatchNorm2d

LOG = logging.getLogger(__name__)

# Values of ``ModelConfig.pretrained`` that mean "fetch torchvision's ImageNet weights" rather
# than "read this file". For these backbones torchvision *is* the weights package.
TORCHVISION_SOURCES = ("torchvision", "package")


class PretrainedError(CheckpointError):
    """An ImageNet weights file is missing, unsafe, unreadable or does not fit the backbone."""


@dataclass
class LoadReport:
    """What :func:`load_full_width` did: file keys used, ignored on purpose, BN copies made."""

    source: str
    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped_optional: list[str] = field(default_factory=list)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """
    Read a state dict with ``torch.load(weights_only=True)`` (no code from the file runs).

    Accepts a plain ``{name: tensor}`` dict, one wrapped under ``"state_dict"`` or ``"model"``,
    and strips a ``module.`` prefix left by (Distributed)DataParallel.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"ImageNet weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and format errors all mean "not a valid file"
        refused = refused_pickle(exc)
        if refused is not None:
            what = f" ({refused})" if refused else ""
            raise PretrainedError(
                f"ImageNet weights file {path} holds pickled code or objects{what} that a state "
                "dict never contains; it was not loaded and nothing in it was run") from None
        text = str(exc).strip()
        reason = text.splitlines()[0][:200] if text else type(exc).__name__
        raise PretrainedError(f"ImageNet weights file {path} is corrupt, truncated or not a safe "
                              f"torch state dict ({reason})") from None
    return as_state_dict(obj, str(path))


def as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Validate/unwrap ``obj`` into ``{name: tensor}``; ``source`` names it in errors."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise PretrainedError(f"ImageNet weights file {source} does not hold a state dict "
                              f"(got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise PretrainedError(f"ImageNet weights file {source} is not a name -> tensor state dict "
                              f"(e.g. entry {bad[0]!r})")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def torchvision_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """
    Load torchvision's default ImageNet weights for ``arch`` (``"resnet50"``, ``"mobilenet_v2"``).

    Uses torchvision's weights API, which downloads into the torch hub cache once; a failed
    download becomes a :class:`PretrainedError` that says what to do instead.
    """
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    try:
        state = weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0][:200] if text else type(exc).__name__
        raise PretrainedError(
            f"could not get torchvision's ImageNet weights {weights} for {arch} "
            f"from {weights.url} "
            f"({reason}); download that file where the network is reachable and set "
            f"'pretrained' to its path") from None
    return as_state_dict(state, weights.url)


def resolve_pretrained(pretrained: str | os.PathLike, arch: str
                       ) -> tuple[dict[str, torch.Tensor], str]:
    """State dict and its description for ``ModelConfig.pretrained`` (a path or "torchvision")."""
    if str(pretrained) in TORCHVISION_SOURCES:
        return torchvision_state_dict(arch), f"torchvision:{arch}"
    return read_state_dict(pretrained), str(pretrained)


Target = tuple[str, torch.Tensor, int | None, tuple[int, ...]]


def _targets(module: nn.Module) -> dict[str, list[Target]]:
    """
    File key -> [(our key, our tensor, channels to copy or None for all, file shape needed)].

    A BN entry of any width needs the full ``num_features`` in the file and copies its first
    ``channels_list[i]`` values; everything else needs exactly our tensor's shape.
    """
    targets: dict[str, list[Target]] = {}
    bn_prefixes: list[str] = []
    for name, mod in module.named_modules():
        if any(name.startswith(p) for p in bn_prefixes):
            continue  # the inner BatchNorms of a SwitchableBatchNorm2d, handled below
        prefix = f"{name}." if name else ""
        if isinstance(mod, SwitchableBatchNorm2d):
            bn_prefixes.append(f"{prefix}bn.")
            for i, bn in enumerate(mod.bn):
                for pname, tensor in [*bn.named_parameters(recurse=False),
                                      *bn.named_buffers(recurse=False)]:
                    if tensor.dim() > 0:
                        entry = (f"{prefix}bn.{i}.{pname}", tensor, mod.channels_list[i],
                                 (mod.num_features,))
                    else:  # num_batches_tracked
                        entry = (f"{prefix}bn.{i}.{pname}", tensor, None, ())
                    targets.setdefault(prefix + pname, []).append(entry)
            continue
        for pname, tensor in [*mod.named_parameters(recurse=False),
                              *mod.named_buffers(recurse=False)]:
            targets.setdefault(prefix + pname, []).append(
                (prefix + pname, tensor, None, tuple(tensor.shape)))
    return targets


def load_full_width(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                    ignore_prefixes: Sequence[str] = ()) -> LoadReport:
    """
    Copy a torchvision-named ``state_dict`` into ``module``'s full-width weights and every BN.

    Everything is checked before anything is copied, so a bad file leaves ``module`` untouched.
    ``num_batches_tracked`` may be absent (older torchvision files); it is then left as is.
    Raises :class:`PretrainedError` naming ``source`` on missing, unexpected or misshapen keys.
    """
    targets = _targets(module)
    report = LoadReport(source=source)
    missing: list[str] = []
    mismatched: list[str] = []
    for key, entries in targets.items():
        if key not in state_dict:
            if key.endswith("num_batches_tracked"):
                report.skipped_optional.append(key)
            else:
                missing.append(key)
            continue
        want = entries[0][3]
        got = tuple(state_dict[key].shape)
        if got != want:
            mismatched.append(f"{key}: file {list(got)} vs model {list(want)}")
    unexpected = [k for k in state_dict if k not in targets
                  and not any(k.startswith(p) for p in ignore_prefixes)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} backbone tensor(s) missing from the file "
                         f"(e.g. {missing[:4]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:4]})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (e.g. {mismatched[:3]})")
        raise PretrainedError(f"ImageNet weights file {source} does not fit the "
                              f"{type(module).__name__} backbone: " + "; ".join(parts))
    with torch.no_grad():
        for key, entries in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            for _, tensor, channels, _ in entries:
                tensor.copy_(value if channels is None else value[:channels])
            report.loaded.append(key)
    report.ignored = [k for k in state_dict if k not in targets]
    LOG.info("loaded %d tensors from %s into %s (ignored %d: %s)", len(report.loaded), source,
             type(module).__name__, len(report.ignored),
             sorted({k.split(".")[0] for k in report.ignored}))
    return report


def load_pretrained(module: nn.Module, pretrained: str | os.PathLike, arch: str,
                    ignore_prefixes: Sequence[str] = ()) -> LoadReport:
    """Resolve ``pretrained`` (path or "torchvision") and load it with :func:`load_full_width`."""
    state, source = resolve_pretrained(pretrained, arch)
    return load_full_width(module, state, source, ignore_prefixes)
