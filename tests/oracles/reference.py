"""Straightforward per-joint loop versions of the Gaussian codec, written the way
the official SimpleBaseline/HRNet code does it. They are the oracle for the tests
and the baseline that ``tools/benchmark.py`` reports speedups against; the
library never calls them."""
from __future__ import annotations

import math

import numpy as np

from posezoo.utils.transforms import affine_transform, get_affine_transform


def generate_target_loop(joints, joints_vis, image_size, heatmap_size, sigma):
    num_joints = len(joints)
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis[:, 0]
    target = np.zeros((num_joints, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    tmp_size = sigma * 3
    for joint_id in range(num_joints):
        feat_stride = np.asarray(image_size) / np.asarray(heatmap_size)
        mu_x = int(joints[joint_id][0] / feat_stride[0] + 0.5)
        mu_y = int(joints[joint_id][1] / feat_stride[1] + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            target_weight[joint_id] = 0
            continue
        size = 2 * tmp_size + 1
        x = np.arange(0, size, 1, np.float32)
        y = x[:, np.newaxis]
        x0 = y0 = size // 2
        g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2))
        g_x = max(0, -ul[0]), min(br[0], heatmap_size[0]) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], heatmap_size[1]) - ul[1]
        img_x = max(0, ul[0]), min(br[0], heatmap_size[0])
        img_y = max(0, ul[1]), min(br[1], heatmap_size[1])
        if target_weight[joint_id] > 0.5:
            target[joint_id][img_y[0]:img_y[1], img_x[0]:img_x[1]] = g[g_y[0]:g_y[1], g_x[0]:g_x[1]]
    return target, target_weight


def get_final_preds_loop(batch_heatmaps, center, scale, post_process=True):
    """numpy heatmaps (N, K, H, W) -> preds (N, K, 2), maxvals (N, K, 1)."""
    n, k, h, w = batch_heatmaps.shape
    flat = batch_heatmaps.reshape(n, k, -1)
    idx = np.argmax(flat, 2).reshape(n, k, 1)
    maxvals = np.amax(flat, 2).reshape(n, k, 1)
    coords = np.tile(idx, (1, 1, 2)).astype(np.float32)
    coords[:, :, 0] = coords[:, :, 0] % w
    coords[:, :, 1] = np.floor(coords[:, :, 1] / w)
    coords *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    if post_process:
        for i in range(n):
            for p in range(k):
                hm = batch_heatmaps[i][p]
                px = int(math.floor(coords[i][p][0] + 0.5))
                py = int(math.floor(coords[i][p][1] + 0.5))
                if 1 < px < w - 1 and 1 < py < h - 1:
                    diff = np.array([hm[py][px + 1] - hm[py][px - 1], hm[py + 1][px] - hm[py - 1][px]])
                    coords[i][p] += np.sign(diff) * 0.25
    preds = np.zeros_like(coords, dtype=np.float64)
    for i in range(n):
        trans = get_affine_transform(center[i], scale[i], 0, (w, h), inv=True)
        for p in range(k):
            preds[i, p] = affine_transform(coords[i, p], trans)
    return preds, maxvals


def oks_iou_loop(g, d, area_g, area_d, sigmas, in_vis_thre=None):
    """OKS of one pose `g` (K*3 or (K, 3): x, y, score) against each pose in `d`
    ((M, K*3) or (M, K, 3)), one pose at a time. The kappa of joint k is
    2 * sigmas[k]; with `in_vis_thre`, only the joints whose score in the
    compared pose (`d`) is above it count, as in the official code (whose
    ``list(vg > t) and list(vd > t)`` always yields the second list)."""
    g = np.asarray(g).reshape(-1)
    d = np.asarray(d)
    d = d.reshape(d.shape[0], g.shape[0])
    kappa_sq = (np.asarray(sigmas) * 2) ** 2
    gx, gy = g[0::3], g[1::3]
    out = np.zeros(d.shape[0])
    for m in range(d.shape[0]):
        dx = d[m, 0::3] - gx
        dy = d[m, 1::3] - gy
        scale = (area_g + area_d[m]) / 2 + np.spacing(1)
        e = (dx ** 2 + dy ** 2) / kappa_sq / scale / 2
        if in_vis_thre is not None:
            e = e[d[m, 2::3] > in_vis_thre]
        if e.shape[0] == 0:
            out[m] = 0.0
        else:
            out[m] = np.sum(np.exp(-e)) / e.shape[0]
    return out


def oks_nms_loop(kpts, scores, areas, thresh, sigmas, in_vis_thre=None):
    """Greedy OKS NMS: visit the poses by decreasing score (``argsort()[::-1]``),
    keep the best remaining one and drop every remaining pose whose OKS with it
    is above `thresh`. Returns the kept indices in the order they were kept."""
    kpts = np.asarray(kpts)
    if kpts.shape[0] == 0:
        return []
    kpts = kpts.reshape(kpts.shape[0], -1)
    areas = np.asarray(areas)
    remaining = np.argsort(np.asarray(scores))[::-1]
    keep = []
    while remaining.shape[0] > 0:
        best, rest = remaining[0], remaining[1:]
        keep.append(int(best))
        oks = oks_iou_loop(kpts[best], kpts[rest], areas[best], areas[rest], sigmas, in_vis_thre)
        survivors = []
        for j in range(rest.shape[0]):
            if oks[j] <= thresh:
                survivors.append(rest[j])
        remaining = np.asarray(survivors, dtype=np.int64)
    return keep
