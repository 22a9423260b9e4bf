"""
The folder dataset: a user's own images and id masks, and its classes file.

Also the colour-mask converter and an evaluation on such a folder through slimseg-eval.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from slimseg_ros.models import ModelConfig, ModelInfo, build_model, save_checkpoint
from slimseg_ros.training.config import ConfigError, config_from_dict, load_config
from slimseg_ros.training.convert_masks import main as convert_main
from slimseg_ros.training.datasets import DatasetError, build_dataset, read_classes
from slimseg_ros.training.evaluate import main as eval_main
from slimseg_ros.training.sampler import ResumableSampler
from slimseg_ros.training.transforms import train_transform

REPO = Path(__file__).resolve().parents[1]
NAMES = ["road", "vehicle", "person", "background"]
PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60], [0, 0, 0]]
WHITE = [255, 255, 255]
MEAN, STD = [127.0] * 3, [128.0] * 3
# split -> (stem, height, width, image suffix); odd sizes, png and jpg, a nested subfolder
LAYOUT = {"train": [("a", 37, 53, ".jpg"), ("b", 41, 29, ".png"), ("run1/c", 30, 45, ".jpg")],
          "val": [("d", 33, 47, ".png")],
          "test": [("e", 35, 51, ".png"), ("f", 29, 43, ".jpg")]}


def write_classes(path: Path, **changes) -> Path:
    data = {"names": NAMES, "palette": PALETTE, "ignore_index": 255, "ignore_color": WHITE}
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def write_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), ids)


def scene(rng: np.random.Generator, height: int, width: int, ignore: int = 255) -> np.ndarray:
    """H x W class ids in 4-pixel tiles, a few tiles ``ignore``."""
    tiles = rng.integers(0, len(NAMES), (-(-height // 4), -(-width // 4)))
    tiles[rng.random(tiles.shape) < 0.1] = ignore
    return np.kron(tiles, np.ones((4, 4), dtype=tiles.dtype))[:height, :width].astype(np.uint8)


def colours_of(ids: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(PALETTE)] = PALETTE
    lut[255] = WHITE
    return lut[ids]


def write_folder(root: Path, layout: dict = LAYOUT, seed: int = 0) -> dict[str, np.ndarray]:
    """``images/<split>/`` + ``masks/<split>/`` and ``classes.yaml``; returns stem -> ids."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, items in layout.items():
        for stem, h, w, suffix in items:
            ids = scene(rng, h, w)
            noisy = colours_of(ids).astype(int) + rng.integers(-10, 10, (h, w, 3))
            write_rgb(root / "images" / split / f"{stem}{suffix}",
                      np.clip(noisy, 0, 255).astype(np.uint8))
            write_ids(root / "masks" / split / f"{stem}.png", ids)
            written[stem] = ids
    write_classes(root / "classes.yaml")
    return written


# ---------------------------------------------------------------------------------------------
# layouts


def test_split_subfolders_pair_by_stem_and_read_ids_pixel_by_pixel(tmp_path: Path) -> None:
    written = write_folder(tmp_path)
    ds = build_dataset("folder", tmp_path, "train", classes="classes.yaml")
    assert ds.spec.class_names == tuple(NAMES) and ds.spec.num_classes == 4
    assert ds.spec.palette == tuple(tuple(c) for c in PALETTE)
    by_stem = {image.relative_to(tmp_path / "images" / "train").with_suffix("").as_posix(): i
               for i, (image, _) in enumerate(ds.pairs)}
    assert sorted(by_stem) == ["a", "b", "run1/c"]
    for stem, i in by_stem.items():
        image, label = ds[i]
        h, w = written[stem].shape
        assert image.shape == (3, h, w) and label.shape == (h, w)
        np.testing.assert_array_equal(label.numpy(), written[stem])  # ids as stored, 255 ignored
    png = ds.pairs[by_stem["b"]][0]
    expected = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    assert torch.equal(ds[by_stem["b"]][0].permute(1, 2, 0), torch.from_numpy(expected))
    assert len(build_dataset("folder", tmp_path, "train+val", classes="classes.yaml")) == 4
    assert len(build_dataset("folder", tmp_path, ["val", "test"], classes="classes.yaml")) == 3


