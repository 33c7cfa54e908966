"""The fused argmax + window read of the heatmap decoders (codecs/gaussian.py
``peak_windows``), the standard decode built on it, DARK's float32 window blur
and its error bound (codecs/dark.py), and the one-thread BLAS rule of
``codecs.base.single_threaded_on_cpu``."""
import numpy as np
import pytest
import torch

from oracles.reference_dark import get_final_preds_dark_loop
from posezoo.codecs import dark, gaussian
from posezoo.codecs.dark import DarkCodec, blur_windows, float32_blur_error
from posezoo.codecs.gaussian import GaussianHeatmapCodec, get_max_preds, peak_windows, quarter_offset


def _awkward_maps(dtype=np.float32):
    """(12, 9, 11) maps: peaks at each corner and edge, on the first and last map,
    a tie (first occurrence wins), a flat map, an all-negative map, a NaN map."""
    rng = np.random.default_rng(3)
    maps = rng.random((12, 9, 11)).astype(dtype)
    peaks = [(0, 0), (0, 10), (8, 0), (8, 10), (4, 0), (0, 5), (8, 6), (3, 10)]
    for m, (y, x) in enumerate(peaks):
        maps[m, y, x] = 2.0
    maps[8, 2, 3] = maps[8, 6, 7] = 3.0  # tie: the first in row-major order
    maps[9] = 0.25
    maps[10] = -maps[10] - 0.5
    maps[11, 4, 4] = np.nan  # numpy's argmax (and the official code) takes a NaN as the maximum
    maps[11, 0, 0] = maps[11, -1, -1] = 5.0
    return maps


@pytest.mark.parametrize("size", [3, 5, 15])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_bytes", [1, 6 << 20])
def test_peak_windows_equal_argmax_and_zero_padded_slices(size, dtype, chunk_bytes, monkeypatch):
    """Against np.argmax and slices of a zero-padded copy, one map per chunk and one chunk for all."""
    monkeypatch.setattr(gaussian, "PEAK_CHUNK_BYTES", chunk_bytes)
    maps = _awkward_maps(dtype)
    maxvals, idx, window = peak_windows(torch.from_numpy(maps), size)
    flat = maps.reshape(len(maps), -1)
    expect_idx = flat.argmax(axis=1)
    np.testing.assert_array_equal(idx.numpy(), expect_idx)
    np.testing.assert_array_equal(maxvals.numpy(), flat[np.arange(len(maps)), expect_idx])
    assert idx[8] == 2 * 11 + 3 and window.dtype == torch.from_numpy(maps).dtype
    half = size // 2
    padded = np.pad(maps, ((0, 0), (half, half), (half, half)))
    for m, i in enumerate(expect_idx):
        y, x = divmod(int(i), 11)
        np.testing.assert_array_equal(window[m].numpy(), padded[m, y:y + size, x:x + size], err_msg=f"map {m}")


def test_peak_windows_larger_than_the_maps():
    """A window larger than the whole buffer is gathered pixel by pixel, zero off the map."""
    maps = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    maxvals, idx, window = peak_windows(torch.from_numpy(maps), 7)
    assert int(idx[0]) == 11 and float(maxvals[0]) == 11
    np.testing.assert_array_equal(window[0].numpy(), np.pad(maps[0], 3)[2:9, 3:10])


def test_standard_decode_equals_argmax_and_quarter_offset():
    """The codec's windowed post-process against get_max_preds + quarter_offset (the
    gathers of the official get_final_preds) on borders, ties, flat and negative maps."""
    maps = _awkward_maps()[:11].reshape(1, 11, 9, 11)
    maps[0, 9, 4, 4:7] = [0.25, 1.0, 0.25]  # a tie of the two x neighbours: no x step
    hm = torch.from_numpy(maps)
    coords, maxvals = get_max_preds(hm)
    expect = quarter_offset(hm, coords)
    codec = GaussianHeatmapCodec((44, 36), (11, 9), 2.0)
    center, scale = torch.tensor([[30.0, 20.0]]), torch.tensor([[0.22, 0.18]])
    preds, got_maxvals = codec.decode(hm, {"center": center, "scale": scale})
    from posezoo.utils.transforms import crop_to_image
    np.testing.assert_array_equal(preds.numpy(), crop_to_image(expect.double(), center, scale, (11, 9)).numpy())
    np.testing.assert_array_equal(got_maxvals.numpy(), maxvals.numpy())
    assert float(expect[0, 9, 0]) == 5.0  # the tie kept x


