"""launch/segment.launch.py: parsed with ``ast`` (``launch`` need not be installed) and checked
against setup.py's console scripts, the installed data files and config/; where launch_ros and
an installed package are available, it is really launched."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "segment.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def _const(tree: ast.Module, node: ast.expr | None) -> object:
    """Literal value of ``node``, following one module-level ``NAME = "literal"``."""
    if isinstance(node, ast.Name):
        for stmt in tree.body:
            names = [getattr(t, "id", None) for t in getattr(stmt, "targets", [])]
            if isinstance(stmt, ast.Assign) and node.id in names:
                return ast.literal_eval(stmt.value)
    return ast.literal_eval(node) if node is not None else None


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def console_scripts() -> dict[str, str]:
    """name -> "module:function" from setup.py (f-strings with the PACKAGE constant resolved)."""
    text = (REPO / "setup.py").read_text()
    package = re.search(r'^PACKAGE\s*=\s*"([^"]+)"', text, re.M).group(1)
    text = text.replace("{PACKAGE}", package)
    return dict(re.findall(r'f?"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


def test_launch_file_starts_the_console_script(tree) -> None:
    nodes = _calls(tree, "Node")
    assert len(nodes) == 1
    node = nodes[0]
    assert _const(tree, _kw(node, "package")) == "slimseg_ros"
    executable = _const(tree, _kw(node, "executable"))
    scripts = console_scripts()
    assert executable in scripts, f"{executable} is not a console script in setup.py"
    module, func = scripts[executable].split(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and f"def {func}(" in Path(spec.origin).read_text()
    assert (REPO / "package.xml").read_text().count("<name>slimseg_ros</name>") == 1


def test_launch_arguments_and_remapping(tree) -> None:
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"image", "checkpoint", "device", "params_file"} <= declared
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")
            if isinstance(c.args[0], ast.Constant)}
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert used <= declared, f"undeclared launch arguments used: {used - declared}"
    unused = [name for name in declared if literals.count(name) < 2]
    assert not unused, f"declared but never read: {unused}"
    node = _calls(tree, "Node")[0]
    remaps = ast.unparse(_kw(node, "remappings")).replace("'", '"')
    assert '("image", image)' in remaps and "image/compressed" in remaps
    assert _kw(node, "parameters") is not None


def test_launch_defaults_point_at_installed_files(tree) -> None:
    joins = [ast.unparse(c).replace("'", '"') for c in _calls(tree, "PathJoinSubstitution")]
    assert any('"config", "slimseg.yaml"' in j for j in joins)
    assert any('"config", "fastdds_large_shm.xml"' in j for j in joins)
    assert (REPO / "config" / "slimseg.yaml").is_file()
    assert (REPO / "config" / "fastdds_large_shm.xml").is_file()
    setup = (REPO / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup
    assert 'glob("config/*.xml")' in setup


def test_launch_sets_the_dds_profile_environment(tree) -> None:
    env_calls = _calls(tree, "SetEnvironmentVariable")
    assert env_calls, "the launch file must pass the Fast DDS profile to the node's process"
    assert "dds_profile_env" in ast.unparse(tree)


@pytest.mark.ros
@pytest.mark.slow
def test_real_launch(tmp_path) -> None:
    """Runs the launch file where launch_ros is installed and the package is in the ament index."""
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        share = Path(get_package_share_directory("slimseg_ros"))
    except (PackageNotFoundError, LookupError, OSError):
        pytest.skip("slimseg_ros is not installed in an ament prefix (colcon build + source)")
    import launch
    import rclpy
    from node_harness import Probe, Spinner, make_tiny_checkpoint, pick_domain_id, wait_for

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny.pt")
    domain = pick_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    spec = importlib.util.spec_from_file_location("segment_launch", share / "launch" /
                                                  "segment.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    service = launch.LaunchService()
    service.include_launch_description(launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            launch.launch_description_sources.LaunchDescriptionSource(
                str(share / "launch" / "segment.launch.py")),
            launch_arguments={"checkpoint": str(checkpoint), "device": "cpu"}.items())]))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    probe = Probe(context, name="launch_probe")
    spinner = Spinner(context, probe.node)
    try:
        wait_for(lambda: probe.count(probe.widths) > 0, timeout=90)
        assert probe.widths[-1] == 1.0
    finally:
        try:
            spinner.stop()
        finally:
            probe.destroy()
            rclpy.try_shutdown(context=context)
            service.shutdown()
            thread.join(timeout=30)
            time.sleep(0.1)
