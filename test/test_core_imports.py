"""
The core imports without any ROS package, and nothing that runs on the robot imports the tools.

The core is the models, engine, governor, conversions and training.

A fresh interpreter gets a meta-path finder that refuses rclpy, the message packages, cv_bridge
and launch, then imports every core module; any ROS import in the core fails this test. Every
import statement of the runtime's source files (node included, function-level imports too) is
read to check that none reaches ``slimseg_ros.tools``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ["rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs",
           "builtin_interfaces", "cv_bridge", "launch", "launch_ros", "ament_index_python",
           "rosidl_runtime_py", "message_filters", "image_transport"]
CORE = ["slimseg_ros.widths", "slimseg_ros.resources", "slimseg_ros.models",
        "slimseg_ros.inference", "slimseg_ros.governor", "slimseg_ros.training",
        # the ROS room's plain-Python parts, usable without a ROS installation
        "slimseg_ros.ros", "slimseg_ros.ros.conversions", "slimseg_ros.ros.params",
        "slimseg_ros.ros.contract", "slimseg_ros.ros.frame_slots", "slimseg_ros.ros.rejections",
        "slimseg_ros.ros.dds", "slimseg_ros.ros.signals"]
WALKED = ("slimseg_ros.training", "slimseg_ros.inference", "slimseg_ros.governor",
          "slimseg_ros.models")

SCRIPT = textwrap.dedent("""
    import importlib, importlib.abc, json, pkgutil, sys
    blocked = set(json.loads(sys.argv[1]))
    core = json.loads(sys.argv[2])
    walked = set(json.loads(sys.argv[3])) if len(sys.argv) > 3 else set()

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
        if name in walked:  # every module of the room, not just the package
            for info in pkgutil.walk_packages(module.__path__, name + "."):
                importlib.import_module(info.name)
                imported.append(info.name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    tools = sorted(m for m in sys.modules if m.startswith("slimseg_ros.tools"))
    print(json.dumps({"imported": imported, "leaked": leaked, "tools": tools}))
""")


def test_core_modules_import_without_ros() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED), json.dumps(CORE),
                             json.dumps(WALKED)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["leaked"] == []
    assert report["tools"] == []
    assert set(CORE) <= set(report["imported"])


def test_the_block_really_blocks() -> None:
    """The same finder makes the ROS node module fail, so the test above can fail too."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED),
                             json.dumps(["slimseg_ros.ros.node"])],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "blocked ROS import: rclpy" in result.stderr


TOOLS = "slimseg_ros.tools"


def _module_name(path: Path) -> str:
    """
    Map a source file to its installed module name.

    ``slimseg_ros/ros/node.py`` -> ``slimseg_ros.ros.node``; ``training/x.py`` ->
    ``slimseg_ros.training.x`` (packages keep their own name).
    """
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "training":
        parts.insert(0, "slimseg_ros")
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """
    Return the absolute name of every module an import statement in ``path`` names.

    Relative imports are resolved; ``from . import x`` counts as the package and ``package.x``.
    """
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


ROOT = "slimseg_ros"
#: room -> the rooms it may import besides itself (``widths`` and ``resources`` are open to all)
ALLOWED = {
    "widths": set(),
    "resources": set(),
    "models": set(),
    "inference": {"models"},
    "governor": set(),
    "ros": {"governor", "inference", "models"},
    "training": {"models", "inference"},
    "tools": {"ros", "governor", "inference", "models", "training", "tools"},
}
OPEN_TO_ALL = {"widths", "resources"}
#: top-level packages of ROS 2 that only the ROS room (and the tools beside the robot) import
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs",
                "builtin_interfaces", "lifecycle_msgs", "cv_bridge", "launch", "launch_ros",
                "vision_msgs"}


def room_of(module: str) -> str | None:
    """``slimseg_ros.ros.core`` -> ``ros``; ``slimseg_ros.widths`` -> ``widths``; else None."""
    parts = module.split(".")
    if parts[0] != ROOT or len(parts) < 2:
        return None
    return parts[1].removesuffix(".__init__")


