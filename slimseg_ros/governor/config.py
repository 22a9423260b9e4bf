"""
The governor's thresholds and timings (:class:`GovernorConfig`), validated once.

Kept apart from the decision logic in :mod:`.governor` (which re-exports it); plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

MAX_CELSIUS = 1000.0
# Where x86 packages (Intel TjMax, AMD Tctl limits) and Jetson SoCs start to throttle, within a
# few degrees: the host thermal caps sit 10 C and 5 C below it unless the sensor says otherwise.
HOST_THROTTLE_C = 100.0
_HOST_ROWS = ((10.0, 0.5), (5.0, 0.25))  # (degrees below the throttle point, max width)
_PLAUSIBLE_THROTTLE_C = (50.0, 150.0)


def _number(key: str, value: Any) -> float:
    """``value`` as a float, rejecting bools, strings and NaN with the key named."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"governor config '{key}' must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"governor config '{key}' must not be NaN")
    return value


def _thresholds(key: str, value: Any, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """
    Normalise a threshold table to sorted ``((threshold, max width), ...)``.

    Accepts a list of pairs ``[[15, 0.25], ...]``, a mapping ``{15: 0.25, ...}`` or a flat list
    ``[15, 0.25, 30, 0.5]`` (ROS 2 parameters cannot hold nested lists).
    """
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if items and all(isinstance(v, (list, tuple)) for v in items):
            pairs = items
        elif all(not isinstance(v, (list, tuple, Mapping)) for v in items):
            if len(items) % 2:
                raise ValueError(f"governor config '{key}': a flat list needs threshold, width "
                                 f"pairs (even length), got {len(items)} values")
            pairs = [(items[i], items[i + 1]) for i in range(0, len(items), 2)]
        else:
            raise ValueError(f"governor config '{key}' mixes pairs and plain values: {value!r}")
    else:
        raise ValueError(f"governor config '{key}' must be a list of [threshold, width] pairs, "
                         f"got {value!r}")
    out = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"governor config '{key}': {pair!r} is not a [threshold, width] pair")
        t = _number(key, pair[0])
        w = _number(key, pair[1])
        if not lo <= t <= hi:
            raise ValueError(f"governor config '{key}': threshold {t:g} outside [{lo:g}, {hi:g}]")
        if not 0.0 < w <= 1.0:
            raise ValueError(f"governor config '{key}': width {w:g} for threshold {t:g} "
                             f"must be in (0, 1]")
        out.append((t, w))
    ts = [t for t, _ in out]
    if len(set(ts)) != len(ts):
        raise ValueError(f"governor config '{key}' repeats a threshold: {ts}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class GovernorConfig:
    """Thresholds and timings of the width policies (percent 0-100, Celsius, ms, seconds)."""

    battery_thresholds: tuple[tuple[float, float], ...] = ((15.0, 0.25), (30.0, 0.5), (50.0, 0.75))
    thermal_thresholds: tuple[tuple[float, float], ...] = ((70.0, 0.75), (80.0, 0.5), (90.0, 0.25))
    thermal_hysteresis_c: float = 3.0
    # empty: derived from the sensor (see host_thermal_table)
    host_thermal_thresholds: tuple[tuple[float, float], ...] = ()
    budget_percentile: float = 90.0
    budget_margin: float = 0.9
    min_dwell_s: float = 2.0
    stale_timeout_s: float = 10.0
    probe_interval_s: float = 3.0
    min_rate_hz: float = 1.0  # the serving rate's floor per camera (the rate actuator)

    def __post_init__(self) -> None:
        # Validate and normalise here so a directly constructed config is as safe as from_dict's.
        set_ = object.__setattr__
        set_(self, "battery_thresholds",
             _thresholds("battery_thresholds", self.battery_thresholds, 0.0, 100.0))
        set_(self, "thermal_thresholds",
             _thresholds("thermal_thresholds", self.thermal_thresholds, -273.15, MAX_CELSIUS))
        set_(self, "host_thermal_thresholds",
             _thresholds("host_thermal_thresholds", self.host_thermal_thresholds, -273.15,
                         MAX_CELSIUS))
        checks = {
            "thermal_hysteresis_c": (lambda v: 0.0 <= v < math.inf, "a finite value >= 0"),
            "budget_percentile": (lambda v: 0.0 < v <= 100.0, "in (0, 100]"),
            "budget_margin": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
            "min_dwell_s": (lambda v: 0.0 <= v < math.inf, "a finite value >= 0"),
            "stale_timeout_s": (lambda v: v > 0.0, "> 0 (inf disables it)"),
            "probe_interval_s": (lambda v: 0.0 < v < math.inf, "finite and > 0"),
            "min_rate_hz": (lambda v: 0.0 < v <= 60.0, "in (0, 60]"),
        }
        for key, (ok, what) in checks.items():
            v = _number(key, getattr(self, key))
            if not ok(v):
                raise ValueError(f"governor config '{key}' must be {what}, got {v:g}")
            set_(self, key, v)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GovernorConfig:
        """
        Build from a plain dict (YAML, ROS parameters); missing keys keep their defaults.

        Raises ``ValueError`` naming the key for unknown keys and bad values.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"governor config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown governor config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists of pairs), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["battery_thresholds"] = [list(p) for p in self.battery_thresholds]
        out["thermal_thresholds"] = [list(p) for p in self.thermal_thresholds]
        out["host_thermal_thresholds"] = [list(p) for p in self.host_thermal_thresholds]
        return out

    def host_thermal_table(self, high: float | None = None, critical: float | None = None
                           ) -> tuple[tuple[float, float], ...]:
        """
        Return the thermal table for the host's own sensor.

        It is ``host_thermal_thresholds`` when set, else caps of 0.5 and 0.25 at 10 C and 5 C
        below the sensor's throttle point.

        The throttle point is psutil's ``critical`` for the sensor where it reports one, else
        its ``high``, else :data:`HOST_THROTTLE_C`. ``high`` comes second because many drivers
        set it as an early alarm (80 C on some Intel packages) well below throttling, so a warm
        computer under normal load does not slim itself.
        """
        if self.host_thermal_thresholds:
            return self.host_thermal_thresholds
        lo, hi = _PLAUSIBLE_THROTTLE_C
        point = next((v for v in (critical, high)
                      if v is not None and math.isfinite(v) and lo <= v <= hi), HOST_THROTTLE_C)
        return tuple((point - below, w) for below, w in _HOST_ROWS)
