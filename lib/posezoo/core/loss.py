"""The training losses. The codec names the loss it trains with
(``Codec.loss_name``: JointsMSELoss, or JointsOHKMMSELoss when
``LOSS.USE_OHKM``, for heatmaps; JointsOffsetMSELoss for UDP's offsets; A2JLoss,
AWRLoss, VolumetricLoss, LiftingLoss); ``LOSS.NAME`` overrides it by name (a key of ``LOSSES``) or by a
dotted module path exposing ``get_loss(cfg)``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..codecs import build_codec
from ..codecs.a2j import anchor_grid, anchor_vote, check_output
from ..codecs.awr import adaptive_vote, awr_settings
from ..codecs.volumetric import (
    FINE_BINS,
    ORDINAL_CLOSER,
    ORDINAL_FARTHER,
    ORDINAL_SAME,
    volume_soft_argmax,
    volumes,
    volumetric_settings,
)
from ..utils.registry import UnknownComponentError, build_from_table
from .strategy import stage_loss


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


def ordinal_loss(z: torch.Tensor, codes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The ranking loss of Pavlakos et al., CVPR 2018, Eq. 2, per sample: depths
    `z` (N, K), pair codes (N, K, K) (``codecs.volumetric``: +1 joint i closer,
    -1 farther, 0 same, anything else unknown), joints that count `valid` (N, K)
    -> (N,) the mean over the known pairs i < j of

        log(1 + exp(z_i - z_j))  (+1),  log(1 + exp(z_j - z_i))  (-1),  (z_i - z_j)^2  (0);

    0 for a sample without known pairs. The code matrix is antisymmetric, so each
    unordered pair is counted once; the paper sums over the pairs, here they are
    averaged so that the weight does not grow with the number of annotated pairs."""
    diff = z[:, :, None] - z[:, None, :]
    loss = torch.where(codes == ORDINAL_CLOSER, F.softplus(diff),
                       torch.where(codes == ORDINAL_FARTHER, F.softplus(-diff), diff.pow(2)))
    k = z.shape[1]
    upper = torch.ones(k, k, dtype=torch.bool, device=z.device).triu(1)
    known = ((codes == ORDINAL_CLOSER) | (codes == ORDINAL_FARTHER) | (codes == ORDINAL_SAME)) & upper
    known = known & (valid[:, :, None] > 0) & (valid[:, None, :] > 0)
    known = known.to(z.dtype)
    return (loss * known).sum(dim=(1, 2)) / known.sum(dim=(1, 2)).clamp_min(1)


