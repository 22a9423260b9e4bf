"""The core (models, engine, governor, conversions, training) imports without any ROS package.

A fresh interpreter gets a meta-path finder that refuses rclpy, the message packages, cv_bridge
and launch, then imports every core module; any ROS import in the core fails this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ["rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs",
           "builtin_interfaces", "cv_bridge", "launch", "launch_ros", "ament_index_python",
           "rosidl_runtime_py", "message_filters", "image_transport"]
CORE = ["slimseg_ros.models", "slimseg_ros.engine", "slimseg_ros.governor",
        "slimseg_ros.conversions", "slimseg_ros.params", "slimseg_ros.node_support",
        "slimseg_ros.contract", "slimseg_ros.latency", "slimseg_ros.widths",
        "slimseg_ros.training"]

SCRIPT = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys
    blocked = set(json.loads(sys.argv[1]))
    core = json.loads(sys.argv[2])

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"blocked ROS import: {name}")
            return None

    sys.meta_path.insert(0, Block())
    imported = []
    for name in core:
        module = importlib.import_module(name)
        imported.append(name)
        if name == "slimseg_ros.training":  # every training module, not just the package
            for info in pkgutil.walk_packages(module.__path__, name + "."):
                importlib.import_module(info.name)
                imported.append(info.name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    print(json.dumps({"imported": imported, "leaked": leaked}))
""")


def test_core_modules_import_without_ros() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED), json.dumps(CORE)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["leaked"] == []
    assert set(CORE) <= set(report["imported"])


def test_the_block_really_blocks() -> None:
    """The same finder makes the ROS node module fail, so the test above can fail too."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED),
                             json.dumps(["slimseg_ros.node"])],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "blocked ROS import: rclpy" in result.stderr
