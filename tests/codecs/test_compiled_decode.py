"""Compiled decode kernels (codecs/compiled.py, TEST.COMPILE): the DARK, UDP Gaussian (master) and UDP offset
decodes equal the plain decode and the official-formula loop oracles to 1e-3 px on adversarial maps (flat,
exact ties, peaks on borders and corners, near-zero and negative maps, noise where the step is
ill-conditioned), hand the maps they cannot vouch for back to the plain path, and fall back to the plain path
with one log line when the kernels cannot be built. The kernels are built once per session (seconds; then
inductor's on-disk cache)."""
import logging

import numpy as np
import pytest
import torch

from oracles import reference_udp as R
from oracles.reference_dark import get_final_preds_dark_loop
from oracles.reference_soft_argmax import get_final_preds_soft_argmax_loop
from posezoo.codecs import build_codec, compiled
from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import NEAR_TIE_RTOL, UDPHeatmapCodec, UDPOffsetCodec
from posezoo.config import load_config
from test_codec_dark import blob_maps, golden_fixture
from test_codec_udp import golden_decode_inputs, offset_tie_inputs

IMG, HM = (192, 256), (48, 64)

needs_kernels = pytest.mark.skipif(compiled.library() is None, reason="no C++ compiler: the kernels cannot be built")


def adversarial_maps(rng: np.random.Generator, h: int = 64, w: int = 48) -> np.ndarray:
    """(6, 17, h, w) float32: noisy blobs (some over the border), flat maps, exact ties, peaks on each border
    and corner, near-zero positive maps (1e-12 scale, NaN-free), all-zero and all-negative maps, noise."""
    maps = np.concatenate([blob_maps(rng, 2, 17, h, w, 0.05), blob_maps(rng, 1, 17, h, w, 0.1, blobs=3),
                           rng.random((1, 17, h, w)).astype(np.float32),
                           rng.normal(0, 1, (1, 17, h, w)).astype(np.float32),
                           (rng.random((1, 17, h, w)) ** 8).astype(np.float32)])
    ys, xs = np.mgrid[0:h, 0:w]
    special = maps[0]
    special[0] = 0.5  # flat
    special[1] = 0.0
    special[2] = -np.abs(special[2]) - 0.1
    special[3] = 0.0
    special[3, 20, 10] = special[3, 20, 30] = special[3, 40, 10] = 0.7  # exact ties: the first wins
    for j, (y, x) in enumerate([(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, 20), (h - 1, 20), (30, 0),
                                (30, w - 1), (1, 1), (h - 2, w - 2)]):
        special[4 + j] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 8.0) + 0.01 * rng.random((h, w))
    special[14] = (1e-12 * (np.exp(-((xs - 20.3) ** 2 + (ys - 30.6) ** 2) / 8.0) + 1e-3)).astype(np.float32)
    special[15] = (1e-30 * rng.random((h, w))).astype(np.float32)
    special[16] = np.where((xs // 4 + ys // 4) % 2 == 0, 0.3, 0.1)  # plateaus
    return maps.astype(np.float32)


def _boxes(rng, n):
    return rng.uniform(100, 500, (n, 2)).astype(np.float32), rng.uniform(0.5, 2.0, (n, 2)).astype(np.float32)


def _meta(center, scale):
    return {"center": torch.from_numpy(center), "scale": torch.from_numpy(scale)}


@needs_kernels
@pytest.mark.parametrize("kernel,size", [(11, (64, 48)), (3, (64, 48)), (17, (96, 72))])
def test_dark_compiled_equals_plain_and_darkpose_loop(kernel, size):
    rng = np.random.default_rng(kernel)
    maps = adversarial_maps(rng, *size)
    if kernel == 11:
        golden, center, scale = golden_fixture()
        maps = np.concatenate([maps, golden])
    center, scale = _boxes(rng, len(maps))
    args = ((4 * size[1], 4 * size[0]), (size[1], size[0]), 2)
    plain = DarkCodec(*args, blur_kernel=kernel)
    fast = DarkCodec(*args, blur_kernel=kernel, compiled=True)
    tensor = torch.from_numpy(maps.copy())
    preds, maxvals = fast.decode(tensor, _meta(center, scale))
    assert torch.equal(tensor, torch.from_numpy(maps))  # input untouched
    plain_preds, plain_maxvals = plain.decode(torch.from_numpy(maps), _meta(center, scale))
    np.testing.assert_allclose(preds.numpy(), plain_preds.numpy(), atol=1e-3, rtol=0)
    assert torch.equal(maxvals, plain_maxvals)
    ref_preds, ref_maxvals = get_final_preds_dark_loop(maps.copy(), center, scale, kernel)
    np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3, rtol=1e-9)
    np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals)
    # the ties: the first maximum, as np.argmax; noise maps are handed back to the plain path, peaked ones rarely
    _, index, _, redo = compiled.dark_peaks(torch.from_numpy(maps).reshape(-1, *size), kernel)
    assert int(index.reshape(len(maps), 17)[0, 3]) == 20 * size[1] + 10
    redo = redo.reshape(len(maps), 17)
    assert float(redo[1:3].float().mean()) <= 0.25 and int(redo[3:5].sum()) >= 5


