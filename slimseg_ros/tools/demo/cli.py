"""
``slimseg-demo``: the whole system in one command, written up as a report folder.

The command line and the run: read the node's parameter file, pick (or build) the checkpoint,
start the node process on a private ROS domain, wait for its first mask, play the scenario and
write the report (see :mod:`slimseg_ros.tools.demo` for what the folder holds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ...ros.contract import NODE_NAME, check_camera_names
from ...resources import default_checkpoint
from ..common import RosSession, parse_size
from ..node_process import (default_params_file, log_tail, node_command, node_environment,
                            stand_in_checkpoint, stop_process)
from . import DemoError
from .client import DemoClient, Record, frame_id_of
from .report import write_report
from .scenario import camera_scenario, play, scenario
from .scene import SceneScore, scene_classes_match
from .sources import SCENE_LOOP_FRAMES, FrameSource, SceneSource, Source


# ----------------------------------------------------------------------------------------------
# Files: the node's parameter file and the checkpoint it loads
# ----------------------------------------------------------------------------------------------

def find_params_file() -> Path:
    """Find ``config/slimseg.yaml`` in the installed share folder or the source tree."""
    found = default_params_file()
    if found is None:
        raise DemoError("config/slimseg.yaml not found in share/slimseg_ros or the source tree; "
                        "pass --params FILE")
    return found


def flatten_params(params_file: Path) -> dict[str, Any]:
    """Read the node's ``ros__parameters`` from a ROS 2 parameter file, as dotted names."""
    import yaml

    data = yaml.safe_load(params_file.read_text()) or {}
    section: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).strip("/").split("/")[-1]
        if isinstance(value, dict) and "ros__parameters" in value and name in (NODE_NAME, "**"):
            section.update(value["ros__parameters"] or {})
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = node

    walk("", section)
    return flat


def find_default_checkpoint(params: dict[str, Any]) -> Path | None:
    """
    Find the model the node would load.

    The parameter file's checkpoint, else the packaged one.
    """
    value = str(params.get("checkpoint") or "")
    if value:
        path = Path(value).expanduser()
        return path.resolve() if path.is_file() else None
    try:
        return default_checkpoint().resolve()
    except FileNotFoundError:
        return None


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """Read a checkpoint's (or a bundle's) class names, palette and widths, building nothing."""
    if path.is_dir():  # a model bundle
        from ...inference.bundle import BundleError, read_bundle
        try:
            meta = read_bundle(path, check_files=False)
        except BundleError as exc:
            raise DemoError(str(exc)) from None
        return {"widths": [float(w) for w in meta["widths"]],
                "class_names": list(meta["class_names"]),
                "palette": [list(map(int, c)) for c in meta["palette"]], "untrained": False,
                "confidence": "confidence" in meta.get("outputs", []),
                "cheapest": cheapest_ratio(meta.get("ladder"))}
    from ...models.checkpoint import safe_torch_load

    payload = safe_torch_load(path)
    if not isinstance(payload, dict) or "widths" not in payload:
        raise DemoError(f"{path} is not a slimseg checkpoint (no 'widths')")
    from ...inference.ladder import ladder_path_for

    ladder = ladder_path_for(path)
    try:
        ladder_data = json.loads(ladder.read_text()) if ladder.is_file() else None
    except (OSError, ValueError):
        ladder_data = None  # the node says what is wrong with it
    return {"widths": [float(w) for w in payload["widths"]],
            "class_names": list(payload.get("class_names") or []),
            "palette": [list(map(int, c)) for c in payload.get("palette") or []],
            "untrained": bool((payload.get("extra") or {}).get("untrained", False)),
            "cheapest": cheapest_ratio(ladder_data)}


def cheapest_ratio(ladder: Any) -> float:
    """
    Return the cheapest operating point's cost over the narrowest width's (1.0: no ladder).

    The phase of a CPU budget below everything the node can run needs it: with a ladder the
    cheapest point costs less than the narrowest width at the full input.
    """
    try:
        full = {float(f["width"]): float(f["latency_ms"]) for f in ladder["full"]}
        cheapest = min(float(p["latency_ms"]) for p in ladder["points"])
        return min(1.0, cheapest / full[min(full)])
    except (TypeError, KeyError, ValueError):
        return 1.0


# ----------------------------------------------------------------------------------------------
# The command and the run
# ----------------------------------------------------------------------------------------------

