"""UDP, Unbiased Data Processing (Huang et al., "The Devil is in the Details:
Delving into Unbiased Data Processing for Human Pose Estimation", CVPR 2020;
official code: HuangJunJie2017/UDP-Pose, ``deep-high-resolution-net.pytorch``).

Two target types share UDP's geometry (``utils.transforms.get_udp_warp_matrix``
and ``udp_crop_to_image``): sizes count pixel intervals, so the box maps onto
crop pixels 0 .. W-1, the heatmap stride is (W_in - 1) / (W_hm - 1), and a
mirrored crop is x -> W-1-x at every resolution (flip test without a shift).

- ``MODEL.TARGET_TYPE: udp`` (UDP-Pose's ``gaussian``): a Gaussian of std SIGMA
  centred on the exact sub-pixel joint, drawn in the window around its rounded
  position. Decode: argmax, then with ``TEST.POST_PROCESS`` UDP's Taylor step
  (DARK-style): each map is blurred (7x7), rescaled to [0, its raw maximum],
  clipped to [0.001, 50] and log-taken; one Newton step from the argmax with
  central differences on the edge-padded map.
- ``MODEL.TARGET_TYPE: offset`` (UDP-Pose's ``offset``): per joint three maps,
  interleaved [classification, x offset, y offset] (channel 3k, 3k+1, 3k+2).
  Classification is 1 on the disk of radius ``LOSS.KPD`` heatmap pixels around
  the joint, the offsets are (joint - pixel) / KPD on that disk, 0 elsewhere.
  Decode: blur classification maps (15x15) and KPD-scaled offset maps (7x7),
  argmax of the blurred classification, add the blurred offsets read there.
  The score is the blurred classification maximum. Loss:
  ``core.loss.JointsOffsetMSELoss``.

``TEST.UDP_FLAVOUR`` chooses between the two published decodes: ``master``
(the above, UDP-Pose master, the default) and ``mmpose`` (the authors' port,
mmpose 0.x mmpose/core/evaluation/top_down_eval.py ``post_dark_udp`` and the
CombinedTarget branch of ``keypoints_from_heatmaps``): kernel k =
``TEST.BLUR_KERNEL`` (0 = 11); Gaussian: blur k, no rescale, clip, log, Newton
step with the Hessian plus float32 eps on its diagonal; offset: classification
blurred 2k+1, offsets k, scaled by ``LOSS.KPD`` (mmpose's valid_radius_factor
times the heatmap height); a joint whose maximum is <= 0 is put at heatmap
(-1, -1) (master: (0, 0)).

Gaussian blurs are OpenCV's ``GaussianBlur(ksize, sigma=0)`` (kernel from
``cv2.getGaussianKernel``, BORDER_REFLECT_101). The offset decode's argmax over
the blurred classification map comes from windows around the raw argmax with
a certificate (``certified_blurred_argmax``: exact blurred values on 7x7, upper
bounds from the raw maxima beyond); only the maps whose bound is inconclusive
(~5 % of the benchmark's maps) are blurred whole, and its offsets are blurred
at the argmax only (``blurred_offsets``). Master's Gaussian decode still blurs
every map (its min/max rescale): on the CPU by OpenCV itself, a slice of maps
stacked into one image per call (``_opencv_blur_stack``, bit-identical to the
official per-map calls), elsewhere in torch as two matrix products per map,
with OpenCV deciding maps whose argmax is within rounding of a tie
(``blurred_argmax``). The Taylor step's 3x3 neighbourhood (``blurred_3x3``) is
computed from a window around the point in float64. Everything else in decode
is batched over crops and joints on the output's device, and the output is
not modified.

Why master's whole-map pass stays (docs/speed.md): it subtracts the blurred
map's minimum m before the log, and unlike DARK's rescale factor that shift
does not cancel in the Newton step. The cheap bounds (raw minimum <= m <= the
blurred value at the raw argmin) leave the step uncertain by 2.3e-3 px median
on the benchmark's maps (within 1e-4 px on 1 % of them), so a certified
window path would fall back on nearly every map.

One deliberate difference: where the official Taylor step divides by zero (a
map constant after blurring) it returns NaN; here the step is skipped.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np
import torch

from ..utils.transforms import flip_back, flip_permutation, get_udp_warp_matrix, udp_crop_to_image
from . import compiled as compiled_kernels
from .base import single_threaded_on_cpu
from .dark import band_rows, map_windows
from .gaussian import HeatmapCodec, get_max_preds

__all__ = ["UDPHeatmapCodec", "UDPOffsetCodec", "blurred_3x3", "blurred_argmax", "blurred_offsets", "certified_argmax",
           "certified_blurred_argmax", "gaussian_blur", "get_codec", "udp_taylor_refine"]


# --- blurs as OpenCV does them --------------------------------------------

@cache
def _cv2_kernel(ksize: int) -> tuple[float, ...]:
    """1-D kernel of ``cv2.GaussianBlur(ksize, sigma=0)``."""
    return tuple(float(v) for v in cv2.getGaussianKernel(ksize, 0, cv2.CV_64F).ravel())


def reflect101_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """Source index in 0 .. n-1 of any integer position `i` under OpenCV's
    BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``), repeated for far positions."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.abs() % period
    return torch.where(i >= n, period - i, i)


