"""The codec contract in code: the base class every codec subclasses, and the
helpers the contract names. The contract itself is written out in the package
docstring (``posezoo/codecs/__init__.py``); ``tests/codecs/test_codec_contract.py``
checks every registered codec against it."""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, TypeVar, Union

import cv2
import numpy as np
import torch
from torch import nn

from ..utils.transforms import affine_transform, depth_crop_to_frame

PREDICTIONS = ("keypoints2d", "keypoints3d", "boxes")

#: one training metric: its batch value, or (value, count) when the running
#: mean should weight the batch by ``count`` (e.g. the labelled joints).
Metric = Union[float, tuple[float, int]]


F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _blas_threads():
    """threadpoolctl's controller of the BLAS libraries loaded (numpy's OpenBLAS among
    them), or None without threadpoolctl (then numpy's products keep their pool)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def single_threaded_on_cpu(decode: F) -> F:
    """Run a ``decode(self, output, meta)`` with one torch intra-op thread when
    ``output`` is a CPU tensor, restoring the caller's count after.

    A decode's tail is many small ops on N*K values; above torch's grain size
    (32k elements) each one is split over the intra-op pool, and on a CPU that
    other processes keep busy every split waits for a descheduled worker. On
    this project's shared 2-core machine (1,000 crops x 17 x 64 x 48) the
    Gaussian decode ran at ~7k crops/s with 2 threads and ~76k with 1, DARK
    2.4k against 10k (docs/speed.md). The full-map passes are numpy or one
    large op, which a single thread already runs at memory speed. OpenCV's
    pool (the UDP decoders' stacked blurs) and numpy's BLAS pool (DARK's window
    blurs, through threadpoolctl) get one thread for the same reason: with
    OpenBLAS's default pool DARK ran at 12k crops/s against 48k with one thread."""

    @functools.wraps(decode)
    def wrapper(self, output, *args, **kwargs):
        first = output[0] if isinstance(output, (list, tuple)) and output else output
        if not isinstance(first, torch.Tensor) or first.device.type != "cpu":
            return decode(self, output, *args, **kwargs)
        threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
        blas = _blas_threads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        try:
            with blas.limit(limits=1, user_api="blas") if blas is not None else contextlib.nullcontext():
                return decode(self, output, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)
            cv2.setNumThreads(cv_threads)

    return wrapper  # type: ignore[return-value]


def last_stage(outputs: Any) -> Any:
    """The output that testing decodes: the last stage of a multi-stage model."""
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


class Codec:
    """Defaults shared by every codec; a codec overrides what differs (see the
    package docstring for what each member promises)."""

    prediction: str = "keypoints2d"
    #: what a crop is cut from: "image" (a BGR photo and person boxes) or
    #: "depth" (a depth map in mm and hand centres: A2J, AWR); "keypoints":
    #: no crop, joint vectors in (the lifting MLP)
    input_kind: str = "image"
    supports_flip: bool = True
    #: True: with the flip test ``decode`` gets the output of the inputs and of
    #: their mirrors (2N rows, mirrors second) and merges them itself
    #: (CornerNet appends the mirrored detections); ``flip_back`` is not called.
    decode_flipped: bool = False
    channels_per_joint: int = 1
    #: the keys of the dataset's ``meta`` that ``decode`` reads (the caller
    #: moves exactly these to the output's device, plus ``inputs``).
    meta_keys: tuple[str, ...] = ("center", "scale")
    #: the box-centre rule of the official code this codec reproduces
    #: (``utils.transforms.BOX_CENTERS``); ``DATASET.BOX_CENTER`` overrides it.
    box_center: str = "hrnet"
    #: True: ``encode`` also takes ``visible`` (K,) bool, the joints annotated as
    #: visible (COCO ``v == 2``; every labelled joint where a dataset has no such
    #: flag, as MSPN's MPII reader doubles its 0/1 flags), for the official
    #: multi-stage losses that mask by visibility (codecs/megvii.py).
    reads_visibility: bool = False
    #: the flip test's merge, ``(output + flipped back) * flip_weight``: the mean (the official codes'),
    #: bearpaw's sum (1.0: ``codecs/hourglass.py``)
    flip_weight: float = 0.5

    def crop_image(self, image, center, scale, rotation: float, output_size: Sequence[int]) -> Optional[Any]:
        """A codec's own crop of an HWC uint8 image (float32 HWC on [0, 1]), or None: the
        dataset warps with ``crop_matrix`` (every codec but the hourglass releases')."""
        return None

    def crop_points(self, points: np.ndarray, trans: np.ndarray) -> np.ndarray:
        """(N, 2) image pixels -> crop pixels with ``crop_matrix``'s 2x3 (the hourglass release
        bearpaw maps them its own way)."""
        return affine_transform(points, trans)

    def encode(self, joints, joints_vis, **sample):
        raise NotImplementedError(f"{type(self).__name__}.encode")

    def decode(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__}.decode")

    def flip_test(self, cfg) -> bool:
        """Whether the test pass runs the flip test: ``TEST.FLIP_TEST`` where the
        codec has one; a codec with its own switch overrides this."""
        return bool(cfg.TEST.FLIP_TEST) and self.supports_flip

    def flip_input(self, inputs: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """The mirrored network input of the flip test: images (N, C, H, W) flipped
        along x; a codec whose inputs are not images (the lifting MLP's joint
        vectors) overrides it."""
        return inputs.flip(3)

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no flip test")

    def loss_name(self, cfg) -> str:
        """The name (a key of ``core.loss.LOSSES``) of the loss this codec trains with."""
        raise NotImplementedError(f"{type(self).__name__} names no loss")

    def loss(self, cfg) -> nn.Module:
        """``LOSS.NAME`` when set, else the codec's own loss (``loss_name``).
        Losses sit above codecs (A2J's loss votes with the codec's anchors), so
        the loss table is imported here, when a loss is built."""
        from ..core.loss import loss_by_name

        return loss_by_name(cfg.LOSS.NAME or self.loss_name(cfg), cfg)

    def train_metrics(self, outputs: Any, target: Any) -> dict[str, Metric]:
        return {}

    def heatmaps(self, outputs: Any) -> Optional[torch.Tensor]:
        return None


class DepthCropCodec(Codec):
    """What the depth-crop codecs (A2J, AWR) share: they predict frame uvd, vote
    in crop space from the output and the input crop (``decode_crop``) and map
    back with the crop geometry the NYU dataset records; no flip test; no
    heatmaps to draw or score while training."""

    prediction = "keypoints3d"
    input_kind = "depth"
    supports_flip = False
    meta_keys = ("crop_to_image", "center", "depth_scale")

    def decode_crop(self, output, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__}.decode_crop")

    def decode(self, output, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Output + ``meta`` (``inputs`` (N, 1, H, W), ``crop_to_image`` (N, 2, 3),
        ``center`` (N, 3) uvd, ``depth_scale`` (N,)) -> frame uvd (N, K, 3) in the
        dtype of ``crop_to_image`` and scores (N, K, 1), all ones: voting gives
        no confidence."""
        joints = self.decode_crop(output, meta["inputs"]).float()
        device = joints.device
        uvd = depth_crop_to_frame(joints, meta["crop_to_image"].to(device), meta["center"].to(device),
                                  meta["depth_scale"].to(device))
        return uvd, joints.new_ones(joints.shape[:2] + (1,))
