"""The training losses. The codec names the loss it trains with
(``Codec.loss_name``: JointsMSELoss, or JointsOHKMMSELoss when
``LOSS.USE_OHKM``, for heatmaps; JointsOffsetMSELoss for UDP's offsets; A2JLoss,
AWRLoss); ``LOSS.NAME`` overrides it by name (a key of ``LOSSES``) or by a
dotted module path exposing ``get_loss(cfg)``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..codecs import build_codec
from ..codecs.a2j import anchor_grid, anchor_vote, check_output
from ..codecs.awr import adaptive_vote, awr_settings
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


class A2JLoss(nn.Module):
    """A2J's training objective (Xiong et al., ICCV 2019, Eqs. 4-6; the release's
    ``A2J_loss`` in src_train/anchor.py, combined as in src_train/nyu.py):

        loss = surround + reg_factor * (spatial_factor * joint_xy + joint_depth)

    - surround ("informative anchor surrounding", Eq. 5): smooth L1 (beta 1)
      between the joint and the softmax-weighted anchor position alone;
    - joint_xy (Eq. 4, in-plane): smooth L1 (beta 1) between the joint and its
      voted position (anchor + offset);
    - joint_depth: |voted depth - joint depth| in mm. The release computes a
      smooth L1 with beta 3 here but adds the plain L1 difference to the loss,
      so that is what is trained on and reproduced;

    each averaged over batch, joints (and x/y). The release's factors:
    spatial_factor 0.5, reg_factor 3. ``target`` is (N, K, 3) crop joints
    (u_c, v_c, dz); every term of joint k is scaled by target_weight[:, k],
    all ones from the a2j codec, which gives the release's numbers."""

    def __init__(self, image_size: Sequence[int], spatial_factor: float = 0.5, reg_factor: float = 3.0):
        super().__init__()
        width, height = (int(v) for v in image_size)
        self.register_buffer("anchors", anchor_grid(width, height), persistent=False)
        self.spatial_factor = float(spatial_factor)
        self.reg_factor = float(reg_factor)

    def components(self, output: Mapping[str, torch.Tensor], target: torch.Tensor, target_weight: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(surround, joint_xy, joint_depth), each weighted and averaged."""
        check_output(output, len(self.anchors))
        logits = output["logits"]
        anchors = self.anchors.to(logits.device, logits.dtype)
        joints, surround_xy, _ = anchor_vote(logits, output["offsets"], output["depth"], anchors)
        weight = target_weight.reshape(target.shape[0], target.shape[1], 1)
        gt_xy = target[..., :2]
        surround = (F.smooth_l1_loss(surround_xy, gt_xy, reduction="none", beta=1.0) * weight).mean()
        joint_xy = (F.smooth_l1_loss(joints[..., :2], gt_xy, reduction="none", beta=1.0) * weight).mean()
        joint_depth = ((joints[..., 2:] - target[..., 2:]).abs() * weight).mean()
        return surround, joint_xy, joint_depth

    def forward(self, output: Mapping[str, torch.Tensor], target: torch.Tensor, target_weight: torch.Tensor
                ) -> torch.Tensor:
        surround, joint_xy, joint_depth = self.components(output, target, target_weight)
        return surround + self.reg_factor * (self.spatial_factor * joint_xy + joint_depth)


class AWRLoss(nn.Module):
    """AWR's objective (Huang et al., AAAI 2020, Sec. 3.3; the release's train.py
    with ``My_SmoothL1Loss`` of model/loss.py):

        loss = dense_weight * L(dense output, dense target)
             + coord_weight * L(adaptively voted joints, joints)

    L is the release's smooth L1: 0.5 z^2 where |z| < 0.01, else
    0.01 (|z| - 0.005), averaged over every element; that is the Huber loss with
    delta 0.01. The joints are voted from the output with ``codecs.awr.
    adaptive_vote`` (differentiable), in normalised crop units. Released config
    (HEAD): dense_weight 1, coord_weight 0 (dense stage); earlier configs: 1 and
    1000. ``target`` is the ``awr`` codec's dict (``joints``, ``dense``,
    ``depth``); every element of joint k (its 3 offsets + heatmap, its 3
    coordinates) is scaled by target_weight[:, k], all ones from the codec,
    which gives the release's numbers."""

    def __init__(self, kernel_size: float, dense_weight: float = 1.0, coord_weight: float = 0.0,
                 delta: float = 0.01):
        super().__init__()
        self.kernel_size = float(kernel_size)
        self.dense_weight = float(dense_weight)
        self.coord_weight = float(coord_weight)
        self.delta = float(delta)

    def components(self, output: torch.Tensor, target: Mapping[str, torch.Tensor], target_weight: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(dense, coord) losses before their weights; coord is 0 (not computed)
        while coord_weight is 0."""
        if not isinstance(target, Mapping) or any(k not in target for k in ("joints", "dense", "depth")):
            raise TypeError("AWRLoss expects the awr codec's target dict (joints, dense, depth); "
                            "set MODEL.TARGET_TYPE awr")
        if output.shape != target["dense"].shape:
            raise ValueError(f"AWRLoss: output {tuple(output.shape)} and dense target {tuple(target['dense'].shape)} "
                             f"differ (MODEL.NUM_JOINTS, IMAGE_SIZE or EXTRA.DOWNSAMPLE)")
        n, k = target["joints"].shape[:2]
        weight = target_weight.reshape(n, k, 1).to(output.dtype)
        channel_weight = torch.cat([weight.expand(n, k, 3).reshape(n, 3 * k), weight[..., 0]], dim=1)
        dense = F.huber_loss(output, target["dense"], reduction="none", delta=self.delta)
        dense = (dense * channel_weight[:, :, None, None]).mean()
        if not self.coord_weight:
            return dense, dense.new_zeros(())
        joints = adaptive_vote(output, target["depth"], self.kernel_size)
        coord = (F.huber_loss(joints, target["joints"], reduction="none", delta=self.delta) * weight).mean()
        return dense, coord

    def forward(self, output: torch.Tensor, target: Mapping[str, torch.Tensor], target_weight: torch.Tensor
                ) -> torch.Tensor:
        dense, coord = self.components(output, target, target_weight)
        return self.dense_weight * dense + self.coord_weight * coord


def _awr_loss(cfg) -> AWRLoss:
    settings = awr_settings(cfg)
    return AWRLoss(settings.kernel_size, settings.dense_weight, settings.coord_weight)


LOSSES = {
    "JointsMSELoss": lambda cfg: JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
    "JointsOHKMMSELoss": lambda cfg: JointsOHKMMSELoss(cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK),
    "JointsOffsetMSELoss": lambda cfg: JointsOffsetMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
    "A2JLoss": lambda cfg: A2JLoss(cfg.MODEL.IMAGE_SIZE),
    "AWRLoss": _awr_loss,
}


def loss_by_name(name: str, cfg) -> nn.Module:
    """The loss called `name`: a key of ``LOSSES`` or a dotted module path exposing ``get_loss(cfg)``."""
    if name in LOSSES:
        return LOSSES[name](cfg)
    if "." in name:
        module = import_dotted(name, "LOSS.NAME")
        if not hasattr(module, "get_loss"):
            raise UnknownComponentError(f"LOSS.NAME = {name}: module has no get_loss(cfg)")
        return module.get_loss(cfg)
    raise UnknownComponentError(f"LOSS.NAME = {name} is not a posezoo loss; available: {', '.join(LOSSES)}")


def build_loss(cfg, codec=None) -> nn.Module:
    """The loss of `codec` (the config's codec when None): ``codec.loss(cfg)``."""
    return (codec if codec is not None else build_codec(cfg)).loss(cfg)
