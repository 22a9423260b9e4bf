"""
Inference engine: one checkpoint, a specialised network per trained width, pointer-swap switch.

Why specialise: a slimmable layer slices its full-width weight on every call, which yields
non-contiguous views and per-width BatchNorm modules. For deployment each trained width gets its
own plain eval-mode copy with BatchNorm folded into the preceding convolution
(:func:`~slimseg_ros.inference.specialise.specialise_network`), optionally in channels_last and
fp16/bf16.
Switching width is then just choosing another module (:meth:`SegmentationEngine.network`, for
the width each call names: a :class:`~slimseg_ros.widths.Width` of ``engine.widths``, looked up by
its index), at the price of holding the copies
(:meth:`SegmentationEngine.extra_memory_bytes`, about 1.9x the full-width weights for widths
0.25/0.5/0.75/1.0). ``specialise=False`` keeps the single slimmable model instead (no extra
memory, slower switching) for memory-tight devices.

Pre- and post-processing run on the device with torch ops: uint8 H x W x 3 RGB frame -> (optional
bilinear resize to ``input_size``) -> ``(pixel - mean) / std`` on the 0-255 scale -> network ->
argmax -> (nearest resize back to the frame size) -> H x W uint8 class ids.

A checkpoint's ladder (``NAME.ladder.json`` beside it, :mod:`.ladder`) adds operating points: a
width run at a reduced input size. With a graph runtime each point gets a frame graph of its
own, prepared with the widths'; with torch a point is the width's network behind a smaller
resize. ``segment(frame, width, input_size)`` runs one.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backends import (AUTO, BACKENDS, EAGER, INT8, INT8_COMMAND, BackendError,
                       check_backend_precision, frame_graph_runner, resolve_backend)
from .backends.frame_graph import GraphCache, argmax_and_confidence, export_frame_graph
from .graph_format import (check_frame, file_sha256,  # noqa: F401 - re-exported
                           graph_outputs, openvino_cache_dir, prepare_sizes, releasable,
                           release_graphs)
from .ladder import (LADDER_OFF_NOTE, NO_INPUT_SIZE_NOTE, LadderSpec, ladder_path_for,
                     loaded_note, missing_note, other_size_note, find_point,
                     read_ladder_file)
from .specialise import module_bytes, specialise_network
from .working_memory import return_freed_heap
from ..models.checkpoint import ModelInfo, load_checkpoint
from ..models.slimmable import set_width as set_model_width, trained_widths
from ..widths import TrainedWidths, Width

PRECISIONS = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
              "float16": torch.float16, "half": torch.float16, "bf16": torch.bfloat16,
              "bfloat16": torch.bfloat16}
_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ----------------------------------------------------------------------------------------------
# Pre/post-processing shared by the engine, the benchmark and export checks
# ----------------------------------------------------------------------------------------------

def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve "auto" to cuda when available, else cpu; refuse CUDA on a machine without it."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map "fp32"/"fp16"/"bf16" to a dtype; fp16 only on CUDA (CPU fp16 convs are very slow)."""
    key = str(precision).strip().lower()
    if key == INT8:
        check_backend_precision(EAGER, key)  # says where int8 runs and which command makes it
    if key not in PRECISIONS:
        names = BACKENDS[EAGER].precisions
        raise ValueError(f"unknown precision {precision!r}; choose auto, "
                         f"{', '.join(names[:-1])} or {names[-1]}")
    dtype = PRECISIONS[key]
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError(f"precision {precision!r} needs a CUDA device, got {device}; "
                         "use fp32 (or bf16) on CPU")
    return dtype


