"""Straightforward per-joint loop versions of the UDP codec, organised the way
UDP-Pose's code does it (numpy + OpenCV, one crop and one joint at a time).
They are the oracle for ``tests/codecs/test_codec_udp.py`` and the baseline that decode
speedups are measured against; the library never calls them."""
from __future__ import annotations

import math

import cv2
import numpy as np


def udp_warp_matrix_loop(theta, size_input, size_dst, size_target):
    """Crop -> image matrix (used with ``WARP_INVERSE_MAP``), as UDP-Pose builds
    it: rotation `theta` in degrees, ``size_input`` = 2 * center,
    ``size_dst`` = crop size - 1, ``size_target`` = scale (box / 200)."""
    box_w, box_h = float(size_target[0]) * 200.0, float(size_target[1]) * 200.0
    rad = theta / 180.0 * math.pi
    zoom_x, zoom_y = box_w / size_dst[0], box_h / size_dst[1]
    m = np.zeros((2, 3), dtype=np.float32)
    m[0] = [math.cos(rad) * zoom_x, math.sin(rad) * zoom_y,
            -0.5 * box_w * math.cos(rad) - 0.5 * box_h * math.sin(rad) + 0.5 * size_input[0]]
    m[1] = [-math.sin(rad) * zoom_x, math.cos(rad) * zoom_y,
            0.5 * box_w * math.sin(rad) - 0.5 * box_h * math.cos(rad) + 0.5 * size_input[1]]
    return m


def udp_points_to_crop_loop(points, theta, center, crop_size, scale):
    """Image points -> crop pixels one point at a time (UDP-Pose's ``rotate_points``)."""
    box_w, box_h = float(scale[0]) * 200.0, float(scale[1]) * 200.0
    rad = theta / 180.0 * math.pi
    out = np.zeros((len(points), 2), dtype=np.float64)
    for i, (x, y) in enumerate(np.asarray(points, dtype=np.float64)[:, :2]):
        dx, dy = x - center[0], y - center[1]
        rx = math.cos(rad) * dx - math.sin(rad) * dy
        ry = math.sin(rad) * dx + math.cos(rad) * dy
        out[i, 0] = (rx + box_w * 0.5) * (crop_size[0] - 1.0) / box_w
        out[i, 1] = (ry + box_h * 0.5) * (crop_size[1] - 1.0) / box_h
    return out


def udp_transform_preds_loop(coords, center, scale, output_size):
    """Heatmap coordinates (K, 2) of one crop -> image (UDP's ``transform_preds``)."""
    box_w, box_h = float(scale[0]) * 200.0, float(scale[1]) * 200.0
    out = np.zeros((len(coords), 2))
    for p in range(len(coords)):
        out[p, 0] = coords[p][0] * box_w / (output_size[0] - 1.0) + center[0] - box_w * 0.5
        out[p, 1] = coords[p][1] * box_h / (output_size[1] - 1.0) + center[1] - box_h * 0.5
    return out


def generate_udp_gaussian_loop(joints, joints_vis, image_size, heatmap_size, sigma):
    num_joints = len(joints)
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis[:, 0]
    target = np.zeros((num_joints, heatmap_size[1], heatmap_size[0]), dtype=np.float32)
    tmp_size = sigma * 3
    stride = (np.asarray(image_size, np.float64) - 1.0) / (np.asarray(heatmap_size, np.float64) - 1.0)
    for j in range(num_joints):
        fx, fy = float(joints[j][0]) / stride[0], float(joints[j][1]) / stride[1]
        mu_x, mu_y = int(fx + 0.5), int(fy + 0.5)
        ul = [int(mu_x - tmp_size), int(mu_y - tmp_size)]
        br = [int(mu_x + tmp_size + 1), int(mu_y + tmp_size + 1)]
        if ul[0] >= heatmap_size[0] or ul[1] >= heatmap_size[1] or br[0] < 0 or br[1] < 0:
            target_weight[j] = 0
            continue
        size = 2 * tmp_size + 1
        xs = np.arange(0, size, 1, np.float64)
        ys = xs[:, None]
        x0 = size // 2 + (fx - mu_x)
        y0 = size // 2 + (fy - mu_y)
        g = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2))
        gx0, gx1 = max(0, -ul[0]), min(br[0], heatmap_size[0]) - ul[0]
        gy0, gy1 = max(0, -ul[1]), min(br[1], heatmap_size[1]) - ul[1]
        ix0, ix1 = max(0, ul[0]), min(br[0], heatmap_size[0])
        iy0, iy1 = max(0, ul[1]), min(br[1], heatmap_size[1])
        if target_weight[j] > 0.5:
            target[j][iy0:iy1, ix0:ix1] = g[gy0:gy1, gx0:gx1]
    return target, target_weight


