"""The window and stacked-blur paths of the UDP and soft-argmax decoders (codecs/udp.py, codecs/soft_argmax.py)
against independent whole-map computations: OpenCV per map, the full torch blur, LPN's softmax expectation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from posezoo.codecs.soft_argmax import soft_argmax, soft_argmax_fused
from posezoo.codecs.udp import _opencv_blur_stack, blurred_3x3, blurred_argmax, gaussian_blur


@pytest.mark.parametrize("ksize", [7, 11, 15])
@pytest.mark.parametrize("shape", [(64, 48), (8, 5), (17, 13), (9, 40)])
def test_stacked_blur_is_opencv_per_map_bit_for_bit(ksize, shape):
    if shape[0] <= ksize // 2:
        pytest.skip("too short to pad; blurred_argmax takes the torch path there")
    rng = np.random.default_rng(ksize * 100 + shape[0])
    maps = np.concatenate([rng.standard_normal((20, *shape)), rng.random((20, *shape)) ** 8]).astype(np.float32)
    expected = np.stack([cv2.GaussianBlur(m, (ksize, ksize), 0) for m in maps])
    np.testing.assert_array_equal(_opencv_blur_stack(maps, ksize), expected)


def test_stacked_blur_at_the_shortest_map():
    maps = np.random.default_rng(0).random((5, 8, 6)).astype(np.float32)  # H = 8 = 15 // 2 + 1
    np.testing.assert_array_equal(_opencv_blur_stack(maps, 15),
                                  np.stack([cv2.GaussianBlur(m, (15, 15), 0) for m in maps]))


def test_blurred_argmax_breaks_exact_ties_like_numpy():
    """Mirror-image peaks, a constant map (every pixel ties: index 0), a dip: OpenCV's argmax, its first."""
    maps = np.zeros((3, 16, 12), np.float32)
    maps[0, 5, 2] = maps[0, 5, 9] = 1.0  # symmetric about x = 5.5
    maps[1] = 0.25  # constant: every pixel ties, index 0
    maps[2, 10, 3] = -1.0  # one negative dip: the maximum is on the far side
    idx, top = blurred_argmax(torch.from_numpy(maps)[None], 15)
    blurred = [cv2.GaussianBlur(m, (15, 15), 0).ravel() for m in maps]
    assert idx[0].tolist() == [int(np.argmax(b)) for b in blurred]
    assert top[0].tolist() == [float(b.max()) for b in blurred]
    assert idx[0, 1] == 0


def _clamped_3x3(blurred: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The full blurred maps read at the 3x3 neighbours, clamped to the map."""
    n, k, h, w = blurred.shape
    steps = torch.tensor([-1, 0, 1])
    xs = (coords[..., 0].long()[..., None] + steps).clamp(0, w - 1)
    ys = (coords[..., 1].long()[..., None] + steps).clamp(0, h - 1)
    idx = (ys[..., :, None] * w + xs[..., None, :]).reshape(n, k, 9)
    return blurred.reshape(n, k, h * w).gather(2, idx)


@pytest.mark.parametrize("ksize", [7, 11])
@pytest.mark.parametrize("shape", [(64, 48), (12, 9), (3, 2), (1, 5), (2, 1)])
def test_blurred_3x3_at_corners_edges_and_inside(ksize, shape):
    h, w = shape
    rng = np.random.default_rng(h * 10 + w)
    points = sorted({(x, y) for x in (0, 1, w // 2, w - 2, w - 1) for y in (0, 1, h // 2, h - 2, h - 1)
                     if 0 <= x < w and 0 <= y < h})
    maps = torch.from_numpy(rng.random((2, len(points), h, w))).to(torch.float64)
    coords = torch.tensor([points, points[::-1]], dtype=torch.float64)
    got = blurred_3x3(maps, coords, ksize, torch.float64)
    torch.testing.assert_close(got, _clamped_3x3(gaussian_blur(maps, ksize), coords), rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_fused_soft_argmax_equals_lpn_expectation(chunk):
    rng = np.random.default_rng(chunk)
    maps = rng.random((4, 5, 16, 12)).astype(np.float32)
    maps[0, 0] = 0.0  # flat: the map's centre
    maps[0, 1] = -3.0
    maps[1, 0, 3, 7] = 40.0  # one pixel far above the rest
    maps[2] *= 0.01  # nearly flat
    maps = torch.from_numpy(maps)
    got = soft_argmax_fused(maps, 160.0, maps_per_chunk=chunk)
    torch.testing.assert_close(got, soft_argmax(maps, 160.0), rtol=0, atol=1e-4)
    assert got[0, 0].tolist() == pytest.approx([5.5, 7.5], abs=1e-5)
    assert got[1, 0].tolist() == [7.0, 3.0]


def test_cpu_decode_runs_single_threaded_and_restores_both_pools():
    from posezoo.codecs.base import single_threaded_on_cpu

    seen = []

    class Probe:
        @single_threaded_on_cpu
        def decode(self, output, meta):
            seen.append((torch.get_num_threads(), cv2.getNumThreads()))
            raise ValueError("bad input")  # the pools are restored on errors too

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    try:
        with pytest.raises(ValueError):
            Probe().decode(torch.zeros(1, 1, 4, 4), {})
        assert seen == [(1, 1)]
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
