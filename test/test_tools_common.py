"""
The helpers every tool shares (slimseg_ros.tools.common) and the benches' HxW sizes.

Sizes are height first everywhere; tables have one writer; a worker's JSON comes back from a
fresh process; rclpy goes up and down on a context of its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from node_harness import pick_domain_id
from slimseg_ros.tools import cpu_share_bench, multicam_bench
from slimseg_ros.tools.common import (RosSession, SizeError, describe_size, escape_cell,
                                      format_size, json_worker_main, last_json_line,
                                      markdown_header, markdown_row, markdown_table, parse_size,
                                      run_json_worker, size_arg)
from slimseg_ros.tools.node_bench import frame_text, on_own_domains, write_figures

REPO = Path(__file__).resolve().parents[1]


def test_sizes_are_height_by_width() -> None:
    assert parse_size("480x640") == (480, 640)
    assert parse_size(" 720 X 1280 ") == (720, 1280)
    assert size_arg("1080x1920") == (1080, 1920)
    assert format_size(480, 640) == "480x640"
    assert describe_size(480, 640) == "height 480, width 640"


@pytest.mark.parametrize(("text", "says"), [
    ("640", "size must be HxW (height x width), e.g. 480x640; got '640'"),
    ("480x640x3", "HxW (height x width)"),
    ("480 by 640", "HxW (height x width)"),
    ("", "HxW (height x width)"),
    ("0x640", "size must be positive: got '0x640' (height 0, width 640)"),
    ("480x-640", "size must be positive: got '480x-640' (height 480, width -640)"),
])
def test_bad_sizes_say_what_a_size_is(text: str, says: str) -> None:
    with pytest.raises(SizeError) as err:
        parse_size(text)
    assert says in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, argparse.ArgumentTypeError)


def test_a_minimum_size_is_named() -> None:
    assert parse_size("8x8", minimum=8) == (8, 8)
    with pytest.raises(SizeError, match=">= 8 pixels each: got '4x640'"):
        parse_size("4x640", minimum=8)


def test_argparse_shows_the_size_message(capsys) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=size_arg)
    assert parser.parse_args(["--size", "480x640"]).size == (480, 640)
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "640"])
    assert "argument --size: size must be HxW (height x width)" in capsys.readouterr().err


def test_markdown_table_text() -> None:
    assert markdown_table(("width", "ms", "note"), [(0.25, "1.5", "a|b"), (1, "", "-")],
                          "rrl") == ("| width | ms | note |\n"
                                     "|---:|---:|---|\n"
                                     "| 0.25 | 1.5 | a|b |\n"
                                     "| 1 | | - |")
    assert markdown_table(["a", "b"], [], "c") == "| a | b |\n|:---:|:---:|"
    assert markdown_header(["a", "b"]) == "| a | b |\n|---|---|"
    assert markdown_row(["x", "", 3]) == "| x | | 3 |"
    assert escape_cell("a|b\nc") == "a\\|b<br>c"
    with pytest.raises(ValueError, match="one of l, r, c per column"):
        markdown_header(["a", "b"], "lrl")
    with pytest.raises(ValueError, match="one of l, r, c per column"):
        markdown_header(["a"], "x")


def test_both_benches_read_480x640_as_height_480_width_640(capsys) -> None:
    for bench in (multicam_bench, cpu_share_bench):
        parser = bench.build_parser()
        assert parser.parse_args([]).size == (480, 640), bench.__name__  # the default
        assert parser.parse_args(["--size", "480x640"]).size == (480, 640)
        assert parser.parse_args(["--size", "720x1280"]).size == (720, 1280)
        assert "HxW" in parser.format_help()
        with pytest.raises(SystemExit):
            parser.parse_args(["--size", "0x640"])
        assert "size must be positive" in capsys.readouterr().err
    assert frame_text((480, 640)) == "480x640 rgb8 (height 480, width 640)"


def test_bench_json_keeps_the_size_height_first_and_spelt_out(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    write_figures(out, {"size": (480, 640), "checkpoint": Path("/models/default.pt"),
                        "rate": 10.0}, "rows", [{"width": 0.5}])
    data = json.loads(out.read_text())
    assert data["settings"]["size"] == [480, 640]
    assert data["settings"]["frame"] == "height 480, width 640"
    assert data["settings"]["checkpoint"] == "default.pt" and data["rows"] == [{"width": 0.5}]


def test_each_case_gets_its_own_domain_within_1_to_100() -> None:
    got = [(item, domain) for item, domain, log_dir in on_own_domains("abc", 99, "t_")]
    assert got == [("a", 99), ("b", 100), ("c", 1)]


def test_last_json_line() -> None:
    assert last_json_line('noise\n{"a": 1}\n\n') == {"a": 1}
    with pytest.raises(ValueError):
        last_json_line("\n  \n")


def test_a_worker_answers_in_a_fresh_process(tmp_path: Path) -> None:
    (tmp_path / "probe_worker.py").write_text(
        "import os, sys\n"
        "from slimseg_ros.tools.common import json_worker_main\n"
        "def work(p):\n"
        "    if p.get('fail'):\n"
        "        raise SystemExit('asked to fail')\n"
        "    return {'twice': 2 * p['x'], 'threads': os.environ.get('OMP_NUM_THREADS')}\n"
        "print('some log line')\n"
        "sys.exit(json_worker_main(sys.argv[1:], '--probe', work))\n")
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "OMP_NUM_THREADS": "3"}
    assert run_json_worker("probe_worker", "--probe", {"x": 21}, env=env) == {
        "twice": 42, "threads": "3"}
    with pytest.raises(RuntimeError, match="probe worker failed: asked to fail"):
        run_json_worker("probe_worker", "--probe", {"fail": True}, env=env, what="probe")
    assert json_worker_main(["--other"], "--probe", lambda p: p) is None


def test_common_imports_without_rclpy() -> None:
    """The export command and the FLOPs table use the helpers on machines without ROS."""
    code = ("import sys; sys.modules['rclpy'] = None\n"
            "import slimseg_ros.tools.common, slimseg_ros.tools.export_cli\n"
            "print(slimseg_ros.tools.common.parse_size('480x640'))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(480, 640)"


def test_ros_session_spins_and_tears_down_once() -> None:
    pytest.importorskip("rclpy")
    from std_msgs.msg import String

    heard: list[str] = []
    with RosSession(domain_id=pick_domain_id()) as ros:
        node = ros.node("tools_common_probe")
        node.create_subscription(String, "tools_common_probe", lambda m: heard.append(m.data),
                                 10)
        pub = node.create_publisher(String, "tools_common_probe", 10)
        assert not ros.spin_until(lambda: False, timeout=0.1)
        calls: list[int] = []
        ros.spin_for(0.3, lambda: calls.append(1), period=0.1)
        assert 2 <= len(calls) <= 4

        def publish_and_check() -> bool:
            pub.publish(String(data="hello"))
            return bool(heard)

        assert ros.spin_until(publish_and_check, timeout=10)
    assert ros.closed and not ros.context.ok() and ros.nodes == []
    ros.close()  # a second close does nothing
