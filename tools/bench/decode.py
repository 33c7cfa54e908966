"""Stage 4: codec.decode on the device against its loop reference on the same heatmaps."""
from __future__ import annotations

import numpy as np
import torch

from .common import make_sync, say, timed
from .inputs import random_boxes, random_outputs
from .references import check_decode, decode_reference


def bench_decode(cfg, codec, device, shape, n: int, iters: int, rng: np.random.Generator,
                 tag: str = "[4/6]") -> dict:
    heatmaps = random_outputs(rng, n, shape, codec)
    center, scale = random_boxes(rng, n)
    heatmaps_t = torch.from_numpy(heatmaps).to(device)
    center_t, scale_t = torch.from_numpy(center).to(device), torch.from_numpy(scale).to(device)
    sync = make_sync(device)
    reps, ref_reps = max(3, iters // 10), max(1, iters // 100)
    out = {}
    ref = decode_reference(codec)
    if ref is not None:
        preds, maxvals = codec.decode(heatmaps_t, {"center": center_t, "scale": scale_t})
        ref_preds, ref_maxvals = ref.run(heatmaps, center, scale)
        px, vals = check_decode(codec, ref, preds, maxvals, ref_preds, ref_maxvals)
        out["decode_max_px_diff"], out["decode_max_score_diff"] = px, vals
        seconds_ref = timed(lambda: ref.run(heatmaps, center, scale), ref_reps)
        out["decode_ref_crops_s"] = n * ref_reps / seconds_ref
    codec.decode(heatmaps_t, {"center": center_t, "scale": scale_t})  # warm-up
    seconds = timed(lambda: codec.decode(heatmaps_t, {"center": center_t, "scale": scale_t}), reps, sync)
    out["decode_crops_s"] = n * reps / seconds
    line = f"{tag} decode: {n} x {tuple(shape)} on {device.type}: codec {out['decode_crops_s']:.0f} crops/s"
    if ref is not None:
        out["decode_speedup"] = out["decode_crops_s"] / out["decode_ref_crops_s"]
        line += (f", loop reference {ref.name} (numpy, cpu) {out['decode_ref_crops_s']:.0f} crops/s "
                 f"(x{out['decode_speedup']:.1f}); max diff {px:.2e} px")
    else:
        line += f" (no loop reference for {type(codec).__name__})"
    say(line)
    return out
