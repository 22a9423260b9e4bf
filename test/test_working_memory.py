"""Which operating points hold their working memory: pure, on times passed in."""

from __future__ import annotations

import math

import pytest

from slimseg_ros.inference.working_memory import WorkingMemory
from slimseg_ros.widths import TrainedWidths

W = TrainedWidths([0.25, 0.5, 1.0])
FULL, SMALL, POINT = (W[2], None), (W[0], None), (W[2], (16, 24))


def memory(idle_s: float = 10.0, enabled: bool = True) -> tuple[WorkingMemory, list]:
    released: list[list] = []
    return WorkingMemory(lambda steps: released.append(list(steps)) or len(steps), idle_s,
                         enabled), released


def test_a_step_is_cold_on_its_first_frame_and_after_a_release_warm_otherwise() -> None:
    mem, released = memory(idle_s=10.0)
    assert mem.enabled and mem.held == []
    assert mem.served(FULL, 0.0) is False  # its memory was handed back after the warm-up
    assert mem.served(FULL, 1.0) is True
    assert mem.served(POINT, 2.0) is False and mem.held == [FULL, POINT]
    assert mem.release_idle(11.0) == [FULL]  # idle 10 s; the point only 9 s
    assert released == [[FULL]] and mem.held == [POINT]
    assert mem.served(FULL, 11.5) is False  # allocated again: cold once more
    assert mem.served(FULL, 11.6) is True


def test_a_step_a_camera_decides_for_keeps_its_memory_however_long_idle() -> None:
    mem, released = memory(idle_s=5.0)
    mem.served(FULL, 0.0)
    mem.served(SMALL, 0.0)
    assert mem.release_idle(100.0, keep=[SMALL]) == [FULL]
    assert mem.held == [SMALL] and released == [[FULL]]
    assert mem.release_idle(200.0, keep=[SMALL]) == [] and released == [[FULL]]


def test_nothing_is_released_before_idle_s_and_all_idle_steps_go_in_one_call() -> None:
    mem, released = memory(idle_s=2.0)
    for step, t in ((FULL, 0.0), (SMALL, 0.5), (POINT, 1.0)):
        mem.served(step, t)
    assert mem.release_idle(1.9) == [] and released == []
    assert mem.release_idle(2.6) == [FULL, SMALL]  # idle 2.6 and 2.1 s; the point 1.6 s
    assert mem.release_idle(2.6) == []  # already gone: nothing released twice
    assert mem.release_idle(10.0) == [POINT]
    assert released == [[FULL, SMALL], [POINT]]


@pytest.mark.parametrize(("idle_s", "enabled"), [(0.0, True), (10.0, False)])
def test_switched_off_every_frame_is_warm_and_nothing_is_released(idle_s, enabled) -> None:
    mem, released = memory(idle_s, enabled)
    assert not mem.enabled
    assert all(mem.served(FULL, t) for t in (0.0, 1.0, 100.0))
    assert mem.release_idle(1e6) == [] and released == [] and mem.held == []


@pytest.mark.parametrize("idle_s", [-1.0, math.nan, math.inf, "10"])
def test_a_bad_idle_time_is_one_sentence(idle_s) -> None:
    with pytest.raises(ValueError, match="idle_s must be a finite number >= 0"):
        WorkingMemory(lambda steps: 0, idle_s)
