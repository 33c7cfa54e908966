"""HRNet for pose: Sun et al., "Deep High-Resolution Representation Learning for
Human Pose Estimation", CVPR 2019.

A stem (two stride-2 3x3 convs and four Bottlenecks) feeds three stages of
parallel branches, one per resolution (stride 4, 8, 16, 32 for the published
nets). Each stage repeats a :class:`HighResolutionModule`: residual blocks on
every branch, then a fusion where every output resolution sums all branches.
Transitions between stages adapt the widths and open the new, lower-resolution
branches. The heatmaps come from the highest-resolution branch through one conv.

The layout is read from ``MODEL.EXTRA`` (STAGE2-4, FINAL_CONV_KERNEL,
PRETRAINED_LAYERS), so any width and stage layout builds. The state-dict keys,
order and shapes equal the released ``pose_hrnet_w{32,48}_*.pth`` files, so
they load with ``strict=True``.

UDP variant (Huang et al., "The Devil is in the Details: Delving into Unbiased
Data Processing for Human Pose Estimation", CVPR 2020). UDP-Pose's HRNet
changes the last module: its fused highest-resolution output is 4x wider
(128 channels for W32, and the identity path gets a 1x1 conv), and the final
conv predicts 3 maps per joint (heatmap, x offset, y offset). UDP's code
builds its output head from ``MODEL.TARGET_TYPE: offset``; here the head
follows the codec that target type chooses (its ``channels_per_joint`` is 3).
Any other codec builds the plain HRNet, so HRNet's, DarkPose's and
LPN's YAMLs and checkpoints are unchanged. UDP's code widens the last module
for every target type, so there its Gaussian YAMLs build the wider net; here
they build the plain one.
"""
from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..codecs import build_codec
from ..config import Config, ConfigError, read_extra
from .checkpoint import CheckpointError, read_checkpoint, unwrap_state_dict
from .common import BN_MOMENTUM, BasicBlock, Bottleneck, checkpoint_layout, make_res_layer

logger = logging.getLogger(__name__)

BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}
STAGE_NAMES = ("STAGE2", "STAGE3", "STAGE4")
STAGE_FIELDS = ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "FUSE_METHOD")

# None: required (the official YAMLs always give them).
EXTRA_DEFAULTS = {
    "PRETRAINED_LAYERS": ["*"],
    "FINAL_CONV_KERNEL": 1,
    "STAGE2": None,
    "STAGE3": None,
    "STAGE4": None,
    "LAYOUT": "official",
}

STEM_CHANNELS = 64
STEM_STRIDE = 4
# UDP-Pose: width factor of the last module's highest-resolution output, and
# output maps per joint for TARGET_TYPE offset.
UDP_WIDTH_FACTOR = 4
UDP_MAPS_PER_JOINT = 3


@dataclass(frozen=True)
class StageSpec:
    """One stage of ``MODEL.EXTRA`` (STAGE2, STAGE3 or STAGE4), validated."""

    num_modules: int
    block: type
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)

    @property
    def out_channels(self) -> list[int]:
        return [c * self.block.expansion for c in self.num_channels]


