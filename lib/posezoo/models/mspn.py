"""MSPN: Multi-Stage Pose Network (Li et al., "Rethinking on Multi-Stage
Networks for Human Pose Estimation", 2019; megvii-detection/MSPN).

S stages of a ResNet-50 "single-stage module" (a ResNet body, then 4 upsample
units, coarsest first). Every unit predicts a heatmap; from the second stage on
each ResNet layer adds ``skip1 + skip2`` from the previous stage (cross-stage
feature aggregation), and the previous stage's finest unit, through a 1x1
``cross_conv`` to 64 channels, replaces the ResNet top as the stage input
(official ``exps/mspn.2xstg.coco/network.py:96-368``).

The skeleton here is shared with RSN (``models/rsn.py``), which only swaps the
block. Two checkpoint layouts, chosen by ``MODEL.EXTRA.LAYOUT``:

- ``official``: the authors' module tree (``top.conv``, ``stage{i}.downsample``,
  ``stage{i}.upsample.up{u}.{u_skip,up_conv,skip1,skip2,cross_conv,res_conv1,
  res_conv2}``); every conv carries a bias (nn.Conv2d default), even before BN.
- ``mmpose``: mmpose's converted tree (``backbone.top.top.0``,
  ``backbone.multi_stage_{mspn,rsn}.{i}``, ``in_skip/out_skip1/out_skip2``, the
  per-unit ``res_conv1/2`` moved to ``head.predict_layers.{4i+u}.conv_layers``),
  bias-free convs before BN.

Deliberate differences from the official code: ``forward`` returns all 4*S maps
(stage-major, coarsest unit first; the official one returns only the last map
at test time and keeps the others inside its loss), and each unit resizes the
previous unit to its own backbone feature's size rather than to ``h//8 ...``
of the output (identical whenever the official code runs: input = 4x output,
divisible by 32). ``MODEL.EXTRA.USE_PRM`` appends RSN's Pose Refine Machine to
the last map (``models/rsn.py``); no released MSPN uses it.
"""
from __future__ import annotations

import logging
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..config import read_extra
from .checkpoint import CheckpointError, read_checkpoint, unwrap_state_dict
from .common import Bottleneck, ConvUnit, init_conv_bn_

logger = logging.getLogger(__name__)

LAYOUTS = ("official", "mmpose")
NUM_UNITS = 4

EXTRA_DEFAULTS = {
    "NUM_STAGES": 2,
    "UNIT_CHANNELS": 256,
    "NUM_BLOCKS": [3, 4, 6, 3],
    "LAYOUT": "official",
    "USE_PRM": False,
}

# per layout: the unit's sub-module names, in the official construction order
UNIT_NAMES = {
    "official": {"in": "u_skip", "up": "up_conv", "skip1": "skip1", "skip2": "skip2", "cross": "cross_conv"},
    "mmpose": {"in": "in_skip", "up": "up_conv", "skip1": "out_skip1", "skip2": "out_skip2", "cross": "cross_conv"},
}


