"""
Write a model's ladder (:mod:`.ladder`): beside a checkpoint, or into a bundle with its graphs.

The ladder is taken from a width x input-size sweep (``resolution_sweep``'s ``sweep.json``): the
front's reduced-input points and every width's full-input figures. A sweep of another model,
frame size or split is refused. Into a bundle each point gets a frame graph per runtime the
bundle holds, exported from the bundle's source checkpoint as the widths' graphs were (refused
when the checkpoint is not that source); the files are staged in the bundle, ``bundle.json`` is
replaced in one rename, and a previous ladder's files that the new one does not use are deleted.
This module needs torch (export); reading a ladder does not.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends import BACKENDS, BackendError
from .bundle import BUNDLE_FILE, BundleError, read_bundle
from .graph_format import file_sha256, graph_outputs
from .ladder import (LADDER_FORMAT, LADDER_SPLIT, LADDER_VERSION, LadderError, LadderSpec,
                     check_split, ladder_json, ladder_path_for, parse_ladder, read_ladder_file)


def _size_text(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def measured_on(sweep: Mapping[str, Any]) -> str:
    """Say where a sweep's latencies were measured: CPU, runtime and precision, threads, frames."""
    frame = sweep.get("frame_size") or ["?", "?"]
    return (f"{sweep.get('cpu', 'unknown CPU')}, {sweep.get('backend', '?')} "
            f"{sweep.get('precision', 'fp32')}, {sweep.get('threads', '?')} threads, "
            f"frames {_size_text(frame)}")


def ladder_from_sweep(sweep: Mapping[str, Any], front: Sequence[Mapping[str, Any]], where: str,
                      model_name: str, widths: Sequence[float],
                      input_size: Sequence[int]) -> LadderSpec:
    """
    Return the ladder of a finished sweep (read from ``where``) for the model it measured.

    ``front``: the sweep's Pareto front (the tool computes it); its points below the full input
    become the ladder's points, every width's full-input point its ``full``. The sweep must be
    of ``model_name`` (the checkpoint's file name), at frames of the model's ``input_size``, on
    val; else one :class:`~.ladder.LadderError` sentence naming ``where``.
    """
    check_split(sweep.get("split"), where)
    if sweep.get("checkpoint") != model_name:
        raise LadderError(f"{where} measured {sweep.get('checkpoint')!r}, not {model_name!r}: "
                          f"sweep this model")
    full = [int(v) for v in input_size]
    if list(sweep.get("frame_size") or []) != full:
        raise LadderError(f"{where} was measured on frames {sweep.get('frame_size')!r}, not the "
                          f"model's input size {_size_text(full)}: sweep this model")
    points = sweep.get("points")
    if not isinstance(points, list) or not points:
        raise LadderError(f"{where} holds no measured points")
    reduced = [_entry(p, size=True) for p in front if list(p["input_size"]) != full]
    if not reduced:
        raise LadderError(f"{where}: no reduced-input point is on the front, so there is no "
                          f"ladder to store (the widths alone are the best operating points)")
    data = {"format": LADDER_FORMAT, "version": LADDER_VERSION, "input_size": full,
            "measured_on": measured_on(sweep), "split": LADDER_SPLIT, "points": reduced,
            "full": [_entry(p, size=False) for p in points if list(p["input_size"]) == full]}
    return parse_ladder(data, where, widths, full)


def _entry(point: Mapping[str, Any], size: bool) -> dict[str, Any]:
    """Return a sweep point as a ladder entry, its figures rounded to what they resolve."""
    entry: dict[str, Any] = {"width": float(point["width"])}
    if size:
        entry["input_size"] = [int(v) for v in point["input_size"]]
    entry["latency_ms"] = round(float(point["p50_ms"]), 3)
    entry["miou"] = round(float(point["miou"]), 2) if point.get("miou") is not None else None
    return entry


def dumps_ladder(data: Mapping[str, Any]) -> str:
    """Return ladder JSON as text: one line per key, one line per point (small and readable)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            inner = ",\n".join(f"    {json.dumps(v)}" for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{inner}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_facts(checkpoint: str | os.PathLike) -> tuple[list[float], list[int] | None]:
    """Return a checkpoint's trained widths and recorded input size (reads it, safely)."""
    from ..models.checkpoint import load_checkpoint
    from ..models.slimmable import trained_widths

    model, info = load_checkpoint(checkpoint, map_location="cpu")
    return [float(w) for w in trained_widths(model)], (
        [int(v) for v in info.input_size] if info.input_size else None)


def write_checkpoint_ladder(checkpoint: str | os.PathLike, spec: LadderSpec) -> Path:
    """Check ``spec`` against ``checkpoint`` and write it beside it; return the file written."""
    widths, size = checkpoint_facts(checkpoint)
    path = ladder_path_for(checkpoint)
    if size is None:
        raise LadderError(f"{checkpoint} records no input size: a ladder's points are reduced "
                          f"input sizes of it")
    data = ladder_json(spec)
    parse_ladder(data, str(path), widths, size)
    _write_atomically(path, dumps_ladder(data))
    return path


