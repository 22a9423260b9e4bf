"""Cityscapes (official layout) and CamVid (SegNet layout) as (uint8 image, train-id label) pairs.

A dataset is little more than its class names, palette, file pairing and a 256-entry lookup
table from the ids stored in the label PNGs to train ids (255 = ignore). Everything that can be
wrong with the files (missing root, an image without its label, a label id outside the table) is
found when the dataset is built, before training starts, with a message naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import IGNORE_INDEX, PairTransform

cv2.setNumThreads(1)  # loader workers are the parallelism; avoid oversubscription


class DatasetError(ValueError):
    """The dataset on disk is missing, incomplete or holds labels outside the class table."""


@dataclass(frozen=True)
class DatasetSpec:
    """Class table of a dataset: names, RGB palette and the raw-id -> train-id lookup table."""

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    lut: np.ndarray  # (256,) uint8; raw id -> train id, 255 = ignore
    valid_raw_ids: frozenset[int]  # ids a label PNG may contain

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


CAMVID_CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist")
# The palette of the SegNet CamVid release (one RGB triple per class above).
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192))


def camvid_spec() -> DatasetSpec:
    """CamVid, 11 classes; raw id 11 (void/unlabelled) is ignored."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[:11] = np.arange(11, dtype=np.uint8)
    return DatasetSpec("camvid", CAMVID_CLASSES, CAMVID_PALETTE, lut, frozenset(range(12)))


def cityscapes_spec() -> DatasetSpec:
    """Cityscapes, 19 train ids from the official label table (``cityscapesscripts``)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    names: dict[int, str] = {}
    colors: dict[int, tuple[int, int, int]] = {}
    valid = set()
    for label in labels:
        if label.id < 0:
            continue  # license plate: only in instance annotations, never in labelIds PNGs
        valid.add(label.id)
        if 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
            names[label.trainId] = label.name
            colors[label.trainId] = tuple(int(c) for c in label.color)
    n = len(names)
    if sorted(names) != list(range(n)):
        raise RuntimeError("the Cityscapes label table has non-contiguous train ids")
    return DatasetSpec("cityscapes", tuple(names[i] for i in range(n)),
                       tuple(colors[i] for i in range(n)), lut, frozenset(valid))


SPECS = {"camvid": camvid_spec, "cityscapes": cityscapes_spec}


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(SPECS)}")
    return SPECS[name]()


# ---------------------------------------------------------------------------------------------
# file pairing


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what} {path} does not exist or is not a directory")


def camvid_pairs(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """``<root>/<split>/*.png`` paired with ``<root>/<split>annot/<same name>``.

    ``split`` may join several with ``+`` (``train+val``, the usual final-model protocol).
    """
    root = Path(root)
    _require_dir(root, "CamVid root")
    pairs: list[tuple[Path, Path]] = []
    for part in split.split("+"):
        image_dir, label_dir = root / part, root / f"{part}annot"
        _require_dir(image_dir, f"CamVid {part!r} image folder")
        _require_dir(label_dir, f"CamVid {part!r} label folder")
        images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() == ".png")
        if not images:
            raise DatasetError(f"CamVid image folder {image_dir} holds no .png images")
        for image in images:
            label = label_dir / image.name
            if not label.is_file():
                raise DatasetError(f"CamVid image {image} has no label (expected {label})")
            pairs.append((image, label))
    return pairs


def cityscapes_pairs(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """``leftImg8bit/<split>/<city>/X_leftImg8bit.png`` paired with
    ``gtFine/<split>/<city>/X_gtFine_labelIds.png``."""
    root = Path(root)
    _require_dir(root, "Cityscapes root")
    pairs: list[tuple[Path, Path]] = []
    for part in split.split("+"):
        image_root, label_root = root / "leftImg8bit" / part, root / "gtFine" / part
        _require_dir(image_root, f"Cityscapes {part!r} image folder")
        _require_dir(label_root, f"Cityscapes {part!r} label folder")
        images = sorted(image_root.glob("*/*_leftImg8bit.png"))
        if not images:
            raise DatasetError(f"Cityscapes image folder {image_root} holds no "
                               f"<city>/*_leftImg8bit.png images")
        for image in images:
            stem = image.name[: -len("_leftImg8bit.png")]
            label = label_root / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.is_file():
                raise DatasetError(f"Cityscapes image {image} has no label (expected {label})")
            pairs.append((image, label))
    return pairs


