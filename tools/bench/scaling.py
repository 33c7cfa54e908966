"""--scaling / --scaling-dets: how the cost of decode and evaluation grows with the number of items.

Each decoder of decoder_codecs() decodes N crops (cycled chunk by chunk from one pool of generated crops, as
the decoders stage does) for every N of --scaling, and the evaluation (rescoring + OKS-NMS, then the whole
COCODataset.evaluate: results JSON + COCOeval) runs on a generated COCO person set of each size of
--scaling-dets. Both print microseconds per item: flat rows mean linear cost."""
from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from .common import make_sync, quiet, say
from .decoders import DECODERS_HEATMAP_SIZE, DECODERS_JOINTS, decode_cycled, decoder_codecs
from .evaluate import eval_inputs, rescore_and_nms
from .inputs import random_boxes, random_outputs

SCALING_POOL = 2048  # generated crops per decoder, cycled for larger N


def parse_sizes(text: str) -> list[int]:
    """'1000,10000' -> [1000, 10000]; a clear error for anything else."""
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive integers, got {text!r}")
    return sizes


def scaling_decode(device: torch.device, sizes: list[int], batch: int, rng: np.random.Generator) -> dict:
    """{decoder: {N: microseconds per crop}} for every N of `sizes`."""
    sync = make_sync(device)
    w, h = DECODERS_HEATMAP_SIZE
    out = {}
    for name, codec in decoder_codecs().items():
        shape = (DECODERS_JOINTS * getattr(codec, "channels_per_joint", 1), h, w)
        pool = min(max(sizes), batch * -(-SCALING_POOL // batch))
        crops = tuple(torch.from_numpy(a).to(device) for a in (random_outputs(rng, pool, shape, codec),
                                                                *random_boxes(rng, pool)))
        decode_cycled(codec, crops, min(pool, batch), batch)  # warm-up
        out[name] = {}
        for n in sizes:
            sync()
            start = time.perf_counter()
            decode_cycled(codec, crops, n, batch)
            sync()
            out[name][n] = (time.perf_counter() - start) / n * 1e6
        say(f"scaling: decode {name:12s} " + "  ".join(f"{n:>7,} crops {us:7.1f} us/crop"
                                                    for n, us in out[name].items()))
        del crops
    return out


def scaling_evaluate(cfg, codec, sizes: list[int], rng: np.random.Generator) -> dict:
    """{N: {'dets': actual detections, 'images', 'nms_us', 'evaluate_us'}} (microseconds per detection) for
    generated sets of >= N detections."""
    out = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="posezoo_scaling_") as tmp:
            eval_cfg, dataset, gt, _, (preds, boxes, image_ids) = eval_inputs(cfg, codec, n, rng, tmp)
            start = time.perf_counter()
            rescore_and_nms(eval_cfg, dataset, preds, boxes, image_ids)
            nms = time.perf_counter() - start
            start = time.perf_counter()
            with quiet():
                dataset.evaluate(preds, boxes, image_ids, tmp)
            whole = time.perf_counter() - start
        dets = len(preds)
        out[n] = {"dets": dets, "images": len(gt["images"]), "nms_us": nms / dets * 1e6,
                  "evaluate_us": whole / dets * 1e6}
        say(f"scaling: evaluate {dets:>8,} dets / {len(gt['images']):>6,} images: rescoring+NMS "
            f"{out[n]['nms_us']:6.1f} us/det, whole evaluate {out[n]['evaluate_us']:6.1f} us/det ({whole:.1f} s)")
    return out
