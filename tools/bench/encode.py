"""Stage 2: codec.encode (training targets) against its loop reference on the same random joints."""
from __future__ import annotations

import numpy as np

from .common import ReferenceMismatch, say, timed
from .references import encode_reference


def random_joints(rng: np.random.Generator, n: int, num_joints: int, image_size) -> list:
    """Joints in crop pixels as the dataset hands them to the codec: (K, 3)
    float32, some outside the crop, ~20 % invisible."""
    w, h = image_size
    sets = []
    for _ in range(n):
        joints = np.zeros((num_joints, 3), np.float32)
        joints[:, 0] = rng.uniform(-0.2 * w, 1.2 * w, num_joints)
        joints[:, 1] = rng.uniform(-0.2 * h, 1.2 * h, num_joints)
        vis = np.zeros((num_joints, 3), np.float32)
        vis[:, :2] = (rng.random(num_joints) < 0.8)[:, None]
        sets.append((joints, vis))
    return sets


def bench_encode(cfg, codec, n: int, rng: np.random.Generator, tag: str = "[2/6]") -> dict:
    sets = random_joints(rng, n, cfg.MODEL.NUM_JOINTS, cfg.MODEL.IMAGE_SIZE)
    out = {}
    ref = encode_reference(codec)
    if ref is not None:
        ref_sets = sets[:max(1, n // ref.every)]
        diff = 0.0
        for joints, vis in ref_sets:
            target, weight = codec.encode(joints, vis)
            ref_target, ref_weight = ref.run(joints, vis)
            if target.shape != ref_target.shape or weight.shape != ref_weight.shape:
                raise ReferenceMismatch(f"codec.encode gives shapes {target.shape}/{weight.shape}, {ref.name} "
                                        f"{ref_target.shape}/{ref_weight.shape}")
            diff = max(diff, float(np.abs(target - ref_target).max()), float(np.abs(weight - ref_weight).max()))
        if diff != 0.0:
            raise ReferenceMismatch(f"codec.encode differs from {ref.name} by up to {diff:g}")
        out["encode_max_abs_diff"] = diff
        seconds_ref = timed(lambda it=iter(ref_sets): ref.run(*next(it)), len(ref_sets))
        out["encode_ref_items_s"] = len(ref_sets) / seconds_ref
        out["encode_ref_items"] = len(ref_sets)
    seconds = timed(lambda it=iter(sets): codec.encode(*next(it)), n)
    out["encode_items_s"] = n / seconds
    line = f"{tag} encode: {n} joint sets, codec {n / seconds:.0f}/s"
    if ref is not None:
        out["encode_speedup"] = out["encode_items_s"] / out["encode_ref_items_s"]
        subset = "" if len(ref_sets) == n else f" on the first {len(ref_sets)}"
        line += (f", loop reference {ref.name}{subset} {out['encode_ref_items_s']:.0f}/s "
                 f"(x{out['encode_speedup']:.1f}); max |diff| {out['encode_max_abs_diff']:g}")
    else:
        line += f" (no loop reference for {type(codec).__name__})"
    say(line)
    return out
