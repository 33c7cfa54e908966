"""Gaussian codec, geometry and flip: equal to the official per-joint code, and
round trips within their error bounds."""
import numpy as np
import pytest
import torch

from oracles.reference import generate_target_loop, get_final_preds_loop
from posezoo.codecs.gaussian import GaussianHeatmapCodec, get_max_preds
from posezoo.utils.transforms import (affine_transform, box_to_center_scale, crop_to_image, flip_back,
                                      fliplr_joints, get_affine_transform)

COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


@pytest.mark.parametrize("sigma", [2, 3, 1.5])
def test_encode_equals_official_loop(sigma):
    rng = np.random.default_rng(0)
    codec = GaussianHeatmapCodec((192, 256), (48, 64), sigma)
    for _ in range(40):
        joints = np.zeros((17, 3), np.float32)
        joints[:, :2] = rng.uniform(-60, 280, (17, 2))  # some far outside the crop
        vis = np.repeat((rng.random((17, 1)) > 0.2).astype(np.float32), 3, axis=1)
        target, weight = codec.encode(joints, vis)
        ref_target, ref_weight = generate_target_loop(joints, vis, (192, 256), (48, 64), sigma)
        np.testing.assert_array_equal(weight, ref_weight)
        np.testing.assert_allclose(target, ref_target, atol=1e-7)
        assert target.dtype == np.float32 and target.shape == (17, 64, 48)


def test_decode_equals_official_get_final_preds():
    rng = np.random.default_rng(1)
    heatmaps = (rng.random((16, 17, 64, 48)) ** 8).astype(np.float32)
    heatmaps[0, 0] = 0.0  # no positive maximum -> (0, 0) as officially
    heatmaps[1, :, 10:12, 20] = 1.0  # ties -> first maximum
    center, scale = rng.uniform(100, 500, (16, 2)), rng.uniform(0.5, 3, (16, 2))
    codec = GaussianHeatmapCodec((192, 256), (48, 64), 2, post_process=True)
    original = torch.from_numpy(heatmaps.copy())
    preds, maxvals = codec.decode(original, {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
    ref_preds, ref_maxvals = get_final_preds_loop(heatmaps, center, scale)
    np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3)
    np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals)
    assert torch.equal(original, torch.from_numpy(heatmaps))  # input untouched


def test_encode_decode_round_trip_sub_pixel():
    """A joint anywhere inside the crop comes back within half a heatmap pixel
    (rounding of the Gaussian centre) plus the quarter-pixel step."""
    rng = np.random.default_rng(2)
    image_size, heatmap_size = (192, 256), (48, 64)
    codec = GaussianHeatmapCodec(image_size, heatmap_size, 2, post_process=True)
    n = 64
    joints = np.zeros((n, 17, 3), np.float32)
    joints[..., 0] = rng.uniform(12, 180, (n, 17))
    joints[..., 1] = rng.uniform(12, 244, (n, 17))
    vis = np.ones((17, 3), np.float32)
    targets = np.stack([codec.encode(j, vis)[0] for j in joints])
    # the crop is the image: center at the crop centre, scale = crop width / 200
    center = np.tile([96.0, 128.0], (n, 1))
    scale = np.tile([192 / 200.0, 256 / 200.0], (n, 1))
    preds, maxvals = codec.decode(torch.from_numpy(targets), {"center": torch.from_numpy(center),
                                                              "scale": torch.from_numpy(scale)})
    stride = 4.0
    # decode maps heatmap pixel q to q * stride (no half-pixel shift): the official bias
    err = np.abs(preds.numpy() - joints[..., :2])
    assert err.max() <= (0.5 + 0.25) * stride + 1e-4
    assert float(maxvals.min()) == pytest.approx(1.0)


def test_get_max_preds_batched_equals_argmax():
    hm = torch.zeros(2, 3, 8, 6)
    hm[0, 1, 5, 2] = 0.7
    hm[1, 2, 0, 5] = 0.3
    coords, maxvals = get_max_preds(hm)
    assert coords[0, 1].tolist() == [2, 5] and coords[1, 2].tolist() == [5, 0]
    assert coords[0, 0].tolist() == [0, 0] and maxvals[0, 1, 0] == pytest.approx(0.7)


