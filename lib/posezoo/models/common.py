"""Building blocks shared by several models (ResNet family, HRNet, ...).

Attribute names (conv1, bn1, ..., downsample) follow torchvision's ResNet so that
ImageNet files and the official pose checkpoints map onto them key for key.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

BN_MOMENTUM = 0.1

# deconv kernel -> (padding, output_padding) that exactly doubles the resolution
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def check_deconv_head(extra, owner: str) -> None:
    """Validate the deconvolution-head fields of MODEL.EXTRA shared by the
    SimpleBaseline-style heads (NUM_DECONV_*, FINAL_CONV_KERNEL)."""
    n_deconv = extra.NUM_DECONV_LAYERS
    if n_deconv < 1 or len(extra.NUM_DECONV_FILTERS) != n_deconv or len(extra.NUM_DECONV_KERNELS) != n_deconv:
        raise ValueError(f"{owner}: MODEL.EXTRA.NUM_DECONV_FILTERS and NUM_DECONV_KERNELS need "
                         f"NUM_DECONV_LAYERS (>= 1) entries")
    bad = [k for k in extra.NUM_DECONV_KERNELS if k not in DECONV_PADDING]
    if bad:
        raise ValueError(f"{owner}: MODEL.EXTRA.NUM_DECONV_KERNELS: kernel {bad[0]} unsupported; use 2, 3 or 4")
    if extra.FINAL_CONV_KERNEL not in (1, 3):
        raise ValueError(f"{owner}: MODEL.EXTRA.FINAL_CONV_KERNEL = {extra.FINAL_CONV_KERNEL}: expected 1 or 3")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (He et al. 2016, Fig. 5 left)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck (He et al. 2016, Fig. 5 right).

    ``stride_in_1x1=False`` is the torchvision ("pytorch") variant, which strides
    in the 3x3 conv; ``True`` is the original Caffe ResNet, which strides in the
    first 1x1 conv (SimpleBaseline's ``MODEL.STYLE: caffe``).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 stride_in_1x1: bool = False):
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride_3x3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class CaffeBottleneck(Bottleneck):
    """Bottleneck striding in its first 1x1 conv, as the Caffe ResNets do."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__(inplanes, planes, stride, downsample, stride_in_1x1=True)


def make_res_layer(block: type, inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """A ResNet stage; a 1x1 projection shortcut where shape changes."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)
