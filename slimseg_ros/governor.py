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

The latency comes from recent frames (:class:`~.latency.LatencyStore`: a few seconds, a few dozen
frames per width), so the budget reacts to a machine that slows down. :meth:`Governor.decide_from`
reads the store, and when a decision starts a probe it drops the probed width's old figures, so
the probe is judged on its own frames; the decision carries the figures it compared, which is
what the diagnostics show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .latency import LatencyStore, WidthLatency
from .widths import find_width, same_width

_MAX_CELSIUS = 1000.0


def _number(key: str, value: Any) -> float:
    """``value`` as a float, rejecting bools, strings and NaN with the key named."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"governor config '{key}' must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"governor config '{key}' must not be NaN")
    return value


def _thresholds(key: str, value: Any, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """Normalise a threshold table to sorted ``((threshold, max width), ...)``.

    Accepts a list of pairs ``[[15, 0.25], ...]``, a mapping ``{15: 0.25, ...}`` or a flat list
    ``[15, 0.25, 30, 0.5]`` (ROS 2 parameters cannot hold nested lists).
    """
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(value)
        if items and all(isinstance(v, (list, tuple)) for v in items):
            pairs = items
        elif all(not isinstance(v, (list, tuple, Mapping)) for v in items):
            if len(items) % 2:
                raise ValueError(f"governor config '{key}': a flat list needs threshold, width "
                                 f"pairs (even length), got {len(items)} values")
            pairs = [(items[i], items[i + 1]) for i in range(0, len(items), 2)]
        else:
            raise ValueError(f"governor config '{key}' mixes pairs and plain values: {value!r}")
    else:
        raise ValueError(f"governor config '{key}' must be a list of [threshold, width] pairs, "
                         f"got {value!r}")
    out = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"governor config '{key}': {pair!r} is not a [threshold, width] pair")
        t = _number(key, pair[0])
        w = _number(key, pair[1])
        if not lo <= t <= hi:
            raise ValueError(f"governor config '{key}': threshold {t:g} outside [{lo:g}, {hi:g}]")
        if not 0.0 < w <= 1.0:
            raise ValueError(f"governor config '{key}': width {w:g} for threshold {t:g} "
                             f"must be in (0, 1]")
        out.append((t, w))
    ts = [t for t, _ in out]
    if len(set(ts)) != len(ts):
        raise ValueError(f"governor config '{key}' repeats a threshold: {ts}")
    return tuple(sorted(out))


@dataclass(frozen=True)
class GovernorConfig:
    """Thresholds and timings of the width policies (percent 0-100, Celsius, ms, seconds)."""

    battery_thresholds: tuple[tuple[float, float], ...] = ((15.0, 0.25), (30.0, 0.5), (50.0, 0.75))
    thermal_thresholds: tuple[tuple[float, float], ...] = ((70.0, 0.75), (80.0, 0.5), (90.0, 0.25))
    thermal_hysteresis_c: float = 3.0
    budget_percentile: float = 90.0
    budget_margin: float = 0.9
    min_dwell_s: float = 2.0
    stale_timeout_s: float = 10.0
    probe_interval_s: float = 3.0

    def __post_init__(self) -> None:
        # Validate and normalise here so a directly constructed config is as safe as from_dict's.
        set_ = object.__setattr__
        set_(self, "battery_thresholds",
             _thresholds("battery_thresholds", self.battery_thresholds, 0.0, 100.0))
        set_(self, "thermal_thresholds",
             _thresholds("thermal_thresholds", self.thermal_thresholds, -273.15, _MAX_CELSIUS))
        checks = {
            "thermal_hysteresis_c": (lambda v: 0.0 <= v < math.inf, "a finite value >= 0"),
            "budget_percentile": (lambda v: 0.0 < v <= 100.0, "in (0, 100]"),
            "budget_margin": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
            "min_dwell_s": (lambda v: 0.0 <= v < math.inf, "a finite value >= 0"),
            "stale_timeout_s": (lambda v: v > 0.0, "> 0 (inf disables it)"),
            "probe_interval_s": (lambda v: 0.0 < v < math.inf, "finite and > 0"),
        }
        for key, (ok, what) in checks.items():
            v = _number(key, getattr(self, key))
            if not ok(v):
                raise ValueError(f"governor config '{key}' must be {what}, got {v:g}")
            set_(self, key, v)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GovernorConfig:
        """Build from a plain dict (YAML, ROS parameters); missing keys keep their defaults.

        Raises ``ValueError`` naming the key for unknown keys and bad values.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"governor config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown governor config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists of pairs), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["battery_thresholds"] = [list(p) for p in self.battery_thresholds]
        out["thermal_thresholds"] = [list(p) for p in self.thermal_thresholds]
        return out


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