def frames_to_batch(image_rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """
    Turn an H x W x 3 uint8 frame into a 1 x 3 x H x W uint8 batch on ``device``.

    The batch has channels_last strides, so on CPU it is a view of the frame (no copy).
    """
    x = torch.from_numpy(image_rgb)
    if x.device != device:
        x = x.to(device, non_blocking=True)
    return x.permute(2, 0, 1).unsqueeze(0)


def preprocess(x: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
               input_size: tuple[int, int] | None, dtype: torch.dtype,
               channels_last: bool) -> torch.Tensor:
    """
    N x 3 x H x W pixels (uint8 or float, 0-255) -> normalised network input.

    Resizes bilinearly (align_corners=False) to ``input_size`` when given and different;
    ``mean``/``inv_std`` are 1 x 3 x 1 x 1 float32 on the 0-255 scale.
    """
    x = x.to(torch.float32)
    if input_size is not None and tuple(x.shape[-2:]) != tuple(input_size):
        x = F.interpolate(x, size=tuple(input_size), mode="bilinear", align_corners=False)
    x = (x - mean) * inv_std
    if dtype != torch.float32:
        x = x.to(dtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt)


def postprocess(logits: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """
    Turn N x C x h x w logits into N x H x W uint8 class ids of ``out_size`` (H, W).

    Argmax, then nearest resize. "nearest-exact" samples pixel centres, the same geometry as
    bilinear with align_corners=False.
    """
    mask = logits.argmax(dim=1).to(torch.uint8)
    if tuple(mask.shape[-2:]) != tuple(out_size):
        mask = F.interpolate(mask.unsqueeze(1), size=tuple(out_size), mode="nearest-exact")[:, 0]
    return mask


def postprocess_with_confidence(logits: torch.Tensor,
                                out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """
    N x C x h x w logits -> (class ids, confidence), both N x H x W uint8 of ``out_size``.

    The confidence is the softmax maximum in float32, stored as ``round(255 p)`` (half up), and
    nearest-resized as the ids are.
    """
    ids, conf = argmax_and_confidence(logits.float())
    if tuple(ids.shape[-2:]) != tuple(out_size):
        both = torch.stack([ids, conf], dim=1)
        both = F.interpolate(both, size=tuple(out_size), mode="nearest-exact")
        ids, conf = both[:, 0], both[:, 1]
    return ids, conf


INPUT_MULTIPLE = 8  # network input sides: a whole multiple of the logits (output stride <= 8)


def round_input_size(height: Any, width: Any,
                     multiple: int = INPUT_MULTIPLE) -> tuple[int, int]:
    """
    Round a network input size to the nearest multiple of ``multiple`` per side (at least one).

    The frame graph's fast upsample needs the input a whole multiple of the logits; other sizes
    take a slower path. Raises ``ValueError`` with one sentence for a side that is not a positive
    number.
    """
    sides = []
    for name, value in (("height", height), ("width", width)):
        try:
            side = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"input size {name} must be a positive number of pixels, "
                             f"got {value!r}") from None
        if not (side > 0 and math.isfinite(side)):
            raise ValueError(f"input size {name} must be a positive number of pixels, "
                             f"got {value!r}")
        sides.append(max(multiple, math.floor(side / multiple + 0.5) * multiple))  # half up
    return sides[0], sides[1]


def default_channels_last(device: torch.device) -> bool:
    """
    Say whether to run channels_last (NHWC) on ``device``: yes on CUDA and CPU unless overridden.

    On CUDA it feeds tensor cores; on a 2-core Xeon CPU with oneDNN it measured 1.1-1.6x faster
    than NCHW for ResNet-18 and MobileNetV2 DeepLabV3+ at 360x480 (NCHW sends dilated and
    depthwise convs to slow reference kernels). Set ``SLIMSEG_CHANNELS_LAST=0`` (or pass
    ``channels_last=False``) where NCHW wins.
    """
    env = os.environ.get("SLIMSEG_CHANNELS_LAST")
    if env is not None and env.strip() != "":
        return env.strip().lower() in ("1", "true", "yes", "on")
    return device.type in ("cuda", "cpu")


# ----------------------------------------------------------------------------------------------
# Engine
# ----------------------------------------------------------------------------------------------

class _SlimmableAtWidth(nn.Module):
    """The shared slimmable model viewed at one width (used when ``specialise=False``)."""

    def __init__(self, engine: "SegmentationEngine", width: Width) -> None:
        super().__init__()
        self._engine = [engine]  # a list keeps the engine out of the module tree
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._engine[0]._forward(self.width, x)


class SegmentationEngine:
    """
    Runs a slimmable segmentation checkpoint at any of its trained widths.

    The engine holds no width of its own: every call names the width to run at (the governor's
    decision in the node) and runs that width's prepared network, so calls at different widths
    may come from different threads. A width is a :class:`~slimseg_ros.widths.Width` of
    :attr:`widths` (a :class:`~slimseg_ros.widths.TrainedWidths`; a Width of an equal list, the
    governor's, is one too) or its index; the prepared network is found by that index, with no
    tolerance compare. A float raises ``TypeError``: snap it once at the edge (command line,
    JSON, topics) with ``engine.widths.exact(x)`` or ``engine.widths.snap(x)``. The engine
    measures nothing: the caller times its calls
    (:class:`~slimseg_ros.governor.latency.LatencyStore` in the node).
    """

    def __init__(self, model: nn.Module, info: ModelInfo, device: str | torch.device = "cpu",
                 specialise: bool = True, precision: str = "fp32",
                 input_size: tuple[int, int] | None = None,
                 channels_last: bool | None = None, fold_bn: bool = True,
                 backend: str = "auto", checkpoint_path: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, confidence: bool = False,
                 ladder: bool = True, defer_points: bool = False) -> None:
        started = time.perf_counter()
        self.device = resolve_device(device)
        # the graph runtimes run the prepared per-width networks: with one slimmable network
        # (specialise=False) auto takes the eager runtime and a graph runtime is refused
        auto_precision = str(precision).strip().lower() == AUTO
        self.backend = resolve_backend(backend, self.device.type,
                                       None if auto_precision else precision,
                                       specialised=specialise)
        runtime = BACKENDS[self.backend]
        if auto_precision:
            precision = runtime.default_precision(self.device.type)
        if runtime.is_graph_runtime:
            self.precision = check_backend_precision(self.backend, precision, self.device.type)
            if self.precision == INT8:  # made by calibration, not at start-up from a .pt
                raise BackendError(f"precision 'int8' runs the INT8 graphs of a model bundle, "
                                   f"not a .pt checkpoint: {INT8_COMMAND}, then run the bundle")
            self.dtype = torch.float32  # the exported graphs are made from fp32 networks
        else:
            self.dtype = resolve_precision(precision, self.device)
            self.precision = _PRECISION_NAMES[self.dtype]
        self.info = info
        self.widths = TrainedWidths(trained_widths(model))
        self.config = getattr(model, "config", None)
        num_classes = getattr(self.config, "num_classes", None)
        if num_classes is not None and num_classes > 256:
            raise ValueError(f"{num_classes} classes do not fit the uint8 mask (at most 256)")
        self.input_size = self._check_size(input_size)
        self.channels_last = (default_channels_last(self.device) if channels_last is None
                              else bool(channels_last))
        self.specialised = bool(specialise)
        self.confidence = bool(confidence)  # graphs output it too: segment() returns it
        self._mean = torch.tensor(info.mean, dtype=torch.float32,
                                  device=self.device).view(1, 3, 1, 1)
        self._inv_std = (1.0 / torch.tensor(info.std, dtype=torch.float32,
                                            device=self.device)).view(1, 3, 1, 1)
        self._model_lock = threading.Lock()  # serialises the shared slimmable model only
        self.folded_bn: dict[Width, int] = {}

        model = model.eval()
        fmt = torch.channels_last if self.channels_last else torch.preserve_format
        if self.specialised:
            src = model.to("cpu")  # specialise and fold in float32 on the CPU, then move
            self._nets: tuple[nn.Module, ...] = tuple(
                self._specialise(src, w, fold_bn).to(self.device, self.dtype, memory_format=fmt)
                for w in self.widths)
            self.model: nn.Module | None = None
        else:
            self.model = model.to(self.device, self.dtype, memory_format=fmt)
            for p in self.model.parameters():
                p.requires_grad_(False)
            self._nets = tuple(_SlimmableAtWidth(self, w) for w in self.widths)
            set_model_width(self.model, self.widths.widest.value)
            self._model_width = self.widths.widest
        self._graphs: tuple[Any, ...] = ()
        self._prepared_sizes: set[tuple[int, int]] = set()
        self.prepared_from = "torch networks"
        self.ladder: LadderSpec | None
        self.ladder, self.ladder_note = self._read_ladder(ladder, checkpoint_path)
        # (width index, input size) -> that point's graph, or with torch its input size
        self._points: dict[tuple[int, tuple[int, int]], Any] = {}
        self._point_graphs: tuple[Any, ...] = ()
        self._make_point: Any = None  # (width, size) -> that point's graph (graph runtimes)
        self._points_lock = threading.Lock()
        self.points_ready = self.ladder is None
        if runtime.is_graph_runtime:
            self._graphs, self.prepared_from = self._prepare_graphs(checkpoint_path, cache_dir)
        if not defer_points:
            self.prepare_points()
            if self._graphs:
                self.prepared_from = self._graph_source()
        self.prepare_seconds = time.perf_counter() - started

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto",
                        specialise: bool = True, precision: str = "fp32",
                        input_size: tuple[int, int] | None = None,
                        **kwargs: Any) -> "SegmentationEngine":
        """
        Load a checkpoint (safe, no code executed) and build the engine.

        Raises :class:`~slimseg_ros.models.checkpoint.CheckpointError` naming the file when it is
        missing or corrupt. The ladder beside it (``NAME.ladder.json``) is read unless
        ``ladder=False``; a broken one raises :class:`~.ladder.LadderError`.
        """
        model, info = load_checkpoint(path, map_location="cpu")
        kwargs.setdefault("checkpoint_path", path)
        return cls(model, info, device=device, specialise=specialise, precision=precision,
                   input_size=input_size, **kwargs)

    def _prepare_graphs(self, checkpoint_path: str | os.PathLike | None,
                        cache_dir: str | os.PathLike | None) -> tuple[tuple[Any, ...], str]:
        """
        Compile one frame graph per width, and one per ladder point, for the runtime backend.

        Exported graphs are cached on disk by the checkpoint's content hash (without a file:
        exported each time); what the runtime compiles from them beside (OpenVINO's compiled
        models, in ``openvino`` under the same folder). A point's graph is its width's network
        exported at the point's input size (the cache key holds the size).
        """
        cache = GraphCache(cache_dir) if checkpoint_path is not None else None
        compiled = openvino_cache_dir(cache.folder) if cache is not None else None
        digest = file_sha256(checkpoint_path) if checkpoint_path is not None else None
        threads = torch.get_num_threads()
        outputs = graph_outputs(confidence=self.confidence)
        counts = self._graph_counts = [0, 0]  # graphs from the cache, graphs made

        def graph(width: Width, size: tuple[int, int] | None) -> Any:
            counts[1] += 1
            key = GraphCache.key(digest, width.value, size, outputs) if digest else None
            data = cache.get(key) if cache is not None and key is not None else None
            if data is None:
                data = export_frame_graph(self._nets[width.index], self.info.mean,
                                          self.info.std, size, confidence=self.confidence)
                if cache is not None and key is not None:
                    cache.put(key, data)
            else:
                counts[0] += 1
            return frame_graph_runner(self.backend, data, self.precision, threads,
                                      self.device.type, cache_dir=compiled)

        graphs = tuple(graph(width, self.input_size) for width in self.widths)
        self._make_point = graph
        self._cache_folder = cache.folder if cache is not None else None
        return graphs, self._graph_source()

    def _graph_source(self) -> str:
        """Say where the graphs made so far came from (how many from the cache)."""
        if self._cache_folder is None:
            return "exported in memory"
        hits, made = self._graph_counts
        return f"{hits} of {made} graphs from the cache {self._cache_folder}"

    def prepare_points(self, warm_size: tuple[int, int] | None = None,
                       release: bool = False) -> None:
        """
        Make the ladder points' graphs (once); with ``warm_size``, compile and run each once.

        The engine does it at construction unless built with ``defer_points``: the node then
        serves at the widths and prepares the points on another thread once a budget is first
        set, and the governor offers them only once this returns. The points are published
        together. ``release`` hands back each point's working memory right after its run.
        """
        with self._points_lock:
            if self.points_ready:
                return
            made: dict[tuple[int, tuple[int, int]], Any] = {}
            for point in self.ladder.points if self.ladder is not None else ():
                width = self.widths.exact(point.width)
                made[(width.index, point.input_size)] = (
                    self._make_point(width, point.input_size) if self._graphs
                    else point.input_size)  # torch: the width's network behind that resize
            self._points = made
            self._point_graphs = tuple(made.values()) if self._graphs else ()
            self._prepared_sizes = set()  # the next prepare_size covers the points too
            if warm_size is not None:
                frame = np.zeros((int(warm_size[0]), int(warm_size[1]), 3), np.uint8)
                for index, size in made:
                    self._run_point(frame, self.widths[index], size, False)
                    if release and self._graphs:  # and what its compile freed
                        release_graphs([made[(index, size)]])
                        return_freed_heap()
            self.points_ready = True

    def _read_ladder(self, enabled: bool, checkpoint_path: str | os.PathLike | None
                     ) -> tuple[LadderSpec | None, str]:
        """
        Read the checkpoint's ladder where it serves this engine; say why where it does not.

        A ladder file that is there but broken raises :class:`~.ladder.LadderError` (one
        sentence naming it): a model shipped with operating points should not run without
        them unnoticed.
        """
        if not enabled:
            return None, LADDER_OFF_NOTE
        if self.input_size is None:
            return None, NO_INPUT_SIZE_NOTE
        if checkpoint_path is None:
            return None, ("no ladder: the engine was built without a checkpoint file to read "
                          "one beside (widths only)")
        path = ladder_path_for(checkpoint_path)
        if not path.is_file():
            return None, missing_note(f"{checkpoint_path} has no {path.name} beside it",
                                      checkpoint_path)
        spec = read_ladder_file(path, self.widths.values, self.info.input_size)
        if spec.input_size != self.input_size:
            return None, other_size_note(spec, self.input_size)
        return spec, loaded_note(spec, str(path))

    def _specialise(self, model: nn.Module, width: Width, fold_bn: bool) -> nn.Module:
        net, folded = specialise_network(model, width.value, fold_bn=fold_bn)
        self.folded_bn[width] = folded
        return net

    @staticmethod
    def _check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
        if size is None:
            return None
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"input_size must be (height, width), got {size!r}") from None
        if h < 1 or w < 1 or (h, w) != tuple(size):
            raise ValueError(f"input_size must be two positive integers, got {size!r}")
        return h, w

    # -- width -------------------------------------------------------------------------------

    def member(self, width: Width | int) -> Width:
        """
        Return the trained width that ``width`` names: a Width of :attr:`widths`, or its index.

        No tolerance: a float raises ``TypeError`` saying to snap it at the edge with
        ``engine.widths.exact(x)`` (or ``.snap(x)``); a Width of other widths or an index out of
        range raises ``ValueError``.
        """
        if isinstance(width, Width):  # the usual case first: one switch per frame
            return self.widths.member(width)
        if isinstance(width, Integral) and not isinstance(width, bool):
            width = int(width)  # numpy integers too
        elif isinstance(width, Real) and not isinstance(width, bool):
            raise TypeError(f"width {width!r} is a float; the engine takes a Width of "
                            f"engine.widths (or its index): snap a float once at the edge with "
                            f"engine.widths.exact({width!r}) (or engine.widths.snap(...))")
        return self.widths.member(width)

    def network(self, width: Width | int) -> nn.Module:
        """
        Return the prepared module of trained ``width``: normalised N x 3 x H x W -> logits.

        Choosing it is the whole width switch (an index into the prepared networks); see
        :meth:`member` for what ``width`` may be.
        """
        return self._nets[self.member(width).index]

    # -- running -----------------------------------------------------------------------------

    def _forward(self, width: Width, x: torch.Tensor) -> torch.Tensor:
        """Run the shared slimmable model (``specialise=False``) at ``width``."""
        with self._model_lock:  # the slimmable model holds its width as state
            if width != self._model_width:  # the walk over all modules costs ~0.5-1 ms
                set_model_width(self.model, width.value)
                self._model_width = width
            return self.model(x)

    def _preprocess(self, x: torch.Tensor,
                    size: tuple[int, int] | None = None) -> torch.Tensor:
        return preprocess(x, self._mean, self._inv_std, size or self.input_size, self.dtype,
                          self.channels_last)

    def _point(self, width: Width | int, input_size: Sequence[int]) -> tuple[Width, Any]:
        """Return the width and what runs its ladder point at ``input_size``; else ValueError."""
        member = self.member(width)
        return member, find_point(self._points, member, input_size, self.ladder,
                                  self.ladder_note, self.points_ready)

    def _run_point(self, image_rgb: np.ndarray, width: Width | int,
                   input_size: Sequence[int],
                   confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Run a ladder point: its graph, or the width's network behind a smaller resize."""
        member, target = self._point(width, input_size)
        frame = check_frame(image_rgb)
        if self._graphs:
            if confidence:
                mask, conf = target.run_all(frame)
                return mask, conf
            return target.run(frame), None
        net = self._nets[member.index]
        with torch.inference_mode():
            logits = net(self._preprocess(frames_to_batch(frame, self.device), target))
            if confidence:
                mask, conf = postprocess_with_confidence(logits, frame.shape[:2])
                return mask[0].cpu().numpy(), conf[0].cpu().numpy()
            return postprocess(logits, frame.shape[:2])[0].cpu().numpy(), None

    def _logits(self, batch: torch.Tensor, net: nn.Module) -> torch.Tensor:
        return net(self._preprocess(batch))

    def infer(self, image_rgb: np.ndarray, width: Width | int,
              input_size: Sequence[int] | None = None) -> np.ndarray:
        """
        H x W x 3 uint8 RGB -> H x W uint8 class ids at trained ``width``.

        With a runtime backend the whole frame path runs inside that width's compiled graph.
        ``input_size`` (h, w) other than the engine's runs that ladder point of ``width``
        instead (``ValueError`` where the ladder has no such point).
        """
        if input_size is not None and tuple(input_size) != self.input_size:
            return self._run_point(image_rgb, width, input_size, False)[0]
        frame = check_frame(image_rgb)
        if self._graphs:
            return self._graphs[self.member(width).index].run(frame)
        net = self.network(width)
        with torch.inference_mode():
            batch = frames_to_batch(frame, self.device)
            mask = postprocess(self._logits(batch, net), frame.shape[:2])
            return mask[0].cpu().numpy()

    def segment(self, image_rgb: np.ndarray, width: Width | int,
                input_size: Sequence[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """
        H x W x 3 uint8 RGB -> (H x W uint8 class ids, H x W uint8 confidence or None).

        The confidence is ``round(255 p)`` of the softmax maximum of the logits the argmax
        compares (nearest-resized like the ids); None unless the engine was built with
        ``confidence=True``, which puts it into every width's graph. ``input_size`` (h, w)
        other than the engine's runs that ladder point of ``width`` (see :meth:`infer`).
        """
        if input_size is not None and tuple(input_size) != self.input_size:
            return self._run_point(image_rgb, width, input_size, self.confidence)
        if not self.confidence:
            return self.infer(image_rgb, width), None
        frame = check_frame(image_rgb)
        if self._graphs:
            mask, conf = self._graphs[self.member(width).index].run_all(frame)
            return mask, conf
        net = self.network(width)
        with torch.inference_mode():
            batch = frames_to_batch(frame, self.device)
            mask, conf = postprocess_with_confidence(self._logits(batch, net), frame.shape[:2])
            return mask[0].cpu().numpy(), conf[0].cpu().numpy()

    def prepare_size(self, height: int, width: int) -> None:
        """
        Make every width and ladder point ready for frames of ``height`` x ``width``.

        OpenVINO compiles each width once at the network input size (per frame size only for
        a network without one), each point at its own; other backends need nothing.
        Cheap once a size is prepared; the caller keeps one-off compile time out of its latency
        figures.
        """
        self._prepared_sizes = prepare_sizes(self._graphs + self._point_graphs,
                                             self._prepared_sizes, height, width)

    def infer_tensor(self, images: torch.Tensor, width: Width | int,
                     return_logits: bool = False) -> torch.Tensor:
        """
        Batch path: N x 3 x H x W (or 3 x H x W) pixels, uint8 or float on the 0-255 scale.

        Returns N x H x W uint8 class ids on the engine's device, or with ``return_logits`` the
        float32 logits N x C x h x w at the network input size.
        """
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(images).__name__}")
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3 or 0 in images.shape:
            raise ValueError(f"expected N x 3 x H x W pixels, got shape {tuple(images.shape)}")
        net = self.network(width)
        with torch.inference_mode():
            logits = self._logits(images.to(self.device), net)
            if return_logits:
                return logits.float()
            return postprocess(logits, tuple(images.shape[-2:]))

    def logits(self, image_rgb: np.ndarray, width: Width | int) -> torch.Tensor:
        """Float32 logits 1 x C x h x w (network input size) for one H x W x 3 uint8 frame."""
        frame = check_frame(image_rgb)
        net = self.network(width)
        with torch.inference_mode():
            return self._logits(frames_to_batch(frame, self.device), net).float()

    def warmup(self, size: tuple[int, int] | None = None, iters: int = 1,
               widths: Iterable[Width | int] | None = None, release: bool = False) -> None:
        """
        Run each width and its ladder points ``iters`` times on a black frame of ``size`` (H, W).

        ``widths``: Widths of :attr:`widths` (or indices); default all of them. ``release``:
        hand back each graph's working memory right after its runs (one step's at a time).

        So first-call costs (allocator, cuDNN autotuning, compiles) are paid before the frames
        that are timed, and a switch to a ladder point is as instant as one to a width.
        """
        h, w = size if size is not None else (self.input_size or (256, 256))
        frame = np.zeros((int(h), int(w), 3), np.uint8)
        chosen = self.widths if widths is None else [self.member(w) for w in widths]
        for width in chosen:
            for index, point_size in self._points:
                if index == width.index:
                    for _ in range(iters):
                        self._run_point(frame, width, point_size, False)
                    if release:
                        self.release_memory([(width, point_size)])
                        return_freed_heap()
            if self._graphs:
                for _ in range(iters):
                    self.infer(frame, width)
                if release:
                    self.release_memory([(width, None)])
                    return_freed_heap()
                continue
            net = self.network(width)
            for _ in range(iters):
                with torch.inference_mode():
                    logits = self._logits(frames_to_batch(frame, self.device), net)
                    postprocess(logits, (h, w)).cpu()

    # -- memory --------------------------------------------------------------------------------

    @property
    def releases_memory(self) -> bool:
        """Whether :meth:`release_memory` can hand anything back (OpenVINO's graphs can)."""
        return releasable(self._graphs)

    def release_memory(self, steps: Iterable[tuple[Width | int, Sequence[int] | None]] | None
                       = None) -> int:
        """
        Hand back the working memory of the graphs of ``steps``; all of them where None.

        A step is ``(width, input size)``, the size None (or the engine's) for the width at the
        full input. Returns how many graphs did. The next frame at such a step allocates the
        memory again (no compile); not to be called while that step runs on another thread.
        """
        if not self._graphs:
            return 0
        if steps is None:
            return release_graphs(self._graphs + self._point_graphs)
        return release_graphs(self._graph_of(width, size) for width, size in steps)

    def _graph_of(self, width: Width | int, input_size: Sequence[int] | None) -> Any:
        if input_size is None or tuple(input_size) == self.input_size:
            return self._graphs[self.member(width).index]
        return self._point(width, input_size)[1]

    def extra_memory_bytes(self) -> int:
        """
        Bytes of weights held by the specialised per-width copies (0 with ``specialise=False``).

        This is the price of instant switching; the slimmable model itself is released once the
        copies are made, so the engine holds this many bytes in total for its weights.
        """
        return sum(module_bytes(n) for n in self._nets) if self.specialised else 0

    def __repr__(self) -> str:
        mode = "specialised" if self.specialised else "slimmable"
        return (f"SegmentationEngine(widths={list(self.widths.values)}, backend={self.backend}, "
                f"device={self.device}, precision={self.precision}, {mode}, "
                f"input_size={self.input_size}, channels_last={self.channels_last}, "
                f"ladder points={len(self._points)})")
