"""DARK codec (codecs/dark.py): equal to DarkPose's numbers, to the loop
reference, and geometrically consistent (sub-pixel recovery, round trip, flip).

The golden values below come from running DarkPose's own code from a checkout
of github.com/ilovepose/DarkPose (commit 0185b42; numpy 2.4, OpenCV 5.0) on
``golden_fixture()``:
``lib/core/inference.py::get_final_preds`` with ``TEST.BLUR_KERNEL = 11`` (on a
copy, since it blurs in place) and ``lib/dataset/JointsDataset.py::generate_target``
on the heatmap joints below.
"""
import os

import numpy as np
import pytest
import torch

from conftest import ROOT
from posezoo.codecs import build_codec
from oracles.reference_dark import (gaussian_blur_loop, generate_target_dark_loop,
                                            get_final_preds_dark_loop)
from posezoo.codecs.dark import DarkCodec, blur_keep_max
from posezoo.config import load_config
from posezoo.utils.transforms import affine_transform, flip_back, flip_permutation, fliplr_joints

EXPERIMENTS = os.path.join(ROOT, "experiments", "coco", "hrnet")

COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


def blob_maps(rng, n, k, h, w, noise, blobs=1):
    """Sum of `blobs` Gaussians per map (sigma 2, or 1.5..4 when several;
    amplitude 0.2..1; sub-pixel centres, some near or past the border) plus
    N(0, noise) noise, float32 (N, K, H, W)."""
    ys, xs = np.mgrid[0:h, 0:w]
    maps = np.zeros((n, k, h, w))
    for _ in range(blobs):
        mu_x, mu_y = rng.uniform(-2, w + 1, (n, k, 1, 1)), rng.uniform(-2, h + 1, (n, k, 1, 1))
        sigma = 2.0 if blobs == 1 else rng.uniform(1.5, 4.0, (n, k, 1, 1))
        amp = rng.uniform(0.2, 1.0, (n, k, 1, 1))
        maps += amp * np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * sigma ** 2))
    return (maps + rng.normal(0, noise, maps.shape)).astype(np.float32)


def golden_fixture():
    """3 crops x 17 joints of 64x48 heatmaps (seed 2020). Crops 0-1 hold single
    noisy blobs, and crop 2 holds three blobs of different widths per map with
    more noise. Map (1, 0) is all zeros (no positive maximum), and map (1, 1)
    is all negative. Centres and scales are exact in float32, as the dataset
    hands them over."""
    rng = np.random.default_rng(2020)
    maps = np.concatenate([blob_maps(rng, 2, 17, 64, 48, 0.05), blob_maps(rng, 1, 17, 64, 48, 0.1, blobs=3)])
    maps[1, 0] = 0.0
    maps[1, 1] = -np.abs(maps[1, 1]) - 0.1
    center = np.array([[320.5, 240.25], [101.0, 402.75], [250.0, 180.5]], np.float32)
    scale = np.array([[1.25, 1.5], [0.875, 1.0], [2.5, 3.25]], np.float32)
    return maps, center, scale


# DarkPose get_final_preds on golden_fixture(): (x, y) per joint, 4 decimals
DARK_PREDS = [
    [311.6109, 87.2854, 323.8669, 212.8397, 418.9673, 238.2146, 380.3906, 116.3718, 275.7486, 395.8473, 423.6249,
     129.9128, 328.4468, 73.3670, 326.6788, 396.4330, 376.1277, 407.1330, 306.1313, 305.4304, 414.2468, 340.3360,
     370.2871, 315.7378, 360.2340, 407.1330, 434.4043, 407.1330, 392.0213, 73.3670, 211.0191, 377.9131, 408.0944,
     140.9946],
    [14.0000, 286.1330, 14.0000, 286.1330, 188.0000, 397.1968, 116.8527, 396.0356, 88.0426, 519.3670, 166.3168,
     373.3314, 102.8511, 519.3670, 141.3197, 466.1505, 32.6095, 475.7390, 97.5791, 429.4236, 174.3350, 447.5572,
     188.0000, 504.5585, 14.0000, 312.0479, 188.0000, 408.3032, 173.1915, 286.1330, 85.3299, 337.8923, 86.4800,
     465.3575],
    [245.9134, 313.1996, 449.0611, 337.6884, 336.9118, 259.0754, 335.0269, 39.1004, 325.0981, -53.9905, 230.0260,
     457.5044, 327.7980, -70.2195, 146.8120, 90.8259, 71.8007, 477.5162, 111.6981, -126.2481, 141.4981, 81.2757,
     158.9774, -20.5163, 397.4033, 466.6064, 180.0885, 7.9661, 425.1808, -143.3192, 350.8617, 504.3192, 104.9463,
     305.2988]]
