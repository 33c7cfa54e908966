"""OKS-based non-maximum suppression for top-down pose estimation.

Vectorised numpy versions of the OKS NMS used by SimpleBaseline / HRNet when
post-processing per-image person predictions before COCO evaluation.  The
results (kept indices and their order) are the same as the reference
loop implementation, including these details of it:

* ``oks_iou``: ``vars = (2 * sigmas) ** 2`` and
  ``e = d^2 / vars / ((area_g + area_d) / 2 + eps) / 2`` with
  ``eps = np.spacing(1)``; the OKS is the mean of ``exp(-e)`` over the joints
  that count, and ``0.0`` when no joint counts.
* Visibility filtering (``in_vis_thre``): the reference writes
  ``list(vg > t) and list(vd > t)``, which in Python evaluates to the second
  list only, so a joint counts when the score of the *compared* detection
  ``d`` is above the threshold; the score of ``g`` is ignored.  That is the
  default here.  Pass ``both_visible=True`` to require both scores to be above
  the threshold instead (this is not the reference behaviour).
* ``oks_nms``: detections are visited in ``np.argsort(scores)[::-1]`` order (so
  ties are broken exactly as in the reference) and a candidate survives a kept
  detection when ``oks <= thresh``; anything else (``oks > thresh`` or NaN) is
  suppressed.
* ``soft_oks_nms``: keeps at most ``max_dets`` (20 in the reference)
  detections; every step keeps the current best, rescales the remaining scores
  with ``rescore`` (gaussian ``s * exp(-oks^2 / thresh)`` by default) and
  re-sorts them.  No score threshold is applied; the returned indices are in
  selection order.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

__all__ = [
    "COCO_PERSON_SIGMAS",
    "oks_iou",
    "oks_nms",
    "rescore",
    "soft_oks_nms",
]

#: Per-keypoint OKS sigmas of the 17 COCO person keypoints.
COCO_PERSON_SIGMAS: np.ndarray = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
         0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)
COCO_PERSON_SIGMAS.setflags(write=False)

# Upper bound on the number of (row, col, joint) elements computed at once.
_MAX_BLOCK_ELEMS = 1 << 22


def _as_keypoints(x: np.ndarray, name: str) -> np.ndarray:
    """Return ``x`` as an (M, K, 3) array, accepting (M, K, 3) or (M, K*3)."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] % 3 == 0:
        x = x.reshape(x.shape[0], -1, 3)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"{name} must have shape (M, K, 3) or (M, K*3), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _as_sigmas(sigmas: np.ndarray, num_joints: int) -> np.ndarray:
    sigmas = np.asarray(sigmas)
    if not np.issubdtype(sigmas.dtype, np.floating):
        sigmas = sigmas.astype(np.float64)
    if sigmas.ndim != 1 or sigmas.shape[0] != num_joints:
        raise ValueError(
            f"sigmas must have shape ({num_joints},), got {sigmas.shape}")
    return sigmas


