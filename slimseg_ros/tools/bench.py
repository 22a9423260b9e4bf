"""
Benchmark the engine per width: latency, FLOPs, cost of slimmability, switch and load times.

``slimseg-bench [--checkpoint X | --config Y | --backbone B] [--device cpu]
[--sizes 360x480 512x1024] [--iters N] [--json out.json] [--plot out.png] [--onnx]``

For each frame size and trained width, in one run:

* FLOPs (2 x multiply-adds of convs/matmuls) and parameters of the width;
* latency p50/p90 of ``SegmentationEngine.infer`` (uint8 frame in -> uint8 mask out, ms);
* latency of a *plain* network of exactly that width, built fresh with the same architecture
  (``to_plain`` + the same BatchNorm folding, same pre/post-processing): what a dedicated
  single-width network would cost. ``engine/plain`` near 1.0 means slimmability costs nothing;
* each width's latency relative to the widest, beside its FLOPs ratio;
* optionally onnxruntime latency of the exported network (same pre/post-processing in torch).

Engine, plain (and onnxruntime) runs alternate within every round, and every round visits all
widths, so background load hits all contestants alike: compare ratios from one run, never
absolute times across runs or machines. ``engine/plain`` is given as the ratio of the p50s and, in
brackets, as the median of the per-round ratios (paired, the more robust under drifting load);
with ``--threads 1`` on a CPU also as the paired ratio of thread CPU times, which other
processes on a shared machine barely disturb.
Per width it also reports the time of a width switch (``SegmentationEngine.network``: choosing the
width's prepared network, what each frame does) beside the time to load a separate single-width
checkpoint of that width from disk (a lower bound: file already in the page cache, modules made
on the meta device, weights assigned without copying).

Without a model argument it uses the packaged default model (the one the node loads when its
``checkpoint`` parameter is empty, from the installed share folder or the source tree) when there
is one, else a random-weight ResNet-18 DeepLabV3+ with 19 classes (latency does not depend on the
weight values).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..inference.backends import BACKENDS, EAGER
from ..inference.engine import (SegmentationEngine, check_frame, frames_to_batch, postprocess,
                                preprocess, resolve_device, round_input_size)
from ..inference.specialise import fold_batchnorm, module_bytes
from ..models.checkpoint import CheckpointError, ModelInfo, load_checkpoint
from ..models.config import ModelConfig
from ..models.segmenter import build_model
from ..models.slimmable import set_width as set_model_width, to_plain, trained_widths
from ..resources import default_checkpoint
from ..widths import TrainedWidths, Width
from .common import format_size, markdown_header, markdown_row, size_arg
from .common import parse_size  # noqa: F401 - importable from here (test_bench)
from .flops import count_flops, count_params

DEFAULT_CONFIG = {"backbone": "resnet18", "head": "deeplabv3plus", "num_classes": 19}


# ----------------------------------------------------------------------------------------------
# Model source
# ----------------------------------------------------------------------------------------------

def packaged_checkpoint() -> Path | None:
    """
    Find the packaged default model the node would load with an empty ``checkpoint`` parameter.

    None where none is shipped (or several without a ``default.pt``).
    """
    try:
        return default_checkpoint()
    except FileNotFoundError:
        return None


def default_info(num_classes: int) -> ModelInfo:
    return ModelInfo(class_names=[f"class{i}" for i in range(num_classes)],
                     palette=[[(37 * i) % 256, (91 * i) % 256, (153 * i) % 256]
                              for i in range(num_classes)])


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """
    Model config from YAML: either the model keys at the top or under ``model:``.

    A training config's ``base:`` is followed, so a file that changes a few keys of another
    still describes the whole network; a missing file or base raises a ValueError naming it.
    """
    from ..training.config import read_config_file

    data = read_config_file(path)
    return dict(data.get("model", data))


def resolve_model(args: argparse.Namespace) -> tuple[nn.Module, ModelInfo, str]:
    """(slimmable model in eval mode on CPU, info, a description of where it came from)."""
    if args.checkpoint:
        model, info = load_checkpoint(args.checkpoint)
        return model, info, f"checkpoint {args.checkpoint}"
    overrides = {k: v for k, v in (("backbone", args.backbone), ("head", args.head),
                                   ("num_classes", args.num_classes)) if v is not None}
    if args.config or overrides:
        data = dict(DEFAULT_CONFIG)
        if args.config:
            data.update(load_config_file(args.config))
        data.update(overrides)
        data["pretrained"] = None  # random weights: latency does not depend on their values
        config = ModelConfig.from_dict(data)
        source = f"config {args.config}" if args.config else "config"
    else:
        found = packaged_checkpoint()
        if found is not None:
            model, info = load_checkpoint(found)
            return model, info, f"packaged checkpoint {found.name}"
        config = ModelConfig.from_dict(DEFAULT_CONFIG)
        source = "default config (random weights)"
    return build_model(config).eval(), default_info(config.num_classes), source


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------

def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean()), "min": float(a.min()), "n": int(a.size)}


def flops_and_params(model: nn.Module, sizes: Sequence[tuple[int, int]]
                     ) -> tuple[dict[tuple[tuple[int, int], Width], int], dict[Width, int]]:
    """
    Count FLOPs per (size, width) and parameters per width (:mod:`slimseg_ros.tools.flops`).

    Keyed by the model's trained widths as :class:`~slimseg_ros.widths.Width` (those of an
    engine of this model).

    FLOPs (2 x multiply-adds of conv/matmul) are counted on a meta-device copy: no arithmetic is
    done. Parameters are those of ``to_plain(model, w)`` (convs and that width's BatchNorms).
    """
    meta = copy.deepcopy(model).to("meta")
    widths = TrainedWidths(trained_widths(model))
    flops = {(tuple(size), w): count_flops(meta, w.value, size) for size in sizes for w in widths}
    return flops, {w: count_params(model, w.value) for w in widths}


def plain_networks(config: ModelConfig, device: torch.device, dtype: torch.dtype,
                   channels_last: bool) -> dict[Width, nn.Module]:
    """
    Build fresh non-slimmable networks of exactly each width, as a dedicated network would run.

    Each is a new random model through ``to_plain``, BN folded the same way as in the engine.
    """
    fresh = build_model(ModelConfig.from_dict({**config.to_dict(), "pretrained": None})).eval()
    fmt = torch.channels_last if channels_last else torch.preserve_format
    nets = {}
    for width in TrainedWidths(trained_widths(fresh)):
        net = to_plain(fresh, width.value).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        net, _ = fold_batchnorm(net)
        nets[width] = net.to(device, dtype, memory_format=fmt)
    return nets


class PlainRunner:
    """The engine's exact frame -> mask pipeline around a given network (no slimmable parts)."""

    def __init__(self, engine: SegmentationEngine, net: Callable[[torch.Tensor], torch.Tensor]):
        self.engine, self.net = engine, net

    def __call__(self, image: np.ndarray) -> np.ndarray:
        e = self.engine
        frame = check_frame(image)
        with torch.inference_mode():
            x = preprocess(frames_to_batch(frame, e.device), e._mean, e._inv_std, e.input_size,
                           e.dtype, e.channels_last)
            return postprocess(self.net(x), frame.shape[:2])[0].cpu().numpy()


class OrtNet:
    """onnxruntime session called like a torch module (normalised float32 in, logits out)."""

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.device = device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": x.float().contiguous().cpu().numpy()})[0]
        return torch.from_numpy(out).to(self.device)


def time_call(fn: Callable[[], Any]) -> tuple[float, float]:
    """
    (wall ms, CPU ms of the calling thread) of one call.

    With one torch thread on the CPU all the work runs in the calling thread, so its CPU time
    leaves out the time other processes held the core: a far steadier figure on a shared
    machine, used for the engine/plain ratio.
    """
    start, start_cpu = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - start) * 1000.0, (time.thread_time() - start_cpu) * 1000.0


