"""Shared test settings: small CPU thread pool, deterministic seeds, the real CamVid if present."""

from __future__ import annotations

import os
from pathlib import Path

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
