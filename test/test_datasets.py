"""Datasets: Cityscapes and SegNet-CamVid layouts, id mapping per pixel, bad data, transforms."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slimseg_ros.training.datasets import (CAMVID_CLASSES, DatasetError, build_dataset,
                                           camvid_spec, cityscapes_spec, colorize)
from slimseg_ros.training.transforms import eval_transform, normalize_batch, train_transform

from synthetic_data import write_camvid_tree, write_cityscapes_tree


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def test_camvid_layout_and_id_mapping_pixel_by_pixel(tmp_path: Path) -> None:
    raw = np.arange(12, dtype=np.uint8).repeat(2).reshape(4, 6)  # every id 0..11
    rgb = np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    write_png(tmp_path / "train" / "a.png", rgb[..., ::-1])  # cv2 writes BGR
    write_png(tmp_path / "trainannot" / "a.png", raw)
    ds = build_dataset("camvid", tmp_path, "train")
    assert len(ds) == 1 and ds.spec.num_classes == 11
    image, label = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 4, 6)
    assert torch.equal(image.permute(1, 2, 0), torch.from_numpy(rgb))
    expected = np.where(raw == 11, 255, raw)
    assert label.dtype == torch.int64
    np.testing.assert_array_equal(label.numpy(), expected)


def test_camvid_class_table() -> None:
    spec = camvid_spec()
    assert spec.class_names == CAMVID_CLASSES
    assert spec.class_names[0] == "Sky" and spec.class_names[-1] == "Bicyclist"
    assert len(spec.palette) == 11 and spec.palette[3] == (128, 64, 128)  # road
    assert spec.lut[11] == 255


def test_cityscapes_layout_and_train_id_mapping(tmp_path: Path) -> None:
    from cityscapesscripts.helpers.labels import labels

    ids = np.array([lab.id for lab in labels if lab.id >= 0], dtype=np.uint8)  # 0..33
    raw = np.resize(ids, (5, 8)).astype(np.uint8)
    stem = "aachen_000000_000019"
    write_png(tmp_path / "leftImg8bit/val/aachen" / f"{stem}_leftImg8bit.png",
              np.zeros((5, 8, 3), np.uint8))
    write_png(tmp_path / "gtFine/val/aachen" / f"{stem}_gtFine_labelIds.png", raw)
    # a file of another kind in the label folder must not confuse the pairing
    write_png(tmp_path / "gtFine/val/aachen" / f"{stem}_gtFine_color.png",
              np.zeros((5, 8, 3), np.uint8))
    ds = build_dataset("cityscapes", tmp_path, "val")
    assert ds.spec.num_classes == 19
    _, label = ds[0]
    to_train = {lab.id: (255 if lab.trainId in (255, -1) else lab.trainId)
                for lab in labels if lab.id >= 0}
    expected = np.vectorize(to_train.get)(raw)
    np.testing.assert_array_equal(label.numpy(), expected)
    assert label[0, 7].item() == 0  # id 7 (road) -> train id 0
    assert label[0, 0].item() == 255  # id 0 (unlabeled) -> ignore


def test_cityscapes_names_and_palette_come_from_the_official_table() -> None:
    spec = cityscapes_spec()
    assert spec.class_names[0] == "road" and spec.class_names[18] == "bicycle"
    assert spec.palette[0] == (128, 64, 128)
    assert len(spec.palette) == 19


def test_synthetic_trees_load(tmp_path: Path) -> None:
    write_cityscapes_tree(tmp_path / "cs", {"train": 3})
    write_camvid_tree(tmp_path / "cv", {"train": 2, "val": 1})
    assert len(build_dataset("cityscapes", tmp_path / "cs", "train")) == 3
    assert len(build_dataset("camvid", tmp_path / "cv", "train+val")) == 3


def test_missing_root_names_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=str(missing)):
        build_dataset("camvid", missing, "train")
    with pytest.raises(DatasetError, match="nowhere"):
        build_dataset("cityscapes", missing, "train")


def test_image_without_label_names_the_image(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"train": 2})
    orphan = tmp_path / "train" / "orphan.png"
    write_png(orphan, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="orphan.png"):
        build_dataset("camvid", tmp_path, "train")

    write_cityscapes_tree(tmp_path / "cs", {"train": 2})
    label = next((tmp_path / "cs/gtFine/train").glob("*/*_labelIds.png"))
    label.unlink()
    image_name = label.name.replace("_gtFine_labelIds", "_leftImg8bit")
    with pytest.raises(DatasetError, match=image_name):
        build_dataset("cityscapes", tmp_path / "cs", "train")


def test_label_id_outside_the_table_names_the_file(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"train": 3})
    bad = sorted((tmp_path / "trainannot").iterdir())[1]
    label = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    label[0, 0] = 12
    write_png(bad, label)
    with pytest.raises(DatasetError, match=rf"{bad.name}.*\[12\]"):
        build_dataset("camvid", tmp_path, "train")

    write_cityscapes_tree(tmp_path / "cs", {"val": 1})
    cs_label = next((tmp_path / "cs/gtFine/val").glob("*/*_labelIds.png"))
    write_png(cs_label, np.full((4, 4), 34, np.uint8))
    with pytest.raises(DatasetError, match=cs_label.name):
        build_dataset("cityscapes", tmp_path / "cs", "val")


def test_size_mismatch_between_image_and_label_names_both(tmp_path: Path) -> None:
    write_png(tmp_path / "val" / "x.png", np.zeros((4, 6, 3), np.uint8))
    write_png(tmp_path / "valannot" / "x.png", np.zeros((5, 6), np.uint8))
    ds = build_dataset("camvid", tmp_path, "val")
    with pytest.raises(DatasetError, match="x.png"):
        ds[0]


def test_train_transform_crops_pads_with_ignore_and_keeps_label_values(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"train": 2}, size=(24, 32))
    t = train_transform((40, 48), scale_range=(0.5, 1.5))
    ds = build_dataset("camvid", tmp_path, "train", transform=t)
    raw_values = set(np.unique(ds.spec.lut[cv2.imread(str(ds.pairs[0][1]), cv2.IMREAD_UNCHANGED)]))
    padded = False
    for seed in range(6):
        image, label = ds[(0, seed)]
        assert image.shape == (3, 40, 48) and label.shape == (40, 48)
        values = set(np.unique(label.numpy()).tolist())
        assert values <= raw_values | {255}  # nearest neighbour: no new ids invented
        padded |= bool((label == 255).any())
    assert padded  # a 24x32 image scaled <= 1.5x needs padding to 40x48


def test_augmentation_is_a_pure_function_of_the_seed(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"train": 1}, size=(32, 40))
    ds = build_dataset("camvid", tmp_path, "train", transform=train_transform((24, 24)))
    a1, l1 = ds[(0, 123)]
    ds[(0, 5)]
    a2, l2 = ds[(0, 123)]
    assert torch.equal(a1, a2) and torch.equal(l1, l2)
    a3, _ = ds[(0, 124)]
    assert not torch.equal(a1, a3)


def test_eval_transform_native_or_resized(tmp_path: Path) -> None:
    write_camvid_tree(tmp_path, {"val": 1}, size=(24, 32))
    native = build_dataset("camvid", tmp_path, "val", eval_transform())
    assert native[0][0].shape == (3, 24, 32)
    resized = build_dataset("camvid", tmp_path, "val", eval_transform((12, 16)))
    assert resized[0][1].shape == (12, 16)


def test_normalize_batch_on_the_0_255_scale() -> None:
    images = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    x = normalize_batch(images, [127.0] * 3, [128.0] * 3)
    torch.testing.assert_close(x.flatten(), torch.tensor([-127 / 128, 0.0, 1.0]))


def test_colorize_uses_the_palette() -> None:
    out = colorize(np.array([[0, 255]], np.uint8), camvid_spec().palette)
    assert out[0, 0].tolist() == [128, 128, 128] and out[0, 1].tolist() == [0, 0, 0]


def test_real_camvid_loads_and_checks_fast(camvid_root: Path) -> None:
    start = time.perf_counter()
    train = build_dataset("camvid", camvid_root, "train")
    elapsed = time.perf_counter() - start
    assert len(train) == 367
    assert len(build_dataset("camvid", camvid_root, "val", check=False)) == 101
    assert len(build_dataset("camvid", camvid_root, "test", check=False)) == 233
    image, label = train[0]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
    values = set(torch.unique(label).tolist())
    assert values <= set(range(11)) | {255} and len(values - {255}) >= 5
    assert elapsed < 15, f"checking 367 labels took {elapsed:.1f} s"
