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
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

__all__ = [
    "LEFT_COLOR",
    "RIGHT_COLOR",
    "CENTER_COLOR",
    "draw_skeletons",
    "draw_boxes",
    "save_batch_images_with_joints",
    "save_batch_heatmaps",
    "save_gallery",
    "save_instance_gallery",
    "draw_hand_uvd",
    "plot_hand_3d",
]

Pairs = Sequence[Tuple[int, int]]
Color = Tuple[int, int, int]
ArrayLike = Union[np.ndarray, torch.Tensor]

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


BOX_COLOR: Color = (200, 200, 200)


def draw_boxes(image_bgr: np.ndarray, boxes: ArrayLike, color: Color = BOX_COLOR) -> np.ndarray:
    """A copy of ``image_bgr`` with each box (M, 5) ``[x, y, w, h, score]``
    outlined and its score written at its top-left corner."""
    canvas = _as_bgr_uint8(image_bgr)
    thickness = max(1, _thickness_for(*canvas.shape[:2])[0] // 2)
    scale = max(0.4, canvas.shape[0] / 1200)
    for x, y, w, h, score in _to_numpy(boxes).reshape(-1, 5):
        cv2.rectangle(canvas, _pt(x, y), _pt(x + w, y + h), color, thickness, cv2.LINE_AA)
        cv2.putText(canvas, f"{score:.2f}", _pt(x + 2, y + 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, scale, color,
                    thickness, cv2.LINE_AA)
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
    file_name: str | None,
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
        file_name: output image path (parent folders are created); None
            only returns the grid (e.g. for TensorBoard).
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
    if file_name:
        _write(file_name, grid)
    return grid


def save_batch_heatmaps(
    images: ArrayLike,
    heatmaps: ArrayLike,
    file_name: str | None,
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
        file_name: output image path; None only returns the sheet.
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
    if file_name:
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


#: BGR colour of ground-truth skeletons under predicted ones in instance galleries.
GT_COLOR: Color = (230, 230, 230)
_CAPTION_HEIGHT = 18


def _region_matrix(region: Sequence[float], tile_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine that fits the image region [x, y, w, h] (aspect kept) into a
    (height, width) tile, centred."""
    x, y, w, h = (float(v) for v in region)
    th, tw = tile_size
    zoom = min(tw / max(w, 1e-6), th / max(h, 1e-6))
    return np.array([[zoom, 0.0, tw * 0.5 - zoom * (x + w * 0.5)],
                     [0.0, zoom, th * 0.5 - zoom * (y + h * 0.5)]])


def _moved(people: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """(N, K, 3) people with x, y mapped by a 2x3 affine, scores kept."""
    moved = people.copy()
    moved[..., :2] = people[..., :2] @ mat[:, :2].T + mat[:, 2]
    return moved


def save_instance_gallery(
    images: Sequence[str | os.PathLike | np.ndarray],
    keypoints: ArrayLike,
    regions: ArrayLike,
    file_name: str | None,
    skeleton: Pairs,
    flip_pairs: Pairs | None,
    *,
    gt_keypoints: ArrayLike | None = None,
    captions: Sequence[str] | None = None,
    tile_size: tuple[int, int] = (256, 192),
    ncol: int = 4,
    score_thresh: float = 0.2,
    padding: int = 4,
) -> np.ndarray:
    """One tile per person instance: the image region it was cropped from,
    its ground truth in light grey (when given) under the predicted skeleton,
    and a caption; tiled into one image (written unless `file_name` is None).

    Args:
        images: per instance, the image path or BGR uint8 array it comes from.
        keypoints: (N, K, 3) predictions in image pixels.
        regions: (N, 4) [x, y, w, h] image region shown in each tile.
        gt_keypoints: (N, K, 3) ground truth (x, y, visibility) or None;
            joints with visibility 0 are not drawn.
        captions: one text per tile (e.g. "OKS 0.93"), written on a black band
            of 18 px above it.
        tile_size: (height, width) of a tile's image part.
    """
    kpts = _as_people(keypoints)
    boxes = _to_numpy(regions).astype(np.float64).reshape(-1, 4)
    if not len(images) or len(kpts) != len(images) or len(boxes) != len(images):
        raise ValueError(f"{len(images)} images, {len(kpts)} keypoint sets and {len(boxes)} regions: "
                         f"expected the same non-zero count")
    gts = None if gt_keypoints is None else _as_people(gt_keypoints)
    th, tw = tile_size
    cache: dict = {}
    tiles = []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            image = item
        else:
            key = os.fspath(item)
            if key not in cache:
                cache[key] = cv2.imread(key, cv2.IMREAD_COLOR)
                if cache[key] is None:
                    raise FileNotFoundError(f"could not read image {key!r}")
            image = cache[key]
        mat = _region_matrix(boxes[i], tile_size)
        tile = cv2.warpAffine(_as_bgr_uint8(image), mat, (tw, th), flags=cv2.INTER_LINEAR)
        if gts is not None:
            tile = draw_skeletons(tile, _moved(gts[i:i + 1], mat), skeleton, None, 0.0,
                                  colors=(GT_COLOR, GT_COLOR, GT_COLOR))
        tile = draw_skeletons(tile, _moved(kpts[i:i + 1], mat), skeleton, flip_pairs, score_thresh)
        if captions is not None:
            band = np.zeros((_CAPTION_HEIGHT, tw, 3), np.uint8)
            cv2.putText(band, captions[i], (3, _CAPTION_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 255, 255), 1, cv2.LINE_AA)
            tile = np.concatenate([band, tile], axis=0)
        tiles.append(tile)
    grid = _tile(tiles, ncol, padding)
    if file_name:
        _write(file_name, grid)
    return grid


#: Depth-hand drawing colours (BGR): bones, joints.
BONE_COLOR: Color = (255, 255, 255)
JOINT_COLOR: Color = (255, 0, 255)


def draw_hand_uvd(
    depth: np.ndarray,
    uvd: ArrayLike,
    skeleton: Pairs,
    *,
    depth_range: tuple[float, float] | None = None,
    margin: float = 100.0,
    thickness: int | None = None,
) -> np.ndarray:
    """A depth frame colour-mapped (near = red, far = blue, no reading = black)
    with the hand's joints (u, v in pixels of `depth`) and bones drawn.

    Args:
        depth: (H, W) depth in mm; values <= 0 mean no reading.
        uvd: (K, 3) joints as (u, v, d), d in mm.
        skeleton: bones as 0-based joint pairs (NYU: ``posezoo.datasets.nyu.SKELETON``).
        depth_range: (near, far) mm mapped onto the colour scale; by default the
            joints' depths widened by `margin` mm, so the hand fills the scale.
        thickness: bone thickness; default scales with the frame size.
    """
    depth = np.asarray(depth, dtype=np.float32)
    joints = _to_numpy(uvd).astype(np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be an (H, W) map in mm, got shape {depth.shape}")
    if joints.ndim != 2 or joints.shape[1] != 3:
        raise ValueError(f"uvd must be (K, 3) [u, v, d], got shape {joints.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if depth_range is None:
        if np.isfinite(joints[:, 2]).any():
            near, far = np.nanmin(joints[:, 2]) - margin, np.nanmax(joints[:, 2]) + margin
        elif valid.any():
            near, far = float(depth[valid].min()), float(depth[valid].max())
        else:
            near, far = 0.0, 1.0
    else:
        near, far = depth_range
    scaled = np.clip((far - np.where(valid, depth, far)) / max(far - near, 1e-6), 0.0, 1.0)
    canvas = cv2.applyColorMap((scaled * 255).round().astype(np.uint8), cv2.COLORMAP_JET)
    canvas[~valid] = 0
    line, radius = _thickness_for(*depth.shape)
    line = thickness or line
    ok = np.isfinite(joints[:, :2]).all(axis=1)
    for a, b in skeleton:
        if 0 <= a < len(joints) and 0 <= b < len(joints) and ok[a] and ok[b]:
            cv2.line(canvas, _pt(*joints[a, :2]), _pt(*joints[b, :2]), BONE_COLOR, line, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(canvas, _pt(*joints[j, :2]), max(radius, line + 1), JOINT_COLOR, -1, cv2.LINE_AA)
    return canvas


def plot_hand_3d(
    xyz: ArrayLike,
    skeleton: Pairs,
    path: str,
    *,
    title: str = "",
    gt_xyz: ArrayLike | None = None,
    elev: float = 20.0,
    azim: float = -70.0,
) -> str:
    """Save a 3D plot (PNG) of hand joints (K, 3) in mm as a scatter plus bones,
    with the ground truth dashed when `gt_xyz` is given. Camera axes are kept
    (x right, y up as in NYU, z = depth into the scene, drawn as the plot's
    depth axis) with equal scales, so bone lengths are not distorted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    joints = _to_numpy(xyz).astype(np.float64)
    if joints.ndim != 2 or joints.shape[1] != 3:
        raise ValueError(f"xyz must be (K, 3) joints in mm, got shape {joints.shape}")
    sets = [(joints, "tab:red", "-", "prediction")]
    if gt_xyz is not None:  # drawn first, under the prediction
        sets.insert(0, (_to_numpy(gt_xyz).astype(np.float64).reshape(-1, 3), "tab:blue", "--", "ground truth"))
    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    for pts, color, style, label in sets:
        x, y, z = pts[:, 0], pts[:, 2], pts[:, 1]  # plot axes: x, depth, up
        ax.scatter(x, y, z, color=color, s=18, label=label, depthshade=False)
        for a, b in skeleton:
            if 0 <= a < len(pts) and 0 <= b < len(pts):
                ax.plot([x[a], x[b]], [y[a], y[b]], [z[a], z[b]], color=color, linestyle=style, linewidth=1.5)
    every = np.concatenate([pts for pts, *_ in sets])
    every = every[np.isfinite(every).all(axis=1)]
    if len(every):
        mid = (every.max(axis=0) + every.min(axis=0)) / 2
        half = max(float((every.max(axis=0) - every.min(axis=0)).max()) / 2, 1.0)
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[2] - half, mid[2] + half)
        ax.set_zlim(mid[1] - half, mid[1] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("z, depth (mm)")
    ax.set_zlabel("y (mm)")
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title)
    if gt_xyz is not None:
        ax.legend(loc="upper right")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
