"""
Packaged files (the default checkpoint, the Fast DDS profile), found in one place.

The installed ``share/slimseg_ros`` copy comes first (colcon/ament or a pip install into a
virtual environment), else the source checkout's. The node, training and the tools import this
module, so they find the same file wherever the package lives. Plain Python: no rclpy.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "slimseg_ros"
DDS_PROFILE_NAME = "fastdds_large_shm.xml"


def share_dir() -> Path | None:
    """``share/slimseg_ros`` of an installed (colcon/ament) package, else None."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, OSError, ValueError):
        return None


def prefix_share_dir() -> Path | None:
    """
    ``share/slimseg_ros`` under the running interpreter's prefix, where ``pip install`` puts it.

    A pip install into a virtual environment has no ament index to find it through.
    """
    share = Path(sys.prefix) / "share" / PACKAGE
    return share if (share / "package.xml").is_file() else None


def source_root() -> Path | None:
    """Return the source checkout (editable install) holding ``package.xml``, else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "package.xml").is_file() else None


def data_dirs(sub: str) -> list[Path]:
    """Where packaged files of kind ``sub`` (config, models, launch) may be: share/, source."""
    dirs = []
    for base in (share_dir(), prefix_share_dir(), source_root()):
        if base is not None and (base / sub).is_dir() and (base / sub) not in dirs:
            dirs.append(base / sub)
    return dirs


def packaged_file(sub: str, name: str) -> Path | None:
    """
    Return the packaged file ``sub/name`` (e.g. ``config``, ``slimseg.yaml``).

    The installed share/ copy comes first, else the source checkout's; None where neither has
    it.

    The one lookup of shipped files, so the node, the training configs and the tools find the
    same file wherever the package lives.
    """
    for d in data_dirs(sub):
        if (d / name).is_file():
            return d / name
    return None


def default_dds_profile() -> Path | None:
    """Return the shipped Fast DDS profile with the large shared-memory segment, if found."""
    return packaged_file("config", DDS_PROFILE_NAME)


def default_checkpoint() -> Path:
    """
    Return the packaged default model: ``models/default.pt``, else the only ``*.pt`` there.

    Raises ``FileNotFoundError`` with a sentence saying where it looked and what to do.
    """
    dirs = data_dirs("models")
    for d in dirs:
        if (d / "default.pt").is_file():
            return d / "default.pt"
        found = sorted(d.glob("*.pt"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise FileNotFoundError(
                f"parameter 'checkpoint' is empty and {d} holds several models "
                f"({', '.join(p.name for p in found)}) but no default.pt; set checkpoint to one")
    where = ", ".join(str(d) for d in dirs) or "share/slimseg_ros/models (not installed)"
    raise FileNotFoundError(
        f"parameter 'checkpoint' is empty and no packaged default model was found in {where}; "
        f"set checkpoint to a model file (train one with slimseg-train)")


DEFAULT_BUNDLE = "default_bundle"


def default_bundle() -> Path | None:
    """
    Return the packaged default model as a bundle (``models/default_bundle``), else None.

    The same model as :func:`default_checkpoint`, exported (its ``bundle.json`` records
    ``default.pt``'s SHA-256): what a node with a runtime backend runs without PyTorch.
    """
    for d in data_dirs("models"):
        if (d / DEFAULT_BUNDLE / "bundle.json").is_file():
            return d / DEFAULT_BUNDLE
    return None