def _oks_block(
    g: np.ndarray,
    d: np.ndarray,
    area_g,
    area_d: np.ndarray,
    variances: np.ndarray,
    in_vis_thre: Optional[float],
    both_visible: bool,
) -> np.ndarray:
    """OKS of every ``g[a]`` (A, K, 3) against every ``d[b]`` (B, K, 3) -> (A, B).

    The element-wise operations are performed in the same order and dtypes as
    the reference loop so the values are bit-identical to it.  ``area_g`` is a
    scalar or an (A, 1) array, ``area_d`` a (B,) array.
    """
    num_g, num_d, num_joints = g.shape[0], d.shape[0], g.shape[1]
    if num_g == 0 or num_d == 0:
        return np.zeros((num_g, num_d))
    dx = d[None, :, :, 0] - g[:, None, :, 0]
    dy = d[None, :, :, 1] - g[:, None, :, 1]
    half_area = (area_g + area_d) / 2 + np.spacing(1)  # (A, B) or (B,)
    half_area = np.broadcast_to(half_area, (num_g, num_d))
    e = (dx ** 2 + dy ** 2) / variances / half_area[..., None] / 2  # (A, B, K)
    # C order so that exp runs on a contiguous buffer and the sum reduces each
    # contiguous K-vector, like the reference's 1-D ``np.sum``.
    e = np.ascontiguousarray(e)

    if in_vis_thre is None:
        return np.ascontiguousarray(np.exp(-e)).sum(axis=-1) / num_joints

    vis_d = d[:, :, 2] > in_vis_thre  # (B, K)
    if both_visible:
        mask = (g[:, None, :, 2] > in_vis_thre) & vis_d[None]  # (A, B, K)
        count = mask.sum(axis=-1)
        total = np.where(mask, np.exp(-e), 0.0).sum(axis=-1)
        out = np.zeros((num_g, num_d))
        np.divide(total, count, out=out, where=count > 0)
        return out

    # Reference semantics: the joint subset depends on ``d`` only.  Move each
    # column's counted joints to the front (keeping their order) and reduce
    # columns with the same count together, so every sum runs over the same
    # compacted 1-D sequence as in the reference (hence identical values).
    out = np.zeros((num_g, num_d))
    counts = vis_d.sum(axis=1)
    front = np.argsort(~vis_d, axis=1, kind="stable")  # counted joints first
    for n in np.unique(counts):
        if n == 0:
            continue  # no joint counts -> OKS 0.0, as in the reference
        cols = np.flatnonzero(counts == n)
        e_sub = np.ascontiguousarray(e[:, cols[:, None], front[cols, :n]])  # (A, Bn, n)
        out[:, cols] = np.ascontiguousarray(np.exp(-e_sub)).sum(axis=-1) / n
    return out


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    area_d: np.ndarray,
    sigmas: np.ndarray,
    in_vis_thre: Optional[float] = None,
    *,
    both_visible: bool = False,
) -> np.ndarray:
    """Object keypoint similarity of one pose ``g`` against each pose in ``d``.

    Args:
        g: (K, 3) or (K*3,) keypoints ``[x, y, score]`` of the reference pose.
        d: (M, K, 3) or (M, K*3) keypoints of the poses to compare.
        area_g: area of ``g`` (the reference uses the box area).
        area_d: (M,) areas of ``d``.
        sigmas: (K,) per-keypoint OKS sigmas (e.g. ``COCO_PERSON_SIGMAS``).
        in_vis_thre: if given, only joints whose score in ``d`` is
            ``> in_vis_thre`` count (reference behaviour, see module doc).
        both_visible: with ``in_vis_thre``, require the score in ``g`` to be
            above the threshold as well (not the reference behaviour).

    Returns:
        (M,) float64 OKS values; 0.0 where no joint counts.
    """
    g = np.asarray(g)
    d = _as_keypoints(d, "d")
    g = _as_keypoints(g.reshape(1, -1), "g")
    if g.shape[1] != d.shape[1]:
        raise ValueError(f"g has {g.shape[1]} joints but d has {d.shape[1]}")
    area_d = np.asarray(area_d).reshape(-1)
    if area_d.shape[0] != d.shape[0]:
        raise ValueError(f"area_d has {area_d.shape[0]} entries for {d.shape[0]} poses")
    variances = (_as_sigmas(sigmas, g.shape[1]) * 2) ** 2
    return _oks_block(g, d, area_g, area_d, variances, in_vis_thre, both_visible)[0]


