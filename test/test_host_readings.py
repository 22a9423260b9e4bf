"""
Host readings against recorded psutil outputs of laptops, x86 and Jetson machines.

Recorded: a laptop battery (present, absent, plugged), several thermal zones of x86 and Jetson
machines, no sensors at all, and the process's CPU share. The recordings are psutil's own
namedtuples, as psutil returns them.
"""

from __future__ import annotations

import math

import pytest

from slimseg_ros.governor.host_readings import (DEFAULT_TEMPERATURE_SENSORS, HostReader,
                                                PsutilSample, hottest, read_psutil,
                                                sensor_matches, usable_cores)

psutil = pytest.importorskip("psutil")
try:  # psutil 7.1 and later
    from psutil._ntuples import sbattery, shwtemp
except ImportError:
    from psutil._common import sbattery, shwtemp

# recorded from a laptop (Intel), a desktop (AMD), a Jetson Orin and a container
INTEL_LAPTOP = {
    "acpitz": [shwtemp(label="", current=47.0, high=103.0, critical=103.0)],
    "coretemp": [shwtemp(label="Package id 0", current=61.0, high=100.0, critical=100.0),
                 shwtemp(label="Core 0", current=64.0, high=100.0, critical=100.0),
                 shwtemp(label="Core 1", current=58.0, high=100.0, critical=100.0)],
    "nvme": [shwtemp(label="Composite", current=71.85, high=82.85, critical=84.85)],
    "iwlwifi_1": [shwtemp(label="", current=45.0, high=None, critical=None)],
}
AMD_DESKTOP = {
    "k10temp": [shwtemp(label="Tctl", current=68.5, high=None, critical=None),
                shwtemp(label="Tccd1", current=59.2, high=None, critical=None)],
    "amdgpu": [shwtemp(label="edge", current=88.0, high=None, critical=None)],
}
JETSON_ORIN = {
    "cpu-thermal": [shwtemp(label="", current=52.5, high=None, critical=104.5)],
    "gpu-thermal": [shwtemp(label="", current=50.1, high=None, critical=104.5)],
    "soc0-thermal": [shwtemp(label="", current=53.8, high=None, critical=104.5)],
    "tj-thermal": [shwtemp(label="", current=41.0, high=None, critical=104.5),
                   shwtemp(label="", current=54.2, high=None, critical=104.5)],
    "tboard-thermal": [shwtemp(label="", current=107.0, high=None, critical=None)],
}


def sample(**fields) -> PsutilSample:
    """Build a recorded sample; this process's figures are there unless given."""
    return PsutilSample(**{"cpu_seconds": 1.0, "rss_bytes": 100_000_000, **fields})


class Recorded:
    """
    A replacement of read_psutil: returns the given samples in turn (the last one repeats).

    It also records whether sensors were asked for.
    """

    def __init__(self, *samples: PsutilSample) -> None:
        self.samples = list(samples)
        self.asked: list[bool] = []

    def __call__(self, sensors: bool = True) -> PsutilSample:
        self.asked.append(sensors)
        return self.samples.pop(0) if len(self.samples) > 1 else self.samples[0]


def reader(*samples: PsutilSample, cores: int = 4, **kwargs) -> HostReader:
    return HostReader(reader=Recorded(*samples), cores=lambda: cores, **kwargs)


def test_battery_present_plugged_and_absent() -> None:
    on_battery = sample(battery=sbattery(percent=42.4, secsleft=5400, power_plugged=False))
    r = reader(on_battery).read(0.0)
    assert (r.battery.percent, r.battery.charging) == (42.4, False)
    assert r.battery.text() == "42% discharging"
    assert r.notices == ("host temperature unavailable: psutil reports no temperature sensors",)
    plugged = sample(battery=sbattery(percent=100.0, secsleft=psutil.POWER_TIME_UNLIMITED,
                                      power_plugged=True))
    assert reader(plugged).read(0.0).battery.charging is True
    unknown_plug = sample(battery=sbattery(percent=80.0, secsleft=-1, power_plugged=None))
    assert reader(unknown_plug).read(0.0).battery.charging is False
    r = reader(sample(battery=None)).read(0.0)
    assert r.battery is None
    assert "host battery unavailable: psutil reports no battery" in r.notices


@pytest.mark.parametrize("machine, celsius, sensor, high, critical", [
    (INTEL_LAPTOP, 61.0, "coretemp/Package id 0", 100.0, 100.0),  # not a core, not the NVMe
    (AMD_DESKTOP, 68.5, "k10temp/Tctl", None, None),  # the GPU is hotter but not selected
    (JETSON_ORIN, 54.2, "tj-thermal", None, 104.5),  # the board sensor is not the SoC
])
def test_the_hottest_cpu_or_soc_zone_is_read(machine, celsius, sensor, high, critical) -> None:
    r = reader(sample(temperatures=machine)).read(0.0)
    t = r.temperature
    assert (t.celsius, t.sensor, t.high, t.critical) == (celsius, sensor, high, critical)
    assert r.notices == ("host battery unavailable: psutil reports no battery",)


