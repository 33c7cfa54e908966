"""PCK and PCKh: the fraction of joints predicted within a threshold distance,
the threshold being a fraction ``alpha`` of a per-instance normaliser.

Generic maths only (numpy, vectorised); no dataset is imported here. The MPII
table (Head, Shoulder, ..., Mean) is assembled by ``datasets/mpii.py`` on top of
``pckh``.

Conventions, shared by every function:

- ``pred`` and ``gt`` are (N, K, 2) pixel coordinates in the same frame. Only
  their difference matters, so 0-based and 1-based coordinates give the same
  result as long as both use the same base.
- ``visible`` is an (N, K) mask of the joints that count (labelled GT joints).
  Other joints are ignored, whatever their prediction is.
- A joint is correct when ``distance / normaliser <= alpha`` (the comparison
  of HRNet's MPII evaluation; bearpaw's ``eval_PCKh.py`` uses ``<``: pass
  ``strict=True`` for it). A NaN prediction or a zero normaliser never counts
  as correct.
- Percentages are in 0..100. A joint that is visible in no instance has a PCK
  of NaN and is left out of the means.

Normalisers (one value per instance, or one per axis, see ``pck``):

- ``head_sizes(headboxes)``: PCKh, 0.6 x the head-box diagonal (MPII,
  ``SC_BIAS``). PCKh@0.5 is the MPII benchmark metric.
- ``torso_sizes(gt, a, b)``: the distance between two torso joints (for
  example a shoulder and the opposite hip, the "torso diameter" of LSP PCK).
- ``bbox_sizes(boxes, mode)``: from [x, y, w, h] person boxes: the longer side
  (``"max"``), the diagonal (``"diag"``), or per-axis (w, h) as mmpose's
  ``PCK`` does (``"wh"``). Animal sets are commonly scored at PCK@0.05 of the
  box size.

Example (a custom keypoint set scored at PCK@0.05 of the box's longer side)::

    result = pck(pred, gt, visible, bbox_sizes(boxes, "max"), alpha=0.05)
    result.mean, result.per_joint
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

__all__ = ["SC_BIAS", "PCKResult", "head_sizes", "torso_sizes", "bbox_sizes", "keypoint_crop_sizes",
           "normalized_distances", "pck_curve", "pooled_mean", "pck", "pckh", "ccssl_pck"]

#: MPII's head-size factor: the PCKh normaliser is 0.6 x the head-box diagonal.
SC_BIAS = 0.6


@dataclass
class PCKResult:
    """``per_joint`` (K,) or (T, K) percentages (NaN where a joint is never
    visible), ``counts`` (K,) visible instances per joint, ``mean`` the
    percentage of all visible joints that are correct (pooled over joints, i.e.
    the per-joint PCK weighted by the counts), or (T,) means for T thresholds."""
    per_joint: np.ndarray
    counts: np.ndarray
    mean: Union[float, np.ndarray]


def head_sizes(headboxes: np.ndarray, sc_bias: float = SC_BIAS) -> np.ndarray:
    """(N, 2, 2) head boxes [[x1, y1], [x2, y2]] -> (N,) ``sc_bias`` x diagonal.

    MPII's ``headboxes_src`` (2, 2, N) is ``headboxes_src.transpose(2, 0, 1)``."""
    headboxes = np.asarray(headboxes, dtype=np.float64)
    if headboxes.ndim != 3 or headboxes.shape[1:] != (2, 2):
        raise ValueError(f"head boxes must be (N, 2, 2) [[x1, y1], [x2, y2]]; got shape {headboxes.shape}")
    return np.linalg.norm(headboxes[:, 1, :] - headboxes[:, 0, :], axis=1) * sc_bias


def torso_sizes(gt: np.ndarray, joint_a: int, joint_b: int) -> np.ndarray:
    """(N,) distance between GT joints ``joint_a`` and ``joint_b`` (e.g. a
    shoulder and the opposite hip). It is 0 where either is unlabelled, which
    then scores every joint of that instance as a miss: filter such instances
    out of ``visible`` first if they should not count."""
    gt = np.asarray(gt, dtype=np.float64)
    return np.linalg.norm(gt[:, joint_a, :] - gt[:, joint_b, :], axis=1)


