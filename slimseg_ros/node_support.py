"""
Plain-Python pieces of the node: frame slots, rejections, DDS profile and shipped files.

They are the latest-frame slots, the rejected-input bookkeeping, the Fast DDS profile
environment, the packaged file locations and the stop-signal mask of the model's threads.

Kept out of ``node.py`` (and free of rclpy) so they are tested directly and the node stays glue.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

PACKAGE = "slimseg_ros"
DDS_PROFILE_NAME = "fastdds_large_shm.xml"
FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"    # read by Fast DDS 3 (ROS 2 Kilted and later)
FASTRTPS_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # read by Fast DDS 2 (Humble, Iron, Jazzy)
PROFILE_OVERRIDE_ENV = "SLIMSEG_DDS_PROFILE"     # user override; empty string: no profile
_FASTDDS2_DISTROS = ("humble", "iron", "jazzy")

T = TypeVar("T")
_RATE_FRAMES = 512  # arrival times kept per camera for its frame rate


class FrameSlots(Generic[T]):
    """
    A one-frame mailbox per camera and a fair ``take``.

    ``take`` goes round-robin over the cameras that have a frame waiting. The subscription
    callbacks put, the inference thread takes. ``put`` replaces a frame nobody took (counted as
    dropped), so the node holds at most one waiting frame per camera and always serves the
    newest; a flooding camera gets one turn per round and cannot starve the others. State is
    keyed by camera name.
    """

    def __init__(self, cameras: Sequence[str]) -> None:
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"need distinct camera names, got {list(cameras)}")
        self._cond = threading.Condition()
        self._order = list(cameras)
        self._items: dict[str, T | None] = {c: None for c in cameras}
        self._next = 0  # where the next round-robin search starts
        self._closed = False
        self.received = {c: 0 for c in cameras}
        self.dropped = {c: 0 for c in cameras}
        self._last_put = {c: -math.inf for c in cameras}
        self._arrivals: dict[str, deque[float]] = {c: deque(maxlen=_RATE_FRAMES) for c in cameras}

    def put(self, camera: str, item: T, now: float) -> bool:
        """
        Store ``item`` for ``camera`` (arrived at ``now``, seconds).

        Returns True when it replaced a frame nobody took (a dropped frame).
        """
        with self._cond:
            replaced = self._items[camera] is not None
            self._items[camera] = item
            self.received[camera] += 1
            self.dropped[camera] += int(replaced)
            self._last_put[camera] = now
            self._arrivals[camera].append(now)
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> tuple[str, T] | None:
        """
        Wait up to ``timeout`` seconds for a frame.

        Returns ``(camera, item)`` of the next camera in round-robin order with a frame
        waiting, or None on timeout or close.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._closed or any(
                v is not None for v in self._items.values()), timeout)
            if self._closed:
                return None
            n = len(self._order)
            for i in range(n):
                camera = self._order[(self._next + i) % n]
                item = self._items[camera]
                if item is not None:
                    self._items[camera] = None
                    self._next = (self._next + i + 1) % n
                    return camera, item
            return None

    def fresh(self, now: float, window_s: float) -> set[str]:
        """Cameras with a frame waiting or one that arrived within ``window_s`` seconds."""
        with self._cond:
            return {c for c in self._order if self._items[c] is not None
                    or now - self._last_put[c] <= window_s}

    def rate(self, camera: str, now: float, window_s: float) -> float | None:
        """
        Return the frames per second arriving from ``camera`` over the last ``window_s`` seconds.

        At most the last few hundred frames count. 0 without a frame, None with only one (no
        interval to measure yet).
        """
        with self._cond:
            times = [t for t in self._arrivals[camera] if now - t <= window_s]
        if len(times) < 2:
            return 0.0 if not times else None
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0.0 else None

    def close(self) -> None:
        """Wake every waiting ``take`` (which then returns None) for shutdown."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass
class Rejections:
    """
    Counts rejected inputs per kind and decides which rejections are logged (throttled).

    One throttle per kind, so a flood of bad images does not hide a rejected battery message.
    """

    throttle_s: float = 5.0
    counts: dict[str, int] = field(default_factory=dict)
    last: dict[str, str] = field(default_factory=dict)
    _last_logged: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reject(self, kind: str, message: str, now: float) -> str | None:
        """Record one rejection; returns the line to log now, or None while throttled."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.last[kind] = message
            if now - self._last_logged.get(kind, -math.inf) < self.throttle_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return None
            self._last_logged[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more {kind} rejections not logged)" if suppressed else ""
        return f"rejected {kind}: {message}{more}"

    def snapshot(self) -> tuple[dict[str, int], dict[str, str]]:
        with self._lock:
            return dict(self.counts), dict(self.last)


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


#: The signals that stop a node: Ctrl-C, the SIGTERM of ``ros2 launch`` or systemd, a closed
#: terminal.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """
    Block the stop signals in this thread while the body runs; threads started in it keep them.

    The inference runtimes run the model on native threads that install their own alternate
    signal stacks (OpenVINO's CPU plugin and its thread pool do). A stop signal the kernel hands
    to one of those threads while its stack is being replaced or freed kills the process with
    SIGSEGV instead of stopping it. Python runs its handlers in the main thread whichever
    thread the signal lands on, so keeping the signals off the model's threads changes nothing
    else: the engine is built and the inference thread started inside this block.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to keep off
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
