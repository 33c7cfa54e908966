"""The volumetric loss written out per sample, joint and pair (numpy / python
floats), as docs/volumetric.md states it: the oracle of ``VolumetricLoss`` for
single datasets (tests/models/test_volumetric.py) and DATASET.MIX batches
(tests/datasets/test_mixed.py)."""
from __future__ import annotations

import math

import numpy as np
import torch


def direct_volume_loss(output: torch.Tensor, target: dict, weight: torch.Tensor) -> float:
    """mean_{n,k} of w^2 mean (V - G)^2 where the joint has depth, else w^2 mean (max_d V - G2d)^2."""
    k_joints = target["heatmap"].shape[1]
    out = output.double().numpy().reshape(output.shape[0], k_joints, -1, *output.shape[2:])
    gt = target["volume"].double().numpy().reshape(out.shape)
    hm, dw, w = target["heatmap"].double().numpy(), target["depth_weight"].numpy(), weight.numpy()[..., 0]
    total = 0.0
    for n in range(out.shape[0]):
        for k in range(k_joints):
            if dw[n, k]:
                total += w[n, k] ** 2 * np.mean((out[n, k] - gt[n, k]) ** 2)
            else:
                total += w[n, k] ** 2 * np.mean((out[n, k].max(axis=0) - hm[n, k]) ** 2)
    return total / (out.shape[0] * k_joints)


def direct_ordinal(z, codes) -> float:
    """Mean over the known pairs i < j of Eq. 2 (python floats)."""
    terms = []
    for i in range(len(z)):
        for j in range(i + 1, len(z)):
            r = codes[i][j]
            if r == 1:
                terms.append(math.log1p(math.exp(z[i] - z[j])))
            elif r == -1:
                terms.append(math.log1p(math.exp(z[j] - z[i])))
            elif r == 0:
                terms.append((z[i] - z[j]) ** 2)
    return sum(terms) / len(terms) if terms else 0.0


def soft_depth(volume: torch.Tensor, beta: float, grid: int = 64, scale: float = 10.0) -> list:
    """The ranking depth of each joint of one (K, D, H, W) volume: the expected
    bin under softmax(beta V), in ``scale`` units per bin of the ``grid``-bin range."""
    k_joints, d = volume.shape[:2]
    probs = torch.softmax(volume.double().reshape(k_joints, -1) * beta, 1).reshape(volume.shape)
    bins = (probs.sum(dim=(2, 3)) * torch.arange(float(d), dtype=torch.float64)).sum(1)
    return ((bins + 0.5) * grid / d * scale).tolist()
