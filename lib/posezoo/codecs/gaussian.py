"""MSRA Gaussian heatmaps (Tompson et al. 2014; SimpleBaseline/HRNet's
``TARGET_TYPE: gaussian``).

Encode: a Gaussian of std SIGMA at the joint rounded to the heatmap grid,
truncated to 3 sigma. Decode: argmax, a quarter-pixel step towards the higher
neighbour (``TEST.POST_PROCESS``), then the inverse crop transform. Both give the
official numbers; ``TEST.HEATMAP_DECODE mmpose`` takes mmpose 1.x's border rule for that
step (``mmpose_quarter_step``); encode is vectorised over joints and decode over batch and
joints, in torch on the heatmaps' device.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch

from ..utils.transforms import crop_to_image, flip_back, get_affine_transform
from .base import Codec, Metric, last_stage, single_threaded_on_cpu


@functools.lru_cache(maxsize=32)
def gaussian_table(length: int, centre: float, two_sigma_sq: float, dtype: type) -> np.ndarray:
    """``g[i, j] = exp(-((i - centre)^2 + (j - centre)^2) / (2 sigma^2))`` for i, j < `length`, in `dtype`,
    each value by the same operations as the official ``generate_target`` (HRNet
    ``lib/dataset/JointsDataset.py:268-272``), so pasting it gives that target; computed once per codec
    setting instead of an exp over every heatmap pixel of every sample (read-only: it is shared)."""
    offsets = (np.arange(length).astype(dtype) - dtype(centre)) ** 2
    table = np.exp(-(offsets[:, None] + offsets[None, :]) / dtype(two_sigma_sq))
    table.flags.writeable = False
    return table


def argmax_rows(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, P) -> the maximum of each row (M,) and the index of its first
    occurrence (M,) int64, as ``np.amax``/``np.argmax`` in the official
    ``get_max_preds`` (NaN counts as the maximum in both).

    This is the one full read of the maps every heatmap decode needs. On CPU it
    is numpy's SIMD argmax on the tensor's own memory: torch's CPU
    max-with-index is not vectorised and runs ~6x slower (about 14k against 90k
    crops/s of 17 x 64 x 48 maps here). Elsewhere, and while tracing or
    compiling (export), it is ``torch.max``. The values are gathered from
    ``flat``, so they keep its autograd history as ``torch.max``'s do."""
    if (not torch.jit.is_tracing() and not torch.compiler.is_compiling() and flat.device.type == "cpu"
            and flat.dtype in (torch.float32, torch.float64) and flat.shape[1] > 0):
        idx = torch.from_numpy(flat.detach().numpy().argmax(axis=1)).to(torch.int64)
        return flat.gather(1, idx.unsqueeze(1)).squeeze(1), idx
    return flat.max(dim=1)


