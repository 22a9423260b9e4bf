"""
Which operating points hold their working memory, and handing back the ones left idle.

A compiled graph keeps its intermediate tensors allocated between frames (2-20 MiB for each
width and ladder point of the default model in OpenVINO) while a node serves one or two of them
at a time. The engines' warm-up and the points' preparation release each graph right after its
run; from then on a step holds its memory from the first frame served at it until it has been
idle for ``idle_s`` seconds and no camera is deciding for it. The next frame at a released step
allocates it again: a few milliseconds of page faults, nothing compiled. That frame's time is
not what the step costs, so :meth:`WorkingMemory.served` says whether the step was warm, and
the caller keeps a cold frame's time out of its latency figures.

Time is passed in (the node's injected clock); ``idle_s`` 0 switches it off: every step keeps
its memory, as before, and every frame counts as warm.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any

#: a step as the engine names it: (trained width, network input size or None for the full one)
Step = tuple[Any, Any]


def return_freed_heap() -> bool:
    """
    Give the C heap's free pages back to the system (glibc's ``malloc_trim``).

    Preparing the graphs allocates and frees far more than the node keeps (the runtime's graph
    transformations); glibc keeps what was freed for reuse, so without this the node would hold
    it resident for its whole life. Returns False where the C library has no such call.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # no glibc (musl, macOS; Windows: TypeError)
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


class WorkingMemory:
    """
    Track the steps that hold working memory; release through ``release(steps) -> count``.

    ``release`` is the engine's :meth:`~.engine.SegmentationEngine.release_memory`.
    """

    def __init__(self, release: Callable[[list[Step]], int], idle_s: float,
                 enabled: bool = True) -> None:
        if not (isinstance(idle_s, (int, float)) and math.isfinite(idle_s) and idle_s >= 0):
            raise ValueError(f"idle_s must be a finite number >= 0, got {idle_s!r}")
        self._release = release
        self.idle_s = float(idle_s)
        #: False: nothing is released and every frame is warm (idle_s 0, or a runtime that
        #: keeps its memory, such as torch or ONNX Runtime)
        self.enabled = bool(enabled) and self.idle_s > 0
        self._last_served: dict[Hashable, float] = {}  # steps holding memory -> last frame

    @property
    def held(self) -> list[Hashable]:
        """Return the steps holding working memory now (served and not released since)."""
        return list(self._last_served)

    def served(self, step: Step, now: float) -> bool:
        """
        Note a frame served at ``step`` at ``now``; return whether the step held its memory.

        False (cold) for the first frame after a release: its time included allocating.
        """
        if not self.enabled:
            return True
        warm = step in self._last_served
        self._last_served[step] = now
        return warm

    def release_idle(self, now: float, keep: Iterable[Step] = ()) -> list[Step]:
        """
        Release the steps idle for ``idle_s`` or longer, except ``keep``; return them.

        ``keep``: the steps the cameras are deciding for now (the next frame runs at one).
        """
        if not self.enabled:
            return []
        kept = set(keep)
        idle = [step for step, last in self._last_served.items()
                if now - last >= self.idle_s and step not in kept]
        if idle:
            self._release(idle)  # (raising, it leaves them held: nothing is lost track of)
            for step in idle:
                del self._last_served[step]
        return idle
