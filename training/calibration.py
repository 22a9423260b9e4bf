"""
Does the node's confidence mean something? Pixel accuracy per confidence bin, at every width.

The node's ``slimseg/confidence`` is the softmax maximum of the logits the mask's argmax compares,
stored as ``round(255 p)``. A planner may treat pixels below some confidence as unknown only if
low confidence really marks wrong pixels. ``slimseg-eval --confidence`` runs the engine with the
confidence output on a labelled split and reports, per width: a reliability table (share of
pixels, their accuracy and mean confidence in each of ten bins of p), the expected calibration
error (the pixel-weighted mean of |accuracy - confidence| over the bins), and the accuracy of the
pixels above 0.9 against those below 0.5. Pixels labelled ``ignore`` do not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

BINS = 10
SURE, UNSURE = 0.9, 0.5  # the two groups compared


class ConfidenceBins:
    """Pixel counts per confidence level (0-255): how many, and how many were right."""

    def __init__(self) -> None:
        self.pixels = np.zeros(256, np.int64)
        self.correct = np.zeros(256, np.int64)

    def update(self, confidence: np.ndarray, pred: np.ndarray, label: np.ndarray,
               ignore_index: int) -> None:
        """Add one image: uint8 ``confidence`` and ``pred`` ids, ``label`` ids (same shape)."""
        if not (confidence.shape == pred.shape == label.shape):
            raise ValueError(f"confidence {confidence.shape}, prediction {pred.shape} and label "
                             f"{label.shape} must have one shape")
        valid = label != ignore_index
        levels = confidence[valid].astype(np.int64)
        right = (pred[valid] == label[valid])
        self.pixels += np.bincount(levels, minlength=256)
        self.correct += np.bincount(levels, weights=right, minlength=256).astype(np.int64)

    def summary(self, bins: int = BINS) -> dict[str, Any]:
        """Return the reliability table, ECE and the sure/unsure accuracies (fractions 0-1)."""
        p = np.arange(256) / 255.0
        total = int(self.pixels.sum())
        edges = np.linspace(0.0, 1.0, bins + 1)
        index = np.minimum(np.floor(p * bins).astype(int), bins - 1)
        rows, ece = [], 0.0
        for b in range(bins):
            sel = index == b
            n = int(self.pixels[sel].sum())
            acc = float(self.correct[sel].sum() / n) if n else None
            conf = float((self.pixels[sel] * p[sel]).sum() / n) if n else None
            if n:
                ece += n / total * abs(acc - conf)
            rows.append({"from": float(edges[b]), "to": float(edges[b + 1]), "pixels": n,
                         "share": n / total if total else 0.0, "accuracy": acc,
                         "confidence": conf})
        return {"pixels": total, "ece": ece if total else None, "bins": rows,
                "accuracy": float(self.correct.sum() / total) if total else None,
                f"accuracy_above_{SURE:g}": _accuracy(self, p > SURE),
                f"share_above_{SURE:g}": _share(self, p > SURE),
                f"accuracy_below_{UNSURE:g}": _accuracy(self, p < UNSURE),
                f"share_below_{UNSURE:g}": _share(self, p < UNSURE)}


def _accuracy(bins: ConfidenceBins, sel: np.ndarray) -> float | None:
    n = int(bins.pixels[sel].sum())
    return float(bins.correct[sel].sum() / n) if n else None


def _share(bins: ConfidenceBins, sel: np.ndarray) -> float:
    total = int(bins.pixels.sum())
    return float(bins.pixels[sel].sum() / total) if total else 0.0


def collect(segment: Any, batches: Iterable[tuple[Any, Any]], widths: Sequence[Any],
            ignore_index: int) -> dict[Any, ConfidenceBins]:
    """
    Run ``segment(frame, width) -> (ids, confidence)`` on every image of ``batches`` per width.

    ``batches`` yields ``(images, labels)`` as the evaluation loader does: uint8
    N x 3 x H x W tensors and N x H x W label ids.
    """
    found = {w: ConfidenceBins() for w in widths}
    for images, labels in batches:
        frames = images.permute(0, 2, 3, 1).contiguous().numpy()
        for frame, label in zip(frames, labels.numpy()):
            for w in widths:
                ids, conf = segment(frame, w)
                found[w].update(conf, ids, label, ignore_index)
    return found


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100.0 * v:.1f}"


def markdown_report(summaries: Mapping[float, Mapping[str, Any]]) -> str:
    """Return the per-width summary table and one reliability table per width, in Markdown."""
    lines = [f"| width | pixel accuracy % | ECE % | accuracy p > {SURE:g} % (share %) | "
             f"accuracy p < {UNSURE:g} % (share %) |", "|---|---|---|---|---|"]
    for w, s in summaries.items():
        lines.append(f"| {w:g} | {_pct(s['accuracy'])} | {_pct(s['ece'])} | "
                     f"{_pct(s[f'accuracy_above_{SURE:g}'])} ({_pct(s[f'share_above_{SURE:g}'])})"
                     f" | {_pct(s[f'accuracy_below_{UNSURE:g}'])} "
                     f"({_pct(s[f'share_below_{UNSURE:g}'])}) |")
    for w, s in summaries.items():
        lines += ["", f"Reliability at width {w:g}:", "",
                  "| confidence | pixels % | accuracy % | mean confidence % |",
                  "|---|---|---|---|"]
        for row in s["bins"]:
            lines.append(f"| {row['from']:.1f}-{row['to']:.1f} | {_pct(row['share'])} | "
                         f"{_pct(row['accuracy'])} | {_pct(row['confidence'])} |")
    return "\n".join(lines) + "\n"