def generate_udp_offset_loop(joints, joints_vis, image_size, heatmap_size, kpd):
    """(3K, H, W) target, channel 3k = classification disk, 3k+1/3k+2 = x/y offsets / kpd."""
    num_joints = len(joints)
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    target_weight = np.ones((num_joints, 1), dtype=np.float32)
    target_weight[:, 0] = joints_vis[:, 0]
    target = np.zeros((num_joints, 3, h, w), dtype=np.float32)
    stride = (np.asarray(image_size, np.float64) - 1.0) / (np.asarray(heatmap_size, np.float64) - 1.0)
    for j in range(num_joints):
        if target_weight[j] <= 0.5:
            continue
        mu_x, mu_y = float(joints[j][0]) / stride[0], float(joints[j][1]) / stride[1]
        for y in range(h):
            for x in range(w):
                ox, oy = (mu_x - x) / kpd, (mu_y - y) / kpd
                if ox * ox + oy * oy <= 1:
                    target[j, 0, y, x] = 1
                    target[j, 1, y, x] = ox
                    target[j, 2, y, x] = oy
    return target.reshape(3 * num_joints, h, w), target_weight


def _argmax_loop(maps):
    """(N, K, H, W) -> integer (x, y) (N, K, 2) float32 and maxima (N, K, 1);
    (0, 0) where the maximum is not positive."""
    n, k, _, w = maps.shape
    coords = np.zeros((n, k, 2), dtype=np.float32)
    maxvals = np.zeros((n, k, 1), dtype=maps.dtype)
    for i in range(n):
        for p in range(k):
            idx = int(np.argmax(maps[i, p]))
            maxvals[i, p, 0] = maps[i, p].reshape(-1)[idx]
            if maxvals[i, p, 0] > 0:
                coords[i, p] = [idx % w, idx // w]
    return coords, maxvals


def _taylor_loop(coords, heatmaps, maxvals):
    n, k, h, w = heatmaps.shape
    res = np.zeros((n, k, 2))
    for i in range(n):
        for p in range(k):
            hm = cv2.GaussianBlur(heatmaps[i, p], (7, 7), 0)
            lo, hi = hm.min(), hm.max()
            hm = np.log(np.clip((hm - lo) / (hi - lo) * maxvals[i, p, 0], 0.001, 50)).astype(np.float64)
            x, y = int(coords[i, p, 0]), int(coords[i, p, 1])

            def at(yy, xx, hm=hm):  # the log map with its edge pixels repeated outside
                return hm[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]

            c = at(y, x)
            grad = np.array([0.5 * (at(y, x + 1) - at(y, x - 1)), 0.5 * (at(y + 1, x) - at(y - 1, x))])
            dxx = at(y, x + 1) - 2 * c + at(y, x - 1)
            dyy = at(y + 1, x) - 2 * c + at(y - 1, x)
            dxy = 0.5 * (at(y + 1, x + 1) - at(y, x + 1) - at(y + 1, x) + 2 * c - at(y, x - 1) - at(y - 1, x)
                         + at(y - 1, x - 1))
            try:
                inv = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]))
            except np.linalg.LinAlgError:
                inv = np.zeros((2, 2))
            shift = inv @ grad
            res[i, p] = coords[i, p] - (shift if np.all(np.isfinite(shift)) else 0)
    return res


def get_final_preds_udp_loop(batch_heatmaps, center, scale, post_process=True):
    """UDP Gaussian decode: numpy heatmaps (N, K, H, W) -> preds (N, K, 2), maxvals (N, K, 1)."""
    n, _, h, w = batch_heatmaps.shape
    coords, maxvals = _argmax_loop(batch_heatmaps)
    if post_process:
        coords = _taylor_loop(coords, batch_heatmaps, maxvals)
    preds = np.stack([udp_transform_preds_loop(coords[i], center[i], scale[i], (w, h)) for i in range(n)])
    return preds, maxvals


def get_final_preds_offset_loop(net_output, center, scale, kpd):
    """UDP offset decode: numpy output (N, 3K, H, W) -> preds (N, K, 2), maxvals (N, K, 1)."""
    n, c, h, w = net_output.shape
    k = c // 3
    cls = np.zeros((n, k, h, w), dtype=net_output.dtype)
    off = np.zeros((n, k, 2, h, w), dtype=net_output.dtype)
    for i in range(n):
        for p in range(k):
            cls[i, p] = cv2.GaussianBlur(net_output[i, 3 * p], (15, 15), 0)
            off[i, p, 0] = cv2.GaussianBlur(net_output[i, 3 * p + 1] * kpd, (7, 7), 0)
            off[i, p, 1] = cv2.GaussianBlur(net_output[i, 3 * p + 2] * kpd, (7, 7), 0)
    coords, maxvals = _argmax_loop(cls)
    coords = coords.astype(np.float64)
    for i in range(n):
        for p in range(k):
            x, y = int(coords[i, p, 0]), int(coords[i, p, 1])
            coords[i, p] += off[i, p, :, y, x]
    preds = np.stack([udp_transform_preds_loop(coords[i], center[i], scale[i], (w, h)) for i in range(n)])
    return preds, maxvals


def flip_back_offset_loop(output_flipped, flip_pairs):
    """numpy (N, 3K, H, W) of a mirrored crop -> back: mirror, negate x offsets, swap pairs."""
    out = output_flipped[:, :, :, ::-1].copy()
    k = out.shape[1] // 3
    for p in range(k):
        out[:, 3 * p + 1] = -out[:, 3 * p + 1]
    for a, b in flip_pairs:
        tmp = out[:, 3 * a:3 * a + 3].copy()
        out[:, 3 * a:3 * a + 3] = out[:, 3 * b:3 * b + 3]
        out[:, 3 * b:3 * b + 3] = tmp
    return out
