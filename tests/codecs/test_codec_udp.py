"""UDP codec (Huang et al., CVPR 2020): geometry, both target types, decode,
flip and the offset loss, against UDP-Pose's own numbers and the per-joint loop
reference.

The GOLDEN_* values below were obtained by running UDP-Pose's functions
(github.com/HuangJunJie2017/UDP-Pose, branch master, commit 096fa07,
deep-high-resolution-net.pytorch/lib: dataset/JointsDataset.py get_warpmatrix,
rotate_points and generate_target; core/inference.py get_final_preds;
core/loss.py JointsMSELoss_offset) on exactly the inputs that the builders in
this file make (numpy 2.4, OpenCV 5.0; ``np.float`` aliased to ``float`` for
their ``post``), rounded to 6 decimals.
"""
import cv2
import numpy as np
import pytest
import torch

from oracles import reference_udp as R
from posezoo.codecs import build_codec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec, gaussian_blur
from posezoo.config import load_config
from posezoo.core.loss import JointsOffsetMSELoss, build_loss
from posezoo.utils.transforms import affine_transform, fliplr_joints, get_udp_warp_matrix, udp_crop_to_image

IMG, HM = (192, 256), (48, 64)
COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
# the crop is the image: UDP maps box width s*200 onto W-1 crop pixels around (W-1)/2
IDENTITY_CENTER = np.array([(IMG[0] - 1) / 2, (IMG[1] - 1) / 2])
IDENTITY_SCALE = np.array([(IMG[0] - 1) / 200, (IMG[1] - 1) / 200])


# --- inputs of the golden run ---------------------------------------------------

WARP_CASES = [((320.5, 240.25), (1.1, 1.4666666), 0.0, (192, 256)),
              ((100.0, 410.0), (0.45, 0.6), 30.0, (192, 256)),
              ((512.3, 77.7), (2.5, 3.2), -62.5, (288, 384))]
WARP_POINTS = [[0.0, 0.0], [320.5, 240.25], [400.0, 100.0], [-20.0, 600.0]]


def golden_joints():
    """Six crop-pixel joints: inside at sub-pixel positions, near and beyond the
    edges, one invisible."""
    joints = np.array([[95.3, 130.7, 0], [3.2, 250.9, 0], [190.6, 1.4, 0], [-3.0, 50.0, 0],
                       [-40.0, 120.0, 0], [60.0, 70.0, 0]], np.float32)
    vis = np.ones((6, 3), np.float32)
    vis[5] = 0
    return joints, vis


def target_summary(target):
    """Per channel: sum, and sums weighted by x and by y."""
    h, w = target.shape[1:]
    x, y = np.arange(w)[None, None, :], np.arange(h)[None, :, None]
    t = target.astype(np.float64)
    return np.stack([t.sum((1, 2)), (t * x).sum((1, 2)), (t * y).sum((1, 2))], axis=1)


def _boxes(rng, n):
    return rng.uniform(100, 500, (n, 2)).astype(np.float32), rng.uniform(0.5, 2.0, (n, 2)).astype(np.float32)


def golden_decode_inputs():
    """name -> (maps (N, C, 64, 48) float32, center, scale); N=3 crops, 4 joints."""
    rng = np.random.default_rng(2020)
    n, k, (w, h) = 3, 4, HM
    gx, gy = np.arange(w)[None, None, None, :], np.arange(h)[None, None, :, None]
    mx, my = rng.uniform(2, w - 3, (n, k, 1, 1)), rng.uniform(2, h - 3, (n, k, 1, 1))
    amp = rng.uniform(0.3, 1.0, (n, k, 1, 1))
    blob = amp * np.exp(-((gx - mx) ** 2 + (gy - my) ** 2) / 8.0)
    out = {"gauss_post": ((blob + 0.03 * rng.standard_normal(blob.shape)).astype(np.float32), *_boxes(rng, n)),
           "gauss_nopost": (rng.random((n, k, h, w)).astype(np.float32), *_boxes(rng, n))}
    cls = amp * np.exp(-((gx - mx) ** 2 + (gy - my) ** 2) / 12.5) + 0.03 * rng.standard_normal(blob.shape)
    ox = (mx - gx) / 4.0 + 0.02 * rng.standard_normal(blob.shape)
    oy = (my - gy) / 4.0 + 0.02 * rng.standard_normal(blob.shape)
    offset = np.stack([cls, ox + 0 * gy, oy + 0 * gx], axis=2).reshape(n, 3 * k, h, w)
    out["offset"] = (offset.astype(np.float32), *_boxes(rng, n))
    out["offset_random"] = (rng.standard_normal((n, 3 * k, h, w)).astype(np.float32), *_boxes(rng, n))
    return out


