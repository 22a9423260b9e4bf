"""
The demo's report folder, all from what the client recorded.

Timeline and montage figures, latency and decision tables, the per-phase summary, the masks'
mIoU against the generated frames' label maps, ``report.md`` and ``report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...ros.contract import SKIPPED, Diagnostics, read_diagnostics
from ...widths import find_width, same_width
from ..common import (describe_size, escape_cell, format_size, markdown_header, markdown_row,
                      markdown_table)
from ..node_process import CAMVID_CLASSES, CAMVID_PALETTE
from .client import Record, parse_diagnostic_values
from .scene import CLASS_MISMATCH_SENTENCE, scene_classes_match, scene_report_sentence


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def latency_table(record: Record, widths: list[float], camera: str | None = None
                  ) -> list[dict[str, Any]]:
    """
    Tabulate per width the end-to-end latency and the node's own figures.

    End-to-end is publish -> mask received; the node's figures are inference only, from its last
    diagnostics that had that width. Both are of ``camera`` (None: of every camera).
    """
    node_figs: dict[float, dict[str, float]] = {}
    for d in record.diagnostics:
        if camera is None or d.get("camera", "") == camera:
            for w, figs in parse_diagnostic_values(d["values"]).get("latency", {}).items():
                node_figs[w] = figs
    rows = []
    for w in widths:
        e2e = [m["latency_ms"] for m in record.masks
               if m["width"] is not None and same_width(m["width"], w)
               and (camera is None or m.get("camera", "") == camera)]
        node = node_figs.get(find_width(tuple(node_figs), w), {})
        rows.append({
            "width": w, "masks": len(e2e),
            "e2e_mean_ms": float(np.mean(e2e)) if e2e else None,
            "e2e_p50_ms": _percentile(e2e, 50), "e2e_p90_ms": _percentile(e2e, 90),
            "node_p50_ms": node.get("p50"), "node_p90_ms": node.get("p90"),
        })
    return rows


def _fmt(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _step_series(points: list[tuple[float, float]], t_end: float
                 ) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for t, v in points:
        xs.append(t)
        ys.append(v)
    if xs:
        xs.append(t_end)
        ys.append(ys[-1])
    return xs, ys


def plot_timeline(record: Record, path: Path, t_end: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1.2, 1.0]})
    ax_w, ax_l, ax_e = axes
    colours = ["#f4f4f4", "#e3ecf7"]
    for i, ph in enumerate(record.phases):
        for ax in axes:
            ax.axvspan(ph["start"], ph["end"], color=colours[i % 2], zorder=0)
        ax_w.text((ph["start"] + ph["end"]) / 2, 1.13, ph["name"], ha="center", va="bottom",
                  fontsize=7, rotation=20)
    xs, ys = _step_series(record.requests, t_end)
    ax_w.step(xs, ys, where="post", color="tab:gray", ls="--", label="requested width")
    single = record.cameras == [""]
    colour = {cam: f"C{i}" for i, cam in enumerate(record.cameras)}
    for i, cam in enumerate(record.cameras):  # one line per camera, drawn apart a little
        xs, ys = _step_series(record.active.get(cam, []), t_end)
        ys = [y - 0.012 * i for y in ys]
        ax_w.step(xs, ys, where="post", color=colour[cam], lw=2,
                  label="active width" if single else f"active width: {cam}")
    ax_w.set_ylim(0, 1.1)
    ax_w.set_ylabel("width")
    ax_w.legend(loc="lower left", fontsize=8)
    if record.masks:
        ax_l.scatter([m["t"] for m in record.masks], [m["latency_ms"] for m in record.masks],
                     s=6, c=[m["width"] if m["width"] is not None else 0 for m in record.masks],
                     cmap="viridis", vmin=0, vmax=1,
                     label="end to end, per frame (colour: width)")
    # what the governor compares with the budget: the node's p90 at the active width (with
    # cameras: per camera, and their sum over one round, from one diagnostics message each)
    seen: dict[str, list[tuple[float, float]]] = {}
    rounds: dict[float, float] = {}
    for d in record.diagnostics:
        parsed = parse_diagnostic_values(d["values"])
        figs = parsed.get("latency", {}).get(parsed.get("width"))
        if figs and "p90" in figs and d.get("camera", "") is not None:
            seen.setdefault(d.get("camera", ""), []).append((d["t"], figs["p90"]))
            rounds[d["t"]] = rounds.get(d["t"], 0.0) + figs["p90"]
    for cam, points in seen.items():
        label = "node inference p90 at the active width" + ("" if single else f": {cam}")
        ax_l.plot([p[0] for p in points], [p[1] for p in points], lw=1,
                  color="black" if single else colour[cam], label=label)
    if not single and rounds:
        ts = sorted(rounds)
        ax_l.plot(ts, [rounds[t] for t in ts], color="black", lw=1.5,
                  label="sum over the cameras (one round)")
    bud = [(d["t"], d["budget_ms"] if d["budget_ms"] > 0 else float("nan"))
           for d in record.inputs]
    if bud:
        ax_l.plot([b[0] for b in bud], [b[1] for b in bud], color="tab:red", label="budget")
    ax_l.set_ylabel("ms")
    ax_l.legend(loc="upper left", fontsize=8)
    if not single:  # battery and temperature stay put here: show each camera's masks instead
        _plot_masks_per_second(ax_e, record, t_end, colour)
    elif record.inputs:
        ts = [d["t"] for d in record.inputs]
        ax_e.plot(ts, [d["battery"] for d in record.inputs], color="tab:green",
                  label="battery %")
        ax_e.set_ylabel("battery %")
        ax_t = ax_e.twinx()
        ax_t.plot(ts, [d["temperature"] for d in record.inputs], color="tab:orange",
                  label="temperature C")
        ax_t.set_ylabel("temperature C")
        ax_e.legend(loc="upper left", fontsize=8)
        ax_t.legend(loc="upper right", fontsize=8)
    ax_e.set_xlabel("time since start of the scenario (s)")
    ax_e.set_xlim(0.0, t_end)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_masks_per_second(ax: Any, record: Record, t_end: float, colour: dict[str, str],
                           bin_s: float = 0.5) -> None:
    """
    Plot the masks received per second per camera, in ``bin_s`` bins.

    A camera that drops out goes to zero and comes back.
    """
    edges = np.arange(0.0, t_end + bin_s, bin_s)
    for i, cam in enumerate(record.cameras):  # drawn apart a little, like the widths
        counts, _ = np.histogram([m["t"] for m in record.masks if m.get("camera") == cam],
                                 bins=edges)
        ax.step(edges[:-1], counts / bin_s - 0.15 * i, where="post", color=colour[cam],
                lw=1.5, label=f"masks received per second: {cam}")
    ax.set_ylabel("masks / s")
    ax.legend(loc="center left", fontsize=8)  # clear of the lines at the top and at zero


def plot_montage(record: Record, frame: np.ndarray, info: dict[str, Any], widths: list[float],
                 table: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ...ros.conversions import colorize, palette_lut

    lut = palette_lut(info["palette"] or CAMVID_PALETTE)
    e2e = {r["width"]: r["e2e_p50_ms"] for r in table}
    confidence = bool(record.montage_confidence)
    rows = 2 if confidence else 1
    fig, grid = plt.subplots(rows, len(widths) + 1, figsize=(3.2 * (len(widths) + 1),
                                                             3.4 + 2.6 * (rows - 1)),
                             squeeze=False)
    axes = grid[0]
    axes[0].imshow(frame)
    axes[0].set_title("input", fontsize=9)
    if confidence:
        grid[1][0].text(0.5, 0.5, "confidence\n(slimseg/confidence)\nwhite: sure\n"
                        "dark: unsure", ha="center", va="center", fontsize=9)
        for ax, w in zip(grid[1][1:], widths):
            conf = record.montage_confidence.get(w)
            if conf is None:
                ax.set_title("no confidence received", fontsize=8)
                continue
            ax.imshow(conf, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            below = float((conf < 128).mean() * 100.0)
            ax.set_title(f"width {w:g}: {below:.0f}% of pixels below 0.5", fontsize=8)
    for ax, w in zip(axes[1:], widths):
        if w in record.montage_color:
            img, src = record.montage_color[w], "slimseg/color"
        elif w in record.montage:
            img, src = colorize(record.montage[w], lut), "slimseg/mask"
        else:
            img, src = np.zeros_like(frame), "no mask received"
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"width {w:g} (p50 {_fmt(e2e.get(w))} ms)\n{src}", fontsize=9)
    for ax in grid.flat:
        ax.axis("off")
    names = info["class_names"] or list(CAMVID_CLASSES)
    handles = [Patch(color=np.asarray(lut[i]) / 255.0, label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 11), fontsize=7)
    title = "one frame at every width" + (" (and its confidence)" if confidence else "")
    if info.get("untrained"):
        title += " (UNTRAINED model: masks mean nothing)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _camera_in_phase(record: Record, ph: dict[str, Any], camera: str) -> dict[str, Any]:
    """Summarise one camera in one phase: widths on its active-width topic, reasons, frames."""
    active = record.active.get(camera, [])
    before = [w for t, w in active if t <= ph["start"]]
    seen = ([before[-1]] if before else []) + [w for t, w in active
                                               if ph["start"] < t <= ph["end"]]
    reasons = []
    for d in record.decisions:
        if (d.get("camera", "") == camera and ph["start"] <= d["t"] <= ph["end"]
                and d["reason"] not in reasons):
            reasons.append(d["reason"])
    masks = sum(1 for m in record.masks
                if m["phase"] == ph["name"] and m.get("camera", "") == camera)
    frames = sum(1 for f in record.frames
                 if f["phase"] == ph["name"] and f.get("camera", "") == camera)
    mean, held = _time_in_phase(active, ph["start"], ph["end"])
    return {"widths": seen, "min_width": min(seen) if seen else None,
            "final_width": seen[-1] if seen else None, "mean_width": mean, "held_width": held,
            "reasons": reasons, "frames_sent": frames, "masks_received": masks}


def _time_in_phase(points: list[tuple[float, float]], start: float, end: float
                   ) -> tuple[float | None, float | None]:
    """
    Return a width series' time-weighted mean over ``[start, end]`` and the width held longest.

    Both are robust to the short probes and drops a budget causes (None: no width).
    """
    held: dict[float, float] = {}
    current = None
    for t, w in points:
        if t <= start:
            current = w
    t0 = start
    for t, w in [(t, w) for t, w in points if start < t < end] + [(end, None)]:
        if current is not None:
            held[current] = held.get(current, 0.0) + t - t0
        t0, current = t, w
    total = sum(held.values())
    if total <= 0:
        return None, None
    mean = sum(w * d for w, d in held.items()) / total
    return round(mean, 3), max(held, key=lambda w: (held[w], w))


def _node_cpu_share(record: Record, ph: dict[str, Any]) -> float | None:
    """Return the median CPU share (0-1 of the cores) the node measured of itself in a phase."""
    shares = []
    for d in record.diagnostics:
        if ph["start"] <= d["t"] <= ph["end"] and d.get("camera", "") in ("", None):
            host = read_diagnostics(d["values"]).host
            if host is not None and host.node_cpu_share is not None:
                shares.append(host.node_cpu_share)
    return round(float(np.median(shares)), 4) if shares else None


def _phase_diagnostics(record: Record, ph: dict[str, Any]) -> list[Diagnostics]:
    """Return the single camera's diagnostics within a phase, in order."""
    return [read_diagnostics(d["values"]) for d in record.diagnostics
            if ph["start"] <= d["t"] <= ph["end"] and d.get("camera", "") == ""]


