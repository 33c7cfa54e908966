"""CC-SSL's "strong augmentation" (``DATASET.STRONG_AUG: ccssl``) in cv2/numpy.

Mu et al. (CVPR 2020) train on the synthetic animals with an imgaug 0.3.0 pipeline
(JitengMu/Learning-from-Synthetic-Animals ``pose/datasets/synthetic_animal_sp.py:121-139``,
the same in ``CCSSL/scripts/ssl_datasets/ssl_synthetic_animal_sp.py:142-160``), applied to
the whole render before the crop (``synthetic_animal_sp.py:208-210``): four augmenters in a
random order (``Sequential(random_order=True)``), each run with probability 0.5
(``Sometimes(0.5)``):

- ``Affine``: scale x, y ~ U(0.5, 1.5) each, translation ~ U(-5 %, 5 %) of the width /
  height (rounded to whole pixels), rotation ~ U(-30, 30) deg, shear ~ U(-20, 20) deg, about
  the image centre; nearest or bilinear (equal odds); constant border, one value ~ U(0, 255)
  per channel (truncated to int); the keypoints follow the same matrix;
- ``AdditiveGaussianNoise(scale=0.5 * 255, per_channel=0.5)``: N(0, 127.5) per pixel, for
  every channel or one map shared by the channels (equal odds);
- ``GaussianBlur(sigma=(1.0, 5.0))``;
- ``ContrastNormalization((0.5, 2.0), per_channel=0.5)``: 127 + alpha (v - 127), alpha ~
  U(0.5, 2) once or per channel (equal odds).

Each op below is the arithmetic of imgaug 0.3.0 for uint8 images (``geometric.py``
``_AffineSamplingResult.to_matrix`` and ``_warp_affine_arr_cv2``; ``arithmetic.py``
``_add_elementwise_to_uint8``; ``blur.py`` ``blur_gaussian_`` and
``_compute_gaussian_blur_ksize``; ``contrast.py`` ``adjust_contrast_linear``), checked
bit-for-bit against imgaug for fixed parameters (``tests/datasets/test_strong_aug.py``, values
from ``tests/oracles/imgaug_strong_aug.py``). The shear follows scikit-image <= 0.20, which
imgaug 0.3.0 ran on in 2019 (``AffineTransform``: the y axis rotated by rotation + shear);
scikit-image >= 0.21 redefined the shear as tan(shear). The draws use numpy's Generator, not
imgaug's random streams, so only the distributions, not the samples, are the official ones.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

STRONG_AUGS = ("none", "ccssl")
PROBABILITY = 0.5  # Sometimes(0.5) around every augmenter
SCALE_RANGE = (0.5, 1.5)
TRANSLATE_RANGE = (-0.05, 0.05)
ROTATE_RANGE = (-30.0, 30.0)
SHEAR_RANGE = (-20.0, 20.0)
CVAL_RANGE = (0.0, 255.0)
NOISE_STD = 0.5 * 255
BLUR_SIGMA_RANGE = (1.0, 5.0)
CONTRAST_RANGE = (0.5, 2.0)
UINT8_CENTER = 127  # imgaug: int(0 + 0.5 * 255)


def affine_matrix(width: int, height: int, scale: Sequence[float], translate_px: Sequence[float],
                  rotate_deg: float, shear_deg: float) -> np.ndarray:
    """3 x 3 matrix of imgaug's ``Affine`` about the image centre (w / 2 - 0.5, h / 2 - 0.5):
    to the top-left origin, then [[sx cos r, -sy sin(r + sh), tx], [sx sin r, sy cos(r + sh), ty]]
    (scikit-image <= 0.20's ``AffineTransform``), then back; composed in imgaug's order."""
    sx, sy = float(scale[0]), float(scale[1])
    r, sh = math.radians(rotate_deg), math.radians(shear_deg)
    shift = np.array([width / 2.0 - 0.5, height / 2.0 - 0.5])
    to_origin, back = np.eye(3), np.eye(3)
    to_origin[:2, 2], back[:2, 2] = -shift, shift
    transform = np.array([[sx * math.cos(r), -sy * math.sin(r + sh), float(translate_px[0])],
                          [sx * math.sin(r), sy * math.cos(r + sh), float(translate_px[1])],
                          [0.0, 0.0, 1.0]])
    return back @ (transform @ to_origin)


AB_BITS, INTER_BITS = 10, 5  # OpenCV 4's fixed-point warp: 1/1024 coordinates, 1/32 bilinear steps


def _inverse_affine(matrix: np.ndarray) -> np.ndarray:
    """The destination-to-source 2 x 3 matrix, in OpenCV's arithmetic (warpAffine without
    WARP_INVERSE_MAP)."""
    m = matrix[:2].astype(np.float64).reshape(-1).copy()
    d = m[0] * m[4] - m[1] * m[3]
    d = 1.0 / d if d != 0 else 0.0
    a11, a22 = m[4] * d, m[0] * d
    m[0], m[1], m[3], m[4] = a11, -m[1] * d, -m[3] * d, a22
    m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]
    return m.reshape(2, 3)


def _fixed(values: np.ndarray) -> np.ndarray:
    """OpenCV's saturate_cast<int> of doubles: round half to even, clipped to int32."""
    return np.clip(np.rint(values), -2 ** 31, 2 ** 31 - 1).astype(np.int64)