def ladder_files(meta: Mapping[str, Any]) -> set[str]:
    """Return the names of every file a bundle's ladder records."""
    graphs = (meta.get("ladder") or {}).get("graphs") or {}
    return {name for per_point in graphs.values() if isinstance(per_point, Mapping)
            for entry in per_point.values() if isinstance(entry, Mapping)
            for name in entry.get("sha256", {})}


def write_bundle_ladder(folder: str | os.PathLike, spec: LadderSpec,
                        checkpoint: str | os.PathLike | None = None,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    """
    Export a graph per point of ``spec`` for every runtime of the bundle; record the ladder.

    ``checkpoint``: the bundle's source (default: the packaged ``default.pt``), refused where
    its SHA-256 is not the one ``bundle.json`` records. A previous ladder is replaced. Returns
    the bundle's new metadata; raises :class:`~.bundle.BundleError` before anything is
    written. The graphs are exported to a staging folder first; only the move of their files
    into the bundle and the atomic replacement of ``bundle.json`` follow, so a write stopped
    between the two (a point of the same name re-exported differently) is repaired by running
    it again.
    """
    from ..resources import default_checkpoint
    from .backends.frame_graph import export_frame_graph
    from .engine import SegmentationEngine
    from ..models.checkpoint import load_checkpoint

    folder = Path(folder)
    meta = read_bundle(folder, check_ladder=False)  # a broken old ladder may be replaced
    meta_path = folder / BUNDLE_FILE
    if not meta.get("input_size"):
        raise BundleError(f"bundle {folder} has no fixed input size: a ladder's points are "
                          f"reduced input sizes of it")
    data = ladder_json(spec)
    try:
        parse_ladder(data, str(meta_path), [float(w) for w in meta["widths"]],
                     meta["input_size"])
    except LadderError as exc:
        raise BundleError(str(exc)) from None
    source = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if file_sha256(source) != meta.get("source", {}).get("sha256"):
        raise BundleError(f"{source} is not the checkpoint bundle {folder} was exported from "
                          f"(its SHA-256 differs from the one {BUNDLE_FILE} records): pass "
                          f"that checkpoint with --checkpoint")
    runtimes = list(meta["graphs"])
    for runtime in runtimes:
        record = BACKENDS[runtime]
        if record.bundle_writer is None or not record.installed():
            raise BackendError(f"{runtime} is not installed (pip install {record.package}): "
                               f"it converts the ladder's graphs of bundle {folder}")
    model, info = load_checkpoint(source, map_location="cpu")
    engine = SegmentationEngine(model, info, device="cpu", backend="torch",
                                input_size=tuple(meta["input_size"]), ladder=False)
    confidence = meta.get("outputs") == graph_outputs(confidence=True)
    graphs: dict[str, dict[str, Any]] = {r: {} for r in runtimes}
    staging = Path(tempfile.mkdtemp(prefix=".ladder.", dir=folder))
    try:
        staged: list[str] = []
        for point in spec.points:
            stem = f"ladder_{point.width:g}_{_size_text(point.input_size)}"
            onnx_path = staging / f"{stem}.onnx"
            net = engine.network(engine.widths.exact(point.width))
            onnx_path.write_bytes(export_frame_graph(net, info.mean, info.std, point.input_size,
                                                     confidence=confidence))
            kept: set[str] = set()
            for runtime in runtimes:  # each runtime's files, made from the one ONNX export
                names = BACKENDS[runtime].bundle_writer(onnx_path, stem)
                kept.update(names)
                graphs[runtime][point.key] = {
                    "file": names[0], "sha256": {n: file_sha256(staging / n) for n in names}}
            if onnx_path.name not in kept:
                onnx_path.unlink()
            staged += sorted(kept)
            log(f"ladder point {point.key}: {', '.join(sorted(kept))}")
        old = ladder_files(meta)
        for name in staged:
            (staging / name).chmod(0o644)
            os.replace(staging / name, folder / name)
        meta["ladder"] = {**data, "graphs": graphs}
        _write_atomically(meta_path, json.dumps(meta, indent=2) + "\n")
        for name in old - set(staged):
            (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta


def carry_checkpoint_ladder(checkpoint: str | os.PathLike, folder: str | os.PathLike,
                            log: Callable[[str], None] = print) -> LadderSpec | None:
    """
    Write the ladder beside ``checkpoint`` into the bundle just exported from it, where it fits.

    A bundle made from a model with operating points keeps them: its points' graphs are
    exported like :func:`write_bundle_ladder` does. None (said through ``log``) where the
    checkpoint has no ladder or the bundle runs another input size than the ladder was measured
    at; a broken ladder file raises :class:`~.ladder.LadderError` naming it.
    """
    path = ladder_path_for(checkpoint)
    if not path.is_file():
        return None
    meta = read_bundle(folder, check_files=False)
    spec = read_ladder_file(path, [float(w) for w in meta["widths"]], None)
    if list(spec.input_size) != list(meta.get("input_size") or []):
        log(f"{path} was measured at input {_size_text(spec.input_size)}, the bundle runs "
            f"{meta.get('input_size')}: its points are not carried (the bundle runs widths "
            f"only)")
        return None
    write_bundle_ladder(folder, spec, checkpoint, log)
    return spec
