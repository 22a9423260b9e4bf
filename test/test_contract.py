"""
The node's contract: diagnostics, topic names, and no tool or node re-typing them.

Diagnostics are written and read back by the same module, and the topic names match the
README.
"""

from __future__ import annotations

import ast
import math
from dataclasses import astuple, fields
from pathlib import Path

import pytest

from slimseg_ros.ros.contract import (KEYS, REJECTED, TOPICS, Diagnostics, HostStatus, LastFrame,
                                      camera_status_name, camera_topics, check_camera_names,
                                      diagnostics_values, is_segmentation_status, read_diagnostics,
                                      status_camera, status_name)
from slimseg_ros.governor.latency import WidthLatency

REPO = Path(__file__).resolve().parents[1]

FULL = Diagnostics(
    active_width=0.5, reason="battery 12% <= 15%", requested_width=1.0,
    caps={"battery": 0.5, "budget": 0.75}, trained_widths=(0.25, 0.5, 0.75, 1.0),
    frames_received=12, frames_processed=9, frames_dropped=3, image_topic="/cam/image",
    image_qos="best_effort", image_publishers=2, device="cpu",
    last_frame=LastFrame(width=0.5, width_px=640, height_px=480, delay_ms=12.5, age_ms=30.25),
    latency={0.25: WidthLatency(q=90.0, pq_ms=4.0, p50_ms=3.5, frames=20),
             1.0: WidthLatency(q=90.0, pq_ms=31.5, p50_ms=20.0, frames=7)},
    frames_at={0.25: 4, 0.5: 5}, rejected={REJECTED.image: 2, REJECTED.width: 1},
    last_rejected={REJECTED.image: "zero-size image",
                   REJECTED.width: "width 7.0 is not in (0, 1]"},
    warnings=("budget input stale (12.0 s old > 10 s): not constraining", "second warning"))


def test_diagnostics_round_trip_through_the_key_values() -> None:
    values = diagnostics_values(FULL)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
    assert read_diagnostics(values) == FULL


def test_values_read_as_users_see_them() -> None:
    values = diagnostics_values(FULL)
    assert values[KEYS.active_width] == "0.5" and values[KEYS.requested_width] == "1"
    assert values[KEYS.caps] == "battery=0.5, budget=0.75"
    assert values[KEYS.trained_widths] == "0.25, 0.5, 0.75, 1"
    assert values[KEYS.last_frame_size] == "640x480"
    assert values[KEYS.latency_at(1.0)] == "p50 20.0, p90 31.5, frames 7"
    assert values[KEYS.frames_at(0.25)] == "4"
    assert values[KEYS.rejected(REJECTED.image)] == "2"
    assert values[KEYS.last_rejected(REJECTED.width)] == "width 7.0 is not in (0, 1]"
    assert list(values)[:2] == [KEYS.active_width, KEYS.reason]
    assert list(values)[-1] == KEYS.warnings
    empty = diagnostics_values(Diagnostics(active_width=1.0, reason="request 1"))
    assert empty[KEYS.caps] == "none" and empty[KEYS.warnings] == "none"
    assert KEYS.last_frame_width not in empty


def test_reading_tolerates_missing_and_unreadable_values() -> None:
    assert read_diagnostics({}) == Diagnostics()
    d = read_diagnostics({KEYS.active_width: "n/a", KEYS.frames_dropped: "many",
                          KEYS.latency_at(0.5): "fast", KEYS.last_frame_size: "big",
                          KEYS.last_frame_width: "0.5", "some other key": "x"})
    assert d.active_width is None and d.frames_dropped == 0
    assert d.latency == {} and d.last_frame is None
    nan_age = diagnostics_values(Diagnostics(last_frame=LastFrame(1.0, 4, 3, 1.0, math.nan)))
    assert math.isnan(read_diagnostics(nan_age).last_frame.age_ms)


