"""AWR: Huang, Ren, Wang, Qi and Sun, "AWR: Adaptive Weighting Regression for 3D
Hand Pose Estimation", AAAI 2020 (code Elody-07/AWR-Adaptive-Weighting-Regression).

A fully convolutional net maps a 1-channel normalised depth crop (S x S, the
release: 128) to dense 3D offsets at F = S / ``DOWNSAMPLE``: per joint a unit
vector field (3 channels) and a closeness heatmap (1 channel). The joints come
from adaptive weighting of the per-pixel votes (codec ``awr``); the dense and
the voted-joint losses are ``AWRLoss``.

Output: ONE tensor (N, 4K, F, F), channels [3K unit offsets, joint-major
(3k + {u, v, d}); K heatmaps], the released layout.

``MODEL.EXTRA`` (validated by ``codecs.awr.awr_settings``, shared with the codec
and the loss): ``BACKBONE``, ``DOWNSAMPLE``, ``KERNEL_SIZE``, ``DENSE_WEIGHT``,
``COORD_WEIGHT``. The two released nets:

- ``resnet_18`` (``model/resnet_deconv.py``, ``ResnetDeconv``): stem conv 5x5/1
  (1 -> 64, no bias) + BN + ReLU + max-pool 3x3/2, ResNet stages ``layer1-4``
  (``common.BasicBlock`` / ``common.Bottleneck``, key for key), then
  4 - log2(DOWNSAMPLE) deconvs 4x4/2 to 256 (BN, ReLU), and two 1x1 heads
  ``final1`` (3K) and ``final2`` (K). Also ``resnet_{50,101,152}`` as released.
- ``hourglass_1`` (``model/hourglass.py``, ``PoseNet``): princeton-style
  blocks (``common.ConvUnit`` / ``PreActBottleneck`` / ``PrincetonHourglass``,
  the same modules as pose_hourglass's princeton layout, key for key): stem
  ConvUnit 5x5/1 (1 -> 64, BN, ReLU), residual to 128, max-pool 2, residuals to
  256, 256 (stride 2 in all); per stack a depth-4 hourglass, residual +
  1x1 ConvUnit (BN, ReLU), and plain 1x1 heads ``outs_1`` (3K), ``outs_2`` (K);
  between stacks ``x + merge_preds(out) + merge_features(features)``. Every
  residual owns a ``skip_layer`` that only width changes use; the released
  state dict holds the unused ones too. With several stacks only the last
  stack's output is returned: the release's train.py (HEAD) overwrites the
  loss in its stack loop, so only the last stack is supervised, and tests with
  the last stack.

Both released layouts load with ``strict=True`` (the released
``results/hourglass_1.pth`` is ``{'model': ..., 'optimizer': ...,
'best_records': ...}``, which ``load_checkpoint`` unwraps).

Initialisation. The resnet gets the release's init (convs N(0, sqrt(2 / (k^2
out))), BN (1, 0), deconvs N(0, 0.001), heads N(0, 0.001) with zero bias);
the hourglass PyTorch's default, as released. The release trains from scratch.
With ``is_train``, ``MODEL.INIT_WEIGHTS`` and a ``MODEL.PRETRAINED`` file:

- a whole AWR checkpoint of the same backbone (e.g. the dense stage's, to start
  the joint fine-tuning stage) is loaded strictly;
- for the resnet, a torchvision ImageNet file initialises ``layer1-4``; its
  ``conv1`` (7x7, RGB) and ``bn1`` do not fit the 5x5 1-channel stem, which
  keeps the release init (the release has no ImageNet init at all);
- the hourglass has no ImageNet counterpart: anything else is an error.
"""
from __future__ import annotations

import logging
import math
import os

import torch
from torch import nn

from ..codecs.awr import awr_settings
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_pretrained_backbone,
    read_checkpoint,
    unwrap_state_dict,
)
from .common import (
    BN_MOMENTUM,
    BasicBlock,
    Bottleneck,
    ConvUnit,
    Merge,
    PreActBottleneck,
    PrincetonHourglass,
    make_res_layer,
)

logger = logging.getLogger(__name__)

RESNET_SPEC = {18: (BasicBlock, [2, 2, 2, 2]), 50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3]),
               152: (Bottleneck, [3, 8, 36, 3])}
DECONV_WIDTH = 256
HOURGLASS_WIDTH = 256      # PoseNet(inp_dim=256)
HOURGLASS_DEPTH = 4        # Hourglass(4, ...)
# keys only a whole AWR checkpoint has (the heads)
HEAD_PREFIXES = ("final1.", "final2.", "outs_1.", "outs_2.")
# ImageNet keys that do not fit the 1-channel 5x5 stem
IMAGENET_SKIPPED = ("fc.", "conv1.", "bn1.")


