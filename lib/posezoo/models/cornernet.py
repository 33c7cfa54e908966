"""CornerNet: Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints",
ECCV 2018, and CornerNet-Squeeze from Law, Teng, Russakovsky and Deng,
"CornerNet-Lite: Efficient Keypoint Based Object Detection", BMVC 2020.

An object is a pair of corners. A stride-4 stem feeds ``NUM_STACKS`` hourglasses
(hourglass-104: two stacks of depth 5, widths 256-256-384-384-384-512, residuals
2-2-2-2-2-4, paper Sec. 4.1). Each stack's features go through two corner-pooling
modules (paper Fig. 7): top-left pools the maximum of everything below and to the
right, bottom-right of everything above and to the left. From each pooled map
three prediction modules give the corner's C-class heatmap (logits), its 1-d
embedding and its 2-d sub-pixel offset. Every stack is supervised (intermediate
supervision, paper Sec. 3.5); testing decodes the last.

- ``forward`` returns a list with one dict per stack, keys ``tl_heat``,
  ``br_heat`` (N, C, H/4, W/4), ``tl_tag``, ``br_tag`` (N, 1, ...), ``tl_off``,
  ``br_off`` (N, 2, ...). In eval mode only the last stack's heads are computed
  (the official ``_test`` does the same) and the list has one entry.
- Corner pooling is pure PyTorch: a cumulative max (``torch.cummax``) along the
  pooled axis, reversed for top/left. The official op is a C++/CUDA extension
  (``_cpools/src/*_pool.cpp``, a doubling max that computes the same suffix/prefix
  maximum); forward values are identical. Its backward sends the gradient of
  tied maxima to one position, as does ``cummax``, but possibly a different one.

``MODEL.EXTRA`` (defaults: the released hourglass-104 model):

- ``VARIANT`` ('hourglass104'): or 'squeeze' (CornerNet-Squeeze: fire modules,
  a stride-8 stem, depth-4 hourglasses with transposed-conv upsampling, 1x1
  prediction convs; CornerNet-Lite ``core/models/CornerNet_Squeeze.py``).
- ``LAYOUT`` ('lite'): state-dict names of CornerNet-Lite ``core/models/CornerNet.py``
  (``hg.pre``, ``hg.hgs``, ``tl_modules``, ``tl_offs``, ...); 'original' gives those
  of the 2018 code ``models/py_utils/kp.py`` (``pre``, ``kps``, ``tl_cnvs``,
  ``tl_regrs``, ...), which release different files of the same network.
  Squeeze exists only in the 'lite' layout.
- ``NUM_CLASSES`` (80), ``NUM_STACKS`` (2), ``DIMS`` and ``MODULES`` (per level,
  their length is the hourglass depth + 1), ``STEM_DIM`` (128), ``POOL_DIM``
  (128, the corner pool's branch width), ``HEAD_DIM`` (256, the prediction
  modules' width; it is also the stream width ``DIMS[0]`` in the official code).

Checkpoints: both codes save ``DummyModule(model).state_dict()``, so keys start
with ``module.``, which ``load_checkpoint`` strips. The heat heads' bias starts at
-2.19 (prior 0.1, paper Sec. 4.1) as in the official init.
"""
from __future__ import annotations


import torch
from torch import nn

from .common import BasicBlock

HEADS = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_off", "br_off")

DEFAULTS = {
    "hourglass104": dict(NUM_STACKS=2, DIMS=[256, 256, 384, 384, 384, 512], MODULES=[2, 2, 2, 2, 2, 4],
                         STEM_DIM=128, POOL_DIM=128, HEAD_DIM=256, NUM_CLASSES=80, LAYOUT="lite"),
    "squeeze": dict(NUM_STACKS=2, DIMS=[256, 256, 384, 384, 512], MODULES=[2, 2, 2, 2, 4],
                    STEM_DIM=128, POOL_DIM=128, HEAD_DIM=256, NUM_CLASSES=80, LAYOUT="lite"),
}
HEAT_BIAS = -2.19