def switch_times_us(engine: SegmentationEngine, model: nn.Module, reps: int) -> dict[Width, dict]:
    """
    Time width switches: p50/max µs per target width.

    Both the engine's switch (``engine.network``, the prepared network of that width) and the
    slimmable model's own ``set_width`` (a walk over all modules, what ``specialise=False`` pays).
    """
    widths = engine.widths
    eng: dict[Width, list[float]] = {w: [] for w in widths}
    slim: dict[Width, list[float]] = {w: [] for w in widths}
    clock = time.perf_counter_ns
    for i in range(reps):
        w = widths[i % len(widths)]
        t0 = clock()
        engine.network(w)
        t1 = clock()
        eng[w].append((t1 - t0) / 1000.0)
        if i < max(len(widths), reps // 10):
            t0 = clock()
            set_model_width(model, w.value)
            slim[w].append((clock() - t0) / 1000.0)
    return {w: {"switch_us_p50": float(np.median(eng[w])), "switch_us_max": float(np.max(eng[w])),
                "slimmable_set_width_us_p50": float(np.median(slim[w]))} for w in widths}


def load_times_ms(engine: SegmentationEngine, width: Width, folder: Path,
                  reps: int) -> dict[str, float]:
    """Time to bring a separate single-width checkpoint of ``width`` from disk to the device."""
    net = engine.network(width)
    path = folder / f"plain_w{width:.2f}.pt"
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, path)
    skeleton = copy.deepcopy(net).to("meta")
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        state = torch.load(path, map_location="cpu", weights_only=True)
        fresh = copy.deepcopy(skeleton)
        fresh.load_state_dict(state, assign=True)
        fresh.to(engine.device).eval()
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"load_ms_p50": float(np.median(times)), "file_mb": path.stat().st_size / 2**20}