def rate_and_static(record: Record) -> dict[str, Any]:
    """
    Summarise the rate actuator and static scenes from one camera's diagnostics, per phase.

    Per phase: the node's predicted share of the frames it serves (median), the largest serving
    stride and the last rate reason, and how many frames it inferred, republished (static
    scene) and skipped by rate. ``agreement``: the masks of the phase with ``skip_static``
    against full inference on the same (tagged) frames in the phase without it.
    """
    phases = {}
    for ph in record.phases:
        ds = _phase_diagnostics(record, ph)
        if len(ds) < 2:
            continue
        first, last = ds[0], ds[-1]
        served = [d.served_cpu_share for d in ds if d.served_cpu_share is not None]
        strides = [d.serving_stride for d in ds if d.serving_stride]

        def delta(why: str) -> int:
            return last.skipped.get(why, 0) - first.skipped.get(why, 0)
        phases[ph["name"]] = {
            "served_cpu_share": round(float(np.median(served)), 4) if served else None,
            "max_stride": max(strides) if strides else None, "rate_reason": last.rate_reason,
            "inferred": last.frames_processed - first.frames_processed,
            "republished": delta(SKIPPED.static), "skipped_by_rate": delta(SKIPPED.rate)}
    return {"phases": phases, "agreement": static_agreement(record)}


