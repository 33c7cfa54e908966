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
prediction.

``MODEL.EXTRA.LAYOUT: tf`` builds the authors' TensorFlow graph instead
(chenyilun95/tf-cpn @48ea10d ``models/*/network.py:15-73``, ``lib/nets/basemodel.py``),
whose released ``snapshot_350.ckpt`` files convert with ``tools/convert_tf_cpn.py``
(``tf_variable_map`` below; the reader is ``utils/tf_checkpoint.py``, no TensorFlow
needed). It differs from the port in: identity shortcuts in the cascade
bottlenecks (``resnet_v1.py:105-107``), a biased 1x1 ``merge`` conv without BN
after a resize to the lateral's size, BN before the resize in the heads, the
concat order res2..res5, and TF1's legacy ``resize_bilinear`` (align_corners
False, no half-pixel centres: source = destination x in/out). Its BN epsilon is
1.001e-5, not the 1e-9 of ``basemodel.py:16``: slim's fused batch norm went through
TF1's ``nn_impl.fused_batch_norm``, which raises any epsilon below 1.001e-5 to
1.001e-5 (the TF1 code the released models ran; TF 2.x dropped the clamp, so the
test's TF 2.21 graph sets 1.001e-5 explicitly; with 1e-9 in both the outputs agree
as well, tests/tools/test_convert_tf_cpn.py). Inputs are BGR minus
the BGR pixel means, /255 (``dataset.py:245-247``). ``MODEL.EXTRA.RESIZE``
(``align_corners`` / ``tf_legacy``; '' = the layout's own) picks the bilinear
rule of either layout.
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

LAYOUTS = ("pytorch", "tf")
RESIZES = {"pytorch": "align_corners", "tf": "tf_legacy"}
TF_BN_EPS = 1.001e-5
TF_LEVELS = (5, 4, 3, 2)

EXTRA_DEFAULTS = {"NUM_LAYERS": 50, "CHANNELS": 256, "LAYOUT": "pytorch", "RESIZE": ""}


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
    """The refine ``Bottleneck(in, 128)``: output 2 * planes. The port always has a
    1x1 conv-BN projection shortcut, even where the width does not change; TF
    (slim's ``bottleneck(depth=256, depth_bottleneck=128)``) has an identity
    there (``projection=False``)."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int = 128, projection: bool = True):
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * self.expansion, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)) if projection else None
        super().__init__(inplanes, planes, 1, downsample)


def _legacy_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    n_in = x.shape[dim]
    src = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
    low = src.floor()
    lo, hi = low.long(), torch.clamp(src.ceil().long(), max=n_in - 1)
    shape = [1] * x.dim()
    shape[dim] = size
    a, b = x.index_select(dim, lo), x.index_select(dim, hi)
    return a + (b - a) * (src - low).to(x.dtype).view(shape)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Bilinear resize of NCHW maps. ``align_corners``: ``nn.Upsample(align_corners=True)``
    (the port). ``tf_legacy``: TF1 ``tf.image.resize_bilinear`` defaults
    (resize_bilinear_op.cc with LegacyScaler: source = destination x in/out in float32,
    neighbours floor/ceil clamped to the edge, width interpolated before height)."""
    if mode == "align_corners":
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return _legacy_axis(_legacy_axis(x, size[1], -1), size[0], -2)


class Resize(nn.Module):
    """Bilinear resize to a fixed size or by an integer scale (``resize_bilinear``'s rules)."""

    def __init__(self, size: tuple[int, int] | None = None, scale: int | None = None, mode: str = "align_corners"):
        super().__init__()
        self.size, self.scale, self.mode = size, scale, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.size or (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        return resize_bilinear(x, size, self.mode)


def conv_bn(cin: int, cout: int, kernel: int, relu: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class GlobalNet(nn.Module):
    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int], mode: str = "align_corners"):
        super().__init__()
        self.laterals = nn.ModuleList(nn.Sequential(*conv_bn(c, channels, 1, True)) for c in LEVEL_CHANNELS)
        self.upsamples = nn.ModuleList(nn.Sequential(Resize(scale=2, mode=mode), *conv_bn(channels, channels, 1, False))
                                       for _ in LEVEL_CHANNELS[:-1])
        self.predict = nn.ModuleList(
            nn.Sequential(*conv_bn(channels, channels, 1, True),
                          nn.Conv2d(channels, num_joints, 3, padding=1, bias=False), Resize(size=out_hw, mode=mode),
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
    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int], mode: str = "align_corners"):
        super().__init__()
        levels = len(LEVEL_CHANNELS)
        self.cascade = nn.ModuleList(
            nn.Sequential(*[RefineBottleneck(channels) for _ in range(levels - 1 - i)], Resize(size=out_hw, mode=mode))
            for i in range(levels))
        self.final_predict = nn.Sequential(RefineBottleneck(levels * channels),
                                           nn.Conv2d(256, num_joints, 3, padding=1, bias=False),
                                           nn.BatchNorm2d(num_joints, momentum=BN_MOMENTUM))

    def forward(self, fms: list[torch.Tensor]) -> torch.Tensor:
        return self.final_predict(torch.cat([c(f) for c, f in zip(self.cascade, fms)], dim=1))


class TFGlobalNet(nn.Module):
    """tf-cpn ``create_global_net`` (network.py:15-52), modules named by its scopes,
    levels coarsest first: ``lateral``/``tmp`` 1x1 conv-BN-ReLU, ``merge`` a biased
    1x1 conv after resizing the coarser level to the lateral's size, ``pyramid``
    3x3 conv-BN, then the resize to the heatmap size."""

    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int], mode: str = "tf_legacy"):
        super().__init__()
        self.out_hw, self.mode = out_hw, mode
        self.lateral = nn.ModuleDict({f"res{k}": nn.Sequential(*conv_bn(c, channels, 1, True))
                                      for k, c in zip(TF_LEVELS, LEVEL_CHANNELS)})
        self.merge = nn.ModuleDict({f"res{k}": nn.Conv2d(channels, channels, 1) for k in TF_LEVELS[1:]})
        self.tmp = nn.ModuleDict({f"res{k}": nn.Sequential(*conv_bn(channels, channels, 1, True)) for k in TF_LEVELS})
        self.pyramid = nn.ModuleDict({f"res{k}": nn.Sequential(*conv_bn(channels, num_joints, 3, False))
                                      for k in TF_LEVELS})

    def forward(self, feats: list[torch.Tensor]):
        fms, outs, last = [], [], None
        for k, x in zip(TF_LEVELS, feats):
            lateral = self.lateral[f"res{k}"](x)
            if last is not None:
                lateral = self.merge[f"res{k}"](resize_bilinear(last, lateral.shape[-2:], self.mode)) + lateral
            last = lateral
            fms.append(last)
            out = self.pyramid[f"res{k}"](self.tmp[f"res{k}"](last))
            outs.append(resize_bilinear(out, self.out_hw, self.mode))
        return fms, outs


class TFRefineNet(nn.Module):
    """tf-cpn ``create_refine_net`` (network.py:54-73): res{k} through k-2 identity-
    shortcut bottlenecks (``res{k}/refine_conv{j}``), resized, concatenated res2..res5,
    ``final_bottleneck`` (projection 1024 -> 256) and ``refine_out`` 3x3 conv-BN."""

    def __init__(self, channels: int, num_joints: int, out_hw: tuple[int, int], mode: str = "tf_legacy"):
        super().__init__()
        self.out_hw, self.mode = out_hw, mode
        self.cascade = nn.ModuleDict({f"res{k}": nn.Sequential(*[RefineBottleneck(channels, projection=False)
                                                                 for _ in range(k - 2)]) for k in TF_LEVELS[::-1]})
        self.final_bottleneck = RefineBottleneck(len(TF_LEVELS) * channels)
        self.out = nn.Sequential(*conv_bn(256, num_joints, 3, False))

    def forward(self, fms: list[torch.Tensor]) -> torch.Tensor:
        parts = [resize_bilinear(self.cascade[f"res{k}"](fm), self.out_hw, self.mode)
                 for k, fm in zip(TF_LEVELS[::-1], fms[::-1])]
        return self.out(self.final_bottleneck(torch.cat(parts, dim=1)))


class CPN(nn.Module):
    def __init__(self, num_layers: int, num_joints: int, out_hw: tuple[int, int], channels: int = 256,
                 layout: str = "pytorch", resize: str = ""):
        super().__init__()
        if channels != 256:
            raise ValueError("cpn: MODEL.EXTRA.CHANNELS must be 256 (the refine bottleneck's fixed 128 -> 256)")
        if layout not in LAYOUTS:
            raise ValueError(f"MODEL.EXTRA.LAYOUT = {layout!r}: cpn expects one of {LAYOUTS}")
        mode = resize or RESIZES[layout]
        if mode not in RESIZES.values():
            raise ValueError(f"MODEL.EXTRA.RESIZE = {resize!r}: cpn expects '' or one of {tuple(RESIZES.values())}")
        self.layout = layout
        self.resnet = CPNResNet(DEPTHS[num_layers])
        heads = (GlobalNet, RefineNet) if layout == "pytorch" else (TFGlobalNet, TFRefineNet)
        self.global_net = heads[0](channels, num_joints, out_hw, mode)
        self.refine_net = heads[1](channels, num_joints, out_hw, mode)
        if layout == "tf":
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps = TF_BN_EPS

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fms, outs = self.global_net(self.resnet(x))
        return outs + [self.refine_net(fms)]

    def init_weights(self, pretrained: str = "") -> None:
        """He init and BN (1, 0) as the port (which uses fan-out N(0, 2/n)),
        then an ImageNet torchvision ResNet into ``resnet`` when given."""
        init_conv_bn_(self)
        if self.layout == "tf":
            for conv in self.global_net.merge.values():
                nn.init.zeros_(conv.bias)
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
    model = CPN(extra.NUM_LAYERS, cfg.MODEL.NUM_JOINTS, heatmap_hw(cfg), extra.CHANNELS, extra.LAYOUT, extra.RESIZE)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model


def _tf_conv_bn(tf_scope: str, conv: str, bn: str | None) -> dict[str, str]:
    names = {f"{tf_scope}/weights": f"{conv}.weight"}
    if bn is None:
        names[f"{tf_scope}/biases"] = f"{conv}.bias"
        return names
    for tf_name, name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                          ("moving_variance", "running_var")):
        names[f"{tf_scope}/BatchNorm/{tf_name}"] = f"{bn}.{name}"
    return names


def _tf_bottleneck(tf_scope: str, prefix: str, projection: bool) -> dict[str, str]:
    names = {}
    for j in (1, 2, 3):
        names.update(_tf_conv_bn(f"{tf_scope}/conv{j}", f"{prefix}.conv{j}", f"{prefix}.bn{j}"))
    if projection:
        names.update(_tf_conv_bn(f"{tf_scope}/shortcut", f"{prefix}.downsample.0", f"{prefix}.downsample.1"))
    return names


def tf_variable_map(num_layers: int) -> dict[str, str]:
    """tf-cpn variable name -> ``LAYOUT: tf`` state_dict key. Slim's names: ResNet
    units ``resnet_v1_{50,101}/block{b}/unit_{u}/bottleneck_v1/{conv1,conv2,conv3,shortcut}``
    (a projection ``shortcut`` only in each block's first unit, where the width changes;
    the stride sits there too, ``basemodel.py:40-49``), every conv ``.../weights`` (HWIO)
    with ``.../BatchNorm/{gamma,beta,moving_mean,moving_variance}``, the merge convs
    ``merge/res{k}/{weights,biases}``."""
    if num_layers not in DEPTHS:
        raise ValueError(f"cpn: no TF ResNet-{num_layers}; expected one of {sorted(DEPTHS)}")
    scope = f"resnet_v1_{num_layers}"
    names = _tf_conv_bn(f"{scope}/conv1", "resnet.conv1", "resnet.bn1")
    for b, blocks in enumerate(DEPTHS[num_layers]):
        for u in range(blocks):
            names.update(_tf_bottleneck(f"{scope}/block{b + 1}/unit_{u + 1}/bottleneck_v1",
                                        f"resnet.layer{b + 1}.{u}", u == 0))
    for k in TF_LEVELS:
        for part in ("lateral", "tmp", "pyramid"):
            names.update(_tf_conv_bn(f"{part}/res{k}", f"global_net.{part}.res{k}.0", f"global_net.{part}.res{k}.1"))
        if k != TF_LEVELS[0]:
            names.update(_tf_conv_bn(f"merge/res{k}", f"global_net.merge.res{k}", None))
        for j in range(k - 2):
            names.update(_tf_bottleneck(f"res{k}/refine_conv{j}", f"refine_net.cascade.res{k}.{j}", False))
    names.update(_tf_bottleneck("final_bottleneck", "refine_net.final_bottleneck", True))
    names.update(_tf_conv_bn("refine_out", "refine_net.out.0", "refine_net.out.1"))
    return names


def convert_tf_state(read, names: list[str], num_layers: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A ``LAYOUT: tf`` state dict from a TF checkpoint's tensors: ``read(name)``
    returns one as a numpy array, ``names`` lists the checkpoint's. Conv kernels
    HWIO -> OIHW; ``num_batches_tracked`` 0 as a fresh BN. Returns the state and
    the checkpoint names not used (optimizer slots such as ``.../Adam``, ``global_step``).
    A required variable that is missing is a ``CheckpointError`` naming it."""
    mapping = tf_variable_map(num_layers)
    present = set(names)
    missing = [n for n in mapping if n not in present]
    if missing:
        raise CheckpointError(f"TF checkpoint lacks {len(missing)} tf-cpn ResNet-{num_layers} variables, "
                              f"e.g. {missing[0]} (another depth, or not a tf-cpn checkpoint?)")
    state = {}
    for tf_name, key in mapping.items():
        value = torch.from_numpy(read(tf_name))
        state[key] = value.permute(3, 2, 0, 1).contiguous() if value.dim() == 4 else value
        if key.endswith(".running_var"):
            state[key[:-len("running_var")] + "num_batches_tracked"] = torch.tensor(0)
    return state, [n for n in names if n not in mapping]