def test_latency_is_labelled_with_the_governors_percentile() -> None:
    other_q = {0.5: WidthLatency(q=95.0, pq_ms=9.5, p50_ms=4.0, frames=3),
               1.0: WidthLatency(q=50.0, pq_ms=4.0, p50_ms=4.0, frames=3)}
    values = diagnostics_values(Diagnostics(latency=other_q))
    assert values[KEYS.latency_at(0.5)] == "p50 4.0, p95 9.5, frames 3"
    assert values[KEYS.latency_at(1.0)] == "p50 4.0, frames 3"
    assert read_diagnostics(values).latency == other_q


def test_host_cpu_budget_and_decided_by_round_trip_as_users_see_them() -> None:
    temperature = "71.0C coretemp/Package id 0 (high 100C, critical 100C)"
    host = HostStatus(cores=2, cpu_budget=0.4, node_cpu_share=0.125, node_memory_mb=312.5,
                      battery="unavailable", temperature=temperature,
                      battery_source="none", thermal_source="host")
    d = Diagnostics(active_width=0.5, reason="cpu budget 40%: cpu at 0.5 = 31.2% <= 36.0%",
                    decided_by=("cpu budget",), cpu_share={0.5: 0.312, 1.0: 0.625},
                    latency={0.5: WidthLatency(q=90.0, pq_ms=4.0, p50_ms=3.5, frames=20,
                                               cpu_ms=6.5)}, host=host)
    values = diagnostics_values(d)
    assert read_diagnostics(values) == d
    assert values[KEYS.decided_by] == "cpu budget"
    assert values[KEYS.cpu_budget] == "40.0%" and values[KEYS.node_cpu_share] == "12.5%"
    assert values[KEYS.cpu_share_at(0.5)] == "31.2%"
    assert values[KEYS.latency_at(0.5)] == "p50 3.5, p90 4.0, frames 20, cpu 6.5"
    assert values[KEYS.host_battery] == "unavailable" and values[KEYS.thermal_source] == "host"
    missing = diagnostics_values(Diagnostics(host=HostStatus(cores=4)))
    assert missing[KEYS.cpu_budget] == "none" and missing[KEYS.node_cpu_share] == "unavailable"
    assert read_diagnostics(missing).host == HostStatus(cores=4)  # never read back as 0
    assert KEYS.usable_cores not in diagnostics_values(FULL)  # a camera status has no host


def test_status_name() -> None:
    assert status_name("slimseg_node") == "slimseg_node: segmentation"
    assert is_segmentation_status(status_name("front_camera_segmenter"))
    assert not is_segmentation_status("slimseg_node: something else")


def test_camera_statuses_round_trip_and_are_told_apart() -> None:
    cam = Diagnostics(active_width=0.5, reason="budget 40ms, share 12.0ms: ...", camera="front",
                      priority=2.0, frames_dropped=4)
    shared = Diagnostics(reason="front 0.5; left 1", cameras=("front", "left"))
    for d in (cam, shared):
        assert read_diagnostics(diagnostics_values(d)) == d
    assert KEYS.camera not in diagnostics_values(FULL)  # single camera: today's keys only
    name = camera_status_name("slimseg_node", "roof/front")
    assert status_camera(name) == "roof/front" and not is_segmentation_status(name)
    assert status_camera(status_name("slimseg_node")) is None


def test_camera_topics_sit_below_the_camera_name() -> None:
    single = camera_topics("")
    assert (single.image, single.mask, single.width) == (TOPICS.image, TOPICS.mask, None)
    front = camera_topics("front")
    assert front.image == "front/" + TOPICS.image
    assert front.compressed_image == "front/" + TOPICS.compressed_image
    assert front.active_width == "front/" + TOPICS.active_width
    assert front.width == "front/" + TOPICS.width
    check_camera_names(["front", "rear_left", "roof/front"])


