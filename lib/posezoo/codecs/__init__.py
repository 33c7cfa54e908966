"""Codecs by name. A codec turns joints into training targets and network
outputs back into image coordinates, and owns the geometry that depends on it:

- ``crop_matrix(center, scale, rotation, output_size)``: the image -> crop 2x3
  affine the dataset warps with (UDP changes it);
- ``encode(joints, joints_vis)``: crop-pixel joints (K, 3) -> target (C, H, W)
  and target weight (K, 1), float32 numpy;
- ``decode(output, center, scale)``: network output (N, C, H, W) -> image
  coordinates (N, K, 2) and scores (N, K, 1), batched in torch on the output's
  device, never modifying the output;
- ``flip_back(output_flipped, flip_pairs)``: the flip-test rule.

A module here (or a dotted import path) exposing ``get_codec(cfg)`` is a codec.
Which one is chosen follows the official YAMLs: ``MODEL.TARGET_TYPE`` names it,
except that ``gaussian`` means LPN's soft-argmax when ``TEST.SOFT_ARGMAX`` is set
and DARK when ``TEST.BLUR_KERNEL`` > 0 (DarkPose's YAMLs), and ``offset`` is
UDP's classification + offset target.
"""
from __future__ import annotations

from ..utils.registry import available, resolve

__all__ = ["build_codec", "codec_name", "available_codecs"]


def available_codecs() -> list[str]:
    return available("codecs", "get_codec")


def codec_name(cfg) -> str:
    name = cfg.MODEL.TARGET_TYPE
    if name == "gaussian":
        if cfg.TEST.SOFT_ARGMAX:
            return "soft_argmax"
        if cfg.TEST.BLUR_KERNEL > 0:
            return "dark"
    if name == "offset":
        return "udp"
    return name


def build_codec(cfg):
    return resolve("codecs", codec_name(cfg), "get_codec", "MODEL.TARGET_TYPE").get_codec(cfg)
