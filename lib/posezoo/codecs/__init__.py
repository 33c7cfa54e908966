"""Codecs by name, and the codec contract.

A codec is the one place that knows how a model's output relates to joints.
The dataset crops and calls ``encode``; the training loop calls the codec's
loss, ``train_metrics`` and ``heatmaps``; the test pass calls ``flip_back`` and
``decode``. Nothing else inspects what kind of codec it holds: callers ask the
codec, never test its type. Every codec subclasses ``codecs.base.Codec``
(heatmap codecs ``codecs.gaussian.HeatmapCodec``, depth-crop codecs
``codecs.base.DepthCropCodec``), and ``tests/codecs/test_codec_contract.py`` checks
every registered codec against what follows.

- ``prediction``: what ``decode`` returns, one of ``base.PREDICTIONS``:
  ``"keypoints2d"`` (image pixels), ``"keypoints3d"`` (frame uvd or camera mm,
  as the dataset says), ``"boxes"`` (x1, y1, x2, y2 in image pixels).
- ``input_kind``: what a crop is cut from, ``"image"`` (a photo and person
  boxes; the volumetric 3D codec too) or ``"depth"`` (a depth map and hand
  centres: A2J, AWR), or ``"keypoints"`` (joint vectors, no image: the lifting
  MLP); ``tools/infer.py`` and the API choose their path by it.
- ``crop_matrix(center, scale, rotation, output_size)`` (2D crops): the
  image -> crop 2x3 affine the dataset warps with (UDP and DARK change it)
  and maps the joints with.
- ``crop_image(image, center, scale, rotation, output_size)``: None, or the
  codec's own crop (float32 HWC on [0, 1]) where the official code does not warp
  (the hourglass releases crop an integer box and resize it);
  ``datasets.joints_dataset.crop_input`` picks.
- ``crop_points(points, trans)``: the joints in crop pixels; the affine map of
  ``crop_matrix``'s 2x3 but where the official code maps them otherwise (bearpaw).
- ``encode(joints, joints_vis)`` (2D) / ``encode(joints_crop, depth_crop)``
  (depth) -> ``(target, target_weight)``, float32 numpy; ``target_weight`` is
  (K, 1). ``target`` is one array, a dict of arrays (several targets, e.g.
  AWR), or a list with one entry per stage (multi-stage models: the loop's
  ``core.strategy.stage_loss`` pairs stage i's output with entry i).
- ``decode(output, meta)`` -> ``(coords, scores)``, batched torch on the
  output's device, never modifying ``output``. ``output`` is the last stage's
  output (a tensor or a dict). ``meta`` maps names to tensors: the keys the
  codec lists in ``meta_keys``, as the dataset recorded them per crop, and
  ``inputs``, the network's input batch. 2D crops: ``center`` and ``scale``
  (N, 2); depth and volumetric crops: ``crop_to_image`` (N, 2, 3), ``center``
  (N, 3) and ``depth_scale`` (N,), from which the codec maps crop space back to
  the frame itself. ``coords`` is (N, K, D) in the image/frame coordinates
  named by ``prediction`` (D = 2 or 3); ``scores`` is (N, K, 1). Box codecs
  (whole test images, ``crop_to_image`` and ``image_size``): ``coords`` (N, D,
  4) boxes per image and ``scores`` (N, D, 2), the detection score (-1: no
  box) and its 0-based class.
- ``flip_test(cfg)``: whether the test pass flips (``TEST.FLIP_TEST`` where
  ``supports_flip``; CornerNet: ``CORNERNET.FLIP_TEST``).
- ``flip_input(inputs, flip_pairs)``: the mirrored input batch of the flip test
  (images flipped along x; the lifting codec mirrors its joint vectors).
- ``flip_back(output_flipped, flip_pairs)``: the flip-test rule, the mirrored
  output mapped back and averaged in; with ``decode_flipped`` true instead
  ``decode`` gets both halves (2N rows, mirrors second) and merges them.
- ``channels_per_joint``: output channels per joint (UDP's offsets: 3), from
  which models size their heads (HRNet builds UDP's head for 3).
- ``loss(cfg)`` -> ``nn.Module`` called as ``loss(output, target,
  target_weight)`` on one stage: the codec names the loss it trains with
  (``loss_name``, a key of ``core.loss.LOSSES``); ``LOSS.NAME`` overrides it.
  A loss with ``all_stages = True`` gets the whole list of stage outputs at
  once (CornerNet's averages over the stacks, as the official loss).
- ``train_metrics(outputs, target)`` -> ``{name: value or (value, count)}``
  shown in the training log (heatmap accuracy for heatmap codecs; none for
  depth codecs); a count weights the running mean.
- ``heatmaps(outputs)`` -> (N, K, H, W) tensor drawn in debug images and
  TensorBoard (the heatmap channels of the last stage), or ``None``.

A module here (or a dotted import path) exposing ``get_codec(cfg)`` is a codec.
Which one is chosen follows the official YAMLs: ``MODEL.TARGET_TYPE`` names it,
except that ``gaussian`` means LPN's soft-argmax when ``TEST.SOFT_ARGMAX`` is set
and DARK when ``TEST.BLUR_KERNEL`` > 0 (DarkPose's YAMLs), the hourglass releases'
own conventions (``hourglass``) when ``TEST.HEATMAP_DECODE`` is ``bearpaw`` or
``princeton`` (their YAMLs; ``mmpose`` keeps ``gaussian`` with mmpose's border rule), and ``offset`` is
UDP's classification + offset target. This module is the only place these
keys choose anything (a codec's own ``get_codec`` reads its settings).
"""
from __future__ import annotations

from ..utils.registry import available, resolve

__all__ = ["build_codec", "codec_name", "available_codecs"]


def available_codecs() -> list[str]:
    return available("codecs", "get_codec")


def codec_name(cfg) -> str:
    name = cfg.MODEL.TARGET_TYPE
    if name == "gaussian":
        decode = cfg.TEST.HEATMAP_DECODE
        if decode != "msra":
            if cfg.TEST.SOFT_ARGMAX or cfg.TEST.BLUR_KERNEL > 0:
                raise ValueError(f"TEST.HEATMAP_DECODE {decode!r} is a decode of its own: it takes neither "
                                 f"TEST.SOFT_ARGMAX nor TEST.BLUR_KERNEL > 0 (set HEATMAP_DECODE msra for those)")
            if decode == "mmpose":  # the MSRA codec with mmpose 1.x's border rule (codecs/gaussian.py)
                return "gaussian"
            return "hourglass"
        if cfg.TEST.SOFT_ARGMAX:
            return "soft_argmax"
        if cfg.TEST.BLUR_KERNEL > 0:
            return "dark"
    if name == "offset":
        return "udp"
    return name


def build_codec(cfg):
    return resolve("codecs", codec_name(cfg), "get_codec", "MODEL.TARGET_TYPE").get_codec(cfg)
