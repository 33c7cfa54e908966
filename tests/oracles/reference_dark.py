"""Plain per-joint loop versions of the DARK codec (``dark.py``), written the
way DarkPose does it. The tests use them as the oracle and ``tools/benchmark.py``
as the baseline; the library never calls them. Unlike DarkPose's
``gaussian_blur``, nothing here modifies its input."""
from __future__ import annotations

import cv2
import numpy as np

from posezoo.utils.transforms import affine_transform, get_affine_transform


def gaussian_blur_loop(heatmaps, kernel):
    """Each map zero-padded by (kernel-1)//2, cv2-blurred in double, cut back
    and rescaled to its original maximum. Returns a new array."""
    hm = heatmaps.copy()
    border = (kernel - 1) // 2
    batch_size, num_joints, height, width = hm.shape
    for i in range(batch_size):
        for j in range(num_joints):
            origin_max = np.max(hm[i, j])
            padded = np.zeros((height + 2 * border, width + 2 * border))
            padded[border:border + height, border:border + width] = hm[i, j]
            padded = cv2.GaussianBlur(padded, (kernel, kernel), 0)
            hm[i, j] = padded[border:border + height, border:border + width]
            with np.errstate(invalid="ignore"):  # a flat zero map gives 0/0 = NaN, as officially
                hm[i, j] *= origin_max / np.max(hm[i, j])
    return hm


def taylor_loop(hm, coord):
    """Newton step on one log heatmap at the integer location ``coord``."""
    height, width = hm.shape
    px, py = int(coord[0]), int(coord[1])
    coord = np.asarray(coord, dtype=np.float64).copy()
    if 1 < px < width - 2 and 1 < py < height - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
        if dxx * dyy - dxy ** 2 != 0:
            hessian = np.array([[dxx, dxy], [dxy, dyy]], dtype=np.float64)
            gradient = np.array([dx, dy], dtype=np.float64)
            coord += -np.linalg.inv(hessian) @ gradient
    return coord


def get_final_preds_dark_loop(batch_heatmaps, center, scale, blur_kernel=11):
    """numpy heatmaps (N, K, H, W) -> image preds (N, K, 2), maxvals (N, K, 1)."""
    n, k, h, w = batch_heatmaps.shape
    coords = np.zeros((n, k, 2))
    maxvals = np.zeros((n, k, 1), dtype=batch_heatmaps.dtype)
    for i in range(n):
        for p in range(k):
            hm = batch_heatmaps[i, p]
            idx = int(np.argmax(hm))
            maxvals[i, p, 0] = hm.reshape(-1)[idx]
            if maxvals[i, p, 0] > 0:
                coords[i, p] = [idx % w, idx // w]
    modulated = np.maximum(gaussian_blur_loop(batch_heatmaps, blur_kernel), np.float32(1e-10))
    log_maps = np.log(modulated)  # DarkPose: numpy's log in the maps' precision
    preds = np.zeros((n, k, 2))
    for i in range(n):
        # DarkPose's transform: HRNet's with one pixel off the box and the output
        trans = get_affine_transform(center[i], scale[i], 0, (w, h), inv=True, margin=1)
        for p in range(k):
            coords[i, p] = taylor_loop(log_maps[i, p], coords[i, p])
            preds[i, p] = affine_transform(coords[i, p], trans)
    return preds, maxvals


def generate_target_dark_loop(joints_heatmap, joints_vis, heatmap_size, sigma):
    """DarkPose's unbiased target from joints already in heatmap pixels (K, >=2)."""
    num_joints = len(joints_heatmap)
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis[:, 0]
    target = np.zeros((num_joints, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    tmp_size = sigma * 3
    x = np.arange(0, heatmap_size[0], 1, np.float32)
    y = np.arange(0, heatmap_size[1], 1, np.float32)[:, np.newaxis]
    for joint_id in range(num_joints):
        mu_x = np.float32(joints_heatmap[joint_id][0])
        mu_y = np.float32(joints_heatmap[joint_id][1])
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            target_weight[joint_id] = 0
        if target_weight[joint_id] > 0.5:
            target[joint_id] = np.exp(-((x - mu_x) ** 2 + (y - mu_y) ** 2) / (2 * sigma ** 2))
    return target, target_weight
