"""
Colour masks (what labelling tools export) -> single-channel id masks for the folder dataset.

``slimseg-convert-masks --classes classes.yaml IN_DIR OUT_DIR`` maps every pixel's colour to its
class id through the classes file's ``palette`` (class i has colour ``palette[i]``) and
``ignore_color`` to ``ignore_index``, and writes ``OUT_DIR/<same relative path>.png`` as 8-bit
single-channel PNGs (``IN_DIR/train/x.png`` -> ``OUT_DIR/train/x.png``). Every file is checked
first: a colour outside the palette is reported with its pixel count and one pixel position per
file, and when any file has an error nothing is written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .datasets import ClassesFile, DatasetError, read_classes

LOSSY_SUFFIXES = (".jpg", ".jpeg")


class ConversionError(ValueError):
    """One or more colour masks cannot be converted; ``problems`` holds one line per file."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _keys(rgb: np.ndarray) -> np.ndarray:
    """... x 3 uint8 RGB -> ... uint32 ``R << 16 | G << 8 | B``."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class ColorTable:
    """Colour -> id lookup of a classes file: palette colour i -> i, ignore colour -> ignore id."""

    def __init__(self, classes: ClassesFile) -> None:
        colours = list(classes.palette)
        ids = list(range(len(colours)))
        if classes.ignore_color is not None:
            colours.append(classes.ignore_color)
            ids.append(classes.ignore_index)
        keys = _keys(np.asarray(colours, dtype=np.uint8))
        order = np.argsort(keys)
        self.keys = keys[order]
        self.ids = np.asarray(ids, dtype=np.uint8)[order]

    def convert(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """H x W x 3 RGB -> (H x W uint8 ids, H x W bool: colour not in the table)."""
        keys = _keys(rgb)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        unknown = self.keys[pos] != keys
        return self.ids[pos], unknown


def read_color_mask(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB; an alpha channel is dropped only where every pixel is opaque."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f"{path}: cannot read the image")
    if mask.ndim == 2:
        raise DatasetError(f"{path}: single-channel, not a colour mask (already an id mask?)")
    if mask.dtype != np.uint8:
        raise DatasetError(f"{path}: {mask.dtype} pixels; colour masks must be 8-bit RGB")
    if mask.shape[2] == 4:
        transparent = int((mask[..., 3] != 255).sum())
        if transparent:
            raise DatasetError(f"{path}: {transparent} pixels are not fully opaque; export the "
                               f"mask without transparency (or paint those pixels with "
                               f"ignore_color)")
        mask = mask[..., :3]
    if mask.shape[2] != 3:
        raise DatasetError(f"{path}: {mask.shape[2]} channels; expected RGB")
    return cv2.cvtColor(mask, cv2.COLOR_BGR2RGB)


def _unknown_message(path: Path, rgb: np.ndarray, unknown: np.ndarray) -> str:
    ys, xs = np.nonzero(unknown)
    colours, counts = np.unique(rgb[unknown], axis=0, return_counts=True)
    order = np.argsort(-counts)
    shown = ", ".join(f"{list(map(int, colours[i]))} x{int(counts[i])}" for i in order[:3])
    more = f" and {len(colours) - 3} more" if len(colours) > 3 else ""
    pixels = f"{len(ys)} pixel" + ("s" if len(ys) != 1 else "")
    return (f"{path}: {pixels} in {len(colours)} colour(s) not in the palette "
            f"({shown}{more}); e.g. the pixel at x={int(xs[0])}, y={int(ys[0])} is "
            f"{list(map(int, rgb[ys[0], xs[0]]))}")


def colour_masks(in_dir: Path) -> list[Path]:
    """List the PNGs under ``in_dir`` (recursively, hidden files skipped), sorted."""
    out = []
    for path in sorted(in_dir.rglob("*")):
        rel = path.relative_to(in_dir)
        if path.is_file() and not any(p.startswith(".") for p in rel.parts) \
                and path.suffix.lower() in (".png", *LOSSY_SUFFIXES):
            out.append(path)
    return out


def convert_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   classes: ClassesFile, threads: int = 4) -> list[Path]:
    """
    Convert every colour mask under ``in_dir`` into ``out_dir``; returns the written files.

    Masks are converted into a temporary folder beside ``out_dir`` and moved into place only
    when every file converted, so an error leaves ``out_dir`` as it was.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ConversionError([f"input folder {in_dir} does not exist or is not a directory"])
    src, dst = in_dir.resolve(), out_dir.resolve()
    if dst == src or src in dst.parents:
        raise ConversionError([f"output folder {out_dir} must lie outside the input folder "
                               f"{in_dir}"])
    if out_dir.exists() and not out_dir.is_dir():
        raise ConversionError([f"output {out_dir} exists and is not a directory"])
    files = colour_masks(in_dir)
    if not files:
        raise ConversionError([f"input folder {in_dir} holds no .png masks"])
    table = ColorTable(classes)
    anchor = out_dir.parent if out_dir.exists() else next(p for p in dst.parents if p.is_dir())
    tmp = Path(tempfile.mkdtemp(prefix=".slimseg-convert-", dir=anchor))
    problems: list[str] = []

    def convert(path: Path) -> str | None:
        if path.suffix.lower() in LOSSY_SUFFIXES:
            return (f"{path}: a JPEG; lossy compression blends the colours at every edge, "
                    f"export the masks as PNG")
        try:
            rgb = read_color_mask(path)
        except DatasetError as exc:
            return str(exc)
        ids, unknown = table.convert(rgb)
        if unknown.any():
            return _unknown_message(path, rgb, unknown)
        if problems:  # an earlier file failed: keep checking, stop writing
            return None
        target = tmp / path.relative_to(in_dir).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), ids):
            return f"{target}: cannot write the id mask"
        return None

    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:  # cv2 releases the GIL
            for message in pool.map(convert, files):
                if message:
                    problems.append(message)
        if problems:
            raise ConversionError(problems)
        written = []
        for path in files:
            rel = path.relative_to(in_dir).with_suffix(".png")
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp / rel), str(out_dir / rel))
            written.append(out_dir / rel)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slimseg-convert-masks",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("--classes", required=True,
                        help="classes file (names, palette, ignore_index, ignore_color)")
    parser.add_argument("in_dir", help="folder of colour masks (PNG; split subfolders kept)")
    parser.add_argument("out_dir", help="folder for the id masks (created if missing)")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        classes = read_classes(args.classes)
        written = convert_folder(args.in_dir, args.out_dir, classes, args.threads)
    except DatasetError as exc:
        print(f"slimseg-convert-masks: error: {exc}", file=sys.stderr)
        return 2
    except ConversionError as exc:
        for line in exc.problems:
            print(f"slimseg-convert-masks: error: {line}", file=sys.stderr)
        if any("not in the palette" in line for line in exc.problems):
            print("slimseg-convert-masks: a colour of a class belongs in the classes file's "
                  "palette; the colour of unlabelled pixels is its ignore_color", file=sys.stderr)
        print(f"slimseg-convert-masks: {len(exc.problems)} error(s); nothing written to "
              f"{args.out_dir}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} id masks ({len(classes.names)} classes) to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