class AWRResNet(nn.Module):
    """The released ``ResnetDeconv``: ResNet encoder, deconvolution decoder, two
    1x1 heads concatenated [offsets, heatmaps]."""

    def __init__(self, depth: int, num_joints: int, downsample: int = 2):
        super().__init__()
        block, blocks = RESNET_SPEC[depth]
        self.pre = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=5, stride=1, padding=2, bias=False),
            nn.BatchNorm2d(64, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        widths, inplanes = (64, 128, 256, 512), 64
        for i, (planes, count) in enumerate(zip(widths, blocks)):
            self.add_module(f"layer{i + 1}", make_res_layer(block, inplanes, planes, count, 1 if i == 0 else 2))
            inplanes = planes * block.expansion
        decoder = []
        for _ in range(4 - int(math.log2(downsample))):  # encoder stride 16 -> feature stride `downsample`
            decoder += [nn.ConvTranspose2d(inplanes, DECONV_WIDTH, kernel_size=4, stride=2, padding=1, bias=False),
                        nn.BatchNorm2d(DECONV_WIDTH, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
            inplanes = DECONV_WIDTH
        self.deconv_layers = nn.Sequential(*decoder)
        self.final1 = nn.Conv2d(DECONV_WIDTH, 3 * num_joints, kernel_size=1)
        self.final2 = nn.Conv2d(DECONV_WIDTH, num_joints, kernel_size=1)
        self.release_init()

    def release_init(self) -> None:
        """``ResnetDeconv.init_weights``: He-normal (fan-out) convs, BN (1, 0),
        N(0, 0.001) deconvs and heads, zero head biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        for head in (self.final1, self.final2):
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return torch.cat([self.final1(x), self.final2(x)], dim=1)


class AWRHourglass(nn.Module):
    """The released ``PoseNet``: a stride-2 stem and stacked princeton
    hourglasses with [offsets, heatmaps] heads; returns the last stack's output."""

    def __init__(self, num_stacks: int, num_joints: int, width: int = HOURGLASS_WIDTH):
        super().__init__()
        self.num_stacks = num_stacks
        self.pre = nn.Sequential(
            ConvUnit(1, 64, 5, 1, bn=True, relu=True),
            PreActBottleneck(64, 128, "princeton"),
            nn.MaxPool2d(2, 2),
            PreActBottleneck(128, 256, "princeton"),
            PreActBottleneck(256, width, "princeton"),
        )
        self.hgs = nn.ModuleList(nn.Sequential(PrincetonHourglass(HOURGLASS_DEPTH, width)) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(PreActBottleneck(width, width, "princeton"), ConvUnit(width, width, 1, bn=True, relu=True))
            for _ in range(num_stacks))
        self.outs_1 = nn.ModuleList(nn.Conv2d(width, 3 * num_joints, 1) for _ in range(num_stacks))
        self.outs_2 = nn.ModuleList(nn.Conv2d(width, num_joints, 1) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(Merge(width, width) for _ in range(num_stacks - 1))
        self.merge_preds = nn.ModuleList(Merge(4 * num_joints, width) for _ in range(num_stacks - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        for i in range(self.num_stacks):
            features = self.features[i](self.hgs[i](x))
            out = torch.cat([self.outs_1[i](features), self.outs_2[i](features)], dim=1)
            if i < self.num_stacks - 1:
                x = x + self.merge_preds[i](out) + self.merge_features[i](features)
        return out


def load_initial_weights(model: nn.Module, path: str) -> None:
    """``MODEL.PRETRAINED``: a whole AWR checkpoint (strict), or for the resnet a
    torchvision ImageNet file (``layer1-4``); see the module docstring."""
    if not os.path.isfile(path):
        raise CheckpointError(f"MODEL.PRETRAINED file not found: {path} (AWR trains from scratch: set "
                              f"MODEL.PRETRAINED '' or MODEL.INIT_WEIGHTS false)")
    state = unwrap_state_dict(read_checkpoint(path), path)
    if any(k.startswith(HEAD_PREFIXES) for k in state):
        load_checkpoint(model, state, strict=True)
        logger.info("=> awr initialised from the whole checkpoint %s", path)
    elif isinstance(model, AWRResNet):
        load_pretrained_backbone(model, path, ignore_prefixes=IMAGENET_SKIPPED)
    else:
        raise CheckpointError(f"MODEL.PRETRAINED {path} is not an AWR checkpoint, and the hourglass has no ImageNet "
                              f"backbone to initialise")


def get_pose_net(cfg, is_train: bool) -> nn.Module:
    """AWR's net from ``cfg.MODEL`` (``NUM_JOINTS``, ``IMAGE_SIZE`` and the
    validated ``EXTRA``); with ``is_train`` and ``MODEL.INIT_WEIGHTS``,
    ``MODEL.PRETRAINED`` (if set) is loaded as described above."""
    settings = awr_settings(cfg)
    if settings.family == "resnet":
        model = AWRResNet(settings.depth, settings.num_joints, settings.downsample)
    else:
        model = AWRHourglass(settings.depth, settings.num_joints)
    if is_train and cfg.MODEL.INIT_WEIGHTS and cfg.MODEL.PRETRAINED:
        load_initial_weights(model, cfg.MODEL.PRETRAINED)
    return model