def test_list_files_name_stems_under_images_and_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for stem, suffix in (("a", ".jpg"), ("b", ".png"), ("run1/c", ".png")):
        ids = scene(rng, 21, 35)
        write_rgb(tmp_path / "images" / f"{stem}{suffix}", colours_of(ids))
        write_ids(tmp_path / "masks" / f"{stem}.png", ids)
    write_classes(tmp_path / "classes.yaml")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("# robot run, day 1\na\n\nrun1/c\n")
    (tmp_path / "splits" / "val.txt").write_text("b\n")
    train = build_dataset("folder", tmp_path, "train", classes="classes.yaml")
    assert [(i.relative_to(tmp_path).as_posix(), m.relative_to(tmp_path).as_posix())
            for i, m in train.pairs] == [("images/a.jpg", "masks/a.png"),
                                         ("images/run1/c.png", "masks/run1/c.png")]
    assert len(build_dataset("folder", tmp_path, "train+val", classes="classes.yaml")) == 3

    (tmp_path / "splits" / "test.txt").write_text("a\nnope\n")
    with pytest.raises(DatasetError, match=r"test\.txt line 2.*nope"):
        build_dataset("folder", tmp_path, "test", classes="classes.yaml")
    (tmp_path / "splits" / "test.txt").write_text("a\nb\na\n")
    with pytest.raises(DatasetError, match=r"test\.txt line 3.*'a'.*line 1"):
        build_dataset("folder", tmp_path, "test", classes="classes.yaml")
    (tmp_path / "masks" / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"images/b\.png .*val\.txt line 1.*no mask"):
        build_dataset("folder", tmp_path, "val", classes="classes.yaml")
    (tmp_path / "splits" / "test.txt").write_text("# nothing yet\n")
    with pytest.raises(DatasetError, match=r"'test' is empty.*test\.txt"):
        build_dataset("folder", tmp_path, "test", classes="classes.yaml")


def test_ignore_index_of_the_classes_file_maps_to_ignore(tmp_path: Path) -> None:
    write_folder(tmp_path, {"val": [("x", 9, 13, ".png")]})
    mask = tmp_path / "masks/val/x.png"
    ids = np.resize(np.array([0, 1, 2, 3, 9], np.uint8), (9, 13))
    write_ids(mask, ids)
    write_classes(tmp_path / "c9.yaml", ignore_index=9)
    _, label = build_dataset("folder", tmp_path, "val", classes="c9.yaml")[0]
    np.testing.assert_array_equal(label.numpy(), np.where(ids == 9, 255, ids))
    ids[4, 7] = 255  # not a class and not this file's ignore id
    write_ids(mask, ids)
    with pytest.raises(DatasetError, match=r"x\.png holds id\(s\) \[255\].*c9\.yaml.*0\.\.3, 9"):
        build_dataset("folder", tmp_path, "val", classes="c9.yaml")


# ---------------------------------------------------------------------------------------------
# bad data, each error naming the file


def test_image_without_mask_and_mask_without_image_are_named(tmp_path: Path) -> None:
    write_folder(tmp_path)
    (tmp_path / "masks/train/run1/c.png").unlink()
    with pytest.raises(DatasetError, match=r"images/train/run1/c\.jpg has no mask.*"
                                           r"masks/train/run1/c\.png"):
        build_dataset("folder", tmp_path, "train", classes="classes.yaml")
    (tmp_path / "images/val/d.png").unlink()
    write_rgb(tmp_path / "images/val/other.png", np.zeros((5, 5, 3), np.uint8))
    write_ids(tmp_path / "masks/val/other.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(DatasetError, match=r"mask .*masks/val/d\.png has no image"):
        build_dataset("folder", tmp_path, "val", classes="classes.yaml")


def test_mask_of_another_size_names_both_files_when_the_dataset_is_built(tmp_path: Path) -> None:
    write_folder(tmp_path)
    write_ids(tmp_path / "masks/test/f.png", np.zeros((29, 44), np.uint8))  # image is 43 wide
    with pytest.raises(DatasetError, match=r"masks/test/f\.png is 44x29 .*images/test/f\.jpg "
                                           r"is 43x29"):
        build_dataset("folder", tmp_path, "test", classes="classes.yaml")


def test_exif_rotated_image_is_measured_as_it_is_read(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    write_folder(tmp_path, {"val": [("r", 20, 40, ".png")]})
    (tmp_path / "images/val/r.png").unlink()
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))  # stored 40 wide, 20 high
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display; OpenCV applies it when reading
    image.save(tmp_path / "images/val/r.jpg", exif=exif.tobytes())
    write_ids(tmp_path / "masks/val/r.png", np.zeros((40, 20), np.uint8))
    ds = build_dataset("folder", tmp_path, "val", classes="classes.yaml")
    assert ds[0][0].shape == (3, 40, 20)


