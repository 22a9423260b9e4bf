"""
The Fast DDS environment of the node's process: the shipped large-shared-memory profile.

Best-effort frames above about 512 KB are lost under Fast DDS defaults; the shipped profile
enlarges the shared-memory segment. The variables must be set before ``rclpy.init`` (Fast DDS
reads them when the participant is made), so the console scripts and the launch file call this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from ..resources import default_dds_profile

FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"    # read by Fast DDS 3 (ROS 2 Kilted and later)
FASTRTPS_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # read by Fast DDS 2 (Humble, Iron, Jazzy)
PROFILE_OVERRIDE_ENV = "SLIMSEG_DDS_PROFILE"     # user override; empty string: no profile
_FASTDDS2_DISTROS = ("humble", "iron", "jazzy")


def dds_profile_env(environ: Mapping[str, str], profile: Path | str | None) -> dict[str, str]:
    """
    Environment variables that make Fast DDS load ``profile``, or {} to leave things alone.

    Nothing is set when the user already chose a profile (either variable), when another RMW
    than Fast DDS is selected, or without a profile file. Fast DDS 3 reads
    ``FASTDDS_DEFAULT_PROFILES_FILE`` (and warns that the old name is deprecated); Fast DDS 2,
    shipped up to Jazzy, reads only ``FASTRTPS_DEFAULT_PROFILES_FILE``.
    """
    if environ.get(FASTDDS_ENV) or environ.get(FASTRTPS_ENV):
        return {}
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw and not rmw.startswith("rmw_fastrtps"):
        return {}
    if profile is None or not str(profile):
        return {}
    env = {FASTDDS_ENV: str(profile)}
    if environ.get("ROS_DISTRO", "").lower() in _FASTDDS2_DISTROS:
        env[FASTRTPS_ENV] = str(profile)
    return env


def apply_dds_profile(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """
    Set the profile variables in this process (before ``rclpy.init``); returns what was set.

    ``SLIMSEG_DDS_PROFILE`` overrides the shipped file; set it to an empty string to opt out.
    Fast DDS reads the variable when the first participant is created, i.e. in ``rclpy.init``.
    """
    environ = os.environ if environ is None else environ
    if PROFILE_OVERRIDE_ENV in environ:
        profile: Path | str | None = environ[PROFILE_OVERRIDE_ENV]
    else:
        profile = default_dds_profile()
    env = dds_profile_env(environ, profile)
    environ.update(env)
    return env