def static_agreement(record: Record) -> dict[str, Any] | None:
    """Compare the kept masks of the static-scene phase with those of full inference."""
    kept = [ph for ph in record.phases if ph.get("keep_masks")]
    reference = next((ph["name"] for ph in kept if not ph.get("skip_static")), None)
    tested = next((ph["name"] for ph in kept if ph.get("skip_static")), None)
    if reference is None or tested is None:
        return None
    tags = sorted({t for p, t in record.kept if p == reference}
                  & {t for p, t in record.kept if p == tested})
    equal = [float(np.mean(record.kept[(reference, t)] == record.kept[(tested, t)]))
             for t in tags if record.kept[(reference, t)].shape == record.kept[(tested, t)].shape]
    return {"reference_phase": reference, "phase": tested, "frames": len(equal),
            "pixel_agreement": round(float(np.mean(equal)), 5) if equal else None,
            "worst_frame": round(min(equal), 5) if equal else None}


def _rate_static_lines(summary: list[dict[str, Any]], rates: dict[str, Any]) -> list[str]:
    """Return the report's section on the serving rate and static scenes."""
    rows = []
    agreement = rates.get("agreement") or {}
    compared = {agreement.get("phase"), agreement.get("reference_phase")}
    for s in summary:
        r = rates["phases"].get(s["phase"])
        if r is None or not (s.get("cpu_budget") or r["republished"] or r["skipped_by_rate"]
                             or s["phase"] in compared or s.get("skip_static")):
            continue
        allowed = (f"{100 * s['cpu_budget']:.1f}% x {s.get('margin', 0.9):g}"
                   if s.get("cpu_budget") else "-")
        rows.append([s["phase"], allowed, _pct(r["served_cpu_share"]),
                     _pct(s.get("node_cpu_share")), str(r["max_stride"] or "-"),
                     f"{s.get('masks_received', 0)} of {s.get('frames_sent', 0)}",
                     str(r["inferred"]), str(r["republished"]), str(r["skipped_by_rate"])])
    if not rows:
        return []
    lines = ["## Serving rate and static scenes", "",
             markdown_header(("phase", "CPU budget x margin", "predicted share, frames served",
                              "node CPU share (process)", "stride (max)", "masks of frames",
                              "inferred", "republished", "skipped by rate"), "lrrrrrrrr")]
    lines += [markdown_row(r) for r in rows]
    a = rates.get("agreement")
    if a and a["pixel_agreement"] is not None:
        lines += ["", f"Republished masks ({a['phase']}) against full inference on the same "
                      f"frames ({a['reference_phase']}): {100 * a['pixel_agreement']:.2f}% of "
                      f"pixels equal over {a['frames']} frames (worst frame "
                      f"{100 * a['worst_frame']:.2f}%)."]
    return lines + [""]


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def phase_summary(record: Record) -> list[dict[str, Any]]:
    """
    Summarise each phase: widths seen, reasons given, frames sent and masks received.

    The widths are those seen on the active-width topic; with cameras, all of it per camera
    under ``"cameras"``.
    """
    out = []
    for ph in record.phases:
        row = {"phase": ph["name"], "expect": ph["expect"], "start_s": round(ph["start"], 2),
               "end_s": round(ph["end"], 2), "budget_ms": ph.get("budget_ms"),
               "budget_kind": ph.get("budget_kind", ""), "cpu_budget": ph.get("cpu_budget"),
               "node_cpu_share": _node_cpu_share(record, ph), "silent": ph.get("silent", []),
               "margin": ph.get("margin"), "skip_static": ph.get("skip_static")}
        if record.cameras == [""]:
            row.update(_camera_in_phase(record, ph, ""))
        else:
            row["cameras"] = {c: _camera_in_phase(record, ph, c) for c in record.cameras}
        out.append(row)
    return out