def offset_tie_inputs():
    """(maps (2, 18, 64, 48) float32, center, scale): per crop, six joints whose
    blurred classification maps provoke the argmax: mirrored twin peaks (an
    exact tie), twins 3e-8 apart (float32 rounding decides), a flat low-score
    map of plateaus, a peak in a corner, a map without a positive maximum, and
    a plain noisy peak. Each pixel's offsets point at its own twin, so the
    chosen peak shows in the result."""
    rng = np.random.default_rng(1007)
    n, k, (w, h) = 2, 6, HM
    gx, gy = np.arange(w)[None, :], np.arange(h)[:, None]

    def blob(x, y, amp, var=12.5):
        return amp * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / var)

    cls = np.zeros((n, k, h, w))
    tx, ty = np.zeros((n, k, h, w)), np.zeros((n, k, h, w))  # where each pixel's offset points
    for i in range(n):
        amp = rng.uniform(0.05, 0.9)
        x, y = rng.uniform(6, 18), rng.uniform(8, 50)
        cls[i, 0] = blob(x, y, amp) + blob(w - 1 - x, y, amp)  # mirrored twins: an exact tie
        tx[i, 0], ty[i, 0] = np.where(gx < w / 2, x, w - 1 - x), y
        x, y = rng.uniform(6, 40), rng.uniform(6, 24)
        cls[i, 1] = blob(x, y, amp) + blob(x, y + 20, amp * (1 + 3e-8))  # twins 3e-8 apart
        tx[i, 1], ty[i, 1] = x, np.where(gy < y + 10, y, y + 20)
        cls[i, 2] = 0.01 * rng.integers(0, 3, (h, w))  # flat, low score: plateaus
        tx[i, 2], ty[i, 2] = gx + rng.uniform(-2, 2, (h, w)), gy + rng.uniform(-2, 2, (h, w))
        cls[i, 3] = blob(0.0, h - 1.0, amp, 6.0) + 0.01 * rng.standard_normal((h, w))  # peak in a corner
        tx[i, 3], ty[i, 3] = 0.3, h - 1.2
        cls[i, 4] = -0.01 - 0.01 * rng.random((h, w))  # no positive maximum
        tx[i, 4], ty[i, 4] = 5.0, 5.0
        x, y = rng.uniform(3, 44), rng.uniform(3, 60)
        cls[i, 5] = blob(x, y, amp) + 0.03 * rng.standard_normal((h, w))
        tx[i, 5], ty[i, 5] = x, y
    ox = (tx - gx) / 4.0 + 0.02 * rng.standard_normal((n, k, h, w))
    oy = (ty - gy) / 4.0 + 0.02 * rng.standard_normal((n, k, h, w))
    maps = np.stack([cls, ox, oy], axis=2).reshape(n, 3 * k, h, w).astype(np.float32)
    center = np.array([[310.0, 220.5], [140.25, 400.0]], np.float32)
    scale = np.array([[0.6, 0.8], [1.7, 2.2666667]], np.float32)
    return maps, center, scale


def mmpose_gaussian_inputs():
    """(maps (2, 5, 64, 48) float32, center, scale) for mmpose's UDP decode:
    a noisy peak, peaks on the top and left border rows, a clean peak, and a
    map without a positive maximum (after a map whose bottom corners are ~0,
    so that mmpose's read of the neighbouring map leaves it at (-1, -1))."""
    rng = np.random.default_rng(1337)
    n, k, (w, h) = 2, 5, HM
    gx, gy = np.arange(w)[None, :], np.arange(h)[:, None]
    maps = np.zeros((n, k, h, w))
    for i in range(n):
        amp = rng.uniform(0.3, 1.0, 4)
        x, y = rng.uniform(3, w - 4), rng.uniform(3, h - 4)
        maps[i, 0] = amp[0] * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / 8) + 0.03 * rng.standard_normal((h, w))
        maps[i, 1] = amp[1] * np.exp(-((gx - rng.uniform(5, 40)) ** 2 + (gy + 0.4) ** 2) / 8)  # on the top row
        maps[i, 2] = amp[2] * np.exp(-((gx + 0.3) ** 2 + (gy - rng.uniform(5, 60)) ** 2) / 8)  # on the left column
        x, y = rng.uniform(10, 38), rng.uniform(8, 30)
        maps[i, 3] = amp[3] * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / 8)
        maps[i, 4] = -0.02 * rng.random((h, w))
    center = np.array([[250.0, 180.5], [400.25, 310.0]], np.float32)
    scale = np.array([[1.1, 1.4666666], [0.45, 0.6]], np.float32)
    return maps.astype(np.float32), center, scale


def mmpose_combined_inputs(radius=3.5):
    """(maps (2, 15, 64, 48) float32, center, scale): CombinedTarget-like
    outputs, [cls, x offset, y offset] per joint; offsets (joint - pixel) /
    radius on a disk of 2 * radius with noise, 0 elsewhere; the last joint has
    no positive maximum (its predecessor's offsets are 0 where mmpose reads)."""
    rng = np.random.default_rng(4242)
    n, k, (w, h) = 2, 5, HM
    gx, gy = np.arange(w)[None, :], np.arange(h)[:, None]
    out = np.zeros((n, k, 3, h, w))
    for i in range(n):
        for j in range(k - 1):
            x, y = rng.uniform(1, 40), rng.uniform(1, 50)
            if j == 1:
                x = 0.2  # the peak on the left border
            amp = rng.uniform(0.2, 0.9)
            out[i, j, 0] = amp * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / 12.5) + 0.02 * rng.standard_normal((h, w))
            disk = ((gx - x) ** 2 + (gy - y) ** 2) <= (2 * radius) ** 2
            out[i, j, 1] = disk * ((x - gx) / radius + 0.03 * rng.standard_normal((h, w)))
            out[i, j, 2] = disk * ((y - gy) / radius + 0.03 * rng.standard_normal((h, w)))
        out[i, k - 1, 0] = -0.01 - 0.01 * rng.random((h, w))
        out[i, k - 1, 1:] = 0.1 * rng.standard_normal((2, h, w))
    center = np.array([[320.5, 240.25], [150.0, 300.0]], np.float32)
    scale = np.array([[1.3, 1.7333333], [0.8, 1.0666667]], np.float32)
    return out.reshape(n, 3 * k, h, w).astype(np.float32), center, scale


def golden_loss_inputs():
    rng = np.random.default_rng(7)
    out = rng.standard_normal((3, 12, 16, 12)).astype(np.float32)
    tgt = np.zeros_like(out)
    cls = (rng.random((3, 4, 16, 12)) > 0.7).astype(np.float32)
    tgt[:, 0::3] = cls
    tgt[:, 1::3] = cls * rng.uniform(-1, 1, cls.shape)
    tgt[:, 2::3] = cls * rng.uniform(-1, 1, cls.shape)
    w = (rng.random((3, 4, 1)) > 0.3).astype(np.float32)
    return torch.from_numpy(out), torch.from_numpy(tgt.astype(np.float32)), torch.from_numpy(w)


# --- golden values (see the module docstring) ----------------------------------