def run_benchmark(model: nn.Module, info: ModelInfo, sizes: Sequence[tuple[int, int]],
                  device: str = "auto", iters: int = 10, warmup: int = 2, onnx: bool = False,
                  precision: str = "fp32", channels_last: bool | None = None,
                  switch_reps: int = 2000, load_reps: int = 3,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure everything described in the module docstring; returns a JSON-ready dict."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"iters must be >= 1 and warmup >= 0, got {iters} and {warmup}")
    dev = resolve_device(device)
    config: ModelConfig = model.config
    slim_bytes = module_bytes(model)
    # torch: the engine/plain comparison measures slimmability in one runtime (--backends
    # compares runtimes, each in its own process)
    engine = SegmentationEngine(copy.deepcopy(model), info, device=dev, precision=precision,
                                channels_last=channels_last, backend=EAGER)
    widths = engine.widths
    single_thread = dev.type == "cpu" and torch.get_num_threads() == 1
    log(f"engine: {engine}")
    plain = plain_networks(config, dev, engine.dtype, engine.channels_last)
    contestants: dict[str, dict[Width, Callable[[np.ndarray], np.ndarray]]] = {
        "engine": {w: (lambda img, w=w: engine.infer(img, w)) for w in widths},
        "plain": {w: PlainRunner(engine, plain[w]) for w in widths},
    }
    tmp = tempfile.TemporaryDirectory(prefix="slimseg-bench-")
    folder = Path(tmp.name)
    try:
        if onnx:
            from ..inference.export import export_onnx, metadata

            onnx_nets = {}
            for w in widths:
                path = folder / f"w{w:.2f}.onnx"
                example = torch.randn(1, 3, *sizes[0])
                export_onnx(copy.deepcopy(engine.network(w)).float().cpu()
                            .to(memory_format=torch.contiguous_format), example, path,
                            metadata(engine, w))
                onnx_nets[w] = PlainRunner(engine, OrtNet(path, dev))
            contestants["onnxruntime"] = onnx_nets

        log("counting FLOPs and parameters ...")
        flops, params = flops_and_params(model, sizes)
        rows = []
        for size in sizes:
            size = (h, w_px) = (int(size[0]), int(size[1]))
            log(f"size {format_size(h, w_px)}: warming up ...")
            image = np.random.default_rng(0).integers(0, 256, (h, w_px, 3), dtype=np.uint8)
            for runners in contestants.values():
                for w in widths:
                    for _ in range(warmup):
                        runners[w](image)
            samples = {name: {w: [] for w in widths} for name in contestants}
            cpu = {name: {w: [] for w in widths} for name in contestants}
            names = list(contestants)
            for r in range(iters):
                order = names if r % 2 == 0 else names[::-1]  # alternate who goes first
                for w in widths:
                    for name in order:
                        wall_ms, cpu_ms = time_call(lambda: contestants[name][w](image))
                        samples[name][w].append(wall_ms)
                        cpu[name][w].append(cpu_ms)
                log(f"  round {r + 1}/{iters}: " + ", ".join(
                    f"{w:g}: {samples['engine'][w][-1]:.1f}/{samples['plain'][w][-1]:.1f} ms"
                    for w in widths))
            top = widths[-1]
            for w in widths:
                eng, pln = summary(samples["engine"][w]), summary(samples["plain"][w])
                paired = np.median(np.asarray(samples["engine"][w])
                                   / np.asarray(samples["plain"][w]))
                row = {
                    "size": [h, w_px], "width": w.value,
                    "gflops": flops[(size, w)] / 1e9, "params_m": params[w] / 1e6,
                    "engine_ms": eng, "plain_ms": pln,
                    "engine_over_plain": eng["p50"] / pln["p50"],
                    "engine_over_plain_paired": float(paired),
                    "latency_ratio": eng["p50"] / float(np.percentile(samples["engine"][top], 50)),
                    "flops_ratio": flops[(size, w)] / flops[(size, top)],
                    "onnx_ms": summary(samples["onnxruntime"][w]) if onnx else None,
                    # thread CPU time: only meaningful with one torch thread on the CPU
                    "engine_cpu_ms": summary(cpu["engine"][w]) if single_thread else None,
                    "plain_cpu_ms": summary(cpu["plain"][w]) if single_thread else None,
                    "engine_over_plain_cpu": float(np.median(
                        np.asarray(cpu["engine"][w]) / np.asarray(cpu["plain"][w])))
                    if single_thread else None,
                }
                rows.append(row)

        log("timing width switches and single-width checkpoint loads ...")
        switch = switch_times_us(engine, copy.deepcopy(model), switch_reps)
        switching = [{"width": w.value, **switch[w],
                      **load_times_ms(engine, w, folder, load_reps)}
                     for w in widths]
    finally:
        tmp.cleanup()

    return {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "device": str(dev),
            "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                            else platform.processor() or platform.machine()),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "precision": engine.precision, "channels_last": engine.channels_last,
            "iters": iters, "warmup": warmup, "widths": list(widths.values),
            "config": config.to_dict(), "flops_definition": "2 x multiply-adds of conv/matmul",
        },
        "memory": {"slimmable_weights_bytes": slim_bytes,
                   "specialised_weights_bytes": engine.extra_memory_bytes(),
                   "folded_bn_per_width": {str(w.value): n for w, n in engine.folded_bn.items()}},
        "results": rows,
        "switching": switching,
    }


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

