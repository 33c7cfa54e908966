"""RSN: Residual Steps Network (Cai et al., "Learning Delicate Local
Representations for Multi-Person Pose Estimation", ECCV 2020;
caiyuanhao1998/RSN, a copy of the MSPN code base).

The MSPN skeleton (``models/mspn.py``) with the Residual Steps Block (RSB,
``exps/RSN18.coco/network.py:49-122``) as its backbone block, and the Pose
Refine Machine (PRM) as an option on the last map.

- RSB: ``branch = in_planes * 26 // 64`` (from the block's *input* width), a
  1x1 conv to 4 branches carrying the block stride, branch i runs i+1 3x3
  steps, each step adding the same-depth output of the previous branch; concat,
  1x1 to ``planes * expansion``, residual, ReLU.
- RSN-18: ``NUM_BLOCKS [2,2,2,2]``; RSN-50 / 2x-4xRSN-50: ``[3,4,6,3]``; RSN-101:
  ``[3,4,23,3]``, all with expansion 1 (mmpose's RSN, 19.3 M parameters for
  RSN-50). ``EXPANSION: 4`` gives the official repo's deleted RSN-50 exp
  (``263c8af``, 295 M parameters), kept for that file only.
- Layouts as MSPN (``MODEL.EXTRA.LAYOUT``); mmpose's RSB registers its shortcut
  first and names the last conv ``conv_bn3`` (official ``conv_bn_relu3``).
- PRM (``USE_PRM``): the paper's Sec. 3.3 and the official ``PRM`` class
  (``exps/4XRSN18.coco/network.py:337-371``): 3x3 conv-BN-ReLU, then
  ``out * (1 + channel * spatial)`` with a channel path (global pool, two 1x1
  conv-BN-ReLU, sigmoid) and a spatial path (1x1 conv-BN-ReLU, depthwise 9x9
  conv-BN-ReLU, sigmoid). The official repo defines it but never builds it, and
  no released checkpoint holds it; here it refines the last stage's final map
  under the key ``prm``. mmpose's differently shaped PRM (Linear/BN1d, one
  spatial channel) is not provided.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import read_extra
from .common import ConvUnit
from .mspn import MultiStagePoseNet, check_extra, heatmap_hw

EXTRA_DEFAULTS = {
    "NUM_STAGES": 1,
    "UNIT_CHANNELS": 256,
    "NUM_BLOCKS": [2, 2, 2, 2],
    "NUM_STEPS": 4,
    "EXPANSION": 1,
    "LAYOUT": "official",
    "USE_PRM": False,
}


class ResidualStepsBlock(nn.Module):
    """The RSB (official ``Bottleneck`` of RSN, mmpose ``RSB``, rsn.py:13-124)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 expansion: int = 1, num_steps: int = 4, layout: str = "official"):
        super().__init__()
        bias = layout == "official"
        if layout == "mmpose":
            self.downsample = downsample
        self.num_steps = num_steps
        self.branch = inplanes * 26 // 64
        self.conv_bn_relu1 = ConvUnit(inplanes, num_steps * self.branch, 1, stride, bn=True, relu=True, bias=bias)
        for i in range(num_steps):
            for j in range(i + 1):
                setattr(self, f"conv_bn_relu2_{i + 1}_{j + 1}",
                        ConvUnit(self.branch, self.branch, 3, bn=True, relu=True, bias=bias))
        self.last_name = "conv_bn_relu3" if layout == "official" else "conv_bn3"
        setattr(self, self.last_name, ConvUnit(num_steps * self.branch, planes * expansion, 1, bn=True, bias=bias))
        if layout == "official":
            self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = torch.split(self.conv_bn_relu1(x), self.branch, dim=1)
        prev: list[torch.Tensor] = []
        ends = []
        for i in range(self.num_steps):
            cur = []
            for j in range(i + 1):
                inp = split[i] if j == 0 else cur[j - 1]
                if i > j:
                    inp = inp + prev[j]
                cur.append(getattr(self, f"conv_bn_relu2_{i + 1}_{j + 1}")(inp))
            ends.append(cur[-1])
            prev = cur
        out = getattr(self, self.last_name)(torch.cat(ends, dim=1))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class PRM(nn.Module):
    """Pose Refine Machine (paper Sec. 3.3; official class names, see module doc)."""

    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.conv_bn_relu_prm_1 = ConvUnit(channels, channels, 3, bn=True, relu=True, bias=bias)
        self.conv_bn_relu_prm_2_1 = ConvUnit(channels, channels, 1, bn=True, relu=True, bias=bias)
        self.conv_bn_relu_prm_2_2 = ConvUnit(channels, channels, 1, bn=True, relu=True, bias=bias)
        self.conv_bn_relu_prm_3_1 = ConvUnit(channels, channels, 1, bn=True, relu=True, bias=bias)
        self.conv_bn_relu_prm_3_2 = ConvUnit(channels, channels, 9, bn=True, relu=True, bias=bias, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_bn_relu_prm_1(x)
        channel = torch.sigmoid(self.conv_bn_relu_prm_2_2(self.conv_bn_relu_prm_2_1(
            F.adaptive_avg_pool2d(out, 1))))
        spatial = torch.sigmoid(self.conv_bn_relu_prm_3_2(self.conv_bn_relu_prm_3_1(out)))
        return out * (1 + channel * spatial)


def get_pose_net(cfg, is_train: bool) -> MultiStagePoseNet:
    extra = read_extra(cfg, EXTRA_DEFAULTS, "rsn")
    check_extra(extra, "rsn")
    if extra.EXPANSION not in (1, 4) or extra.NUM_STEPS < 2:
        raise ValueError(f"rsn: MODEL.EXTRA.EXPANSION = {extra.EXPANSION} / NUM_STEPS = {extra.NUM_STEPS}: "
                         f"expected EXPANSION 1 (RSN) or 4 (the deleted official RSN-50) and NUM_STEPS >= 2")
    layout, expansion, steps = extra.LAYOUT, extra.EXPANSION, extra.NUM_STEPS

    def block(inplanes, planes, stride=1, downsample=None):
        return ResidualStepsBlock(inplanes, planes, stride, downsample, expansion=expansion, num_steps=steps,
                                  layout=layout)

    bias = layout == "official"
    prm = PRM(cfg.MODEL.NUM_JOINTS, bias) if extra.USE_PRM else None
    model = MultiStagePoseNet(block, expansion, bias, list(extra.NUM_BLOCKS), extra.NUM_STAGES,
                              extra.UNIT_CHANNELS, cfg.MODEL.NUM_JOINTS, heatmap_hw(cfg), layout, "rsn", prm)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED, imagenet_blocks=False, bgr=not cfg.DATASET.COLOR_RGB)
    return model
