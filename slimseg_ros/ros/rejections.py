"""Rejected-input bookkeeping: counts per kind for diagnostics, and a throttled log line."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field


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
