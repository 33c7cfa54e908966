"""3D body-pose metrics: MPJPE, P-MPJPE, Human3.6M per-action tables and the
ordinal accuracy of predicted depth orders.

Definitions follow the evaluation code of the papers this toolkit reproduces:

- MPJPE (protocol 1): both skeletons translated so that their root joint (the
  pelvis, joint 0) is at the origin, then the mean Euclidean joint distance in
  mm (ordinal-pose3d ``full-eval/matlab/utils/errorH36M.m:10-23``).
- P-MPJPE (protocol 2): the prediction first aligned to the ground truth by the
  similarity transform (rotation, isotropic scale, translation) minimising the
  squared joint distances (Umeyama 1991 / orthogonal Procrustes), then the mean
  distance. Batched SVD over all frames at once.
- Per action: the mean per-frame error of each of the 15 Human3.6M actions, the
  average over all frames (``errorH36M.m:26-63``); ``core.evaluate.format_table``
  prints it.
- Ordinal accuracy (Pavlakos et al. CVPR 2018, Sec. 3.1): the fraction of
  labelled joint pairs whose predicted depth order agrees with the label.

Every function takes numpy arrays or anything ``np.asarray`` accepts, batched
over frames (N, K, 3), and returns numpy.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["ORDINAL_CLOSER", "ORDINAL_FARTHER", "ORDINAL_SAME", "ORDINAL_UNKNOWN", "H36M_ACTIONS",
           "action_table", "joint_errors_3d", "mpjpe", "ordinal_accuracy", "ordinal_from_depth", "p_mpjpe",
           "procrustes_align", "root_align"]

#: Pair codes of an ordinal matrix ``r[i, j]`` (int8): joint i is closer to the
#: camera than joint j (+1), farther (-1), at about the same depth (0), or the
#: pair is not labelled (ORDINAL_UNKNOWN; annotations leave most pairs of 2D
#: sets unlabelled). Pavlakos et al. CVPR 2018, eq. (2) uses the same signs.
ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN = 1, -1, 0, -128

#: The 15 Human3.6M actions in the order the official tables print them
#: (errorH36M.m:28-30); an action id is an index into this tuple.
H36M_ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
                "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")


def _poses(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} has shape {x.shape}; expected (N, K, 3) joints in mm")
    return x


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _poses(pred, "pred"), _poses(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def root_align(joints, root: int = 0) -> np.ndarray:
    """Joints (N, K, 3) translated so that joint ``root`` is at the origin."""
    joints = _poses(joints, "joints")
    return joints - joints[:, root:root + 1]


def joint_errors_3d(pred, gt, root: Optional[int] = 0) -> np.ndarray:
    """Per-joint Euclidean errors (N, K) after root alignment (none when ``root`` is None)."""
    pred, gt = _pair(pred, gt)
    if root is not None:
        pred, gt = root_align(pred, root), root_align(gt, root)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt, root: int = 0, visible=None) -> np.ndarray:
    """Per-frame MPJPE (N,) in the unit of the inputs (mm): root-aligned mean
    joint distance, over the joints flagged in ``visible`` (N, K) when given."""
    errors = joint_errors_3d(pred, gt, root)
    if visible is None:
        return errors.mean(axis=1)
    visible = np.asarray(visible, dtype=bool).reshape(errors.shape)
    return (errors * visible).sum(axis=1) / np.maximum(visible.sum(axis=1), 1)


def procrustes_align(pred, gt) -> np.ndarray:
    """``pred`` (N, K, 3) mapped by the similarity transform s R p + t that best
    fits ``gt`` in least squares, per frame (Umeyama 1991, eqs. 38-42): R from the
    SVD of the centred cross-covariance with the reflection fixed by
    sign(det), s = trace(D S) / var(pred), t from the centroids."""
    pred, gt = _pair(pred, gt)
    mu_p, mu_g = pred.mean(axis=1, keepdims=True), gt.mean(axis=1, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.einsum("nki,nkj->nij", g, p)  # sum_k g_k p_k^T
    u, sing, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    d = np.ones_like(sing)
    d[:, -1] = sign
    rotation = u @ (d[:, :, None] * vt)
    var_p = (p ** 2).sum(axis=(1, 2))
    scale = (sing * d).sum(axis=1) / np.maximum(var_p, np.finfo(np.float64).tiny)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, p) + mu_g


def p_mpjpe(pred, gt, visible=None) -> np.ndarray:
    """Per-frame P-MPJPE (N,): the MPJPE after :func:`procrustes_align` (no root
    alignment needed: the translation is fitted)."""
    aligned = procrustes_align(pred, gt)
    errors = np.linalg.norm(aligned - _poses(gt, "gt"), axis=-1)
    if visible is None:
        return errors.mean(axis=1)
    visible = np.asarray(visible, dtype=bool).reshape(errors.shape)
    return (errors * visible).sum(axis=1) / np.maximum(visible.sum(axis=1), 1)


def action_table(errors, actions, names: Sequence[str] = H36M_ACTIONS) -> dict[str, float]:
    """Mean per-frame error of each action present (``actions`` (N,) are
    indices into ``names``) and ``Average`` over all frames, in ``names`` order
    (errorH36M.m prints NaN for an absent action; it is left out here)."""
    errors, actions = np.asarray(errors, dtype=np.float64).reshape(-1), np.asarray(actions).reshape(-1)
    if errors.shape != actions.shape:
        raise ValueError(f"{errors.shape[0]} errors for {actions.shape[0]} action ids")
    table = {name: float(errors[actions == a].mean()) for a, name in enumerate(names) if (actions == a).any()}
    table["Average"] = float(errors.mean()) if errors.size else float("nan")
    return table


def ordinal_from_depth(depth, same_depth: float = 0.0) -> np.ndarray:
    """Ordinal matrices (N, K, K) int8 from depths (N, K): ORDINAL_CLOSER where
    depth_i < depth_j - same_depth, ORDINAL_FARTHER where depth_i > depth_j +
    same_depth, ORDINAL_SAME otherwise (the diagonal included)."""
    z = np.asarray(depth, dtype=np.float64)
    if z.ndim == 1:
        z = z[None]
    diff = z[:, :, None] - z[:, None, :]
    out = np.full(diff.shape, ORDINAL_SAME, dtype=np.int8)
    out[diff < -same_depth] = ORDINAL_CLOSER
    out[diff > same_depth] = ORDINAL_FARTHER
    return out


def ordinal_accuracy(pred_depth, ordinal, same_depth: Optional[float] = None) -> float:
    """Fraction of labelled pairs i < j whose predicted depths (N, K) agree with
    ``ordinal`` (N, K, K): a CLOSER/FARTHER pair is right when the predicted
    difference has that sign; a SAME pair counts only with ``same_depth`` and is
    right when |z_i - z_j| <= same_depth. UNKNOWN pairs never count. NaN when no
    pair counts."""
    z = np.asarray(pred_depth, dtype=np.float64)
    r = np.asarray(ordinal)
    if z.ndim == 1:
        z, r = z[None], r[None]
    if r.shape != z.shape + (z.shape[-1],):
        raise ValueError(f"ordinal labels {r.shape} do not match depths {z.shape}: expected (N, K, K)")
    k = z.shape[1]
    upper = np.triu(np.ones((k, k), dtype=bool), 1)[None]
    diff = z[:, :, None] - z[:, None, :]
    right = ((r == ORDINAL_CLOSER) & (diff < 0)) | ((r == ORDINAL_FARTHER) & (diff > 0))
    counted = upper & ((r == ORDINAL_CLOSER) | (r == ORDINAL_FARTHER))
    if same_depth is not None:
        same = upper & (r == ORDINAL_SAME)
        right |= same & (np.abs(diff) <= same_depth)
        counted |= same
    total = int(counted.sum())
    return float((right & counted).sum() / total) if total else float("nan")
