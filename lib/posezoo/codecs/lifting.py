"""The codec of the reconstruction component (``MODEL.TARGET_TYPE: lifting``,
model ``lifting_mlp``): Pavlakos et al., "Ordinal Depth Supervision for 3D Human
Pose Estimation", CVPR 2018 (its "reconstruction component"), as its release feeds and reads the
network in ``geopavlakos/ordinal-pose3d`` ``full-eval/main.lua:70-89``.

Input (``make_input(uv, depth)``), a (3 K,) vector, x of every joint, then y,
then the depth code (``main.lua:80-83``):

- 2D: pixel coordinates minus the root joint's, divided by the largest absolute
  value of them all (``main.lua:72-77``), so the input is free of the person's
  position and size in the image;
- depth, ``LIFTING.DEPTH_INPUT``: ``bins`` (the release) maps the root-relative
  depth (mm) to its bin b (0-based) among ``LIFTING.DEPTH_BINS`` equal bins over
  ``VOLUMETRIC.DEPTH_RANGE`` and feeds (b - B/2) / (B/2): the release's
  ``(zind - 33) / 32`` of the 64-bin argmax ``zind`` (1-based, ``main.lua:78``).
  ``ranks`` feeds the joint's rank by depth scaled to [-1, 1] (nearest -1), only
  the order, which is all that ordinal supervision pins down (the paper: the
  component turns ordinal, non-metric depths into a metric pose). Ties keep the
  joint order.

Target (``encode(joints_cam, joints_vis)``): the camera-space pose minus its root
(joint 0), in metres, in the same coordinate-major order: the release's output,
which ``main.lua:89`` reshapes to 3 x 17 and ``full-eval/matlab/demoH36M.m:32``
multiplies by 1000 to mm. Weight (K, 1): 1 for labelled joints.

Decode: the output back to root-relative camera mm (N, K, 3) (the dataset's
``keypoints3d``); scores all ones (a regression has no confidence).

Flip rule: the mirrored input has its x negated (root-relative, so mirroring the
image about any vertical line gives the same vector) and the left/right joints
swapped in all three parts; depths are unchanged by a mirror. ``flip_back`` maps
the output of a mirrored input back: X negated, joints swapped. The release runs
no flip test on this network (``main.lua:86``); the YAMLs keep TEST.FLIP_TEST off.

Loss: ``LiftingLoss`` (``core/loss.py``), the mean squared error over the 3 K
outputs, each joint's three scaled by its weight (Martinez et al. ICCV 2017,
Sec. 3.1: L2 on the 3D joints).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..utils.transforms import flip_permutation
from .base import Codec, Metric, last_stage

DEPTH_INPUTS = ("bins", "ranks")
#: mm per unit of the target (the release's network outputs metres)
TARGET_UNIT_MM = 1000.0


def normalise_2d(uv: np.ndarray, root: int = 0) -> np.ndarray:
    """(..., K, 2) pixels -> root-relative, divided by their largest absolute value (main.lua:72-77)."""
    rel = np.asarray(uv, dtype=np.float64) - np.asarray(uv, dtype=np.float64)[..., root:root + 1, :]
    scale = np.abs(rel).max(axis=(-2, -1), keepdims=True)
    return rel / np.where(scale > 0, scale, 1.0)


class LiftingCodec(Codec):
    """``depth_range`` (z_min, z_max) mm and ``depth_bins`` define the ``bins``
    depth code; ``root`` is the root joint."""

    prediction = "keypoints3d"
    input_kind = "keypoints"  # 2D joints + depth codes, no image: not for api.PoseEstimator / tools/infer.py
    meta_keys: tuple[str, ...] = ()

    def __init__(self, num_joints: int, depth_input: str = "bins", depth_bins: int = 64,
                 depth_range: Sequence[float] = (-1005.1859029814127, 980.8598618317474), root: int = 0):
        self.num_joints = int(num_joints)
        self.depth_input = depth_input
        self.depth_bins = int(depth_bins)
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.root = int(root)

    def depth_code(self, depth: np.ndarray) -> np.ndarray:
        """Root-relative depths (..., K) mm -> the depth inputs (..., K) (module doc)."""
        z = np.asarray(depth, dtype=np.float64)
        if self.depth_input == "ranks":
            ranks = np.argsort(np.argsort(z, axis=-1, kind="stable"), axis=-1, kind="stable")
            return 2.0 * ranks / max(self.num_joints - 1, 1) - 1.0
        lo, hi = self.depth_range
        half = self.depth_bins / 2.0
        bins = np.clip(np.floor((z - lo) * self.depth_bins / (hi - lo)), 0, self.depth_bins - 1)
        return (bins - half) / half

    def make_input(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(K, 2) pixels and (K,) root-relative depths (mm) -> the (3 K,) float32 input."""
        uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
        k = self.num_joints
        if uv.shape != (k, 2) or depth.shape != (k,):
            raise ValueError(f"lifting input: uv {uv.shape} and depth {depth.shape}, expected ({k}, 2) and ({k},)")
        xy = normalise_2d(uv, self.root)
        return np.concatenate([xy[:, 0], xy[:, 1], self.depth_code(depth)]).astype(np.float32)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray, **sample: Any) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) camera mm, visibility (K, >=1) -> the (3 K,) root-relative target in
        metres, coordinate-major, and the weight (K, 1)."""
        joints = np.asarray(joints, dtype=np.float64)
        k = self.num_joints
        if joints.shape != (k, 3):
            raise ValueError(f"lifting encode: joints of shape {joints.shape}, expected ({k}, 3) camera mm")
        rel = (joints - joints[self.root]) / TARGET_UNIT_MM
        weight = (np.asarray(joints_vis, dtype=np.float32).reshape(k, -1)[:, :1] > 0).astype(np.float32)
        return rel.T.reshape(-1).astype(np.float32), weight

    def decode(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3 K) -> root-relative camera mm (N, K, 3) float64 (float32 on MPS) and ones (N, K, 1)."""
        output = last_stage(output).detach()
        dtype = torch.float32 if output.device.type == "mps" else torch.float64
        joints = output.to(dtype).reshape(len(output), 3, self.num_joints).transpose(1, 2) * TARGET_UNIT_MM
        return joints, joints.new_ones(joints.shape[:2] + (1,))

    def _mirror(self, vectors: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """(N, 3 K) coordinate-major -> x negated, left/right joints swapped."""
        n, k = len(vectors), self.num_joints
        perm = torch.as_tensor(flip_permutation(k, flip_pairs), device=vectors.device)
        parts = vectors.reshape(n, 3, k)[:, :, perm]
        sign = torch.tensor([-1.0, 1.0, 1.0], dtype=vectors.dtype, device=vectors.device).view(1, 3, 1)
        return (parts * sign).reshape(n, 3 * k)

    def flip_input(self, inputs: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        return self._mirror(inputs, flip_pairs)

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        return self._mirror(output_flipped, flip_pairs)

    def loss_name(self, cfg) -> str:
        return "LiftingLoss"

    def train_metrics(self, outputs: Any, target: Any) -> dict[str, Metric]:
        """``mpjpe``: the batch's mean joint error in mm (root-relative, all joints)."""
        pred = last_stage(outputs).detach().float().reshape(len(target), 3, -1)
        gt = last_stage(target).to(pred.device).float().reshape(pred.shape)
        return {"mpjpe": float((pred - gt).norm(dim=1).mean()) * TARGET_UNIT_MM}


def lifting_settings(cfg) -> dict[str, Any]:
    """``LIFTING.*`` checked (one clear error each)."""
    lift = cfg.LIFTING
    if lift.DEPTH_INPUT not in DEPTH_INPUTS:
        raise ConfigError(f"LIFTING.DEPTH_INPUT = {lift.DEPTH_INPUT!r}: expected one of {', '.join(DEPTH_INPUTS)}")
    if int(lift.DEPTH_BINS) < 2 or lift.DEPTH_NOISE < 0 or lift.KEYPOINT_NOISE < 0:
        raise ConfigError(f"LIFTING.DEPTH_BINS ({lift.DEPTH_BINS}) must be >= 2 and DEPTH_NOISE ({lift.DEPTH_NOISE} "
                          f"mm), KEYPOINT_NOISE ({lift.KEYPOINT_NOISE} px) >= 0")
    depth_range = [float(x) for x in cfg.VOLUMETRIC.DEPTH_RANGE]
    if len(depth_range) != 2 or not depth_range[0] < depth_range[1]:
        raise ConfigError(f"VOLUMETRIC.DEPTH_RANGE = {depth_range}: expected [z_min, z_max] in mm, z_min < z_max")
    return {"depth_input": lift.DEPTH_INPUT, "depth_bins": int(lift.DEPTH_BINS), "depth_range": depth_range}


def get_codec(cfg) -> LiftingCodec:
    return LiftingCodec(cfg.MODEL.NUM_JOINTS, **lifting_settings(cfg))