def test_id_outside_the_class_list_names_the_mask(tmp_path: Path) -> None:
    write_folder(tmp_path)
    ids = cv2.imread(str(tmp_path / "masks/val/d.png"), cv2.IMREAD_UNCHANGED)
    ids[3, 3] = 4
    write_ids(tmp_path / "masks/val/d.png", ids)
    with pytest.raises(DatasetError, match=r"masks/val/d\.png holds id\(s\) \[4\] outside the "
                                           r"class table of classes file"):
        build_dataset("folder", tmp_path, "val", classes="classes.yaml")


def test_empty_or_missing_split_jpeg_masks_and_shared_stems_are_refused(tmp_path: Path) -> None:
    write_folder(tmp_path)
    (tmp_path / "images/empty").mkdir()
    (tmp_path / "masks/empty").mkdir()
    with pytest.raises(DatasetError, match=r"'empty' is empty: .*images/empty holds no"):
        build_dataset("folder", tmp_path, "empty", classes="classes.yaml")
    with pytest.raises(DatasetError, match=r"images/holdout/ nor .*splits/holdout\.txt"):
        build_dataset("folder", tmp_path, "holdout", classes="classes.yaml")
    write_rgb(tmp_path / "images/val/d.jpg", np.zeros((33, 47, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"2 image files share the stem 'd'"):
        build_dataset("folder", tmp_path, "val", classes="classes.yaml")
    (tmp_path / "masks/test/e.png").rename(tmp_path / "masks/test/e.jpg")
    with pytest.raises(DatasetError, match=r"masks/test/e\.jpg is a JPEG"):
        build_dataset("folder", tmp_path, "test", classes="classes.yaml")


def test_colour_mask_in_the_mask_folder_points_at_the_converter(tmp_path: Path) -> None:
    write_folder(tmp_path, {"val": [("x", 8, 8, ".png")]})
    write_rgb(tmp_path / "masks/val/x.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"x\.png .*slimseg-convert-masks"):
        build_dataset("folder", tmp_path, "val", classes="classes.yaml")


@pytest.mark.parametrize("changes,match", [
    ({"palette": PALETTE[:3]}, r"'palette' has 3 colours for 4 names"),
    ({"names": NAMES + ["road"]}, r"\['road'\] appear more than once"),
    ({"ignore_index": 2}, r"'ignore_index' 2 is the id of class 'person'"),
    ({"ignore_color": [0, 0, 142]}, r"'ignore_color' \[0, 0, 142\] is the colour of class "
                                    r"'vehicle'"),
    ({"palette": [[128, 64, 128], [0, 0, 142], [220, 20, 300], [0, 0, 0]]},
     r"palette entry 2 \(person\)"),
    ({"colours": [[1, 2, 3]]}, r"unknown key\(s\) \['colours'\]"),
    ({"names": None}, r"no 'names' list"),
])
def test_classes_file_errors_name_the_file(tmp_path: Path, changes: dict, match: str) -> None:
    path = write_classes(tmp_path / "my_classes.yaml", **changes)
    with pytest.raises(DatasetError, match=r"my_classes\.yaml.*" + match):
        read_classes(path)


def test_classes_path_is_read_from_the_root_and_required_for_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "data", {"val": [("x", 8, 8, ".png")]})
    absolute = build_dataset("folder", tmp_path / "data", "val",
                             classes=tmp_path / "data" / "classes.yaml")
    assert absolute.spec.class_names == tuple(NAMES)
    with pytest.raises(DatasetError, match=r"data/nothere\.yaml does not exist.*dataset root"):
        build_dataset("folder", tmp_path / "data", "val", classes="nothere.yaml")
    with pytest.raises(DatasetError, match="needs a classes file"):
        build_dataset("folder", tmp_path / "data", "val")
    with pytest.raises(ValueError, match="only read for the folder dataset"):
        build_dataset("camvid", tmp_path / "data", "val", classes="classes.yaml")


def test_data_config_names_the_classes_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.dataset=folder needs data.classes"):
        config_from_dict({"data": {"dataset": "folder", "root": "/data/robot"}})
    with pytest.raises(ConfigError, match="data.classes is only read for data.dataset=folder"):
        config_from_dict({"data": {"dataset": "camvid", "classes": "classes.yaml"}})
    cfg = load_config(None, ["data.dataset=folder", "data.root=/data/robot",
                             "data.classes=classes.yaml"])
    assert (cfg.data.dataset, cfg.data.classes) == ("folder", "classes.yaml")
    assert cfg.to_dict()["data"]["classes"] == "classes.yaml"
    assert config_from_dict({}).data.classes is None


# ---------------------------------------------------------------------------------------------
# colour masks


def test_convert_masks_writes_id_masks_with_the_same_stems(tmp_path: Path) -> None:
    written = write_folder(tmp_path / "data")
    color = tmp_path / "color"
    for split, items in LAYOUT.items():
        for stem, *_ in items:
            write_rgb(color / split / f"{stem}.png", colours_of(written[stem]))
    # a fully opaque RGBA export is fine
    rgba = np.dstack([colours_of(written["d"])[..., ::-1], np.full((33, 47), 255, np.uint8)])
    assert cv2.imwrite(str(color / "val" / "d.png"), rgba)
    (color / "notes.txt").write_text("labelled by hand")
    out = tmp_path / "data" / "masks_converted"
    classes = tmp_path / "data" / "classes.yaml"
    assert convert_main(["--classes", str(classes), str(color), str(out)]) == 0
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert got == ["test/e.png", "test/f.png", "train/a.png", "train/b.png", "train/run1/c.png",
                   "val/d.png"]
    for split, items in LAYOUT.items():
        for stem, *_ in items:
            ids = cv2.imread(str(out / split / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            assert ids.dtype == np.uint8 and ids.ndim == 2
            np.testing.assert_array_equal(ids, written[stem])  # white -> ignore_index 255
    # the converted masks make a folder dataset
    (tmp_path / "data" / "masks").rename(tmp_path / "masks_original")
    out.rename(tmp_path / "data" / "masks")
    assert len(build_dataset("folder", tmp_path / "data", "train", classes="classes.yaml")) == 3
    assert ('"slimseg-convert-masks = {PACKAGE}.training.convert_masks:main"'
            in (REPO / "setup.py").read_text())


def test_convert_masks_refuses_unknown_colours_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    classes = write_classes(tmp_path / "classes.yaml", ignore_color=None)
    rng = np.random.default_rng(2)
    color = tmp_path / "color"
    write_rgb(color / "train" / "good.png", colours_of(scene(rng, 12, 17, ignore=0)))
    bad = colours_of(scene(rng, 12, 17, ignore=0))
    bad[2, 5] = bad[7, 1] = [255, 0, 255]
    bad[9, 9] = [1, 2, 3]
    write_rgb(color / "train" / "bad.png", bad)
    write_rgb(color / "val" / "white.png", colours_of(np.full((6, 6), 255, np.uint8)))
    see_through = np.zeros((6, 6, 4), np.uint8)
    see_through[..., 3] = 255
    see_through[0, :2, 3] = 0
    assert cv2.imwrite(str(color / "val" / "alpha.png"), see_through)
    write_rgb(color / "val" / "lossy.jpg", np.zeros((6, 6, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.png").write_bytes(b"old")
    assert convert_main(["--classes", str(classes), str(color), str(out)]) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "bad.png" in x)
    assert "3 pixels in 2 colour(s) not in the palette" in line
    assert "[255, 0, 255] x2" in line and "x=5, y=2" in line
    assert "white.png: 36 pixels in 1 colour(s)" in err and "ignore_color" in err
    assert "alpha.png: 2 pixels are not fully opaque" in err
    assert "lossy.jpg: a JPEG" in err
    assert "4 error(s); nothing written" in err and "good.png" not in err
    assert [p.name for p in out.rglob("*")] == ["keep.png"]
    assert (out / "keep.png").read_bytes() == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".slimseg-convert-")]
    # a new output folder is not even created
    assert convert_main(["--classes", str(classes), str(color), str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()
    assert convert_main(["--classes", str(classes), str(color), str(color / "ids")]) == 2
    assert "outside the input folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# training and evaluation read it


def test_training_loader_batches_a_folder_dataset(tmp_path: Path) -> None:
    write_folder(tmp_path)
    ds = build_dataset("folder", tmp_path, "train", train_transform((32, 40), (0.5, 1.5)),
                       classes="classes.yaml")
    loader = DataLoader(ds, batch_size=2, sampler=ResumableSampler(ds, seed=0), num_workers=0)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 32, 40) and images.dtype == torch.uint8
    assert labels.shape == (2, 32, 40) and labels.dtype == torch.int64
    values = set(torch.unique(labels).tolist())
    assert values <= {0, 1, 2, 3, 255} and len(values - {255}) >= 2


def test_slimseg_eval_scores_a_folder_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    written = write_folder(tmp_path / "data")
    model = build_model(ModelConfig(backbone="mobilenetv2", num_classes=4, head_channels=32,
                                    low_level_channels=16, widths=(0.5, 1.0)))
    with torch.no_grad():  # every pixel at every width: "person"
        model.head.classifier.weight.zero_()
        model.head.classifier.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(NAMES, PALETTE, mean=MEAN, std=STD))
    monkeypatch.chdir(tmp_path)  # --classes is read from the working directory
    out = tmp_path / "eval"
    assert eval_main(["--checkpoint", "m.pt", "--dataset", "folder", "--classes",
                      "data/classes.yaml", "--root", "data", "--split", "test", "--workers", "0",
                      "--output", str(out)]) == 0
    gt = np.concatenate([written["e"].ravel(), written["f"].ravel()])
    gt = gt[gt != 255]
    expected_person = (gt == 2).sum() / gt.size  # |gt and pred person| / |gt or pred person|
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["dataset"] == "folder" and payload["classes"].endswith("classes.yaml")
    for width in ("0.5", "1"):
        r = payload["results"][width]
        assert r["images"] == 2
        assert r["per_class_iou"] == {"road": 0.0, "vehicle": 0.0,
                                      "person": pytest.approx(expected_person),
                                      "background": 0.0}
        assert r["miou"] == pytest.approx(expected_person / 4)
        assert r["pixel_accuracy"] == pytest.approx(expected_person)

    save_checkpoint(tmp_path / "other.pt", model,
                    ModelInfo(["a", "b", "c", "d"], PALETTE, mean=MEAN, std=STD))
    capsys.readouterr()
    assert eval_main(["--checkpoint", "other.pt", "--dataset", "folder", "--classes",
                      "data/classes.yaml", "--root", "data", "--workers", "0"]) == 2
    assert "classes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        eval_main(["--checkpoint", "m.pt", "--dataset", "folder", "--root", "data"])


def test_calibrate_bn_reads_a_folder_dataset(tmp_path: Path) -> None:
    from slimseg_ros.models import load_checkpoint
    from slimseg_ros.training.calibrate_bn import main as calibrate_main

    write_folder(tmp_path / "data")
    model = build_model(ModelConfig(backbone="mobilenetv2", num_classes=4, head_channels=32,
                                    low_level_channels=16, widths=(0.5, 1.0)))
    save_checkpoint(tmp_path / "m.pt", model, ModelInfo(NAMES, PALETTE, mean=MEAN, std=STD))
    assert calibrate_main(["--checkpoint", str(tmp_path / "m.pt"), "--dataset", "folder",
                           "--root", str(tmp_path / "data"), "--classes",
                           str(tmp_path / "data" / "classes.yaml"), "--size", "32", "48",
                           "--batch-size", "1", "--output", str(tmp_path / "cal.pt")]) == 0
    calibrated, _ = load_checkpoint(tmp_path / "cal.pt")
    before = dict(model.state_dict())
    moved = [k for k, v in calibrated.state_dict().items()
             if k.endswith("running_mean") and not torch.equal(v, before[k])]
    assert moved  # statistics re-estimated on the folder's three training images


def test_slimseg_train_runs_on_a_folder_dataset_with_its_classes(tmp_path: Path) -> None:
    from slimseg_ros.models import load_checkpoint
    from slimseg_ros.training.config import load_config
    from slimseg_ros.training.train import train
    from test_training_loop import tiny_overrides

    write_folder(tmp_path / "data")
    out = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(
        tmp_path / "data", out, iterations=2,
        **{"data.dataset": "folder", "data.classes": "classes.yaml", "model.num_classes": 4,
           "data.crop_size": [24, 32]}))
    train(cfg)
    _, info = load_checkpoint(out / "final_model.pt")
    assert list(info.class_names) == NAMES and [list(c) for c in info.palette] == PALETTE