def bbox_sizes(boxes: np.ndarray, mode: str = "max") -> np.ndarray:
    """[x, y, w, h] boxes (N, 4) -> normalisers: ``"max"`` max(w, h) (N,),
    ``"diag"`` sqrt(w^2 + h^2) (N,), ``"wh"`` (N, 2) = (w, h) per axis."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) [x, y, w, h]; got shape {boxes.shape}")
    wh = boxes[:, 2:4]
    if mode == "max":
        return wh.max(axis=1)
    if mode == "diag":
        return np.linalg.norm(wh, axis=1)
    if mode == "wh":
        return wh.copy()
    raise ValueError(f"bbox_sizes mode must be 'max', 'diag' or 'wh'; got {mode!r}")


def keypoint_crop_sizes(gt: np.ndarray, factor: float = 1.5) -> np.ndarray:
    """(N,) side of CC-SSL's square crop: ``factor`` x the longer side of the box
    around the labelled keypoints, where x > 0 bounds x and y > 0 bounds y
    (Learning-from-Synthetic-Animals ``pose/datasets/real_animal_sp.py``, the
    ``x_min ... s = max(x_max-x_min, y_max-y_min)/200.0 * 1.5`` lines: the
    crop is s x 200 pixels). An instance without labelled joints gets 0."""
    gt = np.asarray(gt, dtype=np.float64)
    x, y = gt[..., 0], gt[..., 1]
    with np.errstate(invalid="ignore"):
        xs = np.where(x > 0, x, np.nan)
        ys = np.where(y > 0, y, np.nan)
        w = np.nanmax(xs, axis=1) - np.nanmin(xs, axis=1) if xs.size else np.zeros(len(gt))
        h = np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1) if ys.size else np.zeros(len(gt))
    return np.nan_to_num(np.maximum(w, h) * factor)


def _check_shapes(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> None:
    if pred.ndim != 3 or pred.shape[2] != 2 or pred.shape != gt.shape:
        raise ValueError(f"pred and gt must both be (N, K, 2); got {pred.shape} and {gt.shape}")
    if visible.shape != pred.shape[:2]:
        raise ValueError(f"visible must be (N, K) = {pred.shape[:2]}; got {visible.shape}")


def normalized_distances(pred: np.ndarray, gt: np.ndarray, normalizer: np.ndarray) -> np.ndarray:
    """(N, K) distance between prediction and GT divided by the instance's
    normaliser: (N,) scales the Euclidean distance; (N, 2) divides x and y
    separately before taking the norm (mmpose's per-axis box normalisation).
    A zero normaliser gives inf (or NaN for a zero distance): never correct."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    normalizer = np.asarray(normalizer, dtype=np.float64)
    n = pred.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalizer.shape == (n,):
            return np.linalg.norm(pred - gt, axis=2) / normalizer[:, None]
        if normalizer.shape == (n, 2):
            return np.linalg.norm((pred - gt) / normalizer[:, None, :], axis=2)
    raise ValueError(f"normalizer must be ({n},) or ({n}, 2); got {normalizer.shape}")


def pck_curve(distances: np.ndarray, visible: np.ndarray, thresholds: Union[float, Sequence[float], np.ndarray],
              strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCK of normalised ``distances`` (N, K) at each threshold.

    Returns ``(per_joint, counts)``: per_joint (T, K) percentages for T
    thresholds ((K,) for a scalar threshold), counts (K,) visible instances."""
    visible = np.asarray(visible).astype(bool)
    thr = np.asarray(thresholds, dtype=np.float64)
    scalar = thr.ndim == 0
    thr = thr.reshape(-1)
    with np.errstate(invalid="ignore"):
        d = distances[None, :, :]
        t = thr[:, None, None]
        correct = (d < t) if strict else (d <= t)
    hits = (correct & visible[None]).sum(axis=1).astype(np.float64)  # (T, K)
    counts = visible.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = np.where(counts > 0, 100.0 * hits / counts, np.nan)
    return (per_joint[0] if scalar else per_joint), counts


def pooled_mean(per_joint: np.ndarray, counts: np.ndarray, include: Union[np.ndarray, Sequence[int], None] = None
                ) -> Union[float, np.ndarray]:
    """Mean of per-joint PCK weighted by the visible counts, over the joints in
    ``include`` (indices or a boolean mask; all by default): the percentage of
    all those visible joints that are correct. This is HRNet's ``Mean``
    (``sum(PCKh * jnt_count / sum(jnt_count))``, evaluated in that order so the
    figure matches it to the last bit). ``per_joint`` may be (K,) or (T, K)."""
    counts = np.asarray(counts, dtype=np.float64)
    mask = np.ones(counts.shape, bool)
    if include is not None:
        include = np.asarray(include)
        mask = include.astype(bool) if include.dtype == bool else np.isin(np.arange(len(counts)), include)
    total = counts[mask].sum()
    if total == 0:
        return np.nan if np.ndim(per_joint) == 1 else np.full(np.shape(per_joint)[0], np.nan)
    ratio = np.where(mask, counts, 0.0) / total
    values = np.where(mask & (counts > 0), per_joint, 0.0)
    return (values * ratio).sum(axis=-1)


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normalizer: np.ndarray,
        alpha: Union[float, Sequence[float]] = 0.05, strict: bool = False) -> PCKResult:
    """PCK@alpha: a visible joint is correct when its distance to the GT is at
    most ``alpha`` x the instance's ``normalizer`` ((N,) or per-axis (N, 2); see
    the module doc for ``head_sizes``, ``torso_sizes`` and ``bbox_sizes``).
    ``alpha`` may be a list, giving (T, K) per-joint values and (T,) means."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible).astype(bool)
    _check_shapes(pred, gt, visible)
    per_joint, counts = pck_curve(normalized_distances(pred, gt, normalizer), visible, alpha, strict)
    return PCKResult(per_joint, counts, pooled_mean(per_joint, counts))


def pckh(pred: np.ndarray, gt: np.ndarray, head_size: np.ndarray, visible: np.ndarray,
         thresholds: Union[float, Sequence[float], np.ndarray] = 0.5, strict: bool = False
         ) -> tuple[np.ndarray, np.ndarray]:
    """PCKh as MPII's evaluation computes it: the distance divided by
    ``head_size`` (N,), already including the 0.6 factor (``head_sizes``), is
    compared with each threshold (0.5 = PCKh@0.5).

    pred, gt: (N, K, 2) in the same frame (0-based, or both 1-based as the
    official code compares them); visible: (N, K) = 1 - ``jnt_missing``.
    Returns ``(per_joint, counts)`` as ``pck_curve`` does; the MPII part table
    averages left/right joints and pools the rest with ``pooled_mean``."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible).astype(bool)
    _check_shapes(pred, gt, visible)
    head_size = np.asarray(head_size, dtype=np.float64)
    if head_size.shape != (pred.shape[0],):
        raise ValueError(f"head_size must be ({pred.shape[0]},); got {head_size.shape}")
    return pck_curve(normalized_distances(pred, gt, head_size), visible, thresholds, strict)


def ccssl_pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, crop_size: np.ndarray,
              alpha: float = 0.05, batch_size: int = 6) -> PCKResult:
    """PCK@alpha as CC-SSL reports it on TigDog (Mu et al. 2020).

    Normaliser: the side of the square test crop (``keypoint_crop_sizes``). The
    official ``accuracy`` compares heatmap argmaxes on the 64x64 grid with a
    normaliser of 64 / 10 and a threshold of 0.5, i.e. ``distance < 0.05 x
    64`` = ``distance / crop side < 0.05`` (``pose/utils/evaluation.py:111-132``,
    ``calc_dists`` 76-86, ``dist_acc`` 88-94, strict ``<``).
    Averaging: per batch of ``batch_size`` crops (``--test-batch`` 6), each
    joint's accuracy over its labelled instances, the batch mean over joints
    labelled in it; the reported mean is the batch means weighted by batch size
    (``AverageMeter.update(acc[0], n)``) and the per-joint figure the plain mean
    of that joint's batch accuracies (``evaluation/test.py:193-199, 228-229``).
    ``batch_size=len(pred)`` gives the dataset-level (pooled per joint) figures.

    Deliberate difference: coordinates are compared as given (posezoo's
    sub-pixel image-space predictions), not as integer heatmap argmaxes."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible).astype(bool)
    _check_shapes(pred, gt, visible)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    n, k = visible.shape
    with np.errstate(invalid="ignore"):
        correct = (normalized_distances(pred, gt, crop_size) < alpha) & visible
    pad = (-n) % batch_size
    shape = (-1, batch_size, k)
    hits = np.pad(correct, ((0, pad), (0, 0))).reshape(shape).sum(axis=1).astype(np.float64)
    labelled = np.pad(visible, ((0, pad), (0, 0))).reshape(shape).sum(axis=1)
    sizes = np.minimum(batch_size, n - batch_size * np.arange(len(hits)))
    present = labelled > 0
    acc = np.where(present, hits / np.maximum(labelled, 1), 0.0)  # (B, K)
    batch_mean = np.where(present.any(axis=1), acc.sum(axis=1) / np.maximum(present.sum(axis=1), 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(present.any(axis=0), acc.sum(axis=0) / present.sum(axis=0), np.nan)
    mean = float((batch_mean * sizes).sum() / max(sizes.sum(), 1))
    return PCKResult(100.0 * per_joint, visible.sum(axis=0), 100.0 * mean)