class OfficialBottleneck(nn.Module):
    """MSPN's ``Bottleneck`` (network.py:49-78): the ResNet v1.5 bottleneck
    (stride in the 3x3) built from biased ``conv_bn_relu`` units. mmpose's
    layout uses ``common.Bottleneck`` instead (same maths without the biases)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv_bn_relu1 = ConvUnit(inplanes, planes, 1, bn=True, relu=True)
        self.conv_bn_relu2 = ConvUnit(planes, planes, 3, stride, bn=True, relu=True)
        self.conv_bn_relu3 = ConvUnit(planes, planes * self.expansion, 1, bn=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_bn_relu3(self.conv_bn_relu2(self.conv_bn_relu1(x)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


def mspn_block(layout: str):
    """(block constructor (inplanes, planes, stride, downsample), expansion, bias)."""
    if layout == "official":
        return OfficialBottleneck, OfficialBottleneck.expansion, True
    return Bottleneck, Bottleneck.expansion, False


class ResNetBody(nn.Module):
    """``ResNet_downsample_module`` (network.py:96-155): layer1..4, each output
    plus the previous stage's ``skip1 + skip2`` when ``has_skip``; returns the
    four features coarsest first."""

    def __init__(self, block, expansion: int, num_blocks: list[int], has_skip: bool, bias: bool,
                 inplanes: int = 64):
        super().__init__()
        self.has_skip = has_skip
        for i, blocks in enumerate(num_blocks):
            planes, stride = 64 * 2 ** i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * expansion:
                downsample = ConvUnit(inplanes, planes * expansion, 1, stride, bn=True, bias=bias)
            layers = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * expansion
            layers += [block(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.num_layers = len(num_blocks)

    def forward(self, x, skip1, skip2) -> list[torch.Tensor]:
        feats = []
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
            if self.has_skip:
                x = x + skip1[i] + skip2[i]
            feats.append(x)
        return feats[::-1]


def heatmap_convs(channels: int, num_joints: int, bias: bool) -> tuple[nn.Module, nn.Module]:
    """A unit's heatmap predictor (official ``res_conv1/2``, mmpose
    ``PredictHeatmap.conv_layers``): 1x1 + BN + ReLU, then 3x3 to K + BN."""
    return (ConvUnit(channels, channels, 1, bn=True, relu=True, bias=bias),
            ConvUnit(channels, num_joints, 3, bn=True, bias=bias))


class UpsampleUnit(nn.Module):
    """``Upsample_unit`` (network.py:158-223): the lateral 1x1 (+BN) of the
    backbone feature plus 1x1 (+BN) of the bilinearly upsampled previous unit
    (align_corners=True), ReLU; the skips for the next stage and the cross conv
    where the stage is not the last. The official layout also owns the unit's
    heatmap convs (``res_conv1/2``)."""

    def __init__(self, index: int, in_planes: int, channels: int, num_joints: int, gen_skip: bool,
                 layout: str, bias: bool):
        super().__init__()
        names = UNIT_NAMES[layout]
        self.names = names
        self.index = index
        self.gen_skip = gen_skip
        self.gen_cross = gen_skip and index == NUM_UNITS - 1
        setattr(self, names["in"], ConvUnit(in_planes, channels, 1, bn=True, bias=bias))
        if index > 0:
            setattr(self, names["up"], ConvUnit(channels, channels, 1, bn=True, bias=bias))
        if gen_skip:
            setattr(self, names["skip1"], ConvUnit(in_planes, in_planes, 1, bn=True, relu=True, bias=bias))
            setattr(self, names["skip2"], ConvUnit(channels, in_planes, 1, bn=True, relu=True, bias=bias))
        if self.gen_cross:
            setattr(self, names["cross"], ConvUnit(channels, 64, 1, bn=True, relu=True, bias=bias))
        self.owns_head = layout == "official"
        if self.owns_head:
            self.res_conv1, self.res_conv2 = heatmap_convs(channels, num_joints, bias)

    def part(self, role: str) -> nn.Module:
        return getattr(self, self.names[role])

    def forward(self, x: torch.Tensor, up_x: torch.Tensor | None):
        out = self.part("in")(x)
        if self.index > 0:
            up_x = F.interpolate(up_x, size=x.shape[-2:], mode="bilinear", align_corners=True)
            out = out + self.part("up")(up_x)
        out = F.relu(out)
        skip1 = self.part("skip1")(x) if self.gen_skip else None
        skip2 = self.part("skip2")(out) if self.gen_skip else None
        cross = self.part("cross")(out) if self.gen_cross else None
        return out, skip1, skip2, cross

    def heatmap(self, feature: torch.Tensor) -> torch.Tensor:
        return self.res_conv2(self.res_conv1(feature))


class UpsampleModule(nn.Module):
    """``Upsample_module``: units ``up1..up4`` from the coarsest feature."""

    def __init__(self, in_planes: list[int], channels: int, num_joints: int, gen_skip: bool, layout: str,
                 bias: bool):
        super().__init__()
        for u, planes in enumerate(in_planes):
            setattr(self, f"up{u + 1}", UpsampleUnit(u, planes, channels, num_joints, gen_skip, layout, bias))

    def units(self) -> list[UpsampleUnit]:
        return [getattr(self, f"up{u + 1}") for u in range(NUM_UNITS)]

    def forward(self, feats: list[torch.Tensor]):
        outs, skip1, skip2, cross, up = [], [], [], None, None
        for unit, x in zip(self.units(), feats):
            up, s1, s2, c = unit(x, up)
            outs.append(up)
            skip1.append(s1)
            skip2.append(s2)
            cross = c if c is not None else cross
        return outs, skip1[::-1], skip2[::-1], cross


class SingleStage(nn.Module):
    """``Single_stage_module``: ``downsample`` (ResNet body) + ``upsample``."""

    def __init__(self, block, expansion: int, num_blocks: list[int], channels: int, num_joints: int,
                 has_skip: bool, gen_skip: bool, layout: str, bias: bool):
        super().__init__()
        self.downsample = ResNetBody(block, expansion, num_blocks, has_skip, bias)
        in_planes = [64 * 2 ** i * expansion for i in range(len(num_blocks))][::-1]
        self.upsample = UpsampleModule(in_planes, channels, num_joints, gen_skip, layout, bias)

    def forward(self, x, skip1, skip2):
        return self.upsample(self.downsample(x, skip1, skip2))


class Top(nn.Module):
    """``ResNet_top`` (official ``top.conv``): 7x7/2 conv + BN + ReLU, 3x3/2 max-pool."""

    def __init__(self, bias: bool):
        super().__init__()
        self.conv = ConvUnit(3, 64, 7, 2, bn=True, relu=True, bias=bias)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv(x))


class PredictHeatmap(nn.Module):
    """mmpose's ``PredictHeatmap`` (mspn_head.py:104-167) without its PRM: the
    unit's heatmap convs under ``conv_layers``."""

    def __init__(self, channels: int, num_joints: int):
        super().__init__()
        self.conv_layers = nn.Sequential(*heatmap_convs(channels, num_joints, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_layers(x)


class MultiStagePoseNet(nn.Module):
    """S single-stage modules chained by cross-stage aggregation (MSPN, RSN).

    ``block(inplanes, planes, stride, downsample)`` is the backbone block with
    ``expansion``; ``family`` names mmpose's stage list (``multi_stage_<family>``).
    Returns the 4*S heatmaps, stage-major, coarsest unit first, each resized to
    ``heatmap_hw`` (bilinear, align_corners=True); the last is the prediction.
    """

    def __init__(self, block, expansion: int, bias: bool, num_blocks: list[int], num_stages: int,
                 channels: int, num_joints: int, heatmap_hw: tuple[int, int], layout: str, family: str,
                 prm: nn.Module | None = None):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"MODEL.EXTRA.LAYOUT = {layout!r}: expected one of {LAYOUTS}")
        self.layout, self.family = layout, family
        self.num_stages = num_stages
        self.heatmap_hw = tuple(heatmap_hw)
        stages = [SingleStage(block, expansion, num_blocks, channels, num_joints, has_skip=i > 0,
                              gen_skip=i < num_stages - 1, layout=layout, bias=bias) for i in range(num_stages)]
        if layout == "official":
            self.top = Top(bias)
            for i, stage in enumerate(stages):
                setattr(self, f"stage{i}", stage)
        else:
            self.backbone = nn.Module()
            self.backbone.top = nn.Module()
            top = Top(bias)
            self.backbone.top.top = nn.Sequential(top.conv, top.maxpool)
            setattr(self.backbone, f"multi_stage_{family}", nn.ModuleList(stages))
            self.head = nn.Module()
            self.head.predict_layers = nn.ModuleList(
                PredictHeatmap(channels, num_joints) for _ in range(num_stages * NUM_UNITS))
        self.prm = prm

    def stem(self) -> nn.Module:
        return self.top if self.layout == "official" else self.backbone.top.top

    def stages(self) -> list[SingleStage]:
        if self.layout == "official":
            return [getattr(self, f"stage{i}") for i in range(self.num_stages)]
        return list(getattr(self.backbone, f"multi_stage_{self.family}"))

    def predictors(self) -> list:
        if self.layout == "official":
            return [unit.heatmap for stage in self.stages() for unit in stage.upsample.units()]
        return list(self.head.predict_layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem()(x)
        skip1 = skip2 = None
        feats = []
        for stage in self.stages():
            outs, skip1, skip2, x = stage(x, skip1, skip2)
            feats += outs
        maps = [F.interpolate(predict(f), size=self.heatmap_hw, mode="bilinear", align_corners=True)
                for predict, f in zip(self.predictors(), feats)]
        if self.prm is not None:
            maps[-1] = self.prm(maps[-1])
        return maps

    def init_weights(self, pretrained: str = "", imagenet_blocks: bool = True, bgr: bool = False) -> None:
        """The official init of the ResNet bodies and everything else
        (network.py:113-119): He fan-out convs, BN (1, 0); torch's default for
        conv biases. Then, with `pretrained`, a torchvision-layout ImageNet
        ResNet (``load_imagenet``)."""
        init_conv_bn_(self)
        if pretrained:
            if not os.path.isfile(pretrained):
                raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                      f"(set MODEL.PRETRAINED '' to train from scratch)")
            self.load_imagenet(unwrap_state_dict(read_checkpoint(pretrained), pretrained), pretrained,
                               imagenet_blocks, bgr)

    def imagenet_names(self, blocks: bool = True) -> dict[str, str]:
        """model key -> torchvision ResNet key for the stem and every stage's
        ResNet body (mmpose ``backbones/mspn.py:508-539`` loads the same ResNet
        into ``top`` and each stage's downsample module; MSPN's own
        ``resnet-50_rename.pth`` is a MegBrain file). `blocks`: the residual
        blocks are ResNet bottlenecks (MSPN); False (RSN, whose steps blocks
        have no ImageNet counterpart): the stem and the 1x1 shortcuts only."""
        stem = "top.conv" if self.layout == "official" else "backbone.top.top.0"
        names = {}
        for key in self.state_dict():
            if key.endswith(("num_batches_tracked", "conv.bias")):  # torchvision's convs have no bias
                continue
            if key.startswith(stem + "."):
                part, leaf = key[len(stem) + 1:].split(".", 1)
                names[key] = {"conv": "conv1", "bn": "bn1"}[part] + "." + leaf
                continue
            head, sep, rest = key.partition(".downsample.layer")
            if not sep or not (head.startswith("stage") or head.startswith("backbone.multi_stage_")):
                continue
            layer, block, tail = rest.split(".", 2)
            shortcut = re.fullmatch(r"downsample\.(conv|bn)\.(\w+)", tail)
            if shortcut:
                tail = f"downsample.{'0' if shortcut.group(1) == 'conv' else '1'}.{shortcut.group(2)}"
            elif not blocks:
                continue
            else:  # the official biased conv_bn_reluN units; mmpose's convN / bnN are torchvision's names
                unit = re.fullmatch(r"conv_bn_relu(\d)\.(conv|bn)\.(\w+)", tail)
                if unit:
                    tail = f"{unit.group(2)}{unit.group(1)}.{unit.group(3)}"
            names[key] = f"layer{layer}.{block}.{tail}"
        return names

    def load_imagenet(self, state: dict[str, torch.Tensor], source: str = "state dict",
                      blocks: bool = True, bgr: bool = False) -> list[str]:
        """Copy a torchvision ResNet state dict into the stem and every stage
        (``imagenet_names``); the biases of the official layout's convs whose
        weights came from the file are zeroed, so each body computes the
        ImageNet ResNet (torchvision's convs have none). A mapped key with
        another shape is an error (a ResNet of another depth or width); file
        keys left unused (``fc.*`` and blocks beyond NUM_BLOCKS) and backbone
        keys the file lacks are reported in one line. `bgr` (``DATASET.COLOR_RGB``
        false, MSPN/RSN's cv2 input): torchvision's filters expect RGB, so the
        stem conv's input channels are reversed. Returns the model keys loaded."""
        own = self.state_dict()
        names = self.imagenet_names(blocks)
        found = {k: t for k, t in names.items() if t in state}
        wrong = [f"{t} {tuple(state[t].shape)} -> {k} {tuple(own[k].shape)}"
                 for k, t in found.items() if state[t].shape != own[k].shape]
        if wrong:
            raise CheckpointError(f"ImageNet file {source} does not fit {type(self).__name__}: {wrong[0]}"
                                  f"{f' (+{len(wrong) - 1} more)' if len(wrong) > 1 else ''}; is it a ResNet "
                                  f"of another depth?")
        if not found:
            raise CheckpointError(f"ImageNet file {source} has no torchvision ResNet key (conv1.weight, "
                                  f"layer1.0..., expected) that fits {type(self).__name__}")
        used = set(found.values())
        unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
        zeroed = [k[:-len("weight")] + "bias" for k in found if k.endswith(".conv.weight")]
        zeroed = [k for k in zeroed if k in own]
        lacking = [k for k in names if k not in found and k not in zeroed]
        with torch.no_grad():
            for k, t in found.items():
                own[k].copy_(state[t].flip(1) if bgr and t == "conv1.weight" else state[t])
            for k in zeroed:
                own[k].zero_()
        logger.info("=> ImageNet %s: %d tensors into the stem and %d stage bodies; %d file keys unused (%s); "
                    "%d backbone keys not in the file (%s)", source, len(found), self.num_stages, len(unused),
                    ", ".join(unused[:4]) or "-", len(lacking), ", ".join(lacking[:4]) or "-")
        return list(found)


def check_extra(extra, owner: str) -> None:
    if extra.LAYOUT not in LAYOUTS:
        raise ValueError(f"{owner}: MODEL.EXTRA.LAYOUT = {extra.LAYOUT!r}: expected one of {LAYOUTS}")
    if extra.NUM_STAGES < 1:
        raise ValueError(f"{owner}: MODEL.EXTRA.NUM_STAGES = {extra.NUM_STAGES}: need at least 1")
    if len(extra.NUM_BLOCKS) != NUM_UNITS or min(extra.NUM_BLOCKS) < 1:
        raise ValueError(f"{owner}: MODEL.EXTRA.NUM_BLOCKS = {extra.NUM_BLOCKS}: need {NUM_UNITS} counts >= 1")


def heatmap_hw(cfg) -> tuple[int, int]:
    """(H, W) of the heatmaps from ``MODEL.HEATMAP_SIZE`` ([W, H])."""
    return int(cfg.MODEL.HEATMAP_SIZE[1]), int(cfg.MODEL.HEATMAP_SIZE[0])


def get_pose_net(cfg, is_train: bool) -> MultiStagePoseNet:
    extra = read_extra(cfg, EXTRA_DEFAULTS, "mspn")
    check_extra(extra, "mspn")
    block, expansion, bias = mspn_block(extra.LAYOUT)
    prm = None
    if extra.USE_PRM:
        from .rsn import PRM
        prm = PRM(cfg.MODEL.NUM_JOINTS, bias)
    model = MultiStagePoseNet(block, expansion, bias, list(extra.NUM_BLOCKS), extra.NUM_STAGES,
                              extra.UNIT_CHANNELS, cfg.MODEL.NUM_JOINTS, heatmap_hw(cfg), extra.LAYOUT, "mspn",
                              prm)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED, bgr=not cfg.DATASET.COLOR_RGB)
    return model
