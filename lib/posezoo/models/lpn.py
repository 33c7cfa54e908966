"""LPN: Lightweight Pose Network (Zhang, Zhu and Ye, "Simple and Lightweight Human
Pose Estimation", arXiv:1911.10346, 2019).

LPN is SimpleBaseline made light (paper, Sec. 3):

- every ResNet bottleneck becomes a depthwise-separable one with expansion 1
  (``LWBottleneck``), so the stages have 64/128/256/512 channels;
- each block carries a global-context (GC) attention block before its residual
  sum (``ATTENTION: GC``);
- the last stage keeps stride 1, so the backbone stops at 1/16 resolution;
- the head has two grouped deconvolutions (groups = gcd(in, out)), each followed
  by BN-ReLU and a 1x1 convolution with BN-ReLU, which bring it to 1/4.

State-dict keys, their order and shapes equal the released ``lpn_*.pth`` files of
zhang943/lpn-pytorch (LPN-50/101/152 on COCO, LPN-50 on MPII), so they load with
``strict=True``.

``MODEL.EXTRA`` fields (all official; defaults are the paper's LPN-50):
``NUM_LAYERS`` (50, 101, 152), ``ATTENTION`` ('GC', 'SE' or '' for none),
``NUM_DECONV_LAYERS``, ``NUM_DECONV_FILTERS``, ``NUM_DECONV_KERNELS``,
``DECONV_WITH_BIAS`` and ``FINAL_CONV_KERNEL``. The official code builds no
attention when ``ATTENTION`` is absent; every official YAML sets 'GC', as does the
paper's model, so posezoo defaults to 'GC' and ``ATTENTION: ''`` asks for none.

Initialisation follows the official code exactly (see ``LPN.init_weights``): LPN
has no ImageNet pretraining, and its training init draws every Conv2d from
N(0, 0.001), which overrides the GC block's own zero init of its last conv.
"""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from ..config import read_extra
from .checkpoint import CheckpointError, load_pretrained_backbone
from .common import BN_MOMENTUM, check_deconv_head, deconv_head

logger = logging.getLogger(__name__)

# depth -> LWBottleneck blocks per stage (ResNet-50/101/152's stage depths).
LPN_SPEC = {
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}

EXTRA_DEFAULTS = {
    "NUM_LAYERS": 50,
    "ATTENTION": "GC",
    "DECONV_WITH_BIAS": False,
    "NUM_DECONV_LAYERS": 2,
    "NUM_DECONV_FILTERS": [256, 256],
    "NUM_DECONV_KERNELS": [4, 4],
    "FINAL_CONV_KERNEL": 1,
}

ATTENTIONS = ("GC", "SE", "")


def attention_width(channels: int, reduction: int = 16, minimum: int = 16) -> int:
    """Hidden width of the GC and SE bottleneck transforms: channels / 16, at least 16."""
    return max(channels // reduction, minimum)


class GCBlock(nn.Module):
    """Global context block (Cao et al., "GCNet: Non-local Networks Meet
    Squeeze-Excitation Networks and Beyond", ICCVW 2019), in the configuration LPN
    uses (paper, Sec. 3.2): attention pooling and channel-add fusion.

    Context modelling: a 1x1 conv gives one logit per position, a softmax over
    all positions turns them into weights, and the weighted sum of the features is
    a (C, 1, 1) context. Transform: 1x1 conv to ``hidden`` channels, LayerNorm over
    (hidden, 1, 1), ReLU, 1x1 conv back to C. The result is added to every position.

    Own init (as the official block): ``conv_mask`` He-normal (fan_in) with zero
    bias, the last conv of the transform all zero, so that the block starts as the
    identity. ``LPN.init_weights`` then redraws every conv weight (training only).
    Attribute names (``conv_mask``, ``channel_add_conv.{0,1,3}``) are the official
    checkpoint's, which is why this block lives here.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        last = self.channel_add_conv[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = torch.softmax(self.conv_mask(x).reshape(n, h * w), dim=1)  # (N, HW)
        context = torch.matmul(x.reshape(n, c, h * w), weights.reshape(n, h * w, 1))  # (N, C, 1)
        return x + self.channel_add_conv(context.reshape(n, c, 1, 1))


class SELayer(nn.Module):
    """Squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation Networks", CVPR
    2018), LPN's alternative attention (``ATTENTION: SE``): global average pool,
    two bias-free linear layers, sigmoid gate per channel. Keys ``fc.0`` and
    ``fc.2`` follow the official code."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        gate = self.fc(self.avg_pool(x).reshape(n, c)).reshape(n, c, 1, 1)
        return x * gate


