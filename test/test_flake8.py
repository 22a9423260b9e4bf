"""flake8 over the whole package, as the ROS 2 ament_python template runs it in ``colcon test``."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch: pytest.MonkeyPatch, generated_folders: list[str]) -> None:
    monkeypatch.chdir(REPO_ROOT)
    rc, errors = main_with_errors(argv=["--exclude", *generated_folders])
    assert rc == 0, \
        "Found %d code style errors / warnings:\n" % len(errors) + \
        "\n".join(errors)
