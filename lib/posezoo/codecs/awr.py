"""AWR's dense codec (Huang et al., "AWR: Adaptive Weighting Regression for 3D
Hand Pose Estimation", AAAI 2020; code Elody-07/AWR-Adaptive-Weighting-Regression,
``util/feature_tool.py``). Chosen by ``MODEL.TARGET_TYPE: awr``.

Coordinates. AWR works in a normalised crop frame: u_n = u_c / (S/2) - 1 and
v_n = v_c / (S/2) - 1 for an S x S crop (so [-1, 1] across it), and the depth
d_n = dz, already divided by half the cube depth by the ``awr`` crop. The codec
takes and returns the contract's (u_c, v_c, dz) and converts inside. On the
F x F feature map (F = S / ``DOWNSAMPLE``) pixel (i, j) sits at
(2 (j + 0.5) / F - 1, 2 (i + 0.5) / F - 1) with depth = the input crop resized
to F x F by nearest neighbour: the crop is the point cloud the pixels vote from.

- ``encode`` (the release's ``joint2offset``, paper Sec. 3.2): for every joint k
  and feature pixel p with point P_p, the offset J_k - P_p as a unit vector (3
  channels) and the closeness heatmap (T - |J_k - P_p|) / T, both zero where
  the distance exceeds the kernel T (``KERNEL_SIZE``) or the pixel is
  background (normalised depth >= 0.99, the crop's far plane).
- ``decode_crop`` (the release's ``offset2joint_softmax``, paper Eqs. 3-5): the
  adaptive weights are softmax(30 h) of the masked heatmap h over all F*F
  pixels; each pixel votes P_p + (T - T h) * unit vector (its heatmap turned
  back into a distance) and the joint is the weighted sum of the votes. As
  released, background pixels are not removed from the softmax: their heatmap
  and vector are zeroed, so they take part with weight e^0 and vote their own
  position (negligible once foreground pixels near the joint reach h ~ 1).

Output layout (the released nets'): one (N, 4K, F, F) tensor, channels
[3K unit offsets, joint-major (3k + {u, v, d}); K closeness heatmaps].

Target. ``encode`` returns the dict the ``AWRLoss`` needs:
``{"joints": (K, 3) normalised (u_n, v_n, d_n), "dense": (4K, F, F) the target
in the output layout, "depth": (1, F, F) the crop at feature resolution}``; the
last lets the loss vote the joints (``COORD_WEIGHT``) without the input batch.
Target weights are ones: the release trains on every NYU joint.

``MODEL.EXTRA`` (shared by the ``awr`` model, this codec and ``AWRLoss``):
``BACKBONE`` (``resnet_18`` | ``hourglass_1``, the released nets; also
``resnet_{50,101,152}``, ``hourglass_<stacks>``), ``DOWNSAMPLE`` (2; resnet
1 | 2 | 4, hourglass 2), ``KERNEL_SIZE`` T (0 = the release's value for the
backbone: 1.0 resnet, 0.4 hourglass), ``DENSE_WEIGHT`` (1.0) and
``COORD_WEIGHT`` (0.0: the released config's dense stage).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError, read_extra
from .base import DepthCropCodec

EXTRA_DEFAULTS = {
    "BACKBONE": "resnet_18",
    "DOWNSAMPLE": 2,
    "KERNEL_SIZE": 0.0,
    "DENSE_WEIGHT": 1.0,
    "COORD_WEIGHT": 0.0,
}
RESNET_DEPTHS = (18, 50, 101, 152)          # model/resnet_deconv.py get_deconv_net
RELEASE_KERNEL = {"resnet": 1.0, "hourglass": 0.4}  # config.py: "0.4 for hourglass and 1 for resnet"
DOWNSAMPLES = {"resnet": (1, 2, 4), "hourglass": (2,)}
INPUT_MULTIPLE = {"resnet": 16, "hourglass": 32}  # resnet: stride-16 encoder; hourglass: stride 2 + 4 halvings
SOFTMAX_BETA = 30.0     # offset2joint_softmax: softmax(heatmap * 30)
BACKGROUND_DEPTH = 0.99  # normalised depth at or beyond which a pixel is background
DIST_EPS = 1e-8          # joint2offset: sqrt(|offset|^2 + 1e-8)


@dataclass(frozen=True)
class AWRSettings:
    """The validated ``MODEL.EXTRA`` of AWR plus the crop and feature sizes."""

    family: str          # 'resnet' | 'hourglass'
    depth: int           # resnet layers, or hourglass stacks
    downsample: int
    kernel_size: float
    dense_weight: float
    coord_weight: float
    image_size: int      # S (square crop)
    feature_size: int    # F = S / downsample
    num_joints: int


def _parse_backbone(name: str) -> tuple[str, int]:
    family, _, number = name.partition("_")
    if family in ("resnet", "hourglass") and number.isdigit():
        depth = int(number)
        if (family == "resnet" and depth in RESNET_DEPTHS) or (family == "hourglass" and depth >= 1):
            return family, depth
    raise ConfigError(f"MODEL.EXTRA.BACKBONE = {name!r} for model awr: expected resnet_18 or hourglass_1 "
                      f"(the released nets), resnet_{{{','.join(map(str, RESNET_DEPTHS))}}} or hourglass_<stacks>")


def awr_settings(cfg) -> AWRSettings:
    """Read and check AWR's ``MODEL.EXTRA`` and the crop size; one clear error each."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "awr")
    family, depth = _parse_backbone(extra.BACKBONE)
    if extra.DOWNSAMPLE not in DOWNSAMPLES[family]:
        raise ConfigError(f"MODEL.EXTRA.DOWNSAMPLE = {extra.DOWNSAMPLE} for model awr with {extra.BACKBONE}: "
                          f"expected one of {list(DOWNSAMPLES[family])} (input / feature resolution)")
    if extra.KERNEL_SIZE < 0:
        raise ConfigError(f"MODEL.EXTRA.KERNEL_SIZE = {extra.KERNEL_SIZE} for model awr: expected a positive "
                          f"radius in normalised crop units (0 = the release's {RELEASE_KERNEL[family]} for {family})")
    for key in ("DENSE_WEIGHT", "COORD_WEIGHT"):
        if extra[key] < 0:
            raise ConfigError(f"MODEL.EXTRA.{key} = {extra[key]} for model awr: expected a weight >= 0")
    width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    multiple = INPUT_MULTIPLE[family]
    if width != height or width <= 0 or width % multiple:
        raise ConfigError(f"MODEL.IMAGE_SIZE = {list(cfg.MODEL.IMAGE_SIZE)} for model awr with {extra.BACKBONE}: "
                          f"expected a square crop whose side is a multiple of {multiple} (the release: [128, 128])")
    feature = width // extra.DOWNSAMPLE
    if [int(v) for v in cfg.MODEL.HEATMAP_SIZE] != [feature, feature]:
        raise ConfigError(f"MODEL.HEATMAP_SIZE = {list(cfg.MODEL.HEATMAP_SIZE)} for model awr: the feature maps are "
                          f"IMAGE_SIZE / DOWNSAMPLE = [{feature}, {feature}]; set MODEL.HEATMAP_SIZE to that")
    if cfg.MODEL.NUM_JOINTS < 1:
        raise ConfigError(f"MODEL.NUM_JOINTS = {cfg.MODEL.NUM_JOINTS} for model awr: expected >= 1")
    return AWRSettings(family, depth, extra.DOWNSAMPLE, extra.KERNEL_SIZE or RELEASE_KERNEL[family],
                       extra.DENSE_WEIGHT, extra.COORD_WEIGHT, width, feature, cfg.MODEL.NUM_JOINTS)