def test_box_to_center_scale_official_rule():
    center, scale = box_to_center_scale([10, 20, 100, 100], aspect_ratio=192 / 256)
    np.testing.assert_allclose(center, [60, 70])
    # w < aspect*h? 100 > 75 -> h = w / aspect = 133.33; then /200 and x1.25
    np.testing.assert_allclose(scale, [100 / 200 * 1.25, 100 / 0.75 / 200 * 1.25], rtol=1e-6)


@pytest.mark.parametrize("rot", [0.0, 17.0, -40.0])
def test_affine_and_inverse(rot):
    rng = np.random.default_rng(3)
    center, scale = np.array([300.0, 200.0]), np.array([1.2, 1.6])
    fwd = get_affine_transform(center, scale, rot, (192, 256))
    inv = get_affine_transform(center, scale, rot, (192, 256), inv=True)
    points = rng.uniform(0, 600, (50, 2))
    np.testing.assert_allclose(affine_transform(affine_transform(points, fwd), inv), points, atol=1e-3)
    # the box centre lands on the crop centre, the box width spans the crop width
    np.testing.assert_allclose(affine_transform(center, fwd), [96, 128], atol=1e-4)
    if rot == 0:
        np.testing.assert_allclose(affine_transform(center + [120, 0], fwd), [96 + 96, 128], atol=1e-4)


def test_crop_to_image_equals_inverse_affine():
    rng = np.random.default_rng(4)
    coords = rng.uniform(0, 48, (5, 17, 2))
    center, scale = rng.uniform(50, 400, (5, 2)), rng.uniform(0.3, 2.0, (5, 2))
    got = crop_to_image(torch.from_numpy(coords), torch.from_numpy(center), torch.from_numpy(scale), (48, 64))
    for i in range(5):
        inv = get_affine_transform(center[i], scale[i], 0, (48, 64), inv=True)
        np.testing.assert_allclose(got[i].numpy(), affine_transform(coords[i], inv), atol=1e-3)


def test_flip_back_and_shift_equal_official_numpy():
    rng = np.random.default_rng(5)
    out = rng.random((2, 17, 8, 6)).astype(np.float32)
    ref = out[:, :, :, ::-1].copy()
    for a, b in COCO_FLIP_PAIRS:
        ref[:, [a, b]] = ref[:, [b, a]]
    got = flip_back(torch.from_numpy(out), COCO_FLIP_PAIRS)
    np.testing.assert_array_equal(got.numpy(), ref)
    shifted = ref.copy()
    shifted[:, :, :, 1:] = ref[:, :, :, :-1]
    np.testing.assert_array_equal(flip_back(torch.from_numpy(out), COCO_FLIP_PAIRS, shift=True).numpy(), shifted)


def test_flipped_input_round_trip_through_codec():
    """Heatmaps of a mirrored crop, flipped back by the codec, decode to the
    original joints (with the shift, to within the quarter-pixel step)."""
    codec = GaussianHeatmapCodec((192, 256), (48, 64), 2, post_process=False, shift_heatmap=True)
    rng = np.random.default_rng(6)
    joints = np.zeros((17, 3), np.float32)
    joints[:, 0], joints[:, 1] = rng.uniform(20, 170, 17), rng.uniform(20, 230, 17)
    vis = np.ones((17, 3), np.float32)
    flipped_joints, flipped_vis = fliplr_joints(joints, vis, 192, COCO_FLIP_PAIRS)
    target_flipped, _ = codec.encode(flipped_joints, flipped_vis)
    restored = codec.flip_back(torch.from_numpy(target_flipped)[None], COCO_FLIP_PAIRS)
    coords, _ = get_max_preds(restored)
    direct, _ = get_max_preds(torch.from_numpy(codec.encode(joints, vis)[0])[None])
    assert (coords - direct).abs().max() <= 1.0


def test_fliplr_joints_official():
    joints = np.array([[10, 5, 0], [20, 6, 0], [30, 7, 0]], np.float32)
    vis = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 0]], np.float32)
    j, v = fliplr_joints(joints, vis, 100, [[1, 2]])
    np.testing.assert_array_equal(j[:, :2], [[89, 5], [69, 7], [0, 0]])
    np.testing.assert_array_equal(v[:, 0], [1, 1, 0])
