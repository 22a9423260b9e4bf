"""
The governor's budget rule, written once for both budgets.

The two budgets are a latency budget (milliseconds per frame) and a CPU-share budget (a
fraction of the usable cores).

A budget is a cost per width and an allowance. For the latency budget the cost is a recent
high percentile of the latency; for the CPU budget it is the predicted CPU share,
:func:`predicted_cpu_share`. :func:`budget_cap` picks the widest width whose cost fits (with
the probing rules of :mod:`.governor`), and :class:`BudgetRound` shares one allowance over the
cameras of a round by priority. Which budget it is only changes how the reason is written
(:class:`Meter`). Widths are :class:`~slimseg_ros.widths.Width` values of one model, compared
by index; their fractions only scale estimates. With a ladder the same rule runs on its rungs
(:mod:`.ladder`), whose ``value`` is a relative measured cost. Plain Python, no clock reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .latency import WidthLatency
from ..widths import Width


@dataclass
class CameraState:
    """Per-camera state of the governor: its request, width, stride, dwell and probe clocks."""

    request: Width          # this camera's own request (the widest width until one arrives)
    current: Width          # the step of its last decision (a Width; a rung with a ladder)
    priority: float
    last_change: float = -math.inf  # time of the last change of its width or stride
    last_probe: float = -math.inf
    request_pending: bool = False
    last_used: dict[Width, float] = field(default_factory=dict)  # step -> last time chosen
    stride: int = 1  # served every stride-th frame (the rate actuator, :mod:`.rate`)
    stride_by_budget: bool = False  # the CPU budget set the stride: the width waits for it
    pace_reason: str = "every frame"
    cheapest: object = None  # the cheapest step under its caps at its last decision


@dataclass(frozen=True)
class Meter:
    """
    How one kind of budget is named and its figures written.

    ``key`` is its name in ``Decision.caps``, ``name`` how reasons call it, ``figure`` the
    label of a width's cost; costs are shown times ``scale`` with ``unit``.
    """

    key: str
    name: str
    figure: str
    unit: str
    scale: float = 1.0

    def value(self, cost: float) -> str:
        return f"{cost * self.scale:.1f}{self.unit}"

    def budget(self, amount: float) -> str:
        return f"{self.name} {amount * self.scale:g}{self.unit}"


def latency_meter(percentile: float) -> Meter:
    return Meter("budget", "budget", f"p{percentile:g}", "ms")


CPU_METER = Meter("cpu_budget", "cpu budget", "cpu", "%", 100.0)


def predicted_cpu_share(figures: WidthLatency | None, frame_rate: float | None,
                        cores: int) -> float | None:
    """
    Return the share of ``cores`` usable cores (0-1) a width would use.

    The share is its mean CPU seconds per frame times the frames per second it would serve,
    over the cores. It serves the camera's ``frame_rate`` (frames/s arriving), or fewer when
    one frame takes longer than the time between frames (then at most one frame per mean
    latency). None without CPU figures or a frame rate.
    """
    if figures is None or figures.cpu_ms is None or frame_rate is None:
        return None
    fps = max(0.0, float(frame_rate))
    if figures.mean_ms:
        fps = min(fps, 1000.0 / figures.mean_ms)
    return figures.cpu_ms / 1000.0 * fps / max(1, int(cores))


def busy_cpu_share(figures: WidthLatency | None, cores: int) -> float | None:
    """
    Return the share of the cores a width uses while frames come back to back.

    That is its CPU time per frame over its latency, over the cores: what any width uses when
    the camera is faster than the node, since a wider width then serves fewer frames. None
    without figures.
    """
    if figures is None or figures.cpu_ms is None or not figures.mean_ms:
        return None
    return figures.cpu_ms / figures.mean_ms / max(1, int(cores))


def cost(table: Mapping[Width, float | None], width: Width) -> float:
    """
    Return the cost of ``width`` in ``table``.

    An unmeasured width is estimated from the nearest measured width scaled linearly by width
    (narrower preferred), 0 when nothing is measured.
    """
    if table.get(width) is not None:
        return float(table[width])
    known = [w for w, v in table.items() if v is not None]
    if not known:
        return 0.0
    below = [w for w in known if w < width]
    ref = max(below) if below else min(known)
    return float(table[ref]) * width.value / ref.value


class BudgetRound:
    """
    One budget's round over the cameras with a fresh frame, in priority order (higher first).

    Each camera may use the allowance minus what the cameras decided before it cost and minus
    the narrowest-width cost of those still to come; cameras of equal priority split what is
    left evenly (what one leaves unused goes to the next).
    """

    def __init__(self, meter: Meter, amount: float, allowed: float, narrowest: Width,
                 tables: Mapping[str, Mapping[Width, float | None]], order: Sequence[str],
                 ceilings: Mapping[str, Mapping[Width, float | None]] | None = None):
        self.meter = meter
        self.amount = amount      # the budget as given (ms, or a fraction of the cores)
        self.allowed = allowed    # the budget times the margin
        self.tables = tables
        self.ceilings = ceilings or {}  # per camera and width: the most a wider width costs
        self.floors = {n: cost(tables[n], narrowest) for n in order}
        self.alone = len(order) == 1
        self.spent = 0.0

    def share(self, name: str, still_to_come: Sequence[str], peers: int) -> float:
        """Return what ``name`` may use; ``peers`` cameras of its priority come after it."""
        rest = sum(self.floors[n] for n in still_to_come)
        slack = self.allowed - self.spent - rest - self.floors[name]
        return self.allowed - self.spent - rest - (
            slack * peers / (peers + 1) if slack > 0 and peers else 0.0)

    def head(self, share: float) -> str:
        """Return the start of a camera's reason: the budget, and its share when not alone."""
        text = self.meter.budget(self.amount)
        return text if self.alone else f"{text}, share {self.meter.value(share)}"

    def spend(self, name: str, width: Width) -> None:
        self.spent += cost(self.tables[name], width)

    def hold(self, current: Width) -> tuple[Width, str, bool]:
        """Return the cap of a camera without a fresh frame: it costs nothing, holds its width."""
        return current, f"{self.meter.budget(self.amount)}: no recent frame, holding " \
                        f"{current:g}", False


