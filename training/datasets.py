"""
Cityscapes, CamVid and a user's own folder as (uint8 image, train-id label) pairs.

Cityscapes in its official layout, CamVid in the SegNet layout, and a folder of images and id
masks.

A dataset is little more than its class names, palette, file pairing and a 256-entry lookup
table from the ids stored in the label PNGs to train ids (255 = ignore). Everything that can be
wrong with the files (missing root, an image without its label, a label id outside the table) is
found when the dataset is built, before training starts, with a message naming the file.
The ``folder`` dataset reads its class table from a classes file (:func:`read_classes`).
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
import yaml
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
    origin: str = ""  # where the table comes from (a classes file), for error messages

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
DATASET_NAMES = ("camvid", "cityscapes", "folder")  # folder: class table from a classes file

CLASSES_KEYS = ("names", "palette", "ignore_index", "ignore_color")


@dataclass(frozen=True)
class ClassesFile:
    """
    A ``folder`` dataset's classes file.

    Class names, one RGB colour per class, the id of the id masks that is not scored and, for
    colour masks, the colour that converts to it.
    """

    path: Path
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    ignore_color: tuple[int, int, int] | None = None

    def spec(self) -> DatasetSpec:
        """Class ``i`` is id ``i`` in the masks; ``ignore_index`` maps to 255 (not scored)."""
        n = len(self.names)
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        lut[:n] = np.arange(n, dtype=np.uint8)
        return DatasetSpec("folder", self.names, self.palette, lut,
                           frozenset(range(n)) | {self.ignore_index},
                           origin=f"classes file {self.path}")


def _rgb(value: Any, what: str, path: Path) -> tuple[int, int, int]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255
                   for v in value)):
        raise DatasetError(f"classes file {path}: {what} must be [R, G, B] with integers "
                           f"0..255, got {value!r}")
    return int(value[0]), int(value[1]), int(value[2])


def read_classes(path: str | os.PathLike) -> ClassesFile:
    """
    Read and validate a classes file; every error names the file.

    The YAML holds ``names``, ``palette``, ``ignore_index`` and ``ignore_color``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"classes file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"classes file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"classes file {path} must hold a mapping with 'names' and 'palette'")
    unknown = sorted(set(data) - set(CLASSES_KEYS), key=str)
    if unknown:
        raise DatasetError(f"classes file {path}: unknown key(s) {unknown}; known keys: "
                           f"{list(CLASSES_KEYS)}")
    for key in ("names", "palette"):
        if key not in data:
            raise DatasetError(f"classes file {path} has no {key!r} list")
    names = data["names"]
    if (not isinstance(names, list) or not names
            or any(not isinstance(n, str) or not n.strip() for n in names)):
        raise DatasetError(f"classes file {path}: 'names' must be a non-empty list of class "
                           f"names, got {names!r}")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"classes file {path}: class name(s) {twice} appear more than once")
    ignore_index = data.get("ignore_index", IGNORE_INDEX)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) \
            or not 0 <= ignore_index <= 255:
        raise DatasetError(f"classes file {path}: 'ignore_index' must be an integer 0..255, "
                           f"got {ignore_index!r}")
    if ignore_index < len(names):
        raise DatasetError(f"classes file {path}: 'ignore_index' {ignore_index} is the id of "
                           f"class {names[ignore_index]!r} (class ids are 0..{len(names) - 1})")
    if len(names) > 255:
        raise DatasetError(f"classes file {path} lists {len(names)} classes; at most 255 fit "
                           f"in 8-bit id masks beside the ignore id")
    palette = data["palette"]
    if not isinstance(palette, list) or len(palette) != len(names):
        count = len(palette) if isinstance(palette, list) else "no list of"
        raise DatasetError(f"classes file {path}: 'palette' has {count} colours for "
                           f"{len(names)} names; it needs one [R, G, B] per class")
    colours = tuple(_rgb(c, f"palette entry {i} ({names[i]})", path)
                    for i, c in enumerate(palette))
    seen: dict[tuple[int, int, int], str] = {}
    for name, colour in zip(names, colours):
        if colour in seen:
            raise DatasetError(f"classes file {path}: classes {seen[colour]!r} and {name!r} "
                               f"share the colour {list(colour)}")
        seen[colour] = name
    ignore_color = data.get("ignore_color")
    if ignore_color is not None:
        ignore_color = _rgb(ignore_color, "'ignore_color'", path)
        if ignore_color in seen:
            raise DatasetError(f"classes file {path}: 'ignore_color' {list(ignore_color)} is "
                               f"the colour of class {seen[ignore_color]!r}")
    return ClassesFile(path, tuple(names), colours, ignore_index, ignore_color)


