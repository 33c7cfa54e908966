"""DARK: distribution-aware coordinate representation (Zhang et al., CVPR 2020;
the official code is DarkPose). Chosen by ``MODEL.TARGET_TYPE: gaussian`` with
``TEST.BLUR_KERNEL`` > 0, as in DarkPose's YAMLs, or by ``MODEL.TARGET_TYPE: dark``
(then a ``BLUR_KERNEL`` of 0 means DarkPose's default, 11).

It has four parts, each equal to DarkPose:

- **Geometry.** DarkPose's affine transform puts the crop centre at
  ``(size - 1) / 2`` and zooms by ``(size_w - 1) / (box_w - 1)``, where
  ``box_w = scale_w * 200`` (HRNet uses ``size / 2`` and ``size_w / box_w``). That
  is HRNet's transform with one pixel taken off both the box and the output.
  ``crop_matrix`` calls the shared ``get_affine_transform`` with ``margin=1``,
  which takes the pixel off after ``s * 200`` in float32 as DarkPose does, so
  crops equal DarkPose's bit for bit (``scale - 1/200`` first rounded
  differently: matrices 1e-5 apart, some crop pixels one grey level off). The
  inverse in ``decode`` is ``crop_to_image`` with ``scale - 1/200`` and
  ``size - 1`` in float64. The official checkpoints were trained on these crops. DarkPose's
  COCO reader also puts box centres at ``x + (w - 1) / 2``: ``box_center``
  says so, and the datasets and the API cut boxes by it unless
  ``DATASET.BOX_CENTER`` names another rule.
- **Encode.** An unbiased Gaussian target. DarkPose maps each joint into heatmap
  pixels with its own affine transform, keeps the sub-pixel centre ``mu``
  without rounding, and draws ``exp(-|p - mu|^2 / 2 sigma^2)`` over the whole
  map, with no 3-sigma window. A joint gets weight 0 when the window
  ``[int(mu - 3 sigma), int(mu + 3 sigma + 1)]`` lies entirely off the map. ``int`` is
  truncation towards zero. Here the crop-pixel joints are mapped into heatmap
  pixels by the same geometry, ``q = (p - (img - 1)/2) * (hm_w - 1)/(img_w - 1)
  + (hm - 1)/2``, which equals DarkPose's heatmap transform of the image joint.
- **Decode.** The argmax and its score come from the raw map. Then:
  1. Blur each map with OpenCV's Gaussian of size ``TEST.BLUR_KERNEL`` (sigma 0
     means OpenCV derives it from the size; 11 gives sigma 2). The map is
     zero-padded by ``(kernel - 1) // 2`` pixels first, then rescaled so that its
     maximum equals the raw map's maximum.
  2. Clamp at 1e-10 and take the log.
  3. Where ``1 < x < W - 2`` and ``1 < y < H - 2`` and the Hessian's determinant is
     not 0, take one Newton step ``-H^-1 g``. The gradient uses central
     differences, the Hessian uses two-pixel central differences. The step is
     solved in float64; DarkPose solves it in float32 (``np.matrix.I``). The two
     can differ by more than 1e-3 px only where the step is **Taylor-singular**,
     ``|det H| < 1e-4 * |H|_F^2`` (condition number above ~4e4; seen once on
     the shared COCO samples: a step of 3265 px off the map, 1.4e-3 px apart).
     Everywhere else the whole DarkPose test flow gives DarkPose's results file
     to its rounding (``tests/tools/test_official_results_files.py``,
     docs/models.md "Official results files").
  4. Map back to the image with the inverse transform.

  This is batched in torch on the heatmaps' device, without per-joint loops and
  without touching the input. The official ``gaussian_blur`` blurs its
  argument in place.
- **Flip test.** DarkPose's ``validate`` never shifts the flipped heatmaps, and
  its config has no ``SHIFT_HEATMAP`` key. With the ``size - 1`` geometry no shift
  is needed: crop column ``x`` mirrors to ``W_img - 1 - x``, which is heatmap
  column ``W_hm - 1 - q``, exactly what ``flip`` does to the heatmap. So the
  codec shifts only when ``TEST.SHIFT_HEATMAP`` is True. posezoo's default is
  False, which is DarkPose's rule. An HRNet-style YAML that sets it True gets
  HRNet's one-pixel shift, which is a bias under this geometry.
"""
from __future__ import annotations