# ------------------------------------------------------------------ batched torch

def crop_to_normalised(joints_crop: torch.Tensor, image_size: int) -> torch.Tensor:
    """(..., 3) (u_c, v_c, dz) -> AWR's (u_n, v_n, d_n) (dataloader/nyu_loader.py)."""
    half = image_size / 2.0
    return torch.cat([joints_crop[..., :2] / half - 1.0, joints_crop[..., 2:]], dim=-1)


def normalised_to_crop(joints_norm: torch.Tensor, image_size: int) -> torch.Tensor:
    """Inverse of :func:`crop_to_normalised`."""
    half = image_size / 2.0
    return torch.cat([(joints_norm[..., :2] + 1.0) * half, joints_norm[..., 2:]], dim=-1)


def feature_depth(inputs: torch.Tensor, feature_size: int) -> torch.Tensor:
    """(N, 1, S, S) crop -> (N, 1, F, F) by nearest neighbour, as the release."""
    return F.interpolate(inputs, size=[feature_size, feature_size])


def feature_points(depth_ft: torch.Tensor) -> torch.Tensor:
    """(N, 1, F, F) depth -> (N, 3, F, F) points: normalised pixel centres + depth."""
    n, _, size, _ = depth_ft.shape
    ramp = 2.0 * (torch.arange(size, device=depth_ft.device, dtype=depth_ft.dtype) + 0.5) / size - 1.0
    xy = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)])
    return torch.cat([xy.expand(n, 2, size, size), depth_ft], dim=1)


def dense_target(joints_norm: torch.Tensor, depth_ft: torch.Tensor, kernel_size: float) -> torch.Tensor:
    """Paper Sec. 3.2 (``joint2offset``): (N, K, 3) normalised joints and (N, 1, F, F)
    depth -> (N, 4K, F, F) [unit offsets (3K, joint-major), closeness heatmaps (K)],
    zero beyond the kernel or on background."""
    n, k, _ = joints_norm.shape
    size = depth_ft.shape[-1]
    offset = joints_norm[:, :, :, None, None] - feature_points(depth_ft)[:, None]   # (N, K, 3, F, F)
    dist = torch.sqrt(torch.sum(offset.pow(2), dim=2) + DIST_EPS)                   # (N, K, F, F)
    heatmap = (kernel_size - dist) / kernel_size
    mask = heatmap.ge(0).to(offset.dtype) * depth_ft.lt(BACKGROUND_DEPTH).to(offset.dtype)
    unit = (offset / dist[:, :, None] * mask[:, :, None]).reshape(n, 3 * k, size, size)
    return torch.cat([unit, heatmap * mask], dim=1)


