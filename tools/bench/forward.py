"""Stage 3: the model's forward pass (random weights, eval mode), without and with the flip test."""
from __future__ import annotations

import torch

from posezoo.datasets.coco import COCO_FLIP_PAIRS
from posezoo.utils.utils import count_flops, count_parameters, input_shape

from .common import last_output, make_sync, say, timed


def default_flip_pairs(cfg) -> list:
    """The flip pairs COCODataset would use, without reading the dataset:
    DATASET.FLIP_PAIRS, else COCO's for 17 joints, else none."""
    pairs = cfg.DATASET.FLIP_PAIRS or (COCO_FLIP_PAIRS if cfg.MODEL.NUM_JOINTS == 17 else [])
    return [tuple(pair) for pair in pairs]


def bench_forward(cfg, codec, model, device, n_batches: int, flip_pairs, tag: str = "[3/6]") -> dict:
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    width, height = cfg.MODEL.IMAGE_SIZE
    sync = make_sync(device)
    warmup = 3 if device.type == "cuda" else 1
    params = count_parameters(model)
    macs = count_flops(model, input_shape(model, cfg))
    x = torch.randn(batch, *input_shape(model, cfg), device=device)

    def plain():
        return last_output(model(x))

    def flipped():
        both = last_output(model(torch.cat([x, x.flip(3)], dim=0)))
        return (both[:batch] + codec.flip_back(both[batch:], flip_pairs)) * 0.5

    out = {"params": params, "gmacs": macs / 1e9}
    with torch.no_grad():
        for key, fn in (("forward_crops_s", plain), ("forward_flip_crops_s", flipped)):
            for _ in range(warmup):
                heatmaps = fn()
            seconds = timed(fn, n_batches, sync)
            out[key] = batch * n_batches / seconds
    out["output_shape"] = tuple(int(v) for v in heatmaps.shape[1:])
    say(f"{tag} forward: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} crops/s, with flip "
        f"{out['forward_flip_crops_s']:.1f} crops/s; output {out['output_shape']}; "
        f"{params / 1e6:.2f} M params, {macs / 1e9:.3f} GMACs")
    return out


def bench_forward_3d(cfg, codec, model, device, n_batches: int, tag: str = "[1/2]") -> dict:
    """Depth models (A2J, AWR): frames/s of forward + the codec's decode to crop
    joints (no flip test in these models), on random depth crops."""
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    sync = make_sync(device)
    x = torch.randn(batch, *input_shape(model, cfg), device=device)

    def forward_decode():
        return codec.decode_crop(last_output(model(x)), x)

    with torch.no_grad():
        for _ in range(3 if device.type == "cuda" else 1):
            forward_decode()
        seconds = timed(forward_decode, n_batches, sync)
    out = {"params": count_parameters(model), "gmacs": count_flops(model, input_shape(model, cfg)) / 1e9,
           "forward_crops_s": batch * n_batches / seconds}
    say(f"{tag} forward + decode: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} frames/s; "
        f"{out['params'] / 1e6:.2f} M params, {out['gmacs']:.3f} GMACs")
    return out
