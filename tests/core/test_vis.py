"""Tests for posezoo.utils.vis."""

import math
import os

import cv2
import numpy as np
import pytest
import torch

from posezoo.datasets.coco import COCO_FLIP_PAIRS, COCO_SKELETON
from posezoo.utils.vis import (
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    draw_skeletons,
    save_batch_heatmaps,
    save_batch_images_with_joints,
    save_gallery,
)
from posezoo.datasets.nyu import SKELETON as NYU_SKELETON
from posezoo.datasets.nyu import nyu_uvd_to_xyz
from posezoo.utils.vis import BONE_COLOR, GT_COLOR, JOINT_COLOR, draw_hand_uvd, plot_hand_3d, save_instance_gallery

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def person(h=256, w=192, score=0.9, seed=0):
    """A plausible 17-joint COCO pose inside an (h, w) crop."""
    rng = np.random.default_rng(seed)
    xs = np.array([0.50, 0.45, 0.55, 0.40, 0.60, 0.35, 0.65, 0.30, 0.70, 0.28, 0.72,
                   0.40, 0.60, 0.40, 0.60, 0.40, 0.60]) * w
    ys = np.array([0.10, 0.08, 0.08, 0.10, 0.10, 0.25, 0.25, 0.40, 0.40, 0.55, 0.55,
                   0.55, 0.55, 0.72, 0.72, 0.90, 0.90]) * h
    xy = np.stack([xs, ys], 1) + rng.normal(0, 1, (17, 2))
    return np.concatenate([xy, np.full((17, 1), score)], 1)


def pixel(img, xy):
    x, y = int(round(xy[0])), int(round(xy[1]))
    return tuple(int(v) for v in img[y, x])


def closest(img, xy, candidates):
    """Which candidate colour the pixel at xy is nearest to (lines are anti-aliased)."""
    px = np.array(pixel(img, xy), dtype=float)
    return candidates[int(np.argmin([np.abs(px - np.array(c)).sum() for c in candidates]))]


def test_constants():
    assert len(COCO_SKELETON) == 19
    assert all(0 <= a < 17 and 0 <= b < 17 for a, b in COCO_SKELETON)
    assert (15, 13) in COCO_SKELETON and (0, 1) in COCO_SKELETON
    assert COCO_FLIP_PAIRS == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12),
                               (13, 14), (15, 16)]
    assert len({LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR}) == 3


def test_draw_skeletons_side_colours_and_copy():
    img = np.full((256, 192, 3), 40, dtype=np.uint8)
    before = img.copy()
    kpts = person()[None]
    out = draw_skeletons(img, kpts, COCO_SKELETON, COCO_FLIP_PAIRS)
    np.testing.assert_array_equal(img, before)  # input untouched
    assert out is not img and out.shape == img.shape and out.dtype == np.uint8
    for left, right in COCO_FLIP_PAIRS:
        assert pixel(out, kpts[0, left]) == LEFT_COLOR
        assert pixel(out, kpts[0, right]) == RIGHT_COLOR
    assert pixel(out, kpts[0, 0]) == CENTER_COLOR  # nose
    # a limb between two left joints (left hip - left knee) is drawn in the left colour
    cands = [LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR, (40, 40, 40)]
    mid = (kpts[0, 11, :2] + kpts[0, 13, :2]) / 2
    assert closest(out, mid, cands) == LEFT_COLOR
    mid = (kpts[0, 12, :2] + kpts[0, 14, :2]) / 2
    assert closest(out, mid, cands) == RIGHT_COLOR
    # left hip - right hip is a centre limb
    mid = (kpts[0, 11, :2] + kpts[0, 12, :2]) / 2
    assert closest(out, mid, cands) == CENTER_COLOR


