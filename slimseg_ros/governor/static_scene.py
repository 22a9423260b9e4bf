"""
Static scenes: when a camera's frame is close enough to the one last inferred, reuse its mask.

A parked robot's camera sees the same scene for minutes. With ``skip_static`` on, a frame whose
grey thumbnail (32x24, computed by the node's conversions) differs from the thumbnail of the
camera's last *inferred* frame by less than ``threshold`` (mean absolute difference in grey
levels 0-255) is not inferred: the last mask is republished with the new frame's header. The
reference is kept at most ``max_age_s`` seconds (then the next frame is inferred, so a slow
change is never hidden for long); a frame of another size, or one the governor runs at another
width than the reference's, always infers. Plain Python and numpy; time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

THUMBNAIL_SIZE = (24, 32)  # rows, columns of the grey thumbnail compared


@dataclass(frozen=True)
class StaticReference:
    """The last inferred frame of a camera: its thumbnail, size, time, width and outputs."""

    thumbnail: np.ndarray
    frame_size: tuple[int, int]
    time: float
    width: object  # the step it ran at (a Width, or a ladder rung): another is not reused
    mask: np.ndarray
    confidence: np.ndarray | None


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Return the mean absolute difference of two thumbnails (grey levels)."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def reusable(reference: StaticReference | None, thumbnail: np.ndarray,
             frame_size: tuple[int, int], width: object, now: float, threshold: float,
             max_age_s: float) -> bool:
    """Tell whether a frame to run at ``width`` may reuse ``reference``'s mask."""
    return (reference is not None and reference.frame_size == tuple(frame_size)
            and reference.width == width
            and now - reference.time < max_age_s
            and difference(reference.thumbnail, thumbnail) < threshold)
