"""3D metrics on hand-built cases whose answers are known exactly."""
import numpy as np
import pytest

from posezoo.core.evaluate import format_table
from posezoo.core.metrics3d import (H36M_ACTIONS, ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN,
                                    action_table, mpjpe, ordinal_accuracy, ordinal_from_depth, p_mpjpe,
                                    procrustes_align)


def _poses(n=5, k=17, seed=0):
    return np.random.default_rng(seed).normal(0, 300, (n, k, 3)) + [0, 0, 4000]


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_mpjpe_one_joint_shifted_10mm_is_10_over_17():
    gt = _poses()
    pred = gt.copy()
    pred[:, 5, 1] += 10.0
    assert np.allclose(mpjpe(pred, gt), 10.0 / 17.0, atol=1e-12)


def test_mpjpe_is_root_aligned_and_shift_of_root_moves_every_joint():
    gt = _poses()
    assert np.allclose(mpjpe(gt + [50.0, -20.0, 300.0], gt), 0.0, atol=1e-9)
    pred = gt.copy()
    pred[:, 0, 0] += 10.0  # the root moves: after alignment every other joint is 10 mm off
    assert np.allclose(mpjpe(pred, gt), 16 * 10.0 / 17.0)


def test_mpjpe_visible_mask_averages_only_flagged_joints():
    gt = _poses(n=1)
    pred = gt.copy()
    pred[0, 3] += [3.0, 4.0, 0.0]
    visible = np.zeros((1, 17), bool)
    visible[0, [0, 3]] = True
    assert mpjpe(pred, gt, visible=visible)[0] == pytest.approx(2.5)


def test_p_mpjpe_of_rotated_scaled_shifted_copy_is_zero():
    gt = _poses()
    pred = np.stack([1.7 * gt[i] @ _rotation(i).T + [100.0 * i, -40.0, 7.0] for i in range(len(gt))])
    assert np.all(mpjpe(pred, gt) > 50)
    assert np.allclose(p_mpjpe(pred, gt), 0.0, atol=1e-8)
    assert np.allclose(procrustes_align(pred, gt), gt, atol=1e-8)


def test_p_mpjpe_does_not_undo_a_reflection():
    gt = _poses(n=1, seed=2)
    mirrored = gt * [-1.0, 1.0, 1.0]
    assert p_mpjpe(mirrored, gt)[0] > 10.0


def _horn(pred, gt):
    """Horn (1987)'s closed form, independent of the SVD: the rotation is the unit
    quaternion of the largest eigenvalue of the 4x4 matrix built from the
    cross-covariance; the scale is sum(g . R p) / sum(|p|^2)."""
    p, g = pred - pred.mean(0), gt - gt.mean(0)
    m = p.T @ g
    sxx, sxy, sxz, syx, syy, syz, szx, szy, szz = m.ravel()
    n = np.array([[sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
                  [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
                  [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
                  [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]])
    w, x, y, z = np.linalg.eigh(n)[1][:, -1]
    r = np.array([[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]])
    rp = p @ r.T
    return (g * rp).sum() / (p * p).sum() * rp + gt.mean(0)


def test_procrustes_equals_horns_quaternion_solution():
    rng = np.random.default_rng(4)
    gt = _poses(n=3, seed=5)
    pred = np.stack([gt[i] @ _rotation(9 + i).T * 0.8 + rng.normal(0, 20, gt[i].shape) for i in range(3)])
    reference = np.stack([_horn(pred[i], gt[i]) for i in range(3)])
    assert np.allclose(procrustes_align(pred, gt), reference, atol=1e-6)
    assert np.allclose(p_mpjpe(pred, gt), np.linalg.norm(reference - gt, axis=-1).mean(axis=1), atol=1e-8)
    assert np.all(p_mpjpe(pred, gt) < mpjpe(pred, gt))


def test_action_table_means_per_action_and_over_frames():
    errors = np.array([10.0, 20.0, 30.0, 60.0])
    actions = np.array([0, 0, 5, 12])
    table = action_table(errors, actions)
    assert table == {"Directions": 15.0, "Photo": 30.0, "WalkDog": 60.0, "Average": 30.0}
    assert list(table)[:3] == [H36M_ACTIONS[0], H36M_ACTIONS[5], H36M_ACTIONS[12]]
    assert "| Directions | Photo | WalkDog | Average |" in format_table(table, "m")


def test_ordinal_from_depth_and_accuracy():
    depth = np.array([[1000.0, 1200.0, 1205.0]])
    r = ordinal_from_depth(depth, same_depth=10.0)
    assert r.dtype == np.int8
    assert r[0, 0, 1] == ORDINAL_CLOSER and r[0, 1, 0] == ORDINAL_FARTHER and r[0, 1, 2] == ORDINAL_SAME
    assert ordinal_accuracy(depth, r) == 1.0
    wrong = depth[:, [1, 0, 2]]  # joints 0 and 1 swapped: pair (0,1) wrong, (0,2) right
    assert ordinal_accuracy(wrong, r) == pytest.approx(1 / 2)
    assert ordinal_accuracy(wrong, r, same_depth=10.0) == pytest.approx(1 / 3)  # (1,2) now 1200 vs 1205: same
    unknown = r.copy()
    unknown[0, 0, 1] = unknown[0, 1, 0] = ORDINAL_UNKNOWN
    assert ordinal_accuracy(wrong, unknown) == 1.0
    assert np.isnan(ordinal_accuracy(depth, np.full_like(r, ORDINAL_UNKNOWN)))


def test_shape_errors_are_one_line():
    with pytest.raises(ValueError, match="differ in shape"):
        mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))
    with pytest.raises(ValueError, match=r"expected \(N, K, 3\)"):
        p_mpjpe(np.zeros((2, 17, 2)), np.zeros((2, 17, 2)))
