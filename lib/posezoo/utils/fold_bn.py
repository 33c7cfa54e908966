"""Fold eval-mode BatchNorm into the convolution that feeds it (``MODEL.FOLD_BN``).

At test time a BatchNorm with running statistics is an affine map per channel,
``y = (x - mean) * gamma / sqrt(var + eps) + beta`` (Ioffe & Szegedy 2015, Alg. 2,
inference), so ``bn(conv(x))`` equals one convolution with weight ``W * s`` and bias
``(b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``, per output channel. That
removes one full read and write of every such activation (what that buys against
the official validate(), measured side by side: docs/speed.md).

Which convolution feeds which BatchNorm is found without torch.fx: one eval forward
on an example input is recorded with module hooks (the convolution outputs, the
BatchNorm inputs) and a ``TorchFunctionMode`` that counts every op consuming each
tensor. A pair is folded only when the BatchNorm's input is exactly a convolution's
output, nothing else reads that output (no residual add, no in-place op, no second
branch), and both modules run once per forward and sit once in the module tree. A
model with data-dependent control flow is out of scope. The folded model differs
from the original only by float rounding (the fold itself is computed in float64;
tests hold it within 1e-5 of the unfolded output).
"""
from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from .compile import FrozenCompiled
from .utils import input_shape

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class _TensorUses(TorchFunctionMode):
    """Counts, per tensor, the ops that take it and return a tensor (metadata
    queries such as ``dim()`` or ``shape`` return none and do not count); every
    result is kept alive so that ``id`` stays unique during the trace."""

    def __init__(self) -> None:
        super().__init__()
        self.uses: Counter = Counter()
        self.keep: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0]):
            for t in tree_flatten((args, kwargs or {}))[0]:
                if isinstance(t, torch.Tensor):
                    self.uses[id(t)] += 1
            self.keep.append(out)
        return out


def _foldable_bn(module: nn.Module) -> bool:
    return (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
            and module.running_mean is not None and module.running_var is not None)


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution name, BatchNorm name) pairs of `model` (eval mode) whose
    BatchNorm reads only that convolution's output, from one forward on `example`."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, CONVS)}
    bns = {name: m for name, m in model.named_modules() if _foldable_bn(m)}
    owners = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    calls: Counter = Counter()
    produced: dict[int, str] = {}
    read: dict[str, int] = {}
    handles = []
    for name, m in convs.items():
        def after(module, args, output, name=name):
            calls[name] += 1
            produced[id(output)] = name
        handles.append(m.register_forward_hook(after))
    for name, m in bns.items():
        def before(module, args, name=name):
            calls[name] += 1
            read[name] = id(args[0])
        handles.append(m.register_forward_pre_hook(before))
    mode = _TensorUses()
    try:
        with torch.no_grad(), mode:
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    pairs = []
    for bn_name, tensor in read.items():
        conv_name = produced.get(tensor)
        if conv_name is None or mode.uses[tensor] != 1 or calls[conv_name] != 1 or calls[bn_name] != 1:
            continue
        conv, bn = convs[conv_name], bns[bn_name]
        if owners[id(conv)] != 1 or owners[id(bn)] != 1 or bn.num_features != conv.out_channels:
            continue
        pairs.append((conv_name, bn_name))
    return pairs


def fold_conv_bn_(conv: nn.Module, bn: nn.Module) -> None:
    """Give `conv` the weight and bias of bn(conv(.)) in eval mode, in place."""
    w = conv.weight.detach().double()
    var, mean = bn.running_var.double(), bn.running_mean.double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias.detach().double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    if isinstance(conv, nn.modules.conv._ConvTransposeNd):
        # weight (in, out / groups, k...): output channel g * out / groups + j is [g-th input block, j]
        groups, taps = conv.groups, [1] * (w.dim() - 2)
        blocks = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
        w = (blocks * scale.view(groups, 1, -1, *taps)).reshape(w.shape)
    else:
        w = w * scale.view(-1, *[1] * (w.dim() - 1))
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter(w.to(dtype), requires_grad=conv.weight.requires_grad)
    conv.bias = nn.Parameter(shift.to(dtype).to(conv.weight.device), requires_grad=conv.weight.requires_grad)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every BatchNorm of eval-mode `model` that reads only a convolution's
    output into that convolution and replace it by ``nn.Identity``, in place;
    `example` is one input batch (batch 1 is enough). Returns the number folded."""
    if model.training:
        raise ValueError("fold_batchnorm needs the model in eval mode (model.eval()): a training BatchNorm "
                         "uses batch statistics, which no fixed convolution reproduces")
    pairs = conv_bn_pairs(model, example)
    modules = dict(model.named_modules())
    for conv_name, bn_name in pairs:
        fold_conv_bn_(modules[conv_name], modules[bn_name])
        parent, _, attr = bn_name.rpartition(".")
        setattr(modules[parent] if parent else model, attr, nn.Identity())
    return len(pairs)


def prepare_eval_model(cfg, model: nn.Module, device: torch.device | str) -> nn.Module:
    """The test-time model: on `device` in eval mode; with ``MODEL.FOLD_BN`` a copy
    with its BatchNorms folded (the caller's model keeps its layers and state-dict
    keys); with ``MODEL.CHANNELS_LAST`` in NHWC layout (after the fold, whose new
    weights are contiguous); with ``TEST.COMPILE`` wrapped in a frozen
    ``torch.compile`` (utils/compile.py; compiled at the first call)."""
    model = model.to(device).eval()
    if cfg.MODEL.FOLD_BN:
        model = copy.deepcopy(model)
        fold_batchnorm(model, torch.zeros(1, *input_shape(model, cfg), device=device))
    if cfg.MODEL.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    if cfg.TEST.COMPILE:
        model = FrozenCompiled(model).eval()
    return model
