"""
The governor's battery and thermal caps, from the robot's topics or the computer's own sensors.

Each input has two sources: the topic (``battery_state``, ``temperature``) and the host
(psutil's reading of the computer the node runs on). A live topic input always wins; the host's
reading feeds the cap while the topic is silent (never heard, or stale by
``stale_timeout_s``). Reasons name the source: ``battery 12% <= 15%`` comes from the topic,
``host battery 12% <= 15%`` from the host. The host temperature has its own table
(:meth:`~.config.GovernorConfig.host_thermal_table`); both sources keep their own
hysteresis state. The config's tables give caps as width fractions (YAML, an edge): they are
snapped to trained :class:`~slimseg_ros.widths.Width` values once, when a config (or, for the
host table, the sensor's limits) is applied. Plain Python; times are passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .config import MAX_CELSIUS, GovernorConfig
from ..widths import TrainedWidths, Width

TOPIC, HOST = "topic", "host"  # where a battery or temperature reading comes from
_LABELS = {TOPIC: "", HOST: "host "}  # how reasons name the source


def checked(name: str, value: Any, lo: float, hi: float) -> float:
    """
    Return ``value`` as a float in [lo, hi].

    Raises ValueError naming ``name`` otherwise (NaN, bools, strings included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or not lo <= v <= hi:
        raise ValueError(f"{name} {v} is outside [{lo:g}, {hi:g}]")
    return v


@dataclass
class Reading:
    """
    A reading and when it arrived.

    ``charging`` is set for a battery, the sensor's ``high`` and ``critical`` points for a host
    temperature.
    """

    value: float
    time: float
    charging: bool = False
    high: float | None = None
    critical: float | None = None

    def stale(self, now: float, timeout_s: float) -> bool:
        return now - self.time > timeout_s


def stale_warning(name: str, reading: Reading, now: float, timeout_s: float,
                  then: str = "not constraining") -> str:
    return f"{name} input stale ({now - reading.time:.1f} s old > {timeout_s:g} s): {then}"


@dataclass
class SharedCaps:
    """
    The caps every camera shares (``battery``, ``thermal``), with their reasons.

    It also holds the names of what set them, and where the battery and thermal inputs in use
    come from.
    """

    caps: dict[str, Width] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, source: str, cap: tuple[Width, str, str] | None) -> None:
        self.sources[key] = source
        if cap is not None:
            self.caps[key], self.reasons[key], self.names[key] = cap


