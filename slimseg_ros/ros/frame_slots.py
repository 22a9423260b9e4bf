"""One latest-frame slot per camera and a fair take: the node's only frame queue."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

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
