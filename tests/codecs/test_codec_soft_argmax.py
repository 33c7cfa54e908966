"""LPN's soft-argmax codec (codecs/soft_argmax.py): equal to LPN's numbers and
to the loop reference, differentiable, and flip-consistent.

The golden values below come from running LPN's own code from a checkout of
github.com/zhang943/lpn-pytorch (commit f397525; torch 2.13 CPU, numpy 2.4):
``lib/core/inference.py::get_final_preds_using_softargmax`` (beta 160,
``MODEL.HEATMAP_SIZE [48, 64]``) on the same ``golden_fixture()`` as the DARK
test, with ``TEST.POST_PROCESS`` True and False. LPN's ``validate`` then
subtracts ``TEST.BIAS``, which is 0 here.
"""
import numpy as np
import pytest
import torch

from posezoo.codecs import build_codec
from oracles.reference_soft_argmax import get_final_preds_soft_argmax_loop
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec, soft_argmax, value_at_rounded
from posezoo.config import load_config
from posezoo.utils.transforms import flip_back, flip_permutation
from test_codec_dark import COCO_FLIP_PAIRS, blob_maps, golden_fixture

LPN_PREDS = {True: [
    [308.0077, 87.8989, 321.8021, 212.8752, 415.5521, 233.7396, 376.4896, 116.8812, 272.3229, 392.6640, 420.7604,
     132.1771, 325.6411, 73.5852, 321.8503, 392.8601, 373.1208, 401.7082, 300.9736, 298.8485, 410.4469, 335.3955,
     366.0717, 311.8644, 357.2036, 401.6639, 430.1000, 401.7083, 388.2083, 73.5833, 207.8647, 372.2698, 407.7395,
     139.9895],
    [99.1771, 400.9271, 99.2091, 401.5088, 184.8542, 395.4568, 116.4948, 394.5458, 86.4034, 515.7708, 163.8913,
     370.8490, 100.4652, 515.7709, 134.8102, 462.3629, 30.3036, 473.4439, 96.3342, 427.2504, 167.8169, 445.3838,
     184.8540, 501.1911, 13.5000, 311.6042, 184.8542, 406.4539, 170.2710, 286.0833, 85.4973, 338.1736, 84.9921,
     461.4651],
    [236.9792, 292.4759, 434.8915, 334.1415, 325.7308, 250.4910, 316.2456, 37.2665, 318.5332, -53.2477, 221.3542,
     448.7289, 315.1405, -82.2550, 141.6838, 84.1382, 87.0010, 443.9776, 106.7721, -125.6710, 138.0243, 68.7373,
     148.4339, -20.0032, 398.4375, 453.9375, 174.4784, 6.0239, 416.5899, -142.1901, 297.0187, 325.9915, 101.5625,
     292.4792]], False: [
    [306.7056, 86.5968, 320.5000, 214.1773, 414.2500, 235.0417, 377.7917, 115.5791, 273.6250, 391.3619, 419.4583,
     130.8750, 325.6411, 73.5852, 320.5482, 391.5580, 373.1208, 401.7082, 299.6715, 297.5464, 409.1448, 334.0934,
     367.3738, 313.1665, 357.2036, 401.6639, 430.1000, 401.7083, 388.2083, 73.5833, 209.1667, 373.5719, 409.0416,
     141.2916],
    [99.1771, 400.9271, 100.1206, 402.4203, 184.8542, 395.4568, 115.5833, 395.4572, 86.4034, 515.7708, 162.9798,
     369.9376, 100.4652, 515.7709, 133.8987, 463.2744, 31.2150, 472.5325, 97.2456, 428.1619, 166.9054, 446.2953,
     184.8540, 501.1911, 13.5000, 311.6042, 184.8542, 406.4539, 170.2710, 286.0833, 84.5859, 337.2621, 84.0806,
     460.5537],
    [239.5833, 295.0800, 437.4957, 336.7457, 323.1266, 253.0951, 313.6414, 34.6624, 321.1374, -50.6435, 218.7501,
     451.3331, 312.5363, -79.6508, 144.2880, 86.7424, 89.6052, 441.3735, 104.1679, -123.0668, 135.4201, 66.1331,
     145.8297, -17.3990, 395.8333, 451.3333, 177.0826, 3.4197, 416.5899, -142.1901, 294.4146, 328.5957, 104.1667,
     295.0833]]}