def warp_affine(image: np.ndarray, matrix: np.ndarray, order: int, cval: Sequence[int]) -> np.ndarray:
    """cv2.warpAffine of a uint8 (H, W, C) image as OpenCV 4 computes it (imgaug 0.3.0 ran on
    OpenCV 4.1): source coordinates in 1/1024 pixels summed per row and column, rounded to
    whole pixels (order 0, nearest) or to 1/32 pixel with integer bilinear weights (order 1);
    a constant border `cval` per channel; output the input's size. The fixed-point maps are
    built here and handed to cv2.remap, because OpenCV 5 changed warpAffine's own arithmetic
    (up to 4 grey levels bilinear, whole-pixel jumps nearest, on the golden cases)."""
    if order not in (0, 1):
        raise ValueError(f"strong augmentation: order {order} is not 0 (nearest) or 1 (bilinear)")
    height, width = image.shape[:2]
    m = _inverse_affine(matrix)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    scale = float(1 << AB_BITS)
    round_delta = (1 << AB_BITS) // 2 if order == 0 else (1 << (AB_BITS - INTER_BITS)) // 2
    x = (_fixed((m[0, 1] * ys + m[0, 2]) * scale) + round_delta)[:, None] + _fixed(m[0, 0] * xs * scale)[None, :]
    y = (_fixed((m[1, 1] * ys + m[1, 2]) * scale) + round_delta)[:, None] + _fixed(m[1, 0] * xs * scale)[None, :]
    border = tuple(int(v) for v in cval)
    if order == 0:
        pixels = np.stack([x >> AB_BITS, y >> AB_BITS], axis=-1).clip(-2 ** 15, 2 ** 15 - 1).astype(np.int16)
        out = cv2.remap(image, pixels, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    else:
        x, y = x >> (AB_BITS - INTER_BITS), y >> (AB_BITS - INTER_BITS)
        steps = 1 << INTER_BITS
        pixels = np.stack([x >> INTER_BITS, y >> INTER_BITS], axis=-1).clip(-2 ** 15, 2 ** 15 - 1).astype(np.int16)
        fractions = ((y & (steps - 1)) * steps + (x & (steps - 1))).astype(np.uint16)
        out = cv2.remap(image, pixels, fractions, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=border)
    return out[..., None] if out.ndim == 2 and image.ndim == 3 else out


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 2) points through `matrix` in homogeneous coordinates (float64)."""
    xy = np.asarray(points, np.float64)
    homogeneous = np.column_stack([xy, np.ones(len(xy))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def add_noise(image: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """uint8 image + noise (H, W, 1 or C): the noise rounded half to even and clipped to
    +-255, the sum clipped to 0..255."""
    values = np.clip(np.round(noise), -255, 255).astype(np.int16)
    return np.clip(image.astype(np.int16) + values, 0, 255).astype(np.uint8)


def blur_kernel_size(sigma: float) -> int:
    """imgaug's odd kernel side for `sigma`: 3.3 / 2.9 / 2.6 sigma below 3 / below 5 / above,
    at least 5, truncated, then made odd."""
    factor = 3.3 if sigma < 3.0 else 2.9 if sigma < 5.0 else 2.6
    size = int(max(factor * sigma, 5))
    return size + 1 if size % 2 == 0 else size


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """cv2 Gaussian blur with imgaug's kernel size and reflect-101 border (sigma <= 0.001:
    unchanged, imgaug's eps)."""
    if sigma <= 1e-3:
        return image
    size = blur_kernel_size(sigma)
    out = cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    return out[..., None] if out.ndim == 2 and image.ndim == 3 else out


