"""
The whole frame path of one width as one exportable graph, and its on-disk cache.

The graph maps a uint8 ``1 x H x W x 3`` RGB frame to ``1 x H x W`` uint8 class ids (and, where
asked, their uint8 confidence: the softmax maximum as ``round(255 p)``), computing
exactly what the torch engine computes, in the same order: bilinear resize (align_corners=False)
to the network input size when one is set, ``(pixel - mean) / std`` on the 0-255 scale, the
BatchNorm-folded network of that width (its logits come out at the network input size), argmax,
and a nearest resize of the class ids to the frame size with "nearest-exact" geometry (pixel
centres). Height and width stay dynamic, so one graph serves every frame size.

Where the network input size is a whole multiple of its logits' size (CamVid's 360x480 at
output stride 4), the logits upsample and argmax are written as one class at a time: an edge pad,
a 3x3 convolution per class giving each output phase (the pixels ``s*k + r``) at the logits'
resolution, the argmax over those class planes, and an interleave of the phases' class ids
(:class:`UpsampledArgmax`); the same bilinear weights and border clamping as
``F.interpolate(..., align_corners=False)``. The upsampled logits are never laid out
interleaved, so OpenVINO neither reorders nor splits them: 0.9 ms against 1.4 ms for a
depthwise transposed convolution and the argmax at 360x480, and that against its Interpolate,
a third of the frame at width 0.25. :class:`LogitsUpsample` (the transposed convolution) serves
the graph that outputs logits for checks.

torch's ONNX exporter has no "nearest-exact" resize, so the final resize is written as two
gathers with the source index ``floor((i + 0.5) * in / out)`` computed in float32, the formula
ATen's kernel uses; the results are identical.

:class:`GraphCache` keeps exported graphs on disk keyed by everything that changes them (the
checkpoint's content hash, width, input size, the graph format version and the exporter's
torch version); an entry whose recorded key or content hash does not match is rebuilt, never
trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..graph_format import (GRAPH_VERSION, OPSET, default_cache_dir,  # noqa: F401 - re-exported
                            file_sha256, graph_outputs)


def nearest_exact_indices(out_size: torch.Tensor, in_size: torch.Tensor) -> torch.Tensor:
    """Source index of each output pixel for a "nearest-exact" resize along one axis."""
    scale = in_size.to(torch.float32) / out_size.to(torch.float32)
    idx = torch.floor((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale)
    return torch.minimum(idx.to(torch.int64), in_size.to(torch.int64) - 1)


def first_argmax(logits: torch.Tensor) -> torch.Tensor:
    """
    ``logits.argmax(dim=1)`` as uint8, written as a chain of per-class comparisons.

    Runtimes lower an argmax over a few channels to a general TopK, which costs more than the
    rest of the post-processing together (8 ms of a 24 ms frame at 360x480 in OpenVINO); the
    chain of elementwise maxima and selects fuses into one pass. At most 256 classes (the mask
    is uint8).
    """
    return argmax_of_planes([logits[:, c] for c in range(logits.shape[1])])


def argmax_of_planes(planes: Sequence[torch.Tensor]) -> torch.Tensor:
    """
    Index of the largest of same-shaped ``planes`` (one per class) at each element, as uint8.

    A strict ``>`` keeps the first of tied maxima, as torch's argmax does.
    """
    return argmax_and_max(planes)[0]


def argmax_and_max(planes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the uint8 index of the largest of ``planes`` (first of ties) and that largest."""
    best = planes[0]
    ids = torch.zeros_like(best, dtype=torch.uint8)
    for c in range(1, len(planes)):
        value = planes[c]
        ids = torch.where(value > best, torch.tensor(c, dtype=torch.uint8), ids)
        best = torch.maximum(best, value)
    return ids, best


def confidence_u8(planes: Sequence[torch.Tensor], best: torch.Tensor) -> torch.Tensor:
    """
    Return the softmax maximum of ``planes`` (``best``: their maximum) as ``round(255 p)``.

    ``p = 1 / sum_c exp(l_c - l_max)``: the probability softmax gives the class the argmax
    picks, computed in float from the same logits; rounded half up.
    """
    total = torch.exp(planes[0] - best)
    for c in range(1, len(planes)):
        total = total + torch.exp(planes[c] - best)
    return torch.floor(255.0 / total + 0.5).clamp(0.0, 255.0).to(torch.uint8)


