"""Generated decode inputs: network-like heatmaps / offset outputs and person boxes."""
from __future__ import annotations

import numpy as np

from posezoo.codecs.udp import UDPOffsetCodec


def _blobs(rng: np.random.Generator, n: int, k: int, h: int, w: int, block: int = 256):
    """(n, k, h, w) float32 maps: uniform noise in [0, 0.1) plus one Gaussian
    peak (std 1.5 px) per map, some near or over the border, ~5 % of the maps
    entirely negative; and the peaks' centres (n, k) x and y. Built a block of
    crops at a time to keep the temporaries small."""
    maps = np.empty((n, k, h, w), np.float32)
    cx = rng.uniform(-2, w + 1, (n, k)).astype(np.float32)
    cy = rng.uniform(-2, h + 1, (n, k)).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, None, :, None]
    for start in range(0, n, block):
        part = slice(start, min(n, start + block))
        bx, by = cx[part, :, None, None], cy[part, :, None, None]
        maps[part] = rng.random((part.stop - start, k, h, w), dtype=np.float32) * np.float32(0.1)
        maps[part] += np.exp(((xs - bx) ** 2 + (ys - by) ** 2) / np.float32(-2 * 1.5 ** 2))
    maps[rng.random((n, k)) < 0.05] -= np.float32(1.5)
    return maps, cx, cy


def random_heatmaps(rng: np.random.Generator, n: int, shape) -> np.ndarray:
    """(n, *shape) heatmaps like a network's: see _blobs."""
    return _blobs(rng, n, *shape)[0]


def random_offset_outputs(rng: np.random.Generator, n: int, shape, kpd: float, block: int = 256) -> np.ndarray:
    """(n, 3K, H, W) UDP offset outputs, [cls, dx, dy] per joint: a _blobs map as
    the classification, (peak - pixel) / KPD plus N(0, 0.02) noise as the offsets."""
    c, h, w = shape
    if c % 3:
        raise ValueError(f"offset outputs need 3 channels per joint, got {c}")
    k = c // 3
    cls, cx, cy = _blobs(rng, n, k, h, w)
    out = np.empty((n, k, 3, h, w), np.float32)
    out[:, :, 0] = cls
    del cls
    xs = np.arange(w, dtype=np.float32)[None, None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, None, :, None]
    for start in range(0, n, block):
        part = slice(start, min(n, start + block))
        size = (part.stop - start, k, h, w)
        out[part, :, 1] = (cx[part, :, None, None] - xs) / np.float32(kpd) + \
            rng.normal(0, 0.02, size).astype(np.float32)
        out[part, :, 2] = (cy[part, :, None, None] - ys) / np.float32(kpd) + \
            rng.normal(0, 0.02, size).astype(np.float32)
    return out.reshape(n, c, h, w)


def random_outputs(rng: np.random.Generator, n: int, shape, codec) -> np.ndarray:
    """Realistic network outputs (n, *shape) for `codec` to decode."""
    if isinstance(codec, UDPOffsetCodec):
        return random_offset_outputs(rng, n, shape, codec.kpd)
    return random_heatmaps(rng, n, shape)


def random_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-crop center and scale (n, 2) float32."""
    center = rng.uniform(50, 600, (n, 2)).astype(np.float32)
    scale = rng.uniform(0.3, 3.0, (n, 2)).astype(np.float32)
    return center, scale


def output_shape(cfg, codec) -> tuple:
    """(C, H, W) of the model's output without running it."""
    w, h = cfg.MODEL.HEATMAP_SIZE
    return cfg.MODEL.NUM_JOINTS * getattr(codec, "channels_per_joint", 1), int(h), int(w)