def linear_contrast(image: np.ndarray, alpha: float | Sequence[float]) -> np.ndarray:
    """127 + alpha (v - 127) through a float32 lookup table, clipped and truncated to uint8;
    `alpha` one value or one per channel."""
    alphas = np.atleast_1d(np.asarray(alpha, np.float32))
    levels = np.arange(256, dtype=np.float32)
    tables = np.clip(UINT8_CENTER + alphas[:, None] * (levels - UINT8_CENTER), 0, 255).astype(np.uint8)
    if len(alphas) == 1:
        return tables[0][image]
    if image.ndim != 3 or image.shape[2] != len(alphas):
        raise ValueError(f"linear_contrast: {len(alphas)} alphas for an image of shape {image.shape}")
    return np.stack([tables[c][image[..., c]] for c in range(len(alphas))], axis=-1)


def ccssl_strong_augment(image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One draw of CC-SSL's pipeline on a whole uint8 image and its (K, 3) joints: the ops
    in a random order, each with probability 0.5; joints the affine moves outside the image
    ([0, W] x [0, H], ``synthetic_animal_sp.py:217-219``) become unlabelled. Returns the
    image, joints, joints_vis and the names of the ops applied, in order."""
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    joints, joints_vis = joints.copy(), joints_vis.copy()
    applied = []
    for op in rng.permutation(4):
        if rng.random() >= PROBABILITY:
            continue
        if op == 0:
            scale = rng.uniform(*SCALE_RANGE, size=2)
            translate = [int(np.round(t * side)) for t, side in zip(rng.uniform(*TRANSLATE_RANGE, size=2),
                                                                     (width, height))]
            matrix = affine_matrix(width, height, scale, translate, rng.uniform(*ROTATE_RANGE),
                                   rng.uniform(*SHEAR_RANGE))
            cval = rng.uniform(*CVAL_RANGE, size=3).astype(int)
            image = warp_affine(image, matrix, int(rng.integers(0, 2)), cval)
            labelled = joints_vis[:, 0] > 0
            joints[labelled, :2] = transform_points(joints[labelled, :2], matrix)
            outside = (joints[:, 0] < 0) | (joints[:, 1] < 0) | (joints[:, 0] > width) | (joints[:, 1] > height)
            joints_vis[outside & labelled] = 0
            applied.append("affine")
        elif op == 1:
            shared = rng.random() >= 0.5
            noise = rng.normal(0.0, NOISE_STD, size=(height, width, 1 if shared else channels))
            image = add_noise(image if image.ndim == 3 else image[..., None], noise).reshape(image.shape)
            applied.append("noise")
        elif op == 2:
            image = gaussian_blur(image, rng.uniform(*BLUR_SIGMA_RANGE))
            applied.append("blur")
        else:
            per_channel = rng.random() < 0.5
            image = linear_contrast(image, rng.uniform(*CONTRAST_RANGE, size=channels if per_channel else 1))
            applied.append("contrast")
    return image, joints, joints_vis, applied


def strong_augmentation(name: str):
    """The function of ``DATASET.STRONG_AUG`` (None for ``none``); an unknown name is refused."""
    if name not in STRONG_AUGS:
        raise ValueError(f"DATASET.STRONG_AUG {name!r}: expected one of {', '.join(STRONG_AUGS)}")
    return None if name == "none" else ccssl_strong_augment
