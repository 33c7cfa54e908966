"""bearpaw's float32 arithmetic (``codecs/hourglass.py`` ``release_transform``, ``bearpaw_crop``,
``crop_points``; ``datasets/mpii.py`` ``person_box``): its centres are float32 tensors and its training
scale and rotation float32 torch scalars, so ``get_transform``, ``crop`` and the box move of
``pose/datasets/mpii.py`` round in float32 there.

Golden values (``hourglass_float32_golden.json``): bearpaw/pytorch-pose @edc7aec's own ``transform``,
``crop`` and centre arithmetic, run under /tmp (never committed) with its float32 torch values, on draws
found by search where posezoo's former float64 arithmetic moved a box corner or a truncated target by a
pixel, or rounded the moved centre otherwise. In that search posezoo equalled bearpaw on 80,000 draws
(box corners and 16 targets each) and 1,800 crops, pixel for pixel.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from posezoo.codecs.hourglass import HourglassReleaseCodec, _box_corner, release_transform
from posezoo.datasets.mpii import person_box
from posezoo.utils.transforms import affine_transform

with open(os.path.join(os.path.dirname(__file__), "hourglass_float32_golden.json")) as f:
    GOLDEN = json.load(f)
PIXELS = ((128, 128, 0), (64, 192, 1), (192, 64, 2), (100, 37, 1))  # (y, x, channel) of the golden crops
RES = (256, 256)


def golden_image() -> np.ndarray:
    """The (700, 1100, 3) uint8 picture the golden crops were cut from (its formula is in the golden file)."""
    y, x = np.mgrid[:700, :1100]
    return np.stack([(7 * x + 13 * y) % 256, (3 * x + 5 * y + 80) % 256, (11 * x + 2 * y + 160) % 256],
                    axis=2).astype(np.uint8)


def posezoo_values(case: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """A case's bearpaw values as posezoo's dataset holds them: the 0-based centre, the scale pair (float32
    for a training draw) and the rotation (float32 where bearpaw turned the sample)."""
    scale = np.full(2, case["scale"], np.float32 if case["scale_float32"] else np.float64)
    rotation = np.float32(case["rotation"]) if case["rotation_float32"] else case["rotation"]
    return np.asarray(case["center"], np.float64) - 1, scale, rotation


@pytest.mark.parametrize("case", GOLDEN["centres"])
def test_mpii_box_moves_bearpaws_float32_centre(case):
    center, scale = person_box(case["center"], case["scale"], float32_centres=True)
    assert center.tolist() == case["official_center"]
    assert scale.tolist() == [case["scale"] * 1.25] * 2
    hrnet, _ = person_box(case["center"], case["scale"])  # HRNet's float64 sum: another value
    assert hrnet[1] == case["center"][1] + 15 * case["scale"] != case["official_center"][1]


@pytest.mark.parametrize("case", GOLDEN["boxes"])
def test_bearpaw_box_and_crop_equal_bearpaws_own(case):
    center, scale, rotation = posezoo_values(case)
    corners = [_box_corner(pt, center + 1, scale[1], RES, one_based=True).tolist() for pt in ([0, 0], RES)]
    assert corners == [case["ul"], case["br"]]
    float64 = [_box_corner(pt, center + 1, float(scale[1]), RES, one_based=True).tolist() for pt in ([0, 0], RES)]
    assert float64 != corners  # the case tells the two arithmetics apart
    crop = HourglassReleaseCodec(RES, (64, 64), 1.0, "bearpaw").crop_image(golden_image(), center, scale, rotation, RES)
    assert crop.shape == (256, 256, 3)
    np.testing.assert_allclose(crop.astype(np.float64).sum(), case["crop_sum"], rtol=1e-6)
    np.testing.assert_allclose([crop[p] for p in PIXELS], case["crop_pixels"], atol=1e-6)


@pytest.mark.parametrize("case", GOLDEN["targets"])
def test_bearpaw_targets_equal_bearpaws_truncated_transform(case):
    center, scale, rotation = posezoo_values(case)
    codec = HourglassReleaseCodec(RES, (64, 64), 1.0, "bearpaw")
    joints = np.asarray(case["joints"], np.float64)  # 0-based, whole pixels as MPII's
    trans = codec.crop_matrix(center, scale, rotation, RES)
    assert np.trunc(codec.crop_points(joints, trans) / 4).astype(int).tolist() == case["targets"]
    former = release_transform(center, float(scale[1]), RES, float(rotation))[:2]  # the 0-based pair, float64
    assert np.trunc(affine_transform(joints, former) / 4).astype(int).tolist() != case["targets"]
