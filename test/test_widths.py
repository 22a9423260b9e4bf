"""
Trained widths: a float is snapped once at the edge, inside a width is an index.

Covers :class:`Width` (formatting, ordering), :class:`TrainedWidths` (building, ``snap``,
``exact``, ``member``) and the edge helpers that still match floats with the one tolerance.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from slimseg_ros.widths import (TOLERANCE, TrainedWidths, Width, find_width, match_width,
                                same_width, width_index)

TRAINED = (0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("value, expected", [
    (0.5, 0.5), (0.5000000001, 0.5), (0.4999999, 0.5), (1, 1.0), (0.3, None), (0.501, None),
    (0.5 + 2 * TOLERANCE, None), (math.nan, None), (math.inf, None), ("0.5", None),
    (True, None), (None, None),
])
def test_find_width(value, expected) -> None:
    assert find_width(TRAINED, value) == expected


def test_match_returns_the_listed_width_and_index_names_the_trained_ones() -> None:
    assert match_width(TRAINED, 0.75 + 1e-9) == 0.75
    assert width_index(TRAINED, 0.25) == 0 and width_index(TRAINED, 1.0) == 3
    with pytest.raises(ValueError, match=r"width 0.3 is not one of the trained widths \[0.25"):
        width_index(TRAINED, 0.3)
    for bad in ("wide", None, True):
        with pytest.raises(ValueError, match="width must be a number"):
            width_index(TRAINED, bad)
    assert same_width(0.5, 0.5000001) and not same_width(0.5, 0.50001)


def test_models_reject_near_duplicate_widths() -> None:
    from slimseg_ros.models.slimmable import validate_widths
    assert validate_widths([1.0, 0.5]) == (0.5, 1.0)
    with pytest.raises(ValueError, match="duplicate"):
        validate_widths([0.5, 1.0, 0.5000000001])


def test_widths_import_nothing_heavy() -> None:
    code = ("import sys, slimseg_ros.widths; "
            "bad = [m for m in ('torch', 'numpy', 'rclpy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------- Width
def test_a_width_prints_its_fraction_and_orders_by_index() -> None:
    ws = TrainedWidths(TRAINED)
    half, full = ws[1], ws[3]
    assert (half.index, half.value) == (1, 0.5) and float(full) == 1.0
    assert f"{half:g}" == "0.5" and f"{full:g}" == "1" and f"{half}" == "0.5"
    assert str(full) == "1" and f"{half:.2f}" == "0.50" and f"{half:>5}" == "  0.5"
    assert repr(half) == "Width(index=1, value=0.5)"
    assert ws[0] < half < ws[2] < full and max(ws) == full and min(ws) == ws.narrowest
    assert half == Width(1, 0.5) and hash(half) == hash(Width(1, 0.5))
    assert half != 0.5 and 0.5 not in ws  # never equal to a float: snap it first
    with pytest.raises(TypeError):
        _ = half < 0.75
    assert {half: "x"}[TrainedWidths([1.0, 0.5, 0.75, 0.25])[1]] == "x"  # same model: same key


@pytest.mark.parametrize("index, value", [(-1, 0.5), (True, 0.5), (1.0, 0.5), (0, 0.0),
                                          (0, 1.5), (0, math.nan), (0, "0.5")])
def test_a_width_is_validated(index, value) -> None:
    with pytest.raises(ValueError):
        Width(index, value)


# ---------------------------------------------------------------------------------- TrainedWidths
def test_trained_widths_are_sorted_merged_and_validated() -> None:
    ws = TrainedWidths([1.0, 0.25, 0.75, 0.5, 0.5, 0.5000000001])
    assert ws.values == TRAINED and len(ws) == 4  # near-duplicates merged into the narrower
    assert list(ws) == [Width(i, v) for i, v in enumerate(TRAINED)]
    assert ws[-1] is ws.widest and ws.widest == Width(3, 1.0) and ws.narrowest == Width(0, 0.25)
    assert ws[1:3] == (Width(1, 0.5), Width(2, 0.75))
    assert repr(ws) == "TrainedWidths((0.25, 0.5, 0.75, 1.0))"
    assert ws == TrainedWidths(TRAINED) == TrainedWidths(ws) and ws != TRAINED
    assert TrainedWidths([1]).values == (1.0,)
    for bad, message in (([], "at least one"), ([0.0, 1.0], "must be in"),
                         ([1.5], "must be in"), ([math.nan], "must be in"),
                         ([True], "must be a number"), (["0.5"], "must be a number")):
        with pytest.raises(ValueError, match=message):
            TrainedWidths(bad)


@pytest.mark.parametrize("value, expected", [
    (1.0, 1.0), (0.75, 0.75), (0.8, 0.75), (0.74, 0.5), (0.6, 0.5), (0.5, 0.5),
    (0.5000000001, 0.5), (0.4999999999, 0.5), (0.3, 0.25), (0.25, 0.25), (0.1, 0.25),
    (1e-9, 0.25), (0.7499999999, 0.75), (1, 1.0),
])
def test_snap_is_the_nearest_trained_width_not_above(value, expected) -> None:
    ws = TrainedWidths(TRAINED)
    got = ws.snap(value)
    assert isinstance(got, Width) and got.value == expected and got in ws
    assert ws.snap(got) == got  # a width snaps to itself


@pytest.mark.parametrize("bad, message", [
    (math.nan, "not in"), (0.0, "not in"), (-0.5, "not in"), (1.5, "not in"),
    (1.0001, "not in"), (math.inf, "not in"), (True, "must be a number"),
    ("0.5", "must be a number"), (None, "must be a number"),
])
def test_snap_rejects_what_is_not_a_width(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        TrainedWidths(TRAINED).snap(bad)


def test_exact_names_a_trained_width_or_the_trained_ones() -> None:
    ws = TrainedWidths(TRAINED)
    assert ws.exact(0.5000000001) == ws[1] and ws.exact(1) == ws.widest
    assert ws.exact(0.4999999) == ws[1]
    for bad in (0.6, 0.3, 0.5 + 2 * TOLERANCE, math.nan, 1.5):
        with pytest.raises(ValueError, match=r"is not one of the trained widths \[0.25, 0.5"):
            ws.exact(bad)
    for bad in ("wide", None, True):
        with pytest.raises(ValueError, match="width must be a number"):
            ws.exact(bad)


def test_member_takes_a_width_or_an_index_never_a_float() -> None:
    ws = TrainedWidths(TRAINED)
    assert ws.member(ws[2]) is ws[2] and ws.member(2) == ws[2]
    assert ws.member(TrainedWidths(TRAINED)[2]) == ws[2]
    with pytest.raises(TypeError, match="TrainedWidths.snap"):
        ws.member(0.75)
    with pytest.raises(TypeError):
        ws.member(True)
    with pytest.raises(ValueError, match="not one of the trained widths"):
        ws.member(TrainedWidths((0.5, 1.0))[1])  # index 1 is 0.5 here
    with pytest.raises(ValueError, match="outside 0..3"):
        ws.member(4)


def test_edge_helpers_take_a_width_by_its_value() -> None:
    ws = TrainedWidths(TRAINED)
    assert width_index(TRAINED, ws[2]) == 2 and find_width(TRAINED, ws[1]) == 0.5
    assert same_width(ws[3], 1.0)