def frame_size_arg(text: str) -> tuple[int, int]:
    """Read ``--size``: ``HxW``, height first, at least 8 pixels each."""
    return parse_size(text, minimum=8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slimseg-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="reports/demo", help="report folder (created)")
    p.add_argument("--images", help="an image folder or a video file to replay; default: a "
                                    "generated street scene, its masks scored against its "
                                    "label maps")
    p.add_argument("--checkpoint", help="model file or bundle folder; default: the packaged "
                                        "model, or an untrained stand-in if none is installed")
    p.add_argument("--params", help="node parameter file; default: config/slimseg.yaml")
    p.add_argument("--size", type=frame_size_arg, metavar="HxW",
                   help="resize frames to HxW, height first (generated frames: 360x480)")
    p.add_argument("--scene-frames", type=int, default=SCENE_LOOP_FRAMES,
                   help="frames of the generated scene drawn before the replay, then looped")
    p.add_argument("--cameras", nargs="+", metavar="NAME",
                   help="the multi-camera scenario: the node serves these cameras (e.g. front "
                        "left right; two or more) with one model, each replaying other frames; "
                        "the first has the highest priority under a tight budget, the last "
                        "drops out for a phase and comes back")
    p.add_argument("--fps", type=float, default=10.0,
                   help="frames offered per second (per camera)")
    p.add_argument("--phase-seconds", type=float, default=4.0,
                   help="length of one scenario step; the whole scenario is about 16 steps "
                        "(13 with --cameras)")
    p.add_argument("--device", help="override the node's device parameter (cpu/cuda/auto)")
    p.add_argument("--backend", help="override the node's backend parameter "
                                     "(auto/torch/openvino/onnxruntime)")
    p.add_argument("--precision", help="override the node's precision parameter (e.g. int8 "
                                       "with a bundle holding INT8 graphs)")
    p.add_argument("--startup-timeout", type=float, default=180.0,
                   help="seconds to wait for the node's first mask")
    p.add_argument("--domain-id", type=int, help="ROS_DOMAIN_ID (default: a private one)")
    return p


def run_demo(args: argparse.Namespace) -> dict[str, Path]:
    """Run the whole demo; returns the report files. Raises :class:`DemoError` on failure."""
    out = Path(args.output).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.fps <= 0 or args.phase_seconds <= 0:
        raise DemoError("--fps and --phase-seconds must be > 0")
    cameras = list(args.cameras or [])
    if cameras:
        try:
            check_camera_names(cameras)
        except ValueError as exc:
            raise DemoError(f"--cameras: {exc}") from exc
        if len(cameras) < 2:
            raise DemoError(f"--cameras needs two names or more, got {cameras}")
    params_file = Path(args.params).resolve() if args.params else find_params_file()
    if not params_file.is_file():
        raise DemoError(f"parameter file {params_file} does not exist")
    params = flatten_params(params_file)

    if args.checkpoint:
        checkpoint = Path(args.checkpoint).expanduser().resolve()
        if not checkpoint.exists():
            raise DemoError(f"checkpoint {checkpoint} does not exist")
    else:
        checkpoint = find_default_checkpoint(params)
        if checkpoint is None:
            checkpoint = out / "untrained_model.pt"
            print(f"[demo] no trained model is installed: building an UNTRAINED "
                  f"model at {checkpoint} (its masks mean nothing; pass --checkpoint FILE for a "
                  f"real one)", flush=True)
            stand_in_checkpoint(checkpoint)
    info = read_checkpoint_info(checkpoint)
    if info["untrained"]:
        print("[demo] WARNING: the checkpoint is UNTRAINED", flush=True)
    widths = sorted(info["widths"])

    sources = _open_sources(args, cameras or [""])
    first = next(iter(sources.values()))
    frame_size = first.first.shape[:2]
    domain_id = args.domain_id if args.domain_id is not None else 100 + os.getpid() % 100
    env = node_environment(domain_id, localhost_only=True)
    os.environ.update(env)  # this process joins the same private domain

    phase_s = float(args.phase_seconds)
    overrides: dict[str, Any] = {"checkpoint": str(checkpoint)}
    if args.device:
        overrides["device"] = args.device
    if args.backend:
        overrides["backend"] = args.backend
    if args.precision:
        overrides["precision"] = args.precision
    # Short scenario steps need a governor that settles within a step; say so in the report.
    gov_prefix = next((k.rsplit(".", 1)[0] + "." for k in params if k.endswith("min_dwell_s")),
                      "governor.")
    dwell = float(params.get(gov_prefix + "min_dwell_s", 2.0))
    overrides[gov_prefix + "min_dwell_s"] = round(min(dwell, 0.3 * phase_s), 3)
    overrides[gov_prefix + "probe_interval_s"] = round(
        min(float(params.get(gov_prefix + "probe_interval_s", 3.0)), 0.4 * phase_s), 3)
    overrides[gov_prefix + "stale_timeout_s"] = max(2.0, 2 * phase_s)
    overrides["diagnostics_period_s"] = 0.2  # a fine-grained decision log
    # the montage shows it at every width (a bundle only where its graphs have it)
    overrides["publish_confidence"] = info.get("confidence", True)
    # the scenario's own battery and thermal phases decide; a laptop's real battery or a warm
    # CPU would otherwise cap the widths between them and blur what each phase shows
    overrides["host_sensors"] = "off"
    margin = float(params.get(gov_prefix + "budget_margin", 0.9))
    priorities = [2.0] + [1.0] * (len(cameras) - 1) if cameras else []
    if cameras:
        overrides["cameras"] = cameras
        overrides["camera_priorities"] = priorities
        # a silent camera stops costing budget once its last frame leaves the latency window:
        # within the drop-out phase (2.5 steps), with time left for the others to widen
        window = float(params.get("latency_window_s", 3.0))
        overrides["latency_window_s"] = round(min(window, max(0.5, 0.8 * phase_s)), 3)

    cmd = node_command(params_file, overrides)
    log_path = out / "node.log"
    print(f"[demo] starting the node on ROS_DOMAIN_ID={domain_id}: {' '.join(cmd)}", flush=True)

    record = Record(cameras=cameras or [""])
    if not args.images and scene_classes_match(info["class_names"]):
        record.scene = SceneScore()  # masks of generated frames are scored as they come back
    phases = camera_scenario(phase_s, widths, cameras) if cameras else scenario(phase_s, widths)
    origin = [time.monotonic()]  # the scenario clock restarts at 0 once the node is up

    def clock() -> float:
        return time.monotonic() - origin[0]

    client = None
    with RosSession() as ros, open(log_path, "w") as log:  # on ROS_DOMAIN_ID set above
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            client = DemoClient(ros, record, clock, lambda cam, i: sources[cam].labels(i))
            startup_s = _wait_for_node(client, proc, sources, args, log_path, record)
            with client.lock:
                shift = time.monotonic() - origin[0]
                origin[0] += shift
                _shift_times(record, -shift)
            t_end = play(client, proc, sources, record, phases, widths, phase_s, args.fps,
                         margin, clock, log_path, cheapest=float(info.get("cheapest", 1.0)))
        finally:
            if client is not None:  # recording stops before the node does
                client.close()
            ros.close()  # nothing left to do when the client closed it
            stop_process(proc)
    meta = {"checkpoint": str(checkpoint), "untrained": info["untrained"],
            "source": "; ".join(f"{c}: {s.description}" if c else s.description
                                for c, s in sources.items()),
            "frame_size": list(frame_size), "fps": args.fps,
            "generated_frames": not args.images, "cameras": cameras,
            "camera_priorities": priorities,
            "node_command": cmd, "startup_s": startup_s, "domain_id": domain_id,
            "device": args.device or params.get("device", "default"),
            "backend": args.backend or params.get("backend", "default"),
            "masks_match_frames": bool(record.masks) and all(
                m["frame_id"] == frame_id_of(m["camera"]) and m["size"] == list(frame_size)
                for m in record.masks),
            "phase_seconds": phase_s, "governor_overrides": {
                k: v for k, v in overrides.items() if k.startswith(gov_prefix)}}
    files = write_report(out, record, first.first, info, widths, meta, t_end)
    files["node_log"] = log_path
    return files


