"""Megvii's heatmaps (CPN, MSPN, RSN; ``MODEL.TARGET_TYPE: megvii``): one
target per model output, the test flow of their ``test.py``.

- Encode (MSPN ``dataset/JointsDataset.py:216-233``; pytorch-cpn
  ``dataloader/mscocoMulti.py:181-190``): the joint goes to heatmap units
  (``x * W / input_w``), a 1 at the truncated cell, ``cv2.GaussianBlur((k, k),
  0)`` with each output's kernel (``MODEL.TARGET_KERNELS``), rescaled to a peak
  of 255. Joints that are unlabelled or outside the crop get an all-zero map
  and weight 0. ``encode`` returns a list with one target per output.
- Loss (MSPN ``network.py:329-354`` with ``lib/utils/loss.py:9-47``; pytorch-cpn
  ``train.py:86-128``): per output, plain L2 ``mean((pred - gt * [v > 1])^2)``
  over every joint, the target kept only for joints annotated *visible* (COCO
  ``v = 2``; MSPN's MPII reader doubles its flags, so there every labelled one),
  or OHKM for the outputs in ``LOSS.OHKM_OUTPUTS``: per-joint pixel means,
  masked by labelled (``w > 0``), the mean of the top ``LOSS.TOPK`` per sample,
  batch mean; times ``LOSS.OUTPUT_WEIGHTS``, summed. The visibility mask is
  applied in ``encode`` (``visible``, from the dataset: ``Codec.reads_visibility``)
  to the plain outputs' targets, so the loss only sees the weight.
- Flip: mirror and swap pairs, no pixel shift (``lib/utils/transforms.py:59-67``).
- Decode (MSPN ``exps/*/test.py:25-71``; pytorch-cpn ``test.py:90-121``):
  optionally divide each map by its max (CPN, ``TEST.NORMALIZE_HEATMAP``), pad a
  10-pixel zero border, ``GaussianBlur((k, k), 0)`` with k = ``TEST.BLUR_KERNEL``
  (cv2's default reflect-101 border included), take the argmax, zero it, move
  0.25 px towards the second maximum (unit vector), clip to the map; the crop
  point is ``stride * (x + 0.5)``. Score: the raw map at the rounded point,
  ``/ 255 + 0.5``. All in torch, batched over crops and joints.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.transforms import crop_to_image, flip_back, get_affine_transform
from .base import Codec, Metric, last_stage
from .gaussian import heatmap_accuracy

BORDER = 10
SHIFT = 0.25
PEAK = 255.0


def blur_kernel(k: int) -> np.ndarray:
    """cv2's 1-D Gaussian for ``GaussianBlur((k, k), 0)`` (its fixed tables for
    k <= 7, sigma = 0.3 ((k - 1) / 2 - 1) + 0.8 beyond)."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"blur kernel {k}: expected an odd size >= 1")
    return cv2.getGaussianKernel(k, 0).ravel()


def gaussian_blur(maps: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.GaussianBlur(m, (k, k), 0)`` of every (H, W) map of (N, K, H, W),
    with cv2's default border (reflect-101)."""
    n, c, h, w = maps.shape
    r = k // 2
    g = torch.as_tensor(blur_kernel(k), dtype=maps.dtype, device=maps.device)
    x = maps.reshape(n * c, 1, h, w)
    if r:
        x = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, k)), g.view(1, 1, k, 1))
    return x.reshape(n, c, h, w)


