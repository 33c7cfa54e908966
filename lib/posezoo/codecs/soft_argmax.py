"""LPN's beta-soft-argmax decoding (Zhang et al., "Simple and Lightweight Human
Pose Estimation", 2019; code zhang943/lpn-pytorch). Chosen by
``MODEL.TARGET_TYPE: gaussian`` with ``TEST.SOFT_ARGMAX: true`` (LPN's YAMLs), or
by ``MODEL.TARGET_TYPE: soft_argmax``.

LPN changes only the decoding. Training uses HRNet's Gaussian target and
geometry, which this codec takes from ``GaussianHeatmapCodec``, and the flip
test uses HRNet's ``TEST.SHIFT_HEATMAP`` rule. The decode is LPN's
``get_final_preds_using_softargmax``:

1. Take the expected (x, y) under ``softmax(beta * heatmap)`` over each map,
   with beta = 160 (fixed in LPN's test code).
2. The score is the raw heatmap at that point rounded to the nearest pixel,
   with ties to even as in ``np.round``.
3. With ``TEST.POST_PROCESS``, apply the quarter-pixel step towards the higher
   neighbour (``quarter_offset``, as for the Gaussian codec).
4. Map back to the image with the inverse crop transform.
5. Subtract ``TEST.BIAS`` from both image coordinates. LPN's ``validate``
   applies it to every decoder; its default is 0.

``soft_argmax(heatmaps, beta)`` is differentiable, so a loss can supervise the
coordinates through it. ``decode`` is batched in torch on the heatmaps' device
and leaves its input untouched.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..utils.transforms import crop_to_image, flip_back
from .base import single_threaded_on_cpu
from .gaussian import GaussianHeatmapCodec, HeatmapCodec, quarter_offset

LPN_BETA = 160.0
MAPS_PER_CHUNK = 1024


def soft_argmax(heatmaps: torch.Tensor, beta: float = LPN_BETA) -> torch.Tensor:
    """(N, K, H, W) heatmaps -> (N, K, 2) expected (x, y) in heatmap pixels under
    ``softmax(beta * heatmaps)`` over each map. It is differentiable and works in
    the heatmaps' dtype with the same torch operations as LPN's ``SoftArgmax2D``,
    so its float32 numbers are LPN's."""
    n, k, h, w = heatmaps.shape
    probs = torch.softmax(heatmaps.reshape(n, k, h * w) * beta, dim=2).reshape(n, k, h, w)
    xs = torch.arange(w, dtype=probs.dtype, device=probs.device)
    ys = torch.arange(h, dtype=probs.dtype, device=probs.device)
    return torch.stack([(probs * xs).sum(dim=(2, 3)), (probs * ys[:, None]).sum(dim=(2, 3))], dim=2)


def value_at_rounded(heatmaps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(N, K, 1) heatmap values at ``coords`` (N, K, 2) rounded to the nearest
    pixel, with ties to even. Coordinates are clamped to the map."""
    n, k, h, w = heatmaps.shape
    x = torch.round(coords[..., 0]).long().clamp(0, w - 1)
    y = torch.round(coords[..., 1]).long().clamp(0, h - 1)
    return heatmaps.reshape(n, k, h * w).gather(2, (y * w + x).unsqueeze(2))


class SoftArgmaxCodec(HeatmapCodec):
    """LPN's decoding on top of the Gaussian codec's target and geometry.
    ``image_size`` and ``heatmap_size`` are (width, height)."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 post_process: bool = True, shift_heatmap: bool = True, beta: float = LPN_BETA, bias: float = 0.0):
        self.gaussian = GaussianHeatmapCodec(image_size, heatmap_size, sigma)
        self.post_process = post_process
        self.shift_heatmap = shift_heatmap
        self.beta = float(beta)
        self.bias = float(bias)

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """HRNet's image -> crop affine (the Gaussian codec's)."""
        return self.gaussian.crop_matrix(center, scale, rotation, output_size)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """HRNet's Gaussian target, on which LPN trains (the Gaussian codec's)."""
        return self.gaussian.encode(joints, joints_vis)

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """HRNet's rule: mirror back, swap pairs, shift one pixel with TEST.SHIFT_HEATMAP."""
        return flip_back(output_flipped, flip_pairs, shift=self.shift_heatmap)

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + per-crop ``meta['center']``/``meta['scale']`` (N, 2)
        -> image coordinates (N, K, 2) float64 (float32 on MPS) and scores (N, K, 1)."""
        center, scale = meta["center"], meta["scale"]
        heatmaps = output.detach()
        if heatmaps.dtype not in (torch.float32, torch.float64):
            heatmaps = heatmaps.float()  # LPN decodes in float32; beta * half-precision maps loses digits
        n, k, h, w = heatmaps.shape
        # map by map in chunks: the same numbers, without full-size intermediates (several times faster on CPU)
        chunks = heatmaps.reshape(n * k, 1, h, w).split(MAPS_PER_CHUNK)
        coords = torch.cat([soft_argmax(chunk, self.beta) for chunk in chunks]).reshape(n, k, 2)
        maxvals = value_at_rounded(heatmaps, coords)
        if self.post_process:
            coords = quarter_offset(heatmaps, coords)
        dtype = torch.float32 if heatmaps.device.type == "mps" else torch.float64
        preds = crop_to_image(coords.to(dtype), center.to(heatmaps.device), scale.to(heatmaps.device), (w, h))
        return preds - self.bias, maxvals


def get_codec(cfg) -> SoftArgmaxCodec:
    return SoftArgmaxCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                           post_process=cfg.TEST.POST_PROCESS, shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
                           bias=cfg.TEST.BIAS)
