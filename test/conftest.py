"""Shared test settings: small CPU thread pool, deterministic seeds, the real CamVid if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
CAMVID_ROOT = Path(os.environ.get("SLIMSEG_CAMVID", REPO_ROOT.parent / "shared" / "data" / "CamVid"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "ros: needs rclpy and a DDS middleware")
    config.addinivalue_line("markers", "linter: style checks")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def camvid_root() -> Path:
    """The real CamVid (SegNet layout); tests using it skip where it is absent."""
    if not (CAMVID_ROOT / "train").is_dir():
        pytest.skip(f"real CamVid not found at {CAMVID_ROOT} (set SLIMSEG_CAMVID)")
    return CAMVID_ROOT
