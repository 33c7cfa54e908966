"""Geometry shared by datasets and codecs: box -> (center, scale), the crop
affine transform and its inverse, and horizontal flips.

Conventions are HRNet's: ``scale`` is the box size in units of ``PIXEL_STD``
(200 px), ``center`` is in image pixels, sizes are (width, height).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

PIXEL_STD = 200.0
BOX_PADDING = 1.25  # official top-down crops enlarge every person box by 25 %


#: Where a box's centre lies: ``x + (w - offset) / 2``. HRNet/SimpleBaseline/UDP
#: ``_xywh2cs`` halve the width (offset 0); DarkPose's ``lib/dataset/coco.py``
#: ``_xywh2cs`` takes one pixel off first (offset 1), for GT and detected boxes.
BOX_CENTERS = {"hrnet": 0.0, "darkpose": 1.0}


def usable_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """The one box rule of datasets, ``tools/infer.py`` and the API: a box
    [x, y, w, h, ...] is usable when w > 0, h > 0 and it overlaps the image.
    Returns the boolean mask; boxes partly outside are kept unclipped, as the
    official detected-box pipelines (HRNet ``_load_coco_person_detection_results``)
    crop them."""
    b = np.atleast_2d(np.asarray(boxes, dtype=np.float64))
    return ((b[:, 2] > 0) & (b[:, 3] > 0) & (b[:, 0] < width) & (b[:, 1] < height)
            & (b[:, 0] + b[:, 2] > 0) & (b[:, 1] + b[:, 3] > 0))


def box_to_center_scale(box: Sequence[float], aspect_ratio: float, padding: float = BOX_PADDING,
                        center_rule: str = "hrnet", extend: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """COCO box [x, y, w, h] -> center, scale: the box is widened or heightened to
    the crop's aspect ratio (w/h), divided by 200 px and enlarged by `padding`
    (HRNet/SimpleBaseline ``_xywh2cs``); ``center_rule`` is a ``BOX_CENTERS`` key.
    ``extend`` = (ex, ey) multiplies width and height *before* the aspect fit
    (MSPN/RSN ``JointsDataset.__getitem__`` test branch; the caller passes padding 1)."""
    if center_rule not in BOX_CENTERS:
        raise ValueError(f"DATASET.BOX_CENTER = {center_rule!r}: expected one of {', '.join(BOX_CENTERS)}")
    x, y, w, h = (float(v) for v in box[:4])
    off = BOX_CENTERS[center_rule]
    center = np.array([x + (w - off) * 0.5, y + (h - off) * 0.5], dtype=np.float32)
    if len(extend):
        w, h = w * float(extend[0]), h * float(extend[1])
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32)
    if center[0] != -1:
        scale = scale * padding
    return center, scale


def crop_box_rule(extend: Sequence[float]) -> dict:
    """``box_to_center_scale`` keywords for test crops from ``DATASET.TEST_BOX_EXTEND``:
    {} (HRNet's x1.25) when empty, else the Megvii rule (``extend``, no padding)."""
    if not len(extend):
        return {}
    ext = np.asarray(extend, dtype=np.float64).ravel()
    if ext.size != 2 or not np.isfinite(ext).all() or (ext <= 0).any():
        raise ValueError(f"DATASET.TEST_BOX_EXTEND = {list(extend)}: expected [] or two positive factors "
                         f"[width, height], e.g. [1.09, 1.135] (MSPN/RSN)")
    return {"padding": 1.0, "extend": (float(ext[0]), float(ext[1]))}


def _rotate(point: np.ndarray, rot_rad: float) -> np.ndarray:
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs], dtype=np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point making a right angle at `b` with the segment a-b."""
    direction = a - b
    return b + np.array([-direction[1], direction[0]], dtype=np.float32)


def get_affine_transform(center: np.ndarray, scale: np.ndarray, rot: float, output_size: Sequence[int],
                         shift: Sequence[float] = (0.0, 0.0), inv: bool = False, margin: int = 0) -> np.ndarray:
    """2x3 matrix mapping the box (center, scale*200, rotated by `rot` degrees)
    onto an image of `output_size` (w, h); `inv` gives the way back.

    Built from three point correspondences exactly as the official code does, so
    crops match it to the last bit. ``margin`` 1 is DarkPose's variant
    (DarkPose ``lib/utils/transforms.py`` ``get_affine_transform``): the box width
    and the output size lose one pixel, ``(s*200 - 1)`` and ``(size - 1)``, taken
    off in float32 after the ``* 200`` as DarkPose does (subtracting 1/200 from
    the scale first rounds differently and moves crop pixels by one grey level)."""
    scale = np.asarray(scale, dtype=np.float32)
    if scale.ndim == 0:
        scale = np.array([scale, scale], dtype=np.float32)
    scale_px = scale * PIXEL_STD
    shift = np.asarray(shift, dtype=np.float32)
    src_w = scale_px[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.pi * rot / 180
    if margin:
        src_w, dst_w, dst_h = src_w - np.float32(margin), dst_w - margin, dst_h - margin
    src_dir = _rotate(np.array([0, src_w * -0.5], np.float32), rot_rad)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = np.asarray(center, dtype=np.float32) + scale_px * shift
    src[1] = src[0] + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def affine_transform(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points (..., 2)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ trans[:, :2].T + trans[:, 2]


def crop_to_image(coords: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                  output_size: Sequence[int]) -> torch.Tensor:
    """Map (N, K, 2) coordinates in an `output_size` (w, h) grid of an unrotated
    crop back to image pixels, batched on the tensors' device.

    Equals the official ``transform_preds`` (the inverse of
    ``get_affine_transform(c, s, 0, output_size)``). Like it, only the box width
    sets the zoom, ``k = s_w*200 / w``, for both axes: p = k * (q - size/2) + c."""
    size = torch.as_tensor(output_size, dtype=coords.dtype, device=coords.device)
    zoom = scale[:, :1].to(coords.dtype) * PIXEL_STD / size[0]
    return (coords - size * 0.5) * zoom[:, None, :] + center.to(coords.dtype)[:, None, :]


def flip_permutation(num_joints: int, flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    """Index list that swaps each left/right pair of joints."""
    perm = list(range(num_joints))
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm


def flip_back(output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]], shift: bool = False
              ) -> torch.Tensor:
    """Heatmaps of a mirrored input, (N, K, H, W), mirrored back with left/right
    channels swapped. ``shift`` moves them one pixel right, as HRNet's
    ``TEST.SHIFT_HEATMAP`` does to undo the biased flip of the crop."""
    out = output_flipped.flip(3)[:, flip_permutation(output_flipped.shape[1], flip_pairs)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=3)
    return out


def fliplr_joints(joints: np.ndarray, joints_vis: np.ndarray, width: int, flip_pairs: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Joints of an image mirrored horizontally: x -> width - 1 - x, pairs swapped."""
    perm = flip_permutation(len(joints), flip_pairs)
    joints = joints[perm].copy()
    joints_vis = joints_vis[perm].copy()
    joints[:, 0] = width - joints[:, 0] - 1
    return joints * joints_vis, joints_vis