def adaptive_vote(output: torch.Tensor, depth_ft: torch.Tensor, kernel_size: float,
                  beta: float = SOFTMAX_BETA) -> torch.Tensor:
    """Paper Eqs. 3-5 (``offset2joint_softmax``): (N, 4K, F, F) dense output and
    (N, 1, F, F) depth -> (N, K, 3) normalised joints, differentiable. Weights
    softmax(beta * masked heatmap) over all pixels; votes P + (T - T h) * vector."""
    n, c, size, _ = output.shape
    k = c // 4
    foreground = depth_ft.lt(BACKGROUND_DEPTH).to(output.dtype)                        # (N, 1, F, F)
    vectors = (output[:, :3 * k] * foreground).reshape(n, k, 3, size * size)
    heat = (output[:, 3 * k:] * foreground).reshape(n, k, size * size)
    weights = torch.softmax(heat * beta, dim=-1)
    dist = kernel_size - heat * kernel_size
    points = feature_points(depth_ft).reshape(n, 1, 3, size * size)
    return torch.sum((vectors * dist[:, :, None] + points) * weights[:, :, None], dim=-1)


# ------------------------------------------------------------------ the codec

class AWRCodec(DepthCropCodec):
    """AWR's dense targets and adaptive-weighting decode for an S x S crop and an
    F x F feature map (see the module docstring for the conventions); ``decode``
    maps the joints back to frame uvd (``DepthCropCodec``)."""

    def __init__(self, image_size: int, feature_size: int, num_joints: int, kernel_size: float):
        self.image_size = int(image_size)
        self.feature_size = int(feature_size)
        self.num_joints = int(num_joints)
        self.kernel_size = float(kernel_size)

    def encode(self, joints_crop: np.ndarray, depth_crop: np.ndarray) -> tuple[dict, np.ndarray]:
        """(K, 3) crop joints (u_c, v_c, dz) and the (1, S, S) input crop ->
        target dict (``joints``, ``dense``, ``depth``; module docstring), target
        weight ones (K, 1), all float32 numpy."""
        joints = np.asarray(joints_crop, dtype=np.float32)
        depth = np.asarray(depth_crop, dtype=np.float32)
        k, s = self.num_joints, self.image_size
        if joints.shape != (k, 3):
            raise ValueError(f"awr codec: joints_crop has shape {joints.shape}, expected ({k}, 3) = (u_c, v_c, dz) "
                             f"per joint (MODEL.NUM_JOINTS = {k})")
        if depth.shape != (1, s, s):
            raise ValueError(f"awr codec: depth_crop has shape {depth.shape}, expected (1, {s}, {s}) "
                             f"(MODEL.IMAGE_SIZE)")
        joints_norm = crop_to_normalised(torch.from_numpy(joints), s)
        depth_ft = feature_depth(torch.from_numpy(depth)[None], self.feature_size)
        dense = dense_target(joints_norm[None], depth_ft, self.kernel_size)
        target = {"joints": joints_norm.numpy(), "dense": dense[0].numpy(), "depth": depth_ft[0].numpy()}
        return target, np.ones((k, 1), dtype=np.float32)

    def loss_name(self, cfg) -> str:
        return "AWRLoss"

    def decode_crop(self, output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(N, 4K, F, F) model output + the (N, 1, S, S) input batch -> (N, K, 3)
        float32 (u_c, v_c, dz) on the output's device, by adaptive weighting."""
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise TypeError(f"awr codec: expected the awr model's (N, 4K, F, F) output tensor, got "
                            f"{type(output).__name__}")
        k, f, s = self.num_joints, self.feature_size, self.image_size
        if tuple(output.shape[1:]) != (4 * k, f, f):
            raise ValueError(f"awr codec: output has shape {tuple(output.shape)}, expected (N, {4 * k}, {f}, {f}) "
                             f"for {k} joints and DOWNSAMPLE {s // f}")
        if tuple(inputs.shape[1:]) != (1, s, s) or inputs.shape[0] != output.shape[0]:
            raise ValueError(f"awr codec: inputs have shape {tuple(inputs.shape)}, expected ({output.shape[0]}, 1, "
                             f"{s}, {s}) (MODEL.IMAGE_SIZE)")
        output = output.detach().float()
        depth_ft = feature_depth(inputs.detach().to(output.device, torch.float32), f)
        return normalised_to_crop(adaptive_vote(output, depth_ft, self.kernel_size), s)


def get_codec(cfg) -> AWRCodec:
    s = awr_settings(cfg)
    return AWRCodec(s.image_size, s.feature_size, s.num_joints, s.kernel_size)
