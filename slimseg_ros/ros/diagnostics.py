"""
Diagnostics assembly: the node's state as ``diagnostic_msgs`` statuses, one per camera.

A node with several cameras also reports one shared status (totals, shared caps, the host).
The keys and their text form are the contract's (:mod:`.contract`); this module only gathers
the figures from the core's parts and sets the level: WARN for a warning or newly rejected
input, ERROR when an inference failed since the last report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from ..governor import Decision, Governor
from ..governor.ladder import input_text
from ..inference.working_memory import WorkingMemory
from .camera import CameraIO, reliability_name
from .contract import (REJECTED, SKIPPED, Diagnostics, camera_status_name, diagnostics_values,
                       status_name)
from .frame_slots import FrameSlots
from .host_watch import HostWatch
from .rejections import Rejections

SHARED = "shared"  # key of the shared rejections' counts


class DiagnosticsReport:
    """
    Builds the statuses of one node; remembers the rejection counts it last reported.

    Rejections are reported as "N new since the last report", so a burst of bad frames raises
    the level once instead of forever.
    """

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self._reported: dict[str, dict[str, int]] = {}

    def reset(self) -> None:
        """Forget what was reported (a managed node configured again)."""
        self._reported = {}

    def _new_rejections(self, key: str, rejections: Rejections
                        ) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
        """Return (counts, last messages, counts new since the last report) of ``rejections``."""
        counts, last = rejections.snapshot()
        before = self._reported.get(key, {})
        self._reported[key] = counts
        return counts, last, {k: n - before.get(k, 0) for k, n in counts.items()
                              if n > before.get(k, 0)}

    @staticmethod
    def _status(name: str, report: Diagnostics, message: str, warnings: tuple[str, ...],
                new: dict[str, int], hardware_id: str) -> DiagnosticStatus:
        level = DiagnosticStatus.OK
        problems = list(warnings) + [f"{n} {k} input(s) rejected" for k, n in sorted(new.items())]
        if problems:
            level = DiagnosticStatus.ERROR if REJECTED.inference in new else DiagnosticStatus.WARN
            message += " (" + "; ".join(problems) + ")"
        values = [KeyValue(key=k, value=v) for k, v in diagnostics_values(report).items()]
        return DiagnosticStatus(level=level, name=name, message=message,
                                hardware_id=hardware_id, values=values)

    def statuses(self, decisions: Mapping[str, Decision], *, engine: Any, governor: Governor,
                 cameras: Mapping[str, CameraIO], slots: FrameSlots[Any],
                 shared_rejections: Rejections, host: HostWatch,
                 single: bool, memory: WorkingMemory | None = None,
                 points_started: bool = True) -> list[DiagnosticStatus]:
        """Return the statuses for ``decisions`` (one per camera; shared first if several)."""
        engine_fields = {"trained_widths": engine.widths.values, "device": str(engine.device),
                         "backend": engine.backend, "precision": engine.precision,
                         "precision_reason": getattr(engine, "precision_reason", ""),
                         "ladder": ladder_text(engine, governor, points_started),
                         "working_memory": memory_text(memory, governor)}
        hardware = str(engine.device)
        out = []
        if not single:
            counts, last, new = self._new_rejections(SHARED, shared_rejections)
            first = next(iter(decisions.values()))
            warnings = tuple(w for w in first.warnings
                             if all(w in d.warnings for d in decisions.values()))
            summary = "; ".join(f"{n} {d.width:g}" for n, d in decisions.items())
            report = Diagnostics(
                reason=summary, requested_width=governor.requested,
                caps={k: v for k, v in first.caps.items() if k in ("battery", "thermal")},
                frames_received=sum(slots.received.values()),
                frames_processed=sum(c.stats()[0] for c in cameras.values()),
                frames_dropped=sum(slots.dropped.values()), cameras=tuple(cameras),
                skipped=_summed(c.skip_counts() for c in cameras.values()),
                rejected=counts, last_rejected=last, warnings=warnings,
                host=host.status(first, governor.cpu_budget), **engine_fields)
            out.append(self._status(status_name(self.node_name), report,
                                    f"{len(decisions)} cameras: {summary}", warnings, new,
                                    hardware))
        for name, decision in decisions.items():
            cam = cameras[name]
            counts, last, new = self._new_rejections(SHARED if single else cam.name,
                                                     cam.rejections)
            processed, per_width, frame = cam.stats()
            report = Diagnostics(
                active_width=decision.width, input_size=input_text(decision.input_size),
                reason=decision.reason,
                requested_width=governor.requested_for(cam.name), caps=decision.caps,
                frames_received=slots.received[cam.name], frames_processed=processed,
                frames_dropped=slots.dropped[cam.name],
                frames_served=processed + cam.skip_counts().get(SKIPPED.static, 0),
                serving_stride=decision.stride, serving_rate_hz=decision.serving_hz,
                rate_reason=decision.rate_reason, served_cpu_share=decision.served_cpu_share,
                image_topic=cam.image_sub.topic_name,
                image_qos=reliability_name(cam.image_reliability),
                image_publishers=cam.image_publishers, camera=cam.name,
                priority=None if single else governor.priorities[cam.name],
                last_frame=frame, latency=decision.latency, frames_at=per_width,
                rejected=counts, last_rejected=last, skipped=cam.skip_counts(),
                warnings=decision.warnings,
                decided_by=decision.decided_by, cpu_share=decision.cpu_share,
                host=host.status(decision, governor.cpu_budget) if single else None,
                **engine_fields)
            status = (status_name(self.node_name) if single
                      else camera_status_name(self.node_name, cam.name))
            at = "" if decision.input_size is None else f" at {input_text(decision.input_size)}"
            out.append(self._status(status, report, f"width {decision.width:g}{at}: "
                                    f"{decision.reason}", decision.warnings, new, hardware))
        return out


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Add up counters per key (the shared status's skipped frames over every camera)."""
    total: dict[str, int] = {}
    for one in counts:
        for key, n in one.items():
            total[key] = total.get(key, 0) + n
    return total


def memory_text(memory: WorkingMemory | None, governor: Governor) -> str:
    """Say which operating points hold their working memory, and when the rest gave it back."""
    if memory is None:
        return ""
    if not memory.enabled:
        return "every operating point keeps its own"
    held = sorted(memory.held, key=lambda step: (step[0], step[1] is None, step[1] or ()))
    names = ", ".join(f"{w:g}" + (f"@{input_text(size)}" if size else "") for w, size in held)
    return (f"held by {len(held)} of {len(governor.ladder.steps)} operating points"
            f"{f' ({names})' if names else ''}; the others handed back after "
            f"{memory.idle_s:g} s idle")


def ladder_text(engine: Any, governor: Governor, started: bool = True) -> str:
    """
    Say which operating points the budgets choose from, or why only the widths.

    ``started``: whether their preparation has begun (it waits for a first budget).
    """
    note = str(getattr(engine, "ladder_note", ""))
    if not governor.ladder.has_points:
        return note
    if not governor.points_ready:
        if getattr(engine, "ladder", None) is None:  # they could not be prepared
            return note
        if not started:  # only budgets use them
            return (f"{len(governor.ladder.steps) - len(governor.widths)} operating points, "
                    f"prepared once a budget is set, the widths only until then ({note})")
        return (f"preparing {len(governor.ladder.steps) - len(governor.widths)} operating "
                f"points, the widths only until then ({note})")
    return f"{governor.ladder.describe()} ({note})" if note else governor.ladder.describe()