DARK_MAXVALS = [
    [0.68225336, 0.91545486, 0.84790301, 0.46466926, 0.77221161, 0.50973046, 0.62205434, 0.96309638, 0.29081285,
     0.66121459, 0.31735584, 0.95785224, 0.6557079, 0.41916519, 0.57295793, 0.40895194, 0.58795422],
    [0, -0.10003074, 0.52020258, 0.77310932, 0.79513824, 0.63005263, 0.67842084, 0.25871831, 0.89546698, 0.384707,
     0.42497995, 0.90623242, 0.38785481, 0.82171088, 0.83365834, 0.66797149, 0.41960546],
    [1.0836233, 0.87795037, 0.99306792, 0.87799335, 1.0037131, 0.93347275, 0.86899346, 1.0005229, 0.86592996,
     0.90345788, 0.72412074, 0.74382848, 0.8929283, 0.91067195, 0.90239739, 0.83095586, 1.0165224]]

# DarkPose generate_target (heatmap 48x64, sigma 2) for these heatmap-pixel
# joints: inside, on the border, windows partly off the map (int() truncates
# towards zero: -7.25 keeps its weight, -8 loses it), right of the map (53
# keeps, 54 loses), invisible (8), and visibility 0.5 (9: weight 0.5, no map).
ENC_JOINTS = [[10.25, 20.5], [0.75, 63.5], [-6.5, 30.0], [-7.25, 10.0], [-8.0, 10.0], [53.0, 5.5], [54.0, 5.5],
              [24.125, 31.875], [30.0, 40.0], [12.5, 40.0]]
ENC_VIS = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0.5]
ENC_WEIGHTS = [1, 1, 1, 1, 0, 1, 0, 1, 0, 0.5]
ENC_SUMS = [25.13274, 9.2512712, 0.030597007, 0.0081616643, 0, 0.068477971, 0, 25.132741, 0, 0]
ENC_PIXELS = [(20, 10), (21, 11), (63, 0), (30, 0), (10, 0), (5, 47), (31, 24), (35, 27)]  # (y, x)
ENC_VALUES = [[0.9616906, 0.90342468, 0, 2.4952117e-11, 2.0481945e-12, 0, 5.64e-17, 2.266496e-27],
              [0, 0, 0.90342468, 0, 0, 0, 0, 0],
              [6.1906306e-21, 9.4936393e-22, 0, 0.005086069, 9.8097555e-25, 0, 0, 0],
              [2.6157729e-22, 2.2407596e-25, 0, 2.7028717e-25, 0.0014013593, 0, 0, 0],
              [0, 0, 0, 0, 0, 0, 0, 0],
              [0, 0, 0, 0, 0, 0.010767209, 0, 0],
              [0, 0, 0, 0, 0, 0, 0, 0],
              [3.2632068e-19, 1.6903832e-16, 0, 1.634467e-32, 0, 0, 0.90696061, 0.10498831],
              [0, 0, 0, 0, 0, 0, 0, 0],
              [0, 0, 0, 0, 0, 0, 0, 0]]


def _decode(codec, maps, center, scale):
    return codec.decode(torch.from_numpy(maps), {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})


def test_decode_equals_darkpose_golden():
    maps, center, scale = golden_fixture()
    original = maps.copy()
    preds, maxvals = _decode(DarkCodec((192, 256), (48, 64), 2, blur_kernel=11), maps, center, scale)
    np.testing.assert_allclose(preds.numpy(), np.reshape(DARK_PREDS, (3, 17, 2)), atol=1e-3, rtol=0)
    np.testing.assert_allclose(maxvals.numpy()[..., 0], DARK_MAXVALS, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(maps, original)


def _random_batches(rng, h, w):
    yield "random^8", (rng.random((4, 17, h, w)) ** 8).astype(np.float32)
    yield "uniform", rng.random((4, 17, h, w)).astype(np.float32)
    yield "normal", rng.normal(0, 1, (4, 17, h, w)).astype(np.float32)
    yield "blobs", blob_maps(rng, 4, 17, h, w, 0.05)


@pytest.mark.parametrize("kernel,size", [(11, (64, 48)), (3, (64, 48)), (17, (96, 72))])
def test_decode_equals_loop_reference(kernel, size):
    """Also on noise, where the Taylor step is ill-conditioned: the two
    implementations do the same float32 arithmetic, so they still agree."""
    rng = np.random.default_rng(kernel)
    center, scale = rng.uniform(100, 500, (4, 2)), rng.uniform(0.5, 3, (4, 2))
    codec = DarkCodec((4 * size[1], 4 * size[0]), (size[1], size[0]), 2, blur_kernel=kernel)
    for name, maps in _random_batches(rng, *size):
        preds, maxvals = _decode(codec, maps, center, scale)
        ref_preds, ref_maxvals = get_final_preds_dark_loop(maps, center, scale, kernel)
        np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3, rtol=1e-9, err_msg=name)
        np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals, err_msg=name)