class VolumetricLoss(nn.Module):
    """One stack of the volumetric codec (``codecs/volumetric.py``): the volume L2
    of Pavlakos et al., CVPR 2017 (c2f-vol-train ``src/util/pose-c2f.lua:4-5``: an
    ``nn.MSECriterion`` per stack, summed over the stacks by ``stage_loss``), with
    the ordinal ranking loss of CVPR 2018 on the soft-argmax depths:

        loss = mean_{n,k} [ dw_nk * mean_{d,h,w} (w_nk (V - G))^2
                            + (1 - dw_nk) * mean_{h,w} (w_nk (max_d V - G2d))^2 ]
             + ORDINAL_WEIGHT * mean_n ordinal_loss_n

    w is the target weight, dw the target's ``depth_weight`` (the joint's depth
    is known), G2d its ``heatmap``. With every joint labelled in 3D this is the
    official MSE over all elements. A sample without depth trains its 2D
    heatmap on the maximum over depth (posezoo's choice: ordinal-pose3d released
    no training code). The ranking loss reads the depth of each joint as the
    expected bin under ``softmax(BETA * V)``, in ORDINAL_SCALE units per bin of
    the 64-bin grid (ordinal-pose3d ``full-eval/main.lua:41-46``); it is skipped
    on one-bin stacks. ``components`` returns both terms."""

    def __init__(self, num_joints: int, use_target_weight: bool = True, ordinal_weight: float = 1.0,
                 ordinal_scale: float = 10.0, beta: float = 160.0):
        super().__init__()
        self.num_joints = int(num_joints)
        self.use_target_weight = use_target_weight
        self.ordinal_weight = float(ordinal_weight)
        self.ordinal_scale = float(ordinal_scale)
        self.beta = float(beta)

    def components(self, output: torch.Tensor, target: Mapping[str, torch.Tensor], target_weight: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(volume term, ordinal term) before the ordinal weight."""
        if not isinstance(target, Mapping) or "volume" not in target:
            raise TypeError("VolumetricLoss expects the volumetric codec's target dicts (volume, heatmap, "
                            "depth_weight, ordinal); set MODEL.TARGET_TYPE volumetric")
        vol = volumes(output, self.num_joints)
        gt = volumes(target["volume"].to(vol.dtype), self.num_joints)
        if vol.shape != gt.shape:
            raise ValueError(f"VolumetricLoss: output {tuple(vol.shape)} and target {tuple(gt.shape)} differ "
                             f"(VOLUMETRIC.RES_Z, MODEL.NUM_JOINTS or MODEL.HEATMAP_SIZE)")
        n, k = vol.shape[:2]
        w = target_weight.reshape(n, k).to(vol.dtype)
        scale = w.pow(2) if self.use_target_weight else torch.ones_like(w)
        dw = target["depth_weight"].reshape(n, k).to(vol.dtype)
        full = (vol - gt).pow(2).mean(dim=(2, 3, 4))
        flat = (vol.amax(dim=2) - target["heatmap"].to(vol.dtype)).pow(2).mean(dim=(2, 3))
        volume_term = (scale * (dw * full + (1 - dw) * flat)).mean()
        bins = vol.shape[2]
        if bins == 1 or not self.ordinal_weight:
            return volume_term, volume_term.new_zeros(())
        depth = (volume_soft_argmax(vol, self.beta)[..., 2] + 0.5) * (FINE_BINS / bins) * self.ordinal_scale
        return volume_term, ordinal_loss(depth, target["ordinal"].to(vol.device), w).mean()

    def forward(self, output: torch.Tensor, target: Mapping[str, torch.Tensor], target_weight: torch.Tensor
                ) -> torch.Tensor:
        """One stack's loss; given every stack's outputs and targets (lists), their sum (as ``stage_loss``)."""
        if isinstance(output, (list, tuple)):
            return stage_loss(self, output, target, target_weight)
        volume_term, ordinal_term = self.components(output, target, target_weight)
        return volume_term + self.ordinal_weight * ordinal_term


class LiftingLoss(nn.Module):
    """The reconstruction component's L2 (``codecs/lifting.py``): the mean over the
    batch and the 3 K outputs (coordinate-major, x of every joint, then y, then z)
    of ``(w_k (pred - gt))^2``, w_k the joint's target weight."""

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        n = output.shape[0]
        weight = target_weight.reshape(n, 1, -1).to(output.dtype)
        diff = (output - target.to(output.dtype)).reshape(n, 3, -1) * weight
        return diff.pow(2).mean()


def _volumetric_loss(cfg) -> VolumetricLoss:
    s = volumetric_settings(cfg)
    return VolumetricLoss(cfg.MODEL.NUM_JOINTS, cfg.LOSS.USE_TARGET_WEIGHT, s["ordinal_weight"], s["ordinal_scale"],
                          s["beta"])


def _awr_loss(cfg) -> AWRLoss:
    settings = awr_settings(cfg)
    return AWRLoss(settings.kernel_size, settings.dense_weight, settings.coord_weight)


LOSSES = {
    "JointsMSELoss": lambda cfg: JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
    "JointsOHKMMSELoss": lambda cfg: JointsOHKMMSELoss(cfg.LOSS.USE_TARGET_WEIGHT, cfg.LOSS.TOPK),
    "JointsOffsetMSELoss": lambda cfg: JointsOffsetMSELoss(cfg.LOSS.USE_TARGET_WEIGHT),
    "A2JLoss": lambda cfg: A2JLoss(cfg.MODEL.IMAGE_SIZE),
    "AWRLoss": _awr_loss,
    "VolumetricLoss": _volumetric_loss,
    "LiftingLoss": lambda cfg: LiftingLoss(),
}


def loss_by_name(name: str, cfg) -> nn.Module:
    """The loss called `name`: a key of ``LOSSES`` or a dotted module path exposing ``get_loss(cfg)``."""
    loss = build_from_table(LOSSES, name, "LOSS.NAME", "get_loss", cfg)
    if loss is not None:
        return loss
    raise UnknownComponentError(f"LOSS.NAME = {name} is not a posezoo loss; available: {', '.join(LOSSES)}")


def build_loss(cfg, codec=None) -> nn.Module:
    """The loss of `codec` (the config's codec when None): ``codec.loss(cfg)``."""
    return (codec if codec is not None else build_codec(cfg)).loss(cfg)