def _open_sources(args: argparse.Namespace, cameras: list[str]) -> dict[str, Source]:
    """
    Open each camera's frames: the generated scene or the user's frames.

    The generated scene gives each camera its own drive, drawn now; with the user's frames each
    camera starts at another point of the folder or video.
    """
    if args.images:
        return {cam: FrameSource(args.images, args.size, start=i / len(cameras))
                for i, cam in enumerate(cameras)}
    total = args.scene_frames * len(cameras)
    print(f"[demo] drawing {total} frames of the street scene", flush=True)
    return {cam: SceneSource(args.scene_frames, args.size, seed=i)
            for i, cam in enumerate(cameras)}


def _shift_times(record: Record, dt: float) -> None:
    """Move everything recorded so far by ``dt`` seconds (start-up happens before t = 0)."""
    for points in record.active.values():
        points[:] = [(t + dt, w) for t, w in points]
    record.requests[:] = [(t + dt, w) for t, w in record.requests]
    for rows in (record.frames, record.masks, record.inputs, record.diagnostics,
                 record.decisions):
        for row in rows:
            row["t"] = round(row["t"] + dt, 3)


def _wait_for_node(client: DemoClient, proc: subprocess.Popen, sources: dict[str, Source],
                   args: argparse.Namespace, log_path: Path, record: Record) -> float:
    """Offer frames until a mask came back for every camera; return the seconds it took."""
    start = time.monotonic()
    client.phase = "start-up"
    while time.monotonic() - start < args.startup_timeout:
        if proc.poll() is not None:
            raise DemoError(f"the node exited with code {proc.returncode} during start-up; "
                            f"last lines of {log_path}:\n{log_tail(log_path)}")
        if client.connected():
            for cam, source in sources.items():
                client.publish_frame(source.first, None, cam)  # no index: not scored
        time.sleep(0.25)
        with client.lock:
            if {m["camera"] for m in record.masks} >= set(sources):
                break
    else:
        raise DemoError(f"no mask from the node for every camera within "
                        f"{args.startup_timeout:.0f} s; last lines of {log_path}:\n"
                        f"{log_tail(log_path)}")
    # Start-up frames are not part of the scenario.
    with client.lock:
        record.masks.clear()
        record.frames.clear()
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        files = run_demo(args)
    except DemoError as exc:
        print(f"slimseg-demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("slimseg-demo: interrupted", file=sys.stderr)
        return 130
    folder = files["report"].parent
    print(f"[demo] report written to {folder}")
    for name in ("report", "timeline", "montage", "latency_md", "decisions_md", "node_log"):
        print(f"         {files[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