def _prepare(keypoints, scores, areas, sigmas):
    kpts = _as_keypoints(keypoints, "keypoints")
    scores = np.asarray(scores).reshape(-1)
    areas = np.asarray(areas).reshape(-1)
    if not (kpts.shape[0] == scores.shape[0] == areas.shape[0]):
        raise ValueError(
            f"got {kpts.shape[0]} poses, {scores.shape[0]} scores and {areas.shape[0]} areas")
    variances = (_as_sigmas(sigmas, kpts.shape[1]) * 2) ** 2
    return kpts, scores, areas, variances


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thresh: float,
    sigmas: np.ndarray,
    in_vis_thre: Optional[float] = None,
    *,
    both_visible: bool = False,
) -> List[int]:
    """Greedy OKS NMS; returns the kept indices in descending-score order.

    Args:
        keypoints: (N, K, 3) or (N, K*3) poses ``[x, y, score]``.
        scores: (N,) detection scores.
        areas: (N,) areas used for the OKS scale.
        thresh: a candidate is suppressed by a kept pose when ``oks > thresh``
            (``oks <= thresh`` survives).
        sigmas: (K,) per-keypoint OKS sigmas.
        in_vis_thre: optional joint score threshold, see :func:`oks_iou`.
        both_visible: see :func:`oks_iou`.

    Returns:
        Kept indices into the inputs, in the order they were selected.
    """
    kpts, scores, areas, variances = _prepare(keypoints, scores, areas, sigmas)
    num = kpts.shape[0]
    if num == 0:
        return []
    order = np.argsort(scores)[::-1]
    kpts = kpts[order]
    areas = areas[order]

    suppressed = np.zeros(num, dtype=bool)
    keep: List[int] = []
    rows_per_block = max(1, _MAX_BLOCK_ELEMS // max(1, num * kpts.shape[1]))
    start = 0
    while start < num:
        # first still-alive row
        alive = np.flatnonzero(~suppressed[start:])
        if alive.size == 0:
            break
        start += int(alive[0])
        stop = min(num, start + rows_per_block)
        # OKS of rows [start, stop) against columns [start, num)
        block = _oks_block(kpts[start:stop], kpts[start:], areas[start:stop, None],
                           areas[start:], variances, in_vis_thre, both_visible)
        for p in range(start, stop):
            if suppressed[p]:
                continue
            keep.append(int(order[p]))
            row = block[p - start, p + 1 - start:]
            suppressed[p + 1:] |= ~(row <= thresh)
        start = stop
    return keep


def rescore(
    overlap: np.ndarray,
    scores: np.ndarray,
    thresh: float,
    method: str = "gaussian",
) -> np.ndarray:
    """Soft-NMS score decay; returns new scores (the inputs are not modified).

    ``'gaussian'``: ``scores * exp(-overlap**2 / thresh)``;
    ``'linear'``: ``scores * (1 - overlap)`` where ``overlap >= thresh``.
    """
    overlap = np.asarray(overlap)
    scores = np.asarray(scores)
    if overlap.shape[0] != scores.shape[0]:
        raise ValueError("overlap and scores must have the same length")
    if method == "linear":
        out = scores.copy()
        inds = np.where(overlap >= thresh)[0]
        out[inds] = out[inds] * (1 - overlap[inds])
        return out
    if method == "gaussian":
        return scores * np.exp(-overlap ** 2 / thresh)
    raise ValueError(f"unknown rescore method {method!r} (use 'gaussian' or 'linear')")


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thresh: float,
    sigmas: np.ndarray,
    in_vis_thre: Optional[float] = None,
    *,
    max_dets: int = 20,
    method: str = "gaussian",
    both_visible: bool = False,
) -> List[int]:
    """Soft OKS NMS (score decay instead of removal), as in HRNet.

    Repeatedly selects the highest-scoring remaining pose, decays the scores of
    the others with :func:`rescore` (``thresh`` is the gaussian parameter /
    linear threshold) and re-sorts them, until ``max_dets`` poses are selected
    or none remain.  No final score threshold is applied.

    Returns:
        At most ``max_dets`` indices into the inputs, in selection order.
    """
    kpts, scores, areas, variances = _prepare(keypoints, scores, areas, sigmas)
    if kpts.shape[0] == 0:
        return []
    order = np.argsort(scores)[::-1]
    scores = scores[order]
    keep: List[int] = []
    while order.size > 0 and len(keep) < max_dets:
        i = order[0]
        rest = order[1:]
        ovr = _oks_block(kpts[i][None], kpts[rest], areas[i], areas[rest],
                         variances, in_vis_thre, both_visible)[0]
        scores = rescore(ovr, scores[1:], thresh, method)
        resort = np.argsort(scores)[::-1]
        order = rest[resort]
        scores = scores[resort]
        keep.append(int(i))
    return keep