def test_draw_skeletons_threshold():
    img = np.zeros((256, 192, 3), dtype=np.uint8)
    kpts = person(score=0.2)[None]  # exactly at the threshold -> not drawn
    np.testing.assert_array_equal(draw_skeletons(img, kpts, COCO_SKELETON, COCO_FLIP_PAIRS), img)
    kpts = person()[None]
    kpts[0, 9, 2] = 0.1  # left wrist below threshold
    out = draw_skeletons(img, kpts, COCO_SKELETON, COCO_FLIP_PAIRS, score_thresh=0.2)
    assert pixel(out, kpts[0, 9]) == (0, 0, 0)
    mid = (kpts[0, 7, :2] + kpts[0, 9, :2]) / 2  # elbow-wrist limb skipped too
    assert pixel(out, mid) == (0, 0, 0)
    assert pixel(out, kpts[0, 10]) == RIGHT_COLOR


def test_draw_skeletons_no_flip_pairs_and_edge_cases():
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    kpts = np.array([[[20, 20, 1.0], [80, 80, 1.0], [np.nan, 5, 1.0]]])
    out = draw_skeletons(img, kpts, [(0, 1), (1, 2)], None)
    assert pixel(out, (20, 20)) == CENTER_COLOR
    assert closest(out, (50, 50), [CENTER_COLOR, (0, 0, 0)]) == CENTER_COLOR
    # single (K, 3) person, empty people, grey input, off-image joints
    assert draw_skeletons(img, kpts[0], [(0, 1)], None).shape == (100, 100, 3)
    np.testing.assert_array_equal(draw_skeletons(img, np.zeros((0, 17, 3)), COCO_SKELETON), img)
    grey = np.zeros((50, 60), dtype=np.uint8)
    assert draw_skeletons(grey, [[[10, 10, 1.0], [1e9, -1e9, 1.0]]], [(0, 1)]).shape == (50, 60, 3)