PAIRS = {"camvid": camvid_pairs, "cityscapes": cityscapes_pairs}


# ---------------------------------------------------------------------------------------------
# reading and checking


def read_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """H x W uint8 raw ids (single-channel PNG)."""
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f"cannot read label {path}")
    if label.ndim != 2:
        raise DatasetError(f"label {path} has shape {label.shape}; expected a single-channel "
                           f"id image")
    if label.dtype != np.uint8:
        if label.max() > 255:
            raise DatasetError(f"label {path} holds ids up to {int(label.max())}, above 255")
        label = label.astype(np.uint8)
    return label


def _check_label(path: Path, valid: np.ndarray) -> str | None:
    """None when every id of the PNG is in the table, else the error message."""
    label = read_label(path)
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))  # faster than np.unique
    bad = present[~valid[present]]
    if bad.size:
        return f"label {path} holds id(s) {bad.tolist()} outside the class table"
    return None


def check_labels(paths: Sequence[Path], spec: DatasetSpec, threads: int = 4) -> None:
    """Read every label once and fail on the first with an id outside ``spec`` (names the file)."""
    valid = np.zeros(256, dtype=bool)
    valid[list(spec.valid_raw_ids)] = True
    with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 decoding releases the GIL
        for message in pool.map(lambda p: _check_label(p, valid), paths):
            if message:
                raise DatasetError(message)


class SegmentationDataset(Dataset):
    """Pairs of (image, label) files -> ``(uint8 3 x H x W tensor, int64 H x W train-id tensor)``.

    An index may be an ``int`` or an ``(index, seed)`` pair; the seed fixes the random
    augmentation of that sample (see :class:`PairTransform`).
    """

    def __init__(self, spec: DatasetSpec, pairs: Sequence[tuple[Path, Path]],
                 transform: PairTransform | None = None, check: bool = True) -> None:
        if not pairs:
            raise DatasetError(f"the {spec.name} dataset is empty")
        self.spec = spec
        self.pairs = list(pairs)
        self.transform = transform or PairTransform(None)
        if check:
            check_labels([label for _, label in self.pairs], spec)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = self.spec.lut[read_label(label_path)]
        if image.shape[:2] != label.shape:
            raise DatasetError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but its "
                               f"label {label_path} is {label.shape[1]}x{label.shape[0]}")
        image, label = self.transform(image, label, seed)
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return image_t, torch.from_numpy(np.ascontiguousarray(label)).long()


def class_pixel_counts(dataset: SegmentationDataset, threads: int = 4
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per class: labelled pixels, and all pixels of the images where the class appears.

    Reads the label files as stored (no augmentation); the input of median-frequency weights.
    """
    n = dataset.spec.num_classes

    def count(path: Path) -> tuple[np.ndarray, int]:
        train_ids = dataset.spec.lut[read_label(path)]
        return np.bincount(train_ids.ravel(), minlength=256)[:n], train_ids.size

    class_pixels = np.zeros(n, dtype=np.int64)
    image_pixels = np.zeros(n, dtype=np.int64)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for counts, size in pool.map(count, [label for _, label in dataset.pairs]):
            class_pixels += counts
            image_pixels += np.where(counts > 0, size, 0)
    return class_pixels, image_pixels


def build_dataset(name: str, root: str | os.PathLike, split: str,
                  transform: PairTransform | None = None, check: bool = True
                  ) -> SegmentationDataset:
    """Dataset ``name`` ('camvid' | 'cityscapes') at ``root``; split e.g. 'train', 'train+val'."""
    spec = get_spec(name)
    return SegmentationDataset(spec, PAIRS[name](root, split), transform, check)


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """H x W train ids -> H x W x 3 uint8 RGB; ignore (255) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lut[label]
