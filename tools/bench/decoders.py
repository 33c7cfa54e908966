"""Stage 7 (--decoders N): every codec's decoder, whatever the YAML says, on N crops of 17 x 64x48 heatmaps,
against its loop reference or, with --official, against the official code."""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec

from .common import alternate, make_sync, rates, say, timed
from .inputs import random_boxes, random_outputs
from .official import decode_official
from .references import LoopReference, check_decode, decode_reference


DECODERS_IMAGE_SIZE = (192, 256)  # (w, h): HRNet's 256x192 crops
DECODERS_HEATMAP_SIZE = (48, 64)  # (w, h): 64x48 heatmaps
DECODERS_JOINTS = 17
DECODERS_REF_CROPS = 2000  # default --decoders-ref


def decoder_codecs(names: Sequence[str] | None = None) -> dict:
    """The codecs the decoders stage compares, each with its official test settings; only `names` if given."""
    image, heatmap, sigma = DECODERS_IMAGE_SIZE, DECODERS_HEATMAP_SIZE, 2.0
    codecs = {
        "gaussian": GaussianHeatmapCodec(image, heatmap, sigma, post_process=True),
        "dark": DarkCodec(image, heatmap, sigma, blur_kernel=11),
        "soft_argmax": SoftArgmaxCodec(image, heatmap, sigma, post_process=True, beta=160.0),
        "udp": UDPHeatmapCodec(image, heatmap, sigma, post_process=True),
        "udp_offset": UDPOffsetCodec(image, heatmap, kpd=4.0),
    }
    return {name: codec for name, codec in codecs.items() if names is None or name in names}


def decode_cycled(codec, crops: tuple, count: int, batch: int) -> list:
    """Decode `count` crops of the pool `crops` = (outputs, center, scale) on
    the device, cycling through it, in chunks of `batch` (the pool is a whole
    number of chunks, or at least `count` crops); returns the decodes of the
    pool's first pass."""
    outputs, center, scale = crops
    pool = len(outputs)
    results = []
    for start in range(0, count, batch):
        lo = start % pool
        hi = lo + min(batch, count - start)
        decoded = codec.decode(outputs[lo:hi], {"center": center[lo:hi], "scale": scale[lo:hi]})
        if start < pool:
            results.append(decoded)
    return results