def megvii_peaks(heatmaps: torch.Tensor, kernel: int, normalize: bool = False) -> torch.Tensor:
    """The official quarter-offset towards the second maximum: (N, K, H, W) ->
    (N, K, 2) heatmap coordinates (x, y), clipped to the map."""
    n, k, h, w = heatmaps.shape
    maps = heatmaps.double() if heatmaps.device.type != "mps" else heatmaps.float()
    if normalize:
        maps = maps / maps.amax(dim=(2, 3), keepdim=True)
    padded = gaussian_blur(F.pad(maps, (BORDER,) * 4), kernel).reshape(n, k, -1)
    pw = w + 2 * BORDER
    first = padded.argmax(dim=2, keepdim=True)
    second = padded.scatter(2, first, 0.0).argmax(dim=2, keepdim=True)

    def xy(idx: torch.Tensor) -> torch.Tensor:
        return torch.cat([idx % pw, torch.div(idx, pw, rounding_mode="floor")], dim=2).to(maps.dtype)

    peak, towards = xy(first), xy(second)
    delta = towards - peak
    length = delta.norm(dim=2, keepdim=True)
    step = torch.where(length > 1e-3, SHIFT * delta / length.clamp_min(1e-3), torch.zeros_like(delta))
    coords = peak - BORDER + step
    upper = torch.tensor([w - 1, h - 1], dtype=maps.dtype, device=maps.device)
    return torch.minimum(coords.clamp_min(0), upper)


