"""Drawing helpers: skeleton overlays, batch grids, heatmap sheets, galleries.

All images handled here are OpenCV-style ``uint8`` BGR arrays (H, W, 3); files
are written with ``cv2.imwrite``.  Joints are ``[x, y, score]`` rows in pixel
coordinates of the image they are drawn on.  Left/right sides come from the
flip pairs: the first joint of each pair is *left*, the second *right*, all
other joints are *centre* joints.
"""

from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

__all__ = [
    "COCO_SKELETON",
    "COCO_FLIP_PAIRS",
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "CENTER_COLOR",
    "draw_skeletons",
    "save_batch_images_with_joints",
    "save_batch_heatmaps",
    "save_gallery",
]

Pairs = Sequence[Tuple[int, int]]
Color = Tuple[int, int, int]
ArrayLike = Union[np.ndarray, torch.Tensor]

#: COCO person skeleton (standard 1-based annotation skeleton minus one).
COCO_SKELETON: List[Tuple[int, int]] = [
    (a - 1, b - 1)
    for a, b in [
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13),
        (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3),
        (2, 4), (3, 5), (4, 6), (5, 7),
    ]
]
#: COCO (left, right) keypoint pairs: eyes, ears, shoulders, elbows, wrists,
#: hips, knees, ankles.
COCO_FLIP_PAIRS: List[Tuple[int, int]] = [
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]

#: BGR colours of left-side, right-side and centre joints / limbs.
LEFT_COLOR: Color = (255, 128, 0)     # blue
RIGHT_COLOR: Color = (0, 128, 255)    # orange
CENTER_COLOR: Color = (0, 220, 0)     # green

_COORD_LIMIT = 1e5  # keep cv2's integer coordinates in range


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _side_lookup(num_joints: int, flip_pairs: Optional[Pairs]) -> np.ndarray:
    """Per joint: -1 = left, +1 = right, 0 = centre."""
    side = np.zeros(num_joints, dtype=np.int64)
    for left, right in flip_pairs or ():
        if 0 <= left < num_joints:
            side[left] = -1
        if 0 <= right < num_joints:
            side[right] = 1
    return side


def _color_for(side: int, colors: Tuple[Color, Color, Color]) -> Color:
    return colors[0] if side < 0 else colors[1] if side > 0 else colors[2]


def _thickness_for(height: int, width: int) -> Tuple[int, int]:
    """(line thickness, joint radius) scaled to the image size."""
    thickness = max(1, int(round(min(height, width) / 200.0)))
    return thickness, thickness + 1


def _pt(x: float, y: float) -> Tuple[int, int]:
    return (int(round(float(np.clip(x, -_COORD_LIMIT, _COORD_LIMIT)))),
            int(round(float(np.clip(y, -_COORD_LIMIT, _COORD_LIMIT)))))


def _as_bgr_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image).copy()


def _as_people(keypoints: ArrayLike) -> np.ndarray:
    """(N, K, 3) float array; accepts (K, 3), (N, K, 2) (score := 1) or empty."""
    kpts = _to_numpy(keypoints).astype(np.float64, copy=False)
    if kpts.size == 0:
        return np.zeros((0, 0, 3))
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must be (N, K, 3) or (K, 3), got {kpts.shape}")
    if kpts.shape[2] == 2:
        kpts = np.concatenate([kpts, np.ones(kpts.shape[:2] + (1,))], axis=2)
    return kpts