def test_sensor_names_are_configurable_and_listed_when_none_matches() -> None:
    t = reader(sample(temperatures=INTEL_LAPTOP),
               temperature_sensors=["coretemp/Core *"]).read(0.0).temperature
    assert (t.celsius, t.sensor) == (64.0, "coretemp/Core 0")
    assert reader(sample(temperatures=AMD_DESKTOP),
                  temperature_sensors=["AMDGPU"]).read(0.0).temperature.celsius == 88.0
    r = reader(sample(temperatures={"nvme": INTEL_LAPTOP["nvme"]})).read(0.0)
    assert r.temperature is None
    [notice] = [n for n in r.notices if "temperature" in n]
    assert "no sensor matches" in notice and "psutil sees: nvme/Composite" in notice
    assert sensor_matches("cpu_thermal", "cpu_thermal", "")  # Raspberry Pi
    assert sensor_matches("*cpu*therm*", "BCPU-therm", "")   # Jetson TX2
    assert not sensor_matches("k10temp/Tctl", "k10temp", "Tccd1")


def test_no_sensors_are_reported_once_as_unavailable_never_as_zero() -> None:
    bare = sample(battery=None, temperatures={}, cpu_seconds=1.0, rss_bytes=50_000_000)
    host = reader(bare)
    first = host.read(0.0)
    assert first.battery is None and first.temperature is None
    assert set(first.notices) == {"host battery unavailable: psutil reports no battery",
                                  "host temperature unavailable: psutil reports no temperature "
                                  "sensors"}
    again = host.read(1.0)
    assert again.notices == () and again.battery is None and again.temperature is None


def test_a_reading_that_comes_back_and_goes_again_is_told_again() -> None:
    with_battery = sample(battery=sbattery(percent=50.0, secsleft=1, power_plugged=False))
    host = reader(sample(), with_battery, sample())
    assert any("battery" in n for n in host.read(0.0).notices)
    assert host.read(1.0).battery.percent == 50.0
    assert any("battery" in n for n in host.read(2.0).notices)


def test_implausible_values_are_not_readings() -> None:
    broken = {"cpu_thermal": [shwtemp(label="", current=-273.0, high=None, critical=None),
                              shwtemp(label="", current=math.nan, high=None, critical=None)]}
    assert hottest(broken, DEFAULT_TEMPERATURE_SENSORS) is None
    nan_battery = sample(battery=sbattery(percent=math.nan, secsleft=-1, power_plugged=None))
    r = reader(nan_battery).read(0.0)
    assert r.battery is None and any("without a charge" in n for n in r.notices)


def test_process_cpu_share_is_cpu_time_over_wall_time_per_usable_core() -> None:
    samples = [sample(cpu_seconds=s, rss_bytes=200_000_000, age_s=40.0)
               for s in (10.0, 11.0, 11.5)]
    host = reader(*samples, cores=4)
    first = host.read(100.0)  # the first: since the process started 40 s ago
    assert first.process.cpu_share == pytest.approx(10.0 / 40.0 / 4)
    assert first.process.rss_bytes == 200_000_000
    assert first.process.cores == 4 and not any("cpu" in n for n in first.notices)
    assert host.read(102.0).process.cpu_share == pytest.approx(1.0 / 2.0 / 4)  # 12.5 %
    assert host.read(103.0).process.cpu_share == pytest.approx(0.5 / 1.0 / 4)
    ageless = reader(sample(cpu_seconds=3.0)).read(0.0)  # no start time: unknown, not 0
    assert ageless.process.cpu_share is None


def test_sensors_off_reads_only_the_process() -> None:
    recorded = Recorded(sample(battery=sbattery(percent=5.0, secsleft=1, power_plugged=False),
                               temperatures=INTEL_LAPTOP, cpu_seconds=1.0, rss_bytes=1))
    r = HostReader(sensors=False, reader=recorded, cores=lambda: 2).read(0.0)
    assert r.battery is None and r.temperature is None and r.notices == ()
    assert recorded.asked == [False]


def test_failures_are_named() -> None:
    failed = PsutilSample(problems={"temperature": "psutil has no sensors_temperatures() on "
                                                   "this platform",
                                    "cpu share": "psutil.Process() failed: AccessDenied",
                                    "memory": "psutil.Process() failed: AccessDenied"})
    notices = reader(failed).read(0.0).notices
    assert "host temperature unavailable: psutil has no sensors_temperatures() on this " \
           "platform" in notices
    assert "host cpu share unavailable: psutil.Process() failed: AccessDenied" in notices


def test_this_machine_through_psutil() -> None:
    """
    The real call: whatever this machine has, the process figures are there and nothing raises.

    Sensors this machine lacks are None.
    """
    sample = read_psutil()
    assert sample.cpu_seconds is not None and sample.cpu_seconds > 0.0
    assert sample.rss_bytes > 10_000_000
    assert sample.age_s > 0.0
    host = HostReader()
    first = host.read(0.0)
    assert first.process.cpu_share > 0.0  # this process has run tests: not idle since start
    r = host.read(1.0)
    assert r.process.cores == usable_cores() >= 1
    assert r.process.cpu_share is not None and r.process.cpu_share >= 0.0
    assert r.battery is None or 0.0 <= r.battery.percent <= 100.0
