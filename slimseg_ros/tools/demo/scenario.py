"""
The demo's scripted stories and their playing through the client, phase by phase.

One camera: explicit width commands, a draining battery, a thermal spike, a tight then relaxed
latency budget, a tight CPU-share budget then none, a CPU budget below the narrowest width's
cost (held by serving every k-th frame), and a scene that holds still (with sensor noise)
then moves, first inferred frame by frame, then with ``skip_static`` on. Several cameras (the
node's ``cameras``, the first with the highest priority): the width sweep, all cameras free, a
tight budget under which the first camera keeps its width while the others slim, the last
camera dropping out and coming back, the budget lifted.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...ros.contract import read_diagnostics
from ...widths import find_width, same_width
from ..node_process import log_tail
from . import DemoError
from .client import DemoClient, Record
from .report import latency_table
from .sources import Source


CPU_FALLBACK = 0.1  # the tight CPU budget when no CPU share was measured (a tenth of the cores)
FIRST_CAMERA_HEADROOM = 1.25  # the first camera's full-width latency, times this, in "tight"


@dataclass
class Phase:
    """One step of the scenario; ramps run linearly from the first to the second value."""

    name: str
    seconds: float
    request: float | None = None           # width command sent at the start
    battery: tuple[float, float] = (100.0, 100.0)   # percent, start -> end
    charging: bool = False
    temperature: tuple[float, float] = (45.0, 45.0)  # celsius, start -> end
    budget: str | float = 0.0              # ms; "tight"/"relaxed" are set from measured latency
    cpu_budget: str | float = 0.0          # share of the cores; "tight" from measured CPU shares
    montage: bool = False                  # hold frame 0 until the montage has its mask
    expect: str = ""                       # what the phase should show, for the report
    silent: tuple[str, ...] = ()           # cameras that publish no frame during the phase
    still: bool = False                    # the scene holds still: one frame plus sensor noise
    skip_static: bool | None = None        # the node's skip_static, set at the start
    keep_masks: bool = False               # keep the masks to compare phases frame by frame


def scenario(phase_s: float, widths: list[float]) -> list[Phase]:
    """Return the scripted story; ``phase_s`` scales every phase."""
    p = phase_s
    phases = [Phase("start at full width", p, request=max(widths), expect="width 1.0 by request")]
    for w in sorted(widths):
        phases.append(Phase(f"request {w:g}", p, request=w, montage=True,
                            expect=f"width {w:g} by request"))
    phases += [
        Phase("battery drains", 2.5 * p, battery=(80.0, 5.0),
              expect="width steps down as the battery crosses 50/30/15%"),
        Phase("charger plugged in", p, battery=(5.0, 8.0), charging=True,
              expect="battery cap lifted while charging"),
        Phase("thermal spike", 2.0 * p, battery=(8.0, 10.0), charging=True,
              temperature=(50.0, 95.0), expect="width steps down at 70/80/90C"),
        Phase("cooling down", 1.5 * p, battery=(10.0, 12.0), charging=True,
              temperature=(95.0, 50.0), expect="caps released only below threshold - hysteresis"),
        Phase("tight budget", 2.0 * p, battery=(12.0, 14.0), charging=True,
              budget="tight", expect="width lowered to fit the latency budget"),
        Phase("relaxed budget", 2.5 * p, battery=(14.0, 16.0), charging=True,
              budget="relaxed", expect="width probes back up to full"),
        Phase("tight CPU budget", 2.5 * p, battery=(16.0, 18.0), charging=True,
              cpu_budget="tight", expect="width lowered to fit the CPU-share budget"),
        Phase("CPU budget lifted", 2.5 * p, battery=(18.0, 20.0), charging=True,
              expect="width probes back up to full"),
        Phase("CPU budget below width 0.25", 2.5 * p, battery=(20.0, 22.0), charging=True,
              cpu_budget="below", expect="narrowest width, then every k-th frame: the "
              "predicted share of the frames served fits the budget"),
        Phase("CPU budget lifted again", 2.5 * p, battery=(22.0, 24.0), charging=True,
              expect="every frame served again, then the width climbs"),
        # at width 0.5 a slow computer still serves every frame: both phases see the same frames
        Phase("scene holds still", 1.5 * p, request=0.5, battery=(24.0, 25.0), charging=True,
              still=True, skip_static=False, keep_masks=True,
              expect="one frame with sensor noise, every frame inferred"),
        Phase("still, skip_static on", 1.5 * p, battery=(25.0, 26.0), charging=True,
              still=True, skip_static=True, keep_masks=True,
              expect="the same frames: the last mask republished, inferred once per "
              "static_max_age_s"),
        Phase("scene moves, skip_static on", 1.5 * p, battery=(26.0, 27.0), charging=True,
              skip_static=True, expect="every frame differs: every frame inferred"),
    ]
    return phases


def camera_scenario(phase_s: float, widths: list[float], cameras: Sequence[str]) -> list[Phase]:
    """
    Return the multi-camera story for ``cameras``; ``phase_s`` scales every phase.

    ``cameras`` are at least two; the first has the highest priority, the last drops out for a
    phase.
    """
    if len(cameras) < 2:
        raise ValueError(f"the multi-camera scenario needs two cameras or more, got {cameras}")
    p = phase_s
    front, sides, gone = cameras[0], ", ".join(cameras[1:]), cameras[-1]
    phases = [Phase(f"request {w:g}", p, request=w, montage=True,
                    expect=f"every camera at {w:g} by request (its latency measured)")
              for w in sorted(widths)]
    phases += [
        Phase("all free", p, request=max(widths), expect="every camera at full width"),
        Phase("tight budget", 2.5 * p, budget="tight",
              expect=f"{front} keeps the widest width, {sides} slim to fit the round"),
        Phase(f"{gone} drops out", 2.5 * p, budget="tight", silent=(gone,),
              expect=f"{gone} sends nothing and stops costing budget: the others may widen"),
        Phase(f"{gone} returns", 2.0 * p, budget="tight",
              expect=f"{gone} is served again; the round is shared by every camera again"),
        Phase("budget lifted", 1.5 * p, expect="every camera back to full width"),
    ]
    return phases


def phase_budgets(record: Record, widths: list[float], margin: float,
                  cheapest: float = 1.0) -> dict[str, float]:
    """
    Derive the budgets from the latency the governor compared during the width sweep.

    That latency is, per camera, the last figure per width in its diagnostics; end to end where
    there is none.

    One camera: "tight" lies between the two middle widths (the governor should settle on a
    middle width). Several: the first camera (highest priority) at full width plus every other
    camera between the two middle widths, so the first keeps its width while the others slim
    (the first camera's full-width figure counts 1.25 times, so a passing spike of its own
    latency does not slim it).
    "relaxed" is three times a round at full width (the governor should probe back to full).
    "cpu_tight" (one camera; a share of the cores) lies between the CPU shares the node predicted
    for the two middle widths at the camera's rate; "cpu_below" is half the share it predicted
    for the narrowest width, times ``cheapest`` (the model's cheapest operating point's cost
    over the narrowest width's: with a ladder only serving fewer frames can meet it either).
    """
    ws = sorted(widths)
    lo, hi = ws[max(0, len(ws) // 2 - 1)], ws[min(len(ws) - 1, len(ws) // 2)]
    out = _latency_budgets(record, ws, lo, hi, margin)
    shares = _typical_cpu_share(record, record.cameras[0])
    a, b = shares.get(lo), shares.get(hi)
    if a and b and len(record.cameras) == 1:
        out["cpu_tight"] = round(min(1.0, _between(a, b) / margin), 4)
    narrowest = shares.get(ws[0])
    if narrowest and len(record.cameras) == 1:
        out["cpu_below"] = round(0.5 * narrowest * cheapest, 5)
    return out


def _between(a: float, b: float) -> float:
    """Return a cost between ``a`` (fits) and ``b`` (does not): their geometric mean."""
    return math.sqrt(a * b) if b > a else a * 1.05


def _latency_budgets(record: Record, widths: list[float], lo: float, hi: float,
                     margin: float) -> dict[str, float]:
    """Return the "tight" and "relaxed" latency budgets (ms); see :func:`phase_budgets`."""
    widest = widths[-1]
    typical = {cam: _typical_latency(record, widths, cam) for cam in record.cameras}
    between, full = [], []
    for cam in record.cameras:
        a, b = typical[cam].get(lo), typical[cam].get(hi)
        known = list(typical[cam].values())
        if a is None or b is None or not known:
            return {"tight": 50.0, "relaxed": 1000.0}
        between.append(_between(a, b))
        full.append(typical[cam].get(widest) or max(known))
    if len(record.cameras) == 1:
        tight = between[0]
    else:  # the first camera's share has room for a passing spike of its own latency
        tight = FIRST_CAMERA_HEADROOM * full[0] + sum(between[1:])
    return {"tight": round(tight / margin, 2), "relaxed": round(3.0 * sum(full) / margin, 2)}


def _typical_cpu_share(record: Record, camera: str) -> dict[float, float]:
    """Return per width the last CPU share (of the cores) ``camera``'s diagnostics predicted."""
    shares: dict[float, float] = {}
    for d in record.diagnostics:
        if d.get("camera", "") == camera:
            shares.update(read_diagnostics(d["values"]).cpu_share)
    return shares


def _typical_latency(record: Record, widths: list[float], camera: str) -> dict[float, float]:
    """
    Return per trained width the last figure ``camera``'s diagnostics gave (ms).

    Else the width's end to end p90 is used; widths with neither are left out.
    """
    compared: dict[float, float] = {}
    for d in record.diagnostics:
        if d.get("camera", "") == camera:
            for w, r in read_diagnostics(d["values"]).latency.items():
                compared[w] = r.pq_ms
    e2e = {r["width"]: r["e2e_p90_ms"] for r in latency_table(record, widths, camera)}
    out = {}
    for w in widths:
        value = compared.get(find_width(tuple(compared), w)) or e2e.get(w)
        if value is not None:
            out[w] = value
    return out


def play(client: DemoClient, proc: subprocess.Popen, sources: Mapping[str, Source],
         record: Record, phases: Sequence[Phase], widths: list[float], phase_s: float,
         fps: float, margin: float, clock: Callable[[], float], log_path: Path,
         cheapest: float = 1.0) -> float:
    """
    Play ``phases`` to the node process ``proc``; return the end time on the scenario clock.

    Every camera is offered ``fps`` frames per second (``sources``: camera -> its frames); the
    end time is in seconds. A montage phase holds frame 0 of the montage camera until the
    montage has its mask at the phase's width, then goes on replaying.
    """
    period = 1.0 / fps
    input_period = 0.25
    still: tuple[int, object] | None = None  # the held frame's index and pixels
    budgets: dict[str, float] = {}
    montage_cam = client.montage_camera
    for ph in phases:
        if proc.poll() is not None:
            raise DemoError(f"the node exited with code {proc.returncode}; last lines of "
                            f"{log_path}:\n{log_tail(log_path)}")
        if (isinstance(ph.budget, str) or isinstance(ph.cpu_budget, str)) and not budgets:
            budgets = phase_budgets(record, widths, margin, cheapest)
        budget = budgets.get(ph.budget, 0.0) if isinstance(ph.budget, str) else ph.budget
        cpu_budget = (budgets.get(f"cpu_{ph.cpu_budget}", CPU_FALLBACK)
                      if isinstance(ph.cpu_budget, str) else ph.cpu_budget)
        start = clock()
        entry = {"name": ph.name, "start": start, "end": start + ph.seconds, "expect": ph.expect,
                 "budget_ms": budget, "budget_kind": ph.budget if isinstance(ph.budget, str)
                 else "", "cpu_budget": cpu_budget, "silent": list(ph.silent),
                 "still": ph.still, "skip_static": ph.skip_static, "keep_masks": ph.keep_masks,
                 "margin": margin}
        record.phases.append(entry)
        client.phase = ph.name
        print(f"[demo] {start:6.1f} s  {ph.name}" + (f" ({budget:.1f} ms)" if budget else "")
              + (f" (CPU budget {100 * cpu_budget:.1f}% of the cores)" if cpu_budget else ""),
              flush=True)
        if ph.request is not None:
            client.publish_width(ph.request)
        if ph.skip_static is not None:
            client.set_parameter("skip_static", ph.skip_static)
        if ph.still and still is None:
            source = sources[montage_cam]
            still = (source.index, source.next())
        elif not ph.still:
            still = None
        client.keep_masks = ph.keep_masks
        frame_no = 0
        next_frame = next_input = clock()
        armed = False
        while (now := clock()) < start + ph.seconds:
            frac = (now - start) / ph.seconds
            if now >= next_input:
                client.publish_inputs(_lerp(ph.battery, frac), ph.charging,
                                      _lerp(ph.temperature, frac), budget, cpu_budget)
                next_input = now + input_period
            if now >= next_frame:
                with client.lock:
                    holding = ph.montage and not (ph.request in record.montage
                                                  and ph.request in record.montage_color)
                    active = client.active_width[montage_cam]
                    if (holding and not armed and active is not None
                            and same_width(active, ph.request)):
                        client.montage_width = ph.request
                        client.montage_after = clock()
                        armed = True
                for cam, source in sources.items():
                    if cam in ph.silent:
                        continue
                    if still is not None and cam == montage_cam:
                        client.publish_frame(with_noise(still[1], frame_no), still[0], cam,
                                             tag=frame_no)
                        frame_no += 1
                    elif holding and cam == montage_cam:
                        client.publish_frame(source.first, 0, cam)
                    else:
                        rgb = source.next()
                        client.publish_frame(rgb, source.index, cam)
                next_frame = max(next_frame + period, now)
            time.sleep(max(0.0, min(next_frame, next_input) - clock()))
        if ph.montage:
            with client.lock:
                client.montage_width = None
        entry["end"] = clock()
    time.sleep(min(1.0, phase_s / 2))  # let the last masks and diagnostics arrive
    return clock()


def with_noise(rgb: Any, seed: int, sigma: float = 2.0) -> Any:
    """Return ``rgb`` with a camera's sensor noise (Gaussian, ``sigma`` levels) of ``seed``."""
    import numpy as np

    noise = np.random.default_rng(seed).normal(0.0, sigma, rgb.shape)
    return np.clip(rgb.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _lerp(pair: tuple[float, float], frac: float) -> float:
    a, b = pair
    return a + (b - a) * min(max(frac, 0.0), 1.0)