def camera_story(summary: list[dict[str, Any]], cameras: list[str],
                 priorities: list[float]) -> list[str]:
    """
    Tell what the multi-camera phases showed, in sentences built from the recorded figures.

    The sentences cover the widths under the tight budget, the camera that dropped out (its
    frames, the node's reason for it, the others' widths) and its return.
    """
    lines: list[str] = []
    first, others = cameras[0], cameras[1:]
    prio = dict(zip(cameras, priorities))
    widths = {c: None for c in cameras}  # final width per camera in the previous phase
    told = False
    for i, s in enumerate(summary):
        rows = s["cameras"]
        final = {c: rows[c]["final_width"] for c in cameras}
        if s["budget_kind"] == "tight" and not s["silent"] and not told:
            told = True
            mean = {c: rows[c]["mean_width"] for c in cameras}
            known = [mean[c] for c in others if mean[c] is not None]
            kept = mean[first] is not None and all(mean[first] >= w for w in known)
            lines.append(
                f"- Under the tight budget ({s['budget_ms']:.1f} ms per round) {first} "
                f"(priority {prio[first]:g}) ran mostly at width "
                f"{_w(rows[first]['held_width'])} (time-weighted mean {_mean(mean[first])}), "
                + ", ".join(f"{c} (priority {prio[c]:g}) at {_w(rows[c]['held_width'])} "
                            f"({_mean(mean[c])})" for c in others)
                + (f": {first} kept the widest width." if kept
                   else f": {first} did NOT keep the widest width."))
        for c in s["silent"]:
            row = rows[c]
            said = row["reasons"][-1] if row["reasons"] else "no diagnostics"
            moved = ", ".join(f"{o} {_w(widths[o])} -> {_w(final[o])}"
                              for o in cameras if o not in s["silent"])
            lines.append(f"- While {c} sent nothing (\"{s['phase']}\": {row['frames_sent']} "
                         f"frames sent, {row['masks_received']} masks), the node said of it: "
                         f"\"{said}\"; the others' widths (end of the phase before -> end of this "
                         f"one): {moved}.")
            back = next((n for n in summary[i + 1:] if c not in n["silent"]), None)
            if back is not None:
                got = back["cameras"][c]
                lines.append(f"- After it came back (\"{back['phase']}\") {c} was served "
                             f"again: {got['masks_received']} masks for {got['frames_sent']} "
                             f"frames, widths {_widths(got['widths'])}.")
        widths = final
    return lines


