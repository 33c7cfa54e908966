"""The NYU dataset class: both official crop recipes, checked pixel for pixel
against a direct transcription of the released preprocessing on the real test
frame, exact back-projection of crop-space joints (with and without training
augmentation), and bad input."""
import os
import random

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from conftest import SHARED_DATA, needs_shared
from posezoo.config import load_config
from posezoo.datasets.joints_dataset import ImageReadError
from posezoo.datasets.nyu import (A2J_MEAN, A2J_STD, FX, FY, NYUDataset, a2j_crop, awr_crop,
                                  read_depth)
from posezoo.utils.transforms import depth_crop_to_frame

NYU = os.path.join(SHARED_DATA, "nyu")


class IdentityCodec:
    """Hands the crop-space joints through, so tests see what a codec receives."""
    prediction = "keypoints3d"

    def encode(self, joints_crop, depth_crop):
        assert joints_crop.dtype == np.float32 and depth_crop.ndim == 3
        return joints_crop, np.ones((len(joints_crop), 1), np.float32)


def make_cfg(root, recipe, size, **extra):
    opts = ["DATASET.DATASET", "nyu", "DATASET.ROOT", root, "DATASET.DEPTH_CROP", recipe, "MODEL.NUM_JOINTS", "14",
            "MODEL.IMAGE_SIZE", f"[{size}, {size}]", "DATASET.TEST_SET", "test", "DATASET.TRAIN_SET", "test"]
    for key, value in extra.items():
        opts += [key, str(value)]
    return load_config(None, opts)


@pytest.fixture()
def real_root(tmp_path):
    """The real test labels/centres and the one real frame (test frame 1), linked
    into a NYU layout."""
    if not os.path.isdir(NYU):
        pytest.skip(f"{NYU} is absent (the shared samples live outside the repo)")
    os.makedirs(tmp_path / "test")
    os.symlink(os.path.join(NYU, "test_depth_1_0000001.png"), tmp_path / "test" / "depth_1_0000001.png")
    for name in ("nyu_keypointsUVD_test.mat", "nyu_center_test.mat"):
        os.symlink(os.path.join(NYU, name), tmp_path / name)
    return str(tmp_path)


def official_a2j_input(depth, center, size=176, xy=110.0, z=150.0):
    """A2J src/nyu.py's test preprocessing, line by line (pixel2world/world2pixel
    around the centre, clamp, int() cut, nearest resize, depth window, mean/std)."""
    x = (center[0] - 320) * center[2] / FX
    y = (center[1] - 240) * center[2] / FY
    left = (x - xy) * FX / center[2] + 320
    top = (y + xy) * FY / center[2] + 240
    right = (x + xy) * FX / center[2] + 320
    bottom = (y - xy) * FY / center[2] + 240
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(right, depth.shape[1] - 1), min(bottom, depth.shape[0] - 1)
    out = cv2.resize(depth[int(y0):int(y1), int(x0):int(x1)].copy(), (size, size),
                     interpolation=cv2.INTER_NEAREST).astype(np.float32)
    out[out >= center[2] + z] = center[2]
    out[out <= center[2] - z] = center[2]
    return ((out - center[2]) - A2J_MEAN) / A2J_STD, (x0, y0, x1, y1)


def official_awr_raw(depth, center, size=128, cube=300.0):
    """AWR's center2bounds + bounds2crop + resize/pad, before normalisation."""
    paras = (588.03, 587.07)
    us = int(center[0] - cube / 2 / center[2] * paras[0] + 0.5)
    ue = int(center[0] + cube / 2 / center[2] * paras[0] + 0.5)
    vs = int(center[1] - cube / 2 / center[2] * paras[1] + 0.5)
    ve = int(center[1] + cube / 2 / center[2] * paras[1] + 0.5)
    h, w = depth.shape
    box = [max(vs, 0), min(ve, h), max(us, 0), min(ue, w)]
    img = np.pad(depth[box[0]:box[1], box[2]:box[3]], ((abs(vs) - box[0], abs(ve) - box[1]),
                                                       (abs(us) - box[2], abs(ue) - box[3])))
    img[(img < center[2] - cube / 2) & (img != 0)] = center[2] - cube / 2
    img[(img > center[2] + cube / 2) & (img != 0)] = 0
    scale = min(size / (ue - us), size / (ve - vs))
    new = (int((ue - us) * scale), int((ve - vs) * scale))
    res = np.zeros((size, size), np.float32)
    u0, v0 = (size - new[0]) / 2.0, (size - new[1]) / 2.0
    res[int(v0):int(v0) + new[1], int(u0):int(u0) + new[0]] = cv2.resize(img, new, interpolation=cv2.INTER_NEAREST)
    return res, (us, vs, scale, int(u0), int(v0))