def argmax_and_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N x C x h x w logits -> (uint8 class ids, uint8 confidence), both N x h x w."""
    planes = [logits[:, c] for c in range(logits.shape[1])]
    ids, best = argmax_and_max(planes)
    return ids, confidence_u8(planes, best)


def bilinear_taps(scale: int) -> tuple[int, list[float]]:
    """
    Return ``(padding, kernel)`` of a transposed convolution that upsamples by whole ``scale``.

    Bilinear with ``align_corners=False`` reads output pixel ``s*k + r`` at source position
    ``k + f`` with ``f = (r + 0.5) / s - 0.5``: from pixels ``k - 1`` and ``k`` when ``f < 0``,
    from ``k`` and ``k + 1`` otherwise. On an input edge-padded by one pixel (the clamping at
    the borders), a stride-``s`` transposed convolution with this kernel and ``padding`` on both
    sides puts exactly those two weights on every output pixel.
    """
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    padding = 2 * scale - math.ceil((scale - 1) / 2)
    kernel = [0.0] * (2 * padding - scale)  # (n + 1) * s - 2 * padding + len = n * s
    for r in range(scale):
        f = (r + 0.5) / scale - 0.5
        taps = ((r + padding, -f), (r + padding - scale, 1 + f)) if f < 0 else (
            (r + padding - scale, 1 - f), (r + padding - 2 * scale, f))
        for j, weight in taps:
            if weight:
                kernel[j] = weight
    return padding, kernel


class LogitsUpsample(nn.Module):
    """
    Bilinear upsample (``align_corners=False``) of logits to ``size``, as a deconvolution.

    Exact (to float rounding) when ``size`` is a whole multiple of the logits' size on both
    axes; any other ratio falls back to ``F.interpolate``. Sizes are read as plain numbers:
    the frame graph fixes the network input size, so they are constants of the graph.
    """

    def forward(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        channels, h, w = (int(v) for v in logits.shape[1:])
        out_h, out_w = int(size[0]), int(size[1])
        if (out_h, out_w) == (h, w):
            return logits
        if out_h % h or out_w % w:
            return F.interpolate(logits, size=(out_h, out_w), mode="bilinear",
                                 align_corners=False)
        (pad_h, taps_h), (pad_w, taps_w) = bilinear_taps(out_h // h), bilinear_taps(out_w // w)
        kernel = torch.outer(torch.tensor(taps_h), torch.tensor(taps_w)).to(logits.dtype)
        weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
        padded = F.pad(logits, (1, 1, 1, 1), mode="replicate")
        return F.conv_transpose2d(padded, weight, stride=(out_h // h, out_w // w),
                                  padding=(pad_h, pad_w), groups=channels)


def bilinear_phase_taps(scale: int) -> list[list[float]]:
    """
    Per output phase ``r`` of a whole-``scale`` bilinear upsample, weights on pixels k-1, k, k+1.

    With ``align_corners=False`` output pixel ``s*k + r`` reads source position ``k + f``,
    ``f = (r + 0.5) / s - 0.5``, always within half a pixel of ``k``: from ``k - 1`` and ``k``
    when ``f < 0``, from ``k`` and ``k + 1`` otherwise. An edge pad of one pixel is the clamping
    at the borders.
    """
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    taps = []
    for r in range(scale):
        f = (r + 0.5) / scale - 0.5
        taps.append([-f, 1.0 + f, 0.0] if f < 0 else [0.0, 1.0 - f, f])
    return taps


class UpsampledArgmax(nn.Module):
    """
    uint8 argmax over classes of the bilinear upsample (``align_corners=False``) to ``size``.

    For whole ratios on both axes each class is upsampled on its own by one 3x3 convolution
    whose ``s_h * s_w`` output channels are the output phases at the logits' resolution; the
    argmax runs over those per-class planes, and only the uint8 ids are interleaved into the
    full-size mask. Exact to float rounding; other ratios fall back to ``F.interpolate``. Sizes
    are read as plain numbers (constants of the frame graph). The confidence, where asked, is
    the softmax maximum over the same per-phase planes, interleaved like the ids.
    """

    def forward(self, logits: torch.Tensor, size: tuple[int, int],
                confidence: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Return the ids, or with ``confidence`` the ids and the uint8 confidence."""
        n, channels, h, w = (int(v) for v in logits.shape)
        out_h, out_w = int(size[0]), int(size[1])
        if (out_h, out_w) != (h, w) and (out_h % h or out_w % w):
            logits = F.interpolate(logits, size=(out_h, out_w), mode="bilinear",
                                   align_corners=False)
        if tuple(logits.shape[-2:]) == (out_h, out_w):
            return argmax_and_confidence(logits) if confidence else first_argmax(logits)
        sh, sw = out_h // h, out_w // w
        rows = torch.tensor(bilinear_phase_taps(sh), dtype=logits.dtype)
        cols = torch.tensor(bilinear_phase_taps(sw), dtype=logits.dtype)
        kernel = torch.einsum("ia,jb->ijab", rows, cols).reshape(sh * sw, 1, 3, 3)
        # classes first: each class's plane is then contiguous, whatever layout the runtime
        # gave the logits (slicing channels of a blocked layout ran a slow generic split)
        planes = F.pad(logits, (1, 1, 1, 1), mode="replicate").transpose(0, 1)
        phases = [F.conv2d(planes[c].unsqueeze(1), kernel) for c in range(channels)]
        ids, best = argmax_and_max(phases)
        outputs = [ids, confidence_u8(phases, best)] if confidence else [ids]
        # phase (i, j) of logits pixel (y, x) is mask pixel (sh*y + i, sw*x + j)
        outputs = [o.view(n, sh, sw, h, w).permute(0, 3, 1, 4, 2).reshape(n, out_h, out_w)
                   for o in outputs]
        return tuple(outputs) if confidence else outputs[0]