def _blur_windows_case(seed, negative):
    rng = np.random.default_rng(seed)
    window = rng.random((400, 15, 15)).astype(np.float32) * np.float32(0.1)
    yy, xx = np.mgrid[-7:8, -7:8]
    window += np.exp(-(xx ** 2 + yy ** 2) / rng.uniform(2, 30, (400, 1, 1))).astype(np.float32)
    if negative:
        window -= np.float32(rng.uniform(0, 0.6))
    return torch.from_numpy(window)


@pytest.mark.parametrize("seed,negative", [(0, False), (1, True), (2, True)])
def test_float32_window_blur_within_its_bound(seed, negative):
    """|float32 blur - float32(double blur)| stays within float32_blur_error's bound on
    every used value, for windows with and without negative pixels; the double blur
    rounds as DarkPose's float32 copy of OpenCV's blur does (bit for bit on a window)."""
    window = _blur_windows_case(seed, negative)
    fast = blur_windows(window, 11, torch.float32).double()
    exact = blur_windows(window, 11, torch.float64).double()
    assert not torch.equal(fast, exact)  # the float32 products do round differently
    flat_fast, flat_exact = fast.reshape(-1, 25)[:, list(dark._STENCIL)], exact.reshape(-1, 25)[:, list(dark._STENCIL)]
    smallest = flat_fast.amin(dim=1)
    ok = smallest > 0
    assert ok.sum() > 100
    bound = float32_blur_error(11, (-window.reshape(400, -1).amin(dim=1)).clamp_min(0).double(), smallest)
    rel = ((flat_fast - flat_exact).abs() / flat_exact.abs()).amax(dim=1)
    assert (rel[ok] <= bound[ok]).all()
    assert (rel[ok] > bound[ok] / 1e3).any()  # the bound is not vacuous


def test_dark_tiers_each_used_and_equal_to_the_loop_reference(monkeypatch):
    """Peaked maps are trusted from the float32 blur; wide, noisy or negative-background
    ones fall to the double window blur or the whole-map redo; every tier gives the
    whole-map loop reference's coordinates."""
    rng = np.random.default_rng(11)
    h, w = 32, 28
    yy, xx = np.mgrid[0:h, 0:w]
    maps = []
    for m in range(60):
        cx, cy, s = rng.uniform(6, w - 6), rng.uniform(6, h - 6), rng.uniform(1.0, 6.0)
        peak = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        maps.append(peak + rng.normal(0, [0.0, 0.02, 0.2][m % 3], (h, w)) - [0, 0.3][m % 2] * (m % 5 == 0))
    maps = np.asarray(maps, np.float32).reshape(3, 20, h, w)
    calls = []
    steps = dark._windowed_steps

    def counted(window, coords, raw_max, kernel, work):
        refined, trusted = steps(window, coords, raw_max, kernel, work)
        calls.append((work, int(trusted.sum()), len(trusted)))
        return refined, trusted

    redone = []
    modulated_at = dark.modulated_at
    monkeypatch.setattr(dark, "_windowed_steps", counted)
    monkeypatch.setattr(dark, "modulated_at", lambda maps, k, idx: redone.append(len(maps)) or modulated_at(maps, k, idx))
    center, scale = rng.uniform(100, 300, (3, 2)), rng.uniform(0.5, 2, (3, 2))
    codec = DarkCodec((4 * w, 4 * h), (w, h), 2, blur_kernel=11)
    preds, _ = codec.decode(torch.from_numpy(maps), {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)})
    ref, _ = get_final_preds_dark_loop(maps, center, scale, 11)
    np.testing.assert_allclose(preds.numpy(), ref, atol=1e-3, rtol=0)
    (w32, trusted32, all32), (w64, trusted64, _) = calls
    assert (w32, w64) == (torch.float32, torch.float64)
    assert 0 < trusted32 < all32 and trusted64 > 0 and redone and redone[0] > 0


def test_decode_holds_blas_to_one_thread_and_restores_it():
    """single_threaded_on_cpu: numpy's BLAS pool runs one thread during a CPU decode
    (the window products) and gets its size back after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []
    real = dark.blur_windows

    def probe(*args, **kwargs):
        seen.extend(lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")
        return real(*args, **kwargs)

    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        outer = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
        dark.blur_windows = probe
        try:
            maps = torch.from_numpy(np.random.default_rng(0).random((1, 2, 16, 16)).astype(np.float32))
            DarkCodec((64, 64), (16, 16), 2).decode(maps, {"center": torch.zeros(1, 2), "scale": torch.ones(1, 2)})
        finally:
            dark.blur_windows = real
        after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert after == outer and before
