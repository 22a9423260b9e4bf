"""
Shared test settings and fixtures.

A small CPU thread pool, deterministic seeds, the real CamVid if present, and for the node tests
over real rclpy/DDS (test_node, test_node_cameras, test_lifecycle_node) a ROS context on a
domain of the module's own, a tiny checkpoint and a spinner that tears nodes down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
CAMVID_ROOT = Path(os.environ.get("SLIMSEG_CAMVID",
                                  REPO_ROOT.parent / "shared" / "data" / "CamVid"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "ros: needs rclpy and a DDS middleware")
    config.addinivalue_line("markers", "linter: style checks")
    config.addinivalue_line("markers", "flake8: code style (ament_flake8)")
    config.addinivalue_line("markers", "pep257: docstring style (ament_pep257)")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def generated_folders() -> list[str]:
    """
    Colcon outputs and virtual environments at the top of the checkout, for the linters to skip.

    ament_flake8 and ament_pep257 already skip folders starting with ``.`` or ``_`` (``.venv``);
    a virtual environment under another name is recognised by its ``pyvenv.cfg``.
    """
    folders = [REPO_ROOT / name for name in ("build", "install", "log")]
    folders += [cfg.parent for cfg in REPO_ROOT.glob("*/pyvenv.cfg")]
    return [str(folder) for folder in folders]


@pytest.fixture
def camvid_root() -> Path:
    """Return the real CamVid (SegNet layout); tests using it skip where it is absent."""
    if not (CAMVID_ROOT / "train").is_dir():
        pytest.skip(f"real CamVid not found at {CAMVID_ROOT} (set SLIMSEG_CAMVID)")
    return CAMVID_ROOT


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    """Return an rclpy context on a domain of this test module's own (``get_domain_id()``)."""
    rclpy = pytest.importorskip("rclpy")
    from node_harness import pick_domain_id

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=pick_domain_id())
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a tiny random-weight checkpoint; its 32x48 network input keeps frames cheap."""
    from node_harness import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", input_size=(32, 48))


@pytest.fixture
def spin(context: Any) -> Iterator[Callable[[Any, Any], Any]]:
    """
    Spin a node and its probe until the test ends, called as ``(node, probe) -> Spinner``.

    At the end the executor stops (a test fails if it had died), then the nodes are destroyed.
    """
    from node_harness import Spinner

    made = []

    def _spin(node: Any, probe: Any) -> Any:
        spinner = Spinner(context, node, probe.node)
        made.append((node, probe, spinner))
        return spinner
    yield _spin
    errors = []
    for node, probe, spinner in made:
        try:
            spinner.stop()
        except AssertionError as exc:
            errors.append(exc)
        node.destroy_node()
        probe.destroy()
    if errors:
        raise errors[0]
