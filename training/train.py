"""
``slimseg-train``: SlimSeg training on one device or several processes (torchrun + DDP).

    slimseg-train --config training/configs/camvid_deeplabv3plus_r18.yaml [key=value ...]
    slimseg-train --config ... --resume                 # continue from <output_dir>/last.pt
    torchrun --nproc_per_node 4 -m slimseg_ros.training.train --config ...

The run folder (``output_dir``) receives ``config.yaml`` (resolved), ``last.pt`` (full training
state, written atomically every ``runtime.checkpoint_interval`` iterations, at the end and on
SIGTERM/Ctrl-C), ``best_model.pt`` and ``final_model.pt`` (deployable model checkpoints),
``train_log.jsonl`` and TensorBoard events under ``tb/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from slimseg_ros.models import CheckpointError, ModelInfo, build_model, save_checkpoint
from slimseg_ros.models.checkpoint import atomic_torch_save
from slimseg_ros.widths import find_width

from .config import (ConfigError, TrainConfig, config_from_dict, load_config, save_config,
                     split_names)
from .datasets import DatasetError, build_dataset, class_pixel_counts
from .evaluate import evaluate
from .initial_weights import load_initial_weights, resolve_load_from
from .losses import median_frequency_weights
from .optim import build_optimizer, build_scheduler
from .sampler import ResumableSampler
from .slimseg import LOSS_NAMES, slimseg_step, trained_network, training_widths
from .train_state import load_train_state, restore_state, seed_everything, train_state
from .train_support import (DistInfo, StopFlag, append_jsonl, ignore_stop_signals,
                            init_distributed, log, pick_device, stop_requested)
from .transforms import eval_transform, normalize_batch, train_transform


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN/inf; training stops at once without overwriting checkpoints."""


# ---------------------------------------------------------------------------------------------
# building blocks


def resolve_model_config(cfg: TrainConfig) -> TrainConfig:
    """
    Return the config with the network its distillation mode trains.

    See ``slimseg.trained_network``.
    """
    model = trained_network(cfg.model, cfg.distill)
    return cfg if model is cfg.model else dataclasses.replace(cfg, model=model)


def model_info(cfg: TrainConfig, dataset: Any, input_size: Sequence[int] | None) -> ModelInfo:
    spec = dataset.spec
    return ModelInfo(class_names=list(spec.class_names), palette=[list(c) for c in spec.palette],
                     mean=list(cfg.data.mean), std=list(cfg.data.std),
                     input_size=list(input_size) if input_size else None)


def checkpoint_info(cfg: TrainConfig, train_set: Any, val_set: Any | None) -> ModelInfo:
    """
    Describe what the run's deployable checkpoints carry.

    The input size is ``data.eval_size`` or that of the first validation image.
    """
    input_size = cfg.data.eval_size
    if input_size is None and val_set is not None:
        input_size = tuple(val_set[0][1].shape[-2:])
    return model_info(cfg, train_set, input_size)