# the raw heatmap at the soft-argmax rounded to the nearest pixel
LPN_MAXVALS = [
    [0.68013924, 0.91545486, 0.84790301, 0.46466926, 0.77221161, 0.50973046, 0.62205434, 0.96309638, 0.29081285,
     0.66121459, 0.31735584, 0.95785224, 0.6557079, 0.41916519, 0.57295793, 0.40895194, 0.58795422],
    [0, -0.154989, 0.52020258, 0.77310932, 0.79513824, 0.63005263, 0.67842084, 0.25871831, 0.89546698, 0.384707,
     0.42497995, 0.90623242, 0.38785481, 0.82171088, 0.83365834, 0.66753411, 0.41960546],
    [1.0836233, 0.87795037, 0.99306792, 0.87799335, 0.96695483, 0.93347275, 0.86899346, 1.0005229, 0.24684407,
     0.90345788, 0.72412074, 0.74382848, 0.8929283, 0.91067195, 0.90239739, -0.02218806, 1.0165224]]


def _codec(**kwargs):
    return SoftArgmaxCodec((192, 256), (48, 64), 2, **kwargs)


def _decode(codec, maps, center, scale):
    return codec.decode(torch.from_numpy(maps), {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})


@pytest.mark.parametrize("post_process", [True, False])
def test_decode_equals_lpn_golden(post_process):
    maps, center, scale = golden_fixture()
    original = maps.copy()
    preds, maxvals = _decode(_codec(post_process=post_process), maps, center, scale)
    np.testing.assert_allclose(preds.numpy(), np.reshape(LPN_PREDS[post_process], (3, 17, 2)), atol=1e-3, rtol=0)
    np.testing.assert_allclose(maxvals.numpy()[..., 0], LPN_MAXVALS, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(maps, original)


@pytest.mark.parametrize("post_process,bias,size", [(True, 0.0, (64, 48)), (False, 0.0, (64, 48)),
                                                    (True, 0.5, (96, 72))])
def test_decode_equals_loop_reference(post_process, bias, size):
    rng = np.random.default_rng(int(post_process) + 2 * size[0])
    center, scale = rng.uniform(100, 500, (4, 2)), rng.uniform(0.5, 3, (4, 2))
    codec = SoftArgmaxCodec((4 * size[1], 4 * size[0]), (size[1], size[0]), 2, post_process=post_process, bias=bias)
    batches = {"random^8": (rng.random((4, 17) + size) ** 8).astype(np.float32),
               "uniform": rng.random((4, 17) + size).astype(np.float32),
               "normal": rng.normal(0, 1, (4, 17) + size).astype(np.float32),
               "blobs": blob_maps(rng, 4, 17, size[0], size[1], 0.05)}
    for name, maps in batches.items():
        tensor = torch.from_numpy(maps.copy())
        preds, maxvals = codec.decode(tensor, {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
        ref_preds, ref_maxvals = get_final_preds_soft_argmax_loop(maps, center, scale, post_process=post_process,
                                                                  bias=bias)
        np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3, rtol=0, err_msg=name)
        np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals, err_msg=name)
        assert torch.equal(tensor, torch.from_numpy(maps))


def test_one_hot_map_gives_its_location():
    maps = torch.zeros(3, 4, 64, 48)
    spots = torch.tensor([[[5, 7], [0, 0], [47, 63], [20, 30]]] * 3)  # (x, y)
    for i in range(3):
        for k in range(4):
            maps[i, k, spots[i, k, 1], spots[i, k, 0]] = 1.0 + i
    assert torch.equal(soft_argmax(maps, 160.0), spots.float())
    center = torch.tensor([[24.0, 32.0]] * 3, dtype=torch.float64)  # identity crop: image = heatmap pixels
    scale = torch.tensor([[48 / 200, 64 / 200]] * 3, dtype=torch.float64)
    preds, maxvals = _codec().decode(maps, {"center": center, "scale": scale})
    torch.testing.assert_close(preds, spots.double(), atol=1e-9, rtol=0)
    assert torch.equal(maxvals[..., 0], torch.tensor([[1.0], [2.0], [3.0]]).expand(3, 4))


def test_gradients_flow():
    maps = torch.from_numpy(blob_maps(np.random.default_rng(9), 2, 3, 16, 12, 0.05)).double().requires_grad_()
    target = torch.full((2, 3, 2), 6.0, dtype=torch.float64)
    loss = (soft_argmax(maps, 20.0) - target).abs().sum()
    loss.backward()
    assert maps.grad is not None and torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0
    small = maps.detach()[:1, :2, 4:10, 3:8].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda m: soft_argmax(m, 5.0), (small,))


