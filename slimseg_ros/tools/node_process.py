"""
The node as a separate process, as the tools start it.

Its command line, its environment and a stand-in checkpoint for machines without a trained
model.

Written once for the demo and the DDS delivery bench, so both start ``slimseg_node`` the way a
user does (the console script with ``config/slimseg.yaml``) and agree on the DDS profile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..resources import default_dds_profile, packaged_file
from ..ros.dds import FASTDDS_ENV, FASTRTPS_ENV, PROFILE_OVERRIDE_ENV, dds_profile_env

NODE_EXECUTABLE = "slimseg_node"
PARAMS_FILE_NAME = "slimseg.yaml"
PROFILE_VARS = (FASTDDS_ENV, FASTRTPS_ENV, PROFILE_OVERRIDE_ENV)

CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist")
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192))


def default_params_file() -> Path | None:
    """Find the shipped node parameter file ``config/slimseg.yaml`` (installed or source tree)."""
    return packaged_file("config", PARAMS_FILE_NAME)


def node_command(params_file: Path | None, overrides: Mapping[str, Any]) -> list[str]:
    """
    ``slimseg_node --ros-args [--params-file FILE] -p name:=value ...``.

    The console script beside this interpreter or on PATH, else ``python -m slimseg_ros.ros.node``.
    Values that are not strings are written as JSON (``false``, ``0.2``, ``[1, 2]``), which is
    how ROS parses ``-p`` values.
    """
    exe = shutil.which(NODE_EXECUTABLE, path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    cmd = [exe] if exe else [sys.executable, "-m", "slimseg_ros.ros.node"]
    cmd.append("--ros-args")
    if params_file is not None:
        cmd += ["--params-file", str(params_file)]
    for name, value in overrides.items():
        cmd += ["-p", f"{name}:={value if isinstance(value, str) else json.dumps(value)}"]
    return cmd


def node_environment(domain_id: int, dds_profile: bool | None = None, *,
                     localhost_only: bool = False,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    Build the whole environment for a node (or camera) process on ``domain_id``.

    ``dds_profile``: None keeps the user's own Fast DDS profile if any, else sets the shipped
    large shared-memory one (what the node does for itself at start-up); True forces the shipped
    profile and False Fast DDS defaults, whatever the user's environment says (the delivery
    bench compares the two). ``localhost_only`` keeps discovery on this machine.
    """
    base = dict(os.environ if environ is None else environ)
    if dds_profile is not None:
        base = {k: v for k, v in base.items() if k not in PROFILE_VARS}
    env = {**base, "ROS_DOMAIN_ID": str(domain_id), "PYTHONUNBUFFERED": "1"}
    if localhost_only:
        env.update(ROS_LOCALHOST_ONLY="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    if dds_profile is False:
        env[PROFILE_OVERRIDE_ENV] = ""  # the node's own start-up leaves Fast DDS at its defaults
        return env
    profile = default_dds_profile()
    if dds_profile and profile is None:
        raise FileNotFoundError("the shipped Fast DDS profile (config/fastdds_large_shm.xml) "
                                "is missing")
    env.update(dds_profile_env(env, profile))
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGINT (clean rclpy shutdown), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def log_tail(path: Path, lines: int = 25) -> str:
    """Return the last ``lines`` lines of a process log ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stand_in_checkpoint(path: Path, tiny: bool = False) -> Path:
    """
    Write an untrained slimmable checkpoint with CamVid's classes to ``path``.

    It is for showing or measuring the plumbing where no trained model exists: its masks mean
    nothing.

    By default the default model's network (EfficientNet-Lite0 DeepLabV3+, an ImageNet backbone
    where the weights package is installed, a random head), run at each frame's own size, so
    latencies are those of the real network. ``tiny``: a small MobileNetV2 FCN run at 128x160,
    for measuring delivery, which does not depend on the network.
    """
    import torch

    from ..models.checkpoint import ModelInfo, save_checkpoint
    from ..models.config import ModelConfig
    from ..models.segmenter import build_model

    torch.manual_seed(0)
    classes = len(CAMVID_CLASSES)
    if tiny:
        model = build_model(ModelConfig(backbone="mobilenetv2", head="fcn", num_classes=classes,
                                        head_channels=32))
        input_size: list[int] | None = [128, 160]
    else:
        kwargs = dict(backbone="efficientnet_lite0", head="deeplabv3plus", num_classes=classes,
                      widths=(0.25, 0.5, 0.75, 1.0), output_stride=16, head_channels=128,
                      low_level_channels=32, separable_head=True)
        try:  # ImageNet features (when the weights package is installed) give masks structure
            model = build_model(ModelConfig(**kwargs, pretrained="package"))
        except Exception:  # noqa: BLE001 - any failure: fall back to a fully random network
            model = build_model(ModelConfig(**kwargs, pretrained=None))
        input_size = None  # the node runs it at each frame's own size
    info = ModelInfo(class_names=list(CAMVID_CLASSES), palette=[list(c) for c in CAMVID_PALETTE],
                     input_size=input_size)
    save_checkpoint(path, model.eval(), info, extra={"untrained": True})
    return path
