"""
INT8 graphs in a model bundle: quantize every width, check it, record it, time it, choose it.

``slimseg-export --bundle DIR --int8 --calibration FRAMES`` adds to a bundle, per width, an
OpenVINO IR quantized with NNCF (:mod:`.quantize`: per-channel int8 weights, the frame's
normalisation and resize and everything after the logits in float) from frames of the model's
training images or any folder of the user's frames. Each width is checked on frames held out
of the calibration set (never a test set): int8 against fp32 masks must agree on at least
:data:`AGREEMENT_NEEDED` of the pixels, or, where a labelled check is given (the CLI's
``--check-root``), the int8 mIoU may drop at most :data:`MIOU_DROP_ALLOWED` points. The
calibration set, the settings and every check go into ``bundle.json``; ``bundle.json`` is
replaced in one rename, so an interrupted run leaves the bundle as it was.

``slimseg-export --bundle DIR --measure`` times fp32 against int8 per width on this machine and
records it under the CPU's key (:func:`~.machine.cpu_key`); ``precision: auto`` then runs int8
at a width only where this CPU's record shows a passed check and a speed-up of at least
:data:`AUTO_SPEEDUP` (:func:`auto_precisions`): nothing is timed at start-up. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import BUNDLE_FILE, BundleError, read_bundle
from .graph_format import file_sha256
from .machine import cpu_key, cpu_model

AGREEMENT_NEEDED = 0.97  # int8/fp32 mask agreement on held-out frames, without labels
MIOU_DROP_ALLOWED = 1.0  # mIoU points int8 may lose against fp32, with labels
AUTO_SPEEDUP = 1.15  # what precision auto needs measured on this CPU before it runs int8
RUNTIME = "openvino"  # the runtime INT8 graphs are written for

#: labelled check: (width key, fp32 compiled model, int8 compiled model) -> record with "passed"
Check = Callable[[str, Any, Any], dict[str, Any]]


def _replace_meta(folder: Path, meta: dict[str, Any]) -> None:
    """Write ``bundle.json`` atomically (temporary file + rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{BUNDLE_FILE}.", dir=folder)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(meta, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / BUNDLE_FILE)


def compile_static(core: Any, model: Any, size: tuple[int, int], threads: int = 0) -> Any:
    """Compile a frame graph the way the backend runs it: static at ``size``, fp32 hint."""
    from .backends.openvino_backend import bypass_identity_resizes
    model = model.clone()
    model.reshape({model.inputs[0]: [1, size[0], size[1], 3]})
    bypass_identity_resizes(model)
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return core.compile_model(model, "CPU", config)


def masks_of(compiled: Any, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run every frame through a compiled frame graph; return the class-id masks."""
    request = compiled.create_infer_request()
    out = []
    for frame in frames:
        request.infer({0: frame[None]})
        out.append(request.get_output_tensor(0).data[0].copy())
    return out


def calibration_digest(files: list[Path], root: Path) -> str:
    """Return a SHA-256 over the calibration files' relative names and sizes (the set's id)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root)}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def add_int8(folder: str | Path, calibration: str | Path, frames: int = 300,
             held_out: float = 0.2, check: Check | None = None,
             log: Callable[[str], None] = print, **settings: Any) -> dict[str, Any]:
    """
    Quantize every width of the bundle ``folder`` on frames of ``calibration``; record it all.

    ``frames`` are read, spread over the folder's sorted images, and every fifth is held out
    for the check (``held_out``). ``check`` replaces the agreement check by a labelled one.
    ``settings`` go to :func:`~.quantize.quantize_frame_graph`. Returns the bundle's new
    metadata. Raises :class:`~.bundle.BundleError` for a bundle without OpenVINO graphs,
    ``ValueError`` for an empty or unreadable calibration folder (nothing written), and
    ``ImportError`` naming nncf where it is missing.
    """
    try:
        import nncf
    except ImportError:
        raise ImportError("INT8 graphs need nncf (pip install nncf, the version matching "
                          "openvino; see requirements.txt)") from None
    import openvino as ov

    from .quantize import (count_fake_quantize, load_calibration_frames, mask_agreement,
                           quantize_frame_graph, split_frames)
    folder = Path(folder)
    meta = read_bundle(folder)
    if RUNTIME not in meta["graphs"]:
        raise BundleError(f"bundle {folder} has no {RUNTIME} graphs to quantize: write it with "
                          f"--runtimes {RUNTIME}")
    size = tuple(meta["input_size"]) if meta.get("input_size") else None
    if size is None:
        raise BundleError(f"bundle {folder} has no fixed input size: INT8 graphs are "
                          f"calibrated at one")
    calib = load_calibration_frames(calibration, size, frames)
    log(f"calibration: {calib.note()}")
    train, check_frames = split_frames(calib.frames, held_out)
    core = ov.Core()
    graphs, checks = {}, {}
    staged: list[tuple[Path, Path]] = []
    tmp = Path(tempfile.mkdtemp(prefix=".int8.", dir=folder))
    try:
        for w in meta["widths"]:
            key = f"{float(w):g}"
            started = time.perf_counter()
            log(f"width {key}: quantizing on {len(train)} frames")
            fp32 = core.read_model(str(folder / meta["graphs"][RUNTIME][key]["file"]))
            int8 = quantize_frame_graph(fp32, train, **settings)
            stem = f"width_{key}_int8"
            ov.save_model(int8, str(tmp / f"{stem}.xml"), compress_to_fp16=False)
            names = [f"{stem}.xml", f"{stem}.bin"]
            graphs[key] = {"file": names[0],
                           "sha256": {n: file_sha256(tmp / n) for n in names},
                           "from_sha256": meta["graphs"][RUNTIME][key]["sha256"],
                           "fake_quantize": count_fake_quantize(int8)}
            staged += [(tmp / n, folder / n) for n in names]
            a, b = compile_static(core, fp32, size), compile_static(core, int8, size)
            if check is not None:
                record = check(key, a, b)
            else:
                agreement = mask_agreement(masks_of(a, check_frames),
                                           masks_of(b, check_frames))
                record = {"kind": "mask agreement", "frames": len(check_frames),
                          "agreement": round(agreement, 5), "needed": AGREEMENT_NEEDED,
                          "passed": agreement >= AGREEMENT_NEEDED}
            record["seconds"] = round(time.perf_counter() - started, 1)
            checks[key] = record
            log(f"width {key}: {'passed' if record['passed'] else 'FAILED'} {record}")
        for src, dst in staged:
            os.replace(src, dst)
    finally:
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()
    meta["int8"] = {
        "runtime": RUNTIME, "graphs": graphs, "checks": checks,
        "calibration": {"folder": calib.folder.name, "frames": len(calib.frames),
                        "used": len(train), "held_out": len(check_frames),
                        "resized": calib.resized, "unreadable": len(calib.unreadable),
                        "sha256": calibration_digest(calib.files, calib.folder)},
        "settings": {"nncf": nncf.__version__, "openvino": ov.__version__.split("-")[0],
                     **{k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in settings.items()}},
        "speed": meta.get("int8", {}).get("speed", {}) if _same_graphs(meta, graphs) else {}}
    _replace_meta(folder, meta)
    return meta