def bench_decoders(device, n: int, batch: int, ref_crops: int, rng: np.random.Generator,
                   tag: str = "[7/7]", names: Sequence[str] | None = None) -> dict:
    """Every codec of decoder_codecs() on n crops vs its loop reference on the
    first min(n, ref_crops). The crops come from a pool of min(n, ref_crops
    rounded up to whole batches) generated crops, cycled chunk by chunk (a
    pool of N crops of 51 x 64x48 floats would not fit in memory for large N).
    The reference pass is timed and then compared with the vectorised decode
    of the same crops, before the vectorised decoder is timed on all n."""
    sync = make_sync(device)
    w, h = DECODERS_HEATMAP_SIZE
    pool = min(n, batch * -(-ref_crops // batch))  # a whole number of chunks when n is larger
    m = min(n, ref_crops)
    out = {}
    for name, codec in decoder_codecs(names).items():
        ref = decode_reference(codec)
        shape = (DECODERS_JOINTS * getattr(codec, "channels_per_joint", 1), h, w)
        outputs = random_outputs(rng, pool, shape, codec)
        center, scale = random_boxes(rng, pool)
        crops = tuple(torch.from_numpy(a).to(device) for a in (outputs, center, scale))

        ref.run(outputs[:1], center[:1], scale[:1])  # warm-up (OpenCV, numpy.linalg)
        start = time.perf_counter()
        ref_preds, ref_maxvals = ref.run(outputs[:m], center[:m], scale[:m])
        ref_seconds = time.perf_counter() - start
        parts = decode_cycled(codec, crops, m, batch)  # warm-up, and the decodes checked
        preds = torch.cat([p for p, _ in parts])
        maxvals = torch.cat([v for _, v in parts])
        px, vals = check_decode(codec, ref, preds, maxvals, ref_preds, ref_maxvals)
        seconds = timed(lambda c=codec, t=crops: decode_cycled(c, t, n, batch), 1, sync)
        out[name] = {"codec": type(codec).__name__, "reference": ref.name, "shape": shape, "crops": n,
                     "crops_s": n / seconds, "ref_crops": m, "ref_crops_s": m / ref_seconds,
                     "speedup": (n / seconds) / (m / ref_seconds), "max_px_diff": px, "max_score_diff": vals}
        say(f"{tag} decoders: {name} {n} x {shape} on {device.type}: {n / seconds:,.0f} crops/s; loop "
            f"{ref.name} on the first {m}: {m / ref_seconds:,.0f} crops/s; max diff {px:.1e} px")
        del outputs, crops, parts, preds, maxvals
    return out


def reference_chunked(ref: LoopReference, outputs: np.ndarray, center: np.ndarray, scale: np.ndarray,
                      batch: int) -> tuple[np.ndarray, np.ndarray]:
    """ref.run on `batch` crops at a time (as validate() hands the official decode one batch at a time)."""
    parts = [ref.run(outputs[lo:lo + batch], center[lo:lo + batch], scale[lo:lo + batch])
             for lo in range(0, len(outputs), batch)]
    return (np.concatenate([np.asarray(p) for p, _ in parts]),
            np.concatenate([np.asarray(v) for _, v in parts]))


def bench_decoders_official(device, n: int, batch: int, root: str, reps: int, rng: np.random.Generator,
                            tag: str = "[7/7]", names: Sequence[str] | None = None) -> dict:
    """Every codec of decoder_codecs() side by side with the official decode from the checkouts in `root`
    (official.decode_official; posezoo's loop reference where a checkout is absent, labelled so): both
    decode the same n crops in chunks of `batch`, `reps` times each in turn; the first results are checked
    within 1e-3 px and the scores within the reference's tolerance."""
    sync = make_sync(device)
    w, h = DECODERS_HEATMAP_SIZE
    out = {}
    for name, codec in decoder_codecs(names).items():
        ref, is_official, note = decode_official(root, codec, decode_reference(codec))
        say(f"{tag} decoders: {name}: {note}")
        shape = (DECODERS_JOINTS * getattr(codec, "channels_per_joint", 1), h, w)
        outputs = random_outputs(rng, n, shape, codec)
        center, scale = random_boxes(rng, n)
        crops = tuple(torch.from_numpy(a).to(device) for a in (outputs, center, scale))
        ref.run(outputs[:1], center[:1], scale[:1])  # warm-up (imports, OpenCV, numpy.linalg)
        decode_cycled(codec, crops, min(n, batch), batch)

        def ours(c=codec, t=crops):
            parts = decode_cycled(c, t, n, batch)
            return torch.cat([p for p, _ in parts]), torch.cat([v for _, v in parts])

        ref_times, our_times, (ref_preds, ref_maxvals), (preds, maxvals) = alternate(
            lambda r=ref, o=outputs, c=center, s=scale: reference_chunked(r, o, c, s, batch), ours, reps, sync)
        px, vals = check_decode(codec, ref, preds, maxvals, ref_preds, ref_maxvals)
        (ref_min, ref_med), (our_min, our_med) = rates(n, ref_times), rates(n, our_times)
        out[name] = {"codec": type(codec).__name__, "reference": ref.name, "official": is_official,
                     "shape": shape, "crops": n, "reps": reps, "ref_crops_s": ref_min, "ref_median_crops_s": ref_med,
                     "crops_s": our_min, "median_crops_s": our_med, "speedup": our_min / ref_min,
                     "median_speedup": our_med / ref_med, "max_px_diff": px, "max_score_diff": vals}
        say(f"{tag} decoders: {name} {n} x {shape} on {device.type}, {reps} alternating runs: "
            f"{'official' if is_official else 'loop reference'} {ref_min:,.0f} / {ref_med:,.0f} crops/s "
            f"(min time / median), posezoo {our_min:,.0f} / {our_med:,.0f}, x{our_min / ref_min:.1f}; "
            f"max diff {px:.1e} px")
        del outputs, crops, preds, maxvals, ref_preds, ref_maxvals
    return out