def resolve_classes_path(root: str | os.PathLike, classes: str | os.PathLike) -> Path:
    """Resolve a relative classes path against the dataset root (as ``data.classes`` says)."""
    classes = Path(classes).expanduser()
    return classes if classes.is_absolute() else Path(root) / classes


def get_spec(name: str, classes: str | os.PathLike | None = None) -> DatasetSpec:
    """Return the class table of ``name``; ``folder`` reads it from the ``classes`` file."""
    if name == "folder":
        if classes is None:
            raise DatasetError("the folder dataset needs a classes file (names, palette, "
                               "ignore_index): data.classes / --classes")
        return read_classes(classes).spec()
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASET_NAMES)}")
    if classes is not None:
        raise ValueError(f"a classes file is only read for the folder dataset; {name} has "
                         f"its own class table")
    return SPECS[name]()


# ---------------------------------------------------------------------------------------------
# file pairing


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what} {path} does not exist or is not a directory")


def camvid_pairs(root: str | os.PathLike, split: str | Sequence[str]
                 ) -> list[tuple[Path, Path]]:
    """
    ``<root>/<split>/*.png`` paired with ``<root>/<split>annot/<same name>``.

    ``split`` may join several with ``+`` (``train+val``, the usual final-model protocol) or be
    a list of split names.
    """
    root = Path(root)
    _require_dir(root, "CamVid root")
    pairs: list[tuple[Path, Path]] = []
    for part in _split_parts(split):
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


def cityscapes_pairs(root: str | os.PathLike, split: str | Sequence[str]
                     ) -> list[tuple[Path, Path]]:
    """
    Pair the Cityscapes images of ``split`` with their label-id PNGs.

    ``leftImg8bit/<split>/<city>/X_leftImg8bit.png`` with
    ``gtFine/<split>/<city>/X_gtFine_labelIds.png``.
    """
    root = Path(root)
    _require_dir(root, "Cityscapes root")
    pairs: list[tuple[Path, Path]] = []
    for part in _split_parts(split):
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _split_parts(split: str | Sequence[str]) -> list[str]:
    """``"train+val"`` or ``["train", "val"]`` -> ``["train", "val"]``."""
    parts = split.split("+") if isinstance(split, str) else [str(p) for p in split]
    if not parts or any(not p.strip() for p in parts):
        raise DatasetError(f"split {split!r} names an empty split")
    return [p.strip() for p in parts]


def _index(folder: Path, suffixes: Sequence[str]) -> dict[str, list[Path]]:
    """
    Index the files under ``folder`` with one of ``suffixes`` by stem.

    Recursively, hidden ones skipped; the stem is the path relative to ``folder`` without its
    suffix (``run1/000042``).
    """
    out: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in suffixes:
            out.setdefault(rel.with_suffix("").as_posix(), []).append(path)
    return out


def _one(stem: str, paths: list[Path], what: str) -> Path:
    if len(paths) > 1:
        raise DatasetError(f"folder dataset: {len(paths)} {what} files share the stem {stem!r}: "
                           f"{', '.join(str(p) for p in paths)}")
    return paths[0]


def _no_jpeg_masks(masks: dict[str, list[Path]]) -> None:
    for paths in masks.values():
        for path in paths:
            if path.suffix.lower() != ".png":
                raise DatasetError(f"mask {path} is a JPEG; masks must be PNG (lossy "
                                   f"compression changes class ids at every edge)")


def _first_and_count(problems: list[str]) -> None:
    if problems:
        more = (f" (and {len(problems) - 1} more file(s) without their pair)"
                if len(problems) > 1 else "")
        raise DatasetError(problems[0] + more)


