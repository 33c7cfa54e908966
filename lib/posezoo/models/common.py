"""Building blocks shared by several models (ResNet family, HRNet, ...).

Attribute names (conv1, bn1, ..., downsample) follow torchvision's ResNet so that
ImageNet files and the official pose checkpoints map onto them key for key.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

BN_MOMENTUM = 0.1

# deconv kernel -> (padding, output_padding) that exactly doubles the resolution
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def deconv_head(inplanes: int, filters: list[int], kernels: list[int], bias: bool,
                lightweight: bool = False) -> nn.Sequential:
    """SimpleBaseline's upsampling head: per step a stride-2 ConvTranspose2d, BN,
    ReLU (Xiao et al. 2018, ``pose_resnet.py:_make_deconv_layer``). LPN's
    lightweight variant (``lightweight``) groups the deconvolution by
    gcd(in, out) and follows it with a 1x1 conv, BN, ReLU that mixes the channels
    again (lpn-pytorch ``lpn.py:_make_deconv_layer``); the Sequential indices are
    the released checkpoints' keys."""
    layers = []
    for planes, kernel in zip(filters, kernels):
        padding, output_padding = DECONV_PADDING[kernel]
        layers += [nn.ConvTranspose2d(inplanes, planes, kernel_size=kernel, stride=2, padding=padding,
                                      output_padding=output_padding, bias=bias,
                                      groups=math.gcd(inplanes, planes) if lightweight else 1),
                   nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
        if lightweight:
            layers += [nn.Conv2d(planes, planes, kernel_size=1, bias=False),
                       nn.BatchNorm2d(planes, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
        inplanes = planes
    return nn.Sequential(*layers)


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


def init_conv_bn_(model: nn.Module) -> None:
    """torchvision's ResNet init: He (fan-out) convolutions, BatchNorm weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


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
        out += residual  # in place, as torchvision: neither BatchNorm nor conv backward reads its output
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck (He et al. 2016, Fig. 5 right).

    ``stride_in_1x1=False`` is the torchvision ("pytorch") variant, which strides
    in the 3x3 conv; ``True`` is the original Caffe ResNet, which strides in the
    first 1x1 conv (SimpleBaseline's ``MODEL.STYLE: caffe``). ``dilation`` dilates
    (and pads) the 3x3 conv, for stride-1 stages such as A2J's layer4.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 stride_in_1x1: bool = False, dilation: int = 1):
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride_3x3, padding=dilation, dilation=dilation,
                               bias=False)
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
        out += residual
        return self.relu(out)


class CaffeBottleneck(Bottleneck):
    """Bottleneck striding in its first 1x1 conv, as the Caffe ResNets do."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__(inplanes, planes, stride, downsample, stride_in_1x1=True)


def make_res_layer(block: type, inplanes: int, planes: int, blocks: int, stride: int = 1,
                   tail_dilation: int = 1) -> nn.Sequential:
    """A ResNet stage; a 1x1 projection shortcut where shape changes.

    ``tail_dilation`` dilates the blocks after the first (the first keeps
    dilation 1), the stride-1 layer4 of A2J's resnet.py; it needs a block taking
    ``dilation`` (Bottleneck)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    tail = {"dilation": tail_dilation} if tail_dilation != 1 else {}
    layers += [block(planes * block.expansion, planes, **tail) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


# Princeton-style hourglass blocks (princeton-vl/pytorch_stacked_hourglass), shared by
# pose_hourglass (its 'princeton' layout and bearpaw's residual) and AWR's hourglass.

class ConvUnit(nn.Module):
    """princeton's ``Conv``: a biased conv ('same' padding), then BN and ReLU where
    asked. The wrapper exists only for its key names (``conv``, ``bn``). MSPN/RSN's
    ``conv_bn_relu`` is the same module (biased conv before its BN); mmpose's
    ``ConvModule`` is it with ``bias=False``."""

    def __init__(self, inplanes: int, outplanes: int, kernel_size: int = 1, stride: int = 1,
                 bn: bool = False, relu: bool = False, bias: bool = True, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(inplanes, outplanes, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=bias,
                              groups=groups)
        self.bn = nn.BatchNorm2d(outplanes, momentum=BN_MOMENTUM) if bn else None
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Merge(nn.Module):
    """princeton's ``Merge``: one 1x1 ``ConvUnit`` without BN or ReLU (remapping)."""

    def __init__(self, inplanes: int, outplanes: int):
        super().__init__()
        self.conv = ConvUnit(inplanes, outplanes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PreActBottleneck(nn.Module):
    """The hourglass residual module (paper, Fig. 4 left): BN-ReLU-conv1x1 to
    out/2, BN-ReLU-conv3x3, BN-ReLU-conv1x1 to out, plus the shortcut; no
    activation after the sum. All convs carry a bias.

    It is not ``common.Bottleneck`` (post-activation, expansion 4, bias-free), and
    the two layouts name its parts differently:

    - bearpaw: plain ``conv1-3``; shortcut ``downsample.0`` (1x1 conv) only where
      the width changes, identity elsewhere.
    - princeton: ``conv1-3`` are ``ConvUnit`` wrappers; ``skip_layer`` always
      exists and is applied only where the width changes.
    """

    def __init__(self, inplanes: int, outplanes: int, layout: str = "bearpaw"):
        super().__init__()
        mid = outplanes // 2
        if layout == "princeton":
            def conv(i, o, k):
                return ConvUnit(i, o, k)
        else:
            def conv(i, o, k):
                return nn.Conv2d(i, o, k, padding=(k - 1) // 2, bias=True)
        self.bn1 = nn.BatchNorm2d(inplanes, momentum=BN_MOMENTUM)
        self.conv1 = conv(inplanes, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM)
        self.conv2 = conv(mid, mid, 3)
        self.bn3 = nn.BatchNorm2d(mid, momentum=BN_MOMENTUM)
        self.conv3 = conv(mid, outplanes, 1)
        self.relu = nn.ReLU(inplace=True)
        self.project = inplanes != outplanes
        self.wrapped = layout == "princeton"
        if self.wrapped:
            self.skip_layer = ConvUnit(inplanes, outplanes, 1)  # unused where not self.project
        else:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, bias=True)) if self.project else None

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.project:
            return x
        return self.skip_layer(x) if self.wrapped else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + self.shortcut(x)


def upsample_to(low: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of `low` to the spatial size of `like`: the official x2
    where sizes are even, DarkPose's fixed 4x3 at its innermost 128x96 level."""
    return nn.functional.interpolate(low, size=like.shape[-2:], mode="nearest")


class PrincetonHourglass(nn.Module):
    """One hourglass level in princeton's layout (recursive modules): ``up1``
    (skip), ``low1`` (after the pool), ``low2`` (the next level, or a residual
    innermost), ``low3``."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.up1 = PreActBottleneck(channels, channels, "princeton")
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = PreActBottleneck(channels, channels, "princeton")
        self.low2 = (PrincetonHourglass(depth - 1, channels) if depth > 1
                     else PreActBottleneck(channels, channels, "princeton"))
        self.low3 = PreActBottleneck(channels, channels, "princeton")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low3 = self.low3(self.low2(self.low1(self.pool1(x))))
        return up1 + upsample_to(low3, up1)


# mmpose's module tree around a single-head heatmap net (pose_hrnet, pose_resnet: MODEL.EXTRA.LAYOUT mmpose).
LAYOUTS = ("official", "mmpose")


class MMPoseTopdown(nn.Module):
    """mmpose's ``TopdownPoseEstimator`` tree around a posezoo net: ``backbone``
    is the net without its head, ``head`` holds the head modules under mmpose's
    ``HeatmapHead`` names (``deconv_layers``, ``final_layer``; mmpose
    ``pose_estimators/base.py:52-64``, ``heads/heatmap_heads/heatmap_head.py:91-127``).
    So the state-dict keys are the official ones with ``backbone.`` before the
    body and ``head.`` before the head, in the same order; the maths is unchanged.

    The head modules move out of `net` (left there as parameter-free identities),
    so ``net.forward`` returns the features that mmpose's backbone returns.
    """

    def __init__(self, net: nn.Module, head_modules: tuple[str, ...]):
        super().__init__()
        self.backbone = net
        self.head = nn.Module()
        self.head_modules = tuple(head_modules)
        for name in self.head_modules:
            setattr(self.head, name, getattr(net, name))
            setattr(net, name, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)
        for name in self.head_modules:
            x = getattr(self.head, name)(x)
        return x


def checkpoint_layout(net: nn.Module, layout: str, head_modules: tuple[str, ...], owner: str) -> nn.Module:
    """`net` as is (``official``) or in mmpose's tree (``mmpose``, :class:`MMPoseTopdown`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"{owner}: MODEL.EXTRA.LAYOUT = {layout!r}: expected one of {', '.join(LAYOUTS)}")
    return net if layout == "official" else MMPoseTopdown(net, head_modules)
