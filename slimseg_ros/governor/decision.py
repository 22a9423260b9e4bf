"""
Width governor: turns the request and the battery, thermal and budget inputs into one width.

From the requested width and the battery, thermal, latency-budget and CPU-budget inputs it
chooses one trained width and a human-readable reason.

Pure logic (no rclpy, no torch, no clock reads): every method whose result depends on time takes
``now`` in seconds from any monotonic clock, so tests drive it with made-up times and the node
passes its own clock.

Policy, in one place:

* **Widths** are :class:`~slimseg_ros.widths.Width` values of the governor's
  :class:`~slimseg_ros.widths.TrainedWidths` (an index and its fraction), compared by index.
  Floats exist only at the edges (topics, parameters, YAML): they are snapped there, once, by
  :meth:`TrainedWidths.snap <slimseg_ros.widths.TrainedWidths.snap>` (also
  :meth:`Governor.snap`); the caps of the battery and thermal tables are snapped when a config is
  applied. A float where a width is expected raises ``TypeError``.
* The **request** (``request()``, a snapped width) applies at once, up or down. Values between
  trained widths snap to the nearest trained width not above them.
* **Battery**: ``battery_thresholds`` maps "percent at or below" to a maximum width; the tightest
  matching row wins. Ignored while charging.
* **Thermal**: ``thermal_thresholds`` maps "celsius at or above" to a maximum width. A row becomes
  active at ``T`` and is released only below ``T - thermal_hysteresis_c``, so a temperature that
  wobbles around a threshold does not make the width chatter.
* **Host readings** (``update_host_battery``, ``update_host_temperature``: the computer's own
  battery and hottest CPU/SoC zone) feed the battery and thermal caps while the topic input is
  silent (never heard or stale); a live topic input always wins, and the reason names the source
  (``host thermal 93.0C >= 90C``). The host temperature has its own table,
  :meth:`GovernorConfig.host_thermal_table` (:mod:`.caps`).
* **Budget** (milliseconds per frame): the widest width whose measured recent latency, as given to
  :meth:`Governor.decide` (a high percentile), fits ``budget * budget_margin``. Wider is assumed
  slower: the narrowest width that measurably does not fit bars every wider one. Widths with no
  measurement (or an over-budget measurement older than ``probe_interval_s``, since the machine
  may have become faster) are *probed*: one step above the current width, at most once per
  ``probe_interval_s``, and only if the current width has headroom (its latency scaled by the width
  ratio still fits). A probe that proves too slow is left at the next decision. If the current
  width has not been measured yet (it was just switched to), the budget holds it until it has.
* **CPU budget** (``update_cpu_budget``: a fraction of the usable cores): the same rule on each
  width's predicted CPU share (CPU seconds per frame x frames per second served / usable cores,
  :func:`~.budget.predicted_cpu_share`) against ``cpu_budget * budget_margin``; a
  probe is estimated at no more than the share of frames coming back to back, since a node
  slower than its camera serves fewer frames at a wider width. It is a setting, not a reading,
  so it never goes stale. With both budgets each gives a cap and the
  tighter decides; the reason names the one that did (both when equal), and
  ``Decision.decided_by`` lists what set the width.
* **Effective width** = min(request, caps). Lowering applies at once (a budget violation or a hot
  machine must not wait); an automatic *raise* waits until ``min_dwell_s`` has passed since the
  last change, which stops oscillation between two widths.
* **Rate** (the second actuator, :mod:`.rate`): when even the narrowest width breaks the CPU
  budget, or frames arrive faster than the node serves them, a camera is served every ``k``-th
  frame (:attr:`Decision.stride`), ``k`` as small as keeps the round within both, lower priority
  first, never below ``min_rate_hz``. A stride set by the CPU budget holds the camera's width at
  the narrowest, and a rate increase waits ``min_dwell_s`` like a width increase, so when the
  budget loosens the rate comes back before the width widens. A per-frame latency budget never
  moves the rate (serving fewer frames does not make one faster). Only :meth:`decide_from` and
  :meth:`decide_from_stores` choose strides: they have each camera's costs and arrival rate.
* **Ladder** (:mod:`.ladder`, a model measured at reduced inputs): the budgets choose among
  operating points (a width at a network input) ordered by measured cost instead of among
  widths; the request, battery and thermal caps bound a point's *width*, and with no budget the
  bound runs at the full input, as without a ladder. ``Decision.step`` is the point run
  (``Decision.input_size`` its input), the latency store and figures are keyed by point, and
  "narrowest" above means the cheapest point.
* **Stale inputs**: a battery, temperature or budget input older than ``stale_timeout_s`` stops
  constraining and is named in ``Decision.warnings``.

**Several cameras** (``cameras=[...]``, one shared set of weights): every camera has its own
width, request, dwell and probe state and its own latency figures (frame sizes differ); battery,
thermal and the budgets are shared. A budget then means one round over the cameras that have a
fresh frame (``active``): the sum of their latencies (or CPU shares) at their chosen widths must
fit ``budget * budget_margin``. Cameras are served in order of ``priorities`` (higher first): each
gets as its *share* the allowance minus what the cameras decided before it cost and minus the
narrowest-width cost of those still to come, so a lower-priority camera slims first and widens
last; cameras of equal priority split what is left evenly (what one leaves unused goes to the
next). Each camera's share then goes through the single-camera budget rule above, so one camera
behaves exactly as without cameras. A camera without a fresh frame costs nothing and holds its
width under a budget until it is served again. A camera is also capped by its own request
(``request(w, camera)``), which can only lower it below the shared request. Unmeasured costs
are estimated from the nearest measured width, scaled linearly by width.

The latency and CPU time come from recent frames (:class:`~.latency.LatencyStore`: a few
seconds, a few dozen frames per width), so the budgets react to a machine that slows down.
:meth:`Governor.decide_from` reads the store, and when a decision starts a probe it drops the
probed width's old figures, so the probe is judged on its own frames; the decision carries the
figures it compared, which is what the diagnostics show.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from .caps import (HOST, TOPIC, Reading, SensorCaps, SharedCaps, checked,
                   stale_warning)
from .config import MAX_CELSIUS, GovernorConfig, _number
from .budget import (CPU_METER, BudgetRound, CameraState, Meter, budget_cap,
                     busy_cpu_share, latency_meter, predicted_cpu_share)
from .ladder import Ladder, Step
from .latency import LatencyStore, WidthLatency
from .rate import CameraLoad, choose_strides, served_hz
from ..widths import TrainedWidths, Width

__all__ = ["SINGLE", "Decision", "Governor", "GovernorConfig"]
SINGLE = ""  # the camera name of a governor made without cameras


@dataclass(frozen=True)
class Decision:
    """One decision: the width to run the next frame at, why, the active caps and warnings."""

    width: Width
    reason: str
    # "battery"/"thermal"/"budget"/"cpu_budget" -> width
    caps: dict[str, Width] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # True when ``width`` was just switched to as a budget probe (decide_from has then dropped
    # that width's old latency figures, so it is judged on new frames).
    probing: bool = False
    # The recent latency per step (trained width, or ladder rung) this decision compared
    # (steps with no recent frame left out); filled by decide_from, empty when decide() was
    # given plain figures.
    latency: Mapping[Step, WidthLatency] = field(default_factory=dict)
    # What set the width: "request" or "camera request", "battery", "host battery", "thermal",
    # "host thermal", "budget", "cpu budget" (all that allow exactly this width), led by
    # "dwell" while dwell holds a raise back.
    decided_by: tuple[str, ...] = ()
    # Where the battery and thermal inputs in use come from: "topic" or "host" (key absent:
    # no such input in use).
    sources: Mapping[str, str] = field(default_factory=dict)
    # The predicted CPU share (0-1 of the usable cores) per step this decision compared;
    # filled by decide_from.
    cpu_share: Mapping[Step, float] = field(default_factory=dict)
    # The rate actuator: the camera is served every ``stride``-th frame (1: every frame), why,
    # its serving rate (frames/s; None: arrival rate unknown) and its predicted CPU share at this
    # width and rate (None: not measured); filled by decide_from.
    stride: int = 1
    rate_reason: str = "every frame"
    serving_hz: float | None = None
    served_cpu_share: float | None = None
    # The step run: ``width`` itself, or with a ladder its rung (:mod:`.ladder`), which says
    # the network input too; None only in decisions made by hand.
    step: Step | None = None

    @property
    def operating_point(self) -> Step:
        """Return what runs: the ladder rung (``0.75@224x304``), else the width."""
        return self.step if self.step is not None else self.width

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Return the network input of the step run (None: the model's full input)."""
        return Ladder.input_of(self.step) if self.step is not None else None


