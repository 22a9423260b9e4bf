"""Docstring style (ament's pep257 convention), as the ROS 2 ament_python template checks it."""

from pathlib import Path

from ament_pep257.main import main
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch: pytest.MonkeyPatch, generated_folders: list[str]) -> None:
    monkeypatch.chdir(REPO_ROOT)
    rc = main(argv=[".", "test", "--exclude", *generated_folders])
    assert rc == 0, "Found code style errors / warnings"