def _subfolder_pairs(root: Path, part: str) -> list[tuple[Path, Path]]:
    image_dir, mask_dir = root / "images" / part, root / "masks" / part
    _require_dir(mask_dir, f"folder dataset {part!r} mask folder")
    images = _index(image_dir, IMAGE_SUFFIXES)
    masks = _index(mask_dir, IMAGE_SUFFIXES)
    _no_jpeg_masks(masks)
    if not images:
        raise DatasetError(f"folder dataset split {part!r} is empty: {image_dir} holds no "
                           f".png/.jpg images")
    pairs, problems = [], []
    for stem, paths in images.items():
        image = _one(stem, paths, "image")
        if stem in masks:
            pairs.append((image, _one(stem, masks[stem], "mask")))
        else:
            problems.append(f"image {image} has no mask (expected {mask_dir / stem}.png)")
    for stem, paths in masks.items():
        if stem not in images:
            problems.append(f"mask {paths[0]} has no image (expected {image_dir / stem} with "
                            f"one of {', '.join(IMAGE_SUFFIXES)})")
    _first_and_count(problems)
    return pairs


def _list_pairs(root: Path, part: str, list_file: Path) -> list[tuple[Path, Path]]:
    image_dir, mask_dir = root / "images", root / "masks"
    _require_dir(image_dir, "folder dataset image folder")
    _require_dir(mask_dir, "folder dataset mask folder")
    images = _index(image_dir, IMAGE_SUFFIXES)
    masks = _index(mask_dir, IMAGE_SUFFIXES)
    pairs, problems, seen = [], [], {}
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        stem = line.strip()
        if not stem or stem.startswith("#"):
            continue
        where = f"{list_file} line {number}"
        if stem in seen:
            raise DatasetError(f"{where}: stem {stem!r} is already listed on line {seen[stem]}")
        seen[stem] = number
        if stem not in images:
            problems.append(f"{where}: no image {image_dir / stem} with one of "
                            f"{', '.join(IMAGE_SUFFIXES)}")
            continue
        image = _one(stem, images[stem], "image")
        if stem not in masks:
            problems.append(f"image {image} ({where}) has no mask (expected "
                            f"{mask_dir / stem}.png)")
            continue
        _no_jpeg_masks({stem: masks[stem]})
        pairs.append((image, _one(stem, masks[stem], "mask")))
    _first_and_count(problems)
    if not pairs:
        raise DatasetError(f"folder dataset split {part!r} is empty: {list_file} lists no stems")
    return pairs


def folder_pairs(root: str | os.PathLike, split: str | Sequence[str]) -> list[tuple[Path, Path]]:
    """
    Pair a user's own images with their masks.

    ``images/<split>/X.{png,jpg}`` paired with ``masks/<split>/X.png`` (subfolders below the split
    are kept, matched by relative path), or, where ``images/<split>/`` does not exist, the stems
    listed one per line in ``splits/<split>.txt``: ``images/<stem>.{png,jpg}`` with
    ``masks/<stem>.png``.

    ``split`` may join several with ``+`` (or be a list of split names).
    """
    root = Path(root)
    _require_dir(root, "folder dataset root")
    pairs: list[tuple[Path, Path]] = []
    for part in _split_parts(split):
        list_file = root / "splits" / f"{part}.txt"
        if (root / "images" / part).is_dir():
            pairs += _subfolder_pairs(root, part)
        elif list_file.is_file():
            pairs += _list_pairs(root, part, list_file)
        else:
            raise DatasetError(f"folder dataset split {part!r}: neither "
                               f"{root / 'images' / part}/ nor the list file {list_file} exists")
    return pairs


PAIRS = {"camvid": camvid_pairs, "cityscapes": cityscapes_pairs, "folder": folder_pairs}


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
                           f"id image (colour masks: convert them with slimseg-convert-masks)")
    if label.dtype != np.uint8:
        if label.max() > 255:
            raise DatasetError(f"label {path} holds ids up to {int(label.max())}, above 255")
        label = label.astype(np.uint8)
    return label


