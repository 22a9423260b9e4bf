"""
A model bundle: every width's exported frame graph and what the node needs, without PyTorch.

A bundle is a directory written by ``slimseg-export --bundle DIR`` (:mod:`.bundle_export`): per
width an OpenVINO IR (``.xml`` + ``.bin``, weights compressed to fp16) and an ONNX file for ONNX
Runtime, and ``bundle.json`` with the class names, palette, normalisation, input size, widths,
graph format, outputs, the source checkpoint's SHA-256 and each file's SHA-256. This module reads
and checks a bundle and runs it (:class:`BundleEngine`, the engine's interface for the node)
importing neither torch nor anything that does. Every problem is one :class:`BundleError`
sentence naming the file.

A bundle may hold a ladder (:mod:`.ladder`) under ``bundle.json``'s ``"ladder"`` key: the
ladder's JSON plus ``"graphs": {runtime: {"<width>@<h>x<w>": {"file", "sha256"}}}``, a graph
per point for every runtime the bundle has, exported like the widths' at the point's input
size (``python -m slimseg_ros.tools.resolution_sweep --write-ladder DIR`` adds it). The points
run in float: INT8 graphs exist at the full input only.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..widths import TrainedWidths, Width
from .backends import (BACKENDS, INT8, BackendError, bundle_runtimes,
                       check_backend_precision, resolve_backend)
from .graph_format import (GRAPH_VERSION, check_frame, file_sha256, graph_outputs, prepare_sizes,
                           openvino_cache_dir, releasable, release_graphs)
from .ladder import (LADDER_OFF_NOTE, NO_INPUT_SIZE_NOTE, LadderError, LadderSpec, loaded_note,
                     missing_note, parse_ladder, find_point)
from .working_memory import return_freed_heap

BUNDLE_FILE = "bundle.json"
FORMAT = "slimseg-bundle"
FORMAT_VERSION = 1


class BundleError(ValueError):
    """A bundle that cannot be used; the message names the file and says why."""


@dataclass(frozen=True)
class BundleInfo:
    """What the node reads of the model: class names, palette, normalisation, input size."""

    class_names: list[str]
    palette: list[list[int]]
    mean: list[float]
    std: list[float]
    input_size: list[int] | None


def is_bundle(path: str | Path) -> bool:
    """Tell whether ``path`` is a directory (a bundle, or meant to be one)."""
    return Path(path).is_dir()


def read_bundle(folder: str | Path, check_files: bool = True,
                check_ladder: bool = True) -> dict[str, Any]:
    """
    Read and check ``folder``'s ``bundle.json``; with ``check_files``, every file's SHA-256.

    Raises :class:`BundleError` for a missing, corrupt or foreign ``bundle.json``, another format
    or graph version, a missing width or file, or a file whose content does not match; and, with
    ``check_ladder``, for a ladder whose metadata or graphs are not right (see
    :func:`bundle_ladder`).
    """
    folder = Path(folder)
    meta_path = folder / BUNDLE_FILE
    if not meta_path.is_file():
        raise BundleError(f"{folder} is not a model bundle: it has no {BUNDLE_FILE} "
                          f"(write one with slimseg-export --bundle)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{meta_path} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path} is not a slimseg model bundle (format "
                          f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{meta_path} is bundle format version {meta.get('format_version')!r};"
                          f" this package reads version {FORMAT_VERSION}: export it again")
    if meta.get("graph_version") != GRAPH_VERSION:
        raise BundleError(f"{meta_path} holds frame graphs of version "
                          f"{meta.get('graph_version')!r}; this package runs version "
                          f"{GRAPH_VERSION}: export it again with this package")
    widths = meta.get("widths")
    graphs = meta.get("graphs")
    if not isinstance(widths, list) or not widths or not isinstance(graphs, dict):
        raise BundleError(f"{meta_path} lists no widths or no graphs")
    for runtime, per_width in graphs.items():
        record = BACKENDS.get(runtime)
        if record is None or record.bundle_loader is None or not isinstance(per_width, dict):
            raise BundleError(f"{meta_path} has graphs for an unknown runtime {runtime!r}")
        for w in widths:
            entry = per_width.get(f"{float(w):g}")
            if not isinstance(entry, dict):
                raise BundleError(f"{meta_path}: width {float(w):g} has no {runtime} graph")
            if check_files:
                check_hashes(folder, entry.get("sha256", {}), f"width {float(w):g}, {runtime}")
    if check_ladder:
        bundle_ladder(folder, meta, check_files)
    return meta


def bundle_ladder(folder: str | Path, meta: dict[str, Any],
                  check_files: bool = True) -> LadderSpec | None:
    """
    Return the ladder of the bundle ``folder`` (its ``bundle.json`` read as ``meta``), or None.

    Raises :class:`BundleError` for invalid ladder metadata, a point without a graph for one of
    the bundle's runtimes, a graph entry that matches no point, and with ``check_files`` a graph
    file that is missing or does not match its SHA-256.
    """
    raw = meta.get("ladder")
    if raw is None:
        return None
    folder = Path(folder)
    meta_path = folder / BUNDLE_FILE
    if not meta.get("input_size"):
        raise BundleError(f"{meta_path} has a ladder but no fixed input size: a ladder's points "
                          f"are reduced input sizes")
    try:
        spec = parse_ladder(raw, str(meta_path), [float(w) for w in meta["widths"]],
                            meta["input_size"])
    except LadderError as exc:
        raise BundleError(str(exc)) from None
    graphs = raw.get("graphs")
    if not isinstance(graphs, dict):
        raise BundleError(f"{meta_path}: the ladder lists no graphs")
    for runtime in graphs:
        if runtime not in meta["graphs"]:
            raise BundleError(f"{meta_path}: the ladder has graphs for {runtime!r}, a runtime "
                              f"the bundle has no width graphs for")
    keys = {p.key for p in spec.points}
    for runtime in meta["graphs"]:
        per_point = graphs.get(runtime)
        if not isinstance(per_point, dict):
            raise BundleError(f"{meta_path}: the ladder has no {runtime} graphs")
        for key in per_point:
            if key not in keys:
                raise BundleError(f"{meta_path}: ladder graph {key!r} ({runtime}) matches no "
                                  f"point of the ladder")
        for point in spec.points:
            entry = per_point.get(point.key)
            hashes = entry.get("sha256") if isinstance(entry, dict) else None
            if not isinstance(hashes, dict) or entry.get("file") not in hashes:
                raise BundleError(f"{meta_path}: ladder point {point.key} has no {runtime} "
                                  f"graph")
            if check_files:
                check_hashes(folder, hashes, f"ladder point {point.key}, {runtime}")
    return spec


def check_hashes(folder: Path, hashes: dict[str, str], what: str) -> None:
    """
    Check that every file ``hashes`` names is in ``folder`` with that SHA-256.

    ``what`` says whose files they are in the :class:`BundleError` (width or ladder point, and
    the runtime).
    """
    for name, digest in hashes.items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{path} is missing from the bundle ({what})")
        if file_sha256(path) != digest:
            raise BundleError(f"{path} does not match the SHA-256 recorded in {BUNDLE_FILE}: "
                              f"a corrupt or replaced file")


def precision_summary(precisions: dict[str, str]) -> str:
    """Say which precision runs at which width ("int8", or "int8 at 0.75, 1; fp32 at 0.25")."""
    kinds = list(dict.fromkeys(precisions.values()))
    if len(kinds) == 1:
        return kinds[0]
    return "; ".join(f"{p} at {', '.join(w for w, q in precisions.items() if q == p)}"
                     for p in kinds)


class BundleEngine:
    """
    Runs a bundle's per-width frame graphs in OpenVINO or ONNX Runtime; no torch involved.

    The same interface the node uses of :class:`~.engine.SegmentationEngine`: ``widths``,
    ``info``, ``infer``, ``segment``, ``prepare_size``, ``warmup``, ``backend``, ``precision``,
    ``device``, ``input_size``, ``confidence``, ``prepared_from``, ``prepare_seconds``,
    ``ladder``, ``ladder_note``, ``prepare_points`` and ``points_ready``. ``ladder=False`` leaves
    the bundle's ladder unloaded; ``defer_points`` leaves its points for :meth:`prepare_points`.
    OpenVINO caches its compiled models in ``openvino`` under ``cache_dir`` (default
    :func:`~.graph_format.default_cache_dir`), so a second start imports them.
    """

    def __init__(self, folder: str | Path, backend: str = "auto", precision: str = "fp32",
                 threads: int = 0, device: str = "auto", input_size: Any = None,
                 confidence: bool = False, cache_dir: str | Path | None = None,
                 ladder: bool = True, defer_points: bool = False) -> None:
        started = time.perf_counter()
        self.folder = Path(folder)
        meta = read_bundle(self.folder, check_ladder=ladder)
        if str(device) not in ("auto", "cpu"):
            raise BundleError(f"a bundle runs on the CPU here; device {device!r} needs the .pt "
                              f"checkpoint with backend torch")
        self.device = "cpu"
        key = str(backend).strip().lower()
        record = BACKENDS.get(key)
        if key != "auto" and (record is None or record.bundle_loader is None):
            raise BundleError(f"backend {backend!r} cannot run a bundle (it holds exported "
                              f"graphs): use {' or '.join(bundle_runtimes())}, or the .pt "
                              f"checkpoint")
        auto = str(precision).strip().lower() == "auto"
        try:
            self.backend = resolve_backend(key, "cpu", None if auto else precision)
            if BACKENDS[self.backend].bundle_loader is None:
                raise BackendError(f"no runtime that runs bundles is installed "
                                   f"({', '.join(bundle_runtimes())})")
            if auto:
                precision = BACKENDS[self.backend].default_precision("cpu")
            asked = check_backend_precision(self.backend, precision, "cpu")
        except BackendError as exc:
            raise BundleError(f"cannot run bundle {self.folder}: {exc}") from None
        if self.backend not in meta["graphs"]:
            raise BundleError(f"bundle {self.folder} has no {self.backend} graphs (it has "
                              f"{sorted(meta['graphs'])})")
        recorded = meta.get("input_size")
        if input_size is not None and list(input_size) not in ([0, 0], recorded):
            raise BundleError(f"input_size {list(input_size)} differs from the bundle's "
                              f"{recorded}: its graphs hold that input size (export another "
                              f"bundle for another size)")
        self.confidence = bool(confidence)
        outputs = meta.get("outputs", ["mask"])
        if self.confidence and outputs != graph_outputs(confidence=True):
            raise BundleError(f"bundle {self.folder} has no confidence output: export it with "
                              f"slimseg-export --bundle ... --confidence")
        self._outputs = outputs
        self.info = BundleInfo(list(meta["class_names"]), [list(c) for c in meta["palette"]],
                               list(meta["mean"]), list(meta["std"]), recorded)
        self.input_size = tuple(recorded) if recorded else None
        self.widths = TrainedWidths([float(w) for w in meta["widths"]])
        from .bundle_int8 import RUNTIME, auto_precisions  # (it reads bundles with this module)
        keys = [f"{w.value:g}" for w in self.widths]
        if asked == INT8:
            self.precisions = {k: INT8 for k in keys}
            self.precision_reason = "int8 (asked for)"
        elif auto and self.backend == RUNTIME:
            self.precisions, self.precision_reason = auto_precisions(meta, keys, asked)
        else:
            self.precisions = {k: asked for k in keys}
            self.precision_reason = f"{asked} ({'auto' if auto else 'asked for'})"
        self.precision = precision_summary(self.precisions)
        compiled = openvino_cache_dir(cache_dir)
        self._graphs = tuple(self._load(meta, w, threads, compiled) for w in self.widths)
        self.ladder: LadderSpec | None
        self.ladder, self.ladder_note = self._read_ladder(meta, ladder)
        # (width index, input size) -> that ladder point's graph
        self._points: dict[tuple[int, tuple[int, int]], Any] = {}
        self._point_graphs: tuple[Any, ...] = ()
        self._make_point = lambda width, key: self._load_point(meta, width, key, threads,
                                                               compiled)
        self._points_lock = threading.Lock()
        self.points_ready = self.ladder is None
        self._prepared_sizes: set[tuple[int, int]] = set()
        if not defer_points:
            self.prepare_points()
        self.prepared_from = f"bundle {self.folder} ({self.backend} graphs)"
        self.prepare_seconds = time.perf_counter() - started

    def prepare_points(self, warm_size: tuple[int, int] | None = None,
                       release: bool = False) -> None:
        """
        Load the ladder points' graphs (once); with ``warm_size``, compile and run each once.

        As :meth:`~.engine.SegmentationEngine.prepare_points`: at construction unless
        ``defer_points``; the points are published together; ``release`` hands back each
        point's working memory right after its run.
        """
        with self._points_lock:
            if self.points_ready:
                return
            made = {}
            for point in self.ladder.points if self.ladder is not None else ():
                width = self.widths.exact(point.width)
                made[(width.index, point.input_size)] = self._make_point(width, point.key)
            if warm_size is not None:
                frame = np.zeros((int(warm_size[0]), int(warm_size[1]), 3), np.uint8)
                for graph in made.values():
                    graph.run_all(frame)  # compiles at the point's input size, then runs
                    if release:  # and what its compile freed: one point's at a time
                        release_graphs([graph])
                        return_freed_heap()
            self._points, self._point_graphs = made, tuple(made.values())
            self._prepared_sizes = set()  # the next prepare_size covers the points too
            self.points_ready = True

    def _read_ladder(self, meta: dict[str, Any], enabled: bool) -> tuple[LadderSpec | None, str]:
        """Return the bundle's ladder (checked by :func:`read_bundle`) and what to say of it."""
        if not enabled:
            return None, LADDER_OFF_NOTE
        if self.input_size is None:
            return None, NO_INPUT_SIZE_NOTE
        spec = bundle_ladder(self.folder, meta, check_files=False)
        if spec is None:
            return None, missing_note(f"bundle {self.folder} has none", self.folder)
        extra = ""
        if INT8 in self.precisions.values():  # INT8 graphs exist at the full input only
            used = sorted({"fp32" if self.precisions[f"{p.width:g}"] == INT8
                           else self.precisions[f"{p.width:g}"] for p in spec.points})
            extra = f"; ladder points run {'/'.join(used) or 'fp32'}"
        return spec, loaded_note(spec, f"bundle {self.folder}", extra)

    def _load_point(self, meta: dict[str, Any], width: Width, key: str, threads: int,
                    cache_dir: Path) -> Any:
        """Load a ladder point's graph, in its width's precision (fp32 where that is int8)."""
        return self._loader(*self._source(meta, width, key), threads, cache_dir)

    def _load(self, meta: dict[str, Any], width: Width, threads: int, cache_dir: Path) -> Any:
        return self._loader(*self._source(meta, width), threads, cache_dir)

    def _loader(self, path: Path, precision: str, threads: int, cache_dir: Path) -> Any:
        record = BACKENDS[self.backend]
        extra = {"cache_dir": cache_dir} if record.compile_cache else {}
        return record.bundle_loader(path, precision, threads, **extra)

    def _source(self, meta: dict[str, Any], width: Width,
                point: str | None = None) -> tuple[Path, str]:
        """
        Return the graph file of ``width`` (or of its ladder ``point``) and its precision.

        A width that runs int8 loads its quantized graph (which carries its int8; the rest runs
        in fp32); its ladder points, which have no INT8 graphs, run fp32.
        """
        precision = self.precisions[f"{width.value:g}"]
        if point is not None:
            entry = meta["ladder"]["graphs"][self.backend][point]
            return self.folder / entry["file"], "fp32" if precision == INT8 else precision
        if precision == INT8:
            from .bundle_int8 import int8_files
            return int8_files(self.folder, meta, f"{width.value:g}"), "fp32"
        return self.folder / meta["graphs"][self.backend][f"{width.value:g}"]["file"], precision

    def graph_sources(self) -> list[tuple[str, Path, str]]:
        """
        Return (step, graph file, precision) of every width, then every ladder point.

        What this engine loads, in that order, so that a benchmark can load each graph alone.
        """
        meta = read_bundle(self.folder, check_files=False, check_ladder=False)
        steps = [(f"width {w.value:g}", *self._source(meta, w)) for w in self.widths]
        for point in self.ladder.points if self.ladder is not None else ():
            width = self.widths.exact(point.width)
            steps.append((f"point {point.key}", *self._source(meta, width, point.key)))
        return steps

    def member(self, width: Width | int) -> Width:
        """Return the trained width ``width`` names (a Width of :attr:`widths` or its index)."""
        return self.widths.member(width)

    def _point_graph(self, width: Width | int, input_size: Any) -> Any:
        """Return the graph of ``width``'s ladder point at ``input_size``; else ValueError."""
        return find_point(self._points, self.member(width), input_size, self.ladder,
                          self.ladder_note, self.points_ready)

    def _graph_of(self, width: Width | int, input_size: Any) -> Any:
        if input_size is None or tuple(input_size) == self.input_size:
            return self._graphs[self.member(width).index]
        return self._point_graph(width, input_size)

    def segment(self, image_rgb: np.ndarray, width: Width | int,
                input_size: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """
        H x W x 3 uint8 RGB -> (class ids, confidence or None), as the torch engine's.

        ``input_size`` (h, w) other than the bundle's runs that ladder point of ``width``
        (``ValueError`` where the ladder has no such point).
        """
        outputs = self._graph_of(width, input_size).run_all(check_frame(image_rgb))
        return outputs[0], (outputs[1] if self.confidence else None)

    def infer(self, image_rgb: np.ndarray, width: Width | int,
              input_size: Any = None) -> np.ndarray:
        """H x W x 3 uint8 RGB -> H x W uint8 class ids at trained ``width`` (or its point)."""
        return self.segment(image_rgb, width, input_size)[0]

    def prepare_size(self, height: int, width: int) -> None:
        """Compile every width and point for frames of ``height`` x ``width``: once each."""
        self._prepared_sizes = prepare_sizes(self._graphs + self._point_graphs,
                                             self._prepared_sizes, height, width)

    @property
    def releases_memory(self) -> bool:
        """Whether :meth:`release_memory` can hand anything back (OpenVINO's graphs can)."""
        return releasable(self._graphs)

    def release_memory(self, steps: Any = None) -> int:
        """
        Hand back the working memory of the graphs of ``steps``; all of them where None.

        As :meth:`~.engine.SegmentationEngine.release_memory`: ``(width, input size)`` pairs;
        returns how many graphs did; the next frame at a step allocates it again.
        """
        if steps is None:
            return release_graphs(self._graphs + self._point_graphs)
        return release_graphs(self._graph_of(width, size) for width, size in steps)

    def warmup(self, size: tuple[int, int] | None = None, iters: int = 1,
               release: bool = False) -> None:
        """
        Run every width and ladder point ``iters`` times on a black frame of ``size``.

        ``release``: hand back each one's working memory right after its runs, so that the
        warm-up holds one step's at a time.
        """
        h, w = size if size is not None else (self.input_size or (256, 256))
        frame = np.zeros((int(h), int(w), 3), np.uint8)
        steps = [(width, None) for width in self.widths] + list(self._points)
        for width, point_size in steps:
            for _ in range(iters):
                self.infer(frame, width, point_size)
            if release:
                self.release_memory([(width, point_size)])
                return_freed_heap()

    def __repr__(self) -> str:
        return (f"BundleEngine(widths={list(self.widths.values)}, backend={self.backend}, "
                f"device=cpu, precision={self.precision}, input_size={self.input_size}, "
                f"bundle={self.folder.name})")