GOLDEN_WARP = [
    # official get_warpmatrix(r, 2c, size-1, s) (crop -> image), then rotate_points(WARP_POINTS, ...)
    ([[1.151832, 0.0, 210.5], [-0.0, 1.150327, 93.583344]],
     [[-182.752273, -81.353708], [95.5, 127.5], [164.520455, 5.578117], [-200.115909, 440.237238]]),
    ([[0.408075, 0.235294, 31.028854], [-0.235602, 0.407541, 380.538483]],
     [[346.76572, -733.274578], [680.880199, 49.389654], [975.813952, -124.244219], [-326.658914, 349.657743]]),
    ([[0.80444, -1.482211, 680.706299], [1.545315, 0.77159, -291.812256]],
     [[-31.842391, 441.968699], [175.426015, 338.22844], [125.089513, 257.273249], [268.343266, 618.381721]]),
]
GOLDEN_ENCODE_WEIGHT = [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
# target_summary of the official generate_target on golden_joints(), gaussian (sigma 2) and offset (KPD 4)
GOLDEN_GAUSSIAN_SUMMARY = [
    [25.069996, 587.764035, 809.433636],
    [14.493344, 24.109075, 887.243215],
    [10.325184, 471.473562, 14.906794],
    [11.345258, 11.69525, 140.096489],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
]
GOLDEN_OFFSET_SUMMARY = [
    [51.0, 1197.0, 1654.0],
    [-0.252477, -58.602257, -6.849944],
    [-1.79501, -40.791707, -108.342092],
    [25.0, 47.0, 1524.0],
    [-6.828534, -24.497644, -417.987427],
    [6.419108, 10.347923, 377.568832],
    [20.0, 907.0, 33.0],
    [7.757861, 343.181497, 10.187971],
    [-6.520588, -298.321174, -19.39647],
    [24.0, 28.0, 295.0],
    [-11.42932, -19.66754, -139.943719],
    [0.367647, 0.970588, -18.220586],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0],
]
# official get_final_preds(config, maps, center, scale): preds (N, K, 2) per crop, then maxvals (N*K)
GOLDEN_DECODE = {
    'gauss_post': (
        [
            [[287.944137, 401.557171], [304.350813, 490.223436], [432.618423, 429.285004], [379.398157, 218.595414]],
            [[123.329577, 287.126205], [254.693339, 230.019369], [167.416815, 160.174141], [168.218177, 320.760496]],
            [[257.951872, 288.652446], [172.335382, 232.913715], [297.023014, 380.53125], [245.342937, 261.851056]],
        ],
        [0.749689, 0.398424, 0.681412, 0.910353, 0.968052, 0.338004, 0.976388, 0.943622, 0.543972, 0.640719,
         0.336126, 0.557995]),
    'gauss_nopost': (
        [
            [[182.561401, 114.203156], [265.236908, 157.399872], [256.96936, 112.603271], [356.179962, 125.402298]],
            [[420.709595, 278.478882], [442.255676, 232.315613], [459.013733, 165.635315], [411.133545, 427.227234]],
            [[319.161621, 427.973145], [453.097778, 435.033936], [372.736084, 406.790649], [420.953125, 482.106079]],
        ],
        [0.999339, 0.999846, 0.999528, 0.999923, 0.999761, 0.999665, 0.999131, 0.999926, 0.999626, 0.9995, 0.998887,
         0.999977]),
    'offset': (
        [
            [[356.149231, 195.199249], [368.025024, 232.811676], [457.198792, 206.959351], [420.288635, 118.266357]],
            [[287.00946, 511.966827], [388.697205, 467.079254], [321.374207, 413.384918], [322.324341, 540.858582]],
            [[443.790222, 229.945953], [377.329773, 211.001343], [474.71283, 261.372253], [434.566528, 220.801971]],
        ],
        [0.380948, 0.195847, 0.305778, 0.436245, 0.464149, 0.156673, 0.465897, 0.514512, 0.284283, 0.286476,
         0.164524, 0.289887]),
    'offset_random': (
        [
            [[273.724609, 350.507263], [559.594666, 536.019775], [278.48761, 453.911346], [189.783371, 462.608063]],
            [[519.13269, 331.526245], [529.543396, 378.664917], [487.363403, 586.403748], [329.963745, 398.807983]],
            [[255.555786, 360.206024], [175.57901, 403.638153], [223.985291, 259.097961], [145.93573, 362.851868]],
        ],
        [0.479064, 0.335872, 0.396386, 0.384921, 0.328687, 0.362212, 0.395106, 0.436484, 0.290193, 0.405707,
         0.348239, 0.341251]),
}
# official get_final_preds (offset, KPD 4) on offset_tie_inputs(); OpenCV 5.1.0
GOLDEN_OFFSET_TIES = (
    [[[329.636322, 229.384277], [282.323792, 233.475281], [250.013794, 222.246765], [248.05188, 302.614319],
      [259.974609, 150.357162], [298.373871, 229.488281]],
     [[52.98674, 384.158508], [189.450134, 280.692749], [5.02652, 622.135559], [-35.222488, 632.892578],
      [-1.273361, 201.791458], [243.921326, 306.627991]]],
    [0.053411, 0.052963, 0.012365, 0.03319, -0.013828, 0.05496, 0.257709, 0.259636, 0.012692, 0.16968, -0.013667,
     0.252872])
