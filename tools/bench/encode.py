"""Stage 2: codec.encode (training targets) against its loop reference on the same random joints."""
from __future__ import annotations

import numpy as np

from .common import ReferenceMismatch, alternate, say, side_row, timed
from .official import LOOP_LABEL, encode_official
from .references import LoopReference, encode_reference


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


def check_encode(codec, ref: LoopReference, sets: list, ours: list | None = None, theirs: list | None = None) -> float:
    """0.0 when codec.encode and ref.run give identical targets and weights on every joint set (their outputs
    `ours` / `theirs` when already computed), else ReferenceMismatch."""
    ours = ours or [codec.encode(joints, vis) for joints, vis in sets]
    theirs = theirs or [ref.run(joints, vis) for joints, vis in sets]
    diff = 0.0
    for (target, weight), (ref_target, ref_weight) in zip(ours, theirs):
        if target.shape != ref_target.shape or weight.shape != ref_weight.shape:
            raise ReferenceMismatch(f"codec.encode gives shapes {target.shape}/{weight.shape}, {ref.name} "
                                    f"{ref_target.shape}/{ref_weight.shape}")
        diff = max(diff, float(np.abs(target - ref_target).max()), float(np.abs(weight - ref_weight).max()))
    if diff != 0.0:
        raise ReferenceMismatch(f"codec.encode differs from {ref.name} by up to {diff:g}")
    return diff


def bench_encode(cfg, codec, n: int, rng: np.random.Generator, tag: str = "[2/6]", official: str | None = None,
                 reps: int = 3) -> dict:
    """codec.encode on n joint sets against its loop reference and, with `official` (a folder of checkouts),
    side by side with the official generate_target (side_by_side_encode)."""
    sets = random_joints(rng, n, cfg.MODEL.NUM_JOINTS, cfg.MODEL.IMAGE_SIZE)
    out = {}
    ref = encode_reference(codec)
    if ref is not None:
        ref_sets = sets[:max(1, n // ref.every)]
        out["encode_max_abs_diff"] = check_encode(codec, ref, ref_sets)
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
    if official:
        out["encode_side_by_side"] = side_by_side_encode(cfg, codec, sets, official, reps, tag)
    return out


def side_by_side_encode(cfg, codec, sets: list, root: str, reps: int, tag: str) -> list:
    """codec.encode and the official generate_target (official.encode_official; posezoo's loop reference,
    labelled so, where the checkout is absent) on the same joint sets, `reps` times each in turn; their
    outputs must be identical. UDP offset: the first 1/50 of the sets, as for its loop reference."""
    loop = encode_reference(codec)
    ref, note = encode_official(root, codec, cfg.MODEL.NUM_JOINTS)
    is_official = ref is not None
    if ref is None and loop is None:
        say(f"{tag} encode: {note}, and no loop reference: not compared")
        return []
    if ref is None:
        ref = loop
        say(f"{tag} encode: {note}: against the {LOOP_LABEL}")
    subset = sets[:max(1, len(sets) // (loop.every if loop else 1))]
    ref_times, our_times, theirs, ours = alternate(lambda: [ref.run(j, v) for j, v in subset],
                                                   lambda: [codec.encode(j, v) for j, v in subset], reps)
    check_encode(codec, ref, subset, ours, theirs)
    row = side_row(f"encode {type(codec).__name__}", ref.name, is_official, len(subset), ref_times, our_times,
                   "identical targets and weights", "crops/s")
    say(f"{tag} encode side by side: {len(subset)} joint sets, {reps} alternating runs: {ref.name} "
        f"{row['ref_rate']:,.0f} / {row['ref_median_rate']:,.0f} crops/s (min time / median), posezoo "
        f"{row['rate']:,.0f} / {row['median_rate']:,.0f}, x{row['speedup']:.1f}; {row['check']}")
    return [row]
