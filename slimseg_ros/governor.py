"""Width governor: from the requested width and the battery, thermal and compute-budget inputs
to one trained width and a human-readable reason.

Pure logic (no rclpy, no torch, no clock reads): every method whose result depends on time takes
``now`` in seconds from any monotonic clock, so tests drive it with made-up times and the node
passes its own clock.

Policy, in one place:

* The **request** (``request()``) applies at once, up or down. Values between trained widths snap
  to the nearest trained width not above them.
* **Battery**: ``battery_thresholds`` maps "percent at or below" to a maximum width; the tightest
  matching row wins. Ignored while charging.
* **Thermal**: ``thermal_thresholds`` maps "celsius at or above" to a maximum width. A row becomes
  active at ``T`` and is released only below ``T - thermal_hysteresis_c``, so a temperature that
  wobbles around a threshold does not make the width chatter.
* **Budget** (milliseconds per frame): the widest width whose measured recent latency, as given to
  :meth:`Governor.decide` (a high percentile), fits ``budget * budget_margin``. Wider is assumed
  slower: the narrowest width that measurably does not fit bars every wider one. Widths with no
  measurement (or an over-budget measurement older than ``probe_interval_s``, since the machine
  may have become faster) are *probed*: one step above the current width, at most once per
  ``probe_interval_s``, and only if the current width has headroom (its latency scaled by the width
  ratio still fits). A probe that proves too slow is left at the next decision. If the current
  width has not been measured yet (it was just switched to), the budget holds it until it has.
* **Effective width** = min(request, caps). Lowering applies at once (a budget violation or a hot
  machine must not wait); an automatic *raise* waits until ``min_dwell_s`` has passed since the
  last change, which stops oscillation between two widths.
* **Stale inputs**: a battery, temperature or budget input older than ``stale_timeout_s`` stops
  constraining and is named in ``Decision.warnings``.

**Several cameras** (``cameras=[...]``, one shared set of weights): every camera has its own
width, request, dwell and probe state and its own latency figures (frame sizes differ); battery,
thermal and the budget are shared. The budget then means one round over the cameras that have a
fresh frame (``active``): the sum of their latencies at their chosen widths must fit
``budget * budget_margin``. Cameras are served in order of ``priorities`` (higher first): each
gets as its *share* the allowance minus what the cameras decided before it cost and minus the
narrowest-width cost of those still to come, so a lower-priority camera slims first and widens
last; cameras of equal priority split what is left evenly (what one leaves unused goes to the
next). Each camera's share then goes through the single-camera budget rule above, so one camera
behaves exactly as without cameras. A camera without a fresh frame costs nothing and holds its
width under a budget until it is served again. A camera is also capped by its own request
(``request(w, camera)``), which can only lower it below the shared request. Unmeasured costs
are estimated from the nearest measured width, scaled linearly by width.

The latency comes from recent frames (:class:`~.latency.LatencyStore`: a few seconds, a few dozen
frames per width), so the budget reacts to a machine that slows down. :meth:`Governor.decide_from`
reads the store, and when a decision starts a probe it drops the probed width's old figures, so
the probe is judged on its own frames; the decision carries the figures it compared, which is
what the diagnostics show.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .governor_config import MAX_CELSIUS as _MAX_CELSIUS
from .governor_config import GovernorConfig, _number
from .latency import LatencyStore, WidthLatency
from .widths import find_width, same_width

__all__ = ["SINGLE", "Decision", "Governor", "GovernorConfig"]
SINGLE = ""  # the camera name of a governor made without cameras


@dataclass(frozen=True)
class Decision:
    """One decision: the width to run the next frame at, why, the active caps and warnings."""

    width: float
    reason: str
    caps: dict[str, float] = field(default_factory=dict)  # "battery"/"thermal"/"budget" -> width
    warnings: tuple[str, ...] = ()
    # True when ``width`` was just switched to as a budget probe (decide_from has then dropped
    # that width's old latency figures, so it is judged on new frames).
    probing: bool = False
    # The recent latency per trained width this decision compared (widths with no recent frame
    # left out); filled by decide_from, empty when decide() was given plain figures.
    latency: Mapping[float, WidthLatency] = field(default_factory=dict)


@dataclass
class _Input:
    value: float
    time: float


@dataclass
class _Camera:
    """Per-camera state: its own request, width, dwell and probe clocks."""

    request: float          # this camera's own request (the widest width until one arrives)
    current: float          # the width of its last decision
    priority: float
    last_change: float = -math.inf  # time of the last change of its width
    last_probe: float = -math.inf
    request_pending: bool = False
    last_used: dict[float, float] = field(default_factory=dict)  # width -> last time chosen


def _cost(table: Mapping[float, float | None], width: float) -> float:
    """The latency of ``width`` in ``table``; unmeasured: estimated from the nearest measured
    width scaled linearly by width (narrower preferred), 0 when nothing is measured."""
    if table.get(width) is not None:
        return float(table[width])
    known = [w for w, v in table.items() if v is not None]
    if not known:
        return 0.0
    below = [w for w in known if w < width]
    ref = max(below) if below else min(known)
    return float(table[ref]) * width / ref


class Governor:
    """Stateful width policy; see the module docstring for the rules.

    ``cameras`` names the cameras sharing the weights (default: one unnamed camera);
    ``priorities`` gives one number per camera (a sequence in camera order or a mapping by
    name; default all equal), higher is served first under a budget.
    """

    def __init__(self, widths: Sequence[float], config: GovernorConfig,
                 cameras: Sequence[str] | None = None,
                 priorities: Sequence[float] | Mapping[str, float] | None = None) -> None:
        ws = []
        for w in widths:
            w = _number("widths", w)
            if not 0.0 < w <= 1.0:
                raise ValueError(f"trained width {w:g} must be in (0, 1]")
            ws.append(w)
        if not ws:
            raise ValueError("the governor needs at least one trained width")
        self._widths: tuple[float, ...] = tuple(sorted(set(ws)))
        self._config = config
        names = [SINGLE] if cameras is None else list(cameras)
        if not names or any(not isinstance(n, str) for n in names):
            raise ValueError(f"cameras must be a non-empty list of names, got {cameras!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"cameras must not repeat a name, got {names}")
        top = self._widths[-1]
        self._cameras: dict[str, _Camera] = {
            n: _Camera(request=top, current=top, priority=1.0) for n in names}
        self.set_priorities(priorities)
        self._requested = top  # the shared request (all cameras)
        self._battery: _Input | None = None
        self._charging = False
        self._temperature: _Input | None = None
        self._thermal_active: set[float] = set()  # thresholds whose cap is in force
        self._budget: _Input | None = None

    # ----------------------------------------------------------------------------- properties
    @property
    def widths(self) -> tuple[float, ...]:
        """Trained widths, ascending."""
        return self._widths

    @property
    def config(self) -> GovernorConfig:
        return self._config

    @property
    def cameras(self) -> tuple[str, ...]:
        """Camera names in the order given (``("",)`` for a governor made without cameras)."""
        return tuple(self._cameras)

    @property
    def priorities(self) -> dict[str, float]:
        return {n: c.priority for n, c in self._cameras.items()}

    @property
    def requested(self) -> float:
        """The (snapped) shared request; the widest trained width until a request."""
        return self._requested

    @property
    def current(self) -> float:
        """The width of the last decision of the only camera (ValueError with several)."""
        return self.current_of(None)

    def current_of(self, camera: str | None) -> float:
        """The width of ``camera``'s last decision (None: the only camera)."""
        return self._camera(camera).current

    def requested_for(self, camera: str | None) -> float:
        """What ``camera`` is asked for: the smaller of the shared and its own request."""
        return min(self._requested, self._camera(camera).request)

    def _camera(self, camera: str | None) -> _Camera:
        if camera is None:
            if len(self._cameras) != 1:
                raise ValueError(f"name the camera: this governor has {list(self._cameras)}")
            return next(iter(self._cameras.values()))
        try:
            return self._cameras[camera]
        except KeyError:
            raise ValueError(f"unknown camera {camera!r}; cameras: {list(self._cameras)}") \
                from None

    # ----------------------------------------------------------------------------- inputs
    def set_priorities(self, priorities: Sequence[float] | Mapping[str, float] | None) -> None:
        """One finite number per camera (higher: served first); None or empty: all equal.

        Raises ``ValueError`` (priorities unchanged) for a wrong length, unknown names or
        non-finite values.
        """
        names = list(self._cameras)
        if priorities is None or len(priorities) == 0:
            values = [1.0] * len(names)
        elif isinstance(priorities, Mapping):
            if set(priorities) != set(names):
                raise ValueError(f"camera priorities name {sorted(priorities)}, cameras are "
                                 f"{names}")
            values = [priorities[n] for n in names]
        else:
            values = list(priorities)
            if len(values) != len(names):
                raise ValueError(f"camera priorities has {len(values)} value(s) for "
                                 f"{len(names)} camera(s) {names}: give one per camera")
        checked = []
        for v in values:
            p = _number("camera priorities", v)
            if not math.isfinite(p):
                raise ValueError(f"camera priority {p} must be finite")
            checked.append(p)
        for name, p in zip(names, checked):
            self._cameras[name].priority = p

    def snap(self, width: float) -> float:
        """Nearest trained width not above ``width`` (the smallest one if ``width`` is below all).

        Raises ``ValueError`` for NaN, <= 0 or > 1 (and non-numbers).
        """
        if isinstance(width, bool) or not isinstance(width, (int, float)):
            raise ValueError(f"width must be a number, got {width!r}")
        width = float(width)
        if math.isnan(width) or not 0.0 < width <= 1.0:
            raise ValueError(f"width {width} is not in (0, 1]")
        below = [w for w in self._widths if w <= width or same_width(w, width)]
        return below[-1] if below else self._widths[0]

    def request(self, width: float, camera: str | None = None) -> float:
        """Explicit width request, for all cameras (``camera`` None) or for one camera; applies
        at the next decision regardless of dwell time. A camera's own request caps it below
        the shared one (neither raises it above the other).

        Returns the snapped width. Raises ``ValueError`` (state unchanged) for a bad width or
        an unknown camera.
        """
        snapped = self.snap(width)
        if camera is None:
            self._requested = snapped
            targets = list(self._cameras.values())
        else:
            cam = self._camera(camera)
            cam.request = snapped
            targets = [cam]
        for cam in targets:
            cam.request_pending = True  # the next decision is not held back by dwell
        return snapped

    def update_battery(self, percent: float, charging: bool, now: float) -> None:
        """Battery charge in percent (0-100, not the 0-1 of ``BatteryState.percentage``)."""
        p = _checked("battery percent", percent, 0.0, 100.0)
        self._battery = _Input(p, now)
        self._charging = bool(charging)

    def update_temperature(self, celsius: float, now: float) -> None:
        """Temperature in degrees Celsius; updates the hysteresis state of the thermal table."""
        c = _checked("temperature", celsius, -273.15, _MAX_CELSIUS)
        if self._temperature is None or self._is_stale(self._temperature, now):
            self._thermal_active.clear()  # no memory across a gap in the readings
        self._temperature = _Input(c, now)
        self._update_thermal_state()

    def update_budget(self, budget_ms: float | None, now: float) -> None:
        """Latency budget per frame (per round over the cameras) in milliseconds; ``None`` or
        0 removes the budget."""
        if budget_ms is None:
            self._budget = None
            return
        b = _checked("budget", budget_ms, 0.0, math.inf)
        self._budget = _Input(b, now) if b > 0.0 else None

    def update_config(self, config: GovernorConfig) -> None:
        """Swap thresholds and timings at runtime; thermal caps held by hysteresis stay held."""
        self._config = config
        self._update_thermal_state()

    # ----------------------------------------------------------------------------- decision
    def decide(self, now: float, latency_ms: Mapping[float, float | None]) -> Decision:
        """Choose the width of the next frame of the only camera.

        ``latency_ms`` maps trained widths to a recent high-percentile latency in milliseconds
        (``None``/missing = not measured recently). Keys are matched to trained widths.
        """
        name = next(iter(self._cameras)) if len(self._cameras) == 1 else None
        self._camera(name)  # ValueError with several cameras
        return self.decide_cameras(now, {name: latency_ms})[name]

    def decide_cameras(self, now: float,
                       latency_ms: Mapping[str, Mapping[float, float | None]],
                       active: Collection[str] | None = None) -> dict[str, Decision]:
        """Choose every camera's width of its next frame.

        ``latency_ms`` maps camera names to what :meth:`decide` takes (a camera left out: no
        figures); ``active`` names the cameras with a fresh frame, which alone share the
        budget (None: all). Returns a decision per camera, in camera order.
        """
        unknown = [c for c in [*latency_ms, *(active or ())] if c not in self._cameras]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; cameras: {list(self._cameras)}")
        active_set = set(self._cameras) if active is None else set(active)
        warnings: list[str] = []
        caps: dict[str, float] = {}
        reasons: dict[str, str] = {}
        cap = self._battery_cap(now, warnings)
        if cap is not None:
            caps["battery"], reasons["battery"] = cap
        cap = self._thermal_cap(now, warnings)
        if cap is not None:
            caps["thermal"], reasons["thermal"] = cap
        budget = self._budget
        if budget is not None and self._is_stale(budget, now):
            warnings.append(self._stale_warning("budget", budget, now))
            budget = None
        tables = {n: self._latency_table(latency_ms.get(n, {})) for n in self._cameras}

        decisions: dict[str, Decision] = {}
        if budget is not None:
            allowed = budget.value * self._config.budget_margin
            order = sorted((n for n in self._cameras if n in active_set),
                           key=lambda n: -self._cameras[n].priority)
            floors = {n: _cost(tables[n], self._widths[0]) for n in order}
            spent = 0.0
            left = list(order)
            for _, group in itertools.groupby(order, key=lambda n: self._cameras[n].priority):
                group = list(group)
                for i, name in enumerate(group):
                    left.remove(name)
                    rest = sum(floors[n] for n in left)  # the cameras still to come, at floor
                    peers = len(group) - i - 1
                    slack = allowed - spent - rest - floors[name]
                    share = allowed - spent - rest - (
                        slack * peers / (peers + 1) if slack > 0 and peers else 0.0)
                    head = (f"budget {budget.value:g}ms" if len(order) == 1 else
                            f"budget {budget.value:g}ms, share {share:.1f}ms")
                    own: list[str] = []
                    bcap = self._budget_cap(self._cameras[name], now, tables[name], share,
                                            head, own)
                    decisions[name] = self._decide_one(name, now, caps, reasons, bcap,
                                                       warnings + own)
                    spent += _cost(tables[name], decisions[name].width)
        for name, cam in self._cameras.items():
            if name in decisions:
                continue
            bcap = None
            if budget is not None:  # no fresh frame: costs nothing, does not widen
                bcap = (cam.current, f"budget {budget.value:g}ms: no recent frame, holding "
                                     f"{cam.current:g}", False)
            decisions[name] = self._decide_one(name, now, caps, reasons, bcap, list(warnings))
        return {n: decisions[n] for n in self._cameras}

    def _decide_one(self, name: str, now: float, shared_caps: Mapping[str, float],
                    shared_reasons: Mapping[str, str],
                    budget_cap: tuple[float, str, bool] | None,
                    warnings: list[str]) -> Decision:
        """One camera's decision from the shared caps and its budget cap."""
        cam = self._cameras[name]
        caps = dict(shared_caps)
        reasons = dict(shared_reasons)
        probing = False
        if budget_cap is not None:
            caps["budget"], reasons["budget"], probing = budget_cap

        requested = min(self._requested, cam.request)
        target = min([requested, *caps.values()])
        binding = [reasons[k] for k, v in caps.items() if v == target]
        if target == requested:  # the request decides; caps at the same width are named
            own = cam.request < self._requested
            binding.insert(0, f"{'camera request' if own else 'request'} {requested:g}")
        reason = "; ".join(binding)

        width = target
        pending, cam.request_pending = cam.request_pending, False
        if (target > cam.current and not pending
                and now - cam.last_change < self._config.min_dwell_s):
            wait = self._config.min_dwell_s - (now - cam.last_change)
            width = cam.current
            reason = f"dwell: holding {width:g} for {wait:.1f} s more (then {target:g}: {reason})"
        probe_started = False
        if width != cam.current:
            cam.last_change = now
            if probing and width == caps["budget"]:
                cam.last_probe = now
                probe_started = True
        cam.current = width
        cam.last_used[width] = now
        return Decision(width=width, reason=reason, caps=caps, warnings=tuple(warnings),
                        probing=probe_started)

    def decide_from(self, now: float, store: LatencyStore) -> Decision:
        """:meth:`decide` on the store's recent ``budget_percentile`` of each trained width.

        A decision that starts a probe drops the probed width's old figures from ``store``, so
        the probe is judged on its own frames. The decision carries the figures compared.
        """
        name = next(iter(self._cameras)) if len(self._cameras) == 1 else None
        self._camera(name)  # ValueError with several cameras
        return self.decide_from_stores(now, {name: store})[name]

    def decide_from_stores(self, now: float, stores: Mapping[str, LatencyStore],
                           active: Collection[str] | None = None) -> dict[str, Decision]:
        """:meth:`decide_cameras` on each camera's store (as :meth:`decide_from` does)."""
        q = self._config.budget_percentile
        recent = {n: s.recent(self._widths, q, now) for n, s in stores.items()}
        decisions = self.decide_cameras(
            now, {n: {w: r.pq_ms if r else None for w, r in rs.items()}
                  for n, rs in recent.items()}, active)
        out = {}
        for name, decision in decisions.items():
            if decision.probing and name in stores:
                stores[name].reset(decision.width)
            figures = recent.get(name, {})
            out[name] = replace(decision, latency={w: r for w, r in figures.items()
                                                   if r is not None})
        return out

    # ----------------------------------------------------------------------------- internals
    def _is_stale(self, inp: _Input, now: float) -> bool:
        return now - inp.time > self._config.stale_timeout_s

    def _stale_warning(self, name: str, inp: _Input, now: float) -> str:
        return (f"{name} input stale ({now - inp.time:.1f} s old > "
                f"{self._config.stale_timeout_s:g} s): not constraining")

    def _update_thermal_state(self) -> None:
        if self._temperature is None:
            return
        c = self._temperature.value
        hyst = self._config.thermal_hysteresis_c
        for t, _ in self._config.thermal_thresholds:
            if c >= t:
                self._thermal_active.add(t)
            elif c < t - hyst:
                self._thermal_active.discard(t)
        # thresholds removed by a config change no longer apply
        self._thermal_active &= {t for t, _ in self._config.thermal_thresholds}

    def _battery_cap(self, now: float, warnings: list[str]) -> tuple[float, str] | None:
        b = self._battery
        if b is None or self._charging:
            return None
        if self._is_stale(b, now):
            warnings.append(self._stale_warning("battery", b, now))
            return None
        rows = [(w, t) for t, w in self._config.battery_thresholds if b.value <= t]
        if not rows:
            return None
        w, t = min(rows)  # tightest width; among equal widths, the lowest threshold
        return self.snap(w), f"battery {round(b.value, 1):g}% <= {t:g}%"

    def _thermal_cap(self, now: float, warnings: list[str]) -> tuple[float, str] | None:
        tmp = self._temperature
        if tmp is None:
            return None
        if self._is_stale(tmp, now):
            warnings.append(self._stale_warning("temperature", tmp, now))
            return None
        rows = [(w, t) for t, w in self._config.thermal_thresholds if t in self._thermal_active]
        if not rows:
            return None
        w, t = min(rows)
        if tmp.value >= t:
            return self.snap(w), f"thermal {tmp.value:.1f}C >= {t:g}C"
        hyst = self._config.thermal_hysteresis_c
        return self.snap(w), (f"thermal {tmp.value:.1f}C: cap of {t:g}C held until "
                              f"< {t - hyst:g}C")

    def _latency_table(self, latency_ms: Mapping[float, float | None]
                       ) -> dict[float, float | None]:
        table: dict[float, float | None] = {w: None for w in self._widths}
        for key, value in latency_ms.items():
            match = find_width(self._widths, key)
            if match is None or value is None:
                continue
            v = float(value)
            if math.isfinite(v) and v >= 0.0:
                table[match] = v
        return table

    def _budget_cap(self, cam: _Camera, now: float, lat: Mapping[float, float | None],
                    allowed: float, head: str, warnings: list[str]
                    ) -> tuple[float, str, bool]:
        """(cap, reason, whether the cap is a probe of an unmeasured wider width) of one camera
        whose frames may take ``allowed`` ms (the whole allowance, or its share of the round)."""
        cfg = self._config
        p = f"p{cfg.budget_percentile:g}"
        cur = cam.current

        def measured(w: float) -> float | None:
            """The latency of ``w`` if it can be trusted now; an over-budget figure of a width
            not used for a probe interval is forgotten (the machine may be faster now)."""
            v = lat[w]
            if v is None:
                return None
            if (v > allowed and w > cur
                    and now - cam.last_used.get(w, -math.inf) > cfg.probe_interval_s):
                return None
            return v

        known = {w: measured(w) for w in self._widths}
        over = [w for w in self._widths if known[w] is not None and known[w] > allowed]
        barrier = over[0] if over else math.inf
        below = [w for w in self._widths if w < barrier]
        fit = [w for w in below if known[w] is not None]
        unknown = [w for w in below if known[w] is None]

        if not below:  # even the narrowest width is too slow
            w0 = self._widths[0]
            warnings.append(f"{head} cannot be met: {p} at {w0:g} is {known[w0]:.1f}ms "
                            f"> {allowed:.1f}ms")
            return w0, f"{head}: {p} at {w0:g} = {known[w0]:.1f}ms > {allowed:.1f}ms", False
        if cur in unknown and not (fit and fit[-1] > cur):
            # just switched here (a probe or another cap): hold until a figure arrives
            return cur, f"{head}: waiting for a measurement at {cur:g}", False
        if not fit:  # over budget and nothing narrower measured: step down, one width a frame
            w = below[-1]
            return w, (f"{head}: {p} at {barrier:g} = {known[barrier]:.1f}ms > "
                       f"{allowed:.1f}ms, trying {w:g}"), False

        base = fit[-1]
        reason = f"{head}: {p} at {base:g} = {known[base]:.1f}ms <= {allowed:.1f}ms"
        if barrier < math.inf:
            reason += f" ({barrier:g}: {known[barrier]:.1f}ms)"
        wider = [w for w in below if w > base]
        if wider and base == cur and now - cam.last_probe >= cfg.probe_interval_s:
            nxt = wider[0]
            estimate = known[base] * nxt / base  # latency grows at least ~linearly with width
            if estimate <= allowed:
                return nxt, (f"{head}: probing {nxt:g} ({p} at {base:g} = {known[base]:.1f}ms, "
                             f"estimate {estimate:.1f}ms <= {allowed:.1f}ms)"), True
        return base, reason, False


def _checked(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if math.isnan(v) or not lo <= v <= hi:
        raise ValueError(f"{name} {v} is outside [{lo:g}, {hi:g}]")
    return v
