"""Volumetric heatmaps for 3D human pose (``MODEL.TARGET_TYPE: volumetric``):
Pavlakos et al., "Coarse-to-Fine Volumetric Prediction for Single-Image 3D
Human Pose", CVPR 2017 (geopavlakos/c2f-vol-train, c2f-vol-demo), with the
ordinal depth supervision of "Ordinal Depth Supervision for 3D Human Pose
Estimation", CVPR 2018 (geopavlakos/ordinal-pose3d). Settings: ``VOLUMETRIC.*``
(``config/default.py``), shared with the ``c2f_vol`` model.

Layout. Stack s outputs (N, K * D_s, H, W), joint-major: channel ``k * D_s + d``
is depth bin d of joint k (c2f-vol-train ``src/util/pose-c2f.lua:23-26``,
``outTemp:sub((j-1)*resZ+1, j*resZ)``); ``volumes`` views it as (N, K, D_s, H, W).

Encode (``encode(joints, joints_vis, ordinal=None, has_3d=None)``): ``joints``
(K, 3) is crop-input x, y in pixels and z, the depth relative to the root joint
in mm. Per stack (``pose-c2f.lua:19-30`` with ``util/img.lua:166-204``):

- the depth range ``VOLUMETRIC.DEPTH_RANGE`` (the demo's ``voxel_limits.mat``:
  64 equal bins of 31.03 mm from -1005.19 to +980.86 mm) split into D_s equal
  bins; z falls in bin ``floor((z - z_min) D_s / range)``, clipped to the range.
  For D_s dividing 64 this is the Lua ``ceil(zind * resZ / 64)`` of the 64-bin
  index;
- a 2D Gaussian of window 6 sigma + 1 (``MODEL.SIGMA``, official 2) times a depth
  profile of window ``size_z = 2 floor((6 sigma D_s / W + 1) / 2) + 1`` bins, both
  Torch's ``image.gaussian(size)``: std 0.25 * size, peak 1 (so sigma 2 gives a
  3.25-pixel std, and 64 bins a 3.25-bin one; four or fewer bins: one bin). A
  one-bin stack gets the 2D heatmap.

Where this deliberately differs: the crop and the heatmap centre follow
posezoo's HRNet geometry (``get_affine_transform``; centre ``int(x / stride +
0.5)``, decoded through ``crop_to_image``) rather than the Lua ``transform``'s
truncation, so that encode and decode round-trip; joints unlabelled or whose
window misses the map get weight 0 (the Lua code trains them towards zero);
where the 2D window crosses the left or top edge the Lua slice of the Gaussian
starts one entry late (``img.lua:177-178``, ``max(1, -ul)`` for ``2 - ul``), here
it stays centred. Elsewhere the volumes equal the Lua ones (tested against a
transcription of ``drawGaussian3D``).

Each stack's target is a dict: ``volume`` (K*D_s, H, W); ``heatmap`` (K, H, W),
the 2D part; ``depth_weight`` (K,), 1 where the joint's depth supervises the
volume; ``ordinal`` (K, K), the pair codes. ``has_3d`` (default: no ``ordinal``
given) says whether z is known; a joint with a non-finite z has no depth either.
A sample without depth is supervised by its 2D heatmap against the maximum of
the volume over depth and, with ``ordinal``, by the ranking loss.

Ordinal codes (paper Sec. 3.1, Eq. 2): ``ordinal[i, j]`` is ``ORDINAL_CLOSER``
(+1) when joint i is closer to the camera than j, ``ORDINAL_FARTHER`` (-1) when j
is closer, ``ORDINAL_SAME`` (0) for roughly equal depths, ``ORDINAL_UNKNOWN``
(-128) when not annotated. The loss is ``core.loss.VolumetricLoss``.

Decode (last stack): the argmax of each joint's D x H x W volume (c2f-vol-train
``util/eval.lua:29-37`` ``getPreds3D``), or with ``VOLUMETRIC.SOFT_ARGMAX`` the
expected (x, y, d) under ``softmax(BETA * volume)`` (differentiable:
``volume_soft_argmax``). x, y go back to image pixels through the 2D crop
(``center``, ``scale``); d to the bin centre in mm (the demo's ``Zcen``, its
``matlab/startup.m``); with the root in camera coordinates (``root_cam``, mm),
``Z = root_z + z`` and the pinhole back-projection ``X = (u - cx) Z / fx``,
``Y = (v - cy) Z / fy`` (demo ``matlab/utils/estimate3D.m:30-44``, its recType 1:
the ground-truth root depth). Returns camera mm (N, K, 3) and the volume maximum
per joint (N, K, 1).

Flip: mirror x, swap the left/right joints' bins (``util/img.lua:236-262`` with
``ref.lua:181-190``), plus HRNet's one-pixel shift with ``TEST.SHIFT_HEATMAP``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch

from ..config import ConfigError
from ..utils.transforms import crop_to_image, flip_back, get_affine_transform
from .base import Codec, Metric, last_stage
from .gaussian import heatmap_accuracy

#: the pair codes (module doc); unknown is int8's minimum, far from every relation
ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN = 1, -1, 0, -128
ORDINAL_CODES = (ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN)
#: the 64-bin grid the depth range was made for (c2f-vol-train README, section 4)
FINE_BINS = 64


def torch_gaussian(size: int) -> np.ndarray:
    """Torch7's ``image.gaussian(size)`` profile along one axis (its defaults:
    std 0.25 * size, mean at the centre, amplitude 1): (size,) float64."""
    i = np.arange(1, size + 1, dtype=np.float64)
    return np.exp(-0.5 * ((i - (0.5 * size + 0.5)) / (0.25 * size)) ** 2)


def depth_window(sigma: float, bins: int, width: int) -> int:
    """The Lua ``size_z`` (``pose-c2f.lua:22``): the depth window of a stack of `bins`."""
    return int(2 * np.floor((6 * sigma * bins / width + 1) / 2) + 1)


def volumes(output: torch.Tensor, num_joints: int) -> torch.Tensor:
    """(N, K * D, H, W) -> the (N, K, D, H, W) view (joint-major channels)."""
    n, c, h, w = output.shape
    if c % num_joints:
        raise ValueError(f"volumetric output has {c} channels, not a multiple of MODEL.NUM_JOINTS = {num_joints}")
    return output.reshape(n, num_joints, c // num_joints, h, w)


def volume_soft_argmax(vol: torch.Tensor, beta: float) -> torch.Tensor:
    """(N, K, D, H, W) -> (N, K, 3) expected (x, y, d) in heatmap pixels and bins
    under ``softmax(beta * vol)`` over each joint's volume; differentiable."""
    n, k, d, h, w = vol.shape
    probs = torch.softmax(vol.reshape(n, k, -1) * beta, dim=2).reshape(n, k, d, h, w)
    grids = [torch.arange(s, dtype=probs.dtype, device=probs.device) for s in (w, h, d)]
    return torch.stack([(probs.sum(dim=(2, 3)) * grids[0]).sum(2), (probs.sum(dim=(2, 4)) * grids[1]).sum(2),
                        (probs.sum(dim=(3, 4)) * grids[2]).sum(2)], dim=2)