def get_max_preds(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax (x, y) of each (N, K, H, W) heatmap and its value; joints
    whose maximum is not positive get (0, 0), as in the official code."""
    n, k, _, w = heatmaps.shape
    maxvals, idx = argmax_rows(heatmaps.reshape(n * k, -1))
    maxvals, idx = maxvals.reshape(n, k), idx.reshape(n, k)
    return peak_coords(maxvals, idx, w, heatmaps.dtype), maxvals.unsqueeze(2)


def _zero_off_map(maps: torch.Tensor, window: torch.Tensor, index: torch.Tensor, rows: torch.Tensor,
                 cols: torch.Tensor, clipped: torch.Tensor) -> torch.Tensor:
    """Complete windows copied from a strided view of the flat maps (``map_windows``):
    the ``clipped`` ones (whose run would leave the buffer) are gathered pixel by
    pixel, and pixels off their own map (a neighbouring row or map in the flat
    buffer) are set to 0. Works in place on ``window``, which it returns.

    On CPU the zeros are written as strips in numpy (one slice assignment per
    side and overhang, ~10x faster than torch's masked multiply of the border
    windows, which dominated the DARK decode)."""
    h, w = maps.shape[1:]
    size = window.shape[1]
    span = torch.arange(size, device=maps.device)
    if bool(clipped.any()):
        sel = clipped.nonzero()[:, 0]
        pix = ((index[sel, None, None] * h + (rows[sel, None, None] + span[:, None]).clamp(0, h - 1)) * w
               + (cols[sel, None, None] + span).clamp(0, w - 1))
        window[sel] = maps.reshape(-1)[pix]
    if window.device.type == "cpu":
        _zero_strips(window.numpy(), rows.numpy(), cols.numpy(), h, w)
        return window
    border = (rows < 0) | (rows + size > h) | (cols < 0) | (cols + size > w)
    if bool(border.any()):
        sel = border.nonzero()[:, 0]
        row_ok = ((rows[sel, None] + span) >= 0) & ((rows[sel, None] + span) < h)
        col_ok = ((cols[sel, None] + span) >= 0) & ((cols[sel, None] + span) < w)
        window[sel] = window[sel] * (row_ok[:, :, None] & col_ok[:, None, :])
    return window


def _zero_strips(window: np.ndarray, rows: np.ndarray, cols: np.ndarray, h: int, w: int) -> None:
    """Zero, in place, the rows and columns of the (M, S, S) windows with top left
    corners (``rows``, ``cols``) (M,) that lie off an H x W map."""
    size = window.shape[1]
    sides = ((np.maximum(-rows, 0), lambda sel, d: (sel, slice(0, d))),
             (np.maximum(rows + size - h, 0), lambda sel, d: (sel, slice(size - d, size))),
             (np.maximum(-cols, 0), lambda sel, d: (sel, slice(None), slice(0, d))),
             (np.maximum(cols + size - w, 0), lambda sel, d: (sel, slice(None), slice(size - d, size))))
    for over, region in sides:
        sel = np.flatnonzero(over)
        if not sel.size:
            continue
        depth = over[sel]
        for d in range(1, min(size, int(depth.max())) + 1):
            at = sel[depth == d] if d < size else sel[depth >= d]
            if at.size:
                window[region(at, d)] = 0


def _window_view(flat: torch.Tensor, size: int, w: int) -> tuple[torch.Tensor | np.ndarray | None, int]:
    """(view, count): every ``size`` x ``size`` run of the flat maps buffer ``flat``
    (maps ``w`` wide), one per start offset in [0, count), as a strided view without
    a copy; (None, 0) when the buffer is shorter than one run.

    On CPU it is a numpy view of (count, size) items of ``size`` pixels each (a
    void dtype), so that a fancy index copies a window as ``size`` row copies
    rather than size^2 strided pixels: 8x faster for 3x3 windows, 1.5x for 15x15
    (``_copy_windows`` reinterprets the copy as pixels)."""
    count = flat.numel() - (size - 1) * (w + 1)
    if count <= 0:
        return None, 0
    if flat.device.type == "cpu":
        item = flat.element_size()
        view = np.ndarray((count, size), np.dtype((np.void, size * item)), buffer=flat.numpy(),
                          strides=(item, w * item))
        view.flags.writeable = False
        return view, count
    return torch.as_strided(flat, (count, size, size), (1, w, 1)), count


def _copy_windows(view, count: int, starts: torch.Tensor, like: torch.Tensor, size: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows (M, size, size) of ``view`` (``_window_view``) at flat offsets
    ``starts`` (M,) in the dtype of ``like``, and which of them (M,) bool lie
    outside it (copied from the nearest run, to be redone)."""
    clipped = (starts < 0) | (starts >= count)
    if view is None:
        return like.new_zeros((starts.shape[0], size, size)), torch.ones_like(clipped)
    starts = starts.clamp(0, count - 1)
    if isinstance(view, np.ndarray):
        pixels = view[starts.numpy()].view(like.numpy().dtype).reshape(-1, size, size)
        return torch.from_numpy(pixels), clipped
    return view[starts], clipped


def map_windows(maps: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int
                ) -> torch.Tensor:
    """The ``size`` x ``size`` pixels of maps ``index`` (M,) of ``maps``
    (L, H, W) whose top left corners are at (``rows``, ``cols``) (M,), with
    pixels off the map set to 0 (zero padding): (M, size, size) in the maps'
    dtype.

    One batched index op: a strided view of the flat maps holds every
    ``size`` x ``size`` run starting at each flat position (``_window_view``),
    and one fancy index copies the M windows. A window that runs off its map
    reads its neighbour's rows or columns; those pixels are then zeroed. Windows
    that would leave the whole buffer (the first or last map) are gathered pixel
    by pixel (``_zero_off_map``)."""
    h, w = maps.shape[1:]
    flat = maps.reshape(-1)
    view, count = _window_view(flat, size, w)
    window, clipped = _copy_windows(view, count, (index * h + rows) * w + cols, flat, size)
    return _zero_off_map(maps, window, index, rows, cols, clipped)


#: bytes of maps per step of ``peak_windows`` on CPU: the argmax reads them from
#: memory, and their windows are copied while they are still in cache
PEAK_CHUNK_BYTES = 6 << 20


def peak_windows(maps: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The maximum of each of the (L, H, W) ``maps`` (L,), the flat index of its
    first occurrence (L,) int64 (``argmax_rows``), and the odd ``size`` x ``size``
    window centred on it (L, size, size), zero off the map (``map_windows``).
    Nothing keeps an autograd history (decoders read detached outputs).

    What a heatmap decode reads: one pass over the maps and a few pixels around
    each peak. On CPU the two are fused chunk by chunk (``PEAK_CHUNK_BYTES``):
    numpy's argmax streams a chunk from memory and the windows are copied from
    the same chunk while it is in cache, ~5x cheaper than gathering them after
    the whole pass (docs/speed.md, "DARK and standard decode")."""
    l, h, w = maps.shape
    half = size // 2
    flat = maps.detach().reshape(l, h * w)
    fused = (not torch.jit.is_tracing() and not torch.compiler.is_compiling() and flat.device.type == "cpu"
             and flat.dtype in (torch.float32, torch.float64) and flat.numel() > 0)
    if fused:
        flat = flat.contiguous()
        view, count = _window_view(flat.reshape(-1), size, w)
    if not fused or view is None:  # elsewhere, or maps smaller than one window: argmax, then the windows
        maxvals, idx = argmax_rows(flat)
        index = torch.arange(l, device=maps.device)
        return maxvals, idx, map_windows(maps.detach(), index, idx // w - half, idx % w - half, size)
    rows = flat.numpy()
    idx = np.empty(l, np.int64)
    windows = np.empty((l, size), view.dtype)  # each item one row of a window (_window_view)
    chunk = max(1, PEAK_CHUNK_BYTES // (h * w * flat.element_size()))
    for lo in range(0, l, chunk):
        hi = min(l, lo + chunk)
        rows[lo:hi].argmax(axis=1, out=idx[lo:hi])
        starts = idx[lo:hi] + (lo * h * w - half * (w + 1) + np.arange(hi - lo) * (h * w))
        windows[lo:hi] = view[np.minimum(np.maximum(starts, 0, out=starts), count - 1, out=starts)]
    windows = windows.view(rows.dtype).reshape(l, size, size)
    top, left = np.divmod(idx, w)
    top -= half
    left -= half
    starts = (np.arange(l) * h + top) * w + left
    clipped = (starts < 0) | (starts >= count)
    window = _zero_off_map(maps.detach(), torch.from_numpy(windows), torch.arange(l), torch.from_numpy(top),
                           torch.from_numpy(left), torch.from_numpy(clipped))
    maxvals = window[:, half, half].clone()  # the window is centred on the argmax
    idx_t = torch.from_numpy(idx)
    return maxvals, idx_t, window


def quarter_offset(heatmaps: torch.Tensor, coords: torch.Tensor, first: int = 2) -> torch.Tensor:
    """Move each argmax 0.25 px towards its higher neighbour along x and y (none on a
    tie), where the peak lies in [first, size - 2]: two pixels inside the map in the
    official ``get_final_preds``, one in bearpaw's ``final_preds`` (``first=1``)."""
    n, k, h, w = heatmaps.shape
    px = torch.floor(coords[..., 0] + 0.5).long()
    py = torch.floor(coords[..., 1] + 0.5).long()
    inside = (px >= first) & (px < w - 1) & (py >= first) & (py < h - 1)
    flat = heatmaps.reshape(n, k, h * w)
    pxc, pyc = px.clamp(1, w - 2), py.clamp(1, h - 2)

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (y * w + x).unsqueeze(2)).squeeze(2)

    return quarter_step(coords, at(pyc, pxc + 1) - at(pyc, pxc - 1), at(pyc + 1, pxc) - at(pyc - 1, pxc), inside)


def quarter_step(coords: torch.Tensor, diff_x: torch.Tensor, diff_y: torch.Tensor, inside: torch.Tensor
                 ) -> torch.Tensor:
    """``coords`` (..., 2) moved by 0.25 sign(diff) along x and y where ``inside``:
    the official ``coords += np.sign(diff) * .25`` (HRNet lib/core/inference.py
    ``get_final_preds``) for neighbour differences (right - left, below - above)."""
    diff = torch.stack([diff_x, diff_y], dim=-1)
    return coords + torch.sign(diff).to(coords.dtype) * 0.25 * inside.unsqueeze(-1)


def mmpose_quarter_step(coords: torch.Tensor, maxvals: torch.Tensor, window: torch.Tensor, h: int, w: int
                        ) -> torch.Tensor:
    """mmpose 1.x's ``MSRAHeatmap`` decode after the argmax: a non-positive maximum sits at -1
    (``get_heatmap_maximum``, ``codecs/utils/post_processing.py:188-192``), and the x step is taken
    where 1 < x < W-1 (and 0 < y < H), the y step where 1 < y < H-1 (and 0 < x < W), each on its
    own (``refine_keypoints``, ``codecs/utils/refinement.py:31-44``); HRNet needs both at once.
    ``window`` (..., 3, 3) holds the pixels around each peak (``peak_windows``)."""
    coords = torch.where((maxvals > 0).unsqueeze(-1), coords, torch.full_like(coords, -1))
    px, py = coords[..., 0], coords[..., 1]
    step_x = (px > 1) & (px < w - 1) & (py > 0) & (py < h)
    step_y = (py > 1) & (py < h - 1) & (px > 0) & (px < w)
    diff = torch.stack([window[..., 1, 2] - window[..., 1, 0], window[..., 2, 1] - window[..., 0, 1]], dim=-1)
    return coords + torch.sign(diff).to(coords.dtype) * 0.25 * torch.stack([step_x, step_y], dim=-1)


def peak_coords(maxvals: torch.Tensor, idx: torch.Tensor, w: int, dtype: torch.dtype) -> torch.Tensor:
    """(x, y) (..., 2) in ``dtype`` of flat argmax indices ``idx`` on maps ``w``
    wide; (0, 0) where the maximum is not positive (``get_max_preds``)."""
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(dtype)
    return coords * (maxvals > 0).unsqueeze(-1)


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, thr: float = 0.5
                     ) -> tuple[torch.Tensor, float, int]:
    """Training-time accuracy on heatmaps (the official ``accuracy``): per-joint
    PCK of the argmax locations (-1 where no joint is labelled), their mean over
    the joints that have one, and how many such joints there are.

    As in the official code, a joint counts when both target argmax coordinates
    are > 1, and distances are normalised by (H/10, W/10) applied to (x, y)."""
    _, _, h, w = output.shape
    pred, _ = get_max_preds(output.detach().float())
    gt, _ = get_max_preds(target.detach().float())
    norm = torch.tensor([h, w], dtype=pred.dtype, device=pred.device) / 10
    labelled = (gt[..., 0] > 1) & (gt[..., 1] > 1)
    dist = torch.linalg.norm(pred / norm - gt / norm, dim=2)
    hits = ((dist < thr) & labelled).sum(0).to(pred.dtype)
    counts = labelled.sum(0)
    per_joint = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, -1.0))
    valid = per_joint >= 0
    cnt = int(valid.sum())
    avg = float(per_joint[valid].mean()) if cnt else 0.0
    return per_joint, avg, cnt