@pytest.mark.parametrize("kernel", [3, 11])
def test_blur_equals_cv2_bit_for_bit(kernel):
    maps = (np.random.default_rng(7).random((2, 17, 64, 48)) ** 4).astype(np.float32)
    np.testing.assert_array_equal(blur_keep_max(torch.from_numpy(maps), kernel).numpy(),
                                  gaussian_blur_loop(maps, kernel))


def test_decode_leaves_input_untouched_and_keeps_device_and_dtype():
    maps, center, scale = golden_fixture()
    tensor = torch.from_numpy(maps.copy())
    preds, maxvals = DarkCodec((192, 256), (48, 64), 2).decode(tensor, {"center": torch.from_numpy(center),
                                                                        "scale": torch.from_numpy(scale)})
    assert torch.equal(tensor, torch.from_numpy(maps))
    assert preds.shape == (3, 17, 2) and maxvals.shape == (3, 17, 1)
    assert preds.dtype == torch.float64 and preds.device == tensor.device


def test_subpixel_gaussian_recovered():
    """A sigma-2 Gaussian at a known sub-pixel centre of a 48x64 map comes back
    within 0.05 px once it is 4 px from the border (the blur's zero padding
    biases peaks closer in; in the interior the error is below 1e-3 px). The
    crop is chosen so that image and heatmap pixels coincide."""
    rng = np.random.default_rng(11)
    n = 256
    mu = np.stack([rng.uniform(4, 43, n), rng.uniform(4, 59, n)], axis=1)
    ys, xs = np.mgrid[0:64, 0:48]
    maps = np.exp(-((xs - mu[:, 0, None, None]) ** 2 + (ys - mu[:, 1, None, None]) ** 2) / 8.0)
    maps = maps.astype(np.float32).reshape(16, 16, 64, 48)
    center = np.tile([23.5, 31.5], (16, 1))
    scale = np.tile([48 / 200, 64 / 200], (16, 1))  # box width - 1 = heatmap width - 1: identity
    preds, _ = _decode(DarkCodec((192, 256), (48, 64), 2), maps, center, scale)
    err = np.abs(preds.numpy().reshape(n, 2) - mu)
    assert err.max() < 0.05
    interior = (mu[:, 0] > 6) & (mu[:, 0] < 41) & (mu[:, 1] > 6) & (mu[:, 1] < 57)
    assert err[interior].max() < 1e-3


def test_encode_equals_darkpose_golden():
    codec = DarkCodec((192, 256), (48, 64), 2)
    heatmap_joints = np.asarray(ENC_JOINTS, np.float32)
    # crop-pixel joints that DARK's geometry maps onto these heatmap joints exactly
    zoom = 47 / 191
    crop = np.zeros((10, 3))
    crop[:, :2] = (heatmap_joints - [23.5, 31.5]) / zoom + [95.5, 127.5]
    np.testing.assert_array_equal(codec.to_heatmap(crop), heatmap_joints)
    vis = np.repeat(np.asarray(ENC_VIS, np.float32)[:, None], 3, axis=1)
    target, weight = codec.encode(crop, vis)
    assert target.dtype == np.float32 and target.shape == (10, 64, 48) and weight.shape == (10, 1)
    np.testing.assert_array_equal(weight[:, 0], ENC_WEIGHTS)
    np.testing.assert_allclose(target.astype(np.float64).sum(axis=(1, 2)), ENC_SUMS, rtol=1e-6)
    got = np.array([[target[j, y, x] for y, x in ENC_PIXELS] for j in range(10)])
    np.testing.assert_allclose(got, ENC_VALUES, rtol=1e-5, atol=1e-37)


@pytest.mark.parametrize("sigma,sizes", [(2, ((192, 256), (48, 64))), (3, ((288, 384), (72, 96))),
                                         (1.5, ((256, 256), (64, 64)))])