def volume_argmax(vol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, D, H, W) -> integer (x, y, d) of each joint's maximum (N, K, 3) and its value (N, K, 1)."""
    n, k, d, h, w = vol.shape
    maxvals, idx = vol.reshape(n, k, -1).max(dim=2)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor") % h,
                          torch.div(idx, h * w, rounding_mode="floor")], dim=2)
    return coords.to(vol.dtype), maxvals.unsqueeze(2)


def ordinal_from_depth(z: np.ndarray, same_depth: float = 0.0) -> np.ndarray:
    """The int8 ordinal codes of depths `z`, (K,) -> (K, K) or (N, K) -> (N, K, K):
    +1 where z_i < z_j - same_depth (i closer), -1 where z_i > z_j + same_depth, 0
    otherwise (the diagonal included); unknown where either depth is not finite."""
    z = np.asarray(z, dtype=np.float64)
    diff = z[..., :, None] - z[..., None, :]
    codes = np.where(diff < -same_depth, ORDINAL_CLOSER,
                     np.where(diff > same_depth, ORDINAL_FARTHER, ORDINAL_SAME))
    known = np.isfinite(z)[..., :, None] & np.isfinite(z)[..., None, :]
    return np.where(known, codes, ORDINAL_UNKNOWN).astype(np.int8)


