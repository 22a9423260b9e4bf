"""
Starting a run from the weights of a deployable checkpoint (``load_from``).

Kept apart from ``train`` because fine-tuning has its own rules: where ``packaged:NAME``
points, which network differences are allowed (only the class count, the classifier then
starts afresh) and what the log should warn about.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from slimseg_ros.models import CheckpointError
from slimseg_ros.models.checkpoint import model_from_payload, safe_torch_load
from slimseg_ros.models.config import model_config_differences
from slimseg_ros.models.segmenter import classifier_keys
from slimseg_ros.resources import data_dirs, packaged_file

from .config import ConfigError, TrainConfig
from .slimseg import trained_network
from .train_state import STATE_FORMAT

# ``load_from: packaged:default.pt`` names a model shipped with the package (its models/ folder)
PACKAGED = "packaged:"


def resolve_load_from(value: str) -> Path:
    """
    Resolve the file ``load_from`` names: a path, or ``packaged:NAME`` for a shipped model.

    ``packaged:NAME`` is ``models/NAME`` under the installed ``share/slimseg_ros`` or the source
    checkout, so a config names the default model wherever the package lives.
    """
    if not value.startswith(PACKAGED):
        return Path(value).expanduser()
    name = value[len(PACKAGED):].strip()
    if not name or name in (".", "..") or Path(name).name != name:
        raise ConfigError(f"load_from: {value!r}: after {PACKAGED!r} comes the file name of a "
                          f"packaged model, e.g. {PACKAGED}default.pt")
    found = packaged_file("models", name)
    if found is not None:
        return found
    dirs = data_dirs("models")
    if not dirs:
        raise ConfigError(f"load_from: {value}: no packaged models found (neither an installed "
                          f"share/slimseg_ros/models nor a source checkout's models/); give "
                          f"the checkpoint's path instead")
    shipped = sorted({p.name for d in dirs for p in d.glob("*.pt")})
    listing = f"; packaged models: {', '.join(shipped)}" if shipped else ""
    raise ConfigError(f"load_from: {value}: no model {name} in "
                      f"{', '.join(str(d) for d in dirs)}{listing}")


@dataclasses.dataclass
class InitialWeights:
    """What :func:`load_initial_weights` did, for the run's log."""

    path: Path
    loaded: int  # tensors copied from the checkpoint
    new: list[str]  # tensors left at their fresh initialisation (the classifier)
    classes: int  # this run's class count
    checkpoint_classes: int
    notes: list[str]  # things the user may not have meant (other class names, normalisation)

    def describe(self, value: str) -> str:
        """One log line: ``load_from X: 1283 tensors loaded, 2 new (classifier for 4 ...)``."""
        where = value if str(self.path) == value else f"{value} ({self.path})"
        line = f"load_from {where}: {self.loaded} tensors loaded, {len(self.new)} new"
        if self.new:
            line += (f" (classifier for {self.classes} classes; the checkpoint had "
                     f"{self.checkpoint_classes})")
        return "; ".join([line, *self.notes])


def load_initial_weights(cfg: TrainConfig, model: nn.Module, path: str | os.PathLike,
                         class_names: Sequence[str] | None = None) -> InitialWeights:
    """
    Start from the weights of a deployable checkpoint (``load_from``).

    The file is read and checked like any model checkpoint (format, version, every tensor
    fitting its own network). Its network must be this run's (the ImageNet source may differ)
    except for ``model.num_classes``: with another class count every tensor but the classifier
    (:func:`classifier_keys`) is copied and the classifier keeps its fresh initialisation
    (fine-tuning to a new class list). Any other difference is refused before anything is
    copied, naming the file and the differing keys. ``class_names`` (this run's) only add a
    note to the report when they differ from the checkpoint's at the same count.
    """
    payload = safe_torch_load(path)
    if isinstance(payload, dict) and payload.get("format") == STATE_FORMAT:
        raise ConfigError(f"load_from: {path} is a training state; continue it with --resume")
    source, info = model_from_payload(payload, str(path))
    ours, theirs = trained_network(cfg.model, cfg.distill).to_dict(), source.config.to_dict()
    if model_config_differences({**ours, "num_classes": theirs["num_classes"]}, theirs):
        raise ConfigError(f"load_from: {path} holds a different network: "
                          f"{model_config_differences(ours, theirs)} (only model.num_classes "
                          f"may differ: the classifier then starts afresh)")
    new = classifier_keys(model) if ours["num_classes"] != theirs["num_classes"] else []
    state = {k: v for k, v in source.state_dict().items() if k not in new}
    missing, unexpected = model.load_state_dict(state, strict=False)  # copies in place
    if sorted(missing) != sorted(new) or unexpected:
        raise CheckpointError(f"load_from: {path} does not fit this run's network: "
                              f"missing {sorted(missing)[:3]}, unexpected {unexpected[:3]}")
    notes = []
    if not new and class_names is not None and list(class_names) != list(info.class_names):
        notes.append(f"note: the class names differ from the checkpoint's "
                     f"({', '.join(info.class_names)}); with the same count its classifier is "
                     f"kept, row i starting class i")
    if (list(cfg.data.mean), list(cfg.data.std)) != (list(info.mean), list(info.std)):
        notes.append(f"note: the checkpoint was trained on images normalised with mean "
                     f"{list(info.mean)} std {list(info.std)}, this run uses data.mean "
                     f"{list(cfg.data.mean)} data.std {list(cfg.data.std)}")
    return InitialWeights(Path(path), len(state), list(new), ours["num_classes"],
                          theirs["num_classes"], notes)
