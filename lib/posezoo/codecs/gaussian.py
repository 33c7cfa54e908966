"""MSRA Gaussian heatmaps (Tompson et al. 2014; SimpleBaseline/HRNet's
``TARGET_TYPE: gaussian``).

Encode: a Gaussian of std SIGMA at the joint rounded to the heatmap grid,
truncated to 3 sigma. Decode: argmax, a quarter-pixel step towards the higher
neighbour (``TEST.POST_PROCESS``), then the inverse crop transform. Both give the
official numbers; encode is vectorised over joints and decode over batch and
joints, in torch on the heatmaps' device.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..utils.transforms import crop_to_image, flip_back, get_affine_transform
from .base import Codec, Metric, last_stage, single_threaded_on_cpu


def argmax_rows(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, P) -> the maximum of each row (M,) and the index of its first
    occurrence (M,) int64, as ``np.amax``/``np.argmax`` in the official
    ``get_max_preds`` (NaN counts as the maximum in both).

    This is the one full read of the maps every heatmap decode needs. On CPU it
    is numpy's SIMD argmax on the tensor's own memory: torch's CPU
    max-with-index is not vectorised and runs ~6x slower (about 14k against 90k
    crops/s of 17 x 64 x 48 maps here). Elsewhere, and while tracing or
    compiling (export), it is ``torch.max``. The values are gathered from
    ``flat``, so they keep its autograd history as ``torch.max``'s do."""
    if (not torch.jit.is_tracing() and not torch.compiler.is_compiling() and flat.device.type == "cpu"
            and flat.dtype in (torch.float32, torch.float64) and flat.shape[1] > 0):
        idx = torch.from_numpy(flat.detach().numpy().argmax(axis=1)).to(torch.int64)
        return flat.gather(1, idx.unsqueeze(1)).squeeze(1), idx
    return flat.max(dim=1)


def get_max_preds(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax (x, y) of each (N, K, H, W) heatmap and its value; joints
    whose maximum is not positive get (0, 0), as in the official code."""
    n, k, _, w = heatmaps.shape
    maxvals, idx = argmax_rows(heatmaps.reshape(n * k, -1))
    maxvals, idx = maxvals.reshape(n, k), idx.reshape(n, k)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=2).to(heatmaps.dtype)
    return coords * (maxvals > 0).unsqueeze(2), maxvals.unsqueeze(2)


def quarter_offset(heatmaps: torch.Tensor, coords: torch.Tensor, first: int = 2) -> torch.Tensor:
    """Move each argmax 0.25 px towards its higher neighbour along x and y (none on a
    tie), where the peak lies in [first, size - 2]: two pixels inside the map in the
    official ``get_final_preds``, one in bearpaw's ``final_preds`` (``first=1``)."""
    n, k, h, w = heatmaps.shape
    px = torch.floor(coords[..., 0] + 0.5).long()
    py = torch.floor(coords[..., 1] + 0.5).long()
    inside = (px >= first) & (px < w - 1) & (py >= first) & (py < h - 1)
    flat = heatmaps.reshape(n, k, h * w)
    pxc, pyc = px.clamp(1, w - 2), py.clamp(1, h - 2)

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (y * w + x).unsqueeze(2)).squeeze(2)

    diff = torch.stack([at(pyc, pxc + 1) - at(pyc, pxc - 1), at(pyc + 1, pxc) - at(pyc - 1, pxc)], dim=2)
    return coords + torch.sign(diff).to(coords.dtype) * 0.25 * inside.unsqueeze(2)


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, thr: float = 0.5
                     ) -> tuple[torch.Tensor, float, int]:
    """Training-time accuracy on heatmaps (the official ``accuracy``): per-joint
    PCK of the argmax locations (-1 where no joint is labelled), their mean over
    the joints that have one, and how many such joints there are.

    As in the official code, a joint counts when both target argmax coordinates
    are > 1, and distances are normalised by (H/10, W/10) applied to (x, y)."""
    _, _, h, w = output.shape
    pred, _ = get_max_preds(output.detach().float())
    gt, _ = get_max_preds(target.detach().float())
    norm = torch.tensor([h, w], dtype=pred.dtype, device=pred.device) / 10
    labelled = (gt[..., 0] > 1) & (gt[..., 1] > 1)
    dist = torch.linalg.norm(pred / norm - gt / norm, dim=2)
    hits = ((dist < thr) & labelled).sum(0).to(pred.dtype)
    counts = labelled.sum(0)
    per_joint = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, -1.0))
    valid = per_joint >= 0
    cnt = int(valid.sum())
    avg = float(per_joint[valid].mean()) if cnt else 0.0
    return per_joint, avg, cnt