def image_size(path: Path) -> tuple[int, int]:
    """
    Return the (height, width) of an image as :func:`read_image` returns it.

    Read from the file header where possible (EXIF rotations swap the sides, as OpenCV applies
    them); the image is decoded otherwise.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return read_image(path).shape[:2]
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return read_image(path).shape[:2]
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _check_label(path: Path, valid: np.ndarray, origin: str = "",
                 image: Path | None = None) -> str | None:
    """
    Check one label PNG: None when it is fine, else the error message.

    Fine: every id of the PNG is in the table and, given ``image``, the label has its size.
    """
    label = read_label(path)
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))  # faster than np.unique
    bad = present[~valid[present]]
    if bad.size:
        table = f"the class table of {origin}" if origin else "the class table"
        return (f"label {path} holds id(s) {bad.tolist()} outside {table} (valid ids: "
                f"{_ranges(np.flatnonzero(valid))})")
    if image is not None:
        h, w = image_size(image)
        if (h, w) != label.shape:
            return (f"mask {path} is {label.shape[1]}x{label.shape[0]} but its image {image} "
                    f"is {w}x{h} (width x height)")
    return None


def _ranges(ids: np.ndarray) -> str:
    """[0, 1, 2, 3, 255] -> '0..3, 255'."""
    out, start = [], None
    for i, v in enumerate(ids.tolist()):
        if start is None:
            start = v
        if i + 1 == len(ids) or ids[i + 1] != v + 1:
            out.append(str(v) if v == start else f"{start}..{v}")
            start = None
    return ", ".join(out)


def check_labels(paths: Sequence[Path], spec: DatasetSpec, threads: int = 4,
                 images: Sequence[Path] | None = None) -> None:
    """
    Read every label once and fail on the first one that is wrong.

    Wrong: an id outside ``spec`` (the file is named) or, given the ``images`` of the labels, a
    size that differs from its image (both are named).
    """
    valid = np.zeros(256, dtype=bool)
    valid[list(spec.valid_raw_ids)] = True
    jobs = zip(paths, images if images is not None else [None] * len(paths))
    with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 decoding releases the GIL
        for message in pool.map(lambda j: _check_label(j[0], valid, spec.origin, j[1]), jobs):
            if message:
                raise DatasetError(message)


class SegmentationDataset(Dataset):
    """
    Pairs of (image, label) files -> ``(uint8 3 x H x W tensor, int64 H x W train-id tensor)``.

    An index may be an ``int`` or an ``(index, seed)`` pair; the seed fixes the random
    augmentation of that sample (see :class:`PairTransform`).
    """

    def __init__(self, spec: DatasetSpec, pairs: Sequence[tuple[Path, Path]],
                 transform: PairTransform | None = None, check: bool = True,
                 check_sizes: bool = False) -> None:
        if not pairs:
            raise DatasetError(f"the {spec.name} dataset is empty")
        self.spec = spec
        self.pairs = list(pairs)
        self.transform = transform or PairTransform(None)
        if check:
            check_labels([label for _, label in self.pairs], spec,
                         images=[image for image, _ in self.pairs] if check_sizes else None)

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
    """
    Per class: labelled pixels, and all pixels of the images where the class appears.

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
                  transform: PairTransform | None = None, check: bool = True,
                  classes: str | os.PathLike | None = None) -> SegmentationDataset:
    """
    Build dataset ``name`` ('camvid' | 'cityscapes' | 'folder') at ``root``.

    ``split`` e.g. 'train', 'train+val'. ``folder`` needs its ``classes`` file (a relative path is
    read from ``root``); checking it also compares every mask's size with its image's.
    """
    if name == "folder" and classes is not None:
        classes = resolve_classes_path(root, classes)
        if not Path(classes).is_file():
            raise DatasetError(f"classes file {classes} does not exist (a relative data.classes "
                               f"is read from the dataset root {root})")
    spec = get_spec(name, classes)
    return SegmentationDataset(spec, PAIRS[name](root, split), transform, check,
                               check_sizes=name == "folder")


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """H x W train ids -> H x W x 3 uint8 RGB; ignore (255) is black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return lut[label]
