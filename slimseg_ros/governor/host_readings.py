"""
Readings of the computer the node runs on, through psutil.

They are its battery, its hottest CPU or SoC temperature, and this process's CPU share and
memory.

Many robots have no battery or temperature publisher, yet their computer knows both: psutil
reads the battery of laptop- and NUC-class computers and the thermal zones of x86 packages and
Jetson or Raspberry Pi SoCs. psutil is called in one place, :func:`read_psutil`, which returns
what psutil returned as psutil returns it (:class:`PsutilSample`); :class:`HostReader` turns
that into readings and takes any function of the same shape, so tests replace psutil with
recorded outputs.

A reading the machine does not have (containers and many desktops have no battery and no
sensors) is None, never 0, and :meth:`HostReader.read` names it in ``notices`` the first time
it is missing, so a caller logs it once. Plain Python, no ROS; times are passed in.
"""

from __future__ import annotations

import fnmatch
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# psutil's CPU-package and SoC zones: Intel coretemp's package sensor, AMD k10temp's control and
# die temperatures, and thermal zones such as cpu_thermal (Raspberry Pi), cpu-thermal,
# soc0-thermal and tj-thermal (Jetson Orin), CPU-therm / BCPU-therm (older Jetsons), soc_thermal.
DEFAULT_TEMPERATURE_SENSORS: tuple[str, ...] = (
    "coretemp/Package id*", "k10temp/Tctl", "k10temp/Tdie", "*cpu*therm*", "*soc*therm*",
    "tj-therm*")
_PLAUSIBLE_C = (-50.0, 200.0)  # outside: a sensor reporting an error code, not a temperature

BATTERY, TEMPERATURE, CPU_SHARE, RSS = "battery", "temperature", "cpu share", "memory"


@dataclass(frozen=True)
class PsutilSample:
    """
    What psutil returned, unchanged.

    ``battery`` is ``sensors_battery()`` (an ``sbattery`` or None), ``temperatures`` is
    ``sensors_temperatures()`` (``{chip: [shwtemp, ...]}``, empty without sensors);
    ``cpu_seconds`` is this process's user + system CPU time, ``age_s`` the seconds since it
    started and ``rss_bytes`` its resident memory (None where not read). ``problems`` maps a
    kind of reading to why reading it failed.
    """

    battery: Any = None
    temperatures: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    problems: Mapping[str, str] = field(default_factory=dict)
    age_s: float | None = None


def read_psutil(sensors: bool = True) -> PsutilSample:
    """
    Call psutil, in the one place it is called.

    It reads the battery and temperatures (when ``sensors``), and this process's CPU time and
    memory. Never raises: what fails is named in ``problems``.
    """
    try:
        import psutil
    except ImportError:
        reason = "psutil is not installed (pip install psutil, or apt python3-psutil)"
        return PsutilSample(problems={k: reason for k in (BATTERY, TEMPERATURE, CPU_SHARE, RSS)})
    problems: dict[str, str] = {}
    battery: Any = None
    temperatures: Mapping[str, Sequence[Any]] = {}
    if sensors:
        for kind, name in ((BATTERY, "sensors_battery"), (TEMPERATURE, "sensors_temperatures")):
            reader = getattr(psutil, name, None)
            if reader is None:
                problems[kind] = f"psutil has no {name}() on this platform"
                continue
            try:
                value = reader()
            except Exception as exc:  # a sysfs file that vanished, a permission error
                problems[kind] = f"psutil.{name}() failed: {type(exc).__name__}: {exc}"
                continue
            if kind == BATTERY:
                battery = value
            else:
                temperatures = value or {}
    cpu_seconds = rss = age = None
    try:
        process = psutil.Process()
        with process.oneshot():
            times = process.cpu_times()
            cpu_seconds = float(times.user + times.system)
            rss = int(process.memory_info().rss)
            age = time.time() - process.create_time()
    except Exception as exc:
        reason = f"psutil.Process() failed: {type(exc).__name__}: {exc}"
        problems[CPU_SHARE] = problems[RSS] = reason
    return PsutilSample(battery, temperatures, cpu_seconds, rss, problems, age)