def format_report(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"device {meta['device']} ({meta['device_name']}), torch {meta['torch']}, "
             f"{meta['torch_threads']} threads, {meta['precision']}, "
             f"channels_last={meta['channels_last']}, {meta['iters']} rounds"]
    onnx = any(r["onnx_ms"] for r in result["results"])
    cpu = any(r["engine_over_plain_cpu"] for r in result["results"])
    headers = ["size", "width", "GFLOPs", "params M", "engine p50/p90 ms", "plain p50/p90 ms",
               "engine/plain p50 (paired)", "latency/w1.0", "FLOPs/w1.0"]
    headers += ["engine/plain CPU time"] if cpu else []
    headers += ["onnxrt p50 ms"] if onnx else []
    lines += ["", markdown_header(headers, "r")]
    for r in result["results"]:
        e, p = r["engine_ms"], r["plain_ms"]
        cells = [format_size(*r["size"]), f"{r['width']:.2f}", f"{r['gflops']:.2f}",
                 f"{r['params_m']:.2f}", f"{e['p50']:.1f} / {e['p90']:.1f}",
                 f"{p['p50']:.1f} / {p['p90']:.1f}",
                 f"{r['engine_over_plain']:.3f} ({r['engine_over_plain_paired']:.3f})",
                 f"{r['latency_ratio']:.3f}", f"{r['flops_ratio']:.3f}"]
        if cpu:
            cells.append(f"{r['engine_over_plain_cpu']:.3f}")
        if onnx:
            cells.append(f"{r['onnx_ms']['p50']:.1f}")
        lines.append(markdown_row(cells))
    lines += ["", markdown_header(["width", "switch p50 / max µs", "slimmable set_width µs",
                                   "load single-width file ms", "file MB"], "r")]
    for s in result["switching"]:
        lines.append(markdown_row([f"{s['width']:.2f}",
                                   f"{s['switch_us_p50']:.2f} / {s['switch_us_max']:.1f}",
                                   f"{s['slimmable_set_width_us_p50']:.0f}",
                                   f"{s['load_ms_p50']:.1f}", f"{s['file_mb']:.1f}"]))
    mem = result["memory"]
    lines += ["", f"weights: slimmable model {mem['slimmable_weights_bytes'] / 2**20:.1f} MiB, "
                  "specialised per-width copies "
                  f"{mem['specialised_weights_bytes'] / 2**20:.1f} MiB"]
    return "\n".join(lines)


