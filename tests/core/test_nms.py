"""Tests for posezoo.nms: vectorised OKS / OKS-NMS against plain loop code."""

import numpy as np
import pytest

from posezoo.nms import COCO_PERSON_SIGMAS, oks_iou, oks_nms, rescore, soft_oks_nms

EPS = np.spacing(1)


# ----------------------------------------------------------------------------
# Straightforward loop implementations (independent of the library code).
# ----------------------------------------------------------------------------
def loop_oks(g, ds, ag, ads, sigmas, vis_thr=None, both=False):
    """OKS of g (K,3) against each d in ds (M,K,3), one pair and joint at a time."""
    g = np.asarray(g).reshape(-1, 3)
    variances = (np.asarray(sigmas) * 2) ** 2
    out = np.zeros(len(ds))
    for m in range(len(ds)):
        d = np.asarray(ds[m]).reshape(-1, 3)
        dist2 = (d[:, 0] - g[:, 0]) ** 2 + (d[:, 1] - g[:, 1]) ** 2
        e = dist2 / variances / ((ag + ads[m]) / 2 + EPS) / 2
        if vis_thr is not None:
            # The reference expression ``list(vg > t) and list(vd > t)``
            # evaluates to its second operand: only d's scores matter.
            keep = d[:, 2] > vis_thr
            if both:
                keep = keep & (g[:, 2] > vis_thr)
            e = e[keep]
        out[m] = np.sum(np.exp(-e)) / len(e) if len(e) > 0 else 0.0
    return out


def loop_oks_nms(kpts, scores, areas, thr, sigmas, vis_thr=None):
    order = list(np.argsort(scores)[::-1])
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        survivors = []
        for j in order:
            o = loop_oks(kpts[i], [kpts[j]], areas[i], [areas[j]], sigmas, vis_thr)[0]
            if o <= thr:
                survivors.append(j)
        order = survivors
    return keep


def loop_soft_oks_nms(kpts, scores, areas, thr, sigmas, vis_thr=None,
                      max_dets=20, method="gaussian"):
    order = np.argsort(scores)[::-1]
    cur = np.asarray(scores)[order]
    keep = []
    while len(order) > 0 and len(keep) < max_dets:
        best = order[0]
        keep.append(int(best))
        order, cur = order[1:], cur[1:].copy()
        for n, j in enumerate(order):
            o = loop_oks(kpts[best], [kpts[j]], areas[best], [areas[j]], sigmas, vis_thr)[0]
            if method == "gaussian":
                cur[n] = cur[n] * np.exp(-o ** 2 / thr)
            elif o >= thr:
                cur[n] = cur[n] * (1 - o)
        resort = np.argsort(cur)[::-1]
        order, cur = order[resort], cur[resort]
    return keep


def clustered_dets(seed, num_people=4, per_person=6, k=17, dtype=np.float64,
                   tie_scores=False):
    """Noisy duplicates around a few people, like a detector + pose net output."""
    rng = np.random.default_rng(seed)
    kpts, scores, areas = [], [], []
    for _ in range(num_people):
        center = rng.uniform(50, 600, size=2)
        size = rng.uniform(30, 200)
        base = center + rng.normal(0, size / 4, size=(k, 2))
        for _ in range(rng.integers(1, per_person + 1)):
            noise = rng.normal(0, rng.uniform(0.5, size / 8), size=(k, 2))
            xy = base + noise
            s = rng.uniform(0, 1, size=(k, 1))
            kpts.append(np.concatenate([xy, s], axis=1))
            scores.append(rng.uniform(0.05, 1.0))
            areas.append((size * rng.uniform(0.8, 1.2)) ** 2)
    kpts = np.asarray(kpts, dtype=dtype)
    scores = np.asarray(scores)
    if tie_scores:
        scores = np.round(scores, 1)
    perm = rng.permutation(len(scores))
    return kpts[perm], scores[perm], np.asarray(areas)[perm]


