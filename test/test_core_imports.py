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
CORE = ["slimseg_ros.models", "slimseg_ros.engine", "slimseg_ros.governor",
        "slimseg_ros.conversions", "slimseg_ros.params", "slimseg_ros.node_support",
        "slimseg_ros.contract", "slimseg_ros.latency", "slimseg_ros.widths", "slimseg_ros.export",
        "slimseg_ros.host_readings",
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
    tools = sorted(m for m in sys.modules if m.startswith("slimseg_ros.tools"))
    print(json.dumps({"imported": imported, "leaked": leaked, "tools": tools}))
""")


def test_core_modules_import_without_ros() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED), json.dumps(CORE)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["leaked"] == []
    assert report["tools"] == []
    assert set(CORE) <= set(report["imported"])


def test_the_block_really_blocks() -> None:
    """The same finder makes the ROS node module fail, so the test above can fail too."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(BLOCKED),
                             json.dumps(["slimseg_ros.node"])],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "blocked ROS import: rclpy" in result.stderr


TOOLS = "slimseg_ros.tools"


def _module_name(path: Path) -> str:
    """
    Map a source file to its installed module name.

    ``slimseg_ros/engine.py`` -> ``slimseg_ros.engine``; ``training/x.py`` ->
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


def runtime_files() -> list[Path]:
    """Every source file installed to run on the robot: slimseg_ros/ outside tools/, training/."""
    files = [p for p in (REPO / "slimseg_ros").rglob("*.py")
             if (REPO / "slimseg_ros" / "tools") not in p.parents]
    return sorted(files + list((REPO / "training").rglob("*.py")))


def test_runtime_imports_nothing_from_the_tools() -> None:
    files = runtime_files()
    names = {_module_name(p) for p in files}
    for room in ("slimseg_ros.node", "slimseg_ros.engine", "slimseg_ros.governor",
                 "slimseg_ros.params", "slimseg_ros.conversions", "slimseg_ros.export",
                 "slimseg_ros.backends.__init__", "slimseg_ros.models.__init__"):
        assert room in names, room  # the check below covers the rooms that run on the robot
    offending = {_module_name(p): sorted(m for m in imported_modules(p)
                                         if m == TOOLS or m.startswith(TOOLS + "."))
                 for p in files}
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_import_reader_sees_tools_imports() -> None:
    """The reader above resolves the relative imports the tools use, so it can fail."""
    dds_bench = imported_modules(REPO / "slimseg_ros" / "tools" / "dds_bench.py")
    assert {"slimseg_ros.tools.node_process", "slimseg_ros.contract"} <= dds_bench
    demo_cli = imported_modules(REPO / "slimseg_ros" / "tools" / "demo" / "cli.py")
    assert {"slimseg_ros.tools.demo", "slimseg_ros.tools.demo.DemoError",  # from . import
            "slimseg_ros.tools.demo.scenario", "slimseg_ros.node_support"} <= demo_cli
    bench = imported_modules(REPO / "slimseg_ros" / "tools" / "bench.py")
    assert "slimseg_ros.tools.backend_bench" in bench  # a function-level import