class FramePath(nn.Module):
    """
    uint8 ``1 x H x W x 3`` frame -> uint8 ``1 x H x W`` class ids through ``net``.

    With ``confidence`` a second output, the uint8 confidence of each id (:func:`confidence_u8`
    of the same upsampled logits, nearest-resized like the ids).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 input_size: tuple[int, int] | None, logits: bool = False,
                 confidence: bool = False) -> None:
        super().__init__()
        self.confidence = bool(confidence) and not logits
        self.net = net
        self.upsample = LogitsUpsample()  # for the logits output
        self.upsampled_argmax = UpsampledArgmax()
        # a SlimSegmenter hands out its logits before its own upsample (``upsample=False``)
        self.net_can_skip_upsample = "upsample" in inspect.signature(net.forward).parameters
        self.logits = logits  # output the network's float32 logits instead (for checks)
        self.input_size = tuple(input_size) if input_size else None
        self.register_buffer("mean",
                             torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std",
                             1.0 / torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        # normalised before the layout change: the transpose then meets the first convolution
        # directly and the runtime merges the two (a resize of a per-channel affine map is the
        # affine map of the resize, so the order does not change the function)
        x = (frame.to(torch.float32) - self.mean.view(1, 1, 1, 3)) * self.inv_std.view(1, 1, 1, 3)
        x = x.permute(0, 3, 1, 2)
        if self.input_size is not None:  # always in the graph: the frame size is dynamic
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        if self.input_size is not None and self.net_can_skip_upsample:
            low = self.net(x, upsample=False)
            if self.logits:
                return self.upsample(low, self.input_size)
            out = self.upsampled_argmax(low, self.input_size, self.confidence)  # 1 x h x w
        else:  # a frame-sized input (dynamic) or a network that always upsamples
            logits = self.net(x)
            if self.logits:
                return logits
            out = argmax_and_confidence(logits) if self.confidence else first_argmax(logits)
        ids = out[0] if self.confidence else out
        # sizes as tensors, so that tracing records them as graph values, not constants
        frame_shape, ids_shape = torch._shape_as_tensor(frame), torch._shape_as_tensor(ids)
        rows = nearest_exact_indices(frame_shape[1], ids_shape[1])
        cols = nearest_exact_indices(frame_shape[2], ids_shape[2])
        if self.confidence:
            return tuple(o.index_select(1, rows).index_select(2, cols) for o in out)
        return ids.index_select(1, rows).index_select(2, cols)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def export_frame_graph(net: nn.Module, mean: Sequence[float], std: Sequence[float],
                       input_size: tuple[int, int] | None,
                       example_size: tuple[int, int] = (64, 96), logits: bool = False,
                       confidence: bool = False) -> bytes:
    """ONNX bytes of :class:`FramePath` around ``net`` (float32, eval mode, on the CPU)."""
    path = FramePath(net, mean, std, input_size, logits=logits, confidence=confidence).eval()
    example = torch.zeros(1, *example_size, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    axes = {1: "height", 2: "width"}
    outputs = graph_outputs(logits, confidence)
    dynamic = {name: ({2: "out_height", 3: "out_width"} if logits else axes) for name in outputs}
    with _quiet(), torch.no_grad():
        torch.onnx.export(path, (example,), buf, dynamo=False, opset_version=OPSET,
                          input_names=["frame"], output_names=outputs,
                          dynamic_axes={"frame": axes, **dynamic}, do_constant_folding=True)
    return buf.getvalue()


class GraphCache:
    """Exported frame graphs on disk, one ``.onnx`` + ``.json`` pair per key."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    @staticmethod
    def key(checkpoint_sha256: str, width: float, input_size: tuple[int, int] | None,
            outputs: Sequence[str] = ("mask",)) -> dict:
        return {"checkpoint_sha256": checkpoint_sha256, "width": float(width),
                "input_size": list(input_size) if input_size else None,
                "outputs": list(outputs), "graph_version": GRAPH_VERSION, "opset": OPSET,
                "torch": torch.__version__}

    def _paths(self, key: dict) -> tuple[Path, Path]:
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return self.folder / f"{name}.onnx", self.folder / f"{name}.json"

    def get(self, key: dict) -> bytes | None:
        """
        Return the cached graph for ``key``.

        None when it is absent, stale, foreign or corrupt.
        """
        graph_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            data = graph_path.read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or meta.get("sha256") != hashlib.sha256(data).hexdigest():
            return None
        return data

    def put(self, key: dict, data: bytes) -> None:
        """Store ``data`` atomically (temporary file + rename); a read-only cache is skipped."""
        graph_path, meta_path = self._paths(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for path, payload in ((graph_path, data), (meta_path, json.dumps(
                    {"key": key, "sha256": hashlib.sha256(data).hexdigest()}).encode())):
                tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
                tmp.write_bytes(payload)
                os.replace(tmp, path)
        except OSError:
            pass  # no writable cache: the graph is exported again next start
