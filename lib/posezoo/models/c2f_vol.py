"""Coarse-to-fine volumetric stacked hourglass: Pavlakos, Zhou, Derpanis and
Daniilidis, "Coarse-to-Fine Volumetric Prediction for Single-Image 3D Human
Pose", CVPR 2017 (training code geopavlakos/c2f-vol-train, Lua Torch).

Stack s predicts, for each of the K joints, a volume of D_s depth bins over the
64 x 64 heatmap grid of a 256 x 256 crop (``opts.lua``: ``-inputRes 256``,
``-outputRes 64``). The depth resolutions grow from stack to stack,
``VOLUMETRIC.RES_Z`` (``opts.lua`` ``-resZ``, the paper's 4-stack model
``1,2,4,64``): the first stack gives 2D heatmaps, the last the fine volume. Every
stack is supervised (``pose-c2f.lua:4-5``, one MSE per stack) and the codec
``volumetric`` decodes the last one.

Output: a list with one (N, K * D_s, H/4, W/4) tensor per stack, joint-major
(channel ``k * D_s + d``). That is the official layout (``pose-c2f.lua:23-26``)
and a plain conv output, so flip, intermediate supervision and the 2D tooling
treat it as heatmaps; ``codecs.volumetric.volumes`` views it as (N, K, D_s, H, W)
without a copy.

Architecture, ``MODEL.EXTRA.LAYOUT``:

- ``stacked`` (default): the paper's models, c2f-vol-train
  ``src/models/hg-stacked-{2,3,4}.lua`` (the README: "to replicate the models
  used in our paper") generalised to any number of stacks. Stem conv 7x7/2 to
  F/4 + BN-ReLU, residual to F/2, max-pool (kept: ``pool``), three residuals to F
  (``hg-stacked-4.lua:38-44``). Each hourglass (``:3-25``) has three residuals per
  branch, F wide inside and 2F at its output; then two 1x1 conv-BN-ReLU ``lin``
  (2F -> 2F -> F, the last stack 2F -> 2F), the output conv, and into the next
  stack ``conv(cat(features, previous features)) + conv(output)`` where the
  previous features are the stem's ``pool`` for the first stack (``:50-60``).
  F = 256 gives the official widths (128, 256, 384, 512).
- ``generic``: c2f-vol-train ``src/models/hg.lua`` with one residual per branch
  (``-nModules 1``): the princeton stem (``hg.lua:38-43``), per stack an hourglass
  (``:3-25``), a residual and a 1x1 conv-BN-ReLU (``:52-55``), the output conv
  (``:58-63``) and ``inter + conv(features) + conv(output)`` (``:67-71``). These
  are posezoo's princeton modules (``pose_hourglass.PrincetonHourglassNet`` with
  one output width per stack). ``-nModules`` > 1 is not built.

Every residual is the Lua ``Residual`` (``layers/Residual.lua``): posezoo's
``PreActBottleneck`` (a 1x1 projection only where the width changes).

``MODEL.EXTRA`` (defaults: ``opts.lua``): ``LAYOUT`` ('stacked'),
``NUM_FEATURES`` (256, ``-nFeats``; a multiple of 4), ``DEPTH`` (4, the
hourglass levels). The number of stacks is ``len(VOLUMETRIC.RES_Z)``.

No checkpoint: the official models are Torch7 ``.t7`` files (not loadable
here), so the weights start from PyTorch's default init, and
``MODEL.PRETRAINED`` may name a whole checkpoint of this model (loaded strictly).
"""
from __future__ import annotations

import torch
from torch import nn

from ..codecs.volumetric import volumetric_settings
from ..config import ConfigError, read_extra
from .common import BN_MOMENTUM, PreActBottleneck, upsample_to
from .pose_hourglass import PrincetonHourglassNet, StackedHourglass

LAYOUTS = ("stacked", "generic")
EXTRA_DEFAULTS = {"LAYOUT": "stacked", "NUM_FEATURES": 256, "DEPTH": 4}


def residual_chain(widths: list[int]) -> nn.Sequential:
    """Lua ``Residual``s from widths[0] through each following width."""
    return nn.Sequential(*[PreActBottleneck(a, b) for a, b in zip(widths, widths[1:])])


def lin(inplanes: int, outplanes: int) -> nn.Sequential:
    """The Lua ``lin``: 1x1 conv (biased), BN, ReLU (``hg-stacked-4.lua:27-31``)."""
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1), nn.BatchNorm2d(outplanes, momentum=BN_MOMENTUM),
                         nn.ReLU(inplace=True))