def top_pool(x: torch.Tensor) -> torch.Tensor:
    """out[..., i, :] = max(x[..., i:, :]): the maximum of everything below."""
    return x.flip(2).cummax(2)[0].flip(2)


def bottom_pool(x: torch.Tensor) -> torch.Tensor:
    """out[..., i, :] = max(x[..., :i + 1, :]): the maximum of everything above."""
    return x.cummax(2)[0]


def left_pool(x: torch.Tensor) -> torch.Tensor:
    """out[..., j] = max(x[..., j:]): the maximum of everything to the right."""
    return x.flip(3).cummax(3)[0].flip(3)


def right_pool(x: torch.Tensor) -> torch.Tensor:
    """out[..., j] = max(x[..., :j + 1]): the maximum of everything to the left."""
    return x.cummax(3)[0]


class ConvBNReLU(nn.Module):
    """The official ``convolution``: conv ('same' padding), BN, ReLU; without BN
    the conv carries a bias (keys ``conv``, ``bn``)."""

    def __init__(self, k: int, inp: int, out: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(inp, out, k, stride=stride, padding=(k - 1) // 2, bias=not with_bn)
        self.bn = nn.BatchNorm2d(out) if with_bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(BasicBlock):
    """The official ``residual``: ``common.BasicBlock`` (two 3x3 conv-BN, ReLU after
    the sum) whose projection shortcut is named ``skip`` (1x1 conv + BN where the
    stride or width changes, identity elsewhere)."""

    def __init__(self, inp: int, out: int, stride: int = 1):
        super().__init__(inp, out, stride)
        self.skip = (nn.Sequential(nn.Conv2d(inp, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                     if stride != 1 or inp != out else nn.Sequential())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.skip(x))


class Fire(nn.Module):
    """CornerNet-Squeeze's ``fire_module`` (CornerNet-Lite ``CornerNet_Squeeze.py``):
    1x1 squeeze to out/2 with BN, then 1x1 and depth-wise 3x3 expansions
    concatenated, BN, identity shortcut where shapes agree, ReLU."""

    def __init__(self, inp: int, out: int, stride: int = 1, sr: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out // sr, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out // sr)
        self.conv_1x1 = nn.Conv2d(out // sr, out // 2, 1, stride=stride, bias=False)
        self.conv_3x3 = nn.Conv2d(out // sr, out // 2, 3, padding=1, stride=stride, groups=out // sr, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.skip = stride == 1 and inp == out
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.bn1(self.conv1(x))
        out = self.bn2(torch.cat((self.conv_1x1(s), self.conv_3x3(s)), 1))
        return self.relu(out + x) if self.skip else self.relu(out)


def _layer(block: type, inp: int, out: int, n: int, stride: int = 1) -> nn.Sequential:
    """``n`` blocks, the first changing width (and stride)."""
    return nn.Sequential(block(inp, out, stride=stride), *[block(out, out) for _ in range(1, n)])


def _layer_revr(block: type, inp: int, out: int, n: int) -> nn.Sequential:
    """``n`` blocks, the last changing width (the official ``make_layer_revr``)."""
    return nn.Sequential(*[block(inp, inp) for _ in range(n - 1)], block(inp, out))


class Upsample2(nn.Module):
    """Nearest x2 upsampling (the official ``upsample``; no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="nearest")


class CornerHourglass(nn.Module):
    """One level of the official ``hg_module``/``kp_module``: ``up1`` keeps the
    resolution, ``low1`` halves it with a stride-2 block (no max-pool: ``max1`` is
    empty), ``low2`` is the next level (or blocks at the innermost), ``low3``
    returns to this width, ``up2`` doubles the resolution, and the two sum."""

    def __init__(self, dims: list, modules: list, block: type, squeeze: bool):
        super().__init__()
        cur, nxt = dims[0], dims[1]
        self.up1 = _layer(block, cur, cur, modules[0])
        self.low1 = _layer(block, cur, nxt, modules[0], stride=2)
        self.low2 = (CornerHourglass(dims[1:], modules[1:], block, squeeze) if len(dims) > 2
                     else _layer(block, nxt, nxt, modules[1]))
        self.low3 = _layer_revr(block, nxt, cur, modules[0])
        self.up2 = nn.ConvTranspose2d(cur, cur, 4, stride=2, padding=1) if squeeze else Upsample2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class CornerPool(nn.Module):
    """Corner pooling module (paper Fig. 7; official ``corner_pool``/``pool``): two
    3x3 conv-BN-ReLU branches pooled along the two axes and summed, a 3x3 conv-BN,
    plus a 1x1 conv-BN shortcut, ReLU, then a 3x3 conv-BN-ReLU."""

    def __init__(self, dim: int, pool_dim: int, corner: str):
        super().__init__()
        self.p1_conv1 = ConvBNReLU(3, dim, pool_dim)
        self.p2_conv1 = ConvBNReLU(3, dim, pool_dim)
        self.p_conv1 = nn.Conv2d(pool_dim, dim, 3, padding=1, bias=False)
        self.p_bn1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = ConvBNReLU(3, dim, dim)
        self.pools = (top_pool, left_pool) if corner == "tl" else (bottom_pool, right_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.pools[0](self.p1_conv1(x)) + self.pools[1](self.p2_conv1(x))
        return self.conv2(self.relu1(self.p_bn1(self.p_conv1(pool)) + self.bn1(self.conv1(x))))


def _merge(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim))


class _Stacks(nn.Module):
    """CornerNet-Lite's ``hg``: the stem, the hourglasses and their merges."""


class CornerNet(nn.Module):
    """Stacked-hourglass corner detector; see the module docstring."""

    def __init__(self, extra: dict):
        super().__init__()
        variant = extra.get("VARIANT", "hourglass104")
        if variant not in DEFAULTS:
            raise ValueError(f"cornernet: MODEL.EXTRA.VARIANT = {variant!r}: expected one of {sorted(DEFAULTS)}")
        unknown = set(extra) - set(DEFAULTS[variant]) - {"VARIANT"}
        if unknown:
            raise ValueError(f"cornernet: unknown MODEL.EXTRA key(s) {sorted(unknown)}; "
                             f"known: {sorted(DEFAULTS[variant])} and VARIANT")
        opt = {**DEFAULTS[variant], **extra}
        dims, mods, stacks = list(opt["DIMS"]), list(opt["MODULES"]), int(opt["NUM_STACKS"])
        if len(dims) < 2 or len(dims) != len(mods) or stacks < 1 or min(mods) < 1:
            raise ValueError("cornernet: MODEL.EXTRA.DIMS and MODULES need the same length (>= 2, depth + 1), "
                             "MODULES >= 1 and NUM_STACKS >= 1")
        layout = opt["LAYOUT"]
        if layout not in ("lite", "original") or (variant == "squeeze" and layout != "lite"):
            raise ValueError(f"cornernet: MODEL.EXTRA.LAYOUT = {layout!r}: 'lite', or 'original' for hourglass104")
        squeeze = variant == "squeeze"
        self.num_classes = int(opt["NUM_CLASSES"])
        self.layout = layout
        self.stride = 8 if squeeze else 4
        dim, head, pool_dim = dims[0], int(opt["HEAD_DIM"]), int(opt["POOL_DIM"])
        block = Fire if squeeze else Residual
        stem = [ConvBNReLU(7, 3, opt["STEM_DIM"], stride=2), Residual(opt["STEM_DIM"], dim, stride=2)]
        if squeeze:
            stem.append(Residual(dim, dim, stride=2))
        k = 1 if squeeze else 3

        def pred(out: int) -> nn.Sequential:
            return nn.Sequential(ConvBNReLU(k, head, head, with_bn=False), nn.Conv2d(head, out, 1))

        parts = {
            "pre": nn.Sequential(*stem),
            "hgs": nn.ModuleList([CornerHourglass(dims, mods, block, squeeze) for _ in range(stacks)]),
            "cnvs": nn.ModuleList([ConvBNReLU(3, dim, head) for _ in range(stacks)]),
            "inters": nn.ModuleList([Residual(dim, dim) for _ in range(stacks - 1)]),
            "inters_": nn.ModuleList([_merge(dim) for _ in range(stacks - 1)]),
            "cnvs_": nn.ModuleList([nn.Sequential(nn.Conv2d(head, dim, 1, bias=False), nn.BatchNorm2d(dim))
                                    for _ in range(stacks - 1)]),
            "tl_modules": nn.ModuleList([CornerPool(head, pool_dim, "tl") for _ in range(stacks)]),
            "br_modules": nn.ModuleList([CornerPool(head, pool_dim, "br") for _ in range(stacks)]),
            "tl_heats": nn.ModuleList([pred(self.num_classes) for _ in range(stacks)]),
            "br_heats": nn.ModuleList([pred(self.num_classes) for _ in range(stacks)]),
            "tl_tags": nn.ModuleList([pred(1) for _ in range(stacks)]),
            "br_tags": nn.ModuleList([pred(1) for _ in range(stacks)]),
            "tl_offs": nn.ModuleList([pred(2) for _ in range(stacks)]),
            "br_offs": nn.ModuleList([pred(2) for _ in range(stacks)]),
        }
        for name in ("tl_heats", "br_heats"):
            for m in parts[name]:
                nn.init.constant_(m[-1].bias, HEAT_BIAS)
        self._parts = parts
        if layout == "lite":
            hg = _Stacks()
            for name in ("pre", "hgs", "cnvs", "inters", "inters_", "cnvs_"):
                setattr(hg, name, parts[name])
            self.hg = hg
            for name in ("tl_modules", "br_modules", "tl_heats", "br_heats", "tl_tags", "br_tags",
                         "tl_offs", "br_offs"):
                setattr(self, name, parts[name])
        else:  # kp.py's registration order and names
            for own, name in (("pre", "pre"), ("kps", "hgs"), ("cnvs", "cnvs"), ("tl_cnvs", "tl_modules"),
                              ("br_cnvs", "br_modules"), ("tl_heats", "tl_heats"), ("br_heats", "br_heats"),
                              ("tl_tags", "tl_tags"), ("br_tags", "br_tags"), ("inters", "inters"),
                              ("inters_", "inters_"), ("cnvs_", "cnvs_"), ("tl_regrs", "tl_offs"),
                              ("br_regrs", "br_offs")):
                setattr(self, own, parts[name])

    def _heads(self, i: int, cnv: torch.Tensor) -> dict:
        p = self._parts
        tl, br = p["tl_modules"][i](cnv), p["br_modules"][i](cnv)
        return {"tl_heat": p["tl_heats"][i](tl), "br_heat": p["br_heats"][i](br),
                "tl_tag": p["tl_tags"][i](tl), "br_tag": p["br_tags"][i](br),
                "tl_off": p["tl_offs"][i](tl), "br_off": p["br_offs"][i](br)}

    def forward(self, x: torch.Tensor) -> list:
        p = self._parts
        inter = p["pre"](x)
        n = len(p["hgs"])
        outs = []
        for i in range(n):
            cnv = p["cnvs"][i](p["hgs"][i](inter))
            if self.training or i == n - 1:
                outs.append(self._heads(i, cnv))
            if i < n - 1:
                inter = torch.relu(p["inters_"][i](inter) + p["cnvs_"][i](cnv))
                inter = p["inters"][i](inter)
        return outs


def get_pose_net(cfg, is_train: bool, **kwargs) -> CornerNet:
    """The detector named ``MODEL.NAME: cornernet``; ``MODEL.EXTRA`` as above.
    ``MODEL.PRETRAINED`` (with ``INIT_WEIGHTS``) must be a whole CornerNet
    checkpoint of the same layout, loaded strictly."""
    model = CornerNet(dict(cfg.MODEL.EXTRA))
    if is_train and cfg.MODEL.INIT_WEIGHTS and cfg.MODEL.PRETRAINED:
        from .checkpoint import load_checkpoint

        load_checkpoint(model, cfg.MODEL.PRETRAINED, strict=True)
    return model
