"""Heatmap losses. ``LOSS.NAME`` picks one by name (a key of ``LOSSES``) or by a
dotted module path exposing ``get_loss(cfg)``; empty means JointsMSELoss, or
JointsOHKMMSELoss when ``LOSS.USE_OHKM`` (a key the official train.py ignores),
or JointsOffsetMSELoss for UDP's ``MODEL.TARGET_TYPE: offset``."""
from __future__ import annotations

import torch
from torch import nn

from ..utils.registry import UnknownComponentError, import_dotted


def _weighted_sq_error(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None
                       ) -> torch.Tensor:
    """Per-pixel 0.5 * ((pred - gt) * w)^2, (N, K, H*W)."""
    n, k = output.shape[:2]
    diff = output.reshape(n, k, -1) - target.reshape(n, k, -1)
    if target_weight is not None:
        diff = diff * target_weight.reshape(n, k, 1)
    return 0.5 * diff.pow(2)


class JointsMSELoss(nn.Module):
    """0.5 * MSE between predicted and target heatmaps, each joint's map scaled by
    its target weight, averaged over joints. Equals the official per-joint loop
    (mean over batch and pixels per joint, summed, divided by K) in one reduction."""

    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        return _weighted_sq_error(output, target, target_weight if self.use_target_weight else None).mean()


class JointsOHKMMSELoss(nn.Module):
    """Online hard keypoint mining (Chen et al., CPN, CVPR 2018): per sample, the
    mean of the `topk` largest per-joint losses; averaged over the batch."""

    def __init__(self, use_target_weight: bool = True, topk: int = 8):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.topk = topk

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        per_joint = _weighted_sq_error(output, target, target_weight if self.use_target_weight else None).mean(2)
        if self.topk > per_joint.shape[1]:
            raise ValueError(f"LOSS.TOPK = {self.topk} exceeds the number of joints ({per_joint.shape[1]})")
        return per_joint.topk(self.topk, dim=1).values.mean()


class JointsOffsetMSELoss(nn.Module):
    """UDP's classification + offset loss (Huang et al., CVPR 2020; official
    ``JointsMSELoss_offset``) for (N, 3K, H, W) outputs with channels
    [cls, x offset, y offset] per joint:

    - classification: 0.5 * mean((cls_pred - cls_gt)^2 * w^2) over batch, joints
      and pixels (w = target weight, as in JointsMSELoss);
    - offsets: 0.5 * mean((cls_gt * (dx_pred - dx_gt))^2) + the same for y, so
      only pixels on the target disk count; not scaled by the target weight.

    ``forward`` returns their sum, the official training objective;
    ``components`` returns both. The official class returns 0 for everything
    when ``use_target_weight`` is false; here that only drops the weighting
    of the classification term."""

    def __init__(self, use_target_weight: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight

    def components(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        n, c = output.shape[:2]
        if c % 3:
            raise ValueError(f"JointsOffsetMSELoss needs 3 channels per joint, got {c} channels")
        pred = output.reshape(n, c // 3, 3, -1)
        gt = target.reshape(n, c // 3, 3, -1)
        weight = target_weight if self.use_target_weight else None
        loss_hm = _weighted_sq_error(pred[:, :, 0], gt[:, :, 0], weight).mean()
        # sum over joints and x/y of 0.5 * mean over batch and pixels, / K
        loss_offset = (gt[:, :, :1] * (pred[:, :, 1:] - gt[:, :, 1:])).pow(2).mean()
        return loss_hm, loss_offset

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        loss_hm, loss_offset = self.components(output, target, target_weight)
        return loss_hm + loss_offset


LOSSES = {
    "JointsMSELoss": lambda cfg: JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
    "JointsOHKMMSELoss": lambda cfg: JointsOHKMMSELoss(cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK),
    "JointsOffsetMSELoss": lambda cfg: JointsOffsetMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
}


def _default_loss_name(cfg) -> str:
    if cfg.MODEL.TARGET_TYPE == "offset":  # UDP's classification + offset target
        if cfg.LOSS.USE_OHKM:
            raise ValueError("LOSS.USE_OHKM is not available for MODEL.TARGET_TYPE offset (UDP); "
                             "its loss is JointsOffsetMSELoss")
        return "JointsOffsetMSELoss"
    return "JointsOHKMMSELoss" if cfg.LOSS.USE_OHKM else "JointsMSELoss"


def build_loss(cfg) -> nn.Module:
    name = cfg.LOSS.NAME or _default_loss_name(cfg)
    if name in LOSSES:
        return LOSSES[name](cfg)
    if "." in name:
        module = import_dotted(name, "LOSS.NAME")
        if not hasattr(module, "get_loss"):
            raise UnknownComponentError(f"LOSS.NAME = {name}: module has no get_loss(cfg)")
        return module.get_loss(cfg)
    raise UnknownComponentError(f"LOSS.NAME = {name} is not a posezoo loss; available: {', '.join(LOSSES)}")