# mmpose 0.x (open-mmlab/mmpose 3b81734) keypoints_from_heatmaps(..., use_udp=True, kernel=K,
# post_process='default'; CombinedTarget: valid_radius_factor 0.0546875) on the builders above:
# kernel -> (Gaussian preds, Gaussian maxvals, Combined preds, Combined maxvals)
GOLDEN_MMPOSE = {
    11: ([[[321.90863, 78.696564], [213.740143, 31.505295], [137.659576, 82.221344], [205.629272, 105.685455],
           [135.319153, 29.177261]],
          [[421.554504, 332.114594], [412.264069, 249.047607], [354.292542, 298.704895], [397.888397, 304.553101],
           [353.335114, 248.095245]]],
         [0.895206, 0.418172, 0.916257, 0.940365, -8e-06, 0.763665, 0.959446, 0.327267, 0.646361, -1.2e-05],
         [[[364.817444, 253.484512], [183.023773, 120.565414], [367.983887, 320.283142], [325.13092, 241.902084],
           [184.968079, 61.414032]],
          [[112.869324, 267.465027], [65.438721, 303.384644], [105.870239, 314.023254], [173.835205, 260.643982],
           [66.595749, 189.947098]]],
         [0.11043, 0.241497, 0.221795, 0.087957, -0.014364, 0.211034, 0.250861, 0.12888, 0.202961, -0.014097]),
    13: ([[[321.908722, 78.70224], [213.740265, 31.505295], [137.659561, 82.221283], [205.629242, 105.685394],
           [135.319153, 29.177261]],
          [[421.544708, 332.123444], [412.264099, 249.047607], [354.292542, 298.704895], [397.888336, 304.553131],
           [353.335114, 248.095245]]],
         [0.895206, 0.418172, 0.916257, 0.940365, -8e-06, 0.763665, 0.959446, 0.327267, 0.646361, -1.2e-05],
         [[[364.729736, 253.49614], [181.743622, 120.600021], [367.978119, 320.250977], [325.093384, 241.932663],
           [184.968079, 61.414032]],
          [[112.931274, 267.462708], [64.63797, 303.343567], [105.902634, 314.040039], [173.779663, 260.659119],
           [66.595749, 189.947098]]],
         [0.089333, 0.195965, 0.179166, 0.071402, -0.014503, 0.170825, 0.203113, 0.104292, 0.163944, -0.014258]),
}
GOLDEN_LOSS = [0.3097253739833832, 0.4335141181945801]  # official JointsMSELoss_offset(True): (loss_hm, loss_offset)


# --- geometry -------------------------------------------------------------------

@pytest.mark.parametrize("case", range(len(WARP_CASES)))
def test_warp_matrix_equals_official(case):
    center, scale, rot, size = WARP_CASES[case]
    center, scale = np.asarray(center, np.float32), np.asarray(scale, np.float32)
    matrix, points = GOLDEN_WARP[case]
    back = get_udp_warp_matrix(center, scale, rot, size, inv=True)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, matrix, atol=1e-4)
    # the matrix the dataset warps with maps points as the official rotate_points
    np.testing.assert_allclose(affine_transform(WARP_POINTS, get_udp_warp_matrix(center, scale, rot, size)),
                               points, atol=1e-3)
    np.testing.assert_allclose(R.udp_warp_matrix_loop(rot, 2 * center, np.array(size) - 1.0, scale), back, atol=1e-4)
    np.testing.assert_allclose(R.udp_points_to_crop_loop(WARP_POINTS, rot, center, size, scale), points, atol=1e-3)


@pytest.mark.parametrize("rot", [0.0, 17.0, -40.0, 90.0])
def test_crop_matrix_round_trip_and_unbiased_corners(rot):
    rng = np.random.default_rng(3)
    codec = UDPHeatmapCodec(IMG, HM, 2)
    center, scale = np.array([300.0, 200.0], np.float32), np.array([1.2, 1.6], np.float32)
    fwd = codec.crop_matrix(center, scale, rot, IMG)
    inv = get_udp_warp_matrix(center, scale, rot, IMG, inv=True)
    points = rng.uniform(0, 600, (50, 2))
    np.testing.assert_allclose(affine_transform(affine_transform(points, fwd), inv), points, atol=1e-3)
    # the box centre lands on the crop's centre pixel ((W-1)/2, (H-1)/2) ...
    np.testing.assert_allclose(affine_transform(center, fwd), [95.5, 127.5], atol=1e-4)
    # ... and the box edges on pixels 0 and W-1 / H-1 (not W / H as in the biased crop)
    half_w, half_h = scale * 100.0
    theta = np.deg2rad(rot)
    right = center + half_w * np.array([np.cos(theta), -np.sin(theta)])  # the box's right edge, rotated
    bottom = center + half_h * np.array([np.sin(theta), np.cos(theta)])
    np.testing.assert_allclose(affine_transform(right, fwd), [191, 127.5], atol=1e-3)
    np.testing.assert_allclose(affine_transform(bottom, fwd), [95.5, 255], atol=1e-3)


def test_udp_crop_to_image_is_the_exact_inverse():
    """Heatmap q -> input q * (in-1)/(hm-1) -> image through the inverse warp."""
    rng = np.random.default_rng(4)
    coords = rng.uniform(0, 47, (5, 17, 2))
    center, scale = rng.uniform(50, 400, (5, 2)), rng.uniform(0.3, 2.0, (5, 2))
    got = udp_crop_to_image(torch.from_numpy(coords), torch.from_numpy(center), torch.from_numpy(scale), HM)
    stride = (np.array(IMG) - 1.0) / (np.array(HM) - 1.0)
    for i in range(5):
        inv = get_udp_warp_matrix(center[i], scale[i], 0, IMG, inv=True)
        np.testing.assert_allclose(got[i].numpy(), affine_transform(coords[i] * stride, inv), atol=1e-3)
        np.testing.assert_allclose(got[i].numpy(), R.udp_transform_preds_loop(coords[i], center[i], scale[i], HM),
                                   atol=1e-9)


