"""
Frames for the demo's camera, each ``H x W x 3`` uint8 RGB with its index.

They come from an image folder or a video file (looped), or from the generated street scene
(:mod:`.scene`) with its label maps.

The scene costs about 0.15 s of CPU per 360x480 frame, more than the 0.1 s between frames at
10 fps, so a loop of frames is drawn before the replay starts (in parallel where there are
cores to spare) and replayed; its label maps let the demo score the masks the node returns.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from . import DemoError
from .scene import street_scene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


SCENE_SIZE = (360, 480)      # (height, width) pixels of the generated frames unless --size
SCENE_LOOP_FRAMES = 60       # frames drawn before the replay; 6 s at 10 fps, then it loops


def _draw(job: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    index, height, width, seed = job
    return street_scene(index, height, width, seed)


class SceneSource:
    """
    The generated street drive, drawn once and replayed in a loop.

    It is ``n_frames`` consecutive frames of ``size`` (height, width) from the drive ``seed``;
    :meth:`labels` gives each frame's CamVid label map (``H x W`` uint8).
    """

    def __init__(self, n_frames: int = SCENE_LOOP_FRAMES, size: tuple[int, int] | None = None,
                 seed: int = 0, workers: int | None = None) -> None:
        if n_frames < 1:
            raise DemoError(f"the scene loop needs at least one frame, got {n_frames}")
        height, width = size or SCENE_SIZE
        try:  # frame 0 here: a bad size fails with the generator's own sentence
            drawn = [street_scene(0, height, width, seed)]
        except ValueError as exc:
            raise DemoError(f"cannot draw the street scene: {exc}") from exc
        jobs = [(i, height, width, seed) for i in range(1, n_frames)]
        workers = min(workers or os.cpu_count() or 1, 8, len(jobs))
        if workers > 1:
            # forkserver: workers start from a clean process, never a fork of one whose other
            # threads (rclpy's, torch's) may hold locks the child would then wait on forever
            context = multiprocessing.get_context("forkserver")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                drawn += pool.map(_draw, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
        else:
            drawn += [_draw(job) for job in jobs]
        self._rgb = [rgb for rgb, _ in drawn]
        self._labels = [lab for _, lab in drawn]
        self.seed = seed
        self.description = (f"generated street scene (drive {seed}, a loop of {n_frames} frames "
                            f"of {height}x{width})")
        self.index = 0
        self.first = self._rgb[0]

    def next(self) -> np.ndarray:
        """Return the next frame of the loop; :attr:`index` is its position in the loop."""
        self.index = (self.index + 1) % len(self._rgb)
        return self._rgb[self.index]

    def labels(self, index: int) -> np.ndarray | None:
        """Return the label map of frame ``index`` of the loop (``first`` is frame 0)."""
        return self._labels[index % len(self._labels)]


class FrameSource:
    """
    Endless RGB frames (``H x W x 3`` uint8) from an image folder (in name order) or a video.

    Both are looped; ``size`` (height, width) resizes every frame. ``start`` (0 to 1) begins that
    far into the folder or video, so that several cameras show different frames. :attr:`index`
    is the position of the last frame returned (``first`` is 0); real frames have no label
    maps.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None,
                 start: float = 0.0) -> None:
        if not 0.0 <= start < 1.0:
            raise DemoError(f"start must be in [0, 1), got {start}")
        self.size = size
        self._files: list[Path] = []
        self._video = None
        self._offset = 0
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir()
                                 if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self._files:
                raise DemoError(f"image folder {self.path} holds no images "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            self.description = f"{len(self._files)} images from {self.path}"
            self._offset = int(start * len(self._files))
        elif self.path.is_file():
            import cv2

            self._video = cv2.VideoCapture(str(self.path))
            if not self._video.isOpened():
                raise DemoError(f"cannot open video file {self.path} with OpenCV")
            self.description = f"video file {self.path}"
            for _ in range(int(start * max(0.0, self._video.get(cv2.CAP_PROP_FRAME_COUNT)))):
                self._video.grab()
        else:
            raise DemoError(f"--images {self.path} is neither an image folder nor a video file")
        self.index = 0
        self.first = self._read(0)

    def _resize(self, img: np.ndarray) -> np.ndarray:
        if self.size is None or img.shape[:2] == self.size:
            return img
        import cv2

        return cv2.resize(img, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)

    def _read(self, index: int) -> np.ndarray:
        import cv2

        if self._files:
            f = self._files[(self._offset + index) % len(self._files)]
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise DemoError(f"cannot read image {f}")
        else:
            ok, bgr = self._video.read()
            if not ok:  # end of the video: loop
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = self._video.read()
                if not ok:
                    raise DemoError(f"video file {self.path} yields no frames")
        return self._resize(np.ascontiguousarray(bgr[:, :, ::-1]))

    def next(self) -> np.ndarray:
        """
        Return the next frame.

        :attr:`index` is its position (in the folder; frames of a video).
        """
        self.index = (self.index + 1) % len(self._files) if self._files else self.index + 1
        return self._read(self.index)

    def labels(self, index: int) -> np.ndarray | None:
        """Return None: real frames come without label maps."""
        return None


Source = SceneSource | FrameSource  # what the scenario replays: first, next(), index, labels()
