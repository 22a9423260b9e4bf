"""
Trained widths: a float at the edges, an index inside.

Widths arrive as floats from YAML, ROS messages, JSON files, the command line and checkpoints,
so ``0.5`` may come back as ``0.5000000001``. At those edges a float is turned into a
:class:`Width` once, by :meth:`TrainedWidths.snap` (a request: the nearest trained width not
above it) or :meth:`TrainedWidths.exact` (checkpoint metadata, ``--widths``: the trained width
it names, else an error). Inside (governor, latency store, engine) a width is a :class:`Width`:
its position in the model's ascending width list and its fraction of channels. Widths are
compared, ordered and used as keys by that position; no tolerance compare happens inside.

:data:`TOLERANCE` is used in one place, :func:`_same`, behind ``snap``/``exact`` and the edge
helpers :func:`same_width`, :func:`find_width`, :func:`width_index` and :func:`match_width`
(training, tools and model code that still hold floats). Plain Python, so the governor (no
torch) and the models can both import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Real

TOLERANCE = 1e-6  # two widths closer than this are the same width


@dataclass(frozen=True, order=True)
class Width:
    """
    One trained width: ``index`` in the model's ascending width list, ``value`` its fraction.

    Equality, ordering and hashing go by ``(index, value)``, so the widths of one model compare
    by index. A Width never equals a float: turn floats into widths with
    :meth:`TrainedWidths.snap` or :meth:`TrainedWidths.exact`. ``float(w)`` is the fraction,
    and ``f"{w:g}"`` or ``str(w)`` print it (``0.5``).
    """

    index: int
    value: float

    def __post_init__(self) -> None:
        """Reject an index that is not an int >= 0 and a value outside (0, 1]."""
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"width index must be an int >= 0, got {self.index!r}")
        value = _as_float(self.value)
        if math.isnan(value) or not 0.0 < value <= 1.0:
            raise ValueError(f"width {value} is not in (0, 1]")
        object.__setattr__(self, "value", value)

    def __float__(self) -> float:
        """Return the fraction of channels."""
        return self.value

    def __format__(self, spec: str) -> str:
        """Format the fraction (``g`` for an empty spec)."""
        return format(self.value, spec or "g")

    def __str__(self) -> str:
        """Return the fraction as ``{:g}`` writes it."""
        return f"{self.value:g}"


class TrainedWidths(Sequence[Width]):
    """
    A model's trained widths, ascending, as :class:`Width` values; immutable.

    Built from numbers in (0, 1] (at least one). Widths within :data:`TOLERANCE` of each other
    are merged into the narrower one (the same width written with float noise, or repeated),
    so ``TrainedWidths([1.0, 0.5, 0.5])`` has two widths.
    """

    __slots__ = ("_widths",)

    def __init__(self, widths: Iterable[float | Width]) -> None:
        """Validate, sort and merge ``widths`` (numbers, or widths taken by their value)."""
        values: list[float] = []
        for w in widths:
            v = _as_float(w, "trained width")
            if math.isnan(v) or not 0.0 < v <= 1.0:
                raise ValueError(f"trained width {v:g} must be in (0, 1]")
            values.append(v)
        if not values:
            raise ValueError("need at least one trained width")
        merged: list[float] = []
        for v in sorted(values):
            if not merged or not _same(merged[-1], v):
                merged.append(v)
        self._widths: tuple[Width, ...] = tuple(Width(i, v) for i, v in enumerate(merged))

    # ------------------------------------------------------------------------- the sequence
    def __getitem__(self, i: int | slice) -> Width | tuple[Width, ...]:
        """Return the width at position ``i`` (a tuple of widths for a slice)."""
        return self._widths[i]

    def __len__(self) -> int:
        """Return the number of trained widths."""
        return len(self._widths)

    def __iter__(self) -> Iterator[Width]:
        """Iterate over the widths, narrowest first."""
        return iter(self._widths)

    def __contains__(self, width: object) -> bool:
        """Return True for a :class:`Width` of this list (a float is never in it)."""
        return (isinstance(width, Width) and width.index < len(self._widths)
                and self._widths[width.index] == width)

    def __eq__(self, other: object) -> bool:
        """Return True for another list of the same widths."""
        if not isinstance(other, TrainedWidths):
            return NotImplemented
        return self._widths == other._widths

    def __hash__(self) -> int:
        """Hash the widths."""
        return hash(self._widths)

    def __repr__(self) -> str:
        """Return ``TrainedWidths((0.25, 0.5, ...))``."""
        return f"TrainedWidths({self.values!r})"

    # ------------------------------------------------------------------------- access
    @property
    def values(self) -> tuple[float, ...]:
        """Return the fractions, ascending."""
        return tuple(w.value for w in self._widths)

    @property
    def narrowest(self) -> Width:
        """Return the narrowest trained width."""
        return self._widths[0]

    @property
    def widest(self) -> Width:
        """Return the widest trained width."""
        return self._widths[-1]

    def snap(self, value: float) -> Width:
        """
        Return the nearest trained width not above ``value`` (the narrowest if below all).

        For requests from topics, parameters and config tables. ``value`` within
        :data:`TOLERANCE` of a trained width is that width. Raises ``ValueError`` for NaN,
        values <= 0 or > 1, bools and non-numbers. A :class:`Width` is snapped by its value.
        """
        w = _as_float(value)
        if math.isnan(w) or not 0.0 < w <= 1.0:
            raise ValueError(f"width {w} is not in (0, 1]")
        below = [t for t in self._widths if t.value <= w or _same(t.value, w)]
        return below[-1] if below else self._widths[0]

    def exact(self, value: float) -> Width:
        """
        Return the trained width equal to ``value`` (within :data:`TOLERANCE`).

        For checkpoint metadata and ``--widths``, where a width that was not trained is an
        error: ``ValueError`` naming the trained widths (also for NaN), or saying a non-number
        is not a number. A :class:`Width` is matched by its value.
        """
        w = _as_float(value)
        for t in self._widths:
            if _same(t.value, w):
                return t
        raise ValueError(f"width {value} is not one of the trained widths {list(self.values)}")

    def member(self, width: Width | int) -> Width:
        """
        Return the width of this list that ``width`` names: a :class:`Width` of it, or an index.

        No tolerance: a float raises ``TypeError`` (snap it at the edge with :meth:`snap` or
        :meth:`exact` first); a Width of another list or an index out of range raises
        ``ValueError``.
        """
        if isinstance(width, Width):
            if width not in self:
                raise ValueError(f"{width!r} is not one of the trained widths "
                                 f"{list(self.values)}")
            return width
        if isinstance(width, int) and not isinstance(width, bool):
            if not 0 <= width < len(self._widths):
                raise ValueError(f"width index {width} is outside 0..{len(self._widths) - 1} "
                                 f"(trained widths {list(self.values)})")
            return self._widths[width]
        raise TypeError(f"expected a Width (or its index), got {width!r}: turn a float into a "
                        f"Width once at the edge with TrainedWidths.snap (or .exact)")


# ----------------------------------------------------------------------------- internals
def _as_float(width: object, what: str = "width") -> float:
    if isinstance(width, Width):
        return width.value
    if isinstance(width, bool) or not isinstance(width, Real):
        raise ValueError(f"{what} must be a number, got {width!r}")
    return float(width)


def _same(a: float, b: float) -> bool:
    """Return True when ``a`` and ``b`` are the same width: the one tolerance compare."""
    return math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)


# ----------------------------------------------------------------------------- edges only
def same_width(a: float, b: float) -> bool:
    """
    Return True when ``a`` and ``b`` are the same width (within :data:`TOLERANCE`).

    For edges that still hold floats (training, tools, model code); inside, compare
    :class:`Width` values.
    """
    return _same(float(a), float(b))


def find_width(widths: Sequence[float], width: float) -> float | None:
    """
    Return the entry of ``widths`` equal to ``width``.

    None when there is none (also for NaN and non-numbers). For edges that still hold floats;
    inside, use :meth:`TrainedWidths.exact`.
    """
    try:
        w = _as_float(width)
    except ValueError:
        return None
    return next((t for t in widths if _same(float(t), w)), None)


def width_index(widths: Sequence[float], width: float) -> int:
    """
    Index of the entry of ``widths`` equal to ``width``.

    Raises ``ValueError`` naming the trained widths when there is none (or for a non-number).
    For edges that still hold floats; inside, a :class:`Width` carries its index.
    """
    w = _as_float(width)
    for i, t in enumerate(widths):
        if _same(float(t), w):
            return i
    raise ValueError(f"width {width!r} is not one of the trained widths {list(widths)}")


def match_width(widths: Sequence[float], width: float) -> float:
    """
    Return the trained width equal to ``width``, exactly as ``widths`` lists it.

    ValueError when there is none. For edges that still hold floats; inside, use
    :meth:`TrainedWidths.exact`.
    """
    return widths[width_index(widths, width)]