# --- UDP geometry (Huang et al., "The Devil is in the Details", CVPR 2020) ---
#
# Unbiased data processing measures sizes in pixel *intervals*: the box of
# width s_w*200 image pixels spans the crop from pixel 0 to pixel W-1 (not W),
# the box centre lands on ((W-1)/2, (H-1)/2), and a heatmap of width w_hm
# covers the same span with stride (W-1)/(w_hm-1). Flipping a crop is then
# x -> W-1-x in every resolution, with no shift to undo.

def get_udp_warp_matrix(center: np.ndarray, scale: np.ndarray, rot: float, output_size: Sequence[int],
                        inv: bool = False) -> np.ndarray:
    """UDP crop geometry as a 2x3 matrix, image -> crop (or crop -> image with
    `inv`), for a box (center, scale*200) rotated by `rot` degrees and a crop of
    `output_size` (w, h).

    ``inv=True`` gives the official matrix numbers exactly (UDP-Pose's
    ``get_warpmatrix(rot, 2*center, output_size-1, scale)``, float32, which the
    official dataset warps with ``WARP_INVERSE_MAP``): crop pixel q goes to
    image ``R(rot)^T (q * t/(size-1) - t/2) + center`` with t = scale*200.
    The default, image -> crop, is that matrix inverted in float64, so
    ``cv2.warpAffine`` (which inverts it back) samples the same image points as
    the official crop, and points map as the official ``rotate_points``:
    ``(R(rot) (p - center) + t/2) * (size-1)/t``."""
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim == 0:
        scale = np.array([scale, scale])
    t = scale * PIXEL_STD
    dst = np.asarray(output_size, dtype=np.float64) - 1.0
    theta = float(rot) / 180.0 * np.pi
    cs, sn = np.cos(theta), np.sin(theta)
    kx, ky = t[0] / dst[0], t[1] / dst[1]
    cx, cy = float(center[0]), float(center[1])
    back = np.array([[cs * kx, sn * ky, -0.5 * t[0] * cs - 0.5 * t[1] * sn + cx],
                     [-sn * kx, cs * ky, 0.5 * t[0] * sn - 0.5 * t[1] * cs + cy]]).astype(np.float32)
    if inv:
        return back
    return cv2.invertAffineTransform(back.astype(np.float64))


