"""The stacked-hourglass releases' own training augmentation (``DATASET.AUGMENTATION``
``bearpaw`` or ``princeton``), for the release YAMLs whose crops, targets and decode are
already the releases' (``codecs/hourglass.py``, ``TEST.HEATMAP_DECODE``).

The default, ``msra``, is HRNet's/SimpleBaseline's ``JointsDataset`` augmentation
(``JointsDataset.augment``). The releases differ from it and from each other:

- bearpaw/pytorch-pose @edc7aec ``pose/datasets/mpii.py:__getitem__``: scale and rotation
  drawn like HRNet's (normal, clipped; rotation in 60 % of samples), no half body; the mirror
  takes ``x -> W - x`` for the centre and the joints, on MATLAB-style coordinates used as
  0-based pixels, which is ``x -> W - 2 - x`` on posezoo's 0-based ones (HRNet: ``W - 1 - x``);
  then each colour channel of the whole [0, 1] image is scaled by U(0.8, 1.2) and clipped at 1,
  before the crop.
- princeton-vl/pytorch_stacked_hourglass @ceedc14 ``data/MPII/dp.py:loadImage``: the test crop
  is cut first (``utils/img.py:crop``) and the joints truncated to its integer pixels
  (``utils/img.py:transform``); a second warp turns it by U(-30, 30) degrees and scales it by
  U(0.75, 1.25) about its centre (``cv2.warpAffine`` of ``get_transform``), the joints going
  straight to heatmap pixels; half the samples are mirrored (``x -> res - x``), and only those
  get the colour jitter of ``Dataset.preprocess`` (hue ±0.2 turns, saturation x U(0.5, 1.5),
  brightness ±0.3, a contrast about each pixel's channel mean x U(0.5, 1.5), clipped to [0, 1]).
  Its test for unlabelled joints reads the pre-mirror joint order, so in a mirrored sample a
  joint whose mirror partner is unlabelled gets no target; that is kept.

The ranges are the YAML's ``DATASET.SCALE_FACTOR`` / ``ROT_FACTOR`` (princeton hard-codes 0.25
and 30, which its YAML sets). bearpaw's drawn scale and angle are float32 torch scalars and are
rounded so here too, and they stay float32 (``np.float32``) so that the hourglass codec builds
its crop matrices and box in bearpaw's float32 arithmetic (``codecs/hourglass.py``
``release_transform``, ``bearpaw_crop``); the mirrored centre is bearpaw's float32 one. Checked
against bearpaw's own ``transform`` / ``crop`` on draws where float64 arithmetic moves a box corner
or a truncated target by a pixel (``tests/datasets/test_release_augmentation.py``).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..codecs.hourglass import princeton_base_crop, release_transform
from ..utils.transforms import flip_permutation, fliplr_joints

AUGMENTATIONS = ("msra", "bearpaw", "princeton")


def check_augmentation(name: str, codec) -> str:
    """``DATASET.AUGMENTATION`` validated against the codec: a release's augmentation needs that
    release's crops (``TEST.HEATMAP_DECODE`` of the same name)."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"DATASET.AUGMENTATION {name!r}: expected one of {', '.join(AUGMENTATIONS)}")
    if name != "msra" and getattr(codec, "release", None) != name:
        raise ValueError(f"DATASET.AUGMENTATION {name} is the {name} release's own augmentation; it needs its "
                         f"crops and targets: set TEST.HEATMAP_DECODE {name}")
    return name


def unit_float(image: np.ndarray) -> np.ndarray:
    """bearpaw ``load_image``: float32, divided by 255 when any pixel exceeds 1."""
    pixels = image.astype(np.float32)
    if pixels.max() > 1:
        pixels /= np.float32(255)
    return pixels


