"""
The launch file launch/segment.launch.py, checked without and with ROS.

It is parsed with ``ast`` (``launch`` need not be installed) and checked against setup.py's
console scripts and the files a built wheel installs; where launch_ros is importable its launch
description is built and its actions run without a ROS graph, and where the package is also
installed in an ament prefix it is really launched.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "segment.launch.py"
PACKAGE_SOURCES = ["setup.py", "setup.cfg", "package.xml", "resource", "slimseg_ros", "training",
                   "launch", "config", "models"]


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call: ast.Call, key: str, tree: ast.AST | None = None) -> ast.expr | None:
    """
    Return keyword ``key`` of ``call``.

    With ``tree``, it is also found in a ``**name`` where the module has ``name = dict(...)``
    (the launch file's keywords shared by both node actions).
    """
    for k in call.keywords:
        if k.arg == key:
            return k.value
        if k.arg is None and tree is not None and isinstance(k.value, ast.Name):
            for stmt in ast.walk(tree):
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
                        and getattr(stmt.value.func, "id", None) == "dict"
                        and k.value.id in [getattr(t, "id", None) for t in stmt.targets]):
                    found = _kw(stmt.value, key)
                    if found is not None:
                        return found
    return None


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
    """Map name -> "module:function" from setup.py (f-strings with PACKAGE resolved)."""
    text = (REPO / "setup.py").read_text()
    package = re.search(r'^PACKAGE\s*=\s*"([^"]+)"', text, re.M).group(1)
    text = text.replace("{PACKAGE}", package)
    return dict(re.findall(r'f?"([\w-]+)\s*=\s*([\w.]+:\w+)"', text))


@pytest.mark.parametrize(("action", "expected"), [("Node", "slimseg_node"),
                                                  ("LifecycleNode", "slimseg_lifecycle_node")])
def test_launch_file_starts_the_console_script(tree, action, expected) -> None:
    nodes = _calls(tree, action)
    assert len(nodes) == 1
    node = nodes[0]
    assert _const(tree, _kw(node, "package", tree)) == "slimseg_ros"
    assert _const(tree, _kw(node, "name", tree)) == "slimseg_node"
    executable = _const(tree, _kw(node, "executable", tree))
    assert executable == expected
    scripts = console_scripts()
    assert executable in scripts, f"{executable} is not a console script in setup.py"
    module, func = scripts[executable].split(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None and f"def {func}(" in Path(spec.origin).read_text()
    assert (REPO / "package.xml").read_text().count("<name>slimseg_ros</name>") == 1


def test_autostart_configures_then_activates_once(tree) -> None:
    """
    With autostart, configure is emitted, and activate only on configuring -> inactive.

    Activate is not emitted again after every deactivate.
    """
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Name) and n.value.id == "Transition"}
    assert {"TRANSITION_CONFIGURE", "TRANSITION_ACTIVATE"} <= names
    [handler] = _calls(tree, "OnStateTransition")
    assert _const(tree, _kw(handler, "start_state")) == "configuring"
    assert _const(tree, _kw(handler, "goal_state")) == "inactive"
    assert "TRANSITION_ACTIVATE" in ast.unparse(_kw(handler, "entities"))


@pytest.mark.parametrize(("text", "item", "expected"), [
    ("", str, []), ("[]", str, []), ("[front, left]", str, ["front", "left"]),
    ("front,left", str, ["front", "left"]), ("['a', \"b\"]", str, ["a", "b"]),
    ("[2.0, 1]", float, [2.0, 1.0])])
def test_list_arguments_are_read_like_yaml_lists(text, item, expected) -> None:
    from slimseg_ros.ros.params import list_argument
    assert list_argument("cameras", text, item) == expected


def test_a_bad_list_argument_is_named() -> None:
    from slimseg_ros.ros.params import list_argument
    with pytest.raises(ValueError, match="'camera_priorities' is '\\[high, low\\]'"):
        list_argument("camera_priorities", "[high, low]", float)


def test_launch_arguments_and_remapping(tree) -> None:
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"image", "checkpoint", "device", "params_file", "cameras", "camera_priorities",
            "lifecycle", "autostart"} <= declared
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")
            if isinstance(c.args[0], ast.Constant)}
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert used <= declared, f"undeclared launch arguments used: {used - declared}"
    unused = [name for name in declared if literals.count(name) < 2]
    assert not unused, f"declared but never read: {unused}"
    for action in ("Node", "LifecycleNode"):
        node = _calls(tree, action)[0]
        remaps = ast.unparse(_kw(node, "remappings", tree)).replace("'", '"')
        assert '("image", image)' in remaps and "image/compressed" in remaps
        assert _kw(node, "parameters", tree) is not None


@pytest.fixture(scope="module")
def installed_data_files(tmp_path_factory) -> set[str]:
    """
    Paths under the install prefix (``share/...``) of the wheel pip builds from the sources.

    The sources are copied first, so the build never writes into the checkout.
    """
    pytest.importorskip("pip")
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGE_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, root / "src" / name, ignore=ignore)
        else:
            shutil.copy2(path, root / "src" / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist"),
                            str(root / "src")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    with zipfile.ZipFile(next((root / "dist").glob("*.whl"))) as wheel:
        names = wheel.namelist()
    return {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}


def test_launch_defaults_point_at_installed_files(tree, installed_data_files) -> None:
    """Every path the launch file builds under the package's share directory is installed."""
    share_calls = _calls(tree, "FindPackageShare")
    assert share_calls and all(_const(tree, c.args[0]) == "slimseg_ros" for c in share_calls)
    defaults = []
    for join in _calls(tree, "PathJoinSubstitution"):
        head, *rest = join.args[0].elts
        assert isinstance(head, ast.Name) and head.id == "share", ast.unparse(join)
        defaults.append("/".join(ast.literal_eval(part) for part in rest))
    assert {"config/slimseg.yaml", "config/fastdds_large_shm.xml"} <= set(defaults)
    for rel in defaults + ["launch/segment.launch.py", "package.xml"]:
        assert f"share/slimseg_ros/{rel}" in installed_data_files, \
            f"{rel} is not installed (installed: {sorted(installed_data_files)})"
    assert "share/ament_index/resource_index/packages/slimseg_ros" in installed_data_files


def test_launch_file_imports_what_the_package_provides(tree) -> None:
    """Its imports from slimseg_ros exist, so a rename fails here rather than at launch time."""
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               and (n.module or "").startswith("slimseg_ros")]
    assert imports, "the launch file takes its DDS profile logic from slimseg_ros"
    for node in imports:
        module = importlib.import_module(node.module)
        missing = [a.name for a in node.names if not hasattr(module, a.name)]
        assert not missing, f"{node.module} has no {missing}"