@needs_shared
def test_a2j_crop_equals_the_released_preprocessing(real_root):
    depth = read_depth(os.path.join(real_root, "test", "depth_1_0000001.png"))
    center = scipy.io.loadmat(os.path.join(NYU, "nyu_center_test.mat"))["centre_pixel"][0, 0]
    expected, (x0, y0, x1, y1) = official_a2j_input(depth, center)
    crop = a2j_crop(depth, center)
    np.testing.assert_allclose(crop.depth, expected, atol=1e-5)
    assert crop.foreground and (crop.depth != crop.depth[0, 0]).mean() > 0.2  # the hand is there
    # joints map through the exact (float) box, as A2J's label_xy
    joints = scipy.io.loadmat(os.path.join(NYU, "nyu_keypointsUVD_test.mat"))["keypoints3D"][0]
    uv = joints[:, :2] @ crop.image_to_crop[:2, :2].T + crop.image_to_crop[:2, 2]
    np.testing.assert_allclose(uv[:, 0], (joints[:, 0] - x0) * 176 / (x1 - x0), rtol=1e-12)
    np.testing.assert_allclose(uv[:, 1], (joints[:, 1] - y0) * 176 / (y1 - y0), rtol=1e-12)


@needs_shared
@pytest.mark.parametrize("cube", [300.0, 250.0])
def test_awr_crop_equals_the_released_preprocessing(real_root, cube):
    depth = read_depth(os.path.join(real_root, "test", "depth_1_0000001.png"))
    center = scipy.io.loadmat(os.path.join(NYU, "nyu_center_test.mat"))["centre_pixel"][0, 0]
    raw, (us, vs, scale, u0, v0) = official_awr_raw(depth, center, cube=cube)
    back = center[2] + cube / 2
    expected = raw.copy()
    expected[expected == expected.max()] = back
    expected[expected == 0] = back
    expected = (np.clip(expected, center[2] - cube / 2, back) - center[2]) / (cube / 2)
    crop = awr_crop(depth, center, cube=(cube, cube, cube))
    np.testing.assert_allclose(crop.depth, expected, atol=1e-6)
    assert crop.depth.min() >= -1 and crop.depth.max() <= 1 and (crop.depth < 1).mean() > 0.1
    np.testing.assert_allclose(crop.image_to_crop, [[scale, 0, u0 - scale * us], [0, scale, v0 - scale * vs],
                                                    [0, 0, 1]], rtol=1e-12)
    assert crop.depth_scale == cube / 2


@needs_shared
@pytest.mark.parametrize("recipe,size", [("a2j", 176), ("awr", 128)])
@pytest.mark.parametrize("train", [False, True])
def test_crop_joints_map_back_to_the_labels_exactly(real_root, recipe, size, train):
    extra = {"DATASET.SHIFT_FACTOR": 5 if recipe == "a2j" else 10, "DATASET.ROT_FACTOR": 180,
             "DATASET.SCALE_FACTOR": 0.5 if recipe == "a2j" else 0.1, "DATASET.RANDOM_ERASE_PROB": 0.5}
    dataset = NYUDataset(make_cfg(real_root, recipe, size, **extra), "test", train, IdentityCodec())
    labels = scipy.io.loadmat(os.path.join(NYU, "nyu_keypointsUVD_test.mat"))["keypoints3D"][0]
    np.random.seed(1)
    random.seed(1)  # random erasing draws its rectangle from Python's random, as A2J's release does
    for _ in range(6 if train else 1):
        inputs, joints_crop, weight, meta = dataset[0]
        assert inputs.shape == (1, size, size) and inputs.dtype == torch.float32
        assert weight.sum() == 14 and meta["valid"] == 1
        batch = {k: torch.as_tensor(v)[None] for k, v in meta.items()}
        uvd = depth_crop_to_frame(torch.as_tensor(joints_crop)[None], batch["crop_to_image"], batch["center"],
                                  batch["depth_scale"])[0].numpy()
        np.testing.assert_allclose(uvd, labels, atol=1e-3)  # float32 crop-space joints
        inside = (joints_crop[:, :2] > 0) & (joints_crop[:, :2] < size)
        assert inside.mean() > 0.8  # the hand is in the crop


