"""The stacked-hourglass releases' own encode and decode (``codecs/hourglass.py``,
``TEST.HEATMAP_DECODE bearpaw | princeton``) against their official functions.

The GOLDEN_* values were obtained by running, under /tmp and never committed,
bearpaw/pytorch-pose @edc7aec ``pose/utils/evaluation.py:final_preds`` (and
``transforms.flip_back``, ``imutils.draw_labelmap``) and princeton-vl/pytorch_stacked_hourglass
@ceedc14 ``test.py:inference``'s flip average and clip + ``post_process`` (``utils/group.py``
``HeatmapParser``; ``data/MPII/dp.py:GenerateHeatmap``) on the maps and boxes made below,
centres given as posezoo's + 1 (what the releases hold); the results are shown 0-based
(release - 1), as posezoo scores them. Side by side, the same run found no difference in
94,656 coordinates per release (all 2958 valid.h5 boxes, Gaussian blobs at random sub-pixel
positions, noise) and in 960 on 20 seeds of these maps; targets were bit-identical on 416
points (edges, off-map, negative, fractional).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, SHARED_DATA, needs_shared
from posezoo.codecs import build_codec, codec_name
from posezoo.codecs.hourglass import HourglassReleaseCodec
from posezoo.config import load_config
from posezoo.core.inference import forward_test

MPII_FLIP_PAIRS = [[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]]
# valid.h5 boxes of 005808361, 052475643, 051423444, 004645041 (centre - 1: posezoo's 0-based centres)
BOX_CENTERS = np.array([[966.0, 410.77731840074193], [316.0, 246.42753109921546],
                        [1030.0, 443.08849541023795], [809.0, 451.7331509344512]]) - 1
BOX_SCALES = np.array([5.898109866728492, 2.2022942582679548, 3.9240412841864956, 4.061095911204265])


def release_maps(seed: int, n: int = 4, k: int = 16, h: int = 64, w: int = 64) -> np.ndarray:
    """Noise with one peak per map at corners, borders, next to borders and anywhere, equal
    neighbours (ties of the quarter step), plus flat zero / negative / positive maps, an
    all-negative map, two equal maxima above 1 and a plateau."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(-0.05, 0.3, (n, k, h, w)).astype(np.float32)
    for i in range(n):
        for j in range(k):
            y, x = rng.integers(0, h), rng.integers(0, w)
            if j < 6:
                y, x = [(0, 0), (h - 1, w - 1), (0, w - 1), (h // 2, 1), (1, 1), (h - 2, w - 2)][j]
            m[i, j, y, x] = rng.uniform(0.5, 1.3)
            if j % 3 == 0 and 0 < x < w - 1:
                m[i, j, y, x + 1] = m[i, j, y, x - 1]
            if j % 5 == 0 and 0 < y < h - 1:
                m[i, j, y + 1, x] = m[i, j, y - 1, x]
    m[0, 6], m[0, 7], m[2, 6] = 0.0, -0.1, 0.5
    m[1, 6] = rng.uniform(-1, -0.1, (h, w))
    m[1, 7, 10, 10] = m[1, 7, 40, 50] = 2.0
    m[1, 8, 20, 20:24] = 0.9
    return m


def _meta() -> dict[str, torch.Tensor]:
    return {"center": torch.from_numpy(BOX_CENTERS), "scale": torch.from_numpy(np.stack([BOX_SCALES] * 2, 1))}


def _codec(release: str) -> HourglassReleaseCodec:
    return HourglassReleaseCodec([256, 256], [64, 64], 1, release)


class _Fixed(nn.Module):
    """A 'model' whose output for the 2N flip-test inputs is given."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out

# final_preds(release_maps(0)) - 1
GOLDEN_BEARPAW = [
    [[385, -169], [1546, 991], [1546, -169], [403, 415], [408, -155], [1523, 972], [366, -188], [366, -188],
     [1016, 74], [809, 701], [1477, 180], [500, 977], [569, -54], [1459, 756], [841, 221], [1362, -3]],
    [[99, 29], [532, 463], [532, 29], [106, 248], [104, 38], [524, 456], [92, 22], [166, 96],
     [238, 165], [340, 286], [173, 387], [235, 148], [463, 210], [259, 316], [493, 323], [319, 353]],
    [[643, 56], [1416, 829], [1416, 56], [655, 452], [659, 66], [1407, 817], [643, 56], [1088, 378],
     [1358, 691], [1391, 157], [953, 314], [1302, 501], [741, 366], [643, 228], [1106, 820], [803, 522]],
    [[409, 51], [1208, 851], [1208, 51], [421, 454], [418, 67], [1192, 838], [1119, 321], [564, 613],
     [409, 749], [536, 442], [837, 293], [513, 512], [1094, 277], [609, 182], [571, 302], [853, 749]],
]
# final_preds(maps(0) + flip_back(maps(1))) - 1 (bearpaw sums the flip maps)
GOLDEN_BEARPAW_FLIP = [
    [[385, -169], [1532, -155], [1523, 424], [408, 415], [385, 991], [1546, -169], [366, -188], [366, -188],
     [1016, 74], [813, 701], [1468, 175], [500, 977], [1412, 673], [1459, 756], [841, 221], [629, 811]],
    [[107, 458], [524, 38], [524, 248], [104, 248], [99, 463], [532, 29], [92, 22], [445, 306],
     [393, 165], [99, 98], [242, 385], [235, 148], [407, 179], [259, 316], [186, 433], [321, 354]],
    [[643, 56], [1416, 829], [1416, 56], [643, 56], [659, 66], [1400, 814], [643, 56], [1057, 740],
     [1008, 237], [971, 495], [947, 311], [1302, 501], [1400, 623], [643, 228], [1302, 115], [824, 507]],
    [[409, 51], [1208, 851], [1192, 454], [418, 454], [425, 67], [1208, 51], [761, 575], [742, 689],
     [545, 607], [1065, 524], [837, 296], [1142, 632], [1097, 277], [1091, 315], [425, 302], [970, 740]],
]
# test.py: min((maps(0) + mirrored maps(1)) / 2, 1), post_process - 1
GOLDEN_PRINCETON_FLIP = [
    [[379, -175], [1531, -156], [1522, 423], [407, 414], [379, 994], [1550, -175], [375, -180], [375, -180],
     [1015, 73], [812, 700], [1467, 174], [499, 976], [1411, 672], [1458, 755], [840, 220], [628, 810]],
    [[106, 457], [523, 37], [523, 247], [103, 247], [96, 463], [533, 26], [94, 25], [165, 95],
     [392, 164], [96, 95], [241, 384], [234, 147], [406, 178], [258, 315], [185, 432], [320, 353]],
    [[639, 52], [1418, 831], [1418, 52], [639, 52], [658, 65], [1399, 813], [639, 52], [1056, 739],
     [1007, 236], [970, 494], [946, 310], [1301, 500], [1399, 622], [639, 230], [1301, 114], [823, 506]],
    [[405, 47], [1210, 853], [1191, 453], [417, 453], [424, 66], [1210, 47], [760, 574], [741, 688],
     [544, 606], [1064, 523], [836, 295], [1141, 631], [1096, 276], [1090, 314], [424, 301], [969, 739]],
]

# heatmap positions (x, y) the encode tests draw at (joints = 4 x these on the 256 crop)
ENCODE_POINTS = np.array([[31.0, 31.0], [12.7, 40.2], [0.0, 0.0], [0.5, 10.0], [-0.5, 10.0], [10.0, -0.5],
                          [63.9, 63.9], [64.0, 10.0], [10.0, 64.0], [-3.2, 5.0], [-4.5, 5.0], [66.9, 3.0],
                          [67.1, 3.0], [3.0, 66.9], [-0.99, -0.99], [2.0, 61.5]])

# official draw_labelmap at trunc(point) (bearpaw: [weight, x0, x1, y0, y1, sum]) and GenerateHeatmap
# (princeton: [x0, x1, y0, y1, sum]): the drawn support and the map's sum; zeros: nothing drawn
GOLDEN_ENCODE_BEARPAW = [
    [1, 28, 34, 28, 34, 6.279785],
    [1, 9, 15, 37, 43, 6.279785],
    [1, 0, 3, 0, 3, 3.072921],
    [1, 0, 3, 7, 13, 4.392867],
    [1, 0, 3, 7, 13, 4.392867],
    [1, 7, 13, 0, 3, 4.392867],
    [1, 60, 63, 60, 63, 3.072921],
    [1, 61, 63, 7, 13, 1.886917],
    [1, 7, 13, 61, 63, 1.886917],
    [1, 0, 0, 2, 8, 0.027839],
    [1, 0, 0, 0, 0, 0.0],
    [1, 63, 63, 0, 6, 0.027839],
    [0, 0, 0, 0, 0, 0.0],
    [1, 0, 6, 63, 63, 0.027839],
    [1, 0, 3, 0, 3, 3.072921],
    [1, 0, 5, 58, 63, 6.224231],
]
GOLDEN_ENCODE_PRINCETON = [
    [27, 35, 27, 35, 6.283148],
    [8, 16, 36, 44, 6.283148],
    [0, 0, 0, 0, 0.0],
    [0, 4, 6, 14, 4.394884],
    [0, 0, 0, 0, 0.0],
    [6, 14, 0, 4, 4.394884],
    [59, 63, 59, 63, 3.074097],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 0, 0, 0, 0.0],
    [0, 6, 57, 63, 6.225905],
]


def valid_h5_blob_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every 10th valid.h5 box (posezoo's 0-based centre, scale) and 4 noisy Gaussian blobs
    per box at random sub-pixel positions, some off the map."""
    import h5py

    with h5py.File(os.path.join(SHARED_DATA, "mpii_hg_eval", "valid.h5"), "r") as f:
        centers, scales = f["center"][::10] - 1, f["scale"][::10]
    rng = np.random.default_rng(7)
    mu = rng.uniform(-2, 66, (len(centers), 4, 2))
    yy, xx = np.mgrid[0:64, 0:64]
    maps = np.exp(-((xx - mu[..., 0, None, None]) ** 2 + (yy - mu[..., 1, None, None]) ** 2) / 2)
    maps = (maps + rng.normal(0, 0.01, maps.shape)).astype(np.float32)
    return maps, centers, scales


def checksum(preds: np.ndarray) -> tuple[int, int]:
    """Two integers that change when any predicted coordinate does."""
    flat = np.asarray(preds, dtype=np.int64).ravel()
    return int(flat.sum()), int((flat * (np.arange(flat.size) % 9973 + 1)).sum())


GOLDEN_H5_CHECKSUMS = {"bearpaw": (1317883, 1613940773), "princeton": (1315604, 1611271416)}


def test_bearpaw_decode_equals_final_preds():
    preds, scores = _codec("bearpaw").decode(torch.from_numpy(release_maps(0)), _meta())
    assert preds.dtype == torch.float64 and preds.shape == (4, 16, 2)
    assert preds.tolist() == GOLDEN_BEARPAW
    assert torch.equal(scores[..., 0], torch.from_numpy(release_maps(0)).flatten(2).max(2).values)


def test_bearpaw_flip_test_equals_its_summed_flip_maps():
    """bearpaw's flip test sums the two maps (example/main.py:285 ``score_map += flip_output``): its
    coordinates and its scores, the maxima of the sum."""
    both = torch.from_numpy(np.concatenate([release_maps(0), release_maps(1)]))
    codec = _codec("bearpaw")
    merged = forward_test(_Fixed(both), torch.zeros(4, 3, 4, 4), codec, MPII_FLIP_PAIRS, flip=True)
    summed = both[:4] + codec.flip_back(both[4:], MPII_FLIP_PAIRS)
    assert torch.equal(merged, summed)
    preds, scores = codec.decode(merged, _meta())
    assert preds.tolist() == GOLDEN_BEARPAW_FLIP
    assert torch.equal(scores[..., 0], summed.flatten(2).max(2).values)


def test_princeton_flip_test_equals_test_py():
    """posezoo's flip merge (no shift) + the princeton decode (clip at 1, NMS, ±0.25, inverse) =
    test.py's inference on the same two outputs."""
    both = torch.from_numpy(np.concatenate([release_maps(0), release_maps(1)]))
    codec = _codec("princeton")
    merged = forward_test(_Fixed(both), torch.zeros(4, 3, 4, 4), codec, MPII_FLIP_PAIRS, flip=True)
    preds, scores = codec.decode(merged, _meta())
    assert preds.tolist() == GOLDEN_PRINCETON_FLIP
    assert float(scores.max()) == 1.0  # clipped, as test.py's np.minimum(det, 1)


def _step_map(values: dict[tuple[int, int], float], size: int = 64) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    for (y, x), v in values.items():
        m[0, 0, y, x] = v
    return m


def test_ties_step_zero_in_bearpaw_and_back_in_princeton():
    """A peak with equal neighbours: bearpaw's sign() gives no step, princeton's ``>`` else-branch
    steps -0.25 on both axes (then both add 0.5). (Values also given by the official functions.)"""
    meta = {"center": torch.tensor([[127.0, 127.0]], dtype=torch.float64), "scale": torch.tensor([[1.28, 1.28]], dtype=torch.float64)}  # crop = image
    maps = _step_map({(20, 30): 1.0, (20, 29): 0.5, (20, 31): 0.5, (19, 30): 0.5, (21, 30): 0.5})
    # bearpaw: x = trunc(c + 1 + (30 + 0.5 - 32) * 4) with c = 127 -> 122; princeton: (30 - 0.25 + 0.5) * 4 = 121 -> 121 - 1
    assert _codec("bearpaw").decode(maps, meta)[0].tolist() == [[[122.0, 82.0]]]
    assert _codec("princeton").decode(maps, meta)[0].tolist() == [[[120.0, 80.0]]]


def test_border_peaks_step_only_in_princeton():
    """At column 1 bearpaw steps (all neighbours inside), at column 0 it does not; princeton
    clamps the left neighbour at column 0 to the peak itself, which the right one does not
    exceed: -0.25. (Values also given by the official functions.)"""
    meta = {"center": torch.tensor([[127.0, 127.0]], dtype=torch.float64), "scale": torch.tensor([[1.28, 1.28]], dtype=torch.float64)}
    at_0 = _step_map({(10, 0): 1.0, (10, 1): 0.6, (9, 0): 0.2, (11, 0): 0.3})
    at_1 = _step_map({(10, 1): 1.0, (10, 2): 0.6, (9, 1): 0.2, (11, 1): 0.3})
    bp, pr = _codec("bearpaw"), _codec("princeton")
    assert bp.decode(at_0, meta)[0].tolist() == [[[2.0, 42.0]]]  # (0.5, 10.5) * 4
    assert bp.decode(at_1, meta)[0].tolist() == [[[7.0, 43.0]]]  # (1.75, 10.75) * 4
    assert pr.decode(at_0, meta)[0].tolist() == [[[0.0, 42.0]]]  # (0.25, 10.75) * 4 - 1
    assert pr.decode(at_1, meta)[0].tolist() == [[[6.0, 42.0]]]  # (1.75, 10.75) * 4 - 1


def test_maps_without_a_positive_maximum():
    """bearpaw: coordinates (0, 0) -> -0.5 after its +0.5 and -1; princeton: the raw first
    maximum of the NMS'd map (a zero beside a negative local maximum), no step, no +0.5."""
    meta = {"center": torch.tensor([[127.0, 127.0]], dtype=torch.float64), "scale": torch.tensor([[1.28, 1.28]], dtype=torch.float64)}
    maps = torch.full((1, 1, 64, 64), -0.5)
    maps[0, 0, 5, 7] = -0.1
    # bearpaw: q = -0.5 on both axes, trunc(128 + (-0.5 - 32) * 4) = -2
    assert _codec("bearpaw").decode(maps, meta)[0].tolist() == [[[-2.0, -2.0]]]
    # princeton: NMS zeroes the 8 neighbours of the -0.1 peak; the first of those zeros is (x 6, y 4):
    # (6, 4) * 4 - 1, score 0
    preds, scores = _codec("princeton").decode(maps, meta)
    assert preds.tolist() == [[[23.0, 15.0]]] and scores.item() == 0.0


@pytest.mark.parametrize("release,golden", [("bearpaw", GOLDEN_ENCODE_BEARPAW), ("princeton", GOLDEN_ENCODE_PRINCETON)])
def test_encode_draws_at_the_truncated_position_as_the_release(release, golden):
    target, weight = _codec(release).encode(ENCODE_POINTS * 4, np.ones((len(ENCODE_POINTS), 1), np.float32))
    assert target.dtype == np.float32 and target.shape == (16, 64, 64)
    for i, m in enumerate(target):
        nz = np.argwhere(m > 0)
        support = [0, 0, 0, 0] if len(nz) == 0 else [nz[:, 1].min(), nz[:, 1].max(), nz[:, 0].min(), nz[:, 0].max()]
        row = golden[i] if release == "princeton" else golden[i][1:]
        assert support == row[:4] and m.astype(np.float64).sum() == pytest.approx(row[4], abs=1e-6), i
        if release == "bearpaw":
            assert weight[i, 0] == golden[i][0]
        else:
            assert weight[i, 0] == (row[4] > 0)  # princeton has no weight: 0 where it draws nothing


def test_encode_leaves_unlabelled_joints_empty():
    vis = np.ones((len(ENCODE_POINTS), 1), np.float32)
    vis[0] = 0
    for release in ("bearpaw", "princeton"):
        target, weight = _codec(release).encode(ENCODE_POINTS * 4, vis)
        assert not target[0].any() and weight[0, 0] == 0


@needs_shared
@pytest.mark.parametrize("release", ["bearpaw", "princeton"])
def test_decode_on_valid_h5_boxes_equals_the_release(release):
    maps, centers, scales = valid_h5_blob_maps()
    meta = {"center": torch.from_numpy(centers), "scale": torch.from_numpy(np.stack([scales] * 2, 1))}
    preds, _ = _codec(release).decode(torch.from_numpy(maps), meta)
    assert checksum(preds.numpy()) == GOLDEN_H5_CHECKSUMS[release]


def test_heatmap_decode_key_chooses_the_codec():
    base = ["MODEL.NUM_JOINTS", "16"]
    assert codec_name(load_config(None, base)) == "gaussian"
    for release in ("bearpaw", "princeton"):
        codec = build_codec(load_config(None, base + ["TEST.HEATMAP_DECODE", release]))
        assert isinstance(codec, HourglassReleaseCodec) and codec.release == release
    with pytest.raises(ValueError, match="TEST.HEATMAP_DECODE = 'matlab': expected msra"):
        build_codec(load_config(None, base + ["TEST.HEATMAP_DECODE", "matlab"]))
    with pytest.raises(ValueError, match="neither TEST.SOFT_ARGMAX nor TEST.BLUR_KERNEL"):
        codec_name(load_config(None, base + ["TEST.HEATMAP_DECODE", "bearpaw", "TEST.BLUR_KERNEL", "11"]))


@pytest.mark.parametrize("yaml,release", [("bearpaw_hg_s2_b1_256x256", "bearpaw"), ("bearpaw_hg_s8_b1_256x256", "bearpaw"),
                                          ("princeton_hg2_256x256", "princeton"), ("princeton_hg8_256x256", "princeton")])
def test_release_yamls_select_their_release(yaml, release):
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", yaml + ".yaml"), [])
    codec = build_codec(cfg)
    assert isinstance(codec, HourglassReleaseCodec) and codec.release == release