def test_encode_equals_loop_reference(sigma, sizes):
    rng = np.random.default_rng(3)
    codec = DarkCodec(*sizes, sigma)
    for _ in range(20):
        joints = np.zeros((17, 3), np.float32)
        joints[:, :2] = rng.uniform(-80, max(sizes[0]) + 80, (17, 2))
        vis = np.repeat((rng.random((17, 1)) > 0.2).astype(np.float32), 3, axis=1)
        target, weight = codec.encode(joints, vis)
        ref_target, ref_weight = generate_target_dark_loop(codec.to_heatmap(joints), vis, sizes[1], sigma)
        np.testing.assert_array_equal(weight, ref_weight)
        np.testing.assert_allclose(target, ref_target, atol=1e-7, rtol=0)


def test_image_to_target_to_image_round_trip():
    """Image joints -> crop_matrix -> encode -> decode -> image joints: the
    unbiased target and the matching geometry give them back to within a few
    thousandths of a heatmap pixel, rotations of the crop aside."""
    rng = np.random.default_rng(5)
    codec = DarkCodec((192, 256), (48, 64), 2)
    n = 8
    center = rng.uniform(150, 450, (n, 2))
    scale = np.repeat(rng.uniform(0.6, 2.5, (n, 1)), 2, axis=1) * [1, 256 / 192]
    joints = center[:, None, :] + rng.uniform(-0.35, 0.35, (n, 17, 2)) * scale[:, None, :] * 200
    targets = []
    for i in range(n):
        crop = affine_transform(joints[i], codec.crop_matrix(center[i], scale[i], 0.0, (192, 256)))
        targets.append(codec.encode(np.c_[crop, np.zeros(17)], np.ones((17, 3), np.float32))[0])
    preds, _ = _decode(codec, np.stack(targets), center, scale)
    heatmap_px = (scale[:, :1] * 200 - 1) / 47
    assert (np.abs(preds.numpy() - joints) / heatmap_px[:, None, :]).max() < 0.01


def test_flip_back_mirrors_coordinates_and_swaps_pairs():
    """Decoding ``flip_back(maps)`` gives each joint mirrored about the box
    centre with left and right swapped, with no shift needed: under
    DarkPose's geometry the heatmap mirror x -> W-1-x is the image mirror."""
    maps, center, scale = golden_fixture()
    maps = maps[[0, 2]]  # the crops whose maps all have a positive maximum
    center, scale = center[[0, 2]], scale[[0, 2]]
    codec = DarkCodec((192, 256), (48, 64), 2)
    preds, maxvals = _decode(codec, maps, center, scale)
    restored = codec.flip_back(torch.from_numpy(maps), COCO_FLIP_PAIRS)
    flipped, flipped_vals = codec.decode(restored, {"center": torch.from_numpy(center),
                                                    "scale": torch.from_numpy(scale)})
    perm = flip_permutation(17, COCO_FLIP_PAIRS)
    flipped, flipped_vals = flipped[:, perm].numpy(), flipped_vals[:, perm].numpy()
    np.testing.assert_allclose(flipped[..., 0], 2 * center[:, :1] - preds.numpy()[..., 0], atol=1e-4)
    np.testing.assert_allclose(flipped[..., 1], preds.numpy()[..., 1], atol=1e-4)
    np.testing.assert_array_equal(flipped_vals, maxvals.numpy())


def test_flip_test_of_a_mirrored_crop_needs_no_shift():
    """The target of the mirrored crop, flipped back, is the target of the crop
    itself. That is why DarkPose does not shift. With TEST.SHIFT_HEATMAP
    the codec applies HRNet's one-pixel shift."""
    codec = DarkCodec((192, 256), (48, 64), 2)
    rng = np.random.default_rng(6)
    joints = np.zeros((17, 3), np.float32)
    joints[:, 0], joints[:, 1] = rng.uniform(20, 170, 17), rng.uniform(20, 230, 17)
    vis = np.ones((17, 3), np.float32)
    direct, _ = codec.encode(joints, vis)
    mirrored, _ = codec.encode(*fliplr_joints(joints, vis, 192, COCO_FLIP_PAIRS))
    restored = codec.flip_back(torch.from_numpy(mirrored)[None], COCO_FLIP_PAIRS)
    np.testing.assert_allclose(restored[0].numpy(), direct, atol=1e-5)

    shifting = DarkCodec((192, 256), (48, 64), 2, shift_heatmap=True)
    out = torch.from_numpy(mirrored)[None]
    assert torch.equal(shifting.flip_back(out, COCO_FLIP_PAIRS), flip_back(out, COCO_FLIP_PAIRS, shift=True))


