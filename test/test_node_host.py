"""
The node's host watch with recorded psutil outputs and a real governor.

Host readings reach the caps, a live topic wins, host_sensors off forgets them at once,
missing readings are logged once, and the diagnostics name each reading's source.
"""

from __future__ import annotations

import threading

import pytest

from slimseg_ros.ros.contract import NONE, OFF, UNAVAILABLE
from slimseg_ros.governor.decision import Governor, GovernorConfig
from slimseg_ros.governor.host_readings import PsutilSample
from slimseg_ros.ros.host_watch import HostWatch

psutil = pytest.importorskip("psutil")
try:  # psutil 7.1 and later
    from psutil._ntuples import sbattery, shwtemp
except ImportError:
    from psutil._common import sbattery, shwtemp

NONE_LAT: dict = {}  # no latency figures: no budget applies
HOT_LAPTOP = PsutilSample(
    battery=sbattery(percent=12.0, secsleft=600, power_plugged=False),
    temperatures={"coretemp": [shwtemp(label="Package id 0", current=96.0, high=100.0,
                                       critical=100.0)]},
    cpu_seconds=5.0, rss_bytes=300 * 1024 * 1024, age_s=10.0)
CONTAINER = PsutilSample(cpu_seconds=5.0, rss_bytes=300 * 1024 * 1024, age_s=10.0)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


def watch(sample: PsutilSample, sensors: bool = True) -> tuple[HostWatch, Governor, Log]:
    log = Log()
    governor = Governor((0.25, 0.5, 0.75, 1.0), GovernorConfig(min_dwell_s=0.0))
    return HostWatch(log, sensors, ["coretemp/Package id*"], reader=lambda sensors: sample), \
        governor, log


def test_host_readings_reach_the_caps_and_the_diagnostics_name_the_source() -> None:
    host, governor, _ = watch(HOT_LAPTOP)
    lock = threading.Lock()
    host.read(governor, lock, now=0.0)
    d = governor.decide(0.0, NONE_LAT)
    assert float(d.width) == 0.25 and d.decided_by == ("host battery", "host thermal")
    status = host.status(d, cpu_budget=0.4)
    assert (status.battery, status.battery_source, status.thermal_source) == (
        "12% discharging", "host", "host")
    assert status.temperature == "96.0C coretemp/Package id 0 (high 100C, critical 100C)"
    assert status.cpu_budget == 0.4 and status.node_memory_mb == 300.0
    assert status.node_cpu_share == pytest.approx(5.0 / 10.0 / status.cores)
    governor.update_battery(90.0, False, 0.5)  # a live topic wins over the host
    d = governor.decide(0.5, NONE_LAT)
    assert host.status(d, None).battery_source == "topic"
    assert d.reason == "host thermal 96.0C >= 95C"


def test_sensors_off_forgets_the_host_at_once_and_says_off() -> None:
    host, governor, _ = watch(HOT_LAPTOP)
    lock = threading.Lock()
    host.read(governor, lock, now=0.0)
    current = {"host_sensors": "auto", "host_temperature_sensors": ["coretemp/Package id*"]}
    changed = host.apply_parameters({"host_sensors": "off"}, current.get, governor, lock,
                                    now=1.0)
    assert changed and not host.sensors
    d = governor.decide(1.0, NONE_LAT)
    assert float(d.width) == 1.0 and d.sources == {}
    host.read(governor, lock, now=2.0)
    status = host.status(governor.decide(2.0, NONE_LAT), None)
    assert (status.battery, status.temperature, status.battery_source) == (OFF, OFF, NONE)
    assert status.node_cpu_share is not None  # the node's own figures are read either way
    assert not host.apply_parameters({"width": 0.5}, current.get, governor, lock, 3.0)


def test_a_machine_without_sensors_is_told_once_and_shown_as_unavailable() -> None:
    host, governor, log = watch(CONTAINER)
    lock = threading.Lock()
    for t in (0.0, 1.0, 2.0):
        host.read(governor, lock, now=t)
    assert len(log.lines) == 2 and all("only its topic can cap the width" in line
                                       for line in log.lines)
    d = governor.decide(2.0, NONE_LAT)
    status = host.status(d, None)
    assert (float(d.width), status.battery, status.temperature) == (1.0, UNAVAILABLE, UNAVAILABLE)
