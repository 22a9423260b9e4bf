"""
Operating points beside the widths: (width, network input size) pairs, stored with the model.

A smaller network input is a second knob beside the width that needs no training: the sweep of
every (width, input size) point (:mod:`slimseg_ros.tools.resolution_sweep`, docs/resolution.md)
found that the reduced-input points make up most of the accuracy/latency front. A *ladder* is
that front's reduced-input points with the latency (p50) and val mIoU they were measured at, plus
every width's figures at the full input, so the node's governor can order all of them by cost.

It is stored with the model: beside a checkpoint as ``NAME.ladder.json`` (:func:`ladder_path_for`),
in a bundle under ``bundle.json``'s ``"ladder"`` key (with a graph per point). Both engines read
it, prepare a graph (or a preprocessing size) per point and run a point where a call names one.
This module reads, checks and writes the JSON; it imports neither torch nor anything that does.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

LADDER_FORMAT = "slimseg-ladder"
LADDER_VERSION = 1
LADDER_SUFFIX = ".ladder.json"
LADDER_SPLIT = "val"  # operating points are chosen on val, never on test
SIZE_MULTIPLE = 8  # the frame graph's fast upsample needs whole multiples of the logits
WRITE_COMMAND = ("python -m slimseg_ros.tools.resolution_sweep --from SWEEP_JSON "
                 "--write-ladder {target}")


class LadderError(ValueError):
    """A ladder that cannot be used; the message names the file and says what is wrong."""


@dataclass(frozen=True)
class LadderPoint:
    """One operating point: a trained width run at a reduced network input size."""

    width: float
    input_size: tuple[int, int]
    latency_ms: float
    miou: float | None = None

    @property
    def key(self) -> str:
        """Return the point's name in files and messages, e.g. ``0.25@184x240``."""
        return point_key(self.width, self.input_size)


@dataclass(frozen=True)
class LadderSpec:
    """A model's ladder: its reduced-input points, cheapest first, and the full-input figures."""

    input_size: tuple[int, int]
    points: tuple[LadderPoint, ...]
    full_latency_ms: dict[float, float]
    measured_on: str
    source: str
    full_miou: dict[float, float | None] = field(default_factory=dict)

    def sizes_of(self, width: float) -> list[tuple[int, int]]:
        """Return the input sizes of ``width``'s points, cheapest first."""
        return [p.input_size for p in self.points if p.width == width]

    def describe(self) -> str:
        """Say which points the ladder holds, e.g. ``0.25@184x240, 0.5@184x240``."""
        return ", ".join(p.key for p in self.points) or "none"


def point_key(width: float, size: Sequence[int]) -> str:
    """Return ``"<width:g>@<h>x<w>"``, a point's key in ``bundle.json`` and in messages."""
    return f"{float(width):g}@{int(size[0])}x{int(size[1])}"


