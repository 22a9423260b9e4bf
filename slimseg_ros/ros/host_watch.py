"""
The node's view of the computer it runs on: host readings, governor inputs and diagnostics.

It reads the host (:mod:`.host_readings`) every ``host_period_s``, feeds the governor's host
battery and temperature (``host_sensors: auto``), logs each missing reading once, and reports
the readings, their source and the CPU budget in diagnostics (:class:`~.contract.HostStatus`).

Kept beside :mod:`.core` (which owns one :class:`HostWatch`) so the core stays wiring;
no rclpy import (it is given the logger and the governor's lock), so tests drive it with
recorded psutil outputs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .contract import NONE, OFF, UNAVAILABLE, HostStatus
from ..governor.decision import Decision, Governor
from ..governor.host_readings import (CPU_SHARE, RSS, HostReader, HostReadings, PsutilSample,
                                      read_psutil, usable_cores)
from .params import host_sensors_on

_MB = 1024.0 * 1024.0


class HostWatch:
    """
    Host readings for one node.

    ``sensors``: read the battery and temperature (``auto``) or not (``off``); the process's CPU
    share and memory are read either way.
    """

    def __init__(self, logger: Any, sensors: bool, temperature_sensors: Sequence[str],
                 reader: Callable[..., PsutilSample] = read_psutil) -> None:
        self._logger = logger
        self._reader = HostReader(sensors=sensors, temperature_sensors=temperature_sensors,
                                  reader=reader)
        self._lock = threading.Lock()
        self._latest: HostReadings | None = None
        self._cores = usable_cores()

    @property
    def cores(self) -> int:
        """Usable cores at the last reading (the node's CPU affinity)."""
        return self._cores

    @property
    def sensors(self) -> bool:
        return self._reader.sensors

    def apply_parameters(self, updates: Mapping[str, Any], value: Callable[[str], Any],
                         governor: Governor, lock: threading.Lock, now: float) -> bool:
        """
        Apply changed ``host_sensors`` / ``host_temperature_sensors`` (``value`` reads the others).

        With sensors off the governor forgets the host's battery and temperature at once.
        Returns whether either changed.
        """
        if not {"host_sensors", "host_temperature_sensors"} & set(updates):
            return False
        sensors = host_sensors_on(updates.get("host_sensors", value("host_sensors")))
        names = updates.get("host_temperature_sensors", value("host_temperature_sensors"))
        with self._lock:
            self._reader.sensors = sensors
            self._reader.temperature_sensors = tuple(str(n) for n in names)
        if not sensors:
            with lock:
                governor.update_host_battery(None, False, now)
                governor.update_host_temperature(None, now)
        return True

    def read(self, governor: Governor, lock: threading.Lock, now: float) -> None:
        """Read the host and hand its battery and temperature to ``governor``."""
        with self._lock:
            readings = self._reader.read(now)
            self._latest = readings
            self._cores = readings.process.cores
            sensors = self._reader.sensors
        for notice in readings.notices:  # each missing reading once, not every period
            own = CPU_SHARE in notice or RSS in notice
            self._logger.info(notice + ("" if own else "; only its topic can cap the width"))
        if not sensors:
            return
        b, t = readings.battery, readings.temperature
        with lock:
            governor.update_host_battery(b.percent if b else None, bool(b and b.charging), now)
            if t is None:
                governor.update_host_temperature(None, now)
            else:
                governor.update_host_temperature(t.celsius, now, t.high, t.critical)

    def status(self, decision: Decision, cpu_budget: float | None) -> HostStatus:
        """Return the diagnostics' view of the host for ``decision`` (whose sources it names)."""
        with self._lock:
            r, sensors = self._latest, self._reader.sensors
        process = r.process if r is not None else None

        def text(reading: Any) -> str:
            if not sensors:
                return OFF
            return reading.text() if reading is not None else UNAVAILABLE

        return HostStatus(
            cores=self._cores, cpu_budget=cpu_budget,
            node_cpu_share=process.cpu_share if process else None,
            node_memory_mb=(process.rss_bytes / _MB if process and process.rss_bytes is not None
                            else None),
            battery=text(r.battery if r else None),
            temperature=text(r.temperature if r else None),
            battery_source=decision.sources.get("battery", NONE),
            thermal_source=decision.sources.get("thermal", NONE))