def budget_cap(meter: Meter, widths: Sequence[Width], cam: CameraState, now: float,
               table: Mapping[Width, float | None], allowed: float, head: str,
               probe_interval_s: float, warnings: list[str],
               ceiling: Mapping[Width, float | None] | None = None) -> tuple[Width, str, bool]:
    """
    Return (cap, reason, whether the cap is a probe of an unmeasured wider width) of a camera.

    The camera's frames may cost ``allowed`` (the whole allowance, or its share of the round).

    Wider is assumed costlier: the narrowest width that measurably does not fit bars every
    wider one. Unmeasured widths (or an over-budget figure of a width not used for
    ``probe_interval_s``, since the machine may have become faster) are probed one step above
    the current width, at most once per probe interval and only with headroom (the current
    cost scaled by the width ratio, or at most ``ceiling`` of the current width where given,
    still fits). An unmeasured current width is held until measured.
    """
    label, fmt = meter.figure, meter.value
    cur = cam.current

    def measured(w: Width) -> float | None:
        """
        Return the cost of ``w`` if it can be trusted now.

        An over-budget figure of a width not used for a probe interval is forgotten (the
        machine may be faster now).
        """
        v = table[w]
        if v is None:
            return None
        if (v > allowed and w > cur
                and now - cam.last_used.get(w, -math.inf) > probe_interval_s):
            return None
        return v

    known = {w: measured(w) for w in widths}
    over = [w for w in widths if known[w] is not None and known[w] > allowed]
    barrier = over[0] if over else None  # the narrowest width measured over the allowance
    below = [w for w in widths if barrier is None or w < barrier]
    fit = [w for w in below if known[w] is not None]
    unknown = [w for w in below if known[w] is None]

    if not below:  # even the narrowest width is too costly
        w0 = widths[0]
        warnings.append(f"{head} cannot be met: {label} at {w0:g} is {fmt(known[w0])} "
                        f"> {fmt(allowed)}")
        return w0, f"{head}: {label} at {w0:g} = {fmt(known[w0])} > {fmt(allowed)}", False
    if cur in unknown and not (fit and fit[-1] > cur):
        # just switched here (a probe or another cap): hold until a figure arrives
        return cur, f"{head}: waiting for a measurement at {cur:g}", False
    if not fit and barrier is None:  # nothing measured under a bound just moved (a ladder)
        # the costliest step whose estimate (from the figures of any step) fits, else the
        # cheapest: a new bound must not start with a frame far over the allowance
        w = below[-1]  # nothing measured anywhere: the bound, as with widths
        if any(v is not None for v in table.values()):
            fitting = [s for s in below if cost(table, s) <= allowed]
            w = fitting[-1] if fitting else below[0]
        return w, f"{head}: waiting for a measurement at {w:g}", False
    if not fit:  # over budget and nothing narrower measured: step down, one width a frame
        w = below[-1]
        return w, (f"{head}: {label} at {barrier:g} = {fmt(known[barrier])} > "
                   f"{fmt(allowed)}, trying {w:g}"), False

    base = fit[-1]
    reason = f"{head}: {label} at {base:g} = {fmt(known[base])} <= {fmt(allowed)}"
    if barrier is not None:
        reason += f" ({barrier:g}: {fmt(known[barrier])})"
    wider = [w for w in below if w > base]
    if wider and base == cur and now - cam.last_probe >= probe_interval_s:
        nxt = wider[0]
        # the cost grows at least ~linearly with width
        estimate = known[base] * nxt.value / base.value
        if ceiling and ceiling.get(base) is not None:
            estimate = min(estimate, float(ceiling[base]))
        if estimate <= allowed:
            return nxt, (f"{head}: probing {nxt:g} ({label} at {base:g} = {fmt(known[base])}, "
                         f"estimate {fmt(estimate)} <= {fmt(allowed)})"), True
    return base, reason, False