def test_score_is_taken_at_the_rounded_location_ties_to_even():
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 0, 4, 10] = maps[0, 0, 4, 11] = 1.0  # two equal peaks: the soft-argmax is exactly x = 10.5
    assert soft_argmax(maps, 160.0)[0, 0].tolist() == [10.5, 4.0]
    maps[0, 1] = torch.arange(16.0)  # value = x
    coords = torch.tensor([[[10.5, 4.0], [11.5, 2.0]]])
    assert value_at_rounded(maps, coords)[0, :, 0].tolist() == [1.0, 12.0]  # map 0 at x 10; map 1 at x 12
    assert value_at_rounded(maps, torch.tensor([[[-3.0, 40.0], [99.0, -1.0]]]))[0, :, 0].tolist() == [0.0, 15.0]


def test_bias_is_subtracted_from_both_image_coordinates():
    maps, center, scale = golden_fixture()
    plain, _ = _decode(_codec(), maps, center, scale)
    biased, _ = _decode(_codec(bias=0.75), maps, center, scale)
    np.testing.assert_allclose((plain - biased).numpy(), 0.75, atol=1e-12)


@pytest.mark.parametrize("post_process", [True, False])
def test_flip_back_mirrors_coordinates_and_swaps_pairs(post_process):
    """With HRNet's geometry a heatmap mirror x -> W-1-x is an image mirror
    about c - z/2, where z is the image size of one heatmap pixel. The
    one-pixel shift (TEST.SHIFT_HEATMAP, set in LPN's YAMLs) makes it a
    mirror about the box centre c."""
    maps, center, scale = golden_fixture()
    maps, center, scale = maps[[0, 2]], center[[0, 2]], scale[[0, 2]]
    perm = flip_permutation(17, COCO_FLIP_PAIRS)
    zoom = scale[:, :1] * 200 / 48
    for shift, offset in ((False, zoom), (True, 0.0)):
        codec = _codec(post_process=post_process, shift_heatmap=shift)
        preds, _ = _decode(codec, maps, center, scale)
        restored = codec.flip_back(torch.from_numpy(maps), COCO_FLIP_PAIRS)
        flipped, _ = codec.decode(restored, {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
        flipped = flipped[:, perm].numpy()
        # peaks near the border lose mass to the shift's dropped column; compare the others
        inside = np.abs((preds.numpy()[..., 0] - center[:, :1]) / zoom) < 20
        expected_x = 2 * center[:, :1] - preds.numpy()[..., 0] - offset
        np.testing.assert_allclose(flipped[..., 0][inside], expected_x[inside], atol=1e-3)
        np.testing.assert_allclose(flipped[..., 1][inside], preds.numpy()[..., 1][inside], atol=1e-3)
    out = torch.from_numpy(maps)
    assert torch.equal(_codec(shift_heatmap=True).flip_back(out, COCO_FLIP_PAIRS),
                       flip_back(out, COCO_FLIP_PAIRS, shift=True))


def test_encode_and_crop_are_the_gaussian_codecs():
    gaussian, lpn = GaussianHeatmapCodec((192, 256), (48, 64), 2), _codec()
    rng = np.random.default_rng(10)
    joints = np.c_[rng.uniform(-20, 210, (17, 2)), np.zeros(17)].astype(np.float32)
    vis = np.ones((17, 3), np.float32)
    for a, b in zip(lpn.encode(joints, vis), gaussian.encode(joints, vis)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lpn.crop_matrix(np.array([200.0, 150.0]), np.array([1.2, 1.6]), 10.0, (192, 256)),
                                  gaussian.crop_matrix(np.array([200.0, 150.0]), np.array([1.2, 1.6]), 10.0,
                                                       (192, 256)))


def test_selected_from_config():
    cfg = load_config(None, ["TEST.SOFT_ARGMAX", "True", "TEST.SHIFT_HEATMAP", "True", "TEST.POST_PROCESS", "True",
                             "TEST.BIAS", "0.25", "TEST.BLUR_KERNEL", "11"])  # SOFT_ARGMAX wins over BLUR_KERNEL
    codec = build_codec(cfg)
    assert isinstance(codec, SoftArgmaxCodec)
    assert codec.shift_heatmap is True and codec.post_process is True and codec.bias == 0.25 and codec.beta == 160
    codec = build_codec(load_config(None, ["MODEL.TARGET_TYPE", "soft_argmax"]))
    assert isinstance(codec, SoftArgmaxCodec) and codec.shift_heatmap is False and codec.bias == 0.0
