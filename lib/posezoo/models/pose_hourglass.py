"""Stacked hourglass: Newell, Yang and Deng, "Stacked Hourglass Networks for Human
Pose Estimation", ECCV 2016.

A stride-4 stem feeds ``NUM_STACKS`` hourglasses. Each hourglass is recursive: at
every one of its ``DEPTH`` levels a residual branch keeps the resolution while a
max-pool, a residual, the next level and a residual run at half of it; nearest
upsampling brings the lower branch back and the two are summed. Every residual is
the pre-activation bottleneck of the paper (BN-ReLU-conv 1x1, 3x3, 1x1, width
halved inside, biased convs). After each hourglass a residual and a 1x1
conv-BN-ReLU give the stack's features, and a 1x1 conv its K heatmaps.

- **Intermediate supervision.** ``forward`` returns a list with one (N, K, H/4,
  W/4) tensor per stack. ``core.function`` supervises every one of them and tests
  with the last.
- **Remapping.** Between stacks the features and the heatmaps are mapped back to
  the stream width by 1x1 convs and added to the stack's input:
  ``x = x + conv(features) + conv(heatmaps)`` (each layout keeps its official order
  of the two sums, so that float results are identical).

``MODEL.EXTRA`` (defaults: the paper's 8-stack model):

- ``LAYOUT`` ('bearpaw'): module naming and stem of a released code base (below).
- ``NUM_STACKS`` (8): hourglasses, and so heatmap sets returned.
- ``NUM_BLOCKS`` (1): residuals per hourglass branch and after each hourglass
  (LAYOUT bearpaw; princeton has exactly one).
- ``NUM_FEATURES`` (256): width of the feature stream between the stacks.
- ``DEPTH`` (4): levels (halvings) of every hourglass.

``NUM_STACKS``, ``NUM_BLOCKS`` and ``NUM_FEATURES`` are DarkPose's names, so the
``MODEL.EXTRA`` of its COCO hourglass YAMLs reads unchanged; their ``MODEL.NAME``,
'hourglass', is this module, ``pose_hourglass`` (``experiments/coco/hourglass/``).

Layouts. The computation is the same; the state-dict keys and the stem differ, so
that each released checkpoint loads with ``strict=True``:

- ``bearpaw``: bearpaw/pytorch-pose ``pose/models/hourglass.py`` (``hg_s2_b1``,
  ``hg_s8_b1``; its width is fixed at 256), and DarkPose's ``lib/models/hourglass.py``,
  which is the same code with a configurable width (its ``NUM_FEATURES``). Keys ``conv1``, ``bn1``,
  ``layer1-3``, ``hg.<stack>.hg.<level>.<branch>.<block>``, ``res``, ``fc``,
  ``score``, ``fc_``, ``score_``. Stem: conv 7x7/2 to F/4, residual to F/2,
  max-pool, residual to F, residual. A projection shortcut (``downsample.0``)
  exists only where the width changes.
- ``princeton``: princeton-vl/pytorch_stacked_hourglass ``models/posenet.py`` and
  ``models/layers.py`` (the 2HG and 8HG models). Keys ``pre``, ``hgs.<stack>.0.
  {up1,low1,low2,low3}`` (the recursion spelt out), ``features``, ``outs``,
  ``merge_features``, ``merge_preds``. Every conv sits in a ``Conv`` wrapper
  (``*.conv.weight``, and ``*.bn`` where it has BN). Stem: conv 7x7/2 to 64 with
  BN-ReLU, residual to 128, max-pool, residual 128, residual to F. Every residual
  owns a ``skip_layer`` 1x1 conv, used only where the width changes: the others are
  unused parameters in the checkpoint (and here), counted in the parameter total.
  Its ``Hourglass(increase=...)`` option is not supported (every released model
  uses 0).

Input and output. Like every posezoo model this one takes an (N, 3, H, W) tensor
and returns a list. princeton's ``PoseNet.forward`` takes (N, H, W, 3) and permutes
it, and returns ``torch.stack(preds, 1)`` of shape (N, stacks, K, H/4, W/4): for
the same weights, ``official(x.permute(0, 2, 3, 1))`` equals
``torch.stack(model(x), 1)``. Neither official code normalises like posezoo's
pipeline: princeton feeds RGB / 255, bearpaw RGB / 255 minus the MPII mean. The
published accuracies need that input; the weights themselves load unchanged.

Checkpoints. ``load_checkpoint`` unwraps bearpaw's ``{'state_dict': ...}`` and
strips its ``module.`` prefix. princeton's ``train.py`` saves the state dict of a
``Trainer`` wrapping ``DataParallel(PoseNet)``, so its keys start with
``model.module.``, which ``load_checkpoint`` strips as well.

Upsampling. Every level upsamples (nearest) to the size of its skip branch. Where
the sizes are even this is the official ``scale_factor=2``, exactly. DarkPose's
code instead upsamples its innermost level to a fixed 4x3, which fits only
128x96 inputs (its 256x192 and 384x288 YAMLs stop with a size mismatch there);
at 128x96 the two agree exactly, and here every input size runs.

Initialisation. Both official codes train from PyTorch's default init, as this
model does. With ``MODEL.INIT_WEIGHTS`` and a ``MODEL.PRETRAINED`` file, that file
must be a whole hourglass checkpoint of the same layout (loaded strictly); there is
no ImageNet backbone. DarkPose's YAMLs name a ResNet-50 file with
``INIT_WEIGHTS: false``, so it is not read, as in DarkPose.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, read_extra
from .checkpoint import CheckpointError, load_checkpoint
from .common import (
    BN_MOMENTUM,
    ConvUnit,
    Merge,
    PreActBottleneck,
    PrincetonHourglass,
    upsample_to,
)

logger = logging.getLogger(__name__)

LAYOUTS = ("bearpaw", "princeton")

EXTRA_DEFAULTS = {
    "LAYOUT": "bearpaw",
    "NUM_STACKS": 8,
    "NUM_BLOCKS": 1,
    "NUM_FEATURES": 256,
    "DEPTH": 4,
}

# princeton's stem widths (fixed in its code; bearpaw/DarkPose use F/4 and F/2)
PRINCETON_STEM = (64, 128)
# princeton's Trainer(DataParallel(PoseNet)) prefix in its train.py checkpoints


def residuals(channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` width-preserving bearpaw residuals."""
    return nn.Sequential(*[PreActBottleneck(channels, channels) for _ in range(num_blocks)])