def room_files() -> dict[str, list[Path]]:
    """Every source file of the package by room (training/ is the room ``training``)."""
    rooms: dict[str, list[Path]] = {}
    files = list((REPO / ROOT).rglob("*.py")) + list((REPO / "training").rglob("*.py"))
    for path in sorted(files):
        room = room_of(_module_name(path))
        if room is not None and room != "__init__":
            rooms.setdefault(room, []).append(path)
    return rooms


def room_violations() -> dict[str, list[str]]:
    """Return ``module -> [imports it must not make]`` under :data:`ALLOWED` and the ROS rule."""
    bad: dict[str, list[str]] = {}
    for room, paths in room_files().items():
        for path in paths:
            wrong = []
            for target in imported_modules(path):
                other = room_of(target)
                top = target.split(".")[0]
                if other is not None and other != room and other not in OPEN_TO_ALL \
                        and other not in ALLOWED[room]:
                    wrong.append(target)
                elif top in ROS_PACKAGES and room not in ("ros", "tools"):
                    wrong.append(target)
            if wrong:
                bad[_module_name(path)] = sorted(set(wrong))
    return bad


def test_every_room_is_known() -> None:
    assert set(room_files()) == set(ALLOWED)


def test_rooms_import_only_what_they_may() -> None:
    """
    Check the house rules.

    ros may import governor, inference and models; inference may import models; training
    models and inference; every room widths and resources; only tools import tools or
    training; nothing outside ros (and the tools) imports a ROS package.
    """
    assert room_violations() == {}


def test_the_room_check_can_fail(tmp_path, monkeypatch) -> None:
    """A governor module that imports the engine, or rclpy, is reported."""
    fake = REPO / ROOT / "governor" / "_probe_bad_import.py"
    fake.write_text("import rclpy\nfrom ..inference.engine import SegmentationEngine\n")
    try:
        bad = room_violations()
    finally:
        fake.unlink()
    engine = "slimseg_ros.inference.engine"
    assert bad == {"slimseg_ros.governor._probe_bad_import": [
        "rclpy", engine, engine + ".SegmentationEngine"]}


def test_the_import_reader_sees_tools_imports() -> None:
    """The reader above resolves the relative imports the tools use, so it can fail."""
    dds_bench = imported_modules(REPO / "slimseg_ros" / "tools" / "dds_bench.py")
    assert {"slimseg_ros.tools.node_process", "slimseg_ros.ros.contract"} <= dds_bench
    demo_cli = imported_modules(REPO / "slimseg_ros" / "tools" / "demo" / "cli.py")
    assert {"slimseg_ros.tools.demo", "slimseg_ros.tools.demo.DemoError",  # from . import
            "slimseg_ros.tools.demo.scenario", "slimseg_ros.resources"} <= demo_cli
    bench = imported_modules(REPO / "slimseg_ros" / "tools" / "bench.py")
    assert "slimseg_ros.tools.backend_bench" in bench  # a function-level import


#: the node's own clock and meter are passed in; only these modules may read the time
CLOCK_READERS = {"slimseg_ros.ros.timing", "slimseg_ros.ros.node",
                 "slimseg_ros.ros.lifecycle_node"}


def clock_reads(path: Path) -> list[str]:
    """Return the ``time.<clock>`` names that ``path`` reads (calls or passes on)."""
    clocks = {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "process_time",
              "process_time_ns", "thread_time", "time", "time_ns"}
    return sorted({node.attr for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Attribute) and node.attr in clocks
                   and isinstance(node.value, ast.Name) and node.value.id == "time"})


def test_no_clock_is_read_in_the_ros_room_but_by_the_nodes_that_pass_it_in() -> None:
    """The core, its inputs and diagnostics take time from the clock they were given."""
    readers = {_module_name(p): clock_reads(p) for p in (REPO / ROOT / "ros").glob("*.py")}
    assert clock_reads(REPO / ROOT / "ros" / "timing.py") == [
        "perf_counter", "process_time"]  # the reader can see a read
    assert {m: r for m, r in readers.items() if r and m not in CLOCK_READERS} == {}
