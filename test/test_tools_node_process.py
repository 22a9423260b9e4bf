"""
How the tools start the node process (slimseg_ros.tools.node_process), without a ROS graph.

Its command line, its environment and the stand-in checkpoint; the demo and DDS tests start
the real node with them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slimseg_ros.models.checkpoint import load_checkpoint, safe_torch_load
from slimseg_ros.ros.dds import FASTDDS_ENV, FASTRTPS_ENV, PROFILE_OVERRIDE_ENV
from slimseg_ros.tools.node_process import (CAMVID_CLASSES, default_params_file, log_tail,
                                            node_command, node_environment,
                                            stand_in_checkpoint, stop_process)

REPO = Path(__file__).resolve().parents[1]


def test_node_command_passes_the_parameter_file_and_values_as_ros_parses_them() -> None:
    params = default_params_file()
    assert params is not None
    assert params.read_text() == (REPO / "config" / "slimseg.yaml").read_text()
    cmd = node_command(params, {"checkpoint": "/models/a b.pt", "publish_color": False,
                                "diagnostics_period_s": 0.25, "input_size": [128, 160]})
    start = cmd.index("--ros-args")
    assert Path(cmd[0]).name == "slimseg_node" or cmd[:start][-2:] == ["-m",
                                                                       "slimseg_ros.ros.node"]
    assert cmd[start + 1:start + 3] == ["--params-file", str(params)]
    values = dict(arg.split(":=", 1) for arg in cmd[start + 3:][1::2])
    assert cmd[start + 3:][::2] == ["-p"] * 4
    assert values["checkpoint"] == "/models/a b.pt"  # one argument: no shell quoting needed
    assert {k: yaml.safe_load(v) for k, v in values.items() if k != "checkpoint"} == {
        "publish_color": False, "diagnostics_period_s": 0.25, "input_size": [128, 160]}
    assert "--params-file" not in node_command(None, {})


def test_environment_keeps_the_users_profile_unless_told_otherwise() -> None:
    mine = {FASTDDS_ENV: "/mine.xml", "KEEP": "1", "ROS_DOMAIN_ID": "3"}
    env = node_environment(42, environ=mine)
    assert env[FASTDDS_ENV] == "/mine.xml" and env["KEEP"] == "1"
    assert env["ROS_DOMAIN_ID"] == "42" and "ROS_LOCALHOST_ONLY" not in env

    shipped = node_environment(42, True, environ=mine)
    assert Path(shipped[FASTDDS_ENV]).name == "fastdds_large_shm.xml" and shipped["KEEP"] == "1"
    jazzy = node_environment(42, True, environ={**mine, "ROS_DISTRO": "jazzy"})
    assert jazzy[FASTRTPS_ENV] == jazzy[FASTDDS_ENV] == shipped[FASTDDS_ENV]  # Fast DDS 2 too

    defaults = node_environment(42, False, environ={**mine, FASTRTPS_ENV: "/old.xml"})
    assert FASTDDS_ENV not in defaults and FASTRTPS_ENV not in defaults
    assert defaults[PROFILE_OVERRIDE_ENV] == ""  # the node itself then sets no profile either

    local = node_environment(7, environ={}, localhost_only=True)
    assert local[FASTDDS_ENV] == shipped[FASTDDS_ENV]  # nothing chosen: the shipped profile
    assert local["ROS_LOCALHOST_ONLY"] == "1"
    assert local["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def test_tiny_stand_in_is_an_untrained_camvid_checkpoint(tmp_path) -> None:
    path = stand_in_checkpoint(tmp_path / "stand_in.pt", tiny=True)
    model, info = load_checkpoint(path)
    assert info.class_names == list(CAMVID_CLASSES) and len(info.palette) == len(CAMVID_CLASSES)
    assert list(info.input_size) == [128, 160]
    assert model.config.backbone == "mobilenetv2"
    assert safe_torch_load(path)["extra"] == {"untrained": True}


def test_stop_process_falls_back_to_sigterm() -> None:
    # each child sets its own SIGINT disposition and says so: an ignored SIGINT is inherited
    # across exec, so the polite one must not depend on what the test process holds
    polite = subprocess.Popen([sys.executable, "-c",
                               "import signal, time; signal.signal(signal.SIGINT, "
                               "signal.default_int_handler); print('ready', flush=True); "
                               "time.sleep(60)"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deaf = subprocess.Popen([sys.executable, "-c",
                             "import signal, sys, time; signal.signal(signal.SIGINT, "
                             "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert polite.stdout.readline().strip() == "ready"
    assert deaf.stdout.readline().strip() == "ready"
    start = time.monotonic()
    stop_process(polite, timeout=20.0)
    stop_process(deaf, timeout=0.5)
    assert polite.poll() is not None and deaf.poll() is not None
    assert time.monotonic() - start < 15.0


def test_log_tail(tmp_path) -> None:
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert log_tail(log, 3) == "line 37\nline 38\nline 39"
    assert log_tail(tmp_path / "missing.log") == ""


@pytest.mark.slow
def test_default_stand_in_is_the_default_models_network(tmp_path) -> None:
    model, info = load_checkpoint(stand_in_checkpoint(tmp_path / "stand_in.pt"))
    assert (model.config.backbone, model.config.head) == ("efficientnet_lite0", "deeplabv3plus")
    assert info.input_size is None and info.class_names == list(CAMVID_CLASSES)
