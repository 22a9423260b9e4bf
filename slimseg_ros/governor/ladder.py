"""
The governor's steps: trained widths, or a ladder of (width, input size) operating points.

A width at a smaller network input can be faster *and* more accurate than a narrower width at
the full input (``docs/resolution.md``). A model measured that way carries a *ladder*: the
points of its accuracy/latency front, each a trained width at an input size with the latency
the sweep measured. The governor then works on :class:`Rung` steps instead of widths:

* every trained width at the full input is a rung (what a width request or a cap means), and
  so is every ladder point; all of them are ordered by their measured cost, and a rung's
  ``value`` is that cost relative to the costliest rung (the widest width at the full input),
  so the budget rule's estimates scale by cost, as they scale by width without a ladder;
* the caps (request, battery, thermal) bound the *width*: under a bound ``b`` a camera may run
  the ladder points of widths up to ``b`` that cost less than ``b`` at the full input, and
  ``b`` at the full input (:meth:`Ladder.candidates`); the latency and CPU budgets choose among
  those. With no budget the top candidate, ``b`` at the full input, runs: the same as without a
  ladder.

Without a ladder the steps are the trained widths themselves (:class:`~slimseg_ros.widths.Width`
values), and the governor behaves exactly as it did before ladders existed. Plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..widths import TrainedWidths, Width

__all__ = ["Ladder", "Rung", "Step", "input_text"]


def input_text(size: tuple[int, int] | None) -> str:
    """Return ``"184x240"`` for an input size (height, width), ``"full"`` for None."""
    return "full" if size is None else f"{size[0]}x{size[1]}"


@dataclass(frozen=True, order=True)
class Rung:
    """
    One operating point: ``width`` at network input ``input_size`` (None: the full input).

    Compared, ordered and hashed by ``index`` (its position in cost order) and ``value`` (its
    cost relative to the costliest rung, in (0, 1]); ``f"{rung:g}"`` writes ``0.75`` at the full
    input and ``0.75@224x304`` at a reduced one.
    """

    index: int
    value: float
    width: Width = field(compare=False)
    input_size: tuple[int, int] | None = field(compare=False, default=None)

    @property
    def full(self) -> bool:
        """Tell whether this rung runs the full network input."""
        return self.input_size is None

    def __format__(self, spec: str) -> str:
        """Write the width (``spec`` formats it) and, at a reduced input, ``@HxW``."""
        text = format(self.width.value, spec or "g")
        return text if self.full else f"{text}@{input_text(self.input_size)}"

    def __str__(self) -> str:
        """Return ``format(self, "g")``."""
        return format(self, "g")


Step = Width | Rung  # what the governor decides: a width, or a rung of a ladder


class Ladder:
    """
    The governor's steps for one model: its trained widths, or rungs when it has a ladder.

    ``points`` are ``(width, (height, width_px), cost)`` ladder points at reduced inputs and
    ``full_cost`` each trained width's cost at the full input (the same units, e.g. p50 ms of
    one sweep). Without points the steps are ``widths`` themselves.
    """

    def __init__(self, widths: TrainedWidths,
                 points: Iterable[tuple[Width, tuple[int, int], float]] = (),
                 full_cost: dict[Width, float] | None = None) -> None:
        self.widths = widths
        points = list(points)
        if not points:
            self._steps: tuple[Step, ...] = tuple(widths)
            self._full: dict[Width, Step] = {w: w for w in widths}
            return
        full_cost = dict(full_cost or {})
        missing = [f"{w:g}" for w in widths if w not in full_cost]
        if missing:
            raise ValueError(f"a ladder needs the full-input cost of every width; missing "
                             f"{', '.join(missing)}")
        entries: list[tuple[float, int, int, Width, tuple[int, int] | None]] = []
        seen = set()
        for width, size, cost in points:
            width = widths.member(width)
            h, w = (int(v) for v in size)
            if h < 1 or w < 1 or (width, (h, w)) in seen:
                raise ValueError(f"ladder point {width:g}@{h}x{w} is repeated or not a size")
            seen.add((width, (h, w)))
            entries.append((_cost(cost, f"{width:g}@{h}x{w}"), width.index, 0, width, (h, w)))
        for width in widths:
            entries.append((_cost(full_cost[width], f"{width:g}"), width.index, 1, width, None))
        entries.sort(key=lambda e: e[:3])
        top = max(e[0] for e in entries)
        self._steps = tuple(Rung(i, e[0] / top, e[3], e[4]) for i, e in enumerate(entries))
        self._full = {s.width: s for s in self._steps if isinstance(s, Rung) and s.full}

    # ------------------------------------------------------------------------- access
    @property
    def has_points(self) -> bool:
        """Tell whether there are reduced-input points (False: widths only)."""
        return not isinstance(self._steps[0], Width)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Every step, cheapest first."""
        return self._steps

    @property
    def cheapest(self) -> Step:
        """Return the cheapest step (the narrowest width without a ladder)."""
        return self._steps[0]

    def full(self, width: Width) -> Step:
        """Return ``width`` at the full input."""
        return self._full[self.widths.member(width)]

    @staticmethod
    def width_of(step: Step) -> Width:
        """Return the trained width a step runs."""
        return step.width if isinstance(step, Rung) else step

    @staticmethod
    def input_of(step: Step) -> tuple[int, int] | None:
        """Return the network input a step runs (None: the full input)."""
        return step.input_size if isinstance(step, Rung) else None

    def candidates(self, bound: Width, points: bool = True) -> Sequence[Step]:
        """
        Return the steps the budgets may choose from under width ``bound``, cheapest first.

        Without a ladder: every width (the budget rule compares them all; the bound is applied
        after it). With one: the points of widths up to ``bound`` that cost less than ``bound``
        at the full input, then ``bound`` at the full input; with ``points`` False (not prepared
        yet) every width at the full input, as without a ladder.
        """
        if not self.has_points:
            return self._steps
        if not points:
            return [self._full[w] for w in self.widths]
        top = self.full(bound)
        return [s for s in self._steps
                if s.index < top.index and s.width <= bound and not s.full] + [top]

    def member(self, key: Step | int) -> Step:
        """
        Return the step ``key`` names.

        A step of this ladder; a :class:`Width` (its full-input step); an int: a width's index
        without a ladder, a rung's index with one. A float raises ``TypeError``, a step of
        another model ``ValueError``.
        """
        if isinstance(key, Rung):
            if not (0 <= key.index < len(self._steps) and self._steps[key.index] == key):
                raise ValueError(f"{key!r} is not a rung of this ladder")
            return key
        if isinstance(key, Width):
            return self.full(key)
        if isinstance(key, int) and not isinstance(key, bool) and self.has_points:
            if not 0 <= key < len(self._steps):
                raise ValueError(f"rung index {key} is outside 0..{len(self._steps) - 1}")
            return self._steps[key]
        return self.widths.member(key)

    def describe(self) -> str:
        """Return the steps in cost order as text (``0.25@184x240 < ... < 1``)."""
        return " < ".join(f"{s:g}" for s in self._steps)


def _cost(value: object, what: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"ladder cost of {what} must be a number > 0, got {value!r}")
    return v