def udp_crop_to_image(coords: torch.Tensor, center: torch.Tensor, scale: torch.Tensor,
                      output_size: Sequence[int]) -> torch.Tensor:
    """Map (N, K, 2) coordinates on an `output_size` (w, h) grid of an
    unrotated UDP crop back to image pixels, batched on the tensors' device.

    Equals the official UDP ``transform_preds``: each axis has its own zoom,
    ``p = q * s*200/(size-1) + c - s*200/2``; the exact inverse of
    ``get_udp_warp_matrix`` at rot = 0."""
    size = torch.as_tensor(output_size, dtype=coords.dtype, device=coords.device)
    box = scale.to(coords.dtype) * PIXEL_STD
    return coords * (box / (size - 1.0))[:, None, :] + (center.to(coords.dtype) - box * 0.5)[:, None, :]


def uvd_to_xyz(uvd: np.ndarray, fx: float, fy: float, u0: float, v0: float) -> np.ndarray:
    """Pixel coordinates + depth (..., 3) -> camera coordinates in the depth's unit
    (pinhole back-projection). A negative ``fy`` flips the y axis, as NYU's
    convention (y up) needs: x = (u - u0) d / fx, y = (v - v0) d / fy, z = d."""
    uvd = np.asarray(uvd, dtype=np.float64)
    xyz = np.empty_like(uvd)
    xyz[..., 0] = (uvd[..., 0] - u0) * uvd[..., 2] / fx
    xyz[..., 1] = (uvd[..., 1] - v0) * uvd[..., 2] / fy
    xyz[..., 2] = uvd[..., 2]
    return xyz


def xyz_to_uvd(xyz: np.ndarray, fx: float, fy: float, u0: float, v0: float) -> np.ndarray:
    """The inverse of :func:`uvd_to_xyz`."""
    xyz = np.asarray(xyz, dtype=np.float64)
    uvd = np.empty_like(xyz)
    uvd[..., 0] = xyz[..., 0] * fx / xyz[..., 2] + u0
    uvd[..., 1] = xyz[..., 1] * fy / xyz[..., 2] + v0
    uvd[..., 2] = xyz[..., 2]
    return uvd


def depth_crop_to_frame(joints_crop: torch.Tensor, crop_to_image: torch.Tensor, center: torch.Tensor,
                        depth_scale: torch.Tensor) -> torch.Tensor:
    """Depth-crop joints (N, K, 3) = (u_c, v_c, dz) -> frame uvd, batched: each
    crop's inverse affine ``crop_to_image`` (N, 2, 3) on (u_c, v_c), and
    d = dz * depth_scale (N,) + the centre's depth ``center[:, 2]`` (the crops
    of ``datasets.nyu``, A2J's and AWR's)."""
    joints_crop = joints_crop.to(crop_to_image.dtype)
    uv = joints_crop[..., :2] @ crop_to_image[:, :, :2].transpose(1, 2) + crop_to_image[:, None, :, 2]
    d = joints_crop[..., 2] * depth_scale.reshape(-1, 1).to(uv.dtype) + center[:, 2:3].to(uv.dtype)
    return torch.cat([uv, d.unsqueeze(-1)], dim=-1)