def _w(width: float | None) -> str:
    return "none" if width is None else f"{width:g}"


def _mean(width: float | None) -> str:
    return "none" if width is None else f"{width:.2f}"


def _widths(values: list[float]) -> str:
    return " -> ".join(f"{w:g}" for w in _dedupe(values)) or "none"


def scene_summary(record: Record, info: dict[str, Any], meta: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """
    Return what the report says about the masks of the generated frames.

    Per width the masks scored and their mIoU (percent) against the generator's label maps,
    and one sentence (:func:`~.scene.scene_report_sentence`: out of distribution below the
    threshold, the figures above). None when the frames were the user's own
    (``meta["generated_frames"]`` false): they have no label maps.
    """
    if not meta.get("generated_frames"):
        return None
    out: dict[str, Any] = {"miou": {}, "masks": dict(sorted(record.scene_masks.items())),
                           "frames": len(record.scene_frames)}
    miou = record.scene.miou() if record.scene is not None else {}
    if not scene_classes_match(info.get("class_names") or ()):
        out["sentence"] = CLASS_MISMATCH_SENTENCE
        return out
    out["miou"] = dict(miou)  # unrounded: the table and the sentence print the same figure
    size = (int(meta["frame_size"][0]), int(meta["frame_size"][1]))
    if record.scene_error:
        out["sentence"] = (f"The masks could not be scored against the generated label maps: "
                           f"{record.scene_error}.")
    elif not miou:
        out["sentence"] = "No mask of a generated frame came back, so no mIoU was measured."
    elif info.get("untrained"):
        out["sentence"] = ("The model is UNTRAINED, so these figures only show that the masks "
                           "are scored; pass --checkpoint FILE for a trained model.")
    else:
        out["sentence"] = scene_report_sentence(miou, len(record.scene_frames), size)
    return out


def _scene_lines(scene: dict[str, Any] | None) -> list[str]:
    if scene is None:
        return []
    lines = ["## Masks against the generated label maps", ""]
    if scene["miou"]:
        lines += ["Every mask the node returned for a generated frame, counted against the "
                  "generator's own label map of that frame (mIoU over the classes drawn, "
                  "percent).", "", markdown_table(
                      ("width", "masks scored", "mIoU %"),
                      [(f"{w:g}", scene["masks"].get(w, 0), f"{v:.1f}")
                       for w, v in scene["miou"].items()])]
        lines.append("")
    return lines + [scene["sentence"], ""]


def write_report(out: Path, record: Record, frame: np.ndarray, info: dict[str, Any],
                 widths: list[float], meta: dict[str, Any], t_end: float) -> dict[str, Path]:
    """
    Write every report file and return their paths by name.

    ``frame`` is the montage's input (frame 0 of the first camera).
    """
    files = {name: out / fname for name, fname in (
        ("timeline", "timeline.png"), ("montage", "montage.png"), ("latency_md", "latency.md"),
        ("latency_json", "latency.json"), ("decisions_md", "decisions.md"),
        ("decisions_json", "decisions.json"), ("report", "report.md"),
        ("report_json", "report.json"))}
    single = record.cameras == [""]
    table = latency_table(record, widths)
    plot_timeline(record, files["timeline"], t_end)
    plot_montage(record, frame, info, widths, table, files["montage"])
    _write_latency(files, record, widths, meta, table)
    files["decisions_json"].write_text(json.dumps(
        {"decisions": record.decisions,
         "active_width": record.active.get("", []) if single else record.active,
         "requests": record.requests}, indent=2))
    _write_decisions(files["decisions_md"], record)
    summary = phase_summary(record)
    (out / "phases.json").write_text(json.dumps(summary, indent=2))
    rates = rate_and_static(record) if single else {"phases": {}, "agreement": None}
    scene = scene_summary(record, info, meta)
    per_camera = {c: {"frames_sent": sum(1 for f in record.frames if f.get("camera") == c),
                      "masks_received": sum(1 for m in record.masks if m.get("camera") == c)}
                  for c in record.cameras if c}
    files["report_json"].write_text(json.dumps(
        {"meta": meta, "frames_sent": len(record.frames), "masks_received": len(record.masks),
         "cameras": per_camera, "scene": scene, "rate_and_static": rates}, indent=2))
    lines = ["# slimseg_ros demo", ""]
    if info.get("untrained"):
        lines += ["**The model is UNTRAINED (random segmentation head): the masks mean nothing. "
                  "The demo shows the plumbing (width switching, policies, latency), not "
                  "segmentation quality.**", ""]
    lines += [f"- checkpoint: `{meta['checkpoint']}`", f"- frames: {meta['source']}",
              f"- frame size: {meta['frame_size'][0]}x{meta['frame_size'][1]} pixels "
              f"(height x width), {meta['fps']:g} fps offered{'' if single else ' per camera'}"]
    if not single:
        priorities = meta["camera_priorities"]
        lines.append("- cameras (one node, one model): " + ", ".join(
            f"{c} (priority {p:g}: {per_camera[c]['frames_sent']} frames sent, "
            f"{per_camera[c]['masks_received']} masks received)"
            for c, p in zip(record.cameras, priorities)))
    lines += [f"- node: `{' '.join(meta['node_command'])}`",
              f"- node start-up (process start -> first mask): {meta['startup_s']:.1f} s",
              f"- frames sent: {len(record.frames)}, masks received: {len(record.masks)}; every "
              f"mask carries its frame's stamp, frame_id and size: "
              f"{'yes' if meta['masks_match_frames'] else 'NO'}",
              f"- ROS_DOMAIN_ID: {meta['domain_id']}", "",
              "Files: `timeline.png`, `montage.png`, `latency.md`/`latency.json`, "
              "`decisions.md`/`decisions.json`, `phases.json`, `report.json`, `node.log`.", ""]
    lines += _scene_lines(scene)
    if single:
        lines += _phase_lines(summary)
        lines += [""] + _rate_static_lines(summary, rates)
    else:
        lines += ["## Cameras", ""] + camera_story(summary, record.cameras,
                                                   meta["camera_priorities"]) + [""]
        lines += _camera_phase_lines(summary, record.cameras)
    lines += ["", "![timeline](timeline.png)", "", "![montage](montage.png)", ""]
    files["report"].write_text("\n".join(lines))
    return files


def _phase_lines(summary: list[dict[str, Any]]) -> list[str]:
    header = ("phase", "expected", "widths seen", "node CPU share (median)", "reasons given")
    lines = ["## Phases", "", markdown_header(header, "lllrl")]
    for s in summary:
        reasons = "<br>".join(escape_cell(r) for r in s["reasons"][:6]) or "-"
        share = s.get("node_cpu_share")
        lines.append(markdown_row([f"{s['phase']}{_budget(s)}", s["expect"],
                                   _widths(s["widths"]),
                                   "-" if share is None else f"{100 * share:.1f}%", reasons]))
    return lines


def _camera_phase_lines(summary: list[dict[str, Any]], cameras: list[str]) -> list[str]:
    """
    Return the table of phases with one column per camera.

    Each cell holds the widths seen, masks received of frames sent, and the last reason the node
    gave for that camera in the phase.
    """
    lines = ["## Phases per camera", "", markdown_header(["phase", "expected", *cameras])]
    for s in summary:
        cells = []
        for c in cameras:
            row = s["cameras"][c]
            last = escape_cell(row["reasons"][-1]) if row["reasons"] else "-"
            cells.append(f"{_widths(row['widths'])} (mostly {_w(row['held_width'])})<br>"
                         f"{row['masks_received']} masks of {row['frames_sent']} frames<br>"
                         f"{last}")
        lines.append(markdown_row([f"{s['phase']}{_budget(s)}", s["expect"], *cells]))
    return lines


def _budget(s: dict[str, Any]) -> str:
    text = f" (budget {s['budget_ms']:.1f} ms)" if s.get("budget_ms") else ""
    if s.get("cpu_budget"):
        text += f" (CPU budget {100 * s['cpu_budget']:.1f}% of the cores)"
    return text


def _write_latency(files: dict[str, Path], record: Record, widths: list[float],
                   meta: dict[str, Any], table: list[dict[str, Any]]) -> None:
    """Write latency.md / latency.json: every camera together, and each camera on its own."""
    per_camera = {c: latency_table(record, widths, c) for c in record.cameras if c}
    files["latency_json"].write_text(json.dumps(
        {"widths": table, "cameras": per_camera, "meta": meta}, indent=2))
    lines = ["# Latency per width", "",
             f"End to end = camera message published -> mask received by the demo over DDS "
             f"(frames {format_size(*meta['frame_size'])} pixels, "
             f"{describe_size(*meta['frame_size'])}, "
             f"device `{meta['device']}`, backend `{meta.get('backend', 'default')}`). "
             f"Node p50/p90 = inference time as the node reports "
             f"it in its diagnostics (last report with that width)."]
    for name, rows in [("", table)] + list(per_camera.items()):
        lines += ["", f"## Camera {name}", ""] if name else [""]
        lines.append(markdown_table(
            ("width", "masks", "e2e mean ms", "e2e p50 ms", "e2e p90 ms", "node p50 ms",
             "node p90 ms"),
            [(f"{r['width']:g}", r["masks"], _fmt(r["e2e_mean_ms"]), _fmt(r["e2e_p50_ms"]),
              _fmt(r["e2e_p90_ms"]), _fmt(r["node_p50_ms"]), _fmt(r["node_p90_ms"]))
             for r in rows]))
    files["latency_md"].write_text("\n".join(lines) + "\n")


def _write_decisions(path: Path, record: Record) -> None:
    """Write decisions.md: every change of (width, reason) per camera."""
    single = record.cameras == [""]
    cam_head = [] if single else ["camera"]
    lines = ["# Width decisions", "",
             "Every change of (width, reason) in the node's `/diagnostics`, with the scenario "
             "phase it happened in (t = seconds since the scenario started).", "",
             markdown_header(["t (s)", "phase", *cam_head, "width", "reason", "caps",
                              "warnings"])]
    for d in record.decisions:
        cells = [escape_cell(d.get(k, "")) for k in ("reason", "caps", "warnings")]
        cam = [] if single else [d.get("camera", "")]
        lines.append(markdown_row([f"{d['t']:.2f}", d["phase"], *cam, f"{d['width']:g}",
                                   *cells]))
    if not record.decisions:
        lines.append(markdown_row(["-", "-", *([] if single else ["-"]), "-",
                                   "no diagnostics received from the node", "", ""]))
    path.write_text("\n".join(lines) + "\n")


def _dedupe(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out
