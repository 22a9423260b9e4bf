"""flake8 over the whole package, as the ROS 2 ament_python template runs it in ``colcon test``."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# In a fresh interpreter: flake8 forks a pool of workers, and a fork of this test process (which
# may hold rclpy and torch threads from earlier tests in the same worker) can crash or hang them.
RUN_AMENT_FLAKE8 = ("import sys\n"
                    "from ament_flake8.main import main_with_errors\n"
                    "rc, errors = main_with_errors(argv=sys.argv[1:])\n"
                    "print('\\n'.join(errors))\n"
                    "sys.exit(rc)\n")


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(generated_folders: list[str]) -> None:
    pytest.importorskip("ament_flake8")
    done = subprocess.run([sys.executable, "-c", RUN_AMENT_FLAKE8, "--exclude",
                           *generated_folders], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"flake8 found code style errors:\n{done.stdout[-6000:]}" \
                                 f"{done.stderr[-2000:]}"
