"""A plain per-joint loop version of LPN's soft-argmax decoding
(``soft_argmax.py``). The tests use it as the oracle and ``tools/benchmark.py``
as the baseline; the library never calls it."""
from __future__ import annotations

import math

import numpy as np

from posezoo.utils.transforms import affine_transform, get_affine_transform


def get_final_preds_soft_argmax_loop(batch_heatmaps, center, scale, beta=160.0, post_process=True, bias=0.0):
    """numpy heatmaps (N, K, H, W) -> image preds (N, K, 2), maxvals (N, K, 1)."""
    n, k, h, w = batch_heatmaps.shape
    coords = np.zeros((n, k, 2))
    maxvals = np.zeros((n, k, 1), dtype=batch_heatmaps.dtype)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    for i in range(n):
        for p in range(k):
            hm = batch_heatmaps[i, p]
            # beta * heatmap rounded to the heatmaps' precision, as LPN's float32 softmax input; the rest in double
            logits = (hm * hm.dtype.type(beta)).astype(np.float64)
            e = np.exp(logits - logits.max())
            prob = e / e.sum()
            x = float((prob.sum(axis=0) * xs).sum())
            y = float((prob.sum(axis=1) * ys).sum())
            maxvals[i, p, 0] = batch_heatmaps[i, p, int(np.round(y)), int(np.round(x))]
            if post_process:
                px, py = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
                if 1 < px < w - 1 and 1 < py < h - 1:
                    x += 0.25 * np.sign(hm[py][px + 1] - hm[py][px - 1])
                    y += 0.25 * np.sign(hm[py + 1][px] - hm[py - 1][px])
            coords[i, p] = [x, y]
    preds = np.zeros((n, k, 2))
    for i in range(n):
        trans = get_affine_transform(center[i], scale[i], 0, (w, h), inv=True)
        for p in range(k):
            preds[i, p] = affine_transform(coords[i, p], trans) - bias
    return preds, maxvals
