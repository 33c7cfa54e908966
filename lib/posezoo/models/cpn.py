"""CPN: Cascaded Pyramid Network (Chen et al., CVPR 2018).

The authors' code is TensorFlow (chenyilun95/tf-cpn); this module is the
module tree of the PyTorch port GengDavid/pytorch-cpn (``networks/*.py`` @48696a9),
whose released ``COCO.res{50,101}.*.CPN`` files (``{'state_dict'}`` with a
``module.`` prefix, stripped by ``load_checkpoint``) load here with
``strict=True``:

- ``resnet``: torchvision ResNet-50/101 (``common.Bottleneck``), C5..C2.
- ``global_net``: per level, coarsest first, a lateral 1x1 conv-BN-ReLU to 256
  (+ the upsampled coarser level: x2 bilinear, align_corners=True, 1x1 conv, BN);
  a 1x1 conv-BN-ReLU, a 3x3 conv to K, a bilinear resize to the heatmap size
  (align_corners=True), BN (``globalNet.py:38-74``).
- ``refine_net``: level i (C5 first) through 3-i bottlenecks (256 -> 128 -> 256,
  always with a projection shortcut), resized, concatenated C5..C2, then a
  bottleneck 1024 -> 256 and a 3x3 conv-BN to K (``refineNet.py:48-74``).

``forward`` returns ``[global C5, C4, C3, C2, refine]``: the last entry is the
prediction. The port differs from the TF original (identity shortcuts, biased
merge convs without BN, TF legacy resize, concat res2..res5, BN eps 1e-9, BGR),
so the TF checkpoints do not map onto this tree one to one; converting them
would also need reading TF's checkpoint format (a ``tensorflow`` dependency, or
its own ``.index``/``.data`` parser), which posezoo does not ship.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import read_extra
from .checkpoint import CheckpointError, load_pretrained_backbone
from .common import BN_MOMENTUM, Bottleneck, init_conv_bn_, make_res_layer
from .mspn import heatmap_hw

DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
LEVEL_CHANNELS = [2048, 1024, 512, 256]

EXTRA_DEFAULTS = {"NUM_LAYERS": 50, "CHANNELS": 256}


class CPNResNet(nn.Module):
    """The port's ``resnet`` (no ``fc``): features C5, C4, C3, C2."""

    def __init__(self, layers: list[int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, blocks in enumerate(layers):
            planes = 64 * 2 ** i
            setattr(self, f"layer{i + 1}", make_res_layer(Bottleneck, inplanes, planes, blocks, 1 if i == 0 else 2))
            inplanes = planes * Bottleneck.expansion

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
            feats.append(x)
        return feats[::-1]


class RefineBottleneck(Bottleneck):
    """The port's refine ``Bottleneck(in, 128)``: output 2 * planes, and a 1x1
    conv-BN projection shortcut even where the width does not change (TF:
    identity there)."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int = 128):
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * self.expansion, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM))
        super().__init__(inplanes, planes, 1, downsample)


class Resize(nn.Module):
    """Bilinear resize to a fixed size (align_corners=True), as ``nn.Upsample``."""

    def __init__(self, size: tuple[int, int] | None = None, scale: int | None = None):
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, scale_factor=self.scale, mode="bilinear", align_corners=True)


def conv_bn(cin: int, cout: int, kernel: int, relu: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class GlobalNet(nn.Module):
    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int]):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Sequential(*conv_bn(c, channels, 1, True)) for c in LEVEL_CHANNELS)
        self.upsamples = nn.ModuleList(nn.Sequential(Resize(scale=2), *conv_bn(channels, channels, 1, False))
                                       for _ in LEVEL_CHANNELS[:-1])
        self.predict = nn.ModuleList(
            nn.Sequential(*conv_bn(channels, channels, 1, True),
                          nn.Conv2d(channels, num_joints, 3, padding=1, bias=False), Resize(size=out_hw),
                          nn.BatchNorm2d(num_joints, momentum=BN_MOMENTUM))
            for _ in LEVEL_CHANNELS)

    def forward(self, feats: list[torch.Tensor]):
        fms, outs, up = [], [], None
        for i, x in enumerate(feats):
            feature = self.laterals[i](x) if up is None else self.laterals[i](x) + up
            fms.append(feature)
            if i < len(self.upsamples):
                up = self.upsamples[i](feature)
            outs.append(self.predict[i](feature))
        return fms, outs


class RefineNet(nn.Module):
    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int]):
        super().__init__()
        levels = len(LEVEL_CHANNELS)
        self.cascade = nn.ModuleList(
            nn.Sequential(*[RefineBottleneck(channels) for _ in range(levels - 1 - i)], Resize(size=out_hw))
            for i in range(levels))
        self.final_predict = nn.Sequential(RefineBottleneck(levels * channels),
                                           nn.Conv2d(256, num_joints, 3, padding=1, bias=False),
                                           nn.BatchNorm2d(num_joints, momentum=BN_MOMENTUM))

    def forward(self, fms: list[torch.Tensor]) -> torch.Tensor:
        return self.final_predict(torch.cat([c(f) for c, f in zip(self.cascade, fms)], dim=1))


class CPN(nn.Module):
    def __init__(self, num_layers: int, num_joints: int, out_hw: tuple[int, int], channels: int = 256):
        super().__init__()
        if channels != 256:
            raise ValueError("cpn: MODEL.EXTRA.CHANNELS must be 256 (the refine bottleneck's fixed 128 -> 256)")
        self.resnet = CPNResNet(DEPTHS[num_layers])
        self.global_net = GlobalNet(channels, num_joints, out_hw)
        self.refine_net = RefineNet(channels, num_joints, out_hw)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fms, outs = self.global_net(self.resnet(x))
        return outs + [self.refine_net(fms)]

    def init_weights(self, pretrained: str = "") -> None:
        """He init and BN (1, 0) as the port (which uses fan-out N(0, 2/n)),
        then an ImageNet torchvision ResNet into ``resnet`` when given."""
        init_conv_bn_(self)
        if pretrained:
            import os
            if not os.path.isfile(pretrained):
                raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                      f"(set MODEL.PRETRAINED '' to train from scratch)")
            load_pretrained_backbone(self.resnet, pretrained)


def get_pose_net(cfg, is_train: bool) -> CPN:
    extra = read_extra(cfg, EXTRA_DEFAULTS, "cpn")
    if extra.NUM_LAYERS not in DEPTHS:
        raise ValueError(f"MODEL.EXTRA.NUM_LAYERS = {extra.NUM_LAYERS}: cpn supports {sorted(DEPTHS)}")
    model = CPN(extra.NUM_LAYERS, cfg.MODEL.NUM_JOINTS, heatmap_hw(cfg), extra.CHANNELS)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