class HeatmapCodec(Codec):
    """What every per-joint heatmap codec shares (Gaussian, DARK, soft-argmax,
    UDP): the heatmap is the first of each joint's ``channels_per_joint``
    channels, the training log shows the official heatmap accuracy on it, and
    the loss is JointsMSELoss (JointsOHKMMSELoss with ``LOSS.USE_OHKM``)."""

    def heatmaps(self, outputs: Any) -> torch.Tensor:
        return last_stage(outputs)[:, ::self.channels_per_joint]

    def train_metrics(self, outputs: Any, target: torch.Tensor) -> dict[str, Metric]:
        _, avg, cnt = heatmap_accuracy(self.heatmaps(outputs), self.heatmaps(target))
        return {"acc": (avg, cnt)}

    def loss_name(self, cfg) -> str:
        return "JointsOHKMMSELoss" if cfg.LOSS.USE_OHKM else "JointsMSELoss"


class GaussianHeatmapCodec(HeatmapCodec):
    """``image_size`` and ``heatmap_size`` are (width, height)."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 post_process: bool = True, shift_heatmap: bool = True):
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.post_process = post_process
        self.shift_heatmap = shift_heatmap

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """Image -> crop affine matrix the dataset warps with (the official, biased geometry)."""
        return get_affine_transform(center, scale, rotation, output_size)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints in crop pixels (K, >=2) and visibility (K, >=1) -> target
        (K, H, W) float32 and target weight (K, 1) float32.

        Same arithmetic as the official ``generate_target``: centre
        ``int(x / stride + 0.5)`` (truncation towards zero), window
        [centre - 3 sigma, centre + 3 sigma], joints whose window lies outside
        the map get weight 0, invisible joints an all-zero map."""
        stride = self.image_size / self.heatmap_size
        mu = (joints[:, :2] / stride + 0.5).astype(np.int64)
        size = 2 * self.sigma * 3 + 1
        return self.draw(mu, joints_vis, self.sigma * 3, size, size // 2)

    def draw(self, mu: np.ndarray, joints_vis: np.ndarray, tmp_size: float, size: float, centre: float,
             dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Integer heatmap positions (K, 2) -> (target, weight) as ``encode`` returns them:
        ``g[i] = exp(-(i - centre)^2 / 2 sigma^2)``, i < ``len(arange(size))``, at pixel
        ``trunc(mu - tmp_size) + i`` up to ``trunc(mu + tmp_size + 1)``; weight 0 where that
        window misses the map, all-zero maps for weight 0 (the official ``generate_target``). ``g``
        is computed in ``dtype`` (HRNet float32; the hourglass releases float64) and stored as float32."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        g_len = len(np.arange(0, size, 1))
        weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        mu_x, mu_y = mu[:, 0], mu[:, 1]
        ul_x, ul_y = np.trunc(mu_x - tmp_size).astype(np.int64), np.trunc(mu_y - tmp_size).astype(np.int64)
        br_x, br_y = np.trunc(mu_x + tmp_size + 1).astype(np.int64), np.trunc(mu_y + tmp_size + 1).astype(np.int64)
        outside = (ul_x >= w) | (ul_y >= h) | (br_x < 0) | (br_y < 0)
        weight[outside] = 0

        # g[i] sits at pixel ul + i
        xs = np.arange(w)[None, :] - ul_x[:, None]  # (K, W) index into g
        ys = np.arange(h)[None, :] - ul_y[:, None]
        in_x = (xs >= 0) & (xs < np.minimum(br_x - ul_x, g_len)[:, None])
        in_y = (ys >= 0) & (ys < np.minimum(br_y - ul_y, g_len)[:, None])
        centre = dtype(centre)
        gx = (xs.astype(dtype) - centre) ** 2
        gy = (ys.astype(dtype) - centre) ** 2
        target = np.exp(-(gy[:, :, None] + gx[:, None, :]) / dtype(2 * self.sigma ** 2))
        mask = in_y[:, :, None] & in_x[:, None, :] & (weight[:, 0] > 0.5)[:, None, None]
        return np.where(mask, target, 0).astype(np.float32), weight

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + per-crop ``meta['center']``/``meta['scale']`` (N, 2)
        -> image coordinates (N, K, 2) float64 and scores (N, K, 1)."""
        center, scale = meta["center"], meta["scale"]
        heatmaps = output.detach()
        coords, maxvals = get_max_preds(heatmaps)
        if self.post_process:
            coords = quarter_offset(heatmaps, coords)
        dtype = torch.float32 if heatmaps.device.type == "mps" else torch.float64
        size = (int(heatmaps.shape[3]), int(heatmaps.shape[2]))
        preds = crop_to_image(coords.to(dtype), center.to(heatmaps.device), scale.to(heatmaps.device), size)
        return preds, maxvals

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Biased flip (x -> W-1-x on the crop), optionally undone by a one-pixel shift."""
        return flip_back(output_flipped, flip_pairs, shift=self.shift_heatmap)


def get_codec(cfg) -> GaussianHeatmapCodec:
    return GaussianHeatmapCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                                post_process=cfg.TEST.POST_PROCESS, shift_heatmap=cfg.TEST.SHIFT_HEATMAP)