def _launch_module():
    pytest.importorskip("launch_ros")
    pytest.importorskip("launch.actions")
    spec = importlib.util.spec_from_file_location("segment_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("profile", ["/opt/profiles/large_shm.xml", ""])
def test_launch_description_sets_the_dds_profile_before_the_node(
        profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Run generate_launch_description() without a ROS graph: the DDS profile is set first.

    Its functions read only declared arguments, and the Fast DDS profile variables are set
    before the node is created.
    """
    module = _launch_module()
    import launch
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.utilities import perform_substitutions
    from launch_ros.actions import Node

    from slimseg_ros.ros.dds import FASTDDS_ENV, FASTRTPS_ENV, PROFILE_OVERRIDE_ENV, \
        dds_profile_env

    for name in (FASTDDS_ENV, FASTRTPS_ENV, "RMW_IMPLEMENTATION"):
        monkeypatch.delenv(name, raising=False)
    entities = module.generate_launch_description().entities
    context = launch.LaunchContext()
    values = {"image": "/front/image_raw", "params_file": "/opt/slimseg.yaml",
              "dds_profile": profile}
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations[entity.name] = values.get(entity.name, "")
    actions = []
    for entity in entities:
        if isinstance(entity, OpaqueFunction):
            actions += entity.execute(context) or []
    nodes = [i for i, a in enumerate(actions) if isinstance(a, Node)]
    env = {i: a for i, a in enumerate(actions) if isinstance(a, SetEnvironmentVariable)}
    assert len(nodes) == 1 and all(i < nodes[0] for i in env)
    set_vars = {perform_substitutions(context, a.name): perform_substitutions(context, a.value)
                for a in env.values()}
    assert set_vars == {PROFILE_OVERRIDE_ENV: profile, **dds_profile_env(os.environ, profile)}
    assert (FASTDDS_ENV in set_vars) == bool(profile)


@pytest.mark.parametrize(("lifecycle", "autostart", "kinds"), [
    ("false", "true", ["Node"]),
    ("true", "false", ["LifecycleNode"]),
    ("true", "true", ["RegisterEventHandler", "LifecycleNode", "EmitEvent"])])
def test_launch_description_starts_the_chosen_node(lifecycle, autostart, kinds) -> None:
    """
    The launch description starts the chosen node: lifecycle:=true starts the managed one.

    Autostart adds the configure event and the handler that activates it; cameras and
    priorities pass through as lists.
    """
    module = _launch_module()
    import launch
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    entities = module.generate_launch_description().entities
    context = launch.LaunchContext()
    values = {"image": "/front/image_raw", "params_file": "/opt/slimseg.yaml",
              "lifecycle": lifecycle, "autostart": autostart, "cameras": "[front, left]",
              "camera_priorities": "[2.0, 1.0]"}
    for entity in entities:
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations[entity.name] = values.get(entity.name, "")
    node_function = [e for e in entities if isinstance(e, OpaqueFunction)][-1]
    actions = node_function.execute(context) or []
    assert [type(a).__name__ for a in actions] == kinds


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
