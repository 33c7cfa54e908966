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
and leaves its input untouched. With ``TEST.COMPILE`` it takes the expected
point of float32 CPU maps from posezoo's compiled kernel
(``codecs.compiled.soft_argmax``: one pass finds the maximum, the next sums only
the pixels within ``SOFT_ARGMAX_CUTOFF / beta`` of it, whose weights are all that
a float32 sum keeps; within 1e-5 px of the plain path). Where the point lies
within float32 rounding of a half pixel (a flat map's centre), the pixel the
score and the quarter step read is decided by rounding, in LPN's code too (its
float32 sum changes with the batch's BLAS path).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..utils.transforms import crop_to_image, flip_back
from . import compiled as compiled_kernels
from .base import single_threaded_on_cpu
from .gaussian import GaussianHeatmapCodec, HeatmapCodec, quarter_offset

LPN_BETA = 160.0
MAPS_PER_CHUNK = 256  # 3 MB of 64x48 float32 maps: the intermediates stay in cache


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


#: softmax arguments below this (after subtracting the map's maximum) are raised to it: their weights,
#: e^-80 ~ 2e-35 each, vanish against the maximum's 1 in float32, and the exponential of far lower
#: arguments takes the CPU's slow denormal path
LOG_WEIGHT_FLOOR = -80.0


def soft_argmax_fused(heatmaps: torch.Tensor, beta: float = LPN_BETA, maps_per_chunk: int = MAPS_PER_CHUNK
                      ) -> torch.Tensor:
    """``soft_argmax`` for decoding, (N, K, H, W) -> (N, K, 2): per chunk of
    maps one softmax (LPN's ``SoftArgmax2D`` op, in place of its softmax +
    two products + two reductions over full-size tensors) and one matrix
    product with the constant (2, H W) coordinate rows [x; y]. The chunk's
    shifted logits are the only full-size intermediate; they are clamped at
    ``LOG_WEIGHT_FLOOR``, which changes no float32 sum. Equal to
    ``soft_argmax`` within float32 rounding (~1e-5 px on 64x48 maps)."""
    n, k, h, w = heatmaps.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device),
                            torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device), indexing="ij")
    rows = torch.stack([xs.reshape(-1), ys.reshape(-1)])
    flat = heatmaps.reshape(n * k, h * w)
    coords = torch.empty(n * k, 2, dtype=heatmaps.dtype, device=heatmaps.device)
    for start in range(0, n * k, maps_per_chunk):
        logits = flat[start:start + maps_per_chunk].mul(beta)
        logits.sub_(logits.amax(dim=1, keepdim=True)).clamp_min_(LOG_WEIGHT_FLOOR)
        coords[start:start + maps_per_chunk] = torch.nn.functional.linear(torch.softmax(logits, dim=1), rows)
    return coords.reshape(n, k, 2)


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
                 post_process: bool = True, shift_heatmap: bool = True, beta: float = LPN_BETA, bias: float = 0.0,
                 compiled: bool = False, compiled_threads: int = 1):
        self.gaussian = GaussianHeatmapCodec(image_size, heatmap_size, sigma)
        self.post_process = post_process
        self.shift_heatmap = shift_heatmap
        self.beta = float(beta)
        self.bias = float(bias)
        self.compiled = bool(compiled)
        self.compiled_threads = int(compiled_threads)

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
        if self.compiled and compiled_kernels.usable(heatmaps, 1):
            flat = heatmaps.reshape(n * k, h, w)
            points, redo = compiled_kernels.soft_argmax(flat, self.beta, self.compiled_threads)
            todo = redo.nonzero()[:, 0]
            if todo.numel():  # NaN or infinite maps: the plain path
                points[todo] = soft_argmax_fused(flat[todo][None], self.beta)[0].to(points.dtype)
            coords = points.to(heatmaps.dtype).reshape(n, k, 2)
        else:
            coords = soft_argmax_fused(heatmaps, self.beta)
        maxvals = value_at_rounded(heatmaps, coords)
        if self.post_process:
            coords = quarter_offset(heatmaps, coords)
        dtype = torch.float32 if heatmaps.device.type == "mps" else torch.float64
        preds = crop_to_image(coords.to(dtype), center.to(heatmaps.device), scale.to(heatmaps.device), (w, h))
        return preds - self.bias, maxvals


def get_codec(cfg) -> SoftArgmaxCodec:
    return SoftArgmaxCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                           post_process=cfg.TEST.POST_PROCESS, shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
                           bias=cfg.TEST.BIAS, compiled=cfg.TEST.COMPILE)