def ladder_path_for(checkpoint: str | os.PathLike) -> Path:
    """Return where a checkpoint's ladder lives: ``models/default.pt`` -> ``.ladder.json``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + LADDER_SUFFIX)


def _number(value: Any) -> float | None:
    """Return ``value`` as a finite float, None where it is no finite number (bools too)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _size(value: Any) -> tuple[int, int] | None:
    """Return ``value`` as two positive ints (h, w), None where it is not that."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return None
    return int(value[0]), int(value[1])


def _text(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def _width(value: Any, trained: list[float], where: str) -> float:
    """Return the trained width ``value`` names, or raise one :class:`LadderError` sentence."""
    number = _number(value)
    match = None if number is None else next(
        (w for w in trained if abs(w - number) < 1e-9), None)
    if match is None:
        listed = ", ".join(f"{w:g}" for w in trained)
        raise LadderError(f"{where}: width {value!r} is not a trained width of the model "
                          f"({listed})")
    return match


def _latency(value: Any, what: str, where: str) -> float:
    number = _number(value)
    if number is None or number <= 0:
        raise LadderError(f"{where}: the latency of {what} must be a finite number of "
                          f"milliseconds > 0, got {value!r}")
    return number


def _miou(value: Any, what: str, where: str) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None or not 0 <= number <= 100:
        raise LadderError(f"{where}: the mIoU of {what} must be a percentage (0 to 100) or "
                          f"null, got {value!r}")
    return number


def check_split(split: Any, where: str) -> None:
    """Refuse figures measured on another split than val (``where`` names their file)."""
    if split != LADDER_SPLIT:
        raise LadderError(f"{where} was measured on split {split!r}: operating points are "
                          f"chosen on {LADDER_SPLIT}, never on test")


def parse_ladder(data: Any, where: str, widths: Sequence[float],
                 input_size: Sequence[int] | None) -> LadderSpec:
    """
    Check ladder JSON ``data`` (read from ``where``) against the model; return its spec.

    ``widths``: the model's trained widths; ``input_size``: its network input (h, w), which the
    ladder must have been measured at (None: not checked). Unknown keys (a bundle's
    ``"graphs"``) are ignored. Every problem is one :class:`LadderError` sentence naming
    ``where``.
    """
    where = str(where)
    if not isinstance(data, Mapping):
        raise LadderError(f"{where}: a ladder must be a JSON object, got "
                          f"{type(data).__name__}")
    if data.get("format") != LADDER_FORMAT:
        raise LadderError(f"{where} is not a slimseg ladder (format {data.get('format')!r}, "
                          f"expected {LADDER_FORMAT!r})")
    if data.get("version") != LADDER_VERSION:
        raise LadderError(f"{where} is ladder version {data.get('version')!r}; this package "
                          f"reads version {LADDER_VERSION}: write it again")
    check_split(data.get("split", LADDER_SPLIT), where)
    full_size = _size(data.get("input_size"))
    if full_size is None:
        raise LadderError(f"{where}: input_size must be two positive integers [h, w], got "
                          f"{data.get('input_size')!r}")
    if input_size is not None and full_size != tuple(int(v) for v in input_size):
        raise LadderError(f"{where} was measured at input {_text(full_size)}, but the model's "
                          f"input size is {_text(input_size)}: measure it again for this model")
    measured_on = data.get("measured_on")
    if not isinstance(measured_on, str) or not measured_on.strip():
        raise LadderError(f"{where}: measured_on must say where the latencies were measured, "
                          f"got {measured_on!r}")
    trained = [float(w) for w in widths]
    raw_points, raw_full = data.get("points"), data.get("full")
    if not isinstance(raw_points, list) or not isinstance(raw_full, list):
        raise LadderError(f"{where}: points and full must be lists")
    points: list[LadderPoint] = []
    seen: set[tuple[float, tuple[int, int]]] = set()
    for raw in raw_points:
        if not isinstance(raw, Mapping):
            raise LadderError(f"{where}: every point must be an object, got {raw!r}")
        width = _width(raw.get("width"), trained, where)
        size = _size(raw.get("input_size"))
        if size is None:
            raise LadderError(f"{where}: the input size of a point of width {width:g} must be "
                              f"two positive integers [h, w], got {raw.get('input_size')!r}")
        key = point_key(width, size)
        if size[0] % SIZE_MULTIPLE or size[1] % SIZE_MULTIPLE:
            raise LadderError(f"{where}: point {key} has sides that are not multiples of "
                              f"{SIZE_MULTIPLE}")
        if size[0] > full_size[0] or size[1] > full_size[1] or size == full_size:
            raise LadderError(f"{where}: point {key} is not smaller than the full input "
                              f"{_text(full_size)} (a point runs a reduced input)")
        if (width, size) in seen:
            raise LadderError(f"{where}: point {key} is listed twice")
        seen.add((width, size))
        points.append(LadderPoint(width, size, _latency(raw.get("latency_ms"), key, where),
                                  _miou(raw.get("miou"), key, where)))
    full_latency: dict[float, float] = {}
    full_miou: dict[float, float | None] = {}
    for raw in raw_full:
        if not isinstance(raw, Mapping):
            raise LadderError(f"{where}: every entry of full must be an object, got {raw!r}")
        width = _width(raw.get("width"), trained, where)
        what = f"width {width:g} at full input"
        if width in full_latency:
            raise LadderError(f"{where}: {what} is listed twice")
        full_latency[width] = _latency(raw.get("latency_ms"), what, where)
        full_miou[width] = _miou(raw.get("miou"), what, where)
    missing = [f"{w:g}" for w in trained if w not in full_latency]
    if missing:
        raise LadderError(f"{where}: full gives no latency for trained width "
                          f"{', '.join(missing)} at the full input")
    points.sort(key=lambda p: p.latency_ms)
    return LadderSpec(full_size, tuple(points), {w: full_latency[w] for w in trained},
                      measured_on.strip(), where, {w: full_miou[w] for w in trained})


def read_ladder_file(path: str | os.PathLike, widths: Sequence[float],
                     input_size: Sequence[int] | None) -> LadderSpec:
    """Read and check the ladder file ``path`` (see :func:`parse_ladder`)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LadderError(f"{path} is not a readable JSON ladder ({exc})") from None
    return parse_ladder(data, str(path), widths, input_size)