class MegviiHeatmapCodec(Codec):
    """``image_size`` and ``heatmap_size`` are (width, height); ``kernels`` has
    one target kernel per model output."""

    reads_visibility = True

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], kernels: Sequence[int],
                 blur: int = 5, normalize: bool = False, ohkm_outputs: Sequence[int] = ()):
        if not kernels:
            raise ValueError("MODEL.TARGET_TYPE megvii needs MODEL.TARGET_KERNELS: one Gaussian kernel per model "
                             "output, e.g. [15, 11, 9, 7, 11, 9, 7, 5] for a 2-stage MSPN")
        for k in list(kernels) + [blur]:
            blur_kernel(int(k))
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.kernels = [int(k) for k in kernels]
        self.blur = int(blur)
        #: outputs whose L2 keeps the target of visible joints only (not the OHKM ones)
        self.visible_only = [i not in {j % len(self.kernels) for j in ohkm_outputs} for i in range(len(self.kernels))]
        self.normalize = normalize

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """The image -> crop affine (the same as MSPN's ``get_affine_transform``)."""
        return get_affine_transform(center, scale, rotation, output_size)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray, visible: np.ndarray | None = None, **sample
               ) -> tuple[list[np.ndarray], np.ndarray]:
        """Crop-pixel joints (K, >=2), labelled flags (K, >=1) and visible flags (K,)
        -> one (K, H, W) float32 target per output and the weight (K, 1). A plain-L2
        output's target is zero for a joint that is labelled but not visible (without
        ``visible``, every labelled joint counts as visible)."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        iw, ih = self.image_size
        num = len(joints)
        inside = (joints[:, 0] >= 0) & (joints[:, 0] <= iw - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= ih - 1)
        weight = ((np.asarray(joints_vis)[:, 0] > 0) & inside).astype(np.float32)[:, None]
        xs = (joints[:, 0] * w / iw).astype(np.int64).clip(0, w - 1)
        ys = (joints[:, 1] * h / ih).astype(np.int64).clip(0, h - 1)
        impulse = np.zeros((h, w, num), np.float32)
        on = np.flatnonzero(weight[:, 0])
        impulse[ys[on], xs[on], on] = 1
        targets = {}
        for k in sorted(set(self.kernels)):
            maps = cv2.GaussianBlur(impulse, (k, k), 0).reshape(h, w, num).transpose(2, 0, 1)
            peak = maps.max(axis=(1, 2), keepdims=True)
            targets[k] = np.where(peak > 1e-8, maps / np.maximum(peak, 1e-8) * PEAK, 0).astype(np.float32)
        hidden = np.zeros(num, bool) if visible is None else ~np.asarray(visible, dtype=bool)
        shown = np.where(hidden, 0, 1).astype(np.float32)[:, None, None]
        return [targets[k] * shown if plain else targets[k]
                for k, plain in zip(self.kernels, self.visible_only)], weight

    def decode(self, output, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps = last_stage(output).detach()
        n, k, h, w = heatmaps.shape
        coords = megvii_peaks(heatmaps, self.blur, self.normalize)
        idx = (torch.round(coords[..., 1]).long() * w + torch.round(coords[..., 0]).long()).unsqueeze(2)
        scores = heatmaps.reshape(n, k, -1).gather(2, idx) / PEAK + 0.5
        preds = crop_to_image(coords + 0.5, meta["center"].to(heatmaps.device), meta["scale"].to(heatmaps.device),
                              (w, h))
        return preds, scores

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        return flip_back(output_flipped, flip_pairs, shift=False)

    def loss(self, cfg) -> nn.Module:
        return MultiOutputL2Loss(len(self.kernels), cfg.LOSS.OUTPUT_WEIGHTS, cfg.LOSS.OHKM_OUTPUTS, cfg.LOSS.TOPK)

    def train_metrics(self, outputs, target) -> dict[str, Metric]:
        _, avg, cnt = heatmap_accuracy(last_stage(outputs).detach(), last_stage(target))
        return {"acc": (avg, cnt)}

    def heatmaps(self, outputs) -> torch.Tensor:
        return last_stage(outputs) / PEAK


class MultiOutputL2Loss(nn.Module):
    """Sum over outputs of weight_i * L2_i (plain or OHKM, see the module doc)."""

    all_stages = True  # core.strategy.stage_loss passes every output and target at once

    def __init__(self, num_outputs: int, weights: Sequence[float] = (), ohkm: Sequence[int] = (), topk: int = 8):
        super().__init__()
        weights = list(weights) or [1.0] * num_outputs
        if len(weights) != num_outputs:
            raise ValueError(f"LOSS.OUTPUT_WEIGHTS has {len(weights)} entries for {num_outputs} outputs "
                             f"(MODEL.TARGET_KERNELS)")
        bad = [i for i in ohkm if not -num_outputs <= i < num_outputs]
        if bad:
            raise ValueError(f"LOSS.OHKM_OUTPUTS: output {bad[0]} does not exist ({num_outputs} outputs)")
        self.weights = [float(x) for x in weights]
        self.ohkm = {i % num_outputs for i in ohkm}
        self.topk = int(topk)

    def forward(self, outputs, targets, target_weight: torch.Tensor) -> torch.Tensor:
        """Every output against its target (training); a single tensor and
        target (the test-time last output, ``core.inference.predict``) is
        scored by the last output's rule (its weight, OHKM or plain)."""
        indices = range(len(self.weights))
        if not isinstance(outputs, (list, tuple)) and not isinstance(targets, (list, tuple)):
            outputs, targets, indices = [outputs], [targets], [len(self.weights) - 1]
        elif not isinstance(outputs, (list, tuple)) or len(outputs) != len(self.weights) \
                or len(targets) != len(self.weights):
            count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
            raise ValueError(f"megvii loss: {count} outputs and {len(targets)} targets, expected "
                             f"{len(self.weights)} (one per MODEL.TARGET_KERNELS entry)")
        labelled = (target_weight.reshape(target_weight.shape[0], -1, 1) > 0).to(outputs[0].dtype)
        total = outputs[0].new_zeros(())
        for i, pred, gt in zip(indices, outputs, targets):
            weight = self.weights[i]
            n, k = pred.shape[:2]
            pred, gt = pred.reshape(n, k, -1), gt.reshape(n, k, -1)
            if i in self.ohkm:
                if self.topk > k:
                    raise ValueError(f"LOSS.TOPK = {self.topk} exceeds the number of joints ({k})")
                per_joint = (pred - gt).pow(2).mean(2) * labelled[..., 0]
                loss = per_joint.topk(self.topk, dim=1).values.mean()
            else:
                loss = (pred - gt * labelled).pow(2).mean()
            total = total + weight * loss
        return total


def get_codec(cfg) -> MegviiHeatmapCodec:
    return MegviiHeatmapCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.TARGET_KERNELS,
                              cfg.TEST.BLUR_KERNEL or 5, cfg.TEST.NORMALIZE_HEATMAP, cfg.LOSS.OHKM_OUTPUTS)
