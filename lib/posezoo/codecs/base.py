"""The codec contract: what every codec in ``posezoo.codecs`` provides.

A codec is the one place that knows how a model's output relates to joints.
The dataset crops and calls ``encode``; the training loop calls the codec's
loss; the test pass calls ``flip_back`` and ``decode``. Nothing else inspects
what kind of codec it holds: the loop asks the codec, never tests its type.

- ``prediction``: what ``decode`` returns, one of ``PREDICTIONS``:
  ``"keypoints2d"`` (image pixels), ``"keypoints3d"`` (frame uvd or camera mm,
  as the dataset says), ``"boxes"`` (x1, y1, x2, y2 in image pixels).
- ``encode(joints, joints_vis, **sample)`` -> ``(target, target_weight)``:
  numpy float32. ``target`` is one array, a dict of arrays (several targets,
  e.g. AWR), or a list with one entry per stage (multi-stage models; the loss
  pairs stage i's output with entry i).
- ``decode(output, meta)`` -> ``(coords, scores)``, batched torch on the
  output's device, never modifying ``output``. ``output`` is the last stage's
  output (a tensor or a dict). ``meta`` is a mapping of tensors on the same
  device holding the crop geometry the dataset recorded: ``center`` and
  ``scale`` (N, 2) for 2D crops; ``crop_to_image`` (N, 2, 3), ``center`` and
  ``depth_scale`` for depth and volumetric crops. ``coords`` is (N, K, D) in the
  image/frame coordinates named by ``prediction``; ``scores`` is (N, K, 1).
- ``flip_back(output_flipped, flip_pairs)``: the flip-test rule, or ``None``
  for ``flip_back`` when the codec has no flip test (``supports_flip`` False).
- ``loss(cfg)`` -> ``nn.Module`` called as ``loss(outputs, target,
  target_weight)`` where ``outputs`` is the model's output (a list for
  multi-stage models): the codec names the loss it trains with, ``LOSS.NAME``
  may override it.
- ``train_metrics(outputs, target)`` -> ``dict[str, float]`` shown in the
  training log (heatmap accuracy for heatmap codecs; empty by default).
- ``heatmaps(outputs)`` -> (N, K, H, W) tensor drawn in debug images and
  TensorBoard, or ``None`` when the output has no per-joint heatmap.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
from torch import nn

PREDICTIONS = ("keypoints2d", "keypoints3d", "boxes")


def last_stage(outputs: Any) -> Any:
    """The output that testing decodes: the last stage of a multi-stage model."""
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


class Codec:
    """Defaults shared by every codec; a codec overrides what differs."""

    prediction: str = "keypoints2d"
    supports_flip: bool = True
    channels_per_joint: int = 1

    def encode(self, joints, joints_vis, **sample):
        raise NotImplementedError(f"{type(self).__name__}.encode")

    def decode(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__}.decode")

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no flip test")

    def loss(self, cfg) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}.loss")

    def train_metrics(self, outputs: Any, target: Any) -> dict[str, float]:
        return {}

    def heatmaps(self, outputs: Any) -> Optional[torch.Tensor]:
        return None