def class_weights_for(cfg: TrainConfig, train_set: Any) -> torch.Tensor | None:
    """
    Return the per-class weights of the label terms.

    From ``distill.class_weights``.
    """
    spec = cfg.distill.class_weights
    if spec is None:
        return None
    n = cfg.model.num_classes
    if isinstance(spec, str):  # "median_frequency", from the training split's labels
        class_pixels, image_pixels = class_pixel_counts(train_set)
        return median_frequency_weights(class_pixels, image_pixels, cfg.distill.class_weight_power)
    if len(spec) != n:
        raise ConfigError(f"distill.class_weights has {len(spec)} values for {n} classes")
    return torch.tensor(spec, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# the parts of a run: data, network, loaders (the restored state: train_state.py)


def build_datasets(cfg: TrainConfig, dinfo: DistInfo) -> tuple[Any, Any | None]:
    """
    Build the training split (every process) and the validation split (rank 0, which validates).

    Every file is checked here, so a broken dataset stops the run before the first iteration.
    """
    d = cfg.data
    train_set = build_dataset(d.dataset, d.root, d.train_split,
                              train_transform(d.crop_size, d.scale_range, d.flip, d.photometric),
                              check=d.check_labels, classes=d.classes)
    check_class_count(cfg, train_set.spec)
    val_set = None
    if dinfo.main:
        val_set = build_dataset(d.dataset, d.root, d.val_split, eval_transform(d.eval_size),
                                check=d.check_labels, classes=d.classes)
    return train_set, val_set


def check_class_count(cfg: TrainConfig, spec: Any) -> None:
    """``model.num_classes`` must be the dataset's class count; the error says what to set."""
    n = spec.num_classes
    if n == cfg.model.num_classes:
        return
    where = (f"the {spec.origin} names {n} classes" if spec.origin
             else f"{cfg.data.dataset} has {n} classes")
    shown = ", ".join(spec.class_names[:8]) + (", ..." if n > 8 else "")
    raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but {where} ({shown}); "
                      f"set model.num_classes: {n} in the config (or model.num_classes={n} on "
                      f"the command line)")


def build_network(cfg: TrainConfig, device: torch.device, dinfo: DistInfo) -> nn.Module:
    """
    Build the network on ``device``.

    With the configured BN momentum, memory layout and SyncBN.
    """
    model = build_model(cfg.model)
    if cfg.optim.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = cfg.optim.bn_momentum
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(device)
    if dinfo.enabled and cfg.runtime.sync_bn:
        if device.type == "cuda":
            # the per-width BNs are plain BatchNorm2d inside SwitchableBatchNorm2d.bn
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif dinfo.main:
            log("runtime.sync_bn ignored: PyTorch's SyncBatchNorm needs CUDA devices; "
                "every process keeps its own BatchNorm statistics")
    return model


def label_class_weights(cfg: TrainConfig, train_set: Any, dinfo: DistInfo, out_dir: Path,
                        device: torch.device) -> torch.Tensor | None:
    """:func:`class_weights_for` on ``device``; rank 0 logs them and writes them to the log."""
    weights = class_weights_for(cfg, train_set)
    if weights is None:
        return None
    if dinfo.main:
        names = train_set.spec.class_names
        log("class weights of the label terms: " + ", ".join(
            f"{name} {v:.3f}" for name, v in zip(names, weights.tolist())))
        append_jsonl(out_dir / "train_log.jsonl", {
            "type": "class_weights", "mode": str(cfg.distill.class_weights),
            "weights": dict(zip(names, weights.tolist()))})
    return weights.to(device)


def wrap_ddp(model: nn.Module, cfg: TrainConfig, device: torch.device,
             dinfo: DistInfo) -> nn.Module:
    """
    Return the module that runs forward.

    ``model`` itself, or its DDP wrapper under torchrun.
    """
    if not dinfo.enabled:
        return model
    if cfg.runtime.channels_last:
        # depthwise weights (C x 1 x k x k) have two equivalent NHWC stride patterns; DDP warns
        # about the mismatch although the memory layout is the same
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)


def build_loaders(cfg: TrainConfig, train_set: Any, val_set: Any | None, dinfo: DistInfo,
                  device: torch.device, start_iteration: int
                  ) -> tuple[DataLoader, DataLoader | None]:
    """
    Build the training and validation loaders.

    The training loader continues the data order at ``start_iteration``; the validation loader is
    None where there is no validation split (ranks other than 0).
    """
    d = cfg.data
    if d.batch_size % dinfo.world_size:
        raise ConfigError(f"data.batch_size {d.batch_size} (the total over all processes) is "
                          f"not divisible by the {dinfo.world_size} processes")
    batch = d.batch_size // dinfo.world_size
    sampler = ResumableSampler(train_set, cfg.seed, dinfo.rank, dinfo.world_size,
                               start=start_iteration * batch * cfg.optim.accum_steps)
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler,
                        num_workers=d.workers, pin_memory=device.type == "cuda",
                        drop_last=True, persistent_workers=d.workers > 0,
                        worker_init_fn=ignore_stop_signals,
                        generator=torch.Generator().manual_seed(cfg.seed),
                        prefetch_factor=2 if d.workers > 0 else None)
    val_loader = None
    if val_set is not None:
        vs = val_set if cfg.eval.max_images is None else \
            Subset(val_set, range(min(cfg.eval.max_images, len(val_set))))
        val_loader = DataLoader(vs, batch_size=cfg.eval.batch_size, shuffle=False,
                                num_workers=min(d.workers, 2),
                                worker_init_fn=ignore_stop_signals,
                                pin_memory=device.type == "cuda")
    return loader, val_loader


