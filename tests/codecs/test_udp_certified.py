"""The UDP offset decode's certified windowed argmax (codecs/udp.py ``certified_blurred_argmax``,
``certified_argmax``) against OpenCV blurring each whole map: the certified maps give OpenCV's argmax and
maximum, the others are sent to the whole-map path, and the fast path is taken on Gaussian-like maps."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from posezoo.codecs.udp import certified_argmax, certified_blurred_argmax

KSIZE = 15  # UDP-Pose master's classification blur


def _opencv(cls: np.ndarray, ksize: int = KSIZE) -> tuple[np.ndarray, np.ndarray]:
    """np.argmax and maximum of cv2.GaussianBlur of each (H, W) map of (N, K, H, W)."""
    blurred = np.stack([[cv2.GaussianBlur(m, (ksize, ksize), 0).ravel() for m in crop] for crop in cls])
    idx = blurred.argmax(2)
    return idx, np.take_along_axis(blurred, idx[..., None], 2)[..., 0]


def _offset_output(cls: np.ndarray) -> torch.Tensor:
    """(N, 3K, H, W) offset output with `cls` as classification maps and noise as offsets."""
    n, k, h, w = cls.shape
    out = np.random.default_rng(1).normal(0, 0.1, (n, k, 3, h, w)).astype(np.float32)
    out[:, :, 0] = cls
    return torch.from_numpy(out.reshape(n, 3 * k, h, w))


def _gaussian_maps(rng: np.random.Generator, n: int, k: int, h: int, w: int, centres=None) -> np.ndarray:
    """Gaussian peaks (std 1.5) on uniform [0, 0.1) noise, as the benchmark's maps."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if centres is None:
        centres = np.stack([rng.uniform(-1, w, (n, k)), rng.uniform(-1, h, (n, k))], -1)
    cx, cy = centres[..., 0, None, None], centres[..., 1, None, None]
    maps = rng.random((n, k, h, w), dtype=np.float32) * np.float32(0.1)
    return (maps + np.exp(((xs - cx) ** 2 + (ys - cy) ** 2) / -4.5)).astype(np.float32)


def _check(cls: np.ndarray) -> torch.Tensor:
    """Certified answers equal OpenCV's, and certified_argmax (with the fallback) equals it everywhere;
    returns the certified mask."""
    idx_cv, top_cv = _opencv(cls)
    output = _offset_output(cls)
    idx, top, ok = certified_blurred_argmax(output, 0, 3, KSIZE)
    assert torch.equal(idx[ok], torch.from_numpy(idx_cv)[ok])
    np.testing.assert_allclose(top[ok].numpy(), top_cv[ok.numpy()], rtol=2e-6, atol=1e-7)
    full_idx, full_top = certified_argmax(output, KSIZE)
    assert full_idx.tolist() == idx_cv.tolist()
    np.testing.assert_allclose(full_top.numpy(), top_cv, rtol=2e-6, atol=1e-7)
    return ok


def test_gaussian_maps_take_the_fast_path_and_equal_opencv():
    rng = np.random.default_rng(0)
    cls = _gaussian_maps(rng, 6, 17, 40, 32)
    ok = _check(cls)
    assert ok.float().mean() > 0.8  # the whole-map blur is the exception on peaked maps


def test_negative_background_is_the_same_certificate():
    """A constant shift commutes with the blur: maps 1.5 lower are certified exactly where the originals are."""
    cls = _gaussian_maps(np.random.default_rng(2), 3, 8, 40, 32)
    ok = _check(cls)
    ok_low = _check(cls - np.float32(1.5))
    assert ok_low.float().mean() > 0.8
    assert (ok_low == ok).float().mean() > 0.9


@pytest.mark.parametrize("x, y", [(0, 0), (31, 39), (0, 20), (16, 39), (1, 1), (30, 2), (-0.4, 38.6)])
def test_peaks_at_corners_and_edges(x, y):
    """Windows and the folded reflect-101 weights at the border: still OpenCV's argmax, and certified."""
    rng = np.random.default_rng(int(10 * x + y + 100))
    cls = _gaussian_maps(rng, 2, 3, 40, 32, centres=np.full((2, 3, 2), (x, y), np.float32))
    assert _check(cls).all()


def test_second_peak_outside_the_window_falls_back():
    """Two equal peaks 15 px apart: the raw maximum outside the peak window reaches the best blurred value,
    the bound is inconclusive, the map goes to the whole-map blur; the answer is still OpenCV's."""
    cls = _gaussian_maps(np.random.default_rng(3), 1, 2, 40, 32, centres=np.array([[[8, 20], [8, 20]]], np.float32))
    cls[0, 0] += _gaussian_maps(np.random.default_rng(4), 1, 1, 40, 32,
                                centres=np.array([[[23, 20]]], np.float32))[0, 0] - np.float32(0.05)
    ok = _check(cls)
    assert ok.tolist() == [[False, True]]


def test_exact_ties_and_flat_maps_fall_back():
    """Mirror-image peaks (an exact tie in the blurred map), a constant map (every pixel ties), an all-zero
    map (maximum 0: the sign test): none is certified, all end as OpenCV's first maximum."""
    h, w = 40, 32
    cls = np.zeros((1, 3, h, w), np.float32)
    cls[0, 0, 20, 10] = cls[0, 0, 20, 21] = 1.0  # symmetric about x = 15.5, 11 px apart: one blurred plateau
    cls[0, 1] = 0.25
    ok = _check(cls)
    assert not ok.any()


def test_maps_smaller_than_the_windows_are_never_certified():
    cls = _gaussian_maps(np.random.default_rng(5), 2, 3, 16, 12)
    assert not _check(cls).any()


def test_adversarial_maps_certified_answers_are_opencvs():
    """Spikes, plateaus and second peaks 2-12 px from the first at random heights, near and away from
    the border: whatever is certified is OpenCV's answer (the bounds are sound), some maps are not."""
    rng = np.random.default_rng(6)
    n, k, h, w = 8, 16, 40, 32
    cls = _gaussian_maps(rng, n, k, h, w)
    first = np.stack([rng.integers(0, w, (n, k)), rng.integers(0, h, (n, k))], -1)
    offset = rng.integers(-12, 13, (n, k, 2))
    second = np.clip(first + offset, 0, [w - 1, h - 1])
    for i in range(n):
        for j in range(k):
            (x0, y0), (x1, y1) = first[i, j], second[i, j]
            cls[i, j, y0, x0] += rng.uniform(0.5, 2.0)  # a spike: the raw argmax
            cls[i, j, max(0, y1 - 2):y1 + 3, max(0, x1 - 2):x1 + 3] += rng.uniform(0.0, 0.6)  # a plateau
    ok = _check(cls)
    assert 0 < ok.float().mean() < 1