def ladder_json(spec: LadderSpec) -> dict[str, Any]:
    """Return the JSON object of ``spec`` (what :func:`parse_ladder` reads; no ``source``)."""
    return {"format": LADDER_FORMAT, "version": LADDER_VERSION,
            "input_size": list(spec.input_size), "measured_on": spec.measured_on,
            "split": LADDER_SPLIT,
            "points": [{"width": p.width, "input_size": list(p.input_size),
                        "latency_ms": p.latency_ms, "miou": p.miou} for p in spec.points],
            "full": [{"width": w, "latency_ms": ms, "miou": spec.full_miou.get(w)}
                     for w, ms in spec.full_latency_ms.items()]}


def find_point(points: Mapping[tuple[int, tuple[int, int]], Any], width: Any,
               input_size: Any, spec: LadderSpec | None, note: str, ready: bool) -> Any:
    """
    Return what runs ``width``'s ladder point at ``input_size`` in an engine's ``points``.

    ``points`` maps (width index, (h, w)) to it; ``width`` is a trained width of the engine
    (a :class:`~slimseg_ros.widths.Width`). Else one ``ValueError`` sentence: a bad size, a
    point the ladder (``spec``, the engine's ``note`` on it) does not have, or one not prepared
    yet (``ready`` False).
    """
    try:
        size = (int(input_size[0]), int(input_size[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"input_size must be (height, width), got {input_size!r}") from None
    found = points.get((width.index, size))
    if found is None:
        raise point_not_found(spec, width.value, size, note, ready)
    return found


def point_not_found(spec: LadderSpec | None, width: float, size: Sequence[int],
                    note: str, ready: bool = True) -> ValueError:
    """Return the ``ValueError`` for a call naming a point the engine has not prepared."""
    what = f"width {float(width):g} at input {_text(size)}"
    if spec is not None and not ready:
        return ValueError(f"{what}: the ladder's points are not prepared yet (the engine was "
                          f"built with defer_points; prepare_points() makes them)")
    if spec is None:
        return ValueError(f"{what} is not an operating point: this engine has no ladder "
                          f"({note}); run it at its input size")
    return ValueError(f"{what} is not a point of the ladder (its points: {spec.describe()})")


# -- what both engines say about their ladder (diagnostics, the node's start-up log) ----------

LADDER_OFF_NOTE = "ladder off (use_ladder false)"
NO_INPUT_SIZE_NOTE = "no ladder: the network has no fixed input size"


def loaded_note(spec: LadderSpec, where: str, extra: str = "") -> str:
    """Say which ladder an engine runs: how many points, from where, measured on what."""
    count = len(spec.points)
    return (f"ladder of {count} point{'s' if count != 1 else ''} from {where} (measured on "
            f"{spec.measured_on}){extra}")


def missing_note(what: str, target: str | os.PathLike) -> str:
    """Say that a model has no ladder, and the command that writes one."""
    return (f"no ladder: {what} (widths only; add one with "
            f"{WRITE_COMMAND.format(target=target)})")


def other_size_note(spec: LadderSpec, size: Sequence[int]) -> str:
    """Say that the ladder does not serve an engine run at another input size."""
    return (f"no ladder: the ladder was measured at input {_text(spec.input_size)}, this "
            f"engine runs {_text(size)} (widths only)")