# ----------------------------------------------------------------------------
# oks_iou
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("vis_thr", [None, 0.2, 0.6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_oks_iou_matches_loop(seed, vis_thr, dtype):
    kpts, _, areas = clustered_dets(seed, dtype=dtype)
    for gi in range(0, len(kpts), 3):
        got = oks_iou(kpts[gi], kpts, areas[gi], areas, COCO_PERSON_SIGMAS, vis_thr)
        want = loop_oks(kpts[gi], kpts, areas[gi], areas, COCO_PERSON_SIGMAS, vis_thr)
        assert got.shape == (len(kpts),)
        # identical operations -> identical floating point values
        np.testing.assert_array_equal(got, want)
    # flattened (K*3,) g and (M, K*3) d are accepted as well
    flat = oks_iou(kpts[0].reshape(-1), kpts.reshape(len(kpts), -1), areas[0], areas,
                   COCO_PERSON_SIGMAS, vis_thr)
    np.testing.assert_array_equal(
        flat, oks_iou(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS, vis_thr))


@pytest.mark.parametrize("seed", range(3))
def test_oks_iou_both_visible_option(seed):
    kpts, _, areas = clustered_dets(seed)
    got = oks_iou(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS, 0.3,
                  both_visible=True)
    want = loop_oks(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS, 0.3, both=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_oks_iou_visibility_uses_d_scores_only():
    k = 5
    sigmas = np.full(k, 0.1)
    g = np.zeros((k, 3))
    g[:, 2] = 0.0  # g scores all below the threshold
    d = np.zeros((2, k, 3))
    d[0, :, 0] = 3.0
    d[0, :, 2] = 1.0  # all visible in d -> all joints count
    d[1, :, 2] = 0.0  # nothing visible in d -> OKS 0
    areas = np.array([100.0, 100.0])
    out = oks_iou(g, d, 100.0, areas, sigmas, in_vis_thre=0.5)
    e = 9.0 / (0.2 ** 2) / (100.0 + EPS) / 2
    assert out[0] == pytest.approx(np.exp(-e))
    assert out[1] == 0.0
    # with the stricter option, g's invisible joints leave nothing -> 0
    np.testing.assert_array_equal(
        oks_iou(g, d, 100.0, areas, sigmas, 0.5, both_visible=True), [0.0, 0.0])
    # The reference's filter expression really evaluates to d's mask only.
    vg, vd = g[:, 2] > 0.5, d[0, :, 2] > 0.5
    assert (list(vg) and list(vd)) == list(vd)


def test_oks_iou_identical_pose_is_one_and_shape_checks():
    kpts, _, areas = clustered_dets(0)
    assert oks_iou(kpts[0], kpts[:1], areas[0], areas[:1], COCO_PERSON_SIGMAS)[0] == 1.0
    assert oks_iou(kpts[0], kpts[:0], areas[0], areas[:0], COCO_PERSON_SIGMAS).shape == (0,)
    with pytest.raises(ValueError):
        oks_iou(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS[:5])


# ----------------------------------------------------------------------------
# oks_nms
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("vis_thr", [None, 0.2])
def test_oks_nms_matches_loop(seed, thr, vis_thr):
    kpts, scores, areas = clustered_dets(seed, num_people=5, tie_scores=seed % 2 == 1,
                                         dtype=np.float32 if seed % 3 == 0 else np.float64)
    got = oks_nms(kpts, scores, areas, thr, COCO_PERSON_SIGMAS, vis_thr)
    want = loop_oks_nms(kpts, scores, areas, thr, COCO_PERSON_SIGMAS, vis_thr)
    assert got == want
    assert all(type(i) is int for i in got)
    assert 0 < len(got) <= len(kpts)


def test_oks_nms_small_blocks_same_result(monkeypatch):
    """The blocked computation of the OKS matrix does not change the result."""
    import posezoo.nms.nms as nms_mod

    kpts, scores, areas = clustered_dets(11, num_people=8, per_person=10)
    full = oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS)
    monkeypatch.setattr(nms_mod, "_MAX_BLOCK_ELEMS", 17 * len(kpts) * 3)
    assert oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS) == full
    assert full == loop_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS)


def test_oks_nms_threshold_is_inclusive():
    """A candidate whose OKS equals the threshold exactly is kept (``<=``)."""
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.uniform(0, 80, (17, 2)), np.ones((17, 1))], 1)
    b = a + np.concatenate([rng.normal(0, 3, (17, 2)), np.zeros((17, 1))], 1)
    kpts, areas, scores = np.stack([a, b]), np.array([3000.0, 2800.0]), np.array([0.9, 0.8])
    o = oks_iou(kpts[0], kpts[1:], areas[0], areas[1:], COCO_PERSON_SIGMAS)[0]
    assert oks_nms(kpts, scores, areas, o, COCO_PERSON_SIGMAS) == [0, 1]
    assert oks_nms(kpts, scores, areas, np.nextafter(o, 0), COCO_PERSON_SIGMAS) == [0]