@pytest.mark.parametrize(("names", "fragment"), [
    (["front", "front"], "repeat ['front']"), (["/front"], "not a relative ROS name"),
    (["2nd"], "not a relative ROS name"), ([""], "not a relative ROS name"),
    (["front cam"], "not a relative ROS name"), (["a//b"], "not a relative ROS name")])
def test_bad_camera_names_are_named(names, fragment) -> None:
    with pytest.raises(ValueError) as err:
        check_camera_names(names)
    assert fragment in str(err.value)


README_TOPIC_HEADER = "| topic | type | direction | QoS | meaning |"


def readme_topic_names(text: str) -> list[str]:
    """
    Return the topic names of README's topic table (the table of its "## Topics" section).

    Every row must have its five cells, a name in backticks and a direction (in or out), and
    name its topic once, so a repeated or mistyped row fails instead of being collapsed or
    dropped.
    """
    section = text.split("## Topics", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert table[:1] == [README_TOPIC_HEADER], "README's topic table has another header"
    assert table[1:2] and table[1].startswith("|---"), "README's topic table has no separator"
    names: list[str] = []
    for line in table[2:]:
        cells = [cell.strip() for cell in line.split("|")]
        name = cells[1] if len(cells) == 7 else ""
        well_formed = (cells[0] == cells[-1] == "" and all(cells[1:-1]) and len(name) > 2
                       and name[0] == name[-1] == "`" and "`" not in name[1:-1]
                       and cells[3] in ("in", "out"))
        assert well_formed, f"malformed row in README's topic table: {line}"
        assert name[1:-1] not in names, f"README's topic table lists {name} twice"
        names.append(name[1:-1])
    return names


@pytest.mark.parametrize(("rows", "fragment"), [
    ("| `image` | sensor_msgs/Image | in | depth 1 | frames |\n"
     "| `image` | sensor_msgs/Image | in | depth 1 | frames |", "twice"),
    ("| `image` | sensor_msgs/Image | in | depth 1 | frames |\n"
     "| `slimseg/mask` | sensor_msgs/Image | out | depth 1 |", "malformed"),
    ("| `image` | sensor_msgs/Image | in | depth 1 | frames |\n"
     "| slimseg/mask | sensor_msgs/Image | out | depth 1 | masks |", "malformed"),
    ("| `image` | sensor_msgs/Image | sideways | depth 1 | frames |", "malformed"),
])
def test_readme_topic_names_refuse_repeated_and_malformed_rows(rows: str, fragment: str) -> None:
    text = f"## Topics\n\n{README_TOPIC_HEADER}\n|---|---|---|---|---|\n{rows}\n\n## Next\n"
    with pytest.raises(AssertionError, match=fragment):
        readme_topic_names(text)


def test_readme_topic_table_lists_exactly_the_contract_topics() -> None:
    listed = readme_topic_names((REPO / "README.md").read_text())
    assert set(listed) == set(astuple(TOPICS))


def _string_constants(path: Path) -> set[str]:
    """Return the string literals of a module other than docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings}


@pytest.mark.parametrize("module", sorted(
    str(p.relative_to(REPO)) for p in (REPO / "slimseg_ros" / "ros").glob("*.py")
    # rejections.py writes the log line "rejected <kind>: ...", not a diagnostics key
    if p.name not in ("contract.py", "rejections.py")) + [
        "slimseg_ros/tools/dds_bench.py", "test/node_harness.py", "test/test_node.py",
        "test/test_node_cameras.py", "test/test_node_process.py", "test/test_core_policy.py"])
def test_topic_names_and_keys_are_not_retyped(module: str) -> None:
    names = {getattr(TOPICS, f.name) for f in fields(TOPICS)}
    # one-word keys ("device", "reason") are ordinary words there too (a parameter, a field)
    names |= {getattr(KEYS, f.name) for f in fields(KEYS) if " " in getattr(KEYS, f.name)}
    retyped = _string_constants(REPO / module) & names
    assert not retyped, f"{module} re-types {sorted(retyped)}; import them from contract"