class Governor:
    """
    Stateful width policy; see the module docstring for the rules.

    ``widths`` are the model's trained widths (a :class:`~slimseg_ros.widths.TrainedWidths`,
    or numbers to build one from); ``cameras`` names the cameras sharing the weights (default:
    one unnamed camera);
    ``priorities`` gives one number per camera (a sequence in camera order or a mapping by
    name; default all equal), higher is served first under a budget. ``ladder`` (a
    :class:`~.ladder.Ladder` of these widths) adds reduced-input operating points for the
    budgets to choose from; without one the budgets choose among the widths.
    ``points_ready`` False keeps to the widths until :meth:`set_points_ready` (the node
    prepares the points once a budget is first set: only budgets choose them).
    """

    def __init__(self, widths: TrainedWidths | Sequence[float], config: GovernorConfig,
                 cameras: Sequence[str] | None = None,
                 priorities: Sequence[float] | Mapping[str, float] | None = None,
                 ladder: Ladder | None = None, points_ready: bool = True) -> None:
        self._widths = widths if isinstance(widths, TrainedWidths) else TrainedWidths(widths)
        if ladder is not None and ladder.widths != self._widths:
            raise ValueError(f"the ladder is of widths {list(ladder.widths.values)}, the "
                             f"governor's are {list(self._widths.values)}")
        self._ladder = ladder if ladder is not None else Ladder(self._widths)
        self._points_ready = bool(points_ready)
        self._config = config
        names = [SINGLE] if cameras is None else list(cameras)
        if not names or any(not isinstance(n, str) for n in names):
            raise ValueError(f"cameras must be a non-empty list of names, got {cameras!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"cameras must not repeat a name, got {names}")
        top = self._widths.widest
        self._cameras: dict[str, CameraState] = {
            n: CameraState(request=top, current=self._ladder.full(top), priority=1.0)
            for n in names}
        self.set_priorities(priorities)
        self._requested = top  # the shared request (all cameras)
        # battery and thermal, from topics or the host
        self._sensors = SensorCaps(config, self._widths)
        self._budget: Reading | None = None
        self._cpu_budget: float | None = None

    # ----------------------------------------------------------------------------- properties
    @property
    def widths(self) -> TrainedWidths:
        """Trained widths, ascending."""
        return self._widths

    @property
    def ladder(self) -> Ladder:
        """Return the steps the budgets choose from (the widths themselves without a ladder)."""
        return self._ladder

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
    def cpu_budget(self) -> float | None:
        """CPU-share budget (fraction of the usable cores), None when there is none."""
        return self._cpu_budget

    @property
    def requested(self) -> Width:
        """(Snapped) shared request; the widest trained width until a request."""
        return self._requested

    @property
    def current(self) -> Width:
        """Width of the last decision of the only camera (ValueError with several)."""
        return self.current_of(None)

    def current_of(self, camera: str | None) -> Width:
        """Return the width of ``camera``'s last decision (None: the only camera)."""
        return self._ladder.width_of(self._camera(camera).current)

    def step_of(self, camera: str | None) -> Step:
        """Return the step (width, or rung of the ladder) of ``camera``'s last decision."""
        return self._camera(camera).current

    def requested_for(self, camera: str | None) -> Width:
        """Return what ``camera`` is asked for: the smaller of the shared and its own request."""
        return min(self._requested, self._camera(camera).request)

    def _camera(self, camera: str | None) -> CameraState:
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
        """
        One finite number per camera (higher: served first); None or empty: all equal.

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

    def snap(self, width: float) -> Width:
        """
        Nearest trained width not above ``width`` (the smallest one if ``width`` is below all).

        For the edges (topics, parameters): ``self.widths.snap``. Raises ``ValueError`` for NaN,
        <= 0 or > 1 (and non-numbers).
        """
        return self._widths.snap(width)

    def request(self, width: Width, camera: str | None = None) -> Width:
        """
        Request a trained width explicitly, for all cameras (``camera`` None) or for one camera.

        It applies at the next decision regardless of dwell time. A camera's own request caps
        it below the shared one (neither raises it above the other).

        ``width`` is already snapped (:meth:`snap`); a float raises ``TypeError``, so an edge
        that forgot to snap fails loudly. Returns ``width``. Raises ``ValueError`` (state
        unchanged) for a width of other trained widths or an unknown camera.
        """
        if not isinstance(width, Width):
            raise TypeError(f"request takes a Width, got {width!r}: snap the float at the edge "
                            f"with Governor.snap (TrainedWidths.snap) first")
        snapped = self._widths.member(width)
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
        self._sensors.update_battery(TOPIC, checked("battery percent", percent, 0.0, 100.0),
                                     charging, now)

    def update_host_battery(self, percent: float | None, charging: bool, now: float) -> None:
        """
        Set the computer's own battery (percent 0-100), used while the topic's is absent or stale.

        None: the host has no battery (any more).
        """
        self._sensors.update_battery(HOST, percent, charging, now)

    def update_temperature(self, celsius: float, now: float) -> None:
        """Temperature in degrees Celsius; updates the hysteresis state of the thermal table."""
        self._sensors.update_temperature(
            TOPIC, checked("temperature", celsius, -273.15, MAX_CELSIUS), now)

    def update_host_temperature(self, celsius: float | None, now: float,
                                high: float | None = None,
                                critical: float | None = None) -> None:
        """
        Set the computer's own hottest CPU/SoC temperature (Celsius) with its sensor's limits.

        The limits are the sensor's ``high`` and ``critical`` points (psutil's, None where not
        reported). The reading is used while the topic's temperature is absent or stale; None:
        no such reading (any more).
        """
        self._sensors.update_temperature(HOST, celsius, now, high, critical)

    def update_budget(self, budget_ms: float | None, now: float) -> None:
        """
        Set the latency budget per frame (per round over the cameras) in milliseconds.

        ``None`` or 0 removes the budget.
        """
        if budget_ms is None:
            self._budget = None
            return
        b = checked("budget", budget_ms, 0.0, math.inf)
        self._budget = Reading(b, now) if b > 0.0 else None

    def update_cpu_budget(self, fraction: float | None) -> None:
        """
        Set the CPU-share budget: the fraction (0-1) of the usable cores a round's frames may use.

        ``None`` or 0 removes it. A setting, not a reading: it does not go stale.
        """
        if fraction is None:
            self._cpu_budget = None
            return
        f = checked("cpu budget", fraction, 0.0, 1.0)
        self._cpu_budget = f if f > 0.0 else None

    @property
    def has_budget(self) -> bool:
        """Tell whether a latency or CPU-share budget is set (the ladder's points serve them)."""
        return self._budget is not None or self._cpu_budget is not None

    def update_config(self, config: GovernorConfig) -> None:
        """Swap thresholds and timings at runtime; thermal caps held by hysteresis stay held."""
        self._config = config
        self._sensors.update_config(config)

    # ----------------------------------------------------------------------------- decision
    def decide(self, now: float, latency_ms: Mapping[Width | int, float | None],
               cpu_share: Mapping[Width | int, float | None] | None = None) -> Decision:
        """
        Choose the width of the next frame of the only camera.

        ``latency_ms`` maps trained widths to a recent high-percentile latency in milliseconds
        (``None``/missing = not measured recently), ``cpu_share`` to the predicted share of the
        usable cores (0-1) at that width. Keys are this governor's trained widths
        (:class:`~slimseg_ros.widths.Width`, or their indices), with a ladder also its rungs
        (and an int is then a rung's index), never matched by tolerance: a float key raises
        ``TypeError``, a width of other trained widths ``ValueError``.
        """
        name = next(iter(self._cameras)) if len(self._cameras) == 1 else None
        self._camera(name)  # ValueError with several cameras
        shares = None if cpu_share is None else {name: cpu_share}
        return self.decide_cameras(now, {name: latency_ms}, cpu_share=shares)[name]

    def decide_cameras(self, now: float,
                       latency_ms: Mapping[str, Mapping[Width | int, float | None]],
                       active: Collection[str] | None = None,
                       cpu_share: Mapping[str, Mapping[Width | int, float | None]] | None = None,
                       cpu_busy: Mapping[str, Mapping[Width | int, float | None]] | None = None
                       ) -> dict[str, Decision]:
        """
        Choose every camera's width of its next frame.

        ``latency_ms`` and ``cpu_share`` map camera names to what :meth:`decide` takes (a
        camera left out: no figures); ``active`` names the cameras with a fresh frame, which
        alone share the budgets (None: all). ``cpu_busy`` gives per camera and width the share
        used while frames come back to back (:func:`~.budget.busy_cpu_share`), the
        most a wider width's probe is estimated at. Returns a decision per camera, in camera
        order.
        """
        cpu_share = cpu_share or {}
        unknown = [c for c in [*latency_ms, *cpu_share, *(active or ())]
                   if c not in self._cameras]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; cameras: {list(self._cameras)}")
        active_set = set(self._cameras) if active is None else set(active)
        warnings: list[str] = []
        shared = self._sensors.caps(now, warnings)
        budget = self._budget
        if budget is not None and budget.stale(now, self._config.stale_timeout_s):
            warnings.append(stale_warning("budget", budget, now, self._config.stale_timeout_s))
            budget = None
        cfg = self._config
        order = sorted((n for n in self._cameras if n in active_set),
                       key=lambda n: -self._cameras[n].priority)
        rounds = []
        for meter, amount, figures, ceilings in (
                (latency_meter(cfg.budget_percentile), budget and budget.value, latency_ms, {}),
                (CPU_METER, self._cpu_budget, cpu_share, cpu_busy or {})):
            # keys checked with or without a budget, so a float key fails at once
            tables = {n: self._table(figures.get(n, {})) for n in self._cameras}
            tops = {n: self._table(c) for n, c in ceilings.items()}
            if amount:
                rounds.append(BudgetRound(meter, amount, amount * cfg.budget_margin,
                                          self._cheapest(), tables, order, tops))

        decisions: dict[str, Decision] = {}
        left = list(order)
        for _, group in itertools.groupby(order if rounds else (),
                                          key=lambda n: self._cameras[n].priority):
            group = list(group)
            for i, name in enumerate(group):
                left.remove(name)
                own: list[str] = []
                caps = {}
                steps = self._ladder.candidates(self._bound(name, shared), self._points_ready)
                for r in rounds:
                    share = r.share(name, left, len(group) - i - 1)
                    caps[r.meter] = budget_cap(r.meter, steps, self._cameras[name], now,
                                               r.tables[name], share, r.head(share),
                                               cfg.probe_interval_s, own, r.ceilings.get(name))
                decisions[name] = self._decide_one(name, now, shared, caps, warnings + own)
                for r in rounds:
                    r.spend(name, decisions[name].step)
        for name, cam in self._cameras.items():
            if name not in decisions:  # no fresh frame: costs nothing, does not widen
                caps = {r.meter: r.hold(cam.current) for r in rounds}
                decisions[name] = self._decide_one(name, now, shared, caps, list(warnings))
        return {n: decisions[n] for n in self._cameras}

    def set_points_ready(self) -> None:
        """Offer the ladder's points to the budgets from the next decision (they are prepared)."""
        self._points_ready = True

    @property
    def points_ready(self) -> bool:
        """Tell whether the budgets may choose the ladder's points (prepared by the engine)."""
        return self._points_ready

    def _cheapest(self) -> Step:
        """Return the cheapest step the budgets may choose now."""
        if self._points_ready:
            return self._ladder.cheapest
        return self._ladder.full(self._widths.narrowest)

    def _bound(self, name: str, shared: SharedCaps) -> Width:
        """Return the widest width ``name`` may run: its request under the shared caps."""
        return min([self._requested, self._cameras[name].request, *shared.caps.values()])

    def _decide_one(self, name: str, now: float, shared: SharedCaps,
                    budget_caps: Mapping[Meter, tuple[Step, str, bool]],
                    warnings: list[str]) -> Decision:
        """One camera's decision from the shared caps and its budget caps (steps)."""
        cam = self._cameras[name]
        ladder = self._ladder
        caps = dict(shared.caps)
        reasons = dict(shared.reasons)
        names = dict(shared.names)
        probes = {}
        steps: dict[str, Step] = {}
        for meter, (cap, why, probing) in budget_caps.items():
            steps[meter.key] = cap
            caps[meter.key], reasons[meter.key], names[meter.key] = (ladder.width_of(cap), why,
                                                                     meter.name)
            probes[meter.key] = probing

        requested = min(self._requested, cam.request)
        bound = self._bound(name, shared)
        candidates = ladder.candidates(bound, self._points_ready)
        target = min([ladder.full(bound), *steps.values()])
        if ladder.width_of(target) > bound:
            # a cheaper rung of a wider width (a hold, or a figure from before a cap fell): the
            # caps bound the width, so the costliest candidate not dearer than it
            target = max((c for c in candidates if c <= target), default=candidates[0])
        binding_width = ladder.width_of(target)
        at_full = target == ladder.full(binding_width)
        keys = [k for k, v in caps.items()
                if (steps[k] == target if k in steps else at_full and v == binding_width)]
        if not keys:  # clamped above: the caps at the bound, then the budgets
            keys = [k for k, v in caps.items() if k not in steps and v == bound] + list(steps)
        binding = [reasons[k] for k in keys]
        decided = [names[k] for k in keys]
        if target == ladder.full(requested):  # the request decides; caps there are named
            label = "camera request" if cam.request < self._requested else "request"
            binding.insert(0, f"{label} {requested:g}")
            decided.insert(0, label)
        reason = "; ".join(binding)

        cheapest = cam.cheapest = candidates[0]
        if cam.stride > 1 and cam.stride_by_budget and target > cheapest:
            # rate before width: the width widens only once every frame is served again
            reason = (f"rate first: serving 1 in {cam.stride} frames for the cpu budget, "
                      f"width {cheapest:g} until every frame is served (then {target:g}: "
                      f"{reason})")
            decided.insert(0, "rate")
            target = cheapest
        step = target
        pending, cam.request_pending = cam.request_pending, False
        if (target > cam.current and not pending and ladder.width_of(cam.current) <= bound
                and now - cam.last_change < self._config.min_dwell_s):
            wait = self._config.min_dwell_s - (now - cam.last_change)
            step = cam.current
            reason = f"dwell: holding {step:g} for {wait:.1f} s more (then {target:g}: {reason})"
            decided.insert(0, "dwell")
        probe_started = False
        if step != cam.current:
            cam.last_change = now
            if any(probing and step == steps[k] for k, probing in probes.items()):
                cam.last_probe = now
                probe_started = True
        cam.current = step
        cam.last_used[step] = now
        return Decision(width=ladder.width_of(step), reason=reason, caps=caps,
                        warnings=tuple(warnings), probing=probe_started,
                        decided_by=tuple(decided), sources=dict(shared.sources), step=step)

    def decide_from(self, now: float, store: LatencyStore, frame_rate: float | None = None,
                    cores: int = 1) -> Decision:
        """
        Run :meth:`decide` on the figures in ``store``.

        The latency is the store's recent ``budget_percentile`` of each trained width and, for
        the CPU budget, each width's CPU share predicted from the store's CPU times, the
        camera's ``frame_rate`` (frames/s arriving) and the usable ``cores``.

        A decision that starts a probe drops the probed width's old figures from ``store``, so
        the probe is judged on its own frames. The decision carries the figures compared.
        """
        name = next(iter(self._cameras)) if len(self._cameras) == 1 else None
        self._camera(name)  # ValueError with several cameras
        rates = None if frame_rate is None else {name: frame_rate}
        return self.decide_from_stores(now, {name: store}, frame_rates=rates, cores=cores)[name]

    def decide_from_stores(self, now: float, stores: Mapping[str, LatencyStore],
                           active: Collection[str] | None = None,
                           frame_rates: Mapping[str, float] | None = None,
                           cores: int = 1) -> dict[str, Decision]:
        """
        Run :meth:`decide_cameras` on each camera's store (as :meth:`decide_from` does).

        Each camera's frame rate is in ``frame_rates`` (none: its CPU share is not known).
        """
        q = self._config.budget_percentile
        rates = frame_rates or {}
        recent = {n: s.recent(self._ladder.steps, q, now) for n, s in stores.items()}
        shares = {n: {w: predicted_cpu_share(r, rates.get(n), cores) for w, r in rs.items()}
                  for n, rs in recent.items()}
        busy = {n: {w: busy_cpu_share(r, cores) for w, r in rs.items()}
                for n, rs in recent.items()}
        decisions = self.decide_cameras(
            now, {n: {w: r.pq_ms if r else None for w, r in rs.items()}
                  for n, rs in recent.items()}, active, shares, busy)
        loads = self._pace(now, decisions, recent, rates, cores, active)
        out = {}
        for name, decision in decisions.items():
            if decision.probing and name in stores:
                stores[name].reset(decision.step)
            figures = recent.get(name, {})
            cam = self._cameras[name]
            load = loads.get(name)
            rate = rates.get(name)
            warnings = decision.warnings
            if cam.stride > 1 and cam.stride_by_budget:  # the rate meets what the width cannot
                warnings = tuple(w for w in warnings
                                 if not (w.startswith(CPU_METER.name) and "cannot be met" in w))
            if "cannot be met at the floor" in cam.pace_reason:
                warnings += (f"{cam.pace_reason.split(': ', 1)[1]}",)
            out[name] = replace(
                decision, latency={w: r for w, r in figures.items() if r is not None},
                cpu_share={w: v for w, v in shares.get(name, {}).items() if v is not None},
                stride=cam.stride, rate_reason=cam.pace_reason, warnings=warnings,
                serving_hz=None if rate is None else rate / cam.stride,
                served_cpu_share=None if load is None else (
                    load.cpu_ms / 1000.0 * served_hz(load, cam.stride) / max(1, int(cores))))
        return out

    def _pace(self, now: float, decisions: Mapping[str, Decision],
              recent: Mapping[str, Mapping[Step, WidthLatency | None]],
              rates: Mapping[str, float | None], cores: int,
              active: Collection[str] | None) -> dict[str, CameraLoad]:
        """
        Choose every camera's stride (:mod:`.rate`); a rate increase waits for dwell.

        A camera without a fresh frame, an arrival rate or measured costs at its decided width
        keeps its stride. Returns the loads the strides were chosen from.
        """
        cfg = self._config
        loads = {}
        for name, decision in decisions.items():
            figures = recent.get(name, {}).get(decision.step)
            hz = rates.get(name)
            if ((active is not None and name not in active) or figures is None
                    or figures.cpu_ms is None or not figures.mean_ms or not hz):
                continue
            loads[name] = CameraLoad(float(hz), figures.cpu_ms, figures.mean_ms,
                                     self._cameras[name].priority,
                                     decision.step == self._cameras[name].cheapest)
        if not loads:
            return loads
        allowed = None if self._cpu_budget is None else self._cpu_budget * cfg.budget_margin
        paces = choose_strides(loads, cpu_allowed=allowed, cores=cores,
                               load_allowed=1.0, min_rate_hz=cfg.min_rate_hz)
        for name, pace in paces.items():
            cam = self._cameras[name]
            if pace.stride < cam.stride and now - cam.last_change < cfg.min_dwell_s:
                wait = cfg.min_dwell_s - (now - cam.last_change)
                cam.pace_reason = (f"dwell: holding 1 in {cam.stride} frames for {wait:.1f} s "
                                   f"more (then {pace.reason})")
                continue
            if pace.stride != cam.stride:
                cam.last_change = now
            cam.stride, cam.stride_by_budget = pace.stride, pace.by_budget
            cam.pace_reason = pace.reason
        return loads

    # ----------------------------------------------------------------------------- internals
    def _table(self, figures: Mapping[Step | int, float | None]) -> dict[Step, float | None]:
        """
        Return the figures per step (bad values dropped).

        Keys are this governor's :class:`Width` values (with a ladder: its full-input rung),
        rungs of its ladder, or indices (:meth:`~.ladder.Ladder.member`); a float key raises
        ``TypeError``, a width of other trained widths ``ValueError``.
        """
        table: dict[Step, float | None] = {s: None for s in self._ladder.steps}
        for key, value in figures.items():
            step = self._ladder.member(key)
            if value is None:
                continue
            v = float(value)
            if math.isfinite(v) and v >= 0.0:
                table[step] = v
        return table