@needs_shared
def test_awr_test_cube_shrinks_from_frame_2440(real_root):
    dataset = NYUDataset(make_cfg(real_root, "awr", 128), "test", False, IdentityCodec())
    assert dataset._cube(2439) == (300.0, 300.0, 300.0)
    assert dataset._cube(2440) == pytest.approx((250.0, 250.0, 250.0))


@needs_shared
def test_missing_frame_and_bad_centre_are_reported(real_root):
    dataset = NYUDataset(make_cfg(real_root, "a2j", 176), "test", False, IdentityCodec())
    with pytest.raises(ImageReadError, match="depth_1_0000002.png.*SKIP_CORRUPT_IMAGES"):
        dataset[1]
    skipping = NYUDataset(make_cfg(real_root, "a2j", 176, **{"DATASET.SKIP_CORRUPT_IMAGES": True}), "test", False,
                          IdentityCodec())
    _, _, weight, meta = skipping[1]
    assert meta["valid"] == 0 and weight.sum() == 0
    dataset.centers = dataset.centers.copy()
    dataset.centers[0] = [2000.0, 2000.0, 800.0]
    with pytest.raises(ValueError, match="outside the 640x480 frame"):
        dataset[0]
    dataset.centers[0] = [300.0, 200.0, 0.0]
    with pytest.raises(ValueError, match="invalid hand centre"):
        dataset[0]


def test_all_background_crop_gets_zero_weight(tmp_path):
    os.makedirs(tmp_path / "test")
    cv2.imwrite(str(tmp_path / "test" / "depth_1_0000001.png"), np.zeros((480, 640, 3), np.uint8))
    scipy.io.savemat(tmp_path / "nyu_keypointsUVD_test.mat", {"keypoints3D": np.full((1, 14, 3), 320.0)})
    scipy.io.savemat(tmp_path / "nyu_center_test.mat", {"centre_pixel": np.array([[[320.0, 240.0, 700.0]]])})
    for recipe, size in (("a2j", 176), ("awr", 128)):
        _, _, weight, meta = NYUDataset(make_cfg(str(tmp_path), recipe, size), "test", False, IdentityCodec())[0]
        assert meta["foreground"] == 0 and weight.sum() == 0 and meta["valid"] == 1


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="test labels not found"):
        NYUDataset(make_cfg(str(tmp_path), "a2j", 176), "test", False, IdentityCodec())
    scipy.io.savemat(tmp_path / "nyu_keypointsUVD_test.mat", {"keypoints3D": np.zeros((3, 14, 3))})
    scipy.io.savemat(tmp_path / "nyu_center_test.mat", {"centre_pixel": np.zeros((2, 1, 3))})
    with pytest.raises(ValueError, match="3 labelled frames but 2 centres"):
        NYUDataset(make_cfg(str(tmp_path), "a2j", 176), "test", False, IdentityCodec())
    with pytest.raises(ValueError, match="DEPTH_CROP"):
        NYUDataset(make_cfg(str(tmp_path), "v2v", 176), "test", False, IdentityCodec())
    with pytest.raises(ValueError, match="square"):
        load_cfg = make_cfg(str(tmp_path), "a2j", 176, **{"MODEL.IMAGE_SIZE": "[176, 128]"})
        NYUDataset(load_cfg, "test", False, IdentityCodec())


@needs_shared
def test_evaluate_writes_results_and_scores(real_root, tmp_path):
    dataset = NYUDataset(make_cfg(real_root, "a2j", 176), "test", False, IdentityCodec())
    labels = dataset.labels
    preds = labels.copy()
    preds[:, :, 2] += 10.0  # every joint 10 mm too far along its pixel's ray
    ray = np.sqrt(((labels[..., 0] - 320) / FX) ** 2 + ((labels[..., 1] - 240) / FY) ** 2 + 1)
    values, perf = dataset.evaluate(preds, None, np.arange(len(labels)), str(tmp_path))
    assert values["Mean error (mm)"] == pytest.approx(10.0 * ray.mean(), rel=1e-9)
    assert perf == -values["Mean error (mm)"]
    written = np.loadtxt(tmp_path / "results" / "nyu_test_uvd.txt")
    assert written.shape == (8252, 42)
    np.testing.assert_allclose(written.reshape(-1, 14, 3), preds, atol=1e-6)
    assert (tmp_path / "results" / "nyu_test_success_frames.png").exists()