def test_crop_equals_official_inverse_map_warp():
    """The dataset warps with the image -> crop matrix; the official code with the
    crop -> image one and WARP_INVERSE_MAP. Same crops up to OpenCV's fixed-point
    rounding ties (at most one grey level on a few pixels)."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for rot in (0.0, 25.0):
        center, scale = np.array([320.0, 250.0], np.float32), np.array([1.3, 1.7333], np.float32)
        ours = cv2.warpAffine(image, get_udp_warp_matrix(center, scale, rot, IMG), IMG, flags=cv2.INTER_LINEAR)
        official = cv2.warpAffine(image, R.udp_warp_matrix_loop(rot, 2 * center, np.array(IMG) - 1.0, scale), IMG,
                                  flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
        diff = np.abs(ours.astype(int) - official)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


# --- encode ----------------------------------------------------------------------

def test_encode_golden_official():
    joints, vis = golden_joints()
    target, weight = UDPHeatmapCodec(IMG, HM, 2).encode(joints, vis)
    np.testing.assert_array_equal(weight.ravel(), GOLDEN_ENCODE_WEIGHT)
    np.testing.assert_allclose(target_summary(target), GOLDEN_GAUSSIAN_SUMMARY, atol=1e-4)
    target, weight = UDPOffsetCodec(IMG, HM, 4.0).encode(joints, vis)
    # the offset target has no bounds check: the joint far outside keeps weight 1
    np.testing.assert_array_equal(weight.ravel(), [1, 1, 1, 1, 1, 0])
    assert target.shape == (18, 64, 48)
    np.testing.assert_allclose(target_summary(target), GOLDEN_OFFSET_SUMMARY, atol=1e-4)


@pytest.mark.parametrize("sigma", [2, 3, 1.5])
def test_gaussian_encode_equals_loop(sigma):
    rng = np.random.default_rng(0)
    codec = UDPHeatmapCodec(IMG, HM, sigma)
    for _ in range(30):
        joints = np.zeros((17, 3), np.float32)
        joints[:, :2] = rng.uniform(-60, 280, (17, 2))
        vis = np.repeat((rng.random((17, 1)) > 0.2).astype(np.float32), 3, axis=1)
        target, weight = codec.encode(joints, vis)
        ref_target, ref_weight = R.generate_udp_gaussian_loop(joints, vis, IMG, HM, sigma)
        np.testing.assert_array_equal(weight, ref_weight)
        np.testing.assert_allclose(target, ref_target, atol=1e-7)
        assert target.dtype == np.float32 and target.shape == (17, 64, 48)


@pytest.mark.parametrize("kpd", [4.0, 2.5])
def test_offset_encode_equals_loop(kpd):
    rng = np.random.default_rng(1)
    codec = UDPOffsetCodec(IMG, HM, kpd)
    for _ in range(5):
        joints = np.zeros((17, 3), np.float32)
        joints[:, :2] = rng.uniform(-30, 260, (17, 2))
        vis = np.repeat((rng.random((17, 1)) > 0.2).astype(np.float32), 3, axis=1)
        target, weight = codec.encode(joints, vis)
        ref_target, ref_weight = R.generate_udp_offset_loop(joints, vis, IMG, HM, kpd)
        np.testing.assert_array_equal(weight, ref_weight)
        np.testing.assert_array_equal(target[0::3], ref_target[0::3])
        np.testing.assert_allclose(target, ref_target, atol=1e-7)
        # offsets stay inside the unit disk, in the interleaved [cls, x, y] order
        assert (target[1::3] ** 2 + target[2::3] ** 2).max() <= 1 + 1e-6


# --- decode ----------------------------------------------------------------------

def _identity_boxes(n):
    """The decode meta of n crops that map the image onto itself."""
    return {"center": torch.from_numpy(np.tile(IDENTITY_CENTER, (n, 1))),
            "scale": torch.from_numpy(np.tile(IDENTITY_SCALE, (n, 1)))}


def _sub_pixel_joints(rng, n, margin):
    joints = np.zeros((n, 17, 3), np.float32)
    joints[..., 0] = rng.uniform(margin, IMG[0] - 1 - margin, (n, 17))
    joints[..., 1] = rng.uniform(margin, IMG[1] - 1 - margin, (n, 17))
    return joints


def test_gaussian_at_known_sub_pixel_location_recovered():
    """A UDP Gaussian (sigma 2, 48x64 heatmap, 192x256 input) drawn at a sub-pixel
    joint decodes (with the Taylor step) to within 0.05 input pixels."""
    codec = UDPHeatmapCodec(IMG, HM, 2, post_process=True)
    rng = np.random.default_rng(6)
    joints = _sub_pixel_joints(rng, 8, margin=16)
    targets = torch.from_numpy(np.stack([codec.encode(j, np.ones((17, 3), np.float32))[0] for j in joints]))
    preds, maxvals = codec.decode(targets, _identity_boxes(8))
    assert np.abs(preds.numpy() - joints[..., :2]).max() < 0.05
    assert float(maxvals.min()) > 0.9


def test_encode_decode_round_trip_both_types():
    """Sub-pixel joints, decoded from their own targets. Gaussian + Taylor: within
    0.002 input px (measured 5e-4) for joints at least 4 heatmap px (17 input px)
    from the border; offset: within 0.15 input px (measured 0.13) at least 6
    heatmap px (25 input px) from it, the error of blurring offsets that are cut
    off at the disk's rim. Nearer the border both official decoders are biased
    by their border rules (edge repeat / reflection), by up to about 1.5 strides."""
    rng = np.random.default_rng(7)
    vis = np.ones((17, 3), np.float32)
    gauss = UDPHeatmapCodec(IMG, HM, 2, post_process=True)
    offset = UDPOffsetCodec(IMG, HM, 4.0)
    for codec, margin, bound in ((gauss, 17, 0.002), (offset, 25, 0.15)):
        joints = _sub_pixel_joints(rng, 16, margin=margin)
        targets = torch.from_numpy(np.stack([codec.encode(j, vis)[0] for j in joints]))
        preds, _ = codec.decode(targets, _identity_boxes(16))
        err = np.abs(preds.numpy() - joints[..., :2])
        assert err.max() < bound, (type(codec).__name__, err.max())
    # without the Taylor step: the nearest heatmap pixel, half a stride at most, anywhere
    joints = _sub_pixel_joints(rng, 16, margin=0)
    preds, _ = UDPHeatmapCodec(IMG, HM, 2, post_process=False).decode(
        torch.from_numpy(np.stack([gauss.encode(j, vis)[0] for j in joints])), _identity_boxes(16))
    stride = (IMG[0] - 1) / (HM[0] - 1)
    assert np.abs(preds.numpy() - joints[..., :2]).max() <= 0.5 * stride + 1e-3


@pytest.mark.parametrize("name", ["gauss_post", "gauss_nopost", "offset", "offset_random"])
def test_decode_golden_official(name):
    maps, center, scale = golden_decode_inputs()[name]
    if name.startswith("offset"):
        codec = UDPOffsetCodec(IMG, HM, 4.0)
    else:
        codec = UDPHeatmapCodec(IMG, HM, 2, post_process=name == "gauss_post")
    original = torch.from_numpy(maps.copy())
    preds, maxvals = codec.decode(original, {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
    golden_preds, golden_maxvals = GOLDEN_DECODE[name]
    np.testing.assert_allclose(preds.numpy(), golden_preds, atol=1e-3)
    np.testing.assert_allclose(maxvals.numpy().ravel(), golden_maxvals, atol=1e-5)
    assert torch.equal(original, torch.from_numpy(maps))  # input untouched


def test_offset_decode_near_ties_equal_official():
    """Issue 10: the official argmax is np.argmax of OpenCV's float32 blur, so
    where peaks tie or nearly tie OpenCV's rounding picks the pixel; these maps
    are decided by OpenCV itself (the former exact-first rule missed the first
    two joints of crop 0 by 39 and 51 px)."""
    maps, center, scale = offset_tie_inputs()
    meta = {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)}
    preds, maxvals = UDPOffsetCodec(IMG, HM, 4.0).decode(torch.from_numpy(maps), meta)
    np.testing.assert_allclose(preds.numpy(), GOLDEN_OFFSET_TIES[0], atol=1e-3)
    np.testing.assert_allclose(maxvals.numpy().ravel(), GOLDEN_OFFSET_TIES[1], atol=1e-6)
    ref_preds, ref_maxvals = R.get_final_preds_offset_loop(maps.copy(), center, scale, 4.0)
    np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3)


@pytest.mark.parametrize("kernel", [11, 13])
def test_mmpose_flavour_equals_mmpose(kernel):
    """TEST.UDP_FLAVOUR mmpose: post_dark_udp (no rescale, float32-eps ridge on
    the Hessian) and the CombinedTarget decode (classification blur 2k+1,
    offsets k, radius 0.0546875 * 64 = LOSS.KPD 3.5), peaks on the border, and
    a joint without a positive maximum at heatmap (-1, -1)."""
    gauss_preds, gauss_max, comb_preds, comb_max = GOLDEN_MMPOSE[kernel]
    overrides = ["MODEL.IMAGE_SIZE", "[192, 256]", "MODEL.HEATMAP_SIZE", "[48, 64]", "TEST.POST_PROCESS", "True",
                 "TEST.UDP_FLAVOUR", "mmpose", "TEST.BLUR_KERNEL", str(kernel), "LOSS.KPD", "3.5"]
    for target_type, inputs, preds_ref, max_ref in (("udp", mmpose_gaussian_inputs, gauss_preds, gauss_max),
                                                     ("offset", mmpose_combined_inputs, comb_preds, comb_max)):
        codec = build_codec(load_config(None, overrides + ["MODEL.TARGET_TYPE", target_type]))
        assert (codec.flavour, codec.kernel) == ("mmpose", kernel)
        maps, center, scale = inputs()
        meta = {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)}
        preds, maxvals = codec.decode(torch.from_numpy(maps), meta)
        np.testing.assert_allclose(preds.numpy(), preds_ref, atol=1e-3)
        np.testing.assert_allclose(maxvals.numpy().ravel(), max_ref, atol=1e-6)
        # the joint without a positive maximum sits at heatmap (-1, -1)
        minus_one = udp_crop_to_image(torch.full((2, 1, 2), -1.0, dtype=torch.float64), meta["center"],
                                      meta["scale"], HM)
        np.testing.assert_allclose(preds[:, 4:].numpy(), minus_one.numpy(), atol=1e-6)
    # master decodes the same maps differently (rescale, fixed kernels, (0, 0))
    maps, center, scale = mmpose_gaussian_inputs()
    master, _ = UDPHeatmapCodec(IMG, HM, 2, post_process=True).decode(
        torch.from_numpy(maps), {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
    assert np.abs(master.numpy() - np.asarray(gauss_preds)).max() > 0.01


def test_flavour_settings_checked():
    assert build_codec(load_config(None, ["MODEL.TARGET_TYPE", "udp"])).flavour == "master"
    codec = build_codec(load_config(None, ["MODEL.TARGET_TYPE", "offset", "TEST.UDP_FLAVOUR", "mmpose"]))
    assert codec.kernel == 11
    for overrides, match in ((["TEST.UDP_FLAVOUR", "mmdet"], "UDP_FLAVOUR"),
                             (["TEST.BLUR_KERNEL", "11"], "master"),
                             (["TEST.UDP_FLAVOUR", "mmpose", "TEST.BLUR_KERNEL", "12"], "odd")):
        with pytest.raises(ValueError, match=match):
            build_codec(load_config(None, ["MODEL.TARGET_TYPE", "udp"] + overrides))


def _random_maps(rng, n, k, realistic):
    if not realistic:
        return rng.standard_normal((n, k, 64, 48)).astype(np.float32)
    gx, gy = np.arange(48)[None, None, None, :], np.arange(64)[None, None, :, None]
    mx, my = rng.uniform(0, 47, (n, k, 1, 1)), rng.uniform(0, 63, (n, k, 1, 1))
    blob = rng.uniform(0.2, 1, (n, k, 1, 1)) * np.exp(-((gx - mx) ** 2 + (gy - my) ** 2) / 8.0)
    return (blob + 0.05 * rng.standard_normal(blob.shape)).astype(np.float32)


@pytest.mark.parametrize("realistic", [True, False])
def test_decode_equals_loop_reference_batched(realistic):
    """N > 1, many joints: equal to the per-joint loop (OpenCV blurs). On pure
    noise the Taylor step is ill-conditioned (steps of tens of pixels), where
    float32 rounding of the blur alone moves it; compared there relative to the
    step."""
    rng = np.random.default_rng(8)
    n = 6
    center, scale = _boxes(rng, n)
    gauss = _random_maps(rng, n, 17, realistic)
    codec = UDPHeatmapCodec(IMG, HM, 2, post_process=True)
    original = torch.from_numpy(gauss.copy())
    preds, maxvals = codec.decode(original, {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
    assert torch.equal(original, torch.from_numpy(gauss))
    ref_preds, ref_maxvals = R.get_final_preds_udp_loop(gauss.copy(), center, scale, True)
    np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals)
    if realistic:
        np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3)
    else:
        step = np.abs(ref_preds - R.get_final_preds_udp_loop(gauss.copy(), center, scale, False)[0]).max(2)
        err = np.abs(preds.numpy() - ref_preds).max(2)
        assert (err <= 1e-3 + 1e-3 * step).all()
    offset = np.concatenate([_random_maps(rng, n, 17, realistic)[:, :, None],
                             0.3 * rng.standard_normal((n, 17, 2, 64, 48)).astype(np.float32)], axis=2)
    offset = offset.reshape(n, 51, 64, 48)
    preds, maxvals = UDPOffsetCodec(IMG, HM, 4.0).decode(torch.from_numpy(offset), {"center": torch.from_numpy(center),
                                                                                    "scale": torch.from_numpy(scale)})
    ref_preds, ref_maxvals = R.get_final_preds_offset_loop(offset.copy(), center, scale, 4.0)
    np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3)
    np.testing.assert_allclose(maxvals.numpy(), ref_maxvals, atol=1e-6)


def test_decode_batch_equals_single_and_keeps_input():
    rng = np.random.default_rng(9)
    maps = torch.from_numpy(_random_maps(rng, 5, 17, True))
    center, scale = (torch.from_numpy(a) for a in _boxes(rng, 5))
    for codec, x in ((UDPHeatmapCodec(IMG, HM, 2, post_process=True), maps),
                     (UDPOffsetCodec(IMG, HM, 4.0), maps.repeat_interleave(3, dim=1))):
        before = x.clone()
        preds, maxvals = codec.decode(x, {"center": center, "scale": scale})
        assert torch.equal(x, before)
        assert preds.shape == (5, 17, 2) and maxvals.shape == (5, 17, 1) and preds.dtype == torch.float64
        for i in range(5):
            p, m = codec.decode(x[i:i + 1], {"center": center[i:i + 1], "scale": scale[i:i + 1]})
            torch.testing.assert_close(p[0], preds[i])
            torch.testing.assert_close(m[0], maxvals[i])


def test_gaussian_blur_equals_opencv_any_size():
    rng = np.random.default_rng(10)
    for h, w in ((64, 48), (6, 5), (3, 4), (1, 5)):
        x = rng.standard_normal((h, w))
        for k in (7, 15):
            np.testing.assert_allclose(gaussian_blur(torch.from_numpy(x)[None, None], k)[0, 0].numpy(),
                                       cv2.GaussianBlur(x, (k, k), 0), atol=1e-12)


def test_degenerate_maps_give_finite_coordinates():
    """A constant map makes the official Taylor step divide 0 by 0 (NaN); here the
    step is skipped. Half-precision outputs and empty batches decode too."""
    codec = UDPHeatmapCodec(IMG, HM, 2, post_process=True)
    preds, _ = codec.decode(torch.zeros(2, 17, 64, 48), _identity_boxes(2))
    assert torch.isfinite(preds).all()
    preds, _ = UDPOffsetCodec(IMG, HM).decode(torch.zeros(2, 51, 64, 48, dtype=torch.float16), _identity_boxes(2))
    assert torch.isfinite(preds).all()
    for empty_codec, channels in ((codec, 17), (UDPOffsetCodec(IMG, HM), 51)):  # an empty batch
        preds, maxvals = empty_codec.decode(torch.zeros(0, channels, 64, 48), _identity_boxes(0))
        assert preds.shape == (0, 17, 2) and maxvals.shape == (0, 17, 1)


# --- flip ------------------------------------------------------------------------

def test_flip_back_equals_official_numpy():
    rng = np.random.default_rng(11)
    out = rng.standard_normal((2, 51, 8, 6)).astype(np.float32)
    got = UDPOffsetCodec(IMG, HM).flip_back(torch.from_numpy(out), COCO_FLIP_PAIRS)
    np.testing.assert_array_equal(got.numpy(), R.flip_back_offset_loop(out, COCO_FLIP_PAIRS))
    gauss = out[:, :17]
    ref = gauss[:, :, :, ::-1].copy()
    for a, b in COCO_FLIP_PAIRS:
        ref[:, [a, b]] = ref[:, [b, a]]
    # no shift, whatever TEST.SHIFT_HEATMAP says: UDP's flip is unbiased
    np.testing.assert_array_equal(UDPHeatmapCodec(IMG, HM, 2).flip_back(torch.from_numpy(gauss), COCO_FLIP_PAIRS),
                                  ref)


@pytest.mark.parametrize("target_type", ["udp", "offset"])
def test_flip_consistency(target_type):
    """The mirrored crop's targets decode to mirrored coordinates with the pairs
    swapped (x -> W-1-x in image pixels, centre mirrored the same way), and
    flip_back turns them into the unflipped joints, with no shift."""
    codec = build_codec(load_config(None, ["MODEL.TARGET_TYPE", target_type, "MODEL.IMAGE_SIZE", "[192, 256]",
                                           "MODEL.HEATMAP_SIZE", "[48, 64]", "TEST.POST_PROCESS", "True",
                                           "TEST.SHIFT_HEATMAP", "True"]))
    rng = np.random.default_rng(12)
    joints = _sub_pixel_joints(rng, 1, margin=25)[0]  # inside: see the round trip
    vis = np.ones((17, 3), np.float32)
    flipped, _ = fliplr_joints(joints.copy(), vis.copy(), IMG[0], COCO_FLIP_PAIRS)
    target = torch.from_numpy(codec.encode(joints, vis)[0])[None]
    target_flipped = torch.from_numpy(codec.encode(flipped, vis)[0])[None]
    meta = _identity_boxes(1)
    direct, _ = codec.decode(target, meta)
    mirrored, _ = codec.decode(target_flipped, meta)
    expected = flipped[:, :2]
    np.testing.assert_allclose(mirrored[0].numpy(), expected, atol=0.15)
    restored, _ = codec.decode(codec.flip_back(target_flipped, COCO_FLIP_PAIRS), meta)
    np.testing.assert_allclose(restored[0].numpy(), direct[0].numpy(), atol=1e-3)
    averaged, _ = codec.decode((target + codec.flip_back(target_flipped, COCO_FLIP_PAIRS)) * 0.5, meta)
    np.testing.assert_allclose(averaged[0].numpy(), direct[0].numpy(), atol=1e-3)


# --- selection and loss -------------------------------------------------------------

def test_selection_by_target_type():
    udp = build_codec(load_config(None, ["MODEL.TARGET_TYPE", "udp", "TEST.POST_PROCESS", "True"]))
    assert isinstance(udp, UDPHeatmapCodec) and udp.post_process
    cfg = load_config(None, ["MODEL.TARGET_TYPE", "offset", "LOSS.KPD", "3.5"])
    offset = build_codec(cfg)
    assert isinstance(offset, UDPOffsetCodec) and offset.kpd == 3.5
    assert isinstance(build_loss(cfg), JointsOffsetMSELoss)
    assert not isinstance(build_loss(load_config(None, ["MODEL.TARGET_TYPE", "udp"])), JointsOffsetMSELoss)
    with pytest.raises(ValueError, match="USE_OHKM"):
        build_loss(load_config(None, ["MODEL.TARGET_TYPE", "offset", "LOSS.USE_OHKM", "True"]))


def official_offset_loss_loop(output, target, weight):
    """JointsMSELoss_offset written out joint by joint: (classification, offsets)."""
    mse = torch.nn.MSELoss(reduction="mean")
    n, c = output.shape[:2]
    k = c // 3
    pred, gt = output.reshape(n, c, -1), target.reshape(n, c, -1)
    loss_hm = loss_offset = 0
    for j in range(k):
        w = weight[:, j]
        loss_hm = loss_hm + 0.5 * mse(pred[:, 3 * j] * w, gt[:, 3 * j] * w)
        for axis in (1, 2):
            cls = gt[:, 3 * j]
            loss_offset = loss_offset + 0.5 * mse(cls * pred[:, 3 * j + axis], cls * gt[:, 3 * j + axis])
    return loss_hm / k, loss_offset / k


def test_offset_loss_equals_official():
    out, tgt, w = golden_loss_inputs()
    loss = JointsOffsetMSELoss(True)
    hm, offset = loss.components(out, tgt, w)
    ref_hm, ref_offset = official_offset_loss_loop(out, tgt, w)
    torch.testing.assert_close(hm, ref_hm, rtol=1e-6, atol=0)
    torch.testing.assert_close(offset, ref_offset, rtol=1e-6, atol=0)
    np.testing.assert_allclose([hm.item(), offset.item()], GOLDEN_LOSS, rtol=1e-5)
    torch.testing.assert_close(loss(out, tgt, w), hm + offset)
    # gradients flow into all three channels of each joint
    out = out.clone().requires_grad_(True)
    loss(out, tgt, w).backward()
    assert out.grad[:, 1::3].abs().sum() > 0 and out.grad[:, 0::3].abs().sum() > 0


@pytest.mark.parametrize("target_type", ["udp", "offset"])
def test_dataset_crops_and_decodes_with_udp_geometry(synthetic_cfg, target_type):
    """Through the dataset: its crop uses the codec's UDP matrix, and decoding a
    sample's own target with its center/scale gives back the annotated image
    joints (within the round-trip bounds above, scaled by the crop's zoom)."""
    from posezoo.config import update_config
    from posezoo.datasets import build_dataset

    cfg = update_config(synthetic_cfg, ["MODEL.TARGET_TYPE", target_type, "MODEL.IMAGE_SIZE", "[192, 256]",
                                        "MODEL.HEATMAP_SIZE", "[48, 64]", "TEST.POST_PROCESS", "True"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    margin, bound = (17, 0.002) if target_type == "udp" else (25, 0.15)
    checked = 0
    for i in range(min(len(dataset), 6)):
        _, target, weight, meta = dataset[i]
        rec = dataset.db[i]
        center, scale = torch.from_numpy(meta["center"])[None], torch.from_numpy(meta["scale"])[None]
        preds, _ = codec.decode(target[None], {"center": center, "scale": scale})
        crop_joints = meta["joints"][:, :2]
        np.testing.assert_allclose(crop_joints[rec["joints_vis"][:, 0] > 0],
                                   affine_transform(rec["joints"][:, :2], codec.crop_matrix(
                                       meta["center"], meta["scale"], 0.0, IMG))[rec["joints_vis"][:, 0] > 0],
                                   atol=1e-3)
        inside = ((weight[:, 0].numpy() > 0) & (crop_joints >= margin).all(1)
                  & (crop_joints[:, 0] <= IMG[0] - 1 - margin) & (crop_joints[:, 1] <= IMG[1] - 1 - margin))
        zoom = float(meta["scale"][0]) * 200 / (IMG[0] - 1)
        err = np.abs(preds[0].numpy() - rec["joints"][:, :2])[inside]
        assert err.max(initial=0) <= bound * zoom + 1e-3
        checked += int(inside.sum())
    assert checked > 10