def test_selected_from_config():
    codec = build_codec(load_config(None, ["TEST.BLUR_KERNEL", "11"]))
    assert isinstance(codec, DarkCodec) and codec.blur_kernel == 11 and codec.shift_heatmap is False
    codec = build_codec(load_config(None, ["TEST.BLUR_KERNEL", "7", "TEST.SHIFT_HEATMAP", "True",
                                           "MODEL.IMAGE_SIZE", "[192, 256]", "MODEL.HEATMAP_SIZE", "[48, 64]"]))
    assert isinstance(codec, DarkCodec) and codec.blur_kernel == 7 and codec.shift_heatmap is True
    assert codec.heatmap_size.tolist() == [48, 64]
    codec = build_codec(load_config(None, ["MODEL.TARGET_TYPE", "dark"]))
    assert isinstance(codec, DarkCodec) and codec.blur_kernel == 11  # DarkPose's default kernel
    assert type(build_codec(load_config(None, []))).__name__ == "GaussianHeatmapCodec"


@pytest.mark.parametrize("kernel", [0, 4, -3, 2.5])
def test_bad_blur_kernel(kernel):
    with pytest.raises(ValueError, match="BLUR_KERNEL"):
        DarkCodec((192, 256), (48, 64), 2, blur_kernel=kernel)


def test_maps_too_small_for_the_stencil_decode_to_the_argmax():
    maps = np.zeros((2, 3, 4, 4), np.float32)
    maps[:, :, 2, 1] = 1.0
    preds, maxvals = _decode(DarkCodec((16, 16), (4, 4), 1, blur_kernel=3), maps,
                             np.tile([1.5, 1.5], (2, 1)), np.tile([4 / 200, 4 / 200], (2, 1)))
    np.testing.assert_allclose(preds.numpy(), np.tile([1.0, 2.0], (2, 3, 1)))
    assert (maxvals == 1).all()


@pytest.mark.parametrize("yaml_name, override, expected", [
    ("w32_256x192_adam_lr1e-3_dark.yaml", [], (10 + 99 / 2, 20 + 149 / 2)),  # DarkPose: x + (w - 1) / 2
    ("w32_256x192_adam_lr1e-3.yaml", [], (10 + 100 / 2, 20 + 150 / 2)),  # HRNet: x + w / 2
    ("w32_256x192_adam_lr1e-3_offset_ofm.yaml", [], (60.0, 95.0)),  # UDP keeps HRNet's
    ("w32_256x192_adam_lr1e-3_dark.yaml", ["DATASET.BOX_CENTER", "hrnet"], (60.0, 95.0)),
    ("w32_256x192_adam_lr1e-3.yaml", ["DATASET.BOX_CENTER", "darkpose"], (59.5, 94.5)),
])
def test_box_centre_follows_the_official_yaml(yaml_name, override, expected):
    """The dataset and the API cut a box [10, 20, 100, 150] around the official
    reader's centre: DarkPose's YAMLs get DarkPose's, the others HRNet's."""
    from posezoo.api import PoseEstimator
    from posezoo.datasets.joints_dataset import box_center_rule
    from posezoo.utils.transforms import box_to_center_scale

    cfg = load_config(os.path.join(EXPERIMENTS, yaml_name), ["MODEL.NAME", "pose_resnet", "MODEL.EXTRA",
                                                             "{NUM_LAYERS: 18, NUM_DECONV_FILTERS: [8, 8, 8]}",
                                                             "MODEL.PRETRAINED", "''"] + override)
    codec = build_codec(cfg)
    rule = box_center_rule(cfg, codec)
    center, _ = box_to_center_scale([10, 20, 100, 150], 192 / 256, center_rule=rule)
    np.testing.assert_allclose(center, expected)
    from posezoo.models import build_model
    estimator = PoseEstimator(cfg, build_model(cfg, is_train=False), device="cpu")
    _, centers, _ = estimator.crop(np.zeros((200, 200, 3), np.uint8), np.array([[10, 20, 100, 150, 1.0]]))
    np.testing.assert_allclose(centers[0], expected)


def test_unknown_box_centre_rule_is_one_clear_line():
    from posezoo.utils.transforms import box_to_center_scale

    with pytest.raises(ValueError, match="DATASET.BOX_CENTER = 'middle'"):
        box_to_center_scale([0, 0, 10, 10], 1.0, center_rule="middle")