def test_oks_nms_empty_and_single():
    k = 17
    assert oks_nms(np.zeros((0, k, 3)), np.zeros(0), np.zeros(0), 0.9,
                   COCO_PERSON_SIGMAS) == []
    kpts, scores, areas = clustered_dets(0)
    assert oks_nms(kpts[:1], scores[:1], areas[:1], 0.9, COCO_PERSON_SIGMAS) == [0]
    assert soft_oks_nms(np.zeros((0, k, 3)), np.zeros(0), np.zeros(0), 0.9,
                        COCO_PERSON_SIGMAS) == []
    assert soft_oks_nms(kpts[:1], scores[:1], areas[:1], 0.9, COCO_PERSON_SIGMAS) == [0]


def test_oks_nms_custom_sigmas_and_joint_count():
    rng = np.random.default_rng(5)
    k = 21
    sigmas = rng.uniform(0.02, 0.1, size=k)
    base = rng.uniform(0, 100, size=(k, 2))
    kpts = np.stack([np.concatenate([base + rng.normal(0, 1, (k, 2)),
                                     np.ones((k, 1))], 1) for _ in range(6)])
    scores = rng.uniform(size=6)
    areas = np.full(6, 2500.0)
    got = oks_nms(kpts, scores, areas, 0.5, sigmas)
    assert got == loop_oks_nms(kpts, scores, areas, 0.5, sigmas)
    assert got == [int(np.argmax(scores))]
    with pytest.raises(ValueError):
        oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS)


# ----------------------------------------------------------------------------
# soft_oks_nms / rescore
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
@pytest.mark.parametrize("vis_thr", [None, 0.2])
def test_soft_oks_nms_matches_loop(seed, method, vis_thr):
    kpts, scores, areas = clustered_dets(seed + 100, num_people=6, per_person=8,
                                         tie_scores=seed % 2 == 0)
    got = soft_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS, vis_thr, method=method)
    want = loop_soft_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS, vis_thr,
                             method=method)
    assert got == want
    assert len(got) == min(20, len(kpts))  # nothing is dropped before the cap
    assert len(set(got)) == len(got)


def test_soft_oks_nms_max_dets_cap_and_order():
    kpts, scores, areas = clustered_dets(7, num_people=10, per_person=8)
    assert len(kpts) > 20
    keep = soft_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS)
    assert len(keep) == 20  # the reference's max_dets
    assert keep[0] == int(np.argmax(scores))
    assert len(soft_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS, max_dets=5)) == 5
    everything = soft_oks_nms(kpts, scores, areas, 0.5, COCO_PERSON_SIGMAS,
                              max_dets=len(kpts))
    assert sorted(everything) == list(range(len(kpts)))
    assert everything[:20] == keep


def test_soft_oks_nms_decays_overlapping_scores():
    k = 17
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 50, (k, 2)), np.ones((k, 1))], 1)
    dup = a.copy()
    dup[:, :2] += 0.5  # nearly identical to a
    far = a.copy()
    far[:, :2] += 1000.0  # no overlap with a
    kpts = np.stack([a, dup, far])
    scores = np.array([0.9, 0.85, 0.5])
    areas = np.full(3, 2500.0)
    # the duplicate falls below the far pose after decay
    assert soft_oks_nms(kpts, scores, areas, 0.3, COCO_PERSON_SIGMAS) == [0, 2, 1]
    # hard NMS removes the duplicate, keeps the non-overlapping pose
    assert oks_nms(kpts, scores, areas, 0.9, COCO_PERSON_SIGMAS) == [0, 2]
    ovr = oks_iou(a, kpts[1:], 2500.0, areas[1:], COCO_PERSON_SIGMAS)
    decayed = rescore(ovr, scores[1:], 0.3)
    assert decayed[0] < 0.1 * scores[1]  # overlapping: strongly decayed
    assert decayed[1] == pytest.approx(scores[2])  # non-overlapping: untouched


def test_rescore_semantics():
    ovr = np.array([0.0, 0.3, 0.5, 0.9])
    s = np.array([1.0, 0.8, 0.6, 0.4])
    s_in = s.copy()
    np.testing.assert_allclose(rescore(ovr, s, 0.5), s * np.exp(-ovr ** 2 / 0.5))
    np.testing.assert_allclose(rescore(ovr, s, 0.5, "linear"), [1.0, 0.8, 0.3, 0.04])
    np.testing.assert_array_equal(s, s_in)  # inputs untouched
    with pytest.raises(ValueError):
        rescore(ovr, s, 0.5, "bogus")