class Governor:
    """Stateful width policy; see the module docstring for the rules."""

    def __init__(self, widths: Sequence[float], config: GovernorConfig) -> None:
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
        self._requested = self._widths[-1]
        self._current = self._widths[-1]
        self._last_change = -math.inf  # time of the last change of the effective width
        self._last_probe = -math.inf
        self._request_pending = False
        self._last_used: dict[float, float] = {}  # width -> last time decide() chose it
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
    def requested(self) -> float:
        """The (snapped) explicitly requested width; the widest trained width until a request."""
        return self._requested

    @property
    def current(self) -> float:
        """The width of the last decision."""
        return self._current

    # ----------------------------------------------------------------------------- inputs
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

    def request(self, width: float) -> float:
        """Explicit width request; applies at the next ``decide`` regardless of dwell time.

        Returns the snapped width. Raises ``ValueError`` (state unchanged) for a bad width.
        """
        snapped = self.snap(width)
        self._requested = snapped
        self._request_pending = True  # the next decision is not held back by dwell
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
        """Latency budget per frame in milliseconds; ``None`` or 0 removes the budget."""
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
        """Choose the width of the next frame.

        ``latency_ms`` maps trained widths to a recent high-percentile latency in milliseconds
        (``None``/missing = not measured recently). Keys are matched to trained widths.
        """
        lat = self._latency_table(latency_ms)
        warnings: list[str] = []
        caps: dict[str, float] = {}
        reasons: dict[str, str] = {}

        cap = self._battery_cap(now, warnings)
        if cap is not None:
            caps["battery"], reasons["battery"] = cap
        cap = self._thermal_cap(now, warnings)
        if cap is not None:
            caps["thermal"], reasons["thermal"] = cap
        cap = self._budget_cap(now, lat, warnings)
        probing = False
        if cap is not None:
            caps["budget"], reasons["budget"], probing = cap

        target = min([self._requested, *caps.values()])
        binding = [reasons[k] for k, v in caps.items() if v == target]
        if target == self._requested:  # the request decides; caps at the same width are named
            binding.insert(0, f"request {self._requested:g}")
        reason = "; ".join(binding)

        width = target
        pending, self._request_pending = self._request_pending, False
        if (target > self._current and not pending
                and now - self._last_change < self._config.min_dwell_s):
            wait = self._config.min_dwell_s - (now - self._last_change)
            width = self._current
            reason = f"dwell: holding {width:g} for {wait:.1f} s more (then {target:g}: {reason})"
        probe_started = False
        if width != self._current:
            self._last_change = now
            if probing and width == caps["budget"]:
                self._last_probe = now
                probe_started = True
        self._current = width
        self._last_used[width] = now
        return Decision(width=width, reason=reason, caps=caps, warnings=tuple(warnings),
                        probing=probe_started)

    def decide_from(self, now: float, store: LatencyStore) -> Decision:
        """:meth:`decide` on the store's recent ``budget_percentile`` of each trained width.

        A decision that starts a probe drops the probed width's old figures from ``store``, so
        the probe is judged on its own frames. The decision carries the figures compared.
        """
        recent = store.recent(self._widths, self._config.budget_percentile, now)
        decision = self.decide(now, {w: r.pq_ms if r else None for w, r in recent.items()})
        if decision.probing:
            store.reset(decision.width)
        return replace(decision, latency={w: r for w, r in recent.items() if r is not None})

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

    def _budget_cap(self, now: float, lat: Mapping[float, float | None],
                    warnings: list[str]) -> tuple[float, str, bool] | None:
        """(cap, reason, whether the cap is a probe of an unmeasured wider width) or None."""
        b = self._budget
        if b is None:
            return None
        if self._is_stale(b, now):
            warnings.append(self._stale_warning("budget", b, now))
            return None
        cfg = self._config
        allowed = b.value * cfg.budget_margin
        p = f"p{cfg.budget_percentile:g}"
        head = f"budget {b.value:g}ms"
        cur = self._current

        def measured(w: float) -> float | None:
            """The latency of ``w`` if it can be trusted now; an over-budget figure of a width
            not used for a probe interval is forgotten (the machine may be faster now)."""
            v = lat[w]
            if v is None:
                return None
            if (v > allowed and w > cur
                    and now - self._last_used.get(w, -math.inf) > cfg.probe_interval_s):
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
        if wider and base == cur and now - self._last_probe >= cfg.probe_interval_s:
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