def usable_cores() -> int:
    """
    Return the number of CPU cores this process may run on.

    That is its affinity mask (e.g. under ``taskset`` or a container's cpuset), which is what
    a share of "the cores" means.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatteryReading:
    """The host battery: charge in percent (0-100) and whether it is on external power."""

    percent: float
    charging: bool

    def text(self) -> str:
        return f"{self.percent:.0f}% {'charging' if self.charging else 'discharging'}"


@dataclass(frozen=True)
class TemperatureReading:
    """
    The hottest selected sensor: degrees Celsius, its name (``chip/label``) and its limits.

    The limits are psutil's ``high`` and ``critical`` points for it (None where the sensor
    reports none).
    """

    celsius: float
    sensor: str
    high: float | None = None
    critical: float | None = None

    def text(self) -> str:
        limits = [f"{k} {v:g}C" for k, v in (("high", self.high), ("critical", self.critical))
                  if v is not None]
        return f"{self.celsius:.1f}C {self.sensor}" + (f" ({', '.join(limits)})" if limits else "")


@dataclass(frozen=True)
class ProcessReading:
    """
    This process: its CPU share and its resident memory in bytes.

    The CPU share is the CPU time over wall time since the previous reading (at the first,
    since the process started) divided by the usable cores (0-1; None when unreadable).
    """

    cpu_share: float | None
    rss_bytes: int | None
    cores: int


@dataclass(frozen=True)
class HostReadings:
    """
    One reading of the host.

    ``battery``/``temperature`` are None where unavailable (or not read), ``notices`` names the
    readings found unavailable for the first time.
    """

    battery: BatteryReading | None
    temperature: TemperatureReading | None
    process: ProcessReading
    notices: tuple[str, ...] = ()


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def sensor_matches(pattern: str, chip: str, label: str) -> bool:
    """
    Tell whether ``chip``/``label`` (as psutil names them) is selected by ``pattern``.

    The pattern is a glob on the chip name (``cpu_thermal``, ``*soc*therm*``: every reading of
    the chip) or on ``chip/label`` (``coretemp/Package id*``). Case-insensitive.
    """
    pattern = pattern.strip().lower()
    if "/" in pattern:
        return fnmatch.fnmatchcase(f"{chip}/{label}".lower(), pattern)
    return fnmatch.fnmatchcase(chip.lower(), pattern)


def hottest(temperatures: Mapping[str, Sequence[Any]], patterns: Sequence[str]
            ) -> TemperatureReading | None:
    """Return the hottest plausible reading among the sensors ``patterns`` select, or None."""
    best: TemperatureReading | None = None
    for chip, entries in temperatures.items():
        for entry in entries:
            label = str(getattr(entry, "label", "") or "")
            if not any(sensor_matches(p, chip, label) for p in patterns):
                continue
            c = _finite(getattr(entry, "current", None))
            if c is None or not _PLAUSIBLE_C[0] < c < _PLAUSIBLE_C[1]:
                continue
            if best is None or c > best.celsius:
                name = f"{chip}/{label}" if label else chip
                best = TemperatureReading(c, name, _finite(getattr(entry, "high", None)),
                                          _finite(getattr(entry, "critical", None)))
    return best


class HostReader:
    """
    Turns psutil samples into :class:`HostReadings`.

    ``sensors`` False reads no battery and no temperature (``host_sensors: off``);
    ``temperature_sensors`` are the patterns of :func:`sensor_matches`; ``reader`` is
    :func:`read_psutil` or a replacement of the same shape; ``cores`` gives the usable cores.
    """

    def __init__(self, sensors: bool = True,
                 temperature_sensors: Sequence[str] = DEFAULT_TEMPERATURE_SENSORS,
                 reader: Callable[..., PsutilSample] = read_psutil,
                 cores: Callable[[], int] = usable_cores) -> None:
        self.sensors = bool(sensors)
        self.temperature_sensors = tuple(temperature_sensors)
        self._reader = reader
        self._cores = cores
        self._previous: tuple[float, float] | None = None  # (wall time, CPU seconds)
        self._reported: set[str] = set()  # kinds already reported unavailable

    def read(self, now: float) -> HostReadings:
        """Read the host at ``now`` (seconds, any monotonic clock)."""
        sample = self._reader(sensors=self.sensors)
        missing: dict[str, str] = {}
        battery = temperature = None
        if self.sensors:
            battery = self._battery(sample, missing)
            temperature = self._temperature(sample, missing)
        cores = max(1, int(self._cores()))
        share = None
        if sample.cpu_seconds is None:  # unreadable: no share, and the next read starts over
            missing[CPU_SHARE] = sample.problems.get(CPU_SHARE, "no CPU time from psutil")
            self._previous = None
        else:
            cpu = float(sample.cpu_seconds)
            if self._previous is not None and now > self._previous[0]:
                wall = now - self._previous[0]
                share = max(0.0, cpu - self._previous[1]) / wall / cores
            elif self._previous is None and sample.age_s and sample.age_s > 0.0:
                share = cpu / sample.age_s / cores  # since the process started
            self._previous = (now, cpu)
        rss = sample.rss_bytes
        if rss is None:
            missing[RSS] = sample.problems.get(RSS, "no memory figure from psutil")
        notices = []
        for kind, why in missing.items():
            if kind not in self._reported:
                notices.append(f"host {kind} unavailable: {why}")
        self._reported = set(missing)  # a reading that comes back and goes is told again
        return HostReadings(battery, temperature, ProcessReading(share, rss, cores),
                            tuple(notices))

    def _battery(self, sample: PsutilSample, missing: dict[str, str]) -> BatteryReading | None:
        b = sample.battery
        percent = _finite(getattr(b, "percent", None)) if b is not None else None
        if percent is None:
            missing[BATTERY] = sample.problems.get(
                BATTERY, "psutil reports no battery" if b is None
                else f"psutil reports a battery without a charge ({b!r})")
            return None
        plugged = getattr(b, "power_plugged", None)
        return BatteryReading(min(max(percent, 0.0), 100.0), plugged is True)

    def _temperature(self, sample: PsutilSample, missing: dict[str, str]
                     ) -> TemperatureReading | None:
        found = hottest(sample.temperatures, self.temperature_sensors)
        if found is None:
            if TEMPERATURE in sample.problems:
                why = sample.problems[TEMPERATURE]
            elif not sample.temperatures:
                why = "psutil reports no temperature sensors"
            else:
                seen = ", ".join(sorted(
                    f"{chip}/{getattr(e, 'label', '')}" if getattr(e, "label", "") else chip
                    for chip, entries in sample.temperatures.items() for e in entries))
                why = (f"no sensor matches {list(self.temperature_sensors)} "
                       f"(psutil sees: {seen})")
            missing[TEMPERATURE] = why
        return found