@needs_kernels
def test_dark_compiled_two_threads_equals_one():
    rng = np.random.default_rng(3)
    maps = torch.from_numpy(adversarial_maps(rng)).reshape(-1, 64, 48)
    one, two = compiled.dark_peaks(maps, 11, threads=1), compiled.dark_peaks(maps, 11, threads=2)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def _udp_args(size):
    return (4 * size[1], 4 * size[0]), (size[1], size[0])


@needs_kernels
@pytest.mark.parametrize("size", [(64, 48), (45, 37)])  # 37 wide: a partial vector at the end of every row
def test_udp_gaussian_compiled_equals_plain_and_official_loop(size):
    rng = np.random.default_rng(5)
    maps = adversarial_maps(rng, *size)
    center, scale = _boxes(rng, len(maps))
    plain = UDPHeatmapCodec(*_udp_args(size), 2, post_process=True)
    fast = UDPHeatmapCodec(*_udp_args(size), 2, post_process=True, compiled=True)
    preds, maxvals = fast.decode(torch.from_numpy(maps), _meta(center, scale))
    plain_preds, plain_maxvals = plain.decode(torch.from_numpy(maps), _meta(center, scale))
    assert torch.equal(maxvals, plain_maxvals)
    ref_preds, ref_maxvals = R.get_final_preds_udp_loop(maps.copy(), center, scale, True)
    np.testing.assert_array_equal(maxvals.numpy(), ref_maxvals)
    # as tests/codecs/test_codec_udp.py: where the step is ill-conditioned (noise, plateaus, flat maps) the
    # official float32 rounding moves it; there the comparison is relative to the step
    step = np.abs(ref_preds - R.get_final_preds_udp_loop(maps.copy(), center, scale, False)[0]).max(2)
    assert (np.abs(preds.numpy() - ref_preds).max(2) <= 1e-3 + 1e-3 * step).all()
    np.testing.assert_allclose(preds.numpy(), plain_preds.numpy(), atol=1e-3, rtol=0)
    peaked = slice(1, 3)  # the blob crops: absolute
    np.testing.assert_allclose(preds.numpy()[peaked], ref_preds[peaked], atol=1e-3)
    if size == (64, 48):
        golden, *_ = golden_decode_inputs()["gauss_post"]
        g_center, g_scale = _boxes(rng, len(golden))
        g_preds, _ = fast.decode(torch.from_numpy(golden), _meta(g_center, g_scale))
        ref_preds, _ = R.get_final_preds_udp_loop(golden.copy(), g_center, g_scale, True)
        np.testing.assert_allclose(g_preds.numpy(), ref_preds, atol=1e-3)


def _offset_output(rng, cls):
    n, k, h, w = cls.shape
    offsets = 0.3 * rng.standard_normal((n, k, 2, h, w)).astype(np.float32)
    return np.concatenate([cls[:, :, None], offsets], axis=2).reshape(n, 3 * k, h, w)