import functools
from typing import Sequence

import cv2
import numpy as np
import torch

from ..utils.transforms import PIXEL_STD, crop_to_image, flip_back, get_affine_transform
from . import compiled as compiled_kernels
from .base import single_threaded_on_cpu
from .gaussian import HeatmapCodec, map_windows, peak_coords, peak_windows  # noqa: F401 (udp.py imports map_windows from here)

LOG_FLOOR = 1e-10  # DarkPose clamps the modulated map here before the log
COMPILED_MAX_KERNEL = 35  # the compiled kernel's window buffer holds kernel + 4 <= 40 pixels a side

def _float64_or_32(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _band(size: int, taps: torch.Tensor) -> torch.Tensor:
    """(size, size) matrix of a zero-padded 1-D filter: row i reads input j with
    weight taps[j - i + radius]; taps that fall off the map multiply zeros."""
    radius = (len(taps) - 1) // 2
    offset = torch.arange(size)[None, :] - torch.arange(size)[:, None] + radius
    inside = (offset >= 0) & (offset < len(taps))
    return torch.where(inside, taps[offset.clamp(0, len(taps) - 1)], 0.0)


def _blurred_chunks(heatmaps: torch.Tensor, kernel: int, maps_per_chunk: int = 1024):
    """Yield (first map, blurred maps (m, H, W) in the heatmaps' dtype) over the
    N*K maps. Each map is blurred with ``cv2.getGaussianKernel(kernel, 0)`` along
    both axes, with zeros outside the map, in double precision where the device
    allows, then rounded to the heatmaps' dtype. This is what DarkPose's
    ``gaussian_blur`` computes with ``cv2.GaussianBlur`` on a zero-padded double
    copy, to the last bit in float32. Chunks keep the double copy small."""
    h, w = heatmaps.shape[2:]
    work = _float64_or_32(heatmaps.device)
    taps = torch.from_numpy(cv2.getGaussianKernel(kernel, 0, ktype=cv2.CV_64F)[:, 0])
    band_h, band_w_t = _band(h, taps).to(heatmaps.device, work), _band(w, taps).T.to(heatmaps.device, work)
    maps = heatmaps.reshape(-1, h, w)
    for start in range(0, maps.shape[0], maps_per_chunk):
        chunk = maps[start:start + maps_per_chunk].to(work)
        yield start, (band_h @ (chunk @ band_w_t)).to(heatmaps.dtype)


def blur_keep_max(heatmaps: torch.Tensor, kernel: int) -> torch.Tensor:
    """DarkPose's ``gaussian_blur`` without the side effect: each (N, K, H, W)
    map blurred (see ``_blurred_chunks``) and rescaled to its own maximum.
    The decode itself never builds this whole tensor (``modulated_at``)."""
    out = torch.cat([blurred for _, blurred in _blurred_chunks(heatmaps, kernel)]).reshape(heatmaps.shape)
    return out * (heatmaps.amax(dim=(2, 3), keepdim=True) / out.amax(dim=(2, 3), keepdim=True))


def modulated_at(heatmaps: torch.Tensor, kernel: int, idx: torch.Tensor) -> torch.Tensor:
    """``blur_keep_max(heatmaps, kernel)`` read at flat pixel indices ``idx``
    (N, K, M), chunk by chunk, without the full blurred tensor."""
    n, k = heatmaps.shape[:2]
    origin_max = heatmaps.reshape(n * k, -1).amax(dim=1, keepdim=True)
    idx = idx.reshape(n * k, -1)
    out = torch.empty(idx.shape, dtype=heatmaps.dtype, device=heatmaps.device)
    for start, blurred in _blurred_chunks(heatmaps, kernel):
        stop = start + blurred.shape[0]
        flat = blurred.reshape(blurred.shape[0], -1)
        ratio = origin_max[start:stop] / flat.amax(dim=1, keepdim=True)
        out[start:stop] = flat.gather(1, idx[start:stop]) * ratio
    return out.reshape(n, k, -1)


def blur_windows(window: torch.Tensor, kernel: int, work: torch.dtype) -> torch.Tensor:
    """The zero-padded blur of ``_blurred_chunks`` on the central pixels of
    ``window`` (M, S, S), the raw pixels around each point, zero off the map
    (``gaussian.peak_windows``): (M, S - kernel + 1, S - kernel + 1) in the
    windows' dtype, without the rest of the map, computed in ``work``.

    A blurred pixel reads the ``kernel``-wide square around it, so the 5x5 values
    of the Taylor step need 15x15 raw pixels for DarkPose's 11: DarkPose pads by
    the kernel radius with zeros, so OpenCV's reflected border never reaches the
    map. The taps are then the same for every map, so the two separable passes
    are two plain matrix products with one (S - kernel + 1, S) band (numpy's BLAS
    on CPU, ~2x torch's for these shapes). In double precision and rounded to
    float32 this is DarkPose's float32 copy of OpenCV's double blur; in float32
    it is ~2.5x cheaper and within ``float32_blur_error`` of it."""
    m, size = window.shape[:2]
    out = size - kernel + 1
    band, pass_y = _window_bands(kernel, size, work)
    if window.device.type == "cpu":
        band_np = band.numpy()
        raw = window.numpy().astype(band_np.dtype, copy=False)
        across = raw.reshape(m * size, size) @ band_np.T  # [row j, out x]
        both = across.reshape(m, size * out) @ pass_y.numpy()  # [out y, out x]
        return torch.from_numpy(both.astype(window.numpy().dtype, copy=False).reshape(m, out, out))
    band = band.to(window.device)
    across = (window.to(work).reshape(m * size, size) @ band.T).reshape(m, size, out)
    return (band @ across).to(window.dtype)


@functools.cache
def _window_bands(kernel: int, size: int, work: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``blur_windows``' two passes for ``size``-wide windows in ``work``: the
    (out, size) band of the taps, and the second pass as one (size out, out out)
    matrix over the flattened first-pass rows (a single BLAS product instead of
    one tiny product per window)."""
    taps = torch.from_numpy(cv2.getGaussianKernel(kernel, 0, ktype=cv2.CV_64F)[:, 0])
    out = size - kernel + 1
    band = band_rows(out, size, taps).to(work)
    # pass_y[(j, x'), (y, x)] = band[y, j] if x == x'
    pass_y = torch.einsum("yj,xz->jxyz", band, torch.eye(out, dtype=work)).reshape(size * out, out * out)
    return band, pass_y


def float32_blur_error(kernel: int, most_negative: torch.Tensor, smallest: torch.Tensor) -> torch.Tensor:
    """Bound on the relative error of ``blur_windows`` in float32 against the
    float32 rounding of the exact blur, per window: ``most_negative`` (M,) the
    largest ``max(-x, 0)`` of its raw pixels, ``smallest`` (M,) its smallest
    positive blurred value used.

    Each pass is a dot product of ``kernel`` taps (rounded to float32) with the
    pixels, so it is off by at most ``gamma_{kernel+1} sum t |x|`` (Higham,
    *Accuracy and Stability of Numerical Algorithms*, eq. 3.5, any summation
    order, FMA or not); over both passes the error of a value b is at most
    ``2 gamma (1 + gamma) sum t |x|``, and ``sum t |x| = b + 2 sum t max(-x, 0)
    <= b + 2 most_negative`` (the taps sum to 1). Rounding the exact blur to
    float32 adds half an ulp."""
    u = torch.finfo(torch.float32).eps / 2
    gamma = (kernel + 1) * u / (1 - (kernel + 1) * u)
    return 2 * gamma * (1 + gamma) * (1 + 2 * most_negative / smallest) + u


def band_rows(rows: int, size: int, taps: torch.Tensor) -> torch.Tensor:
    """(rows, size) band: row d holds ``taps`` starting at column d."""
    offset = torch.arange(size, device=taps.device)[None, :] - torch.arange(rows, device=taps.device)[:, None]
    inside = (offset >= 0) & (offset < len(taps))
    return torch.where(inside, taps[offset.clamp(0, len(taps) - 1)], 0.0)


def taylor_step(logs: torch.Tensor, coords: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One second-order Taylor (Newton) step ``-H^-1 g`` from the integer argmax
    ``coords`` (M, 2) on the 5x5 log values (M, 5, 5) around it, where
    ``inside`` (M,) (DarkPose's ``taylor``: central differences in the maps'
    precision, two-pixel ones for the Hessian, no step where ``det H == 0``).
    Returns the refined coordinates in float64 (float32 on MPS), the solve in
    that precision, and a bound (M,) on how far the step moves when every log
    value moves by up to ``eps`` = 1 (multiply by the actual eps): with
    ``|dH|, |dg| <= eps`` per entry, ``|d step| <~ |H^-1|_F (sqrt 2 + 2 |step|) eps``
    (``|H^-1|_F = |H|_F / |det H|`` for 2x2); infinite where the step is skipped
    for ``det H == 0`` inside."""
    out_dtype = _float64_or_32(coords.device)
    c = logs[:, 2, 2]
    dx = 0.5 * (logs[:, 2, 3] - logs[:, 2, 1])
    dy = 0.5 * (logs[:, 3, 2] - logs[:, 1, 2])
    dxx = 0.25 * (logs[:, 2, 4] - 2 * c + logs[:, 2, 0])
    dxy = 0.25 * (logs[:, 3, 3] - logs[:, 1, 3] - logs[:, 3, 1] + logs[:, 1, 1])
    dyy = 0.25 * (logs[:, 4, 2] - 2 * c + logs[:, 0, 2])
    apply = inside & (dxx * dyy - dxy ** 2 != 0)
    dx, dy, dxx, dxy, dyy = (t.to(out_dtype) for t in (dx, dy, dxx, dxy, dyy))
    det = torch.where(apply, dxx * dyy - dxy * dxy, torch.ones_like(dxx))
    step = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=1) / det.unsqueeze(1)
    step = torch.where(apply.unsqueeze(1), step, torch.zeros_like(step))
    inv_norm = torch.sqrt(dxx * dxx + 2 * dxy * dxy + dyy * dyy) / det.abs()
    sensitivity = torch.where(apply, inv_norm * (2 ** 0.5 + 2 * torch.linalg.vector_norm(step, dim=1)),
                              torch.where(inside, torch.full_like(det, float("inf")), torch.zeros_like(det)))
    return coords.to(out_dtype) + step, sensitivity


#: a windowed Newton step that float rounding of DarkPose's rescaled map could
#: move by more than this (heatmap pixels) is recomputed on the whole map
MAX_ROUNDING_SHIFT = 1e-4

#: the 13 flat positions of the 5x5 log window that ``taylor_step`` reads
_STENCIL = (12, 11, 13, 7, 17, 10, 14, 2, 22, 6, 8, 16, 18)


def _windowed_steps(window: torch.Tensor, coords: torch.Tensor, raw_max: torch.Tensor, kernel: int,
                    work: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Taylor steps at ``coords`` (A, 2) from their raw windows (A, S, S), blurred in
    ``work`` (``blur_windows``), and whether each is trusted (A,): within
    ``MAX_ROUNDING_SHIFT`` px of DarkPose's by the bound of ``dark_refine``, with
    the 1e-10 clamp unable to bind.

    Only the 13 stencil values count: their smallest positive value b_min and the
    raw maximum bound every used log value's magnitude,
    ``|log b| <= max(|log b_min|, |log raw max|)``, and ``log r <= log(raw max / b_centre)``."""
    values = blur_windows(window, kernel, work)
    flat = values.reshape(-1, 25)
    smallest = flat[:, _STENCIL[0]]
    for j in _STENCIL[1:]:
        smallest = torch.minimum(smallest, flat[:, j])
    out_dtype = _float64_or_32(coords.device)
    floor = torch.tensor(LOG_FLOOR, dtype=values.dtype)
    logs = darkpose_log(values.clamp_min(floor))
    low, top = smallest.to(out_dtype).clamp_min(LOG_FLOOR), raw_max.to(out_dtype)
    log_ratio = (top / flat[:, 12].to(out_dtype).clamp_min(LOG_FLOOR)).log().clamp_min(0)
    eps = torch.finfo(values.dtype).eps * (1 + 2 * torch.maximum(low.log().abs(), top.log().abs()) + log_ratio)
    clamp_limit = LOG_FLOOR
    if work != out_dtype:  # float32 blur of float32 maps: add its own error (float32_blur_error)
        negative = window.reshape(window.shape[0], -1).amin(dim=1).neg().clamp_min(0).to(out_dtype)
        blur_error = float32_blur_error(kernel, negative, low)
        eps = eps + blur_error / (1 - blur_error).clamp_min(1e-3)
        clamp_limit = LOG_FLOOR * (1 + blur_error)
    refined, sensitivity = taylor_step(logs, coords, torch.ones_like(smallest, dtype=torch.bool))
    trusted = (smallest.to(out_dtype) >= clamp_limit) & (sensitivity * eps <= MAX_ROUNDING_SHIFT)
    return refined, trusted


def _rows(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[index]``, through numpy on CPU (~3x faster for these window stacks)."""
    if tensor.device.type == "cpu":
        return torch.from_numpy(tensor.numpy()[index.numpy()])
    return tensor[index]


def dark_refine(maps: torch.Tensor, coords: torch.Tensor, window: torch.Tensor, kernel: int) -> torch.Tensor:
    """DarkPose's blur + rescale + clamp + log + Taylor step at the integer
    argmax ``coords`` (L, 2) of ``maps`` (L, H, W), from ``window`` (L, kernel + 4,
    kernel + 4), the raw pixels centred on each argmax, zero off the map
    (``gaussian.peak_windows``, read in the argmax's pass).

    The step reads 13 of the 5x5 log values around the argmax, so only those
    are blurred (``blur_windows``). DarkPose also rescales each blurred map by
    ``r = raw max / blurred max``, which needs the whole blurred map; inside the
    log it is the constant ``log r`` that the central differences cancel,
    except (1) at the 1e-10 clamp and (2) in float rounding. (1) The blurred
    map's maximum is at most the raw one (the kernel sums to 1), so r >= 1 and
    the clamp can only bind where a used blurred value is below 1e-10.
    (2) Rounding ``r b`` and its log to the maps' precision moves each log value
    by a few ulps; ``taylor_step`` bounds what that does to the step. Float32
    maps on CPU are first blurred in float32 (``float32_blur_error`` adds its bound);
    steps that bound cannot trust are redone from a double blur of their windows,
    and maps where even that could matter (clamp possible, or a shift over
    ``MAX_ROUNDING_SHIFT`` px: flat or noisy maps) are redone exactly on the
    whole map (``modulated_at``, DarkPose's numbers); for peaked maps that is
    none. The log is DarkPose's own float32 log (``darkpose_log``) on every path:
    numpy's float32 ``log`` is off by one ulp for a few percent of inputs, and an
    ill-conditioned step turns that ulp into up to ~1 px (measured on the shared
    COCO samples, see ``tests/tools/test_official_results_files.py``). Returns
    float64 coords (float32 on MPS)."""
    h, w = maps.shape[1:]
    out_dtype = _float64_or_32(coords.device)
    refined = coords.to(out_dtype)
    if h < 5 or w < 5:  # no pixel has the two-pixel margin the stencil needs
        return refined
    px, py = coords[:, 0].long(), coords[:, 1].long()
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    raw_max = window[:, kernel // 2 + 2, kernel // 2 + 2]  # the argmax
    # the float32 tier on CPU only: its bound assumes IEEE float32 products, which a GPU's TF32 matmul
    # mode (torch.backends.cuda.matmul.allow_tf32) would not give
    fast = maps.device.type == "cpu" and maps.dtype == torch.float32 and out_dtype == torch.float64
    works = [torch.float32, out_dtype] if fast else [out_dtype]
    # every map at once (cheaper than selecting), then only the steps not yet trusted
    step, trusted = _windowed_steps(window, coords, raw_max, kernel, works[0])
    refined = torch.where((inside & trusted).unsqueeze(1), step, refined)
    todo = (inside & ~trusted).nonzero()[:, 0]
    for work in works[1:]:
        if not todo.numel():
            return refined
        step, trusted = _windowed_steps(_rows(window, todo), coords[todo], raw_max[todo], kernel, work)
        refined[todo[trusted]] = step[trusted]
        todo = todo[~trusted]
    if todo.numel():
        offsets = torch.arange(-2, 3, device=maps.device)
        window_idx = (py[todo, None, None] + offsets[:, None]) * w + px[todo, None, None] + offsets
        exact = modulated_at(maps[todo].unsqueeze(1), kernel, window_idx.reshape(-1, 1, 25))
        logs = darkpose_log(exact.reshape(-1, 5, 5).clamp_min(torch.tensor(LOG_FLOOR, dtype=maps.dtype)))
        refined[todo] = taylor_step(logs, coords[todo], inside[todo])[0]
    return refined


def darkpose_log(values: torch.Tensor) -> torch.Tensor:
    """``log`` in the values' precision as DarkPose takes it: numpy's ``np.log`` on
    the float32 map on CPU (DarkPose ``lib/core/inference.py`` ``get_final_preds``),
    whose rounding differs from a correctly rounded log by one ulp for some inputs;
    torch's ``log`` on other devices."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.log(values.contiguous().numpy()))
    return values.log()


def dark_scale(scale: np.ndarray | torch.Tensor):
    """``scale`` with one pixel taken off the box (see the module docstring)."""
    return scale - 1.0 / PIXEL_STD


class DarkCodec(HeatmapCodec):
    box_center = "darkpose"
    """``image_size`` and ``heatmap_size`` are (width, height). ``blur_kernel`` is
    DarkPose's ``TEST.BLUR_KERNEL``. It must be odd, and 1 means no blur. ``compiled``
    (``TEST.COMPILE``) decodes float32 CPU maps with the compiled kernel (``codecs.compiled``),
    ``compiled_threads`` OpenMP threads; the plain path otherwise, and for the maps it hands back."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 blur_kernel: int = 11, shift_heatmap: bool = False, compiled: bool = False,
                 compiled_threads: int = 1):
        if int(blur_kernel) != blur_kernel or blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f"TEST.BLUR_KERNEL = {blur_kernel}: DARK needs an odd positive Gaussian kernel size "
                             f"(DarkPose uses 11)")
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.blur_kernel = int(blur_kernel)
        self.shift_heatmap = shift_heatmap
        self.compiled = bool(compiled)
        self.compiled_threads = int(compiled_threads)

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """DarkPose's image -> crop affine: HRNet's with one pixel off the box and the output."""
        return get_affine_transform(center, scale, rotation, output_size, margin=1)

    def to_heatmap(self, joints: np.ndarray) -> np.ndarray:
        """Crop pixels (K, >=2) -> heatmap pixels (K, 2) float32, under DarkPose's geometry."""
        img, hm = self.image_size, self.heatmap_size.astype(np.float64)
        zoom = (hm[0] - 1) / (img[0] - 1)
        return ((np.asarray(joints, np.float64)[:, :2] - (img - 1) / 2) * zoom + (hm - 1) / 2).astype(np.float32)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints in crop pixels (K, >=2) and visibility (K, >=1) -> target
        (K, H, W) float32 and weight (K, 1) float32 (DarkPose's ``generate_target``)."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        mu = self.to_heatmap(joints)
        tmp_size = self.sigma * 3
        weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        ul = np.trunc(mu - np.float32(tmp_size))
        br = np.trunc(mu + np.float32(tmp_size) + np.float32(1))
        outside = (ul[:, 0] >= w) | (ul[:, 1] >= h) | (br[:, 0] < 0) | (br[:, 1] < 0)
        weight[outside] = 0
        gx = (np.arange(w, dtype=np.float32)[None, :] - mu[:, :1]) ** 2  # (K, W)
        gy = (np.arange(h, dtype=np.float32)[None, :] - mu[:, 1:]) ** 2  # (K, H)
        target = np.exp(-(gx[:, None, :] + gy[:, :, None]) / np.float32(2 * self.sigma ** 2))
        return np.where((weight[:, 0] > 0.5)[:, None, None], target, 0).astype(np.float32), weight

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + per-crop ``meta['center']``/``meta['scale']`` (N, 2)
        -> image coordinates (N, K, 2) float64 (float32 on MPS) and scores
        (N, K, 1) from the unblurred maps."""
        center, scale = meta["center"], meta["scale"]
        heatmaps = output.detach()
        if heatmaps.dtype not in (torch.float32, torch.float64):
            heatmaps = heatmaps.float()
        n, k, h, w = heatmaps.shape
        maps = heatmaps.reshape(n * k, h, w)
        if self.compiled and self.blur_kernel <= COMPILED_MAX_KERNEL and compiled_kernels.usable(maps, 1):
            maxvals, _, coords, redo = compiled_kernels.dark_peaks(maps, self.blur_kernel, self.compiled_threads)
            todo = redo.nonzero()[:, 0]
            if todo.numel():  # NaN maps and steps the kernel's bound does not trust: the plain path
                maxvals[todo], coords[todo] = self._plain_peaks(maps[todo])
        else:
            maxvals, coords = self._plain_peaks(maps)
        coords, maxvals = coords.reshape(n, k, 2), maxvals.reshape(n, k, 1)
        scale = dark_scale(scale.to(heatmaps.device, coords.dtype))
        preds = crop_to_image(coords, center.to(heatmaps.device), scale, (w - 1, h - 1))
        return preds, maxvals

    def _plain_peaks(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw maxima (L,) and refined heatmap coordinates (L, 2) of (L, H, W) maps, in torch and numpy:
        the argmax and the raw pixels its 5x5 blurred values need, read in one pass, then ``dark_refine``."""
        maxvals, idx, window = peak_windows(maps, self.blur_kernel + 4)
        return maxvals, dark_refine(maps, peak_coords(maxvals, idx, maps.shape[2], maps.dtype), window,
                                    self.blur_kernel)

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mirror back and swap pairs; no shift unless TEST.SHIFT_HEATMAP (module docstring)."""
        return flip_back(output_flipped, flip_pairs, shift=self.shift_heatmap)


def get_codec(cfg) -> DarkCodec:
    return DarkCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                     blur_kernel=cfg.TEST.BLUR_KERNEL or 11, shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
                     compiled=cfg.TEST.COMPILE)