class BearpawHourglass(nn.Module):
    """One hourglass in bearpaw's layout: ``hg[level]`` (level 0 innermost) holds
    the branches [skip, down, up] (+ [innermost] at level 0), each
    ``num_blocks`` residuals."""

    def __init__(self, channels: int, num_blocks: int, depth: int):
        super().__init__()
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(residuals(channels, num_blocks) for _ in range(4 if level == 0 else 3))
            for level in range(depth))

    def _level(self, n: int, x: torch.Tensor) -> torch.Tensor:
        branches = self.hg[n - 1]
        up1 = branches[0](x)
        low1 = branches[1](F.max_pool2d(x, 2, stride=2))
        low2 = self._level(n - 1, low1) if n > 1 else branches[3](low1)
        low3 = branches[2](low2)
        return up1 + upsample_to(low3, up1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class StackedHourglass(nn.Module):
    """The stacking, shared by both layouts: stem, then per stack hourglass ->
    features -> heatmaps, and the remapping into the next stack's input.
    ``forward`` returns the list of every stack's heatmaps."""

    def __init__(self, num_stacks: int):
        super().__init__()
        self.num_stacks = num_stacks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for i in range(self.num_stacks):
            features, heatmaps = self.stack(i, x)
            outputs.append(heatmaps)
            if i < self.num_stacks - 1:
                x = self.remap(i, x, features, heatmaps)
        return outputs

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stack(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def remap(self, i: int, x: torch.Tensor, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def init_weights(self, pretrained: str = "") -> None:
        """PyTorch's default init (as both official codes); a ``pretrained`` file is
        a whole checkpoint of this layout, loaded strictly."""
        if not pretrained:
            return
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} (the hourglass trains from "
                                  f"scratch: set MODEL.PRETRAINED '' or MODEL.INIT_WEIGHTS false)")
        load_checkpoint(self, pretrained, strict=True)
        logger.info("=> hourglass initialised from %s", pretrained)


class BearpawHourglassNet(StackedHourglass):
    """``LAYOUT: bearpaw`` (bearpaw/pytorch-pose, DarkPose)."""

    def __init__(self, num_joints: int, num_stacks: int = 8, num_blocks: int = 1, num_features: int = 256,
                 depth: int = 4):
        super().__init__(num_stacks)
        f = num_features
        self.conv1 = nn.Conv2d(3, f // 4, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(f // 4, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(PreActBottleneck(f // 4, f // 2))
        self.layer2 = nn.Sequential(PreActBottleneck(f // 2, f))
        self.layer3 = nn.Sequential(PreActBottleneck(f, f))
        self.maxpool = nn.MaxPool2d(2, stride=2)
        self.hg = nn.ModuleList(BearpawHourglass(f, num_blocks, depth) for _ in range(num_stacks))
        self.res = nn.ModuleList(residuals(f, num_blocks) for _ in range(num_stacks))
        self.fc = nn.ModuleList(nn.Sequential(nn.Conv2d(f, f, 1, bias=True), nn.BatchNorm2d(f, momentum=BN_MOMENTUM),
                                              nn.ReLU(inplace=True)) for _ in range(num_stacks))
        self.score = nn.ModuleList(nn.Conv2d(f, num_joints, 1, bias=True) for _ in range(num_stacks))
        self.fc_ = nn.ModuleList(nn.Conv2d(f, f, 1, bias=True) for _ in range(num_stacks - 1))
        self.score_ = nn.ModuleList(nn.Conv2d(num_joints, f, 1, bias=True) for _ in range(num_stacks - 1))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.maxpool(self.layer1(x))))

    def stack(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.fc[i](self.res[i](self.hg[i](x)))
        return features, self.score[i](features)

    def remap(self, i: int, x: torch.Tensor, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return x + self.fc_[i](features) + self.score_[i](heatmaps)


class PrincetonHourglassNet(StackedHourglass):
    """``LAYOUT: princeton`` (princeton-vl/pytorch_stacked_hourglass ``PoseNet``),
    fed NCHW (the official forward permutes an NHWC input)."""

    def __init__(self, num_joints: int, num_stacks: int = 8, num_features: int = 256, depth: int = 4,
                 stack_channels: Optional[Sequence[int]] = None):
        super().__init__(num_stacks)
        f, (c1, c2) = num_features, PRINCETON_STEM
        # output channels of each stack: num_joints heatmaps, or (c2f_vol) num_joints x depth bins per stack
        out = list(stack_channels) if stack_channels is not None else [num_joints] * num_stacks
        if len(out) != num_stacks:
            raise ValueError(f"{len(out)} stack output widths for {num_stacks} stacks")
        self.pre = nn.Sequential(
            ConvUnit(3, c1, 7, stride=2, bn=True, relu=True),
            PreActBottleneck(c1, c2, "princeton"),
            nn.MaxPool2d(2, 2),
            PreActBottleneck(c2, c2, "princeton"),
            PreActBottleneck(c2, f, "princeton"),
        )
        self.hgs = nn.ModuleList(nn.Sequential(PrincetonHourglass(depth, f)) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(PreActBottleneck(f, f, "princeton"), ConvUnit(f, f, 1, bn=True, relu=True))
            for _ in range(num_stacks))
        self.outs = nn.ModuleList(ConvUnit(f, c, 1) for c in out)
        self.merge_features = nn.ModuleList(Merge(f, f) for _ in range(num_stacks - 1))
        self.merge_preds = nn.ModuleList(Merge(c, f) for c in out[:-1])

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre(x)

    def stack(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features[i](self.hgs[i](x))
        return features, self.outs[i](features)

    def remap(self, i: int, x: torch.Tensor, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return x + self.merge_preds[i](heatmaps) + self.merge_features[i](features)


def _check(extra) -> None:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(f"MODEL.EXTRA.{key} = {extra[key]!r} for model pose_hourglass: expected {expected}")

    if extra.LAYOUT not in LAYOUTS:
        raise bad("LAYOUT", " or ".join(repr(v) for v in LAYOUTS))
    for key in ("NUM_STACKS", "NUM_BLOCKS", "DEPTH"):
        if extra[key] < 1:
            raise bad(key, "a positive integer")
    multiple = 4 if extra.LAYOUT == "bearpaw" else 2  # bearpaw's stem is F/4 wide; residuals halve inside
    if extra.NUM_FEATURES < multiple or extra.NUM_FEATURES % multiple:
        raise bad("NUM_FEATURES", f"a positive multiple of {multiple} for LAYOUT {extra.LAYOUT}")
    if extra.LAYOUT == "princeton" and extra.NUM_BLOCKS != 1:
        raise bad("NUM_BLOCKS", "1 for LAYOUT princeton (its hourglass has one residual per branch)")


def build_hourglass(num_joints: int, layout: str = "bearpaw", num_stacks: int = 8, num_blocks: int = 1,
                    num_features: int = 256, depth: int = 4) -> StackedHourglass:
    """The hourglass network of `layout`, without a config."""
    if layout == "princeton":
        if num_blocks != 1:
            raise ValueError("LAYOUT princeton has one residual per branch (NUM_BLOCKS 1)")
        return PrincetonHourglassNet(num_joints, num_stacks, num_features, depth)
    if layout != "bearpaw":
        raise ValueError(f"unknown hourglass layout {layout!r}; expected one of {LAYOUTS}")
    return BearpawHourglassNet(num_joints, num_stacks, num_blocks, num_features, depth)


def get_pose_net(cfg, is_train: bool) -> StackedHourglass:
    """The stacked hourglass from ``cfg.MODEL`` (``NUM_JOINTS`` and the validated
    ``EXTRA``); with ``is_train`` and ``MODEL.INIT_WEIGHTS``, ``MODEL.PRETRAINED``
    (if set) is loaded as a whole checkpoint."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "pose_hourglass")
    _check(extra)
    model = build_hourglass(cfg.MODEL.NUM_JOINTS, extra.LAYOUT, extra.NUM_STACKS, extra.NUM_BLOCKS,
                            extra.NUM_FEATURES, extra.DEPTH)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