class SensorCaps:
    """
    Battery and temperature readings of both sources and the caps they set.

    The caps are ``widths`` (the trained widths): each table row's width fraction is snapped
    once, when its config (or, for the host's table, the sensor's limits) is applied.
    """

    def __init__(self, config: GovernorConfig, widths: TrainedWidths) -> None:
        self._widths = widths
        self._battery: dict[str, Reading | None] = {TOPIC: None, HOST: None}
        self._temperature: dict[str, Reading | None] = {TOPIC: None, HOST: None}
        # per source, the thresholds whose cap is in force (hysteresis)
        self._thermal_active: dict[str, set[float]] = {TOPIC: set(), HOST: set()}
        # per source, the thermal table in use: (celsius, snapped cap) rows
        self._thermal_rows: dict[str, tuple[tuple[float, Width], ...]] = {TOPIC: (), HOST: ()}
        self._battery_rows: tuple[tuple[float, Width], ...] = ()
        self.update_config(config)

    def update_battery(self, source: str, percent: float | None, charging: bool,
                       now: float) -> None:
        """Charge in percent (0-100) from ``source``; None: that source has no battery."""
        name = _LABELS[source] + "battery percent"
        self._battery[source] = None if percent is None else Reading(
            checked(name, percent, 0.0, 100.0), now, charging=bool(charging))

    def update_temperature(self, source: str, celsius: float | None, now: float,
                           high: float | None = None, critical: float | None = None) -> None:
        """
        Take a temperature in degrees Celsius from ``source`` (None: no reading any more).

        ``high``/``critical`` are the sensor's points (host only). Updates that source's
        hysteresis state.
        """
        reading = None
        if celsius is not None:
            name = _LABELS[source] + "temperature"
            limits = [None if v is None else checked(f"{name} {k}", v, -273.15, MAX_CELSIUS)
                      for k, v in (("high", high), ("critical", critical))]
            reading = Reading(checked(name, celsius, -273.15, MAX_CELSIUS), now,
                              high=limits[0], critical=limits[1])
        previous = self._temperature[source]
        if previous is None or previous.stale(now, self._config.stale_timeout_s):
            self._thermal_active[source].clear()  # no memory across a gap in the readings
        self._temperature[source] = reading
        self._update_thermal_state(source)

    def update_config(self, config: GovernorConfig) -> None:
        """Use new thresholds; caps held by hysteresis stay held, removed rows no longer apply."""
        self._config = config
        self._battery_rows = self._snapped(config.battery_thresholds)
        for source in (TOPIC, HOST):
            self._update_thermal_state(source)

    def caps(self, now: float, warnings: list[str]) -> SharedCaps:
        """Return the battery and thermal caps at ``now``; stale inputs go in ``warnings``."""
        shared = SharedCaps()
        for key, found in (("battery", self._battery_cap(now, warnings)),
                           ("thermal", self._thermal_cap(now, warnings))):
            if found is not None:
                shared.add(key, *found)
        return shared

    # ----------------------------------------------------------------------------- internals
    def _snapped(self, table: tuple[tuple[float, float], ...]
                 ) -> tuple[tuple[float, Width], ...]:
        """Return ``table``'s (threshold, width fraction) rows with the widths snapped."""
        return tuple((t, self._widths.snap(w)) for t, w in table)

    def _in_use(self, inputs: dict[str, Reading | None], name: str, now: float,
                warnings: list[str]) -> tuple[str, Reading] | None:
        """(source, reading) in use: the topic's unless absent or stale, else the host's."""
        timeout = self._config.stale_timeout_s
        topic, host = inputs[TOPIC], inputs[HOST]
        host_live = host is not None and not host.stale(now, timeout)
        if topic is not None and not topic.stale(now, timeout):
            return TOPIC, topic
        if topic is not None:
            warnings.append(stale_warning(name, topic, now, timeout,
                                          "the host's reading is used" if host_live
                                          else "not constraining"))
        if host is not None and not host_live:
            warnings.append(stale_warning(f"host {name}", host, now, timeout))
        return (HOST, host) if host_live else None

    def _thermal_table(self, source: str) -> tuple[tuple[float, float], ...]:
        if source == TOPIC:
            return self._config.thermal_thresholds
        host = self._temperature[HOST]
        return self._config.host_thermal_table(host.high if host else None,
                                               host.critical if host else None)

    def _update_thermal_state(self, source: str) -> None:
        """Snap ``source``'s thermal table and update its hysteresis state from its reading."""
        table = self._thermal_rows[source] = self._snapped(self._thermal_table(source))
        reading = self._temperature[source]
        active = self._thermal_active[source]
        if reading is None:
            active.clear()
            return
        hyst = self._config.thermal_hysteresis_c
        for t, _ in table:
            if reading.value >= t:
                active.add(t)
            elif reading.value < t - hyst:
                active.discard(t)
        active &= {t for t, _ in table}  # thresholds removed by a config change no longer apply

    def _battery_cap(self, now: float, warnings: list[str]
                     ) -> tuple[str, tuple[Width, str, str] | None] | None:
        """(source in use, its (cap, reason, name) or None), or None: no battery input."""
        found = self._in_use(self._battery, "battery", now, warnings)
        if found is None:
            return None
        source, b = found
        rows = [(w, t) for t, w in self._battery_rows if b.value <= t]
        if b.charging or not rows:  # ignored while charging
            return source, None
        w, t = min(rows)  # tightest width; among equal widths, the lowest threshold
        label = _LABELS[source] + "battery"
        return source, (w, f"{label} {round(b.value, 1):g}% <= {t:g}%", label)

    def _thermal_cap(self, now: float, warnings: list[str]
                     ) -> tuple[str, tuple[Width, str, str] | None] | None:
        """(source in use, its (cap, reason, name) or None), or None: no temperature input."""
        found = self._in_use(self._temperature, "temperature", now, warnings)
        if found is None:
            return None
        source, reading = found
        rows = [(w, t) for t, w in self._thermal_rows[source]
                if t in self._thermal_active[source]]
        if not rows:
            return source, None
        w, t = min(rows)
        label = _LABELS[source] + "thermal"
        c = reading.value
        if c >= t:
            return source, (w, f"{label} {c:.1f}C >= {t:g}C", label)
        hyst = self._config.thermal_hysteresis_c
        return source, (w, f"{label} {c:.1f}C: cap of {t:g}C held until < {t - hyst:g}C",
                        label)
