"""A2J: Anchor-to-Joint regression (Xiong et al., "A2J: Anchor-to-Joint
Regression Network for 3D Articulated Pose Estimation from a Single Depth
Image", ICCV 2019; code zhangboshen/A2J).

A ResNet-50 whose layer4 keeps stride 1 (its blocks after the first use
dilation 2), so both layer3 and layer4 see the depth crop at stride 16. Every
16-px cell of that grid carries 16 anchor points (a 4x4 lattice at 2, 6, 10,
14 px inside the cell, paper Sec. 3.1). Three heads of four 3x3 conv+BN+ReLU
layers predict, per anchor and joint:

- ``logits``: the anchor's weight for the joint (softmax over all anchors
  gives the paper's response P_j(a), Eq. 1), from layer3 (the paper's
  "anchor proposal branch" on the finer-semantics feature);
- ``offsets``: the in-plane offset from the anchor to the joint, from layer4;
- ``depth``: the joint depth in mm relative to the crop centre, from layer4.

``forward`` returns a dict; with A = (W/16) * (H/16) * 16 anchors and K joints:

- ``logits``  (N, A, K)
- ``offsets`` (N, A, K, 2) in crop pixels, (dx, dy) = (column, row) order.
  The released head emits (row, column); the two are swapped here so the
  codec and loss work in posezoo's (u, v) = (x, y) convention.
- ``depth``   (N, A, K)

Anchors are enumerated as the release does (its ``permute(0, 3, 2, 1)``):
cell column outermost, then cell row, then the 16 in-cell anchors row by
row; ``posezoo.codecs.a2j.anchor_grid`` gives their positions.

State-dict keys, order and shapes equal the released ``NYU.pth`` (a bare state
dict), including the ImageNet classifier ``Backbone.model.fc`` that A2J keeps
but never runs, so it loads with ``strict=True``.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..config import read_extra
from .checkpoint import CheckpointError, load_pretrained_backbone
from .common import BN_MOMENTUM, Bottleneck, init_conv_bn_, make_res_layer

ANCHOR_STRIDE = 16          # feature stride of layer3/layer4 = anchor cell size, px
ANCHORS_PER_CELL = 16       # 4 x 4 anchors per cell
HEAD_WIDTH = 256            # channels of the head convs
RESNET50_STAGES = (3, 4, 6, 3)
LAYER4_DILATION = 2
IMAGENET_CLASSES = 1000


class DilatedResNet50(nn.Module):
    """torchvision-layout ResNet-50 with a stride-1, dilated layer4 (A2J's
    resnet.py). ``fc`` is only there so the released and ImageNet files fit."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 1)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(zip(widths, RESNET50_STAGES, strides), start=1):
            dilation = LAYER4_DILATION if i == 4 else 1
            setattr(self, f"layer{i}", make_res_layer(Bottleneck, inplanes, planes, blocks, stride, dilation))
            inplanes = planes * Bottleneck.expansion
        self.fc = nn.Linear(inplanes, IMAGENET_CLASSES)
        init_conv_bn_(self)


class A2JBackbone(nn.Module):
    """Depth crop -> (layer3, layer4) features, both at stride 16. The single
    depth channel is repeated to the three channels the ImageNet stem expects."""

    def __init__(self):
        super().__init__()
        self.model = DilatedResNet50()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        net = self.model
        x = x[:, :1].expand(n, 3, h, w)
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        c4 = net.layer3(net.layer2(net.layer1(x)))
        return c4, net.layer4(c4)


class AnchorHead(nn.Module):
    """Four 3x3 conv+BN+ReLU layers, then a 3x3 conv giving ``values`` numbers
    per (anchor, joint); reshaped to (N, A, K, values) in the release's anchor
    order (cell column outermost). Convs are Xavier-normal initialised as in
    the release (biases keep PyTorch's default)."""

    def __init__(self, in_channels: int, num_joints: int, values: int, width: int = HEAD_WIDTH):
        super().__init__()
        self.num_joints = num_joints
        self.values = values
        channels = in_channels
        for i in range(1, 5):
            setattr(self, f"conv{i}", nn.Conv2d(channels, width, kernel_size=3, padding=1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(width, momentum=BN_MOMENTUM))
            channels = width
        self.relu = nn.ReLU(inplace=True)
        self.output = nn.Conv2d(width, ANCHORS_PER_CELL * num_joints * values, kernel_size=3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            x = self.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        out = self.output(x).permute(0, 3, 2, 1)  # (N, W, H, 16 * K * values)
        return out.reshape(out.shape[0], -1, self.num_joints, self.values)


class A2J(nn.Module):
    """Backbone + anchor weight, in-plane offset and depth heads (attribute
    names are the released checkpoint's)."""

    def __init__(self, num_joints: int):
        super().__init__()
        self.Backbone = A2JBackbone()
        self.regressionModel = AnchorHead(2048, num_joints, 2)
        self.classificationModel = AnchorHead(1024, num_joints, 1)
        self.DepthRegressionModel = AnchorHead(2048, num_joints, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c4, c5 = self.Backbone(x)
        return {
            "logits": self.classificationModel(c4).squeeze(3),
            "offsets": self.regressionModel(c5).flip(3),  # released (row, col) -> (x, y)
            "depth": self.DepthRegressionModel(c5).squeeze(3),
        }

    def init_weights(self, pretrained: str = "") -> None:
        """The release starts from torchvision's ImageNet ResNet-50 (classifier
        included, though unused); the heads keep their Xavier init."""
        if not pretrained:
            return
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                  f"(see models/README.md, or set MODEL.PRETRAINED '' to train from scratch)")
        load_pretrained_backbone(self.Backbone.model, pretrained, ignore_prefixes=())


def check_image_size(image_size) -> tuple[int, int]:
    """(width, height) of the crop; each a positive multiple of the anchor stride."""
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0 or width % ANCHOR_STRIDE or height % ANCHOR_STRIDE:
        raise ValueError(f"MODEL.IMAGE_SIZE = {list(image_size)}: A2J needs a width and height that are positive "
                         f"multiples of {ANCHOR_STRIDE} (its anchor stride), e.g. [176, 176]")
    return width, height


def get_pose_net(cfg, is_train: bool) -> A2J:
    read_extra(cfg, {}, "a2j")
    check_image_size(cfg.MODEL.IMAGE_SIZE)
    model = A2J(cfg.MODEL.NUM_JOINTS)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
