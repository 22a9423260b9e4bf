"""
Training configuration: YAML -> frozen dataclasses, unknown keys rejected by name.

``load_config(path, ["optim.lr=0.02", "data.root=/data/camvid"])`` reads the YAML (merged
onto the file its ``base:`` names, see :func:`read_config_file`), applies dotted ``key=value``
overrides (values parsed as YAML) and validates the result. The resolved config (``to_dict``)
is written to the run folder and into every checkpoint, so a resumed or evaluated run rebuilds
exactly the same network.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimseg_ros.models import ModelConfig

from .slimseg import distill_mode_problem

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CLASS_WEIGHT_MODES = ("median_frequency",)


class ConfigError(ValueError):
    """A config file or override is malformed, unknown or out of range."""


def _tuple(value: Any, n: int | None, name: str, kind: type = float) -> tuple:
    if isinstance(value, (int, float)) and n is not None:
        value = [value] * n
    try:
        out = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of {kind.__name__}, got {value!r}") from None
    if n is not None and len(out) != n:
        raise ConfigError(f"{name} needs {n} values, got {list(out)}")
    return out


def _splits(value: Any, name: str) -> str | tuple[str, ...]:
    """
    Parse a split name, ``"a+b"``, or a list of names (-> tuple).

    Empty or repeated names are refused.
    """
    if isinstance(value, str):
        parts = value.split("+")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
        if any("+" in p for p in parts):
            raise ConfigError(f"{name}: give either a list of splits or one 'a+b' string, "
                              f"got {list(value)!r}")
    else:
        raise ConfigError(f"{name} must be a split name or a list of split names, got {value!r}")
    if not parts or any(not p.strip() for p in parts):
        raise ConfigError(f"{name} names an empty split: {value!r}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"{name} repeats a split: {value!r}")
    return value if isinstance(value, str) else tuple(parts)


def split_names(split: str | Sequence[str]) -> list[str]:
    """``"train+val"`` or ``["train", "val"]`` -> ``["train", "val"]``."""
    return split.split("+") if isinstance(split, str) else list(split)


@dataclass(frozen=True)
class DataConfig:
    """Dataset, augmentation and loader settings. Sizes are ``[height, width]`` in pixels."""

    dataset: str = "camvid"  # camvid | cityscapes | folder
    root: str = "../shared/data/CamVid"  # relative paths resolve against the working directory
    # folder only (required there): the classes file (names, palette, ignore_index); a relative
    # path is read from ``root``
    classes: str | None = None
    # one split, several joined with "+" ("train+val"), or a list of splits ([train, val]): the
    # standard final-model protocol trains on train+val
    train_split: str | tuple[str, ...] = "train"
    val_split: str = "val"
    crop_size: tuple[int, int] = (360, 480)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    photometric: float = 0.5  # probability of a colour jitter
    batch_size: int = 8  # total per optimizer micro-step over all processes (DDP splits it)
    workers: int = 2
    eval_size: tuple[int, int] | None = None  # None: evaluate at the native resolution
    mean: tuple[float, float, float] = IMAGENET_MEAN  # 0-255 scale
    std: tuple[float, float, float] = IMAGENET_STD
    check_labels: bool = True

    def __post_init__(self) -> None:
        if self.dataset not in ("camvid", "cityscapes", "folder"):
            raise ConfigError(f"data.dataset must be 'camvid', 'cityscapes' or 'folder', "
                              f"got {self.dataset!r}")
        if self.dataset == "folder" and not self.classes:
            raise ConfigError("data.dataset=folder needs data.classes: the classes file (names, "
                              "palette, ignore_index; a relative path is read from data.root)")
        if self.dataset != "folder" and self.classes is not None:
            raise ConfigError(f"data.classes is only read for data.dataset=folder; "
                              f"{self.dataset} has its own class table (set data.classes: null)")
        object.__setattr__(self, "train_split", _splits(self.train_split, "data.train_split"))
        _splits(self.val_split, "data.val_split")
        if not isinstance(self.val_split, str):
            raise ConfigError(f"data.val_split must be one split name, got {self.val_split!r}")
        object.__setattr__(self, "crop_size", _tuple(self.crop_size, 2, "data.crop_size", int))
        object.__setattr__(self, "scale_range", _tuple(self.scale_range, 2, "data.scale_range"))
        object.__setattr__(self, "mean", _tuple(self.mean, 3, "data.mean"))
        object.__setattr__(self, "std", _tuple(self.std, 3, "data.std"))
        if self.eval_size is not None:
            object.__setattr__(self, "eval_size", _tuple(self.eval_size, 2, "data.eval_size", int))
        if min(self.crop_size) < 1 or self.batch_size < 1 or self.workers < 0:
            raise ConfigError("data.crop_size and data.batch_size must be positive, "
                              "data.workers >= 0")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"data.std must be > 0, got {list(self.std)}")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum; weight decay on conv/linear weights only when ``no_decay_norm_bias``."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    no_decay_norm_bias: bool = True
    grad_clip: float | None = None  # max global grad norm, None = off
    accum_steps: int = 1  # micro-batches per optimizer step
    # BatchNorm running-stat momentum for every BN of the network during training; None keeps
    # the backbone's own (EfficientNet-Lite: TF's 0.01, slow to forget ImageNet statistics in
    # short fine-tuning runs, which then hurts eval-mode accuracy)
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ConfigError("optim.lr must be > 0, momentum in [0, 1), weight_decay >= 0")
        if self.accum_steps < 1:
            raise ConfigError(f"optim.accum_steps must be >= 1, got {self.accum_steps}")
        if self.bn_momentum is not None and not 0.0 < self.bn_momentum <= 1.0:
            raise ConfigError(f"optim.bn_momentum must be in (0, 1], got {self.bn_momentum}")


@dataclass(frozen=True)
class ScheduleConfig:
    """
    Poly decay ``(1 - it / iterations) ** power`` after a linear warm-up.

    Iterations count optimizer steps (not micro-batches).
    """

    iterations: int = 20000
    warmup_iters: int = 500
    warmup_ratio: float = 0.1  # lr factor at iteration 0
    power: float = 0.9
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.warmup_iters < 0:
            raise ConfigError("schedule.iterations must be >= 1 and warmup_iters >= 0")


@dataclass(frozen=True)
class DistillConfig:
    """The SlimSeg recipe: which width teaches which, KD temperature/weight, boundary loss."""

    mode: str = "stepwise"  # one of slimseg.DISTILL_MODES, interpreted there
    width: float | None = None  # independent mode: the one width trained (a plain network)
    temperature: float = 1.0
    kd_weight: float = 1.0
    label_weight: float = 1.0  # weight of CE for the narrower widths (the widest always gets 1)
    boundary: bool = True
    boundary_radius: int = 3  # pixels
    boundary_weight: float = 1.0
    # per-class weights of the label terms (CE and boundary CE, every width): None (plain CE),
    # "median_frequency" (computed from the training labels, Eigen & Fergus) or one value per
    # class; ``class_weight_power`` softens computed weights (0.5 = square root, 0 = none)
    class_weights: str | tuple[float, ...] | None = None
    class_weight_power: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.class_weights, str):
            if self.class_weights not in CLASS_WEIGHT_MODES:
                raise ConfigError(f"distill.class_weights must be one of {CLASS_WEIGHT_MODES}, "
                                  f"a list of per-class weights or null, "
                                  f"got {self.class_weights!r}")
        elif self.class_weights is not None:
            weights = _tuple(self.class_weights, None, "distill.class_weights")
            if not weights or any(not math.isfinite(v) or v <= 0 for v in weights):
                raise ConfigError(f"distill.class_weights must be positive finite numbers, "
                                  f"got {list(weights)}")
            object.__setattr__(self, "class_weights", weights)
        if not 0.0 <= self.class_weight_power <= 1.0:
            raise ConfigError(f"distill.class_weight_power must be in [0, 1], "
                              f"got {self.class_weight_power}")
        problem = distill_mode_problem(self.mode, self.width)
        if problem:
            raise ConfigError(problem)
        if self.temperature <= 0 or self.boundary_radius < 1:
            raise ConfigError("distill.temperature must be > 0 and boundary_radius >= 1")


@dataclass(frozen=True)
class EvalConfig:
    interval: int = 1000  # iterations between validations (0 = only at the end)
    widths: tuple[float, ...] | None = None  # None: every trained width
    batch_size: int = 1
    max_images: int | None = None  # validate on the first N images only (quick runs)
    boundary_tolerance: int = 3  # pixels, for the boundary F-score
    best_width: float | None = None  # width whose mIoU picks the best checkpoint; None = mean

    def __post_init__(self) -> None:
        if self.widths is not None:
            object.__setattr__(self, "widths", _tuple(self.widths, None, "eval.widths"))
        if self.interval < 0 or self.batch_size < 1:
            raise ConfigError("eval.interval must be >= 0 and eval.batch_size >= 1")


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch.set_num_threads on CPU; None leaves the default
    amp: bool = True  # float16 autocast + GradScaler, CUDA only
    channels_last: bool = True  # NHWC: ~20-35% faster SlimSeg steps on CPU (oneDNN)
    sync_bn: bool = False  # convert BatchNorm to SyncBatchNorm under DDP
    checkpoint_interval: int = 200  # iterations between last.pt writes
    # iterations between kept model snapshots (snapshots/model_iterN.pt, deployable) for weight
    # averaging (slimseg-average); 0 keeps none
    snapshot_interval: int = 0
    log_interval: int = 10
    tensorboard: bool = True
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        if self.checkpoint_interval < 1 or self.log_interval < 1:
            raise ConfigError("runtime.checkpoint_interval and log_interval must be >= 1")
        if self.snapshot_interval < 0:
            raise ConfigError("runtime.snapshot_interval must be >= 0 (0 keeps no snapshots)")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/slimseg"
    seed: int = 0
    # a deployable checkpoint of the same network whose weights start this run (fine-tuning,
    # mmseg's ``load_from``); optimizer and schedule start fresh. Only model.num_classes may
    # differ (the classifier then starts afresh); ``packaged:default.pt`` names the shipped
    # model. Ignored by --resume.
    load_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ModelConfig):
                out[f.name] = value.to_dict()
            elif dataclasses.is_dataclass(value):
                out[f.name] = _plain(dataclasses.asdict(value))
            else:
                out[f.name] = value
        return out


SECTIONS = {"data": DataConfig, "optim": OptimConfig, "schedule": ScheduleConfig,
            "distill": DistillConfig, "eval": EvalConfig, "runtime": RuntimeConfig}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _section(cls: type, data: Any, name: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, got {data!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {[f'{name}.{k}' for k in unknown]}; "
                          f"known keys of {name!r}: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(hints[k], v, f"{name}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"config section {name!r}: {exc}") from None


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """
    Check/convert a scalar against its field type.

    YAML 1.1 reads ``1e-4`` as a string, so numbers written that way are converted here; anything
    else of the wrong type is an error.
    """
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args or hint is type(None):
            return None
        raise ConfigError(f"{key} may not be null")
    scalar = [a for a in args if a is not type(None)] if args else [hint]
    if len(scalar) != 1 or scalar[0] not in (int, float, bool, str):
        return value  # tuples and nested types are checked in __post_init__
    kind = scalar[0]
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if kind is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a folder called 2024
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(number)
    return number


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Validate a plain dict (as read from YAML) into a :class:`TrainConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"a training config must be a mapping, got {type(data).__name__}")
    if "base" in data:
        raise ConfigError("'base' names the file a config file starts from and is only read "
                          "from config files (--config), not from overrides or stored configs")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown top-level config key(s) {unknown}; known: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        kwargs[name] = _section(cls, data.get(name), name)
    try:
        kwargs["model"] = ModelConfig.from_dict(data.get("model") or {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config section 'model': {exc}") from None
    if "output_dir" in data:
        kwargs["output_dir"] = str(data["output_dir"])
    if "seed" in data:
        kwargs["seed"] = int(data["seed"])
    if data.get("load_from") is not None:
        kwargs["load_from"] = str(data["load_from"])
    return TrainConfig(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings to a nested dict; values are parsed as YAML."""
    data = _plain(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override key {key!r} is malformed")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def merge_configs(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """
    Merge ``child`` over ``base``, mappings key by key.

    Anything else (lists, scalars, null) replaces the base's value whole.
    """
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """
    Read a YAML config file as a plain dict, merged onto the file its ``base:`` names.

    ``base: other.yaml`` (relative to this file's folder) lets a file hold only what it changes
    (mmsegmentation's ``_base_``, one file): its keys override the base's per nested key (see
    :func:`merge_configs`). A base may have a base of its own; a missing base or a cycle is an
    error naming the files.
    """
    return _read_with_base(Path(path), ())


def _read_with_base(path: Path, children: tuple[Path, ...]) -> dict[str, Any]:
    seen = [p.resolve() for p in children]
    if path.resolve() in seen:
        cycle = children[seen.index(path.resolve()):] + (path,)
        raise ConfigError("circular base: " + " -> ".join(str(p) for p in cycle))
    if not path.is_file():
        if children:
            raise ConfigError(f"config file {children[-1]}: its base {path} does not exist")
        raise ConfigError(f"config file {path} does not exist")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"config file {path}: base must be the path of another config file, "
                          f"got {base!r}")
    base_path = Path(base).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    return merge_configs(_read_with_base(base_path, children + (path,)), data)


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (None: defaults) with its base, apply overrides, validate."""
    data = read_config_file(path) if path is not None else {}
    return config_from_dict(apply_overrides(data, overrides))


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