def _blur_matrix(n: int, ksize: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(n, n) matrix B with ``B @ v`` = v blurred along its length: the kernel as
    a band, the reflected border folded in."""
    return _blur_matrix64(n, ksize).to(dtype=dtype, device=device)


@cache
def _blur_matrix64(n: int, ksize: int) -> torch.Tensor:
    pad = ksize // 2
    kernel = torch.tensor(_cv2_kernel(ksize), dtype=torch.float64)
    rows = torch.arange(n).unsqueeze(1).expand(n, ksize)
    cols = reflect101_index(rows + torch.arange(-pad, pad + 1), n)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows.reshape(-1), cols.reshape(-1)), kernel.repeat(n), accumulate=True)
    return matrix


def gaussian_blur(maps: torch.Tensor, ksize: int) -> torch.Tensor:
    """``cv2.GaussianBlur(map, (ksize, ksize), 0)`` on every (H, W) map of an
    (..., H, W) tensor (reflect-101 border, any map size), as two matrix
    products: B_h @ map @ B_w^T; a new tensor."""
    h, w = maps.shape[-2:]
    rows = _blur_matrix(h, ksize, maps.dtype, maps.device)
    cols = _blur_matrix(w, ksize, maps.dtype, maps.device)
    return torch.matmul(rows, torch.matmul(maps, cols.T))


def _opencv_blur_stack(maps: np.ndarray, ksize: int) -> np.ndarray:
    """``cv2.GaussianBlur(map, (ksize, ksize), 0)`` of every (H, W) map of (M, H,
    W) `maps` in one OpenCV call: each map gets its own ``ksize // 2``
    reflect-101 rows above and below, the padded maps are stacked into one
    (M (H + 2 pad), W) image, and the padding rows are dropped after the blur.
    A kept row reads only its own map's rows, and OpenCV's separable filter
    computes every pixel from the same values in the same order, so the result
    is OpenCV's per-map blur bit for bit (tests/codecs/test_udp_windows.py)
    at a fraction of the per-call cost. Needs H > ksize // 2."""
    m, h, w = maps.shape
    pad = ksize // 2
    padded = np.empty((m, h + 2 * pad, w), dtype=maps.dtype)
    padded[:, pad:pad + h] = maps
    padded[:, :pad] = maps[:, pad:0:-1]  # rows pad .. 1
    padded[:, pad + h:] = maps[:, np.arange(h - 2, h - 2 - pad, -1)]  # rows h-2 .. h-1-pad
    blurred = cv2.GaussianBlur(padded.reshape(-1, w), (ksize, ksize), 0)
    return blurred.reshape(m, h + 2 * pad, w)[:, pad:pad + h]


def _opencv_exact(maps: torch.Tensor, ksize: int) -> bool:
    """Whether ``_blurred_reduce`` blurs `maps` with OpenCV itself (CPU float maps tall enough to pad)."""
    return maps.device.type == "cpu" and maps.dtype in (torch.float32, torch.float64) and maps.shape[-2] > ksize // 2


def _blurred_reduce(maps: torch.Tensor, ksize: int, reduce) -> list[torch.Tensor]:
    """``reduce`` applied to the blurred (N, K, H, W) maps as (maps, H, W) (a
    view, not a copy, where OpenCV blurs), a slice of maps at a time so that the blurred copy stays small
    (in cache on a CPU); returns reduce's outputs, reshaped to (N, K, ...).
    On the CPU the blur is OpenCV's own (``_opencv_blur_stack``, where
    ``_opencv_exact``), elsewhere two matrix products per map."""
    n, k, h, w = maps.shape
    flat = maps.reshape(n * k, h, w)
    if _opencv_exact(maps, ksize):
        step = max(1, (1 << 18) // (h * w))
        parts = [reduce(torch.from_numpy(_opencv_blur_stack(flat[start:start + step].contiguous().numpy(), ksize)))
                 for start in range(0, n * k, step)]
        return [torch.cat(column).reshape(n, k, *column[0].shape[1:]) for column in zip(*parts, strict=True)]
    rows = _blur_matrix(h, ksize, maps.dtype, maps.device)
    cols_t = _blur_matrix(w, ksize, maps.dtype, maps.device).T
    step = max(1, (1 << (20 if maps.device.type == "cpu" else 26)) // (h * w))
    parts = []
    for start in range(0, n * k, step):
        blurred = torch.matmul(rows, torch.matmul(flat[start:start + step], cols_t))
        parts.append(reduce(blurred))
    return [torch.cat(column).reshape(n, k, *column[0].shape[1:]) for column in zip(*parts, strict=True)]


#: where the float32 blur leaves another pixel (or zero) within this fraction
#: of a map's largest |value| of its maximum, rounding may decide the argmax
NEAR_TIE_RTOL = 1e-5


def _max_and_ambiguous(blurred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (H, W) map: flat index and value of the maximum, and whether the
    argmax (or the sign of the maximum) could change with the rounding of the
    blur: a second value, or zero, within ``NEAR_TIE_RTOL`` of the largest |value|."""
    blurred = blurred.reshape(blurred.shape[0], -1)
    top, idx = blurred.max(dim=1)
    tol = NEAR_TIE_RTOL * blurred.abs().amax(dim=1)
    near = (blurred >= (top - tol).unsqueeze(1)).sum(dim=1)
    return idx, top, (near > 1) | (top.abs() <= tol)


def _opencv_argmax(maps: torch.Tensor, ksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``np.argmax`` and maximum of ``cv2.GaussianBlur(map, (ksize, ksize), 0)``
    for each (H, W) map of (M, H, W) `maps`, in their dtype, on the CPU; results
    on the maps' device."""
    cpu = maps.cpu().numpy()
    idx = np.empty(len(cpu), dtype=np.int64)
    top = np.empty(len(cpu), dtype=cpu.dtype)
    for i, heatmap in enumerate(cpu):
        blurred = cv2.GaussianBlur(heatmap, (ksize, ksize), 0).ravel()
        idx[i] = int(np.argmax(blurred))
        top[i] = blurred[idx[i]]
    return torch.from_numpy(idx).to(maps.device), torch.from_numpy(top).to(maps.device)


def _first_max(blurred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (H, W) map: flat ``np.argmax`` (the first of tied maxima) and the maximum."""
    blurred = blurred.reshape(blurred.shape[0], -1)
    idx = torch.from_numpy(np.argmax(blurred.numpy(), axis=1))
    return idx, blurred.gather(1, idx.unsqueeze(1))[:, 0]


def blurred_argmax(maps: torch.Tensor, ksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat index (N, K) and value of the maximum of each blurred map, exactly
    as ``np.argmax(cv2.GaussianBlur(map))`` in the maps' dtype (UDP-Pose's
    ``get_final_preds``, lib/core/inference.py:142-147).

    The blur is done in torch; a map where another pixel comes within rounding
    (``NEAR_TIE_RTOL``) of its maximum, or whose maximum is about zero, is
    blurred again by OpenCV itself, because there the official argmax is
    decided by OpenCV's float32 rounding, which no exact or other-order sum
    reproduces (two near-equal peaks, a flat low-score map). Such maps are
    rare in a trained model's output, so the round trip to the CPU is cheap.
    On the CPU OpenCV blurs every map (``_opencv_blur_stack``): no near-tie
    test is needed."""
    if _opencv_exact(maps, ksize):
        idx, top = _blurred_reduce(maps, ksize, _first_max)
        return idx, top
    idx, top, ambiguous = _blurred_reduce(maps, ksize, _max_and_ambiguous)
    where = ambiguous.nonzero(as_tuple=True)
    if where[0].numel():
        exact_idx, exact_top = _opencv_argmax(maps[where[0], where[1]], ksize)
        idx = idx.index_put(where, exact_idx)
        top = top.index_put(where, exact_top.to(top.dtype))
    return idx, top


def certified_argmax(output: torch.Tensor, ksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``blurred_argmax`` of the classification maps ``output[:, 0::3]`` of an
    (N, 3K, H, W) offset output: from windows where ``certified_blurred_argmax``
    certifies the answer, from the whole-map blur on the other maps only."""
    output = output.contiguous()
    idx, top, ok = certified_blurred_argmax(output, 0, 3, ksize)
    where = (~ok).nonzero(as_tuple=True)
    if where[0].numel():
        full_idx, full_top = blurred_argmax(output[:, 0::3][where][None], ksize)
        idx = idx.index_put(where, full_idx[0])
        top = top.index_put(where, full_top[0].to(top.dtype))
    return idx, top


def _min_max(blurred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (H, W) map: minimum and maximum, read in place."""
    return blurred.amin(dim=(1, 2)), blurred.amax(dim=(1, 2))


def blurred_offsets(output: torch.Tensor, coords: torch.Tensor, ksize: int, dtype: torch.dtype) -> torch.Tensor:
    """``gaussian_blur(maps, ksize)`` of the x and y offset maps (channels 3k + 1,
    3k + 2) of a contiguous (N, 3K, H, W) ``output``, read at the integer
    ``coords`` (N, K, 2) only: (N, K, 2) in ``dtype``. Each value is one
    ``ksize`` x ``ksize`` window through the reflect-101 border
    (``reflect_windows``) times the 2-D kernel."""
    n, c, h, w = output.shape
    k = c // 3
    index = ((torch.arange(n, device=output.device) * c)[:, None, None] + 3 * torch.arange(k, device=output.device
                                                                                          )[None, :, None]
             + torch.tensor([1, 2], device=output.device)).reshape(-1)
    pad = ksize // 2
    x, y = (coords[..., i].long().unsqueeze(2).expand(n, k, 2).reshape(-1) for i in (0, 1))
    window = reflect_windows(output.reshape(n * c, h, w), index, y - pad, x - pad, ksize)
    taps = torch.tensor(_cv2_kernel(ksize), dtype=dtype, device=output.device)
    return (window.reshape(-1, ksize * ksize).to(dtype) @ torch.outer(taps, taps).reshape(-1)).reshape(n, k, 2)


# --- the offset decode's argmax from a window, with a certificate -----------

#: half-sizes of the certified argmax (``certified_blurred_argmax``): blurred
#: values exact on (2 CERT_EXACT + 1)^2 pixels around the raw argmax, the raw
#: peak window P of (2 CERT_PEAK + 1)^2, the bound from P on (2 CERT_RING + 1)^2
CERT_EXACT, CERT_PEAK, CERT_RING = 3, 3, 6


def _row_bands(source: torch.Tensor, index: torch.Tensor, rows0: torch.Tensor, size: int) -> torch.Tensor:
    """Rows ``rows0`` .. ``rows0 + size - 1`` (M,) of maps ``index`` (M,) of the
    contiguous (L, H, W) ``source``, whole width: (M, size, W), one fancy index
    of a strided view of the flat maps (each band lies inside its map)."""
    _, h, w = source.shape
    flat = source.reshape(-1)
    count = flat.numel() - (size - 1) * w
    starts = (index * h + rows0) * w
    if source.device.type == "cpu":
        step = flat.element_size()
        view = np.lib.stride_tricks.as_strided(flat.numpy(), (count, size, w), (step, w * step, step),
                                               writeable=False)
        return torch.from_numpy(view[starts.numpy()])
    return torch.as_strided(flat, (count, size, w), (1, w, 1))[starts]


def _folded_apply(values: torch.Tensor, n: int, ksize: int, outs0: torch.Tensor, outs: int, ins0: torch.Tensor
                  ) -> torch.Tensor:
    """``values`` (M, A, I) times, per map, the transposed (outs, I) block at
    (``outs0``, ``ins0``) (M,) of the (n, n) 1-D blur matrix with the
    reflect-101 border folded in (``_blur_matrix64``): (M, A, outs). The maps
    are sorted by their block, and each run of maps that share one (a few
    dozen runs: the block follows from the peak's row or column) is one
    matrix product."""
    m, a, ins = values.shape
    table = _folded_blocks(n, ksize, outs, ins).to(device=values.device, dtype=values.dtype)
    key = outs0 * n + ins0
    order = torch.argsort(key)
    runs = torch.unique_consecutive(key[order], return_counts=True)[1].tolist()
    ordered = values[order]
    done = torch.empty(m, a, outs, dtype=values.dtype, device=values.device)
    start = 0
    for count in runs:
        lead = int(order[start])
        block = table[int(outs0[lead]), int(ins0[lead])]
        done[start:start + count] = (ordered[start:start + count].reshape(-1, ins) @ block.T).reshape(count, a, outs)
        start += count
    return torch.empty_like(done).index_copy_(0, order, done)


@cache
def _folded_blocks(n: int, ksize: int, rows: int, cols: int) -> torch.Tensor:
    """(n - rows + 1, n - cols + 1, rows, cols): every block of ``_blur_matrix64(n, ksize)``."""
    return _blur_matrix64(n, ksize).unfold(0, rows, 1).unfold(1, cols, 1).contiguous()


def reflect_windows(maps: torch.Tensor, index: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int
                    ) -> torch.Tensor:
    """The ``size`` x ``size`` windows at (``top``, ``left``) (M,) of maps ``index``
    (M,) of (L, H, W) ``maps``, pixels off the map taken through OpenCV's
    reflect-101 border (``reflect101_index``): (M, size, size). A window inside
    its map is copied in one index op (``dark.map_windows``); the others are
    read from the window moved inside the map (every reflected pixel lies in
    it), or pixel by pixel where the map is smaller than the window."""
    l, h, w = maps.shape
    inner = (left >= 0) & (left + size <= w) & (top >= 0) & (top + size <= h)
    window = torch.empty(index.shape[0], size, size, dtype=maps.dtype, device=maps.device)
    sel = inner.nonzero()[:, 0]
    if sel.numel():
        window.index_copy_(0, sel, map_windows(maps, index[sel], top[sel], left[sel], size))
    rest = (~inner).nonzero()[:, 0]
    if rest.numel():
        span = torch.arange(size, device=maps.device)
        rows = reflect101_index(top[rest, None] + span, h)
        cols = reflect101_index(left[rest, None] + span, w)
        if size <= min(h, w):
            top_in, left_in = top[rest].clamp(0, h - size), left[rest].clamp(0, w - size)
            moved = map_windows(maps, index[rest], top_in, left_in, size)
            count = rest.numel()
            moved = moved.gather(1, (rows - top_in[:, None])[:, :, None].expand(count, size, size))
            moved = moved.gather(2, (cols - left_in[:, None])[:, None, :].expand(count, size, size))
            window.index_copy_(0, rest, moved)
        else:
            pix = (index[rest, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]
            window[rest] = maps.reshape(-1)[pix]
    return window


@cache
def _weight_tables(n: int, ksize: int, ins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every run start s of ``ins`` inputs on a length-``n`` axis: the largest
    weight an output pixel puts on the run (n - ins + 1,), and the largest
    over outputs before j / from j on, (n - ins + 1, n + 1) each (float64)."""
    cumulative = torch.nn.functional.pad(_blur_matrix64(n, ksize).cumsum(1), (1, 0))  # (n, n + 1)
    starts = torch.arange(n - ins + 1)
    weight = (cumulative[:, starts + ins] - cumulative[:, starts]).T  # (runs, n): weight of output j on run s
    zero = torch.zeros(len(starts), 1, dtype=weight.dtype)
    before = torch.cat([zero, weight.cummax(1).values], 1)
    after = torch.cat([weight.flip(1).cummax(1).values.flip(1), zero], 1)
    return weight.amax(1), before, after


def _weight_on(n: int, ksize: int, in0: torch.Tensor, ins: int, skip0: torch.Tensor, skips: int,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest weight that one output pixel of a length-``n`` axis puts on
    the inputs ``in0`` + 0 .. ins-1 (M,): over every output, and over the
    outputs outside ``skip0`` + 0 .. skips-1; two (M,) in ``dtype`` (table
    look-ups, ``_weight_tables``)."""
    whole, before, after = (t.to(device=in0.device, dtype=dtype) for t in _weight_tables(n, ksize, ins))
    return whole[in0], torch.maximum(before[in0, skip0], after[in0, skip0 + skips])


def _inside(pos: torch.Tensor, start: torch.Tensor, size: int) -> torch.Tensor:
    """(M, P) whether positions (P,) + offsets lie in ``start`` .. ``start + size - 1`` (M,)."""
    return (pos >= start[:, None]) & (pos < (start + size)[:, None])


def certified_blurred_argmax(output: torch.Tensor, first: int, stride: int, ksize: int
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``np.argmax`` (flat) and maximum of ``cv2.GaussianBlur(map, (ksize, ksize),
    0)`` for the maps ``output[:, first::stride]`` (N, K, H, W) of the
    contiguous (N, C, H, W) ``output``, from windows around each raw argmax,
    and per map whether that answer is certified: (N, K) each; the others need
    the whole-map blur (``blurred_argmax``).

    The blur is a convex combination of map pixels (reflect-101 folds into
    the weights, ``_blur_matrix64``), so for U >= map pixelwise, blur(U) >= the
    blurred map. U is the map on the raw peak window P ((2 CERT_PEAK + 1)^2
    around the raw argmax) and R, the raw maximum outside P, elsewhere:
    blur(U) = R + blur((map - R) on P). The blurred map is computed on E
    ((2 CERT_EXACT + 1)^2 around the argmax, from the (2 CERT_EXACT + ksize)^2
    raw window through the reflect-101 border, one product with the 2-D band,
    in the maps' precision), blur(U) on the square of half-size CERT_RING
    around it (the folded weights per map), and beyond
    that square R + max(map - R on P, 0) times the largest weight a pixel there
    puts on P (a product of row and column weights). The best value of E is the
    official argmax if every bound stays below it and it clears the second
    best of E and zero (the sign decides UDP's (0, 0)) by ``NEAR_TIE_RTOL`` of
    the largest |value| seen, so that OpenCV's float32 rounding cannot change
    the order; E is a rectangle, so its first maximum in row-major order is
    the map's. R comes from maxima of blocks of rows (the pass that finds the
    raw argmax) and the whole-width raw rows that E reads, which P lies in.
    Maps smaller than the windows are never certified."""
    n, c, h, w = output.shape
    k = len(range(first, c, stride))
    pad = ksize // 2
    e, p, r = 2 * CERT_EXACT + 1, 2 * CERT_PEAK + 1, 2 * CERT_RING + 1
    span = e + 2 * pad
    dev = output.device
    rows_per_block = next(b for b in (4, 2, 1) if h % b == 0)
    if min(h, w) < max(span, r):
        empty = torch.zeros(n, k, dtype=torch.long, device=dev)
        return empty, empty.to(output.dtype), empty.bool()
    source = output.reshape(n * c, h, w)
    index = ((torch.arange(n, device=dev) * c)[:, None] + first + stride * torch.arange(k, device=dev)).reshape(-1)
    m = n * k
    # raw argmax (np.argmax's, the first): maxima of blocks of rows, then the first block holding the maximum
    blocks = output[:, first::stride].reshape(n, k, h // rows_per_block, rows_per_block * w).amax(3).reshape(m, -1)
    peak = blocks.amax(1)
    block = (blocks == peak[:, None]).to(torch.int8).argmax(1)
    inside = _row_bands(source, index, block * rows_per_block, rows_per_block).reshape(m, -1).argmax(1)
    cy, cx = block * rows_per_block + torch.div(inside, w, rounding_mode="floor"), inside % w
    # E and the ring kept inside the map; the raw rows E reads (whole width), P inside them
    ey0, ex0 = (cy - CERT_EXACT).clamp(0, h - e), (cx - CERT_EXACT).clamp(0, w - e)
    r0 = (ey0 - pad).clamp(0, h - span)
    py0, px0 = (cy - CERT_PEAK).clamp(r0, r0 + span - p), (cx - CERT_PEAK).clamp(0, w - p)
    qy0, qx0 = (cy - CERT_RING).clamp(0, h - r), (cx - CERT_RING).clamp(0, w - r)
    rows = _row_bands(source, index, r0, span)  # (M, span, W), a copy
    # E's raw window through the reflect-101 border: its columns, then (near the top or bottom) its rows
    steps = torch.arange(span, device=dev)
    cols = reflect101_index(ex0[:, None] - pad + steps, w)
    window = rows.gather(2, cols[:, None, :].expand(m, span, span))  # (M, span, span) [y, x]
    off = ((ey0 - pad < 0) | (ey0 - pad + span > h)).nonzero()[:, 0]
    if off.numel():
        rel = reflect101_index(ey0[off, None] - pad + steps, h) - r0[off, None]
        window[off] = window[off].gather(1, rel[:, :, None].expand(-1, span, span))
    # R: the blocks not wholly in those rows, and those rows outside P
    starts = torch.arange(blocks.shape[1], device=dev) * rows_per_block
    span_p = torch.arange(p, device=dev)
    at_p = (((py0 - r0)[:, None, None] + span_p[:, None]) * w + px0[:, None, None] + span_p).reshape(m, p * p)
    flat_rows = rows.reshape(m, span * w)
    peak_win = flat_rows.gather(1, at_p).reshape(m, p, p)
    flat_rows.scatter_(1, at_p, -torch.inf)  # P is left out of R
    whole = (starts >= r0[:, None]) & (starts + rows_per_block <= (r0 + span)[:, None])
    rest = torch.maximum(blocks.masked_fill(whole, -torch.inf).amax(1), flat_rows.amax(1))
    # blurred values on E: one product with the 2-D band
    band = band_rows(e, span, torch.tensor(_cv2_kernel(ksize), dtype=output.dtype, device=dev))
    exact = window.reshape(m, span * span) @ torch.kron(band, band).T  # (M, e * e), row-major
    at = exact.argmax(1)
    best = exact.gather(1, at[:, None])[:, 0]
    second = exact.scatter(1, at[:, None], -torch.inf).amax(1)
    # blur(U) = R + blur((map - R) on P) on the ring, with the folded weights of each map
    excess = peak_win - rest[:, None, None]
    across = _folded_apply(excess, w, ksize, qx0, r, px0)  # (M, p, r) [P row, ring x]
    ring = rest[:, None, None] + _folded_apply(across.transpose(1, 2), h, ksize, qy0, r, py0).transpose(1, 2)
    pos = torch.arange(r, device=dev)
    in_e = _inside(pos + qy0[:, None], ey0, e)[:, :, None] & _inside(pos + qx0[:, None], ex0, e)[:, None, :]
    ring_bound = ring.masked_fill(in_e, -torch.inf).amax((1, 2))
    # beyond the ring
    all_y, out_y = _weight_on(h, ksize, py0, p, qy0, r, output.dtype)
    all_x, out_x = _weight_on(w, ksize, px0, p, qx0, r, output.dtype)
    far = rest + excess.amax((1, 2)).clamp(min=0) * torch.maximum(out_y * all_x, all_y * out_x)
    scale = torch.stack([peak.abs(), window.amin((1, 2)).abs(), rest.abs()]).amax(0)
    tol = NEAR_TIE_RTOL * scale
    ok = ((best - second > tol) & (best.abs() > tol) & (ring_bound < best - tol) & (far < best - tol)
          & torch.isfinite(scale))
    idx = (ey0 + torch.div(at, e, rounding_mode="floor")) * w + ex0 + at % e
    return idx.reshape(n, k), best.reshape(n, k), ok.reshape(n, k)

# --- the Taylor step of UDP-Pose's gaussian post-processing ----------------

def blurred_3x3(heatmaps: torch.Tensor, coords: torch.Tensor, ksize: int, dtype: torch.dtype) -> torch.Tensor:
    """``gaussian_blur(heatmaps, ksize)`` on the 3x3 pixels around the integer
    `coords` (N, K, 2) of (N, K, H, W) `heatmaps`, computed in `dtype`: (N, K, 9),
    row-major [y][x]. Neighbours off the map repeat the edge pixel (UDP-Pose's
    edge-padded log map, lib/core/inference.py:71-79).

    The nine values read the (3 + 2 pad)^2 raw pixels around the point: one
    window per map, copied in one index op where it lies inside the map
    (``dark.map_windows``), else gathered through OpenCV's reflect-101 border
    (``reflect101_index``); it is blurred by two products with one
    (3, 3 + 2 pad) band. A neighbour off the map then takes the edge pixel's value."""
    n, k, h, w = heatmaps.shape
    pad = ksize // 2
    size = 3 + 2 * pad
    maps = heatmaps.reshape(n * k, h, w)
    px, py = coords[..., 0].reshape(-1).long(), coords[..., 1].reshape(-1).long()
    window = reflect_windows(maps, torch.arange(n * k, device=maps.device), py - 1 - pad, px - 1 - pad, size)
    border = (px - 1 - pad < 0) | (px + 1 + pad >= w) | (py - 1 - pad < 0) | (py + 1 + pad >= h)
    taps = torch.tensor(_cv2_kernel(ksize), dtype=dtype, device=heatmaps.device)
    band = band_rows(3, size, taps)  # band[d, j]: weight of window pixel j for output pixel d
    across = (window.to(dtype).reshape(-1, size) @ band.T).reshape(-1, size, 3)  # [raw row, out x]
    vals = band @ across  # [out y, out x]
    if bool(border.any()):  # a neighbour off the map repeats the edge pixel
        vals[:, :, 0] = torch.where((px == 0)[:, None], vals[:, :, 1], vals[:, :, 0])
        vals[:, :, 2] = torch.where((px == w - 1)[:, None], vals[:, :, 1], vals[:, :, 2])
        vals[:, 0] = torch.where((py == 0)[:, None], vals[:, 1], vals[:, 0])
        vals[:, 2] = torch.where((py == h - 1)[:, None], vals[:, 1], vals[:, 2])
    return vals.reshape(n, k, 9)


def udp_taylor_refine(heatmaps: torch.Tensor, coords: torch.Tensor, maxvals: torch.Tensor, kernel: int = 7,
                      rescale: bool = True, ridge: float = 0.0) -> torch.Tensor:
    """One Newton step on the log of the blurred heatmaps from the integer
    argmax `coords` (N, K, 2); returns refined (N, K, 2) in float64 (float32 on
    MPS). `maxvals` (N, K, 1) are the raw maxima.

    Per map: blur ``kernel`` x ``kernel``; with `rescale` (UDP-Pose master's
    ``post``, lib/core/inference.py:59-68) map it to
    (b - min b) / (max b - min b) * max(raw); clip to [0.001, 50], log;
    derivatives by central differences with the map's edge pixels repeated
    outside it; shift = -(H + ridge I)^-1 grad (mmpose's ``post_dark_udp`` adds
    ridge = float32 eps), zero where that is singular (or the map was constant)."""
    n, k, h, w = heatmaps.shape
    fdt = torch.float32 if heatmaps.device.type == "mps" else torch.float64
    # the nine values the step uses are blurred in float64, where the log
    # amplifies rounding; min and max of each blurred map from a full blur
    vals = blurred_3x3(heatmaps, coords, kernel, fdt)
    if rescale:
        bmin, bmax = (v.to(fdt).unsqueeze(2) for v in _blurred_reduce(heatmaps, kernel, _min_max))
        vals = (vals - bmin) / (bmax - bmin) * maxvals.to(fdt)
    p = vals.clamp(0.001, 50).log().reshape(n, k, 3, 3)  # p[..., y, x]
    i0 = p[..., 1, 1]
    dx = 0.5 * (p[..., 1, 2] - p[..., 1, 0])
    dy = 0.5 * (p[..., 2, 1] - p[..., 0, 1])
    dxx = p[..., 1, 2] - 2 * i0 + p[..., 1, 0]
    dyy = p[..., 2, 1] - 2 * i0 + p[..., 0, 1]
    dxy = 0.5 * (p[..., 2, 2] - p[..., 1, 2] - p[..., 2, 1] + 2 * i0 - p[..., 1, 0] - p[..., 0, 1] + p[..., 0, 0])
    dxx, dyy = dxx + ridge, dyy + ridge
    det = dxx * dyy - dxy * dxy
    ok = det != 0
    safe = torch.where(ok, det, torch.ones_like(det))
    shift_x = (dyy * dx - dxy * dy) / safe
    shift_y = (dxx * dy - dxy * dx) / safe
    shift = torch.stack([shift_x, shift_y], dim=2)
    shift = torch.where((ok.unsqueeze(2) & torch.isfinite(shift)), shift, torch.zeros_like(shift))
    return coords.to(fdt) - shift


def _float(x: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (AMP) are decoded in float32."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# --- codecs ------------------------------------------------------------------

#: the two published UDP decodes (``TEST.UDP_FLAVOUR``): UDP-Pose master and
#: mmpose's (0.x, mmpose/core/evaluation/top_down_eval.py)
FLAVOURS = ("master", "mmpose")
MASTER_KERNEL = 7  # master: Gaussian Taylor blur 7; offset: classification 15, offsets 7
MMPOSE_KERNEL = 11  # mmpose's keypoints_from_heatmaps default ``kernel`` (test_cfg modulate_kernel)


class _UDPGeometry(HeatmapCodec):
    """Crop matrix and back-mapping shared by both UDP target types.
    ``image_size`` and ``heatmap_size`` are (width, height). ``compiled`` (``TEST.COMPILE``)
    decodes float32 CPU outputs with the compiled kernels (``codecs.compiled``: master's
    Gaussian decode, both flavours' offset decode), ``compiled_threads`` OpenMP threads; the
    plain path otherwise, and for the maps a kernel hands back."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], flavour: str = "master",
                 kernel: int = 0, compiled: bool = False, compiled_threads: int = 1):
        if flavour not in FLAVOURS:
            raise ValueError(f"TEST.UDP_FLAVOUR must be one of {list(FLAVOURS)}, got {flavour!r}")
        if flavour == "master" and kernel not in (0, MASTER_KERNEL):
            raise ValueError(f"TEST.BLUR_KERNEL {kernel}: UDP-Pose master's blurs are fixed (Gaussian 7, offset "
                             f"15/7); a configurable kernel is TEST.UDP_FLAVOUR mmpose's")
        kernel = kernel or (MASTER_KERNEL if flavour == "master" else MMPOSE_KERNEL)
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"TEST.BLUR_KERNEL must be odd and positive for UDP, got {kernel}")
        self.flavour, self.kernel = flavour, int(kernel)
        self.compiled, self.compiled_threads = bool(compiled), int(compiled_threads)
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        if (self.heatmap_size < 2).any() or (self.image_size < 2).any():
            raise ValueError(f"UDP needs image and heatmap sizes of at least 2 px, got {list(image_size)} "
                             f"and {list(heatmap_size)}")
        # UDP-Pose's feat_stride: pixel intervals, not pixels
        self.stride = (self.image_size - 1.0) / (self.heatmap_size - 1.0)

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """Image -> crop 2x3 matrix with UDP's (size - 1) geometry, rotation included."""
        return get_udp_warp_matrix(center, scale, rotation, output_size)

    def _mmpose_missing(self, coords: torch.Tensor, maxvals: torch.Tensor) -> torch.Tensor:
        """mmpose's ``_get_max_preds`` puts a joint whose maximum is <= 0 at
        heatmap (-1, -1) (master: (0, 0), refined like any other). Deliberate
        difference: mmpose then still refines it (Taylor step) or adds offsets,
        reading at flat index -1 - W of its flattened maps, i.e. another
        joint's pixels; here it stays at (-1, -1), which the image mapping moves
        like any point."""
        if self.flavour == "master":
            return coords
        return torch.where(maxvals > 0, coords, torch.full_like(coords, -1.0))

    @staticmethod
    def _empty(maps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = torch.float32 if maps.device.type == "mps" else torch.float64
        return maps.new_zeros((0, k, 2), dtype=dtype), maps.new_zeros((0, k, 1))

    @staticmethod
    def _to_image(coords: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, maps: torch.Tensor
                  ) -> torch.Tensor:
        """Heatmap coordinates -> image, with the size of the maps decoded."""
        dtype = torch.float32 if maps.device.type == "mps" else torch.float64
        size = (int(maps.shape[3]), int(maps.shape[2]))
        return udp_crop_to_image(coords.to(dtype), center.to(maps.device), scale.to(maps.device), size)


class UDPHeatmapCodec(_UDPGeometry):
    """UDP Gaussian heatmaps (``MODEL.TARGET_TYPE: udp``)."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 post_process: bool = True, flavour: str = "master", kernel: int = 0, compiled: bool = False,
                 compiled_threads: int = 1):
        super().__init__(image_size, heatmap_size, flavour, kernel, compiled, compiled_threads)
        self.sigma = float(sigma)
        self.post_process = post_process

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop-pixel joints (K, >=2) and visibility (K, >=1) -> target (K, H, W)
        float32 and target weight (K, 1) float32, as the official UDP
        ``generate_target``: window around ``int(x / stride + 0.5)`` of
        half-width 3 sigma (``int`` truncates towards zero), Gaussian centred at
        the exact ``x / stride``; a joint whose window misses the map gets
        weight 0, an invisible joint an all-zero map."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        tmp_size = self.sigma * 3
        size = 2 * tmp_size + 1
        g_len = len(np.arange(0, size, 1))
        weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        mu_ac_x = np.asarray(joints[:, 0], np.float64) / self.stride[0]
        mu_ac_y = np.asarray(joints[:, 1], np.float64) / self.stride[1]
        mu_x, mu_y = (mu_ac_x + 0.5).astype(np.int64), (mu_ac_y + 0.5).astype(np.int64)
        ul_x, ul_y = np.trunc(mu_x - tmp_size).astype(np.int64), np.trunc(mu_y - tmp_size).astype(np.int64)
        br_x, br_y = np.trunc(mu_x + tmp_size + 1).astype(np.int64), np.trunc(mu_y + tmp_size + 1).astype(np.int64)
        weight[(ul_x >= w) | (ul_y >= h) | (br_x < 0) | (br_y < 0)] = 0

        # g[i] = exp(-((i - x0)^2 + ...)) sits at pixel ul + i, x0 = size//2 + (mu_ac - mu)
        x0 = (size // 2) + (mu_ac_x - mu_x)
        y0 = (size // 2) + (mu_ac_y - mu_y)
        xs = np.arange(w)[None, :] - ul_x[:, None]  # (K, W) index into g
        ys = np.arange(h)[None, :] - ul_y[:, None]
        in_x = (xs >= 0) & (xs < np.minimum(br_x - ul_x, g_len)[:, None])
        in_y = (ys >= 0) & (ys < np.minimum(br_y - ul_y, g_len)[:, None])
        gx = (xs - x0[:, None]) ** 2
        gy = (ys - y0[:, None]) ** 2
        target = np.exp(-(gy[:, :, None] + gx[:, None, :]) / (2 * self.sigma ** 2))
        mask = in_y[:, :, None] & in_x[:, None, :] & (weight[:, 0] > 0.5)[:, None, None]
        return np.where(mask, target, 0).astype(np.float32), weight

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + ``meta['center']``/``meta['scale']`` (N, 2) ->
        image coordinates (N, K, 2) float64 and raw maxima (N, K, 1)."""
        center, scale = meta["center"], meta["scale"]
        heatmaps = _float(output.detach())
        if heatmaps.shape[0] == 0:
            return self._empty(heatmaps, heatmaps.shape[1])
        master = self.post_process and self.flavour == "master"
        if master and self.compiled and compiled_kernels.usable(heatmaps, self.kernel):
            n, k, h, w = heatmaps.shape
            maxvals, coords, redo = compiled_kernels.udp_gaussian(heatmaps.reshape(n * k, h, w), self.kernel,
                                                                  self.compiled_threads)
            todo = redo.nonzero()[:, 0]
            if todo.numel():  # NaN maps: the plain path
                sub = heatmaps.reshape(n * k, h, w)[todo][None]
                sub_coords, sub_max = get_max_preds(sub)
                coords[todo] = udp_taylor_refine(sub, sub_coords, sub_max)[0]
                maxvals[todo] = sub_max[0, :, 0]
            coords, maxvals = coords.reshape(n, k, 2), maxvals.reshape(n, k, 1)
            return self._to_image(coords, center, scale, heatmaps), maxvals
        coords, maxvals = get_max_preds(heatmaps)
        if master:
            coords = udp_taylor_refine(heatmaps, coords, maxvals)
        elif self.post_process:
            coords = udp_taylor_refine(heatmaps, coords, maxvals, self.kernel, rescale=False,
                                       ridge=float(np.finfo(np.float32).eps))
        return self._to_image(self._mmpose_missing(coords, maxvals), center, scale, heatmaps), maxvals

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Unbiased flip: mirror and swap left/right; never shifted (UDP-Pose
        ignores ``TEST.SHIFT_HEATMAP``)."""
        return flip_back(output_flipped, flip_pairs, shift=False)


class UDPOffsetCodec(_UDPGeometry):
    """UDP classification + offset maps (``MODEL.TARGET_TYPE: offset``); the
    network has 3 * NUM_JOINTS output channels, [cls, dx, dy] per joint."""

    channels_per_joint = 3

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], kpd: float = 4.0,
                 flavour: str = "master", kernel: int = 0, compiled: bool = False, compiled_threads: int = 1):
        super().__init__(image_size, heatmap_size, flavour, kernel, compiled, compiled_threads)
        if kpd <= 0:
            raise ValueError(f"LOSS.KPD must be positive, got {kpd}")
        self.kpd = float(kpd)

    def loss_name(self, cfg) -> str:
        """UDP's classification + offset loss; OHKM has no offset counterpart."""
        if cfg.LOSS.USE_OHKM:
            raise ValueError("LOSS.USE_OHKM is not available for MODEL.TARGET_TYPE offset (UDP); "
                             "its loss is JointsOffsetMSELoss")
        return "JointsOffsetMSELoss"

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop-pixel joints (K, >=2), visibility (K, >=1) -> target (3K, H, W)
        float32 and target weight (K, 1) = visibility (no bounds check, as
        officially). For a visible joint at heatmap position mu = x / stride,
        pixels g with |mu - g| <= KPD get cls 1 and offsets (mu - g) / KPD."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        k = len(joints)
        weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        mu_x = np.asarray(joints[:, 0], np.float64) / self.stride[0]
        mu_y = np.asarray(joints[:, 1], np.float64) / self.stride[1]
        off_x = np.broadcast_to((mu_x[:, None] - np.arange(w)[None, :]) / self.kpd, (h, k, w)).transpose(1, 0, 2)
        off_y = np.broadcast_to((mu_y[:, None] - np.arange(h)[None, :]) / self.kpd, (w, k, h)).transpose(1, 2, 0)
        keep = ((off_x ** 2 + off_y ** 2) <= 1) & (weight[:, 0] > 0.5)[:, None, None]
        target = np.zeros((k, 3, h, w), dtype=np.float32)
        target[:, 0] = keep
        target[:, 1] = np.where(keep, off_x, 0)
        target[:, 2] = np.where(keep, off_y, 0)
        return target.reshape(3 * k, h, w), weight

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3K, H, W) output + ``meta['center']``/``meta['scale']`` (N, 2) ->
        image coordinates (N, K, 2) float64 and scores (N, K, 1): the blurred
        classification maxima."""
        center, scale = meta["center"], meta["scale"]
        output = _float(output.detach())
        if output.shape[1] % 3:
            raise ValueError(f"offset output needs 3 channels per joint, got {output.shape[1]} channels")
        if output.shape[0] == 0:
            return self._empty(output, output.shape[1] // 3)
        if self.compiled and compiled_kernels.usable(output, 2 * self.kernel + 1):
            n, c, h, w = output.shape
            maxvals, coords, redo = compiled_kernels.udp_offset(output, 2 * self.kernel + 1, self.kernel, self.kpd,
                                                                NEAR_TIE_RTOL, self.compiled_threads)
            where = redo.nonzero(as_tuple=True)
            if where[0].numel():  # NaN maps and near ties of the blurred maximum: the plain path
                sub = output.reshape(n, c // 3, 3, h, w)[where].reshape(1, -1, h, w)
                sub_coords, sub_max = self._plain_offsets(sub)
                coords[where], maxvals[where] = sub_coords[0], sub_max[0]
        else:
            coords, maxvals = self._plain_offsets(output)
        maxvals = maxvals.unsqueeze(2)
        return self._to_image(self._mmpose_missing(coords, maxvals), center, scale, output), maxvals

    def _plain_offsets(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmap coordinates (N, K, 2) and blurred classification maxima (N, K) of an (N, 3K, H, W)
        output, in torch, numpy and OpenCV: the certified blurred argmax, then the offsets blurred there."""
        fdt = torch.float32 if output.device.type == "mps" else torch.float64
        idx, maxvals = certified_argmax(output, 2 * self.kernel + 1)
        maxvals = maxvals.to(output.dtype)
        w = output.shape[3]
        coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=2)
        coords = coords * (maxvals > 0).unsqueeze(2)  # (0, 0) where no positive maximum, as officially
        return coords.to(fdt) + blurred_offsets(output.contiguous(), coords, self.kernel, fdt) * self.kpd, maxvals

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mirror every map, negate the x offsets, swap left/right joints
        (their three channels together); no shift."""
        n, c, h, w = output_flipped.shape
        sign = torch.tensor([1.0, -1.0, 1.0], dtype=output_flipped.dtype, device=output_flipped.device)
        out = output_flipped.flip(3).reshape(n, c // 3, 3, h, w) * sign.view(1, 1, 3, 1, 1)
        return out[:, flip_permutation(c // 3, flip_pairs)].reshape(n, c, h, w)


def get_codec(cfg) -> UDPHeatmapCodec | UDPOffsetCodec:
    flavour, kernel = cfg.TEST.UDP_FLAVOUR, cfg.TEST.BLUR_KERNEL
    if cfg.MODEL.TARGET_TYPE == "offset":
        return UDPOffsetCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.LOSS.KPD, flavour, kernel,
                              compiled=cfg.TEST.COMPILE)
    return UDPHeatmapCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                           post_process=cfg.TEST.POST_PROCESS, flavour=flavour, kernel=kernel,
                           compiled=cfg.TEST.COMPILE)