@pytest.mark.parametrize("kernel", [3, 11])
def test_windowed_decode_at_corners_edges_and_flat_maps(kernel):
    """The decode blurs only a window around each argmax (codecs/dark.py): a peak
    at each corner and edge of the map, a flat, an all-zero and a negative map
    decode as the whole-map loop reference (cv2 blur of every pixel) does."""
    h, w = 64, 48
    yy, xx = np.mgrid[0:h, 0:w]
    peaks = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, 20), (h - 1, 7), (30, 0), (11, w - 1),
             (1, 1), (h - 2, w - 2), (2, 30), (40, 2)]
    maps = np.stack([np.exp(-((yy - y - 0.3) ** 2 + (xx - x + 0.2) ** 2) / 8.0) for y, x in peaks])
    extra = np.stack([np.full((h, w), 0.5), np.zeros((h, w)), -np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 8.0),
                      np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 8.0) * 1e-12, np.full((h, w), 0.5),
                      np.exp(-((yy - 5) ** 2 + (xx - 40) ** 2) / 2.0)])
    maps = np.concatenate([maps, extra])[None].astype(np.float32)  # (1, 18, h, w)
    center, scale = np.array([[300.0, 200.0]]), np.array([[1.2, 1.6]])
    codec = DarkCodec((4 * w, 4 * h), (w, h), 2, blur_kernel=kernel)
    preds, maxvals = _decode(codec, maps, center, scale)
    ref_preds, ref_maxvals = get_final_preds_dark_loop(maps, center, scale, kernel)
    np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3, rtol=0)
    np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals)


def test_map_windows_equal_zero_padded_slices():
    """The one-index-op window gather equals slicing a zero-padded copy of each
    map, for windows inside, across every edge and corner, and on the first and
    last maps (whose windows would leave the flat buffer)."""
    from posezoo.codecs.dark import map_windows

    rng = np.random.default_rng(4)
    maps = torch.from_numpy(rng.standard_normal((5, 9, 11)).astype(np.float32))
    size, pad = 7, 7
    padded = np.pad(maps.numpy(), ((0, 0), (pad, pad), (pad, pad)))
    index = torch.tensor([0, 0, 4, 4, 2, 2, 1, 3, 0, 4])
    rows = torch.tensor([-6, 5, -3, 6, 1, -1, 3, 8, 2, -6])
    cols = torch.tensor([-6, 8, 9, -4, 2, 10, -2, 0, 4, 10])
    got = map_windows(maps, index, rows, cols, size).numpy()
    for m, (i, r, c) in enumerate(zip(index.tolist(), rows.tolist(), cols.tolist())):
        np.testing.assert_array_equal(got[m], padded[i, r + pad:r + pad + size, c + pad:c + pad + size])
    small = maps[:1, :3, :3].contiguous()  # smaller than the window: every pixel gathered one by one
    got = map_windows(small, torch.tensor([0]), torch.tensor([-3]), torch.tensor([-2]), size).numpy()
    expect = np.pad(small.numpy()[0], pad)[pad - 3:pad - 3 + size, pad - 2:pad - 2 + size]
    np.testing.assert_array_equal(got[0], expect)


def test_crop_matrix_equals_darkpose_bit_for_bit():
    """DarkPose takes the pixel off after ``s * 200`` in float32; taking 1/200 off the
    scale first gave matrices 1e-5 apart and crops one grey level off (issue 10).
    Golden: DarkPose ``utils.transforms.get_affine_transform(c, s, 0, [192, 256])``
    on two detected boxes of the shared COCO samples."""
    center = np.array([587.1727294921875, 142.82130432128906], np.float32)
    scale = np.array([0.8643198013305664, 1.1524263620376587], np.float32)
    official = [[1.1113441595500275, -0.0, -557.0509835681908],
                [-5.4454884403193215e-17, 1.111344159550028, -31.223622416781733]]
    codec = DarkCodec((192, 256), (48, 64), 2)
    np.testing.assert_array_equal(codec.crop_matrix(center, scale, 0.0, (192, 256)), official)
    center = np.array([318.03582763671875, 217.45811462402344], np.float32)
    scale = np.array([0.9315775632858276, 1.2421033382415771], np.float32)
    official = [[1.0306747658016953, -0.0, -232.29150216602343],
                [-1.3404956436010003e-16, 1.0306746809364342, -96.62857290715384]]
    np.testing.assert_array_equal(codec.crop_matrix(center, scale, 0.0, (192, 256)), official)