class StackedHourglassLevel(nn.Module):
    """``hourglass(n, numIn, numOut)`` of ``hg-stacked-4.lua:3-25``: three residuals
    on each branch, ``mid`` wide inside, ``outplanes`` at the output."""

    def __init__(self, depth: int, inplanes: int, mid: int, outplanes: int):
        super().__init__()
        self.up = residual_chain([inplanes, mid, mid, outplanes])
        self.low = residual_chain([inplanes, mid, mid, mid])
        self.inner = (StackedHourglassLevel(depth - 1, mid, mid, outplanes) if depth > 1
                      else PreActBottleneck(mid, outplanes))
        self.low_out = PreActBottleneck(outplanes, outplanes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        low = self.low_out(self.inner(self.low(nn.functional.max_pool2d(x, 2, 2))))
        return up + upsample_to(low, up)


class C2FStackedNet(StackedHourglass):
    """``LAYOUT: stacked`` (the paper's hg-stacked-N.lua); ``forward`` returns every
    stack's output. Its own forward carries the previous stack's features into the
    next; ``init_weights`` is the hourglass's (default init, or a whole checkpoint)."""

    def __init__(self, num_joints: int, res_z: list[int], num_features: int = 256, depth: int = 4):
        super().__init__(len(res_z))
        f = num_features
        self.num_joints, self.res_z = num_joints, list(res_z)
        self.conv1 = nn.Sequential(nn.Conv2d(3, f // 4, 7, 2, 3), nn.BatchNorm2d(f // 4, momentum=BN_MOMENTUM),
                                   nn.ReLU(inplace=True))
        self.r1 = PreActBottleneck(f // 4, f // 2)
        self.pre = residual_chain([f // 2, f // 2, f // 2, f])
        n = len(res_z)
        carried = [f // 2] + [f] * (n - 1)  # features concatenated into the next stack: pool, then l_b
        inputs = [f] + [f + c for c in carried[:-1]]
        last = [i == n - 1 for i in range(n)]
        self.hgs = nn.ModuleList(StackedHourglassLevel(depth, inputs[i], f, 2 * f) for i in range(n))
        self.lins = nn.ModuleList(nn.Sequential(lin(2 * f, 2 * f), lin(2 * f, 2 * f if last[i] else f))
                                  for i in range(n))
        self.outs = nn.ModuleList(nn.Conv2d(2 * f if last[i] else f, num_joints * d, 1) for i, d in enumerate(res_z))
        self.out_remaps = nn.ModuleList(nn.Conv2d(num_joints * res_z[i], f + carried[i], 1) for i in range(n - 1))
        self.cat_remaps = nn.ModuleList(nn.Conv2d(f + carried[i], f + carried[i], 1) for i in range(n - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        pool = nn.functional.max_pool2d(self.r1(self.conv1(x)), 2, 2)
        inter, carried = self.pre(pool), pool
        outputs = []
        for i, hg in enumerate(self.hgs):
            features = self.lins[i](hg(inter))
            out = self.outs[i](features)
            outputs.append(out)
            if i < len(self.out_remaps):
                inter = self.cat_remaps[i](torch.cat([features, carried], 1)) + self.out_remaps[i](out)
                carried = features
        return outputs


class C2FGenericNet(PrincetonHourglassNet):
    """``LAYOUT: generic`` (hg.lua): stack s predicts ``num_joints * res_z[s]`` channels."""

    def __init__(self, num_joints: int, res_z: list[int], num_features: int = 256, depth: int = 4):
        super().__init__(num_joints, len(res_z), num_features, depth,
                         stack_channels=[num_joints * d for d in res_z])
        self.num_joints = num_joints
        self.res_z = list(res_z)


def get_pose_net(cfg, is_train: bool) -> nn.Module:
    """The model from ``MODEL.NUM_JOINTS``, ``VOLUMETRIC.RES_Z`` and ``MODEL.EXTRA``."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "c2f_vol")
    if extra.LAYOUT not in LAYOUTS:
        raise ConfigError(f"MODEL.EXTRA.LAYOUT = {extra.LAYOUT!r} for model c2f_vol: expected one of {LAYOUTS}")
    if extra.NUM_FEATURES < 4 or extra.NUM_FEATURES % 4:
        raise ConfigError(f"MODEL.EXTRA.NUM_FEATURES = {extra.NUM_FEATURES} for model c2f_vol: expected a positive "
                          f"multiple of 4 (the stem starts at NUM_FEATURES / 4; official 256)")
    if extra.DEPTH < 1:
        raise ConfigError(f"MODEL.EXTRA.DEPTH = {extra.DEPTH} for model c2f_vol: expected >= 1")
    res_z = volumetric_settings(cfg)["res_z"]
    net = C2FStackedNet if extra.LAYOUT == "stacked" else C2FGenericNet
    model = net(cfg.MODEL.NUM_JOINTS, res_z, extra.NUM_FEATURES, extra.DEPTH)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