def test_thickness_scales_with_image_size():
    def line_width(size):
        img = np.zeros((size, size, 3), dtype=np.uint8)
        k = np.array([[[0.1 * size, 0.5 * size, 1.0], [0.9 * size, 0.5 * size, 1.0]]])
        out = draw_skeletons(img, k, [(0, 1)], None)
        return int((out[:, size // 2].sum(axis=1) > 0).sum())

    assert line_width(1000) > line_width(200)


def normalised_batch(b, h, w, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0, 1, (b, 3, h, w)).astype(np.float32)
    return torch.from_numpy((rgb - MEAN[None, :, None, None].astype(np.float32))
                            / STD[None, :, None, None].astype(np.float32))


@pytest.mark.parametrize("b,nrow", [(5, 8), (6, 4), (1, 3)])
def test_save_batch_images_with_joints_grid(tmp_path, b, nrow):
    h, w, pad = 64, 48, 2
    images = normalised_batch(b, h, w)
    joints = np.stack([person(h, w, seed=i) for i in range(b)])
    f = tmp_path / "sub" / "batch.jpg"
    grid = save_batch_images_with_joints(images, joints, str(f), COCO_SKELETON,
                                         COCO_FLIP_PAIRS, nrow=nrow)
    ncol = min(nrow, b)
    nrows = math.ceil(b / ncol)
    expected = (nrows * (h + pad) + pad, ncol * (w + pad) + pad, 3)
    assert grid.shape == expected
    written = cv2.imread(str(f))
    assert written is not None and written.shape == expected


def test_save_batch_images_with_joints_content(tmp_path):
    """Crops are de-normalised to BGR and joints drawn at grid offsets."""
    h, w, pad = 64, 48, 2
    rgb = np.zeros((2, 3, h, w), dtype=np.float32)
    rgb[:, 0] = 1.0  # pure red crops
    images = torch.from_numpy((rgb - MEAN[None, :, None, None]) / STD[None, :, None, None])
    joints = np.zeros((2, 17, 3))
    joints[1, 5] = [20, 30, 1.0]  # left shoulder of the second crop only
    grid = save_batch_images_with_joints(images.float(), joints, str(tmp_path / "g.png"),
                                         COCO_SKELETON, COCO_FLIP_PAIRS)
    assert tuple(grid[pad + 5, pad + 5]) == (0, 0, 255)  # red in BGR
    assert tuple(grid[0, 0]) == (0, 0, 0)  # padding
    assert pixel(grid, (pad + (w + pad) + 20, pad + 30)) == LEFT_COLOR
    assert pixel(grid, (pad + 20, pad + 30)) == (0, 0, 255)  # nothing on crop 0


def test_save_batch_heatmaps(tmp_path):
    b, k, h, w = 3, 17, 32, 24
    images = normalised_batch(b, 4 * h, 4 * w)
    heat = torch.zeros(b, k, h, w)
    for i in range(b):
        for j in range(k):
            heat[i, j, (i + j) % h, (2 * j) % w] = 1.0
    f = tmp_path / "hm.jpg"
    grid = save_batch_heatmaps(images, heat, str(f))
    assert grid.shape == (b * h, (k + 1) * w, 3)
    assert f.exists() and f.stat().st_size > 0
    written = cv2.imread(str(f))
    assert written is not None and written.shape == grid.shape and written.std() > 0
    # first column is the resized crop; heatmap tiles are JET-blended (not identical)
    assert not np.array_equal(grid[:h, w:2 * w], grid[:h, :w])


def test_save_gallery(tmp_path):
    imgs, kpts = [], []
    for i in range(3):
        img = np.full((240 + 40 * i, 320, 3), 30 * i, dtype=np.uint8)
        path = tmp_path / f"im{i}.jpg"
        cv2.imwrite(str(path), img)
        imgs.append(str(path) if i != 1 else img)  # mix paths and arrays
        kpts.append(np.stack([person(240, 320, seed=i), person(240, 320, seed=9)]) if i
                    else np.zeros((0, 17, 3)))
    f = tmp_path / "gallery.png"
    gal = save_gallery(imgs, kpts, str(f), COCO_SKELETON, COCO_FLIP_PAIRS,
                       ncol=2, tile_size=(120, 160), padding=4)
    assert gal.shape == (2 * (120 + 4) + 4, 2 * (160 + 4) + 4, 3)
    assert cv2.imread(str(f)).shape == gal.shape
    # max_images caps the number of tiles
    gal1 = save_gallery(imgs, kpts, str(f), COCO_SKELETON, COCO_FLIP_PAIRS, max_images=1,
                        tile_size=(120, 160), padding=4)
    assert gal1.shape == (120 + 8, 160 + 8, 3)
    with pytest.raises(FileNotFoundError):
        save_gallery([str(tmp_path / "missing.jpg")], [np.zeros((0, 17, 3))], str(f),
                     COCO_SKELETON, COCO_FLIP_PAIRS)


def test_batch_drawings_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    crops = torch.zeros(2, 3, 32, 24)
    grid = save_batch_images_with_joints(crops, np.zeros((2, 17, 3)), None, COCO_SKELETON, COCO_FLIP_PAIRS)
    sheet = save_batch_heatmaps(crops, torch.rand(2, 17, 8, 6), None)
    assert grid.shape == (36, 54, 3) and sheet.shape == (16, 18 * 6, 3)
    assert os.listdir(tmp_path) == []


def test_save_instance_gallery_maps_regions_onto_tiles(tmp_path):
    image = np.full((200, 300, 3), 50, np.uint8)
    pred = person(100, 60, score=0.9)
    pred[:, 0] += 100  # a person in the region x 100..160, y 40..140 (after the shift below)
    pred[:, 1] += 40
    gt = pred.copy()
    gt[:, 2] = 0  # COCO visibility: only the nose is labelled, away from the predicted joints
    gt[0] = [105, 135, 2]
    gal = save_instance_gallery([image, image], np.stack([pred, pred]), [[100, 40, 60, 100], [0, 0, 300, 200]],
                                str(tmp_path / "g.png"), COCO_SKELETON, COCO_FLIP_PAIRS,
                                gt_keypoints=np.stack([gt, gt]), captions=["OKS 0.91", "OKS 0.10"],
                                tile_size=(200, 120), ncol=2, padding=4)
    assert gal.shape == (18 + 200 + 8, 2 * (120 + 4) + 4, 3)  # 18 px caption band above each tile
    assert cv2.imread(str(tmp_path / "g.png")).shape == gal.shape
    # tile 0 shows the 60x100 region zoomed x2 (fits 120x200): image p -> 2 (p - (100, 40)) + offset
    tile = gal[22:222, 4:124]
    for left, right in COCO_FLIP_PAIRS:
        assert pixel(tile, 2 * (pred[left, :2] - [100, 40])) == LEFT_COLOR
        assert pixel(tile, 2 * (pred[right, :2] - [100, 40])) == RIGHT_COLOR
    assert pixel(tile, 2 * (gt[0, :2] - [100, 40])) == GT_COLOR
    assert pixel(tile, 2 * (gt[1, :2] - [100, 40])) != GT_COLOR  # unlabelled GT joints are not drawn
    # tile 1 fits the whole 300x200 image into 120x200: zoom 0.4, centred vertically
    tile = gal[22:222, 128:248]
    assert pixel(tile, 0.4 * gt[0, :2] + [0, 60]) == GT_COLOR
    assert tuple(tile[65, 5]) == (50, 50, 50) and tuple(tile[55, 5]) == (0, 0, 0)
    # the caption: white text on the black band
    band = gal[4:22, 4:124]
    assert (band == 255).all(axis=2).any() and (band == 0).all(axis=2).mean() > 0.5
    with pytest.raises(ValueError, match="same non-zero count"):
        save_instance_gallery([image], np.stack([pred, pred]), [[0, 0, 1, 1]], None, COCO_SKELETON, None)


def hand_uvd():
    """14 NYU joints spread over a 160x120 frame at 480-560 mm."""
    rng = np.random.default_rng(0)
    uv = np.stack([np.linspace(20, 140, 14), 60 + 30 * np.sin(np.linspace(0, 3, 14))], axis=1)
    return np.concatenate([uv, rng.uniform(480, 560, (14, 1))], axis=1)


def test_draw_hand_uvd_colours_depth_and_draws_joints():
    depth = np.full((120, 160), 900.0, np.float32)
    depth[:, :40] = 450.0  # near
    depth[100:, 100:] = 0.0  # no reading
    uvd = hand_uvd()
    before = depth.copy()
    out = draw_hand_uvd(depth, uvd, NYU_SKELETON)
    np.testing.assert_array_equal(depth, before)
    assert out.shape == (120, 160, 3) and out.dtype == np.uint8
    for u, v, _ in uvd:
        assert pixel(out, (u, v)) == JOINT_COLOR
    # a bone midpoint away from the joints is drawn in the bone colour (palm 13 - wrist 12)
    a, b = uvd[13, :2], uvd[12, :2]
    if np.linalg.norm(a - b) > 12:
        assert pixel(out, (a + b) / 2) == BONE_COLOR
    # colour map: near (450 mm) is red-ish, far (900 mm, beyond the hand range) blue-ish, no reading black
    near, far = out[5, 5].astype(int), out[5, 150].astype(int)
    assert near[2] > near[0] and far[0] > far[2]
    assert tuple(out[115, 155]) == (0, 0, 0)
    # an explicit range: 450 mm at its near end is the colour map's hottest colour
    ranged = draw_hand_uvd(depth, uvd, NYU_SKELETON, depth_range=(450, 900))
    hottest = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_JET)[0, 0]
    np.testing.assert_array_equal(ranged[5, 5], hottest)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        draw_hand_uvd(depth, uvd[:, :2], NYU_SKELETON)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        draw_hand_uvd(depth[None], uvd, NYU_SKELETON)


def test_plot_hand_3d_writes_a_png(tmp_path):
    xyz = nyu_uvd_to_xyz(hand_uvd())
    path = plot_hand_3d(xyz, NYU_SKELETON, str(tmp_path / "sub" / "hand.png"), title="frame 0")
    image = cv2.imread(path)
    assert image is not None and image.shape == (500, 500, 3)
    assert (image < 128).any(axis=2).mean() > 0.005  # axes, joints and bones were drawn
    moved = xyz.copy()
    moved[0] += [40, 40, 0]
    other = cv2.imread(plot_hand_3d(moved, NYU_SKELETON, str(tmp_path / "moved.png"), gt_xyz=xyz))
    assert other.shape == image.shape and not np.array_equal(other, image)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        plot_hand_3d(xyz[:, :2], NYU_SKELETON, str(tmp_path / "x.png"))