@dataclasses.dataclass
class Run:
    """What the steps of one training run share, handed to each of them explicitly."""

    cfg: TrainConfig
    dinfo: DistInfo
    device: torch.device
    out_dir: Path
    model: nn.Module  # runs forward: the network, or its DDP wrapper
    raw_model: nn.Module  # the network itself: widths, state dicts, checkpoints
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    amp: bool
    widths: list[float]  # trained every iteration, widest first
    class_weights: torch.Tensor | None
    info: ModelInfo  # what deployable checkpoints carry besides the weights
    best: dict[str, Any]  # score, iteration and mIoU per width of best_model.pt
    writer: Any = None  # TensorBoard SummaryWriter on rank 0, if enabled

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp \
            else contextlib.nullcontext()

    def sync_context(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces gradients only in the last backward pass of an optimizer step."""
        if self.dinfo.enabled and not last:
            return self.model.no_sync()  # type: ignore[operator]
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()


# ---------------------------------------------------------------------------------------------
# one training iteration


def train_one_iteration(run: Run, batches: Iterator, iteration: int
                        ) -> tuple[dict[float, dict[str, float]], float]:
    """
    One optimizer step (``optim.accum_steps`` micro-batches, every width on each).

    Returns the loss terms per width (mean over micro-batches and processes) and the LR the
    step used. ``iteration`` counts the steps done before this one; a non-finite loss raises
    :class:`NonFiniteLossError` before the step, so nothing is written.
    """
    cfg, device, accum = run.cfg, run.device, run.cfg.optim.accum_steps
    run.optimizer.zero_grad(set_to_none=True)
    sums: dict[float, dict[str, torch.Tensor]] = {}
    for micro in range(accum):
        images, labels = next(batches)
        x = normalize_batch(images.to(device, non_blocking=True), cfg.data.mean, cfg.data.std,
                            cfg.runtime.channels_last)
        y = labels.to(device, non_blocking=True)
        losses = slimseg_step(run.model, x, y, run.widths, cfg.distill, run.backward,
                              width_target=run.raw_model, sync_context=run.sync_context,
                              last_micro_batch=micro == accum - 1, autocast=run.autocast,
                              loss_scale=1.0 / accum, class_weights=run.class_weights)
        for w, terms in losses.items():
            acc = sums.setdefault(w, {k: torch.zeros((), device=device) for k in LOSS_NAMES})
            for k in LOSS_NAMES:
                acc[k] += terms[k].float() / accum
    # one host transfer per iteration: non-finite check + logging values
    flat = torch.stack([sums[w][k] for w in run.widths for k in LOSS_NAMES])
    if run.dinfo.enabled:
        dist.all_reduce(flat)
        flat /= run.dinfo.world_size
    values = flat.cpu().tolist()
    n = len(LOSS_NAMES)
    table = {w: dict(zip(LOSS_NAMES, values[i * n:(i + 1) * n])) for i, w in enumerate(run.widths)}
    bad = [(w, k) for w in run.widths for k, v in table[w].items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(f"non-finite loss at iteration {iteration}: "
                                 + ", ".join(f"width {w:g} {k}={table[w][k]}" for w, k in bad)
                                 + "; stopping (last.pt is left as it was)")
    if cfg.optim.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.raw_model.parameters(), cfg.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    return table, lr


class _Throughput:
    """Iterations per second since the previous call."""

    def __init__(self, iteration: int) -> None:
        self.time, self.iteration = time.perf_counter(), iteration

    def __call__(self, iteration: int) -> float:
        now = time.perf_counter()
        rate = (iteration - self.iteration) / max(now - self.time, 1e-9)
        self.time, self.iteration = now, iteration
        return rate


def report_iteration(run: Run, iteration: int, end: int, table: dict[float, dict[str, float]],
                     lr: float, throughput: _Throughput, pbar: Any) -> None:
    """
    Report progress on rank 0: the progress bar every iteration, and periodic records.

    Every ``runtime.log_interval`` iterations (and at ``end``): a train_log.jsonl record,
    TensorBoard scalars and, without a bar, a log line.
    """
    cfg, widths = run.cfg, run.widths
    if pbar is not None:
        pbar.update(1)
        pbar.set_postfix_str(" ".join(f"{w:g}:{table[w]['total']:.3f}" for w in widths)
                             + f" lr={lr:.2e}", refresh=False)
    if iteration % cfg.runtime.log_interval and iteration != end:
        return
    rate = throughput(iteration)
    append_jsonl(run.out_dir / "train_log.jsonl", {
        "type": "train", "iteration": iteration, "lr": lr, "it_per_s": rate,
        "loss": {f"{w:g}": table[w] for w in widths}})
    if run.writer is not None:
        run.writer.add_scalar("train/lr", lr, iteration)
        for w in widths:
            for k, v in table[w].items():
                run.writer.add_scalar(f"train/{k}_w{w:g}", v, iteration)
    if pbar is None:
        log(f"iter {iteration}/{cfg.schedule.iterations} lr {lr:.2e} {rate:.2f} it/s "
            + " ".join(f"w{w:g}={table[w]['total']:.4f}" for w in widths))


# ---------------------------------------------------------------------------------------------
# validation, checkpoints, stopping


def validate(run: Run, val_loader: DataLoader | None, iteration: int) -> None:
    """
    Rank 0 scores every width on val and keeps ``best_model.pt`` when the score improves.

    The score is the mean mIoU over the widths, or that of ``eval.best_width``. Every process
    waits for rank 0 (DDP).
    """
    cfg, model = run.cfg, run.raw_model
    if run.dinfo.main and val_loader is not None:
        results = evaluate(model, val_loader, cfg.model.num_classes, run.info.class_names,
                           cfg.data.mean, cfg.data.std, eval_widths(cfg), run.device,
                           cfg.eval.boundary_tolerance, channels_last=cfg.runtime.channels_last,
                           amp=run.amp)
        model.train()
        miou = {w: r["miou"] for w, r in results.items()}
        best_w = (find_width(tuple(miou), cfg.eval.best_width)
                  if cfg.eval.best_width is not None else None)
        if best_w is not None:
            score = miou[best_w]
        else:
            score = float(np.nanmean(list(miou.values())))
        best = run.best
        text = " ".join(f"w{w:g}={100 * v:.2f}" for w, v in sorted(miou.items()))
        log(f"[eval] iter {iteration}: mIoU(%) {text} "
            f"(score {100 * score:.2f}, best {100 * max(best['score'], score):.2f})")
        append_jsonl(run.out_dir / "train_log.jsonl", {
            "type": "eval", "iteration": iteration,
            "miou": {f"{w:g}": v for w, v in miou.items()},
            "boundary_f": {f"{w:g}": r.get("boundary_f") for w, r in results.items()},
            "pixel_accuracy": {f"{w:g}": r["pixel_accuracy"] for w, r in results.items()},
            "score": score})
        if run.writer is not None:
            for w, r in results.items():
                run.writer.add_scalar(f"val/miou_w{w:g}", r["miou"], iteration)
                if r.get("boundary_f") is not None:
                    run.writer.add_scalar(f"val/boundary_f_w{w:g}", r["boundary_f"], iteration)
        if score > best["score"]:
            best.update(score=score, iteration=iteration,
                        miou={f"{w:g}": v for w, v in miou.items()})
            save_checkpoint(run.out_dir / "best_model.pt", model, run.info,
                            extra={"iteration": iteration, "val_miou": best["miou"],
                                   "val_split": cfg.data.val_split,
                                   "train_splits": split_names(cfg.data.train_split)})
    if run.dinfo.enabled:
        dist.barrier()


def save_last(run: Run, iteration: int) -> None:
    """Rank 0 writes the training state to ``last.pt`` atomically."""
    if run.dinfo.main:
        atomic_torch_save(train_state(run.raw_model, run.optimizer, run.scheduler, run.scaler,
                                      iteration, run.best, run.cfg), run.out_dir / "last.pt")


def save_snapshot(run: Run, iteration: int) -> None:
    """Rank 0 keeps a deployable ``snapshots/model_iter<N>.pt`` for weight averaging."""
    if run.dinfo.main:
        save_checkpoint(run.out_dir / "snapshots" / f"model_iter{iteration:06d}.pt",
                        run.raw_model, run.info,
                        extra={"iteration": iteration,
                               "train_splits": split_names(run.cfg.data.train_split)})


def end_run(run: Run, val_loader: DataLoader | None, iteration: int,
            stopped_by: str | None = None) -> dict[str, Any]:
    """
    Write ``last.pt`` and, once the schedule is complete, validate and write ``final_model.pt``.

    Returns the summary :func:`train` returns.
    """
    finished = stopped_by is None and iteration >= run.cfg.schedule.iterations
    if finished:
        validate(run, val_loader, iteration)
    save_last(run, iteration)
    if run.dinfo.main and stopped_by is not None:
        log(f"stopped by {stopped_by} at iteration {iteration}; resume with --resume "
            f"{run.out_dir / 'last.pt'}")
    if run.dinfo.main and finished:
        final = run.out_dir / "final_model.pt"
        save_checkpoint(final, run.raw_model, run.info,
                        extra={"iteration": iteration, "val_miou": run.best.get("miou"),
                               "train_splits": split_names(run.cfg.data.train_split)})
        log(f"done: {iteration} iterations; best mean val mIoU {100 * run.best['score']:.2f}% "
            f"at iteration {run.best['iteration']}; wrote {final}")
    return {"iteration": iteration, "interrupted": stopped_by is not None, "best": run.best,
            "output_dir": str(run.out_dir), "model": run.raw_model}


# ---------------------------------------------------------------------------------------------
# the training run


def train(cfg: TrainConfig, resume: str | os.PathLike | None = None,
          max_iterations: int | None = None) -> dict[str, Any]:
    """
    Run (or continue) training; returns a summary dict (final iteration, best score, paths).

    ``max_iterations`` stops early after that many optimizer steps *in total* without changing
    the schedule (used to simulate an interrupted run).
    """
    cfg = resolve_model_config(cfg)
    dinfo = init_distributed(cfg.runtime.device)
    device = pick_device(cfg.runtime.device, dinfo)
    if device.type == "cpu" and cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    out_dir = Path(cfg.output_dir)
    stop = StopFlag()
    writer = pbar = None
    try:
        stop.install()  # from here on SIGTERM / Ctrl-C end the run cleanly with a last.pt
        seed_everything(cfg.seed)
        if dinfo.main:
            out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out_dir / "config.yaml")
        train_set, val_set = build_datasets(cfg, dinfo)

        raw_model = build_network(cfg, device, dinfo)
        if cfg.load_from and resume is None:
            # after build_network, so these weights replace any ImageNet ones (model.pretrained)
            loaded = load_initial_weights(cfg, raw_model, resolve_load_from(cfg.load_from),
                                          train_set.spec.class_names)
            if dinfo.main:
                log(loaded.describe(cfg.load_from))
        class_weights = label_class_weights(cfg, train_set, dinfo, out_dir, device)
        optimizer = build_optimizer(raw_model, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.schedule)
        amp = cfg.runtime.amp and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        start_it, best = 0, {"score": -math.inf, "iteration": None, "miou": {}}
        if resume is not None:
            start_it, best = restore_state(resume, cfg, raw_model, optimizer, scheduler, scaler)
            if dinfo.main:
                log(f"resumed from {resume} at iteration {start_it}")
        model = wrap_ddp(raw_model, cfg, device, dinfo)

        info = checkpoint_info(cfg, train_set, val_set)
        loader, val_loader = build_loaders(cfg, train_set, val_set, dinfo, device, start_it)
        if dinfo.main and cfg.runtime.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(out_dir / "tb"))
        run = Run(cfg, dinfo, device, out_dir, model, raw_model, optimizer, scheduler, scaler,
                  amp, training_widths(cfg.model.widths, cfg.distill), class_weights,
                  info, best, writer)

        end_it = cfg.schedule.iterations if max_iterations is None \
            else min(max_iterations, cfg.schedule.iterations)
        if dinfo.main and cfg.runtime.progress:
            from tqdm import tqdm
            pbar = tqdm(total=cfg.schedule.iterations, initial=start_it, dynamic_ncols=True,
                        desc="train", mininterval=2.0, file=sys.stderr)
        raw_model.train()
        batches = iter(loader)
        it, throughput = start_it, _Throughput(start_it)
        while it < end_it:
            table, lr = train_one_iteration(run, batches, it)
            it += 1
            if dinfo.main:
                report_iteration(run, it, end_it, table, lr, throughput, pbar)
            if cfg.eval.interval and it % cfg.eval.interval == 0 and it < cfg.schedule.iterations:
                validate(run, val_loader, it)
            if cfg.runtime.snapshot_interval and it % cfg.runtime.snapshot_interval == 0:
                save_snapshot(run, it)
            if it % cfg.runtime.checkpoint_interval == 0:
                save_last(run, it)
            requested = stop_requested(stop, dinfo, device)
            if requested:
                return end_run(run, val_loader, it, stopped_by=requested)
        return end_run(run, val_loader, it)
    finally:
        stop.restore()
        if pbar is not None:
            pbar.close()
        if writer is not None:
            writer.close()
        if dinfo.enabled and dist.is_initialized():
            dist.destroy_process_group()


def eval_widths(cfg: TrainConfig) -> list[float]:
    model_ws = cfg.model.widths
    if cfg.eval.widths is None:
        return list(model_ws)
    return [w for w in cfg.eval.widths if find_width(model_ws, w) is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slimseg-train",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("--config", help="YAML config (default: the one stored in --resume)")
    parser.add_argument("--resume", nargs="?", const="", default=None,
                        help="continue from a last.pt (default: <output_dir>/last.pt)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. "
                        "optim.lr=0.02 data.root=/data/camvid")
    args = parser.parse_args(argv)
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        # `--resume key=value ...`: the optional path swallowed the first override
        args.overrides.insert(0, args.resume)
        args.resume = ""
    try:
        if args.config is None and args.resume:
            from .config import apply_overrides
            state = load_train_state(args.resume)
            cfg = config_from_dict(apply_overrides(state["config"], args.overrides))
        elif args.config is None:
            parser.error("--config is required (or --resume PATH)")
        else:
            cfg = load_config(args.config, args.overrides)
        resume = None
        if args.resume is not None:
            resume = args.resume or str(Path(cfg.output_dir) / "last.pt")
        summary = train(cfg, resume)
    except (ConfigError, DatasetError, CheckpointError, FileNotFoundError) as exc:
        print(f"slimseg-train: error: {exc}", file=sys.stderr)
        return 2
    return 130 if summary["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
