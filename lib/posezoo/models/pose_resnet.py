"""PoseResNet: SimpleBaseline (Xiao et al., "Simple Baselines for Human Pose
Estimation and Tracking", ECCV 2018): a ResNet followed by deconvolutions.

State-dict keys and shapes equal the released ``pose_resnet_*.pth`` files of
SimpleBaseline and HRNet, so they load with ``strict=True``.
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from ..config import read_extra
from .checkpoint import CheckpointError, load_pretrained_backbone
from .common import (BN_MOMENTUM, BasicBlock, Bottleneck, CaffeBottleneck, check_deconv_head, checkpoint_layout,
                     deconv_head, init_conv_bn_, make_res_layer)

logger = logging.getLogger(__name__)

# depth -> (block, blocks per stage); caffe style swaps Bottleneck for CaffeBottleneck.
RESNET_SPEC = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}

EXTRA_DEFAULTS = {
    "NUM_LAYERS": 50,
    "DECONV_WITH_BIAS": False,
    "NUM_DECONV_LAYERS": 3,
    "NUM_DECONV_FILTERS": [256, 256, 256],
    "NUM_DECONV_KERNELS": [4, 4, 4],
    "FINAL_CONV_KERNEL": 1,
    "LAYOUT": "official",
}


class PoseResNet(nn.Module):
    def __init__(self, block: type, layers: list[int], num_joints: int, deconv_filters: list[int],
                 deconv_kernels: list[int], deconv_with_bias: bool = False, final_conv_kernel: int = 1):
        super().__init__()
        self.inplanes = 64
        self.deconv_with_bias = deconv_with_bias
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.deconv_layers = deconv_head(self.inplanes, deconv_filters, deconv_kernels, self.deconv_with_bias)
        self.final_layer = nn.Conv2d(deconv_filters[-1], num_joints, kernel_size=final_conv_kernel, stride=1,
                                     padding=1 if final_conv_kernel == 3 else 0)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layer = make_res_layer(block, self.inplanes, planes, blocks, stride)
        self.inplanes = planes * block.expansion
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))

    def init_weights(self, pretrained: str = "") -> None:
        """Official head init (deconv and final conv ~ N(0, 0.001), BN (1, 0)),
        then the ImageNet backbone from a torchvision-format file (``fc.*`` ignored).

        Without a pretrained file the official code also draws the backbone convs
        from N(0, 0.001); here they get He init instead, which trains from scratch
        far better. Every published number uses an ImageNet backbone, so this
        changes none of them.
        """
        init_conv_bn_(self)
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
                if self.deconv_with_bias:
                    nn.init.constant_(m.bias, 0)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)
        if pretrained:
            if not os.path.isfile(pretrained):
                raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                      f"(see models/README.md, or set MODEL.PRETRAINED '' to train from scratch)")
            load_pretrained_backbone(self, pretrained)


def get_pose_net(cfg, is_train: bool) -> nn.Module:
    """SimpleBaseline from ``cfg.MODEL``. ``MODEL.EXTRA.LAYOUT mmpose`` builds mmpose's tree
    (``backbone.*`` = mmpose ``backbones/resnet.py`` ResNet, torchvision names; ``head.deconv_layers``,
    ``head.final_layer`` = ``HeatmapHead``), the layout of its model-zoo checkpoints (``common.MMPoseTopdown``)."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "pose_resnet")
    if extra.NUM_LAYERS not in RESNET_SPEC:
        raise ValueError(f"MODEL.EXTRA.NUM_LAYERS = {extra.NUM_LAYERS}: pose_resnet supports {sorted(RESNET_SPEC)}")
    if cfg.MODEL.STYLE not in ("pytorch", "caffe"):
        raise ValueError(f"MODEL.STYLE = {cfg.MODEL.STYLE}: expected 'pytorch' or 'caffe'")
    check_deconv_head(extra, "pose_resnet")
    block, layers = RESNET_SPEC[extra.NUM_LAYERS]
    if cfg.MODEL.STYLE == "caffe" and block is Bottleneck:
        block = CaffeBottleneck
    model = PoseResNet(block, layers, cfg.MODEL.NUM_JOINTS, extra.NUM_DECONV_FILTERS, extra.NUM_DECONV_KERNELS,
                       extra.DECONV_WITH_BIAS, extra.FINAL_CONV_KERNEL)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return checkpoint_layout(model, extra.LAYOUT, ("deconv_layers", "final_layer"), "pose_resnet")
