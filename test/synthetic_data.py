"""
Tiny synthetic datasets in the exact on-disk layouts, for the tests (not installed).

Images are blocky scenes whose colours follow the class (class palette colour plus noise), so a
network can learn them in a few iterations; labels hold the *raw* ids of the layout (CamVid ids
0..11 with 11 = void; Cityscapes ``labelIds``), including some void pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from slimseg_ros.training.datasets import CAMVID_PALETTE


def _scene(rng: np.random.Generator, height: int, width: int, raw_ids: list[int],
           void_id: int, block: int = 16) -> np.ndarray:
    """H x W raw-id map made of ``block``-pixel tiles of random ids, a few tiles void."""
    gh, gw = -(-height // block), -(-width // block)
    tiles = rng.choice(raw_ids, size=(gh, gw))
    tiles[rng.random((gh, gw)) < 0.05] = void_id
    full = np.kron(tiles, np.ones((block, block), dtype=tiles.dtype))
    return full[:height, :width].astype(np.uint8)


def _image(rng: np.random.Generator, label_rgb: np.ndarray) -> np.ndarray:
    noise = rng.normal(0, 12, label_rgb.shape)
    return np.clip(label_rgb.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _write_label(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), label):
        raise OSError(f"cannot write {path}")


def write_camvid_tree(root: str | os.PathLike, counts: dict[str, int] | None = None,
                      size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """
    Write a CamVid tree in the SegNet layout: ``<split>/*.png`` + ``<split>annot/*.png``.

    Label ids 0..10 are classes, 11 is void.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    palette = np.array(list(CAMVID_PALETTE) + [(0, 0, 0)], dtype=np.uint8)
    for split, n in (counts or {"train": 8, "val": 2, "test": 2}).items():
        for i in range(n):
            raw = _scene(rng, size[0], size[1], list(range(11)), 11)
            name = f"synth{split}_{i:04d}.png"
            _write_rgb(root / split / name, _image(rng, palette[raw]))
            _write_label(root / f"{split}annot" / name, raw)
    return root


def write_cityscapes_tree(root: str | os.PathLike, counts: dict[str, int] | None = None,
                          size: tuple[int, int] = (48, 96), seed: int = 0,
                          cities: tuple[str, ...] = ("aachen", "bremen")) -> Path:
    """
    Write a Cityscapes tree in the official layout, with raw label ids (e.g. 7 = road).

    ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png``.
    """
    from cityscapesscripts.helpers.labels import labels

    root = Path(root)
    rng = np.random.default_rng(seed)
    raw_ids = [label.id for label in labels if label.id >= 0]
    colors = np.zeros((256, 3), dtype=np.uint8)
    for label in labels:
        if label.id >= 0:
            colors[label.id] = label.color
    for split, n in (counts or {"train": 6, "val": 2}).items():
        for i in range(n):
            city = cities[i % len(cities)]
            raw = _scene(rng, size[0], size[1], raw_ids, 0)
            stem = f"{city}_{i:06d}_000019"
            _write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                       _image(rng, colors[raw]))
            _write_label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", raw)
    return root