def draw_skeletons(
    image_bgr: np.ndarray,
    keypoints: ArrayLike,
    skeleton: Pairs,
    flip_pairs: Optional[Pairs] = None,
    score_thresh: float = 0.2,
    *,
    thickness: Optional[int] = None,
    colors: Tuple[Color, Color, Color] = (LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR),
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with every person's limbs and joints drawn.

    Args:
        image_bgr: (H, W, 3) uint8 BGR image (grey / BGRA are converted); not modified.
        keypoints: (N, K, 3) ``[x, y, score]`` per person (a single (K, 3) is accepted).
        skeleton: 0-based joint index pairs to connect with lines.
        flip_pairs: (left, right) joint pairs; decides the colours.  ``None``
            draws everything in the centre colour.
        score_thresh: joints with ``score <= score_thresh`` (and limbs touching
            them) are not drawn.
        thickness: line thickness; default scales with the image size.
        colors: BGR colours for (left, right, centre).
    """
    canvas = _as_bgr_uint8(image_bgr)
    people = _as_people(keypoints)
    if people.shape[0] == 0:
        return canvas
    num_joints = people.shape[1]
    side = _side_lookup(num_joints, flip_pairs)
    auto_thickness, radius = _thickness_for(*canvas.shape[:2])
    if thickness is None:
        thickness = auto_thickness
    else:
        radius = max(2, thickness + 1)

    for person in people:
        ok = (person[:, 2] > score_thresh) & np.isfinite(person[:, :2]).all(axis=1)
        for a, b in skeleton:
            if not (0 <= a < num_joints and 0 <= b < num_joints and ok[a] and ok[b]):
                continue
            sides = {int(side[a]), int(side[b])}
            limb_side = -1 if -1 in sides and 1 not in sides else (
                1 if 1 in sides and -1 not in sides else 0)
            cv2.line(canvas, _pt(*person[a, :2]), _pt(*person[b, :2]),
                     _color_for(limb_side, colors), thickness, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(canvas, _pt(*person[j, :2]), radius,
                       _color_for(int(side[j]), colors), -1, cv2.LINE_AA)
    return canvas


def _denormalize(images: ArrayLike, mean: Sequence[float], std: Sequence[float],
                 rgb: bool) -> np.ndarray:
    """(B, 3, H, W) normalised tensor -> (B, H, W, 3) uint8 BGR."""
    if isinstance(images, torch.Tensor):
        arr = images.detach().float().cpu().numpy()
    else:
        arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {arr.shape}")
    mean_a = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    arr = (arr * std_a + mean_a) * 255.0
    arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    arr = arr.transpose(0, 2, 3, 1)
    if rgb:
        arr = arr[..., ::-1]
    return np.ascontiguousarray(arr)


def _tile(tiles: Sequence[np.ndarray], ncol: int, padding: int,
          pad_value: int = 0) -> np.ndarray:
    """Tile equally sized (h, w, 3) images row-major, ``padding`` px around each."""
    n = len(tiles)
    h, w = tiles[0].shape[:2]
    ncol = max(1, min(ncol, n))
    nrow = int(math.ceil(n / ncol))
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3),
                   pad_value, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        y = padding + (k // ncol) * (h + padding)
        x = padding + (k % ncol) * (w + padding)
        grid[y:y + h, x:x + w] = tile
    return grid


def _write(file_name: str, image: np.ndarray) -> None:
    folder = os.path.dirname(os.path.abspath(file_name))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(file_name, image):
        raise IOError(f"could not write image to {file_name!r}")


def save_batch_images_with_joints(
    images: ArrayLike,
    joints: ArrayLike,
    file_name: str,
    skeleton: Pairs,
    flip_pairs: Optional[Pairs],
    nrow: int = 8,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    rgb: bool = True,
    *,
    padding: int = 2,
    score_thresh: float = 0.2,
) -> np.ndarray:
    """Write a grid of input crops with their skeletons drawn; returns the grid.

    Args:
        images: (B, 3, H, W) network inputs normalised with ``mean``/``std``.
        joints: (B, K, 3) ``[x, y, score-or-visibility]`` in input-pixel coordinates.
        file_name: output image path (parent folders are created).
        skeleton, flip_pairs: see :func:`draw_skeletons`.
        nrow: crops per grid row (as torchvision's ``make_grid``).
        mean, std: normalisation to undo, per channel of the tensor.
        rgb: the tensor channels are RGB (converted to BGR for OpenCV).
        padding: pixels of black between / around crops.
        score_thresh: joints with score ``<=`` this are not drawn.

    The grid is ``ceil(B / ncol) * (H + padding) + padding`` by
    ``ncol * (W + padding) + padding`` with ``ncol = min(nrow, B)``.
    """
    crops = _denormalize(images, mean, std, rgb)
    batch_joints = _to_numpy(joints)
    if len(batch_joints) != len(crops):
        raise ValueError(f"{len(crops)} images but {len(batch_joints)} joint sets")
    tiles = [draw_skeletons(crop, batch_joints[b][None], skeleton, flip_pairs, score_thresh)
             for b, crop in enumerate(crops)]
    if not tiles:
        raise ValueError("empty batch")
    grid = _tile(tiles, nrow, padding)
    _write(file_name, grid)
    return grid


def save_batch_heatmaps(
    images: ArrayLike,
    heatmaps: ArrayLike,
    file_name: str,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    rgb: bool = True,
    *,
    normalize: bool = False,
    alpha: float = 0.7,
    mark_max: bool = True,
) -> np.ndarray:
    """Write one row per sample: the crop, then each joint's heatmap over it.

    Every tile has the heatmap resolution (h, w); the crop is resized to it and
    each heatmap is colour-mapped with ``cv2.COLORMAP_JET`` and blended as
    ``alpha * heatmap + (1 - alpha) * crop``; the maximum is marked with a red
    dot.  The result is (B*h, (K+1)*w, 3) and is also returned.

    Args:
        images: (B, 3, H, W) normalised network inputs.
        heatmaps: (B, K, h, w) heatmaps, values expected in [0, 1] (clipped).
        file_name: output image path.
        mean, std, rgb: see :func:`save_batch_images_with_joints`.
        normalize: rescale each heatmap to [0, 1] by its own maximum first.
        alpha: heatmap weight in the blend.
        mark_max: draw the argmax location of each heatmap.
    """
    crops = _denormalize(images, mean, std, rgb)
    maps = _to_numpy(heatmaps).astype(np.float32, copy=False)
    if maps.ndim != 4 or maps.shape[0] != crops.shape[0]:
        raise ValueError(f"heatmaps must be (B, K, h, w) with B={crops.shape[0]}, got {maps.shape}")
    batch, num_joints, hm_h, hm_w = maps.shape
    maps = np.nan_to_num(maps)
    if normalize:
        peak = maps.reshape(batch, num_joints, -1).max(axis=2)[..., None, None]
        maps = np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0)
    maps_u8 = (np.clip(maps, 0, 1) * 255).round().astype(np.uint8)

    grid = np.zeros((batch * hm_h, (num_joints + 1) * hm_w, 3), dtype=np.uint8)
    for b in range(batch):
        crop = cv2.resize(crops[b], (hm_w, hm_h), interpolation=cv2.INTER_AREA)
        rows = slice(b * hm_h, (b + 1) * hm_h)
        grid[rows, :hm_w] = crop
        for j in range(num_joints):
            colored = cv2.applyColorMap(maps_u8[b, j], cv2.COLORMAP_JET)
            tile = cv2.addWeighted(colored, alpha, crop, 1.0 - alpha, 0.0)
            if mark_max:
                y, x = np.unravel_index(int(np.argmax(maps[b, j])), (hm_h, hm_w))
                cv2.circle(tile, (int(x), int(y)), 1, (0, 0, 255), -1)
            grid[rows, (j + 1) * hm_w:(j + 2) * hm_w] = tile
    _write(file_name, grid)
    return grid


def _fit_into(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize preserving aspect ratio and centre on a black (height, width) canvas."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    y0, x0 = (height - new_h) // 2, (width - new_w) // 2
    canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
    return canvas


def save_gallery(
    image_paths_or_arrays: Sequence[Union[str, os.PathLike, np.ndarray]],
    keypoints_per_image: Sequence[ArrayLike],
    file_name: str,
    skeleton: Pairs,
    flip_pairs: Optional[Pairs],
    max_images: int = 8,
    *,
    ncol: int = 4,
    tile_size: Tuple[int, int] = (360, 480),
    score_thresh: float = 0.2,
    padding: int = 4,
) -> np.ndarray:
    """Draw predicted skeletons on full images and tile them into one image.

    Args:
        image_paths_or_arrays: image file paths or BGR uint8 arrays.
        keypoints_per_image: per image, an (N_i, K, 3) array of people in that
            image's pixel coordinates (N_i may be 0).
        file_name: output path (``.png`` recommended).
        skeleton, flip_pairs: see :func:`draw_skeletons`.
        max_images: only the first ``max_images`` images are used.
        ncol: tiles per row.
        tile_size: (height, width) of each tile; images are letterboxed into it
            after drawing at full resolution.
        score_thresh: joints with score ``<=`` this are not drawn.
        padding: pixels between tiles.

    Returns:
        The written gallery image.
    """
    items = list(image_paths_or_arrays)[:max_images]
    if len(keypoints_per_image) < len(items):
        raise ValueError("fewer keypoint sets than images")
    if not items:
        raise ValueError("no images to draw")
    tiles = []
    for item, kpts in zip(items, keypoints_per_image):
        if isinstance(item, np.ndarray):
            image = item
        else:
            image = cv2.imread(os.fspath(item), cv2.IMREAD_COLOR)
            if image is None:
                raise FileNotFoundError(f"could not read image {item!r}")
        drawn = draw_skeletons(image, kpts, skeleton, flip_pairs, score_thresh)
        tiles.append(_fit_into(drawn, *tile_size))
    gallery = _tile(tiles, ncol, padding)
    _write(file_name, gallery)
    return gallery