class HeatmapCodec(Codec):
    """What every per-joint heatmap codec shares (Gaussian, DARK, soft-argmax,
    UDP): the heatmap is the first of each joint's ``channels_per_joint``
    channels, the training log shows the official heatmap accuracy on it, and
    the loss is JointsMSELoss (JointsOHKMMSELoss with ``LOSS.USE_OHKM``)."""

    def heatmaps(self, outputs: Any) -> torch.Tensor:
        return last_stage(outputs)[:, ::self.channels_per_joint]

    def train_metrics(self, outputs: Any, target: torch.Tensor) -> dict[str, Metric]:
        _, avg, cnt = heatmap_accuracy(self.heatmaps(outputs), self.heatmaps(target))
        return {"acc": (avg, cnt)}

    def loss_name(self, cfg) -> str:
        return "JointsOHKMMSELoss" if cfg.LOSS.USE_OHKM else "JointsMSELoss"


class GaussianHeatmapCodec(HeatmapCodec):
    """``image_size`` and ``heatmap_size`` are (width, height); ``refine`` ``hrnet`` or
    ``mmpose`` names the quarter-pixel step's border rule (``TEST.HEATMAP_DECODE msra|mmpose``)."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float,
                 post_process: bool = True, shift_heatmap: bool = True, refine: str = "hrnet"):
        if refine not in ("hrnet", "mmpose"):
            raise ValueError(f"quarter-pixel refine {refine!r}: expected hrnet or mmpose")
        self.refine = refine
        self.image_size = np.asarray(image_size, dtype=np.float64)
        self.heatmap_size = np.asarray(heatmap_size, dtype=np.int64)
        self.sigma = float(sigma)
        self.post_process = post_process
        self.shift_heatmap = shift_heatmap

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """Image -> crop affine matrix the dataset warps with (the official, biased geometry)."""
        return get_affine_transform(center, scale, rotation, output_size)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints in crop pixels (K, >=2) and visibility (K, >=1) -> target
        (K, H, W) float32 and target weight (K, 1) float32.

        Same arithmetic as the official ``generate_target``: centre
        ``int(x / stride + 0.5)`` (truncation towards zero), window
        [centre - 3 sigma, centre + 3 sigma], joints whose window lies outside
        the map get weight 0, invisible joints an all-zero map."""
        stride = self.image_size / self.heatmap_size
        mu = (joints[:, :2] / stride + 0.5).astype(np.int64)
        size = 2 * self.sigma * 3 + 1
        return self.draw(mu, joints_vis, self.sigma * 3, size, size // 2)

    def draw(self, mu: np.ndarray, joints_vis: np.ndarray, tmp_size: float, size: float, centre: float,
             dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Integer heatmap positions (K, 2) -> (target, weight) as ``encode`` returns them:
        ``g[i] = exp(-(i - centre)^2 / 2 sigma^2)``, i < ``len(arange(size))``, at pixel
        ``trunc(mu - tmp_size) + i`` up to ``trunc(mu + tmp_size + 1)``; weight 0 where that
        window misses the map, all-zero maps for weight 0 (the official ``generate_target``). ``g``
        is computed in ``dtype`` (HRNet float32; the hourglass releases float64) and stored as float32."""
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        g_len = len(np.arange(0, size, 1))
        weight = np.asarray(joints_vis, dtype=np.float32)[:, :1].copy()
        mu_x, mu_y = mu[:, 0], mu[:, 1]
        ul_x, ul_y = np.trunc(mu_x - tmp_size).astype(np.int64), np.trunc(mu_y - tmp_size).astype(np.int64)
        br_x, br_y = np.trunc(mu_x + tmp_size + 1).astype(np.int64), np.trunc(mu_y + tmp_size + 1).astype(np.int64)
        outside = (ul_x >= w) | (ul_y >= h) | (br_x < 0) | (br_y < 0)
        weight[outside] = 0

        # g[i] sits at pixel ul + i, for i < min(br - ul, len(g)); only the pixels inside the map are pasted,
        # as the official code pastes g[g_y[0]:g_y[1], g_x[0]:g_x[1]] into a zero map
        table = gaussian_table(g_len, float(centre), float(2 * self.sigma ** 2), dtype)
        target = np.zeros((len(mu), h, w), np.float32)
        span_x, span_y = np.minimum(br_x - ul_x, g_len), np.minimum(br_y - ul_y, g_len)
        drawn = weight[:, 0] > 0.5
        whole = drawn & (span_x == g_len) & (span_y == g_len) & (ul_x >= 0) & (ul_y >= 0) & \
            (ul_x + g_len <= w) & (ul_y + g_len <= h)
        if whole.any():  # windows inside the map, all at once (the loop below costs ~5 us a joint)
            ks = np.flatnonzero(whole)
            steps = np.arange(g_len)
            target[ks[:, None, None], (ul_y[ks, None] + steps)[:, :, None], (ul_x[ks, None] + steps)[:, None, :]] = table
        for k in np.flatnonzero(drawn & ~whole):
            x0, y0 = max(int(ul_x[k]), 0), max(int(ul_y[k]), 0)
            x1, y1 = min(int(ul_x[k] + span_x[k]), w), min(int(ul_y[k] + span_y[k]), h)
            if x0 < x1 and y0 < y1:
                target[k, y0:y1, x0:x1] = table[y0 - ul_y[k]:y1 - ul_y[k], x0 - ul_x[k]:x1 - ul_x[k]]
        return target, weight

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + per-crop ``meta['center']``/``meta['scale']`` (N, 2)
        -> image coordinates (N, K, 2) float64 and scores (N, K, 1)."""
        center, scale = meta["center"], meta["scale"]
        heatmaps = output.detach()
        n, k, h, w = heatmaps.shape
        # the argmax and the 3x3 pixels around it, read in one pass (peak_windows)
        maxvals, idx, window = peak_windows(heatmaps.reshape(n * k, h, w), 3)
        coords = peak_coords(maxvals, idx, w, heatmaps.dtype).reshape(n, k, 2)
        if self.post_process and self.refine == "mmpose":
            coords = mmpose_quarter_step(coords, maxvals.reshape(n, k), window.reshape(n, k, 3, 3), h, w)
        elif self.post_process:
            px, py = coords[..., 0], coords[..., 1]
            inside = (px >= 2) & (px < w - 1) & (py >= 2) & (py < h - 1)
            window = window.reshape(n, k, 3, 3)
            coords = quarter_step(coords, window[..., 1, 2] - window[..., 1, 0], window[..., 2, 1] - window[..., 0, 1],
                                  inside)
        maxvals = maxvals.reshape(n, k, 1)
        dtype = torch.float32 if heatmaps.device.type == "mps" else torch.float64
        size = (int(heatmaps.shape[3]), int(heatmaps.shape[2]))
        preds = crop_to_image(coords.to(dtype), center.to(heatmaps.device), scale.to(heatmaps.device), size)
        return preds, maxvals

    def flip_back(self, output_flipped: torch.Tensor, flip_pairs: Sequence[Sequence[int]]) -> torch.Tensor:
        """Biased flip (x -> W-1-x on the crop), optionally undone by a one-pixel shift."""
        return flip_back(output_flipped, flip_pairs, shift=self.shift_heatmap)


def get_codec(cfg) -> GaussianHeatmapCodec:
    return GaussianHeatmapCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                                post_process=cfg.TEST.POST_PROCESS, shift_heatmap=cfg.TEST.SHIFT_HEATMAP,
                                refine="mmpose" if cfg.TEST.HEATMAP_DECODE == "mmpose" else "hrnet")