def _same_graphs(meta: Mapping[str, Any], graphs: Mapping[str, Any]) -> bool:
    """Tell whether the bundle's recorded INT8 graphs are byte for byte ``graphs``."""
    old = meta.get("int8", {}).get("graphs", {})
    return bool(old) and all(old.get(k, {}).get("sha256") == v["sha256"]
                             for k, v in graphs.items())


def measure_int8(folder: str | Path, rounds: int = 6, block: int = 10, threads: int = 0,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """
    Time fp32 against int8 per width here, in turn, and record it under this CPU's key.

    Frames of the input size, ``block`` frames of one precision after another (the node serves
    one width for many frames), ``rounds`` times each; ``threads`` as the node's (0: OpenVINO's
    choice). Returns the bundle's new metadata.
    """
    from .backends.openvino_backend import OpenVINOFrameGraph
    folder = Path(folder)
    meta = read_bundle(folder)
    int8 = meta.get("int8")
    if not int8:
        raise BundleError(f"bundle {folder} has no INT8 graphs to time: add them with "
                          f"slimseg-export --bundle {folder} --int8 --calibration FRAMES")
    h, w = meta["input_size"]
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    record = {}
    for width in meta["widths"]:
        key = f"{float(width):g}"
        graphs = {"fp32": OpenVINOFrameGraph(str(folder / meta["graphs"][RUNTIME][key]["file"]),
                                             "fp32", threads),
                  "int8": OpenVINOFrameGraph(str(folder / int8["graphs"][key]["file"]),
                                             "fp32", threads)}
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        for graph in graphs.values():
            graph.run(frame)  # compile and warm up
        for _ in range(rounds):  # in turn: both see the same load
            for name, graph in graphs.items():
                for _ in range(block):
                    started = time.perf_counter()
                    graph.run(frame)
                    times[name].append((time.perf_counter() - started) * 1e3)
        fp32_ms, int8_ms = statistics.median(times["fp32"]), statistics.median(times["int8"])
        record[key] = {"fp32_ms": round(fp32_ms, 2), "int8_ms": round(int8_ms, 2),
                       "speedup": round(fp32_ms / int8_ms, 3), "threads": threads,
                       "rounds": rounds, "block": block}
        log(f"width {key}: fp32 {fp32_ms:.1f} ms, int8 {int8_ms:.1f} ms: "
            f"{fp32_ms / int8_ms:.2f}x")
    int8.setdefault("speed", {})[cpu_key()] = {"cpu": cpu_model(), "widths": record,
                                               "measured": time.strftime("%Y-%m-%d")}
    _replace_meta(folder, meta)
    return meta


def int8_files(folder: Path, meta: Mapping[str, Any], width: str) -> Path:
    """
    Return width ``width``'s INT8 IR after checking it, or raise :class:`~.bundle.BundleError`.

    The files must match their recorded SHA-256, and they must have been made from the bundle's
    fp32 graph as it is now: INT8 graphs of another export are rebuilt, never trusted.
    """
    int8 = meta.get("int8") or {}
    entry = int8.get("graphs", {}).get(width)
    if entry is None:
        raise BundleError(f"bundle {folder} has no INT8 graph for width {width}: add them with "
                          f"slimseg-export --bundle {folder} --int8 --calibration FRAMES")
    if entry.get("from_sha256") != meta["graphs"][RUNTIME][width]["sha256"]:
        raise BundleError(f"the INT8 graph of width {width} in {folder} was made from other "
                          f"fp32 graphs: make it again with slimseg-export --bundle {folder} "
                          f"--int8 --calibration FRAMES")
    for name, digest in entry["sha256"].items():
        path = folder / name
        if not path.is_file() or file_sha256(path) != digest:
            raise BundleError(f"{path} is missing or does not match the SHA-256 recorded in "
                              f"{BUNDLE_FILE}: make the INT8 graphs again with slimseg-export "
                              f"--bundle {folder} --int8 --calibration FRAMES")
    return folder / entry["file"]


def auto_precisions(meta: Mapping[str, Any], widths: list[str],
                    fallback: str) -> tuple[dict[str, str], str]:
    """
    Return the precision per width ``precision: auto`` runs, and why, from ``bundle.json``.

    int8 at a width only where the bundle records, for this CPU's key, a passed check and a
    speed-up of at least :data:`AUTO_SPEEDUP`; ``fallback`` (fp32, or bf16 where the CPU has
    it) elsewhere.
    """
    int8 = meta.get("int8") or {}
    chosen = {w: fallback for w in widths}
    if not int8.get("graphs"):
        return chosen, f"{fallback}: the bundle has no INT8 graphs"
    speed = int8.get("speed", {}).get(cpu_key())
    if speed is None:
        return chosen, (f"{fallback}: no INT8 speed recorded for this CPU ({cpu_key()}); "
                        f"slimseg-export --bundle DIR --measure records it")
    why = []
    for w in widths:
        passed = int8.get("checks", {}).get(w, {}).get("passed", False)
        ratio = speed.get("widths", {}).get(w, {}).get("speedup")
        if passed and ratio is not None and ratio >= AUTO_SPEEDUP:
            chosen[w] = "int8"
            why.append(f"{w}: int8 ({ratio:.2f}x)")
        else:
            cause = ("check failed" if not passed else "not timed" if ratio is None
                     else f"{ratio:.2f}x < {AUTO_SPEEDUP}x")
            why.append(f"{w}: {fallback} ({cause})")
    return chosen, "auto: " + ", ".join(why)
