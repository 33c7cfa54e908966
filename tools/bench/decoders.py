"""Stage 7 (--decoders N): every codec's decoder, whatever the YAML says, on N crops of 17 x 64x48 heatmaps,
against its loop reference or, with --official, against the official code."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from posezoo.codecs import compiled

from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.gaussian import GaussianHeatmapCodec, argmax_rows
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec

from .common import alternate_many, make_sync, rates, say, timed
from .inputs import random_boxes, random_outputs
from .official import decode_official
from .references import LoopReference, check_decode, decode_reference


DECODERS_IMAGE_SIZE = (192, 256)  # (w, h): HRNet's 256x192 crops
DECODERS_HEATMAP_SIZE = (48, 64)  # (w, h): 64x48 heatmaps
DECODERS_JOINTS = 17
DECODERS_REF_CROPS = 2000  # default --decoders-ref


def decoder_codecs() -> dict:
    """The codecs the decoders stage compares, each with its official test settings."""
    image, heatmap, sigma = DECODERS_IMAGE_SIZE, DECODERS_HEATMAP_SIZE, 2.0
    return {
        "gaussian": GaussianHeatmapCodec(image, heatmap, sigma, post_process=True),
        "dark": DarkCodec(image, heatmap, sigma, blur_kernel=11),
        "soft_argmax": SoftArgmaxCodec(image, heatmap, sigma, post_process=True, beta=160.0),
        "udp": UDPHeatmapCodec(image, heatmap, sigma, post_process=True),
        "udp_offset": UDPOffsetCodec(image, heatmap, kpd=4.0),
    }


def selected_codecs(names=None) -> dict:
    """decoder_codecs(), or only those named in `names` (in that order); an unknown name is one clear error."""
    codecs = decoder_codecs()
    if names is None:
        return codecs
    unknown = [name for name in names if name not in codecs]
    if unknown or not names:
        raise ValueError(f"--decoder-names: unknown decoder(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(codecs)}")
    return {name: codecs[name] for name in names}


COMPILED_THREADS = (1, 2)  # OpenMP threads of the compiled rows (the official decode is single-threaded NumPy)


def compiled_twins(codec) -> dict:
    """Copies of `codec` that decode with the compiled kernels (``TEST.COMPILE``), one per thread count of
    COMPILED_THREADS, named ``compiled Nt``; none for a codec without a compiled path or where the kernels
    cannot be built here (then compiled.library() has said why, once)."""
    if not hasattr(codec, "compiled") or compiled.library() is None:
        return {}
    twins = {}
    for threads in COMPILED_THREADS:
        twin = copy.copy(codec)
        twin.compiled, twin.compiled_threads = True, threads
        twins[f"compiled {threads}t"] = twin
    return twins


def kernel_build_seconds() -> float:
    """Seconds to build (or load from inductor's on-disk cache) the compiled kernels in this process."""
    start = time.perf_counter()
    compiled.library()
    return time.perf_counter() - start


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
                   tag: str = "[7/7]", names=None) -> dict:
    """Every codec of decoder_codecs() (or those in `names`) on n crops vs its loop reference on the
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
    for name, codec in selected_codecs(names).items():
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


def argmax_floor(outputs: torch.Tensor, batch: int) -> None:
    """The floor of every heatmap decode: one argmax pass (``argmax_rows``) over the maps of `outputs`
    (N, C, H, W), `batch` crops at a time, in one thread on CPU as the decoders run."""
    threads = torch.get_num_threads()
    if outputs.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        for lo in range(0, len(outputs), batch):
            part = outputs[lo:lo + batch]
            argmax_rows(part.reshape(-1, part.shape[2] * part.shape[3]))
    finally:
        torch.set_num_threads(threads)


def reference_chunked(ref: LoopReference, outputs: np.ndarray, center: np.ndarray, scale: np.ndarray,
                      batch: int) -> tuple[np.ndarray, np.ndarray]:
    """ref.run on `batch` crops at a time (as validate() hands the official decode one batch at a time)."""
    parts = [ref.run(outputs[lo:lo + batch], center[lo:lo + batch], scale[lo:lo + batch])
             for lo in range(0, len(outputs), batch)]
    return (np.concatenate([np.asarray(p) for p, _ in parts]),
            np.concatenate([np.asarray(v) for _, v in parts]))


def bench_decoders_official(device, n: int, batch: int, root: str, reps: int, rng: np.random.Generator,
                            tag: str = "[7/7]", names=None) -> dict:
    """Every codec of decoder_codecs() (or those in `names`) side by side with the official decode from the checkouts in `root`
    (official.decode_official; posezoo's loop reference where a checkout is absent, labelled so): both
    decode the same n crops in chunks of `batch`, `reps` times each in turn; the first results are checked
    within 1e-3 px and the scores within the reference's tolerance. On a CPU the codecs with a compiled path
    (DARK, UDP) get rows ``<name> compiled 1t`` / ``2t`` too (compiled_twins), timed in the same rounds."""
    sync = make_sync(device)
    w, h = DECODERS_HEATMAP_SIZE
    out = {}
    if device.type == "cpu":
        seconds = kernel_build_seconds()
        say(f"{tag} decoders: compiled kernels {'built or loaded' if compiled.library() else 'unavailable'} "
            f"in {seconds:.1f} s (inductor's on-disk cache makes a second process's load ~1 s)")
    for name, codec in selected_codecs(names).items():
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

        twins = compiled_twins(codec) if device.type == "cpu" else {}
        fns = {"reference": lambda r=ref, o=outputs, c=center, s=scale: reference_chunked(r, o, c, s, batch),
               "ours": ours, "floor": lambda t=crops: argmax_floor(t[0], batch)}
        for label, twin in twins.items():
            decode_cycled(twin, crops, min(n, batch), batch)  # warm-up (the build happened in compiled_twins)
            fns[label] = lambda c=twin, t=crops: ours(c, t)
        times, first = alternate_many(fns, reps, sync)
        ref_preds, ref_maxvals = first["reference"]
        (ref_min, ref_med), (floor_min, floor_med) = rates(n, times["reference"]), rates(n, times["floor"])
        for label in ["ours", *twins]:
            preds, maxvals = first[label]
            px, vals = check_decode(codec, ref, preds, maxvals, ref_preds, ref_maxvals)
            our_min, our_med = rates(n, times[label])
            row = name if label == "ours" else f"{name} {label}"
            out[row] = {"codec": type(codec).__name__, "reference": ref.name, "official": is_official,
                        "shape": shape, "crops": n, "reps": reps, "ref_crops_s": ref_min,
                        "ref_median_crops_s": ref_med, "crops_s": our_min, "median_crops_s": our_med,
                        "speedup": our_min / ref_min, "median_speedup": our_med / ref_med, "max_px_diff": px,
                        "max_score_diff": vals, "floor_crops_s": floor_min, "floor_median_crops_s": floor_med,
                        "floor_share": our_min / floor_min, "floor_median_share": our_med / floor_med,
                        "bytes_per_s": our_min * float(np.prod(shape)) * 4}
            say(f"{tag} decoders: {row} {n} x {shape} on {device.type}, {reps} alternating runs: "
                f"{'official' if is_official else 'loop reference'} {ref_min:,.0f} / {ref_med:,.0f} crops/s "
                f"(min time / median), posezoo {our_min:,.0f} / {our_med:,.0f}, x{our_min / ref_min:.1f} / "
                f"x{our_med / ref_med:.1f}; argmax floor {floor_min:,.0f} / {floor_med:,.0f} (posezoo reaches "
                f"{our_min / floor_min:.2f} / {our_med / floor_med:.2f} of it; reads the maps at "
                f"{out[row]['bytes_per_s'] / 1e9:.1f} GB/s); max diff {px:.1e} px")
        del outputs, crops, first, ref_preds, ref_maxvals
    return out
