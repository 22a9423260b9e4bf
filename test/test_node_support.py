"""
The node's plain-Python parts, without a ROS graph.

The latest-frame slots, rejection throttling, the Fast DDS profile environment, default files,
and the parameter table against config/slimseg.yaml.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from slimseg_ros import resources
from slimseg_ros.ros import dds
from slimseg_ros.ros.frame_slots import FrameSlots
from slimseg_ros.ros.rejections import Rejections
from slimseg_ros.governor.decision import GovernorConfig
from slimseg_ros.ros.params import (MODEL_PARAMS, PARAMS, SPECS, check_camera_priorities,
                                    check_value, governor_config_from_params)

REPO = Path(__file__).resolve().parents[1]


def test_frame_slots_keep_only_the_newest_item_per_camera() -> None:
    slots: FrameSlots[int] = FrameSlots(["front"])
    assert slots.put("front", 1, now=0.0) is False
    assert slots.put("front", 2, now=0.0) is True and slots.put("front", 3, now=0.0) is True
    assert slots.take(timeout=0.1) == ("front", 3)
    assert (slots.received["front"], slots.dropped["front"]) == (3, 2)
    assert slots.take(timeout=0.05) is None  # empty: times out
    with pytest.raises(ValueError, match="distinct"):
        FrameSlots(["a", "a"])


def test_frame_slots_serve_cameras_round_robin_under_a_flood() -> None:
    slots: FrameSlots[int] = FrameSlots(["flood", "steady", "idle"])
    served = []
    for i in range(6):
        slots.put("flood", i, now=float(i))  # always a frame waiting
        if i % 2 == 0:
            slots.put("steady", i, now=float(i))
        served.append(slots.take(timeout=0.1)[0])
        if i % 2 == 0:
            served.append(slots.take(timeout=0.1)[0])
    assert served.count("steady") == 3 and slots.dropped["steady"] == 0
    assert slots.fresh(now=5.5, window_s=1.0) == {"flood"}  # steady last sent at 4.0
    assert slots.fresh(now=4.5, window_s=1.0) == {"flood", "steady"}
    assert "idle" not in slots.fresh(now=0.0, window_s=100.0)


def test_frame_slots_wake_a_waiting_taker_and_close() -> None:
    slots: FrameSlots[str] = FrameSlots(["cam"])
    got: list[tuple[str, str] | None] = []
    t = threading.Thread(target=lambda: got.append(slots.take(timeout=5)))
    t.start()
    time.sleep(0.05)
    slots.put("cam", "frame", now=0.0)
    t.join(timeout=2)
    assert got == [("cam", "frame")]
    t = threading.Thread(target=lambda: got.append(slots.take(timeout=5)))
    t.start()
    slots.close()
    t.join(timeout=2)
    assert not t.is_alive() and got[-1] is None and slots.closed


def test_frame_slots_measure_each_cameras_frame_rate() -> None:
    slots: FrameSlots[int] = FrameSlots(["fast", "slow", "idle"])
    for i in range(31):  # 30 frames/s for one second; 2 frames/s
        slots.put("fast", i, now=10.0 + i / 30.0)
    for t in (10.0, 10.5, 11.0):
        slots.put("slow", 0, now=t)
    assert slots.rate("fast", 11.0, window_s=3.0) == pytest.approx(30.0)
    assert slots.rate("slow", 11.0, window_s=3.0) == pytest.approx(2.0)
    assert slots.rate("idle", 11.0, window_s=3.0) == 0.0  # no frame: costs nothing
    assert slots.rate("fast", 20.0, window_s=3.0) == 0.0  # stopped: its frames left the window
    slots.put("idle", 0, now=11.0)
    assert slots.rate("idle", 11.0, window_s=3.0) is None  # one frame: no interval yet


def test_rejections_are_counted_always_and_logged_throttled_per_kind() -> None:
    r = Rejections(throttle_s=5.0)
    assert r.reject("image", "bad step", now=0.0) == "rejected image: bad step"
    assert r.reject("image", "bad step", now=1.0) is None
    assert r.reject("width", "width 7.0", now=1.0) == "rejected width: width 7.0"  # own throttle
    assert r.reject("image", "zero-size", now=6.0) == (
        "rejected image: zero-size (1 more image rejections not logged)")
    counts, last = r.snapshot()
    assert counts == {"image": 3, "width": 1} and last["image"] == "zero-size"


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, {"FASTDDS_DEFAULT_PROFILES_FILE": "/p.xml"}),
    ({"ROS_DISTRO": "jazzy"}, {"FASTDDS_DEFAULT_PROFILES_FILE": "/p.xml",
                               "FASTRTPS_DEFAULT_PROFILES_FILE": "/p.xml"}),
    ({"ROS_DISTRO": "humble", "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"},
     {"FASTDDS_DEFAULT_PROFILES_FILE": "/p.xml", "FASTRTPS_DEFAULT_PROFILES_FILE": "/p.xml"}),
    ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}, {}),   # the user's own profile wins
    ({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}, {}),
    ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, {}),      # not Fast DDS: nothing to do
])
def test_dds_profile_env(environ: dict, expected: dict) -> None:
    assert dds.dds_profile_env(environ, "/p.xml") == expected


def test_apply_dds_profile_uses_the_shipped_file_or_the_override() -> None:
    env: dict[str, str] = {}
    set_ = dds.apply_dds_profile(env)
    shipped = resources.default_dds_profile()
    assert shipped is not None and shipped.name == "fastdds_large_shm.xml"
    assert set_ == {"FASTDDS_DEFAULT_PROFILES_FILE": str(shipped)} and env == set_
    assert dds.apply_dds_profile({"SLIMSEG_DDS_PROFILE": ""}) == {}  # opt out
    assert dds.apply_dds_profile({"SLIMSEG_DDS_PROFILE": "/x.xml"}) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}


def test_shipped_profile_has_a_large_shared_memory_segment() -> None:
    import xml.etree.ElementTree as ET
    root = ET.parse(REPO / "config" / "fastdds_large_shm.xml").getroot()
    ns_ = {"d": "http://www.eprosima.com"}
    sizes = [int(e.text) for e in root.iterfind(".//d:segment_size", ns_)]
    assert sizes and min(sizes) >= 1920 * 1080 * 3 * 4  # several 1080p rgb8 frames
    participant = root.find(".//d:participant", ns_)
    assert participant is not None and participant.get("is_default_profile") == "true"


def test_packaged_files_are_found_where_the_package_lives() -> None:
    params = resources.packaged_file("config", "slimseg.yaml")
    assert params is not None
    assert params.read_text() == (REPO / "config" / "slimseg.yaml").read_text()
    assert resources.packaged_file("config", "no_such_file.yaml") is None
    assert resources.packaged_file("no_such_folder", "slimseg.yaml") is None
    assert resources.default_dds_profile() == resources.packaged_file("config",
                                                                      "fastdds_large_shm.xml")


def test_default_checkpoint_prefers_default_pt_and_explains_absence(tmp_path, monkeypatch) -> None:
    models = tmp_path / "models"
    monkeypatch.setattr(resources, "data_dirs", lambda sub: [models] if models.is_dir() else [])
    with pytest.raises(FileNotFoundError, match="no packaged default model was found"):
        resources.default_checkpoint()
    models.mkdir()
    (models / "a.pt").write_bytes(b"")
    assert resources.default_checkpoint() == models / "a.pt"
    (models / "b.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="several models"):
        resources.default_checkpoint()
    (models / "default.pt").write_bytes(b"")
    assert resources.default_checkpoint() == models / "default.pt"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_yaml_file_sets_known_parameters_with_the_declared_types() -> None:
    data = yaml.safe_load((REPO / "config" / "slimseg.yaml").read_text())
    values = _flatten(data["/**"]["ros__parameters"])
    # parameters whose default is an empty list are shown commented out (with an example)
    commented = {name for name, spec in SPECS.items() if spec.default == []}
    text = (REPO / "config" / "slimseg.yaml").read_text()
    # (governor.* entries inside the governor block, by their own name)
    assert all(f"# {name.removeprefix('governor.')}: [" in text for name in commented), commented
    assert set(values) == set(SPECS) - commented, "config/slimseg.yaml and params.PARAMS differ"
    py_types = {"bool": bool, "int": int, "float": float, "str": str}
    for name, value in values.items():
        spec = SPECS[name]
        if spec.kind in py_types:
            assert type(value) is py_types[spec.kind], f"{name}: {value!r} is not {spec.kind}"
        else:
            inner = {"int_array": int, "float_array": float, "str_array": str}[spec.kind]
            assert all(type(v) is inner for v in value), f"{name}: {value!r}"
        assert value == spec.default, f"{name}: YAML {value!r} != default {spec.default!r}"
        check_value(name, value)
    governor_config_from_params(values)  # the shipped thresholds are valid


README_PARAM_ROW = re.compile(r"^\| `([\w.]+)` \| (\w+) \| `(.*?)` \| (yes|no) \| (.*) \|$", re.M)
README_PARAM_HEADER = "| parameter | type | default | runtime | meaning |"


def readme_parameter_rows(readme: str) -> dict[str, tuple[str, ...]]:
    """
    Return the rows of README's parameter table by name: (type, default, runtime, meaning).

    The table runs from its header to the first line that is not a table row. Every row in it
    must match README_PARAM_ROW and name its parameter once, and no parameter-shaped row may
    stand outside it (one pasted into another table), so a repeated or mistyped row fails
    instead of being dropped or collapsed into its namesake.
    """
    lines = readme.splitlines()
    assert lines.count(README_PARAM_HEADER) == 1, "README needs exactly one parameter table"
    start = lines.index(README_PARAM_HEADER) + 1
    assert lines[start].startswith("|---"), "README's parameter table has no separator line"
    rows: dict[str, tuple[str, ...]] = {}
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            break
        match = README_PARAM_ROW.fullmatch(line)
        assert match, f"malformed row in README's parameter table: {line}"
        assert match[1] not in rows, f"README's parameter table lists {match[1]} twice"
        rows[match[1]] = match.groups()[1:]
    outside = len(README_PARAM_ROW.findall(readme)) - len(rows)
    assert outside == 0, f"{outside} parameter row(s) outside README's parameter table"
    return rows


@pytest.mark.parametrize(("table", "fragment"), [
    ("| `width` | float | `1.0` | yes | A. |\n| `width` | float | `1.0` | yes | A. |", "twice"),
    ("| `width` | float | `1.0` | yes | A. |\n| `width` | float | 1.0 | yes | A. |", "malformed"),
    ("| `width` | float | `1.0` | yes | A. |\n| width | float | `1.0` | yes | A. |", "malformed"),
    ("| `width` | float | `1.0` | yes | A. |\n\n| `cameras` | str_array | `[]` | no | B. |",
     "outside"),
])
def test_readme_parameter_rows_refuse_repeated_and_malformed_rows(table: str,
                                                                  fragment: str) -> None:
    readme = f"# Parameters\n\n{README_PARAM_HEADER}\n|---|---|---|---|---|\n{table}\n\nText.\n"
    with pytest.raises(AssertionError, match=fragment):
        readme_parameter_rows(readme)


def test_parameter_table_is_complete_and_documented() -> None:
    """
    Numeric runtime parameters have ranges, and README's table matches every parameter.

    The table shows each parameter's own type, default, runtime flag, description and
    constraints (what ``ros2 param describe`` prints), so the manual cannot drift from the node.
    """
    for spec in PARAMS + MODEL_PARAMS:
        if spec.kind in ("int", "float") and not spec.read_only:
            assert spec.lo is not None, f"{spec.name} needs a range"
    gov = {s.name.removeprefix("governor.") for s in PARAMS if s.name.startswith("governor.")}
    assert gov == set(GovernorConfig().to_dict())
    readme = (REPO / "README.md").read_text()
    rows = readme_parameter_rows(readme)
    assert set(rows) == set(SPECS), "README's parameter table and params.PARAMS differ"
    for name, (kind, default, runtime, meaning) in rows.items():
        spec = SPECS[name]
        described = spec.description + (f" ({spec.constraints})" if spec.constraints else "")
        assert kind == spec.kind and yaml.safe_load(default) == spec.default, name
        assert runtime == ("no" if spec.read_only else "yes"), name
        assert meaning == described, name
    for spec in MODEL_PARAMS:  # set from the checkpoint, named in the README's text
        assert f"`{spec.name}`" in readme, spec.name


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("image_qos", "sometimes", "choose one of"),
    ("width", 0.0, "(0, 1]"),
    ("width", float("nan"), "NaN"),
    ("input_size", [64], "[height, width]"),
    ("input_size", [64, 0], "[height, width]"),
    ("device", "tpu", "auto, cpu, cuda or cuda:N"),
    ("precision", "int4", "choose one of"),
    ("cameras", ["front", "front"], "repeat"),
    ("cameras", ["/abs"], "relative ROS name"),
    ("camera_priorities", [1.0, float("nan")], "finite"),
    ("host_sensors", "sometimes", "choose one of"),
    ("host_temperature_sensors", ["coretemp/Package id*", " "], "must name a sensor"),
    ("cpu_budget", float("nan"), "NaN"),
])
def test_check_value_names_the_parameter(name: str, value, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        check_value(name, value)
    assert name in str(err.value) and fragment in str(err.value)


def test_camera_priorities_need_one_value_per_camera() -> None:
    check_camera_priorities(["front", "left"], [])  # empty: all equal
    check_camera_priorities(["front", "left"], [2.0, 1.0])
    with pytest.raises(ValueError, match=r"1 value\(s\) \[2.0\] for 2 camera\(s\)"):
        check_camera_priorities(["front", "left"], [2.0])


def test_governor_parameters_map_onto_the_config() -> None:
    cfg = governor_config_from_params({"governor.battery_thresholds": [20, 0.5],
                                       "governor.min_dwell_s": 0.5, "width": 1.0})
    assert cfg.battery_thresholds == ((20.0, 0.5),) and cfg.min_dwell_s == 0.5
    with pytest.raises(ValueError, match="thermal_thresholds"):
        governor_config_from_params({"governor.thermal_thresholds": [80.0, 0.5, 70.0]})


@pytest.mark.parametrize("value, on", [("auto", True), ("off", False), (False, False),
                                       (True, True)])
def test_host_sensors_takes_the_boolean_yaml_makes_of_an_unquoted_off(value, on) -> None:
    """``host_sensors: off`` in YAML or ``-p host_sensors:=off`` arrives as False."""
    from slimseg_ros.ros.params import host_sensors_on
    check_value("host_sensors", value)
    assert host_sensors_on(value) is on
