"""
``colcon build`` installs the package as ROS expects.

Launch file, parameter YAML, Fast DDS profile and ament index marker under share/, the node
executable under lib/slimseg_ros.

Needs colcon (``pip install colcon-common-extensions``, or a ROS installation's colcon); skipped
cleanly without it. The sources are copied to a temporary workspace first, so the build never
writes into the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COPY = ["package.xml", "setup.py", "setup.cfg", "resource", "slimseg_ros", "training",
        "launch", "config", "models"]


def colcon_command() -> list[str] | None:
    try:
        import colcon_core  # noqa: F401
        return [sys.executable, "-m", "colcon"]
    except ImportError:
        exe = shutil.which("colcon")
        return [exe] if exe else None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    colcon = colcon_command()
    if colcon is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions)")
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "slimseg_ros"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in COPY:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, src / name)
    listed = subprocess.run(colcon + ["list"], cwd=ws, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    # catkin_pkg must parse package.xml, or colcon silently builds a plain "python" package
    # without the ament hooks that `ros2 launch` needs
    assert "(ros.ament_python)" in listed.stdout, listed.stdout + listed.stderr
    build = subprocess.run(colcon + ["build", "--event-handlers", "console_cohesion-"],
                           cwd=ws, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    return ws


def test_colcon_installs_share_and_lib(workspace: Path) -> None:
    prefix = workspace / "install" / "slimseg_ros"
    share = prefix / "share" / "slimseg_ros"
    for rel in ["package.xml", "launch/segment.launch.py", "config/slimseg.yaml",
                "config/fastdds_large_shm.xml"]:
        assert (share / rel).is_file(), f"{rel} not installed in {share}"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "slimseg_ros"
    assert marker.is_file()
    exe = prefix / "lib" / "slimseg_ros" / "slimseg_node"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (prefix / "share" / "slimseg_ros" / "hook").is_dir()  # ament_python prefix hooks


def test_installed_package_finds_its_files_through_the_ament_index(workspace: Path) -> None:
    prefix = workspace / "install" / "slimseg_ros"
    site = next(prefix.glob("lib/python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix),
               PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    code = ("import slimseg_ros, slimseg_ros.resources as ns; "
            "print(slimseg_ros.__file__); print(ns.default_dds_profile())")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=workspace,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    module_file, profile = out.stdout.split()
    assert Path(module_file).is_relative_to(prefix)
    assert Path(profile) == prefix / "share" / "slimseg_ros" / "config" / "fastdds_large_shm.xml"


def test_installed_executable_starts_the_node(workspace: Path, tmp_path: Path) -> None:
    """
    The lib/slimseg_ros script runs the node with the installed YAML.

    It fails start-up, naming the file, for a checkpoint that does not exist.
    """
    pytest.importorskip("rclpy")
    prefix = workspace / "install" / "slimseg_ros"
    site = next(prefix.glob("lib/python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix),
               PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    missing = tmp_path / "missing.pt"
    cmd = [sys.executable, str(prefix / "lib" / "slimseg_ros" / "slimseg_node"), "--ros-args",
           "--params-file", str(prefix / "share" / "slimseg_ros" / "config" / "slimseg.yaml"),
           "-p", f"checkpoint:={missing}"]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"checkpoint file {missing} does not exist" in out.stdout + out.stderr


def _setup_arguments() -> dict:
    """
    Return the packages and entry points setup.py hands to ``setuptools.setup`` (nothing built).

    Read in a fresh interpreter: after other tests have imported distutils, setuptools cannot
    always be imported in-process.
    """
    read = ("import json, runpy, setuptools; setuptools.setup = lambda **kw: print(json.dumps("
            "{'packages': kw['packages'], 'entry_points': kw['entry_points']})); "
            "runpy.run_path('setup.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", read], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_python_package_of_the_source_tree_is_installed() -> None:
    """No subpackage may be left out of setup.py (a hand-written list once dropped one)."""
    listed = _setup_arguments()["packages"]
    on_disk = {".".join(("slimseg_ros",) + p.parent.relative_to(REPO / "slimseg_ros").parts)
               for p in (REPO / "slimseg_ros").rglob("__init__.py")}
    on_disk |= {".".join(("slimseg_ros", "training")
                         + p.parent.relative_to(REPO / "training").parts)
                for p in (REPO / "training").rglob("__init__.py")}
    assert on_disk <= set(listed), sorted(on_disk - set(listed))
    assert {"slimseg_ros.inference.backends", "slimseg_ros.tools",
            "slimseg_ros.tools.demo"} <= set(listed)


def test_console_scripts_keep_their_names_and_reach_a_main() -> None:
    """
    The commands users type keep their names wherever their modules live.

    Each entry point names a function that exists (a moved module would otherwise break only after
    install).
    """
    import importlib
    import importlib.util

    scripts = dict(line.split(" = ") for line in
                   _setup_arguments()["entry_points"]["console_scripts"])
    assert set(scripts) == {"slimseg_node", "slimseg_lifecycle_node", "slimseg-train",
                            "slimseg-eval", "slimseg-export",
                            "slimseg-bench", "slimseg-demo", "slimseg-calibrate-bn",
                            "slimseg-average", "slimseg-convert-masks"}
    for name, target in scripts.items():
        module, function = target.split(":")
        if module.endswith("node") and importlib.util.find_spec("rclpy") is None:
            continue  # the node needs ROS; its module path is checked by the colcon tests
        assert callable(getattr(importlib.import_module(module), function)), name


def test_pip_install_into_a_virtual_environment_finds_the_shipped_files(tmp_path: Path) -> None:
    """
    ``pip install .`` puts share/ under the environment's prefix, with no ament index to find it.

    The node's default model and parameters and ``load_from: packaged:default.pt`` must still be
    found there (they once were only found through the ament index or a source checkout).
    """
    import sysconfig

    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in COPY:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the test interpreter's packages (setuptools, torch, ...) without its editable checkout
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "-q", "--no-deps", "--no-build-isolation", str(src)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, (install.stdout + install.stderr)[-3000:]
    probe = ("import json, slimseg_ros.resources as ns; "
             "from slimseg_ros.training.initial_weights import resolve_load_from; "
             "print(json.dumps([ns.__file__, str(ns.packaged_file('models', 'default.pt')), "
             "str(ns.packaged_file('config', 'slimseg.yaml')), "
             "str(resolve_load_from('packaged:default.pt')), str(ns.default_bundle())]))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH", "COLCON_PREFIX_PATH")}
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    module, model, params, load_from, bundle = (
        Path(p) for p in json.loads(out.stdout.splitlines()[-1]))
    assert module.is_relative_to(venv), module  # the installed copy, not the checkout
    share = venv / "share" / "slimseg_ros"
    assert model == share / "models" / "default.pt"
    assert params == share / "config" / "slimseg.yaml"
    assert load_from == model
    assert bundle == share / "models" / "default_bundle"  # the model without PyTorch
    shipped = json.loads((REPO / "models" / "default_bundle" / "bundle.json").read_text())
    assert all((bundle / name).is_file() for per_width in shipped["graphs"].values()
               for entry in per_width.values() for name in entry["sha256"])