def plot_report(result: dict[str, Any], path: str | os.PathLike) -> None:
    """
    Plot latency vs width (engine solid, plain dashed) beside the ratios to width 1.0.

    The ratios: latency solid, FLOPs dotted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ms, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = sorted({tuple(r["size"]) for r in result["results"]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, size in enumerate(sizes):
        rows = sorted((r for r in result["results"] if tuple(r["size"]) == size),
                      key=lambda r: r["width"])
        ws = [r["width"] for r in rows]
        c = colors[i % len(colors)]
        label = format_size(*size)
        ax_ms.plot(ws, [r["engine_ms"]["p50"] for r in rows], "o-", color=c,
                   label=f"engine {label}")
        ax_ms.plot(ws, [r["plain_ms"]["p50"] for r in rows], "s--", color=c, alpha=0.7,
                   label=f"plain {label}")
        ax_ratio.plot(ws, [r["latency_ratio"] for r in rows], "o-", color=c,
                      label=f"latency {label}")
        ax_ratio.plot(ws, [r["flops_ratio"] for r in rows], "x:", color=c,
                      label=f"FLOPs {label}")
    ax_ms.set(xlabel="width", ylabel="latency p50 (ms)", title="latency per frame")
    ax_ratio.set(xlabel="width", ylabel="ratio to width 1.0", title="latency vs FLOPs",
                 ylim=(0, 1.05))
    for ax in (ax_ms, ax_ratio):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    meta = result["meta"]
    fig.suptitle(f"{meta['config']['backbone']} + {meta['config']['head']} on {meta['device']} "
                 f"({meta['torch_threads']} threads, {meta['precision']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimseg-bench", description=__doc__.split("\n\n")[0])
    src = p.add_argument_group("model (default: packaged model, else resnet18 + deeplabv3plus)")
    src.add_argument("--checkpoint", help="slimseg checkpoint (.pt)")
    src.add_argument("--config", help="YAML model config (keys at the top or under 'model:')")
    src.add_argument("--backbone", help="backbone name, random weights")
    src.add_argument("--head", help="head name (deeplabv3plus or fcn)")
    src.add_argument("--num-classes", type=int)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--precision", default="fp32",
                   help="fp32, fp16 (CUDA), bf16 or int8 (a bundle's INT8 graphs, OpenVINO)")
    p.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--sizes", nargs="+", type=size_arg, default=[(360, 480), (512, 1024)],
                   metavar="HxW", help="frame sizes (default 360x480 512x1024)")
    p.add_argument("--input-size", nargs=2, metavar=("H", "W"),
                   help="with --backends: the network input size (sides rounded to a multiple "
                        "of 8); frames of --sizes are resized to it inside the graph and the "
                        "masks back to the frame size, as in the node (default: the frame size)")
    p.add_argument("--iters", type=int, default=10, help="timed rounds per size (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per width and size")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--onnx", action="store_true", help="also time onnxruntime")
    p.add_argument("--backends", nargs="+", choices=tuple(BACKENDS),
                   help="compare inference runtimes instead, frame to mask per width, each in "
                        "its own process, with LR-ASPP MobileNetV3-Large as the reference "
                        "(first --sizes entry; --threads, default 2)")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --backends: the backends take turns this many times, a fresh "
                        "process each, and the figures are medians over the rounds (default 1)")
    p.add_argument("--block", type=int, default=10,
                   help="with --backends: frames timed back to back per width before the next "
                        "width's turn, as the node serves one width for many frames; 1 "
                        "changes width every frame (default 10)")
    p.add_argument("--idle-ms", type=float, default=0.0,
                   help="with --backends: idle time before every timed frame, as a camera "
                        "leaves between frames (90 at 10 fps); a frame after a gap runs slower "
                        "than one right after another (default 0: back to back)")
    p.add_argument("--ladder", action="store_true",
                   help="with --backends: time the model's ladder points (a width at a reduced "
                        "input) too, beside the widths")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--plot", help="write a PNG figure here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.input_size is not None:
        if not args.backends:
            parser.error("--input-size times the frame graphs: use it with --backends")
        try:
            asked = list(args.input_size)
            args.input_size = round_input_size(*asked)
        except ValueError as exc:
            parser.error(f"--input-size: {exc}")
        if not args.quiet and [str(v) for v in args.input_size] != asked:
            print(f"input size {asked[0]}x{asked[1]} rounded to "
                  f"{format_size(*args.input_size)} (sides a multiple of 8)", flush=True)
    if args.ladder and (not args.backends or args.input_size is not None):
        parser.error("--ladder times the model's ladder graphs: use it with --backends and "
                     "without --input-size")
    if args.threads is not None:
        if args.threads < 1:
            print(f"slimseg-bench: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.backends:
        return backends_main(args, argv)
    try:
        model, info, source = resolve_model(args)
        log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
        log(f"model: {source}")
        result = run_benchmark(model, info, args.sizes, device=args.device, iters=args.iters,
                               warmup=args.warmup, onnx=args.onnx, precision=args.precision,
                               channels_last=args.channels_last, log=log)
    except (CheckpointError, ValueError) as exc:
        print(f"slimseg-bench: {exc}", file=sys.stderr)
        return 2
    result["meta"]["source"] = source
    argv_used = argv if argv is not None else sys.argv[1:]
    result["meta"]["command"] = "slimseg-bench " + " ".join(argv_used)
    print(format_report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_report(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def backends_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    """``--backends``: the runtime comparison of :mod:`slimseg_ros.tools.backend_bench`."""
    from ..inference.backends import BackendError, installed_summary
    from .backend_bench import compare_backends, format_comparison, plot_comparison

    missing = [b for b in args.backends if not BACKENDS[b].installed()]
    if missing:
        print(f"slimseg-bench: backend(s) {missing} not installed (pip install "
              f"{' '.join(BACKENDS[b].package for b in missing)}); {installed_summary()}",
              file=sys.stderr)
        return 2
    checkpoint = args.checkpoint
    if checkpoint is None:
        found = packaged_checkpoint()
        if found is None:
            print("slimseg-bench: --backends needs --checkpoint (no packaged model found)",
                  file=sys.stderr)
            return 2
        checkpoint = str(found)
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    try:
        result = compare_backends(checkpoint, list(args.backends), args.sizes[0],
                                  args.threads or 2, args.iters, args.warmup, args.precision,
                                  log=log, rounds=args.rounds, block=args.block,
                                  idle_ms=args.idle_ms, input_size=args.input_size,
                                  ladder=args.ladder)
    except (CheckpointError, BackendError, RuntimeError, ValueError) as exc:
        print(f"slimseg-bench: {exc}", file=sys.stderr)
        return 2
    argv_used = argv if argv is not None else sys.argv[1:]
    result["meta"]["command"] = "slimseg-bench " + " ".join(argv_used)
    print(format_comparison(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_comparison([result], args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