def bearpaw_augment(image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                    scale: np.ndarray, rng, scale_factor: float, rotation_factor: float,
                    flip_pairs: Sequence[Sequence[int]], flip: bool = True):
    """bearpaw's draws on an RGB uint8 image, in its order (scale, rotation, mirror, three
    colour gains): the colour-scaled float32 [0, 1] image (mirrored or not), the joints,
    visibility, centre and scale it is cut with, the rotation and whether it was mirrored."""
    sf, rf = np.float32(scale_factor), np.float32(rotation_factor)  # torch.randn's float32 scalars
    factor = np.clip(np.float32(rng.standard_normal()) * sf + np.float32(1), 1 - sf, 1 + sf)
    scale = np.asarray(scale, np.float32) * factor
    rotation = np.clip(np.float32(rng.standard_normal()) * rf, -2 * rf, 2 * rf) if rng.random() <= 0.6 else 0.0
    pixels = unit_float(image)
    mirrored = bool(flip and rng.random() <= 0.5)
    if mirrored:
        width = pixels.shape[1]
        pixels = cv2.flip(pixels, 1)
        joints, joints_vis = fliplr_joints(joints, joints_vis, width - 1, flip_pairs)
        # c[0] = img.size(2) - c[0] on bearpaw's 1-based float32 centre; posezoo's 0-based one is that - 1
        mirrored_x = np.float32(width) - np.float32(center[0] + 1)
        center = np.array([float(mirrored_x) - 1, center[1]], dtype=np.float64)
    gains = np.array([rng.uniform(0.8, 1.2) for _ in range(3)], dtype=np.float32)
    pixels = np.clip(pixels * gains, 0, 1)
    return pixels, joints, joints_vis, center, scale, rotation, mirrored


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points, np.ones((len(points), 1))], axis=1)


def princeton_colour(pixels: np.ndarray, rng) -> np.ndarray:
    """princeton ``dp.py:Dataset.preprocess`` on a float32 RGB [0, 1] crop: hue shifted by
    U(-0.2, 0.2) of a turn, saturation x U(0.5, 1.5) clipped, brightness + U(-0.3, 0.3),
    contrast about each pixel's channel mean x U(0.5, 1.5), then clipped to [0, 1]."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + ((rng.random() * 2 - 1) * 0.2 * 360 + 360.0), 360.0)
    hsv[:, :, 1] *= rng.random() + 0.5
    hsv[:, :, 1] = np.clip(hsv[:, :, 1], 0, 1)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out += (rng.random() * 2 - 1) * 0.3
    mean = out.mean(axis=2, keepdims=True)
    out = (out - mean) * (rng.random() + 0.5) + mean
    return np.clip(out, 0, 1)


def princeton_training_crop(image: np.ndarray, joints: np.ndarray, labelled: np.ndarray, center: np.ndarray,
                            scale: float, rng, input_size: Sequence[int], heatmap_size: Sequence[int],
                            scale_factor: float, rotation_factor: float, flip_pairs: Sequence[Sequence[int]],
                            flip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, bool]:
    """princeton ``dp.py:loadImage`` for one person: RGB uint8 image, 0-based joints (K, >=2),
    labelled flags (K,), posezoo's 0-based centre and the box scale -> the float32 [0, 1] HWC
    input, the joints in *input* pixels (heatmap pixels x stride, so the princeton codec's
    ``encode`` truncates exactly princeton's values), the flags of the joints it draws, the
    rotation and whether the sample was mirrored."""
    res_in, res_out = int(input_size[0]), int(heatmap_size[0])
    matlab_center = np.asarray(center, np.float64) + 1  # the 1-based centre, used as a 0-based pixel
    cropped = princeton_base_crop(image, matlab_center, scale, (res_in, res_in))
    kept = np.asarray(labelled, bool)
    # utils/img.py:transform of each labelled 1-based joint (posezoo's + 1) into the crop, truncated
    base = release_transform(matlab_center, scale, (res_in, res_in))
    points = np.asarray(joints, np.float64)[:, :2] + 1
    points[kept] = np.trunc(_homogeneous(points[kept]) @ base.T)[:, :2]
    rotation = (rng.random() * 2 - 1) * rotation_factor
    zoom = rng.random() * (2 * scale_factor) + (1 - scale_factor)
    grid_center = (cropped.shape[1] / 2, cropped.shape[0] / 2)
    grid_scale = max(cropped.shape[:2]) / 200 * zoom
    to_map = release_transform(grid_center, grid_scale, (res_out, res_out), rotation)[:2]
    to_input = release_transform(grid_center, grid_scale, (res_in, res_in), rotation)[:2]
    pixels = cv2.warpAffine(cropped, to_input, (res_in, res_in)).astype(np.float32) / 255
    points = _homogeneous(points) @ to_map.T  # utils/img.py:kpt_affine
    drawn = kept.copy()
    mirrored = bool(flip and rng.integers(2) == 0)
    if mirrored:
        pixels = np.ascontiguousarray(princeton_colour(pixels, rng)[:, ::-1], dtype=np.float32)
        perm = flip_permutation(len(points), flip_pairs)
        points, drawn = points[perm], drawn[perm]
        points[:, 0] = res_out - points[:, 0]
        drawn &= kept  # dp.py zeroes joint i where the *unmirrored* joint i was unlabelled
    stride = res_in / res_out
    return pixels, points * stride, drawn, float(rotation), mirrored