class LWBottleneck(nn.Module):
    """LPN's lightweight bottleneck (paper, Sec. 3.1; ``LW_Bottleneck`` in the
    official code): 1x1 conv -> depthwise 3x3 conv (carrying the stride) -> 1x1
    conv, each with BN, then the attention block on the residual branch before the
    sum. Expansion is 1, unlike ResNet's 4.

    Its checkpoint layout (depthwise ``conv2``, an ``att`` submodule) differs from
    ``common.Bottleneck``, so it is defined here.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attention: str = "GC"):
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, width, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        if attention == "GC":
            self.att = GCBlock(width, attention_width(width))
        elif attention == "SE":
            self.att = SELayer(width, attention_width(width))
        else:
            self.att = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.att is not None:
            out = self.att(out)
        return self.relu(out + residual)


class LPN(nn.Module):
    """ResNet stem, four ``LWBottleneck`` stages (the last with stride 1), grouped
    deconvolution head, 1x1 (or 3x3) heatmap conv. Output stride 4 with the
    official two-deconv head."""

    def __init__(self, layers: list[int], num_joints: int, deconv_filters: list[int], deconv_kernels: list[int],
                 deconv_with_bias: bool = False, final_conv_kernel: int = 1, attention: str = "GC"):
        super().__init__()
        self.inplanes = 64
        self.deconv_with_bias = deconv_with_bias
        self.attention = attention
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=1)
        self.deconv_layers = deconv_head(self.inplanes, deconv_filters, deconv_kernels, self.deconv_with_bias,
                                         lightweight=True)
        self.final_layer = nn.Conv2d(deconv_filters[-1], num_joints, kernel_size=final_conv_kernel, stride=1,
                                     padding=1 if final_conv_kernel == 3 else 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """A stage as ``common.make_res_layer`` builds it (projection shortcut where
        the shape changes), with the attention choice passed to every block."""
        width = planes * LWBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != width:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, width, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
            )
        layers = [LWBottleneck(self.inplanes, planes, stride, downsample, self.attention)]
        layers += [LWBottleneck(width, planes, attention=self.attention) for _ in range(1, blocks)]
        self.inplanes = width
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.final_layer(self.deconv_layers(x))

    def init_weights(self, pretrained: str = "") -> None:
        """The official training init, reproduced exactly (same draws, same order,
        so with the same seed the weights equal the official code's).

        Without a pretrained file (every official LPN YAML): every Conv2d weight
        ~ N(0, 0.001), including the GC block's ``conv_mask`` and its zero-initialised
        last conv; conv biases keep their values (zero in the GC block, PyTorch's
        default uniform for ``channel_add_conv.0`` and ``final_layer``); BatchNorm
        (1, 0); ConvTranspose2d ~ N(0, 0.001) with zero bias; LayerNorm and SE's
        Linear layers keep PyTorch's defaults.

        With a pretrained file: only the head is redrawn (ConvTranspose2d and
        ``final_layer`` ~ N(0, 0.001) with zero bias, head BN (1, 0); the head's
        1x1 convs keep PyTorch's default), then the file's tensors are loaded
        (``fc.*`` ignored). Unlike the official code, a file that does not exist or
        does not fit is an error, not a silent fallback.
        """
        if not pretrained:
            logger.info("=> LPN init: every conv and deconv ~ N(0, 0.001), BN (1, 0) (official, no pretraining)")
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=0.001)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.ConvTranspose2d):
                    nn.init.normal_(m.weight, std=0.001)
                    if self.deconv_with_bias:
                        nn.init.constant_(m.bias, 0)
            return
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                  f"(LPN trains from scratch: set MODEL.PRETRAINED '')")
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
                if self.deconv_with_bias:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)
        load_pretrained_backbone(self, pretrained)


def get_pose_net(cfg, is_train: bool) -> LPN:
    """LPN from ``cfg.MODEL`` (``NUM_JOINTS`` and the validated ``EXTRA``); the
    official training init when ``is_train`` and ``MODEL.INIT_WEIGHTS``."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "lpn")
    if extra.NUM_LAYERS not in LPN_SPEC:
        raise ValueError(f"MODEL.EXTRA.NUM_LAYERS = {extra.NUM_LAYERS}: lpn supports {sorted(LPN_SPEC)}")
    if extra.ATTENTION not in ATTENTIONS:
        raise ValueError(f"MODEL.EXTRA.ATTENTION = {extra.ATTENTION!r}: expected 'GC', 'SE' or '' (none)")
    check_deconv_head(extra, "lpn")

    model = LPN(LPN_SPEC[extra.NUM_LAYERS], cfg.MODEL.NUM_JOINTS, extra.NUM_DECONV_FILTERS,
                extra.NUM_DECONV_KERNELS, extra.DECONV_WITH_BIAS, extra.FINAL_CONV_KERNEL, extra.ATTENTION)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
