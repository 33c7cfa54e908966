"""posezoo's per-joint loop references (tests/oracles/reference*.py) of each codec's encode and decode,
and the check that a vectorised decode agrees with one."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec

from .common import MAX_DECODE_PX_DIFF, ReferenceMismatch

# the loop oracles live with the tests (tests/oracles), outside the package
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tests"))
from oracles import reference as _reference  # noqa: E402
from oracles import reference_dark as _reference_dark  # noqa: E402
from oracles import reference_soft_argmax as _reference_soft_argmax  # noqa: E402
from oracles import reference_udp as _reference_udp  # noqa: E402


@dataclass(frozen=True)
class LoopReference:
    """A reference implementation bound to one codec's settings: a per-joint loop from
    tests/oracles/reference*.py, or an official function (bench/official.py)."""
    name: str
    run: Callable
    every: int = 1  # encode: the reference gets the first max(1, n // every) joint sets only
    score_tol: float = 0.0  # decode: largest |score difference| accepted (0: identical scores)


def encode_reference(codec) -> LoopReference | None:
    """The loop reference of ``codec.encode``: run(joints (K, 3), joints_vis (K, 3)) -> (target, weight),
    or None for a codec without one (a user's plugin)."""
    if isinstance(codec, SoftArgmaxCodec):  # LPN trains on HRNet's targets
        codec = codec.gaussian
    if isinstance(codec, GaussianHeatmapCodec):
        return LoopReference("_reference.generate_target_loop", lambda joints, vis: _reference.generate_target_loop(
            joints, vis, codec.image_size, codec.heatmap_size, codec.sigma))
    if isinstance(codec, DarkCodec):
        return LoopReference("_reference_dark.generate_target_dark_loop",
                             lambda joints, vis: _reference_dark.generate_target_dark_loop(
                                 codec.to_heatmap(joints), vis, codec.heatmap_size, codec.sigma))
    if isinstance(codec, UDPHeatmapCodec):
        return LoopReference("_reference_udp.generate_udp_gaussian_loop",
                             lambda joints, vis: _reference_udp.generate_udp_gaussian_loop(
                                 joints, vis, codec.image_size, codec.heatmap_size, codec.sigma))
    if isinstance(codec, UDPOffsetCodec):  # a Python loop over every pixel of every joint
        return LoopReference("_reference_udp.generate_udp_offset_loop",
                             lambda joints, vis: _reference_udp.generate_udp_offset_loop(
                                 joints, vis, codec.image_size, codec.heatmap_size, codec.kpd), every=50)
    return None


def decode_reference(codec) -> LoopReference | None:
    """The loop reference of ``codec.decode``: run(numpy outputs (N, C, H, W), center (N, 2), scale (N, 2))
    -> (preds (N, K, 2), maxvals (N, K, 1)), or None for a codec without one (a user's plugin)."""
    if isinstance(codec, GaussianHeatmapCodec):
        return LoopReference("_reference.get_final_preds_loop", lambda out, center, scale: (
            _reference.get_final_preds_loop(out, center, scale, codec.post_process)))
    if isinstance(codec, DarkCodec):
        return LoopReference("_reference_dark.get_final_preds_dark_loop", lambda out, center, scale: (
            _reference_dark.get_final_preds_dark_loop(out, center, scale, codec.blur_kernel)))
    if isinstance(codec, SoftArgmaxCodec):
        return LoopReference("_reference_soft_argmax.get_final_preds_soft_argmax_loop", lambda out, center, scale: (
            _reference_soft_argmax.get_final_preds_soft_argmax_loop(out, center, scale, codec.beta,
                                                                     codec.post_process, codec.bias)))
    if isinstance(codec, UDPHeatmapCodec):
        return LoopReference("_reference_udp.get_final_preds_udp_loop", lambda out, center, scale: (
            _reference_udp.get_final_preds_udp_loop(out, center, scale, codec.post_process)))
    if isinstance(codec, UDPOffsetCodec):  # scores: OpenCV's float32 blur vs the codec's float64 one
        return LoopReference("_reference_udp.get_final_preds_offset_loop", lambda out, center, scale: (
            _reference_udp.get_final_preds_offset_loop(out, center, scale, codec.kpd)), score_tol=1e-5)
    return None


def check_decode(codec, ref: LoopReference, preds, maxvals, ref_preds, ref_maxvals) -> tuple[float, float]:
    """Max |px| and |score| differences of a decode from its reference; ReferenceMismatch beyond the limits."""
    preds, maxvals = preds.cpu().numpy(), maxvals.cpu().numpy()
    if preds.shape != ref_preds.shape or maxvals.shape != ref_maxvals.shape:
        raise ReferenceMismatch(f"{type(codec).__name__}.decode gives shapes {preds.shape}/{maxvals.shape}, "
                                f"{ref.name} {ref_preds.shape}/{ref_maxvals.shape}")
    px = float(np.abs(preds - ref_preds).max()) if preds.size else 0.0
    vals = float(np.abs(maxvals - ref_maxvals).max()) if maxvals.size else 0.0
    if not px < MAX_DECODE_PX_DIFF or not vals <= ref.score_tol:
        raise ReferenceMismatch(f"{type(codec).__name__}.decode differs from {ref.name}: {px:g} px "
                                f"(limit {MAX_DECODE_PX_DIFF:g}), scores {vals:g} (limit {ref.score_tol:g})")
    return px, vals