def back_project(uvz: torch.Tensor, root_depth: torch.Tensor, focal: torch.Tensor, princpt: torch.Tensor
                 ) -> torch.Tensor:
    """(N, K, 3) image x, y + root-relative depth (mm) -> camera mm, given the
    root's depth (N,) and the pinhole camera (N, 2) each: Z = root_z + z,
    X = (u - cx) Z / fx, Y = (v - cy) Z / fy (c2f-vol-demo
    ``matlab/utils/estimate3D.m:30-44``, recType 1)."""
    device, dtype = uvz.device, uvz.dtype
    depth = root_depth.to(device, dtype).reshape(-1, 1, 1) + uvz[..., 2:]
    xy = (uvz[..., :2] - princpt.to(device, dtype)[:, None, :]) * depth / focal.to(device, dtype)[:, None, :]
    return torch.cat([xy, depth], dim=2)


class VolumetricCodec(Codec):
    """``image_size`` and ``heatmap_size`` are (width, height); ``res_z`` has one
    depth resolution per stack; ``depth_range`` is (z_min, z_max) in mm."""

    prediction = "keypoints3d"
    meta_keys = ("center", "scale", "root_cam", "focal", "princpt")

    def __init__(self, num_joints: int, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 res_z: Sequence[int], depth_range: Sequence[float], soft_argmax: bool = False, beta: float = 160.0,
                 shift_heatmap: bool = False):
        self.num_joints = int(num_joints)
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.res_z = [int(d) for d in res_z]
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.soft_argmax = bool(soft_argmax)
        self.beta = float(beta)
        self.shift_heatmap = bool(shift_heatmap)

    @property
    def bin_mm(self) -> float:
        """Width in mm of one bin of the finest (last) stack."""
        return (self.depth_range[1] - self.depth_range[0]) / self.res_z[-1]

    def depth_bins(self, z: np.ndarray, bins: int) -> np.ndarray:
        """Root-relative depths (mm) -> bin index among `bins`, clipped to the range."""
        lo, hi = self.depth_range
        return np.clip(np.floor((np.asarray(z, np.float64) - lo) * bins / (hi - lo)), 0, bins - 1).astype(np.int64)

    def bin_centres(self, bins: torch.Tensor, resolution: int) -> torch.Tensor:
        """Bin coordinates (integer or expected) of a `resolution`-bin stack -> mm (the demo's ``Zcen``)."""
        lo, hi = self.depth_range
        return lo + (bins + 0.5) * (hi - lo) / resolution

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """The image -> crop affine the dataset warps with (HRNet's, as the 2D codecs)."""
        return get_affine_transform(center, scale, rotation, output_size)

    def _heatmap(self, joints: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The 2D part: (K, H, W) Gaussians, their integer centres (K, 2); weight 0 where the window misses."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        stride = self.image_size / self.heatmap_size
        radius = int(3 * self.sigma)
        profile = torch_gaussian(2 * radius + 1)
        centre = np.stack([(joints[:, 0] / stride[0] + 0.5), (joints[:, 1] / stride[1] + 0.5)], 1)
        centre = np.where(np.isfinite(centre), centre, -10 * (w + h)).astype(np.int64)
        outside = ((centre[:, 0] - radius >= w) | (centre[:, 1] - radius >= h) | (centre[:, 0] + radius < 0)
                   | (centre[:, 1] + radius < 0))
        weight = np.where(outside[:, None], 0, weight).astype(np.float32)

        def axis(c: np.ndarray, size: int) -> np.ndarray:
            offset = np.arange(size)[None, :] - c[:, None] + radius  # index into the profile
            inside = (offset >= 0) & (offset <= 2 * radius)
            return np.where(inside, profile[offset.clip(0, 2 * radius)], 0.0)

        maps = axis(centre[:, 1], h)[:, :, None] * axis(centre[:, 0], w)[:, None, :]
        return (maps * (weight[:, :1, None] > 0)).astype(np.float32), centre, weight

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray, ordinal: Optional[np.ndarray] = None,
               has_3d: Optional[bool] = None, **sample: Any) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
        """(K, 3) crop x, y (px) and root-relative z (mm), visibility (K, >=1),
        optional ordinal codes (K, K) -> one target dict per stack (module doc)
        and the weight (K, 1)."""
        joints = np.asarray(joints, dtype=np.float64)
        k = self.num_joints
        if joints.shape[0] != k or joints.shape[1] < 3:
            raise ValueError(f"volumetric encode: joints of shape {joints.shape}, expected ({k}, 3): crop x, y in "
                             f"pixels and the depth relative to the root joint in mm")
        weight = (np.asarray(joints_vis, dtype=np.float32)[:, :1] > 0).astype(np.float32)
        heatmap, centre, weight = self._heatmap(joints, weight)
        if ordinal is None:
            codes = np.full((k, k), ORDINAL_UNKNOWN, np.float32)
        else:
            codes = np.asarray(ordinal)
            if codes.shape != (k, k) or not np.isin(codes, ORDINAL_CODES).all():
                raise ValueError(f"volumetric encode: ordinal must be ({k}, {k}) with codes +1 (row joint closer), "
                                 f"-1 (farther), 0 (same depth), {ORDINAL_UNKNOWN} (unknown); got shape "
                                 f"{codes.shape} and values {sorted(set(np.unique(codes).tolist()))}")
            codes = codes.astype(np.float32)
        if has_3d is None:
            has_3d = ordinal is None
        depth_known = bool(has_3d) & np.isfinite(joints[:, 2]) & (weight[:, 0] > 0)
        width = int(self.heatmap_size[0])
        targets = []
        for bins in self.res_z:
            vol = np.zeros((k, bins) + heatmap.shape[1:], np.float32)
            size_z = depth_window(self.sigma, bins, width)
            profile = torch_gaussian(size_z)
            zbin = self.depth_bins(np.where(depth_known, joints[:, 2], 0.0), bins)
            offset = np.arange(bins)[None, :] - zbin[:, None] + size_z // 2
            inside = (offset >= 0) & (offset < size_z)
            depth = np.where(inside, profile[offset.clip(0, size_z - 1)], 0.0) * depth_known[:, None]
            vol[:] = depth[:, :, None, None] * heatmap[:, None]
            targets.append({"volume": vol.reshape(k * bins, *heatmap.shape[1:]), "heatmap": heatmap,
                            "depth_weight": depth_known.astype(np.float32), "ordinal": codes})
        return targets, weight

    def _decode_crop(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmap x, y and depth in mm (N, K, 3) and scores (N, K, 1) of one stack's output."""
        vol = volumes(output.detach(), self.num_joints)
        if vol.dtype not in (torch.float32, torch.float64):
            vol = vol.float()
        coords, scores = volume_argmax(vol)
        if self.soft_argmax:
            coords = volume_soft_argmax(vol, self.beta)
        dtype = torch.float32 if vol.device.type == "mps" else torch.float64
        coords = coords.to(dtype)
        z = self.bin_centres(coords[..., 2:], vol.shape[2])
        return torch.cat([coords[..., :2], z], dim=2), scores

    def decode_image(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stack -> (N, K, 3) image x, y in pixels and depth relative to
        the root joint in mm, and scores (N, K, 1): what a photo without a camera
        gives (``api.PoseEstimator.estimate_3d``); ``meta`` needs only the crop's
        ``center`` and ``scale``."""
        output = last_stage(output)
        crop, scores = self._decode_crop(output)
        h, w = output.shape[-2:]
        uv = crop_to_image(crop[..., :2], meta["center"].to(crop.device), meta["scale"].to(crop.device),
                           (int(w), int(h)))
        return torch.cat([uv, crop[..., 2:]], dim=2), scores

    def decode(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stack -> camera-space joints in mm (N, K, 3) and scores (module doc)."""
        uvz, scores = self.decode_image(output, meta)
        return back_project(uvz, meta["root_cam"][:, 2], meta["focal"], meta["princpt"]), scores

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mirror x and swap the left/right joints' depth bins (every bin of a pair)."""
        bins = output_flipped.shape[1] // self.num_joints
        pairs = [(a * bins + d, b * bins + d) for a, b in flip_pairs for d in range(bins)]
        return flip_back(output_flipped, pairs, shift=self.shift_heatmap)

    def loss_name(self, cfg) -> str:
        return "VolumetricLoss"

    def heatmaps(self, outputs: Any) -> torch.Tensor:
        """The last stack's maximum over depth, (N, K, H, W); for targets, their 2D part."""
        last = last_stage(outputs)
        if isinstance(last, Mapping):
            return last["heatmap"]
        return volumes(last, self.num_joints).amax(dim=2)

    def train_metrics(self, outputs: Any, target: Any) -> dict[str, Metric]:
        """``acc``: the 2D heatmap accuracy of the maximum over depth; ``acc3d`` (volumes
        of more than one bin): the official ``heatmapAccuracy`` on ``getPreds3D``
        (``util/eval.lua:49-84``): the share of depth-labelled joints whose (x, y, d)
        argmax lies within W / 20 voxels of the target's."""
        _, avg, cnt = heatmap_accuracy(self.heatmaps(outputs).detach(), last_stage(target)["heatmap"])
        metrics: dict[str, Metric] = {"acc": (avg, cnt)}
        out, gt = last_stage(outputs).detach().float(), last_stage(target)
        vol = volumes(out, self.num_joints)
        if vol.shape[2] > 1:
            pred, _ = volume_argmax(vol)
            true, _ = volume_argmax(volumes(gt["volume"].to(out.device, out.dtype), self.num_joints))
            labelled = gt["depth_weight"].to(out.device) > 0
            close = (pred - true).norm(dim=2) / (vol.shape[-1] / 10) <= 0.5
            count = int(labelled.sum())
            metrics["acc3d"] = (float((close & labelled).sum()) / max(count, 1), count)
        return metrics


def volumetric_settings(cfg) -> dict[str, Any]:
    """``VOLUMETRIC.*`` checked (one clear error each); shared by the model, the codec and the loss."""
    v = cfg.VOLUMETRIC
    res_z = [int(d) for d in v.RES_Z]
    if not res_z or any(d < 1 for d in res_z):
        raise ConfigError(f"VOLUMETRIC.RES_Z = {list(v.RES_Z)}: expected one positive depth resolution per stack, "
                          f"e.g. [1, 2, 4, 64] (the paper's 4-stack coarse-to-fine model)")
    if len(v.DEPTH_RANGE) != 2 or not float(v.DEPTH_RANGE[0]) < float(v.DEPTH_RANGE[1]):
        raise ConfigError(f"VOLUMETRIC.DEPTH_RANGE = {list(v.DEPTH_RANGE)}: expected [z_min, z_max] in mm, "
                          f"z_min < z_max (official: about [-1005.19, 980.86])")
    if v.BETA <= 0 or v.ORDINAL_WEIGHT < 0 or v.ORDINAL_SCALE <= 0:
        raise ConfigError(f"VOLUMETRIC.BETA ({v.BETA}) and ORDINAL_SCALE ({v.ORDINAL_SCALE}) must be > 0 and "
                          f"ORDINAL_WEIGHT ({v.ORDINAL_WEIGHT}) >= 0")
    return {"res_z": res_z, "depth_range": [float(x) for x in v.DEPTH_RANGE], "soft_argmax": bool(v.SOFT_ARGMAX),
            "beta": float(v.BETA), "ordinal_weight": float(v.ORDINAL_WEIGHT),
            "ordinal_scale": float(v.ORDINAL_SCALE)}


def get_codec(cfg) -> VolumetricCodec:
    s = volumetric_settings(cfg)
    return VolumetricCodec(cfg.MODEL.NUM_JOINTS, cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                           s["res_z"], s["depth_range"], s["soft_argmax"], s["beta"], cfg.TEST.SHIFT_HEATMAP)