def _fuse_path(in_channels: int, out_channels: int, source: int, target: int) -> nn.Module:
    """The path from branch `source` to branch `target` in a fusion: 1x1 conv +
    BN + nearest upsampling from a lower resolution, a chain of stride-2 3x3
    conv + BN (ReLU between) from a higher one, identity at the same one."""
    if source > target:
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.Upsample(scale_factor=2 ** (source - target), mode="nearest"),
        )
    if source == target:
        return nn.Identity()
    steps = []
    for step in range(target - source):
        last = step == target - source - 1
        step_out = out_channels if last else in_channels
        layers = [nn.Conv2d(in_channels, step_out, kernel_size=3, stride=2, padding=1, bias=False),
                  nn.BatchNorm2d(step_out, momentum=BN_MOMENTUM)]
        if not last:
            layers.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Parallel multi-resolution branches followed by multi-resolution fusion
    (Sun et al. 2019, Sec. 3, "Repeated multi-scale fusion"), fused by sum.

    With ``multi_scale_output=False`` only the highest resolution is fused and
    returned (the last module of the net). ``first_output_factor`` widens that
    output by this factor; UDP-Pose uses 4, with a 1x1 conv on the identity path.
    """

    def __init__(self, block: type, num_blocks: Sequence[int], in_channels: Sequence[int],
                 num_channels: Sequence[int], multi_scale_output: bool = True, first_output_factor: int = 1):
        super().__init__()
        self.num_branches = len(num_channels)
        self.branches = nn.ModuleList(
            make_res_layer(block, cin, c, n) for cin, c, n in zip(in_channels, num_channels, num_blocks))
        branch_channels = [c * block.expansion for c in num_channels]
        self.out_channels = list(branch_channels)
        self.fuse_layers: nn.ModuleList | None = None
        if self.num_branches == 1:  # nothing to fuse, as in the official code
            return

        if not multi_scale_output:
            self.out_channels = [branch_channels[0] * first_output_factor]
        fuse_layers = []
        for target, out_channels in enumerate(self.out_channels):
            paths = [_fuse_path(cin, out_channels, source, target) for source, cin in enumerate(branch_channels)]
            if out_channels != branch_channels[target]:  # UDP: widen the identity path too
                paths[target] = nn.Sequential(nn.Conv2d(branch_channels[target], out_channels, 1, bias=False))
            fuse_layers.append(nn.ModuleList(paths))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:
            return x
        if torch.jit.is_tracing():  # ONNX export: the official out-of-place sum (views written in place do not trace)
            return [self.relu(sum(path(xj) for path, xj in zip(paths, x))) for paths in self.fuse_layers]
        return [self._fuse(target, paths, x) for target, paths in enumerate(self.fuse_layers)]

    def _fuse(self, target: int, paths: nn.ModuleList, x: list[torch.Tensor]) -> torch.Tensor:
        """relu(sum over sources of path(x[source])), as the official fusion
        (pose_hrnet.py:HighResolutionModule.forward), with one accumulator: the
        paths from higher resolutions (and UDP's widened identity) write fresh
        tensors, the first of them takes the others in place (branch 0's own
        output, read by the other targets, is never written), and a path from a
        lower resolution adds its 1x1-conv output broadcast over each s x s
        block of the accumulator instead of materialising the nearest
        upsampling (same values: every pixel of a block is that low-resolution
        pixel). Same terms in the same order: the same float sums. Autograd-safe: only tensors made here are written in place,
        and nothing saved for backward is among them."""
        acc = own = None
        for source in range(target + 1):
            term = paths[source](x[source])
            if term is x[source] and acc is None:  # identity first: the branch's output, read by other targets
                own = term
            elif acc is None:
                acc = term
            else:
                acc += term
        for source in range(target + 1, len(paths)):
            conv, bn, _ = paths[source]  # the nn.Upsample is the broadcast below
            low = bn(conv(x[source]))[:, :, :, None, :, None]
            if acc is None:  # out of place (keeps `own`'s layout, so the flatten is a view)
                acc = (_blocks(own, low) + low).flatten(4, 5).flatten(2, 3)
            else:
                _blocks(acc, low).add_(low)
        return self.relu(acc)


def _blocks(full: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """`full` (N, C, H, W) viewed as (N, C, h, H / h, w, W / w) for the
    (N, C, h, 1, w, 1) view `low` of a lower resolution: pixel (i, j) of
    `low` sits over block [i, :, j, :], nearest upsampling's footprint."""
    return full.unflatten(3, (low.shape[4], -1)).unflatten(2, (low.shape[2], -1))


def _make_transition(pre_channels: Sequence[int], cur_channels: Sequence[int]) -> nn.ModuleList:
    """Between two stages: a 3x3 conv + BN + ReLU where an existing branch
    changes width (identity otherwise), and for each new branch a chain of
    stride-2 3x3 conv + BN + ReLU from the lowest-resolution branch."""
    transitions = []
    for i, out_channels in enumerate(cur_channels):
        if i < len(pre_channels):
            if out_channels == pre_channels[i]:
                transitions.append(nn.Identity())
            else:
                transitions.append(nn.Sequential(
                    nn.Conv2d(pre_channels[i], out_channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
                    nn.ReLU(inplace=True)))
            continue
        steps = []
        in_channels = pre_channels[-1]
        num_steps = i + 1 - len(pre_channels)
        for step in range(num_steps):
            step_out = out_channels if step == num_steps - 1 else in_channels
            steps.append(nn.Sequential(
                nn.Conv2d(in_channels, step_out, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(step_out, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True)))
        transitions.append(nn.Sequential(*steps))
    return nn.ModuleList(transitions)


class PoseHighResolutionNet(nn.Module):
    """HRNet pose network (Sun et al., CVPR 2019): stem, layer1, three
    multi-resolution stages and a conv head on the highest-resolution branch.

    Args:
        stages: STAGE2, STAGE3, STAGE4.
        num_joints: K.
        final_conv_kernel: 1 or 3.
        udp: UDP-Pose's head: last output widened 4x and 3K output maps.
    """

    def __init__(self, stages: Sequence[StageSpec], num_joints: int, final_conv_kernel: int = 1, udp: bool = False):
        super().__init__()
        self.udp = udp
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, STEM_CHANNELS, 64, 4)

        channels = [64 * Bottleneck.expansion]
        for index, spec in enumerate(stages, start=1):
            last_stage = index == len(stages)
            setattr(self, f"transition{index}", _make_transition(channels, spec.out_channels))
            stage, channels = self._make_stage(spec, last_stage)
            setattr(self, f"stage{index + 1}", stage)
        self.num_stages = len(stages)
        # every branch but the first is a stride-2 step below the previous one
        self.input_divisor = STEM_STRIDE * 2 ** (max(spec.num_branches for spec in stages) - 1)

        maps_per_joint = UDP_MAPS_PER_JOINT if udp else 1
        self.final_layer = nn.Conv2d(channels[0], num_joints * maps_per_joint, kernel_size=final_conv_kernel,
                                     padding=final_conv_kernel // 2)

    def _make_stage(self, spec: StageSpec, last_stage: bool) -> tuple[nn.Sequential, list[int]]:
        modules = []
        channels = spec.out_channels
        for index in range(spec.num_modules):
            last_module = last_stage and index == spec.num_modules - 1
            module = HighResolutionModule(spec.block, spec.num_blocks, channels, spec.num_channels,
                                          multi_scale_output=not last_module,
                                          first_output_factor=UDP_WIDTH_FACTOR if self.udp else 1)
            modules.append(module)
            channels = module.out_channels
        return nn.Sequential(*modules), channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-2] % self.input_divisor or x.shape[-1] % self.input_divisor):
            raise ValueError(f"pose_hrnet input of {x.shape[-2]}x{x.shape[-1]} (HxW): both sides must be "
                             f"multiples of {self.input_divisor} for the branches to fuse")
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        features = [self.layer1(x)]
        for index in range(1, self.num_stages + 1):
            transition = getattr(self, f"transition{index}")
            # Existing branches continue (re-widened where the width changes), new
            # ones start from the lowest resolution. The official code feeds the
            # lowest resolution to every non-identity transition; that is the same
            # input in every layout it can run.
            features = [t(features[i] if i < len(features) else features[-1]) for i, t in enumerate(transition)]
            features = getattr(self, f"stage{index + 1}")(features)
        return self.final_layer(features[0])

    def init_weights(self, pretrained: str = "", pretrained_layers: Sequence[str] = ("*",)) -> None:
        """The official initialisation: every conv ~ N(0, 0.001) with zero bias,
        BN weight 1 and bias 0. Then, from an HRNet-Image-Classification file
        (``hrnet_w32-36af842e.pth``), the tensors whose first dotted name is in
        `pretrained_layers` (or all of them for ``'*'``). File keys the model
        lacks (the classifier, and the fusions of the last module, which is
        multi-scale in the classification net) are skipped. The UDP variant also
        skips its widened last fusion, as UDP-Pose does.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if not pretrained:
            return
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"MODEL.PRETRAINED file not found: {pretrained} "
                                  f"(see models/README.md, or set MODEL.PRETRAINED '' to train from scratch)")
        self._load_imagenet(pretrained, pretrained_layers)

    def _load_imagenet(self, path: str, pretrained_layers: Sequence[str]) -> None:
        state = unwrap_state_dict(read_checkpoint(path), path)
        own = self.state_dict()
        skip = ()
        if self.udp:
            last_stage = getattr(self, f"stage{self.num_stages + 1}")
            skip = (f"stage{self.num_stages + 1}.{len(last_stage) - 1}.fuse_layers.",)
        take_all = "*" in pretrained_layers
        wanted = {k: v for k, v in state.items()
                  if (take_all or k.split(".")[0] in pretrained_layers) and not k.startswith(skip)}
        loaded = {k: v for k, v in wanted.items() if k in own}
        shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in loaded.items() if v.shape != own[k].shape]
        if shapes:
            raise CheckpointError(f"pretrained file {path} does not fit {type(self).__name__}: "
                                  f"{'; '.join(shapes[:3])}{' ...' if len(shapes) > 3 else ''}")
        if not loaded:
            raise CheckpointError(f"pretrained file {path} has no tensor for MODEL.EXTRA.PRETRAINED_LAYERS "
                                  f"{list(pretrained_layers)}")
        self.load_state_dict(loaded, strict=False)
        logger.info("=> loaded %d tensors from %s (%d of its keys not in the model or not in "
                    "PRETRAINED_LAYERS; %d model keys left at their init)",
                    len(loaded), path, len(state) - len(loaded), len(own) - len(loaded))


def _stage_error(name: str, message: str) -> ConfigError:
    return ConfigError(f"MODEL.EXTRA.{name}{message} for model pose_hrnet")


def _int_list(name: str, field: str, value: Any, length: int) -> tuple[int, ...]:
    if (not isinstance(value, (list, tuple)) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise _stage_error(name, f".{field} = {value!r}: expected {length} positive integers "
                                 f"(one per branch, NUM_BRANCHES = {length})")
    return tuple(value)


def parse_stage(name: str, node: Any) -> StageSpec:
    """Validate one ``MODEL.EXTRA.STAGEn`` mapping; errors name the key."""
    if not isinstance(node, Mapping):
        raise _stage_error(name, f" = {node!r}: expected a mapping of {', '.join(STAGE_FIELDS)}")
    for key in node:
        if key not in STAGE_FIELDS:
            close = difflib.get_close_matches(str(key), STAGE_FIELDS, n=1, cutoff=0.5)
            hint = f"; did you mean MODEL.EXTRA.{name}.{close[0]}?" if close else f"; known: {', '.join(STAGE_FIELDS)}"
            raise ConfigError(f"unknown config key MODEL.EXTRA.{name}.{key} for model pose_hrnet{hint}")
    missing = [key for key in STAGE_FIELDS if key not in node]
    if missing:
        raise _stage_error(name, f".{missing[0]} is missing")
    for field in ("NUM_MODULES", "NUM_BRANCHES"):
        value = node[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _stage_error(name, f".{field} = {value!r}: expected a positive integer")
    if node["BLOCK"] not in BLOCKS:
        raise _stage_error(name, f".BLOCK = {node['BLOCK']!r}: expected one of {', '.join(BLOCKS)}")
    if node["FUSE_METHOD"] != "SUM":
        raise _stage_error(name, f".FUSE_METHOD = {node['FUSE_METHOD']!r}: only SUM exists (as in the official code)")
    branches = node["NUM_BRANCHES"]
    return StageSpec(num_modules=node["NUM_MODULES"], block=BLOCKS[node["BLOCK"]],
                     num_blocks=_int_list(name, "NUM_BLOCKS", node["NUM_BLOCKS"], branches),
                     num_channels=_int_list(name, "NUM_CHANNELS", node["NUM_CHANNELS"], branches))


def get_pose_net(cfg: Config, is_train: bool) -> nn.Module:
    """HRNet from ``cfg.MODEL``; the UDP variant when the config's codec has
    UDP's 3 maps per joint (``MODEL.TARGET_TYPE: offset``). Official initialisation (and ImageNet weights from
    ``MODEL.PRETRAINED``) when training with ``MODEL.INIT_WEIGHTS``. ``MODEL.EXTRA.LAYOUT mmpose`` builds
    mmpose's tree (``backbone.*`` = mmpose ``backbones/hrnet.py`` HRNet, ``head.final_layer``), the layout of
    its model-zoo checkpoints (``common.MMPoseTopdown``)."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "pose_hrnet")
    stages = [parse_stage(name, extra[name]) for name in STAGE_NAMES]
    if extra.FINAL_CONV_KERNEL not in (1, 3):
        raise ConfigError(f"MODEL.EXTRA.FINAL_CONV_KERNEL = {extra.FINAL_CONV_KERNEL}: expected 1 or 3")
    layers = extra.PRETRAINED_LAYERS
    if not layers or not all(isinstance(layer, str) and layer for layer in layers):
        raise ConfigError(f"MODEL.EXTRA.PRETRAINED_LAYERS = {list(layers)!r}: expected a non-empty list of "
                          f"top-level module names (conv1, layer1, stage2, ...) or ['*']")
    model = PoseHighResolutionNet(stages, cfg.MODEL.NUM_JOINTS, extra.FINAL_CONV_KERNEL,
                                  udp=build_codec(cfg).channels_per_joint == UDP_MAPS_PER_JOINT)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED, layers)
    return checkpoint_layout(model, extra.LAYOUT, ("final_layer",), "pose_hrnet")