@needs_kernels
@pytest.mark.parametrize("size", [(64, 48), (45, 37)])
def test_udp_offset_compiled_equals_plain_and_official_loop(size):
    rng = np.random.default_rng(6)
    output = _offset_output(rng, adversarial_maps(rng, *size))
    n = len(output)
    plain, fast = UDPOffsetCodec(*_udp_args(size), 4.0), UDPOffsetCodec(*_udp_args(size), 4.0, compiled=True)
    center, scale = _boxes(rng, n)
    cases = [(output, center, scale)]
    if size == (64, 48):
        cases += [offset_tie_inputs(), golden_decode_inputs()["offset"]]
    for maps, c, s in cases:
        preds, maxvals = fast.decode(torch.from_numpy(maps), _meta(c, s))
        plain_preds, plain_maxvals = plain.decode(torch.from_numpy(maps), _meta(c, s))
        np.testing.assert_allclose(preds.numpy(), plain_preds.numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(maxvals.numpy(), plain_maxvals.numpy(), atol=1e-6, rtol=0)
        ref_preds, ref_maxvals = R.get_final_preds_offset_loop(maps.copy(), c, s, 4.0)
        np.testing.assert_allclose(preds.numpy(), ref_preds, atol=1e-3)
        np.testing.assert_allclose(maxvals.numpy(), ref_maxvals, atol=1e-6)
    if size == (64, 48):  # the exact and the 3e-8 twins are near ties: handed back to OpenCV's own argmax
        ties = offset_tie_inputs()[0]
        redo = compiled.udp_offset(torch.from_numpy(ties), 15, 7, 4.0, NEAR_TIE_RTOL)[2]
        assert redo[:, 0].all() and redo[:, 1].all() and not redo[:, 5].any()


@needs_kernels
def test_udp_offset_finds_a_blurred_maximum_far_from_the_raw_one():
    """The offset kernel blurs only the rows whose bound (from the raw row maxima) can reach the blurred maximum.
    A one-pixel spike (the raw maximum, row 8) blurs to far less than a broad blob at row 50: the rows near the
    blob must be blurred, and the answer is OpenCV's argmax of the whole blurred map, not marked for redo."""
    import cv2

    h, w = 64, 48
    ys, xs = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(8)
    cls = np.zeros((2, 3, h, w), np.float32)
    cls[:, :] = 0.02 * rng.random((2, 3, h, w))
    for j, (blob_y, blob_x, width) in enumerate([(50.3, 20.6, 4.0), (3.2, 40.1, 3.0), (60.0, 2.0, 5.0)]):
        cls[:, j] += (0.6 * np.exp(-((xs - blob_x) ** 2 + (ys - blob_y) ** 2) / (2 * width ** 2))).astype(np.float32)
    cls[:, 0, 8, 10] = cls[:, 1, 40, 5] = cls[:, 2, 20, 30] = 1.0  # the raw maxima, one pixel each
    output = _offset_output(rng, cls)
    maxvals, coords, redo = compiled.udp_offset(torch.from_numpy(output), 15, 7, 4.0, NEAR_TIE_RTOL)
    assert not redo.any()
    for n in range(2):
        for j in range(3):
            blurred = cv2.GaussianBlur(cls[n, j], (15, 15), 0)
            at = int(np.argmax(blurred))
            raw_row = int(np.argmax(cls[n, j])) // w
            assert abs(at // w - raw_row) > 10  # the blurred maximum is far from the raw maximum's row
            offsets = [cv2.GaussianBlur(output[n, 3 * j + c], (7, 7), 0).astype(np.float64)[at // w, at % w]
                       for c in (1, 2)]
            np.testing.assert_allclose(coords[n, j].numpy(), [at % w + 4 * offsets[0], at // w + 4 * offsets[1]],
                                       atol=1e-5)
            np.testing.assert_allclose(float(maxvals[n, j]), blurred.max(), rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("size", [(64, 48), (45, 37)])
def test_soft_argmax_compiled_equals_plain_and_lpn_loop(size):
    """LPN's beta-soft-argmax summed over the pixels within cutoff / beta of the maximum only: the plain decode and
    the LPN-formula loop to 1e-4 px, on maps where many pixels share the top (flat, plateaus, noise) as well."""
    rng = np.random.default_rng(10)
    maps = adversarial_maps(rng, *size)
    maps[0, 5, 3, 4] = np.nan  # a NaN map goes to the plain path
    center, scale = _boxes(rng, len(maps))
    args = ((4 * size[1], 4 * size[0]), (size[1], size[0]), 2)
    fast, plain = SoftArgmaxCodec(*args, compiled=True), SoftArgmaxCodec(*args)
    preds, maxvals = fast.decode(torch.from_numpy(maps), _meta(center, scale))
    plain_preds, plain_maxvals = plain.decode(torch.from_numpy(maps), _meta(center, scale))
    # where the point sits on a half pixel (flat and plateau maps: their centre), rounding picks the pixel that
    # the score and the quarter step read, in LPN's float32 code too: compared without the post-processing
    points = compiled.soft_argmax(torch.from_numpy(maps).reshape(-1, *size), 160.0)[0].reshape(len(maps), 17, 2)
    half = ((points - points.floor() - 0.5).abs() < 1e-4).any(2).numpy()
    assert not half[1:].any()  # only the special maps of crop 0 (flat, zero, 1e-30 noise, plateaus)
    raw = SoftArgmaxCodec(*args, post_process=False)
    for codec, got in ((plain, (preds, maxvals)), (raw, SoftArgmaxCodec(*args, post_process=False, compiled=True)
                                                   .decode(torch.from_numpy(maps), _meta(center, scale)))):
        want = codec.decode(torch.from_numpy(maps), _meta(center, scale))
        keep = ~half if codec is plain else np.ones_like(half)  # the points themselves agree on every map
        keep[0, 5] = False  # the NaN map
        np.testing.assert_allclose(got[0].numpy()[keep], want[0].numpy()[keep], atol=1e-3, rtol=0)
        np.testing.assert_array_equal(got[1].numpy()[~half], want[1].numpy()[~half])
    ref_preds, ref_maxvals = get_final_preds_soft_argmax_loop(maps[1:].copy(), center[1:], scale[1:])
    np.testing.assert_allclose(preds.numpy()[1:][~half[1:]], ref_preds[~half[1:]], atol=1e-3)
    np.testing.assert_array_equal(maxvals.numpy()[1:][~half[1:]], ref_maxvals[~half[1:]])
    assert torch.isnan(preds[0, 5]).all() == torch.isnan(plain_preds[0, 5]).all()
    _, redo = compiled.soft_argmax(torch.from_numpy(maps).reshape(-1, *size), 160.0)
    assert redo.nonzero()[:, 0].tolist() == [5]


@pytest.fixture(scope="module")
def narrow_builds():
    """The kernels built with the AVX2 and the scalar vector type (on this machine's compiler), or a skip."""
    if compiled.library() is None:
        pytest.skip("no C++ compiler: the kernels cannot be built")
    return {bits: compiled._build(compiled.kernel_source(bits)) for bits in (256, 32)}


@needs_kernels
def test_kernels_give_the_same_bits_in_every_vector_build(narrow_builds, monkeypatch):
    """AVX-512, AVX2 and scalar builds sum in the same order with fused multiply-adds: bit-identical results, at a
    width that leaves a partial vector at the end of each row (37) and at 48."""
    runs = {}
    for bits, lib in [(512, compiled.library()), *narrow_builds.items()]:
        monkeypatch.setattr(compiled, "library", lambda lib=lib: lib)
        got = []
        for size in ((45, 37), (64, 48)):
            maps = torch.from_numpy(adversarial_maps(np.random.default_rng(size[1]), *size))
            flat = maps.reshape(-1, *size)
            output = torch.from_numpy(_offset_output(np.random.default_rng(size[0]), maps.numpy()))
            got += [*compiled.dark_peaks(flat, 11), *compiled.udp_gaussian(flat, 7),
                    *compiled.udp_offset(output, 15, 7, 4.0, NEAR_TIE_RTOL), *compiled.soft_argmax(flat, 160.0)]
        runs[bits] = got
    for bits in (256, 32):
        for a, b in zip(runs[512], runs[bits]):
            assert torch.equal(a, b), bits


@needs_kernels
def test_offset_kernel_flags_exactly_the_nan_maps_in_every_build(narrow_builds, monkeypatch):
    """The offset kernel spots a NaN by the map's running sum; a sum that overflows without a NaN (values near
    float32's largest) must not send the map to the plain path, and neither must infinities of one sign in the
    offset channels, which the kernel reads only around the point."""
    rng = np.random.default_rng(11)
    clean = _offset_output(rng, adversarial_maps(rng)[:2])
    output = clean.copy()
    output[0, 3 * 4, 10, 7] = np.nan  # joint 4 of crop 0: its classification map
    y, x = np.mgrid[:64, :48]
    output[1, 3 * 6] = 3e38 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 8)  # joint 6 of crop 1: its sum overflows
    output[1, 3 * 2 + 1, 0, 0] = np.inf  # an x offset far from joint 2's point
    for bits, lib in [(512, compiled.library()), *narrow_builds.items()]:
        monkeypatch.setattr(compiled, "library", lambda lib=lib: lib)
        before = compiled.udp_offset(torch.from_numpy(clean), 15, 7, 4.0, NEAR_TIE_RTOL)[2].nonzero().tolist()
        assert [0, 4] not in before and [1, 6] not in before
        _, _, redo = compiled.udp_offset(torch.from_numpy(output), 15, 7, 4.0, NEAR_TIE_RTOL)
        assert redo.nonzero().tolist() == sorted(before + [[0, 4]]), bits


@needs_kernels
def test_argmax_kernels_flag_exactly_the_nan_maps_in_every_build(narrow_builds, monkeypatch):
    """DARK, UDP Gaussian and soft-argmax find a NaN by the map's running sum too: a NaN map is sent to the
    plain path in every build, a map whose sum overflows (no NaN) is not; soft-argmax also sends a map whose
    maximum is infinite."""
    y, x = np.mgrid[:64, :48]
    maps = adversarial_maps(np.random.default_rng(12))[1:2].reshape(-1, 64, 48).copy()  # 17 noisy blob maps
    maps[3, 20, 30] = np.nan
    maps[5] = 3e38 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 8)  # its sum overflows
    maps[7, 0, 0] = np.inf
    for bits, lib in [(512, compiled.library()), *narrow_builds.items()]:
        monkeypatch.setattr(compiled, "library", lambda lib=lib: lib)
        flat = torch.from_numpy(maps)
        assert compiled.udp_gaussian(flat, 7)[2].nonzero()[:, 0].tolist() == [3], bits
        assert compiled.soft_argmax(flat, 160.0)[1].nonzero()[:, 0].tolist() == [3, 7], bits  # and its infinite maximum
        assert compiled.dark_peaks(flat, 11)[3][3], bits


def test_compiled_unavailable_falls_back_with_one_log_line(monkeypatch, caplog):
    """Without a C++ compiler (the build raises) the codecs decode with the plain path, logging one line."""
    def no_compiler(source):
        raise RuntimeError("Compiler: g++ is not found")

    rng = np.random.default_rng(7)
    maps = adversarial_maps(rng)
    center, scale = _boxes(rng, len(maps))
    offset = np.repeat(maps, 3, axis=1)
    expected = [DarkCodec(IMG, HM, 2).decode(torch.from_numpy(maps), _meta(center, scale)),
                UDPHeatmapCodec(IMG, HM, 2).decode(torch.from_numpy(maps), _meta(center, scale)),
                UDPOffsetCodec(IMG, HM).decode(torch.from_numpy(offset), _meta(center, scale))]
    monkeypatch.setattr(compiled, "_build", no_compiler)
    compiled.library.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="posezoo.codecs.compiled"):
            got = [DarkCodec(IMG, HM, 2, compiled=True).decode(torch.from_numpy(maps), _meta(center, scale)),
                   UDPHeatmapCodec(IMG, HM, 2, compiled=True).decode(torch.from_numpy(maps), _meta(center, scale)),
                   UDPOffsetCodec(IMG, HM, compiled=True).decode(torch.from_numpy(offset), _meta(center, scale))]
        lines = [r for r in caplog.records if r.name == "posezoo.codecs.compiled"]
        assert len(lines) == 1 and "compiled decode unavailable" in lines[0].getMessage()
        assert "g++ is not found" in lines[0].getMessage()
        for (p, v), (q, u) in zip(got, expected):
            assert torch.equal(p, q) and torch.equal(v, u)
    finally:
        compiled.library.cache_clear()


def test_test_compile_selects_the_compiled_decode():
    """TEST.COMPILE (the compiled forward) also compiles the DARK and UDP decoders; off by default."""
    for overrides, cls in ((["MODEL.TARGET_TYPE", "gaussian", "TEST.BLUR_KERNEL", "11"], DarkCodec),
                           (["MODEL.TARGET_TYPE", "soft_argmax"], SoftArgmaxCodec),
                           (["MODEL.TARGET_TYPE", "udp", "TEST.POST_PROCESS", "True"], UDPHeatmapCodec),
                           (["MODEL.TARGET_TYPE", "offset"], UDPOffsetCodec)):
        default = build_codec(load_config(None, overrides))
        on = build_codec(load_config(None, overrides + ["TEST.COMPILE", "True"]))
        assert isinstance(on, cls) and on.compiled and not default.compiled
