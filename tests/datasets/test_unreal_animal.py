"""CC-SSL's Unreal synthetic animals (``DATASET.DATASET: unreal_animal``) on
files the test writes in the official layout, against values computed by hand
from ``pose/datasets/synthetic_animal_sp.py``; the mean.pth.tar normalisation."""
import os

import cv2
import numpy as np
import pytest
import torch

from conftest import TINY_MODEL

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.animal import TIGDOG
from posezoo.datasets.unreal_animal import MESH_JOINTS

HORSE = MESH_JOINTS["horse"]


class _NotATensor:
    """Pickled by reference: torch.load(weights_only=True) must refuse it."""


def _cfg(root, extra=()):
    return load_config(None, ["DATASET.DATASET", "unreal_animal", "DATASET.ROOT", str(root), "DATASET.TRAIN_SET",
                              "horse_train", "DATASET.TEST_SET", "horse_valid", "MODEL.NUM_JOINTS", "18",
                              "WORKERS", "0", "OUTPUT_DIR", str(root / "out")] + TINY_MODEL + list(extra))


def _renders(root, count=5, split=True):
    """`count` renders; render 1 has hand-placed points (the others random inside the frame)."""
    folder = root / "synthetic_animal" / "horse_combineds5r5_texture"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pts = np.column_stack([rng.uniform(100, 500, 1800), rng.uniform(50, 400, 1800), np.zeros(1800)])
        if i == 1:
            pts[5] = [-20.0, 90.0, 1]      # a mesh point left of the frame: the box clips to x 0
            pts[6] = [601.3, 700.0, 0]     # float16 601.5; below the frame: the box clips to y 480
            pts[HORSE[0]] = [100.3, 200.7, 0]  # float16 (100.3125, 200.75), marked visible all the same
            pts[HORSE[1]] = [-5.0, 100.0, 1]   # outside 640 x 480: zeroed, unlabelled
            pts[HORSE[2]] = [300.0, 0.0, 1]    # y 0: no target, unlabelled; the box's y_min
        np.save(folder / f"{i:04d}_kpts.npy", pts)
        cv2.imwrite(str(folder / f"{i:04d}_img.png"), np.full((480, 640, 3), 40 * i % 250, np.uint8))
    if split:
        np.save(folder / "train_idxs.npy", np.array([0, 2, 3, 4]))
        np.save(folder / "valid_idxs.npy", np.array([1]))
    return folder


def test_unreal_animal_follows_the_official_formulas(tmp_path):
    _renders(tmp_path)
    cfg = _cfg(tmp_path)
    ds = build_dataset(cfg, "horse_valid", False, build_codec(cfg))
    assert [r["image_id"] for r in ds.db] == [1] and ds.db[0]["image"].endswith("0001_img.png")
    rec = ds.db[0]
    # box over all mesh points, clipped: x 0..601.5 (float16), y 0..480
    # c = ((0 + 601.5) / 2, (0 + 480) / 2); s = max(601.5, 480) / 200 x 1.25 = 3.759375
    np.testing.assert_array_equal(rec["center"], np.float32([300.75, 240.0]))
    np.testing.assert_allclose(rec["scale"], [3.759375, 3.759375], rtol=1e-7)
    assert rec["crop_size"] == pytest.approx(751.875)
    np.testing.assert_array_equal(rec["joints"][0, :2], np.float32([100.3125, 200.75]))
    np.testing.assert_array_equal(rec["joints"][1:3, :2], 0)
    np.testing.assert_array_equal(rec["joints_vis"][:, 0], [1, 0, 0] + [1] * 15)
    assert ds.flip_pairs == [tuple(p) for p in TIGDOG.flip_pairs]
    _, target, weight, _ = ds[0]
    assert target.shape == (18, 16, 16) and weight[:3, 0].tolist() == [1, 0, 0]
    table, mean = ds.evaluate(np.stack([r["joints"] for r in ds.db]), None, [], str(tmp_path))
    assert mean == pytest.approx(100.0) and table["PCK L_Eye"] == pytest.approx(100.0)

    train = build_dataset(cfg, "horse_train", True, build_codec(cfg))
    assert [r["image_id"] for r in train.db] == [0, 2, 3, 4]


def test_unreal_animal_split_and_bad_sets(tmp_path):
    _renders(tmp_path, count=10, split=False)
    cfg = _cfg(tmp_path)
    codec = build_codec(cfg)
    train, valid = (build_dataset(cfg, s, False, codec) for s in ("horse_train", "horse_valid"))
    ids = sorted([r["image_id"] for r in train.db] + [r["image_id"] for r in valid.db])
    assert ids == list(range(10)) and len(valid.db) == 2  # a seeded 1/5 validation split
    with pytest.raises(ValueError, match="25"):
        build_dataset(cfg, "elephant_valid", False, codec)
    with pytest.raises(ValueError, match="horse_valid"):
        build_dataset(cfg, "zebra_valid", False, codec)
    with pytest.raises(Exception, match="no \\*img.png"):
        build_dataset(cfg, "tiger_valid", False, codec)


def test_mean_file_normalisation(tmp_path):
    folder = _renders(tmp_path)
    mean_file = folder / "mean.pth.tar"
    torch.save({"mean": torch.tensor([0.4038, 0.3956, 0.3925]), "std": torch.tensor([0.26, 0.25, 0.23])}, mean_file)
    cfg = _cfg(tmp_path, ["DATASET.INPUT_MEAN_FILE", str(mean_file)])
    ds = build_dataset(cfg, "horse_valid", False, build_codec(cfg))
    np.testing.assert_allclose(ds.input_mean, [0.4038, 0.3956, 0.3925], rtol=1e-6)
    np.testing.assert_array_equal(ds.input_std, [1, 1, 1])  # bearpaw's color_normalize only subtracts
    inputs = ds[0][0]
    # render 1 is grey 40 everywhere the crop sees the image: 40 / 255 - mean (the padding is 0 - mean)
    assert inputs[0].max().item() == pytest.approx(40 / 255 - 0.4038, abs=1e-6)

    unsafe = tmp_path / "unsafe.pth.tar"
    torch.save({"mean": _NotATensor()}, unsafe)
    for path, message in ((unsafe, "weights_only=True"), (tmp_path / "none.pth.tar", "not found")):
        with pytest.raises(ValueError, match=message):
            build_dataset(_cfg(tmp_path, ["DATASET.INPUT_MEAN_FILE", str(path)]), "horse_valid", False,
                          build_codec(cfg))

