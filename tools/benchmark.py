"""Throughput of every stage of the pipeline for one experiment, in one process.

    python tools/benchmark.py --cfg experiments/synthetic/pose_resnet_18_128x96.yaml
    python tools/benchmark.py --cfg X.yaml --device cuda --iters 400 --num-dets 100000 DATASET.ROOT /fast/disk/coco
    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --stages forward
    python tools/benchmark.py --cfg X.yaml --stages none --decoders 10000

For the model, codec and dataset named in the YAML (after the KEY VALUE
overrides) it measures, in this order (--stages picks some of the first six):

1. data:     dataset[i] with is_train True (read + augment + warp + encode) and
             False (read + warp + encode), crops/s, in the main process; the
             only stage that needs the dataset on disk;
2. encode:   codec.encode vs its per-joint loop reference (encode_reference:
             tests/oracles/reference*.py), on the same random joints, checked
             identical before timing (UDP's offset reference loops over every
             pixel: it runs on the first 1/50 of the sets only);
3. forward:  crops/s of the model (random weights, eval mode, no_grad) at
             batch TEST.BATCH_SIZE_PER_GPU, without and with the flip test
             (image + mirror in one forward, flipped back and averaged, as
             core/function.predict does); parameters and GMACs. The flip pairs
             are the dataset's after the data stage, else DATASET.FLIP_PAIRS or
             COCO's for 17 joints (what COCODataset would use), else none;
4. decode:   codec.decode on the device vs its numpy loop reference
             (decode_reference) on the same heatmaps of the model's output
             shape, checked within 1e-3 px (and the scores) before timing;
5. evaluate: on >= --num-dets generated detections of a generated COCO person
             set (written to a temporary folder and loaded by the real
             COCODataset with detected boxes): rescoring + OKS-NMS alone,
             then the whole COCODataset.evaluate (rescoring, NMS, results JSON,
             COCOeval), detections/s; and posezoo.nms.oks_nms vs the loop
             reference on the same per-image groups, checked identical;
6. memory:   peak CUDA memory allocated (on CUDA) and the peak RSS of the process;
7. decoders  (opt-in, --decoders N): every codec, whatever the YAML says
             (gaussian + post-process, DARK blur 11, LPN soft-argmax beta 160,
             UDP gaussian + post-process, UDP offset KPD 4), decodes N crops of
             17 x 64x48 heatmaps (offset: 51 channels) on the device in chunks of
             --decode-batch, and its loop reference decodes the first
             min(N, --decoders-ref) of them (timed, reported per crop); the two
             are checked within 1e-3 px before the vectorised decoder is timed.
             It runs after the memory stage, which therefore does not include it.

Decode inputs are Gaussian blobs plus uniform noise, some peaks near or over
the border, ~5 % of the maps entirely negative (offset outputs: such a blob
as the classification map, (joint - pixel) / KPD plus noise as the offsets).
Pure noise is no test input: there the Taylor steps of DARK and UDP are
ill-conditioned and float rounding alone separates the batched decoders from
the loops (on random^8 maps with these boxes: DARK 3e-3 px, UDP 0.8 px).

--iters N scales stages 1-4: N samples per transform, 20 N joint sets for
encode, max(2, N / 25) forward batches, max(3, N / 10) vectorised and
max(1, N / 100) reference decode passes. Missing synthetic data is generated
on first use (DATASET.ROOT can be pointed elsewhere with an override).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import _setup  # puts lib/ on the path
import numpy as np
import torch

from posezoo.codecs import build_codec
from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec
from posezoo.config import load_config, update_config
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import COCO_FLIP_PAIRS, COCO_SIGMAS, COCODataset
from posezoo.datasets.synthetic import KEYPOINT_NAMES, SKELETON
from posezoo.models import build_model
from posezoo.core.evaluate import instance_scores, nms_per_image
from posezoo.nms import oks_nms
from posezoo.utils.transforms import PIXEL_STD
from posezoo.utils.utils import configure_backends, count_flops, count_parameters, input_shape, select_device

# the loop oracles live with the tests (tests/oracles), outside the package
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from oracles import reference as _reference  # noqa: E402
from oracles import reference_dark as _reference_dark  # noqa: E402
from oracles import reference_soft_argmax as _reference_soft_argmax  # noqa: E402
from oracles import reference_udp as _reference_udp  # noqa: E402

STAGES = ("data", "encode", "forward", "decode", "evaluate", "memory")
MAX_DECODE_PX_DIFF = 1e-3
DECODERS_REF_CROPS = 2000


class ReferenceMismatch(RuntimeError):
    """A vectorised function disagrees with its loop reference."""


def parse_stages(text: str) -> list:
    """``--stages`` value -> the chosen stages in pipeline order; 'none' = no stage."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in STAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(STAGES)} (comma-separated) or none")
    return [name for name in STAGES if name in names]


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "DATASET.ROOT /tmp/synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where the model forward and decode run (default: cuda if available, else cpu)")
    parser.add_argument("--stages", type=parse_stages, default=list(STAGES), metavar="LIST",
                        help=f"comma-separated stages to run, from {','.join(STAGES)} (default: all), or none "
                             "(e.g. with --decoders); only data needs the dataset on disk")
    parser.add_argument("--iters", type=int, default=100, help="scales the work of stages 1-4 (default 100)")
    parser.add_argument("--num-dets", type=int, default=50000,
                        help="at least this many generated detections for the evaluation stage (default 50000)")
    parser.add_argument("--decode-batch", type=int, default=1024,
                        help="heatmaps per decode call, in the decode and decoders stages (default 1024)")
    parser.add_argument("--decoders", type=int, default=0, metavar="N",
                        help="also run every codec's decoder on N crops of 17 x 64x48 heatmaps against its loop "
                             "reference (default 0: skip)")
    parser.add_argument("--decoders-ref", type=int, default=DECODERS_REF_CROPS, metavar="M",
                        help=f"crops the loop references decode in the decoders stage: the first min(N, M) "
                             f"(default {DECODERS_REF_CROPS})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    for name in ("iters", "num_dets", "decode_batch", "decoders_ref", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.decoders < 0:
        parser.error("--decoders must be at least 0")
    if not args.stages and not args.decoders:
        parser.error("--stages none and no --decoders: nothing to run")
    return args


def choose_device(cfg, requested) -> torch.device:
    if requested is None:
        return select_device(cfg)
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but CUDA is not available in this PyTorch build / machine")
        return torch.device("cuda", cfg.GPUS[0] if cfg.GPUS else 0)
    return torch.device("cpu")


def make_sync(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn, reps: int, sync=lambda: None) -> float:
    """Seconds for `reps` calls of fn (device work included)."""
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return time.perf_counter() - start


def _last(outputs):
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def say(line: str) -> None:
    print(line, flush=True)


def quiet():
    """Silence pycocotools' progress prints ('creating index...', the COCOeval table)."""
    return contextlib.redirect_stdout(io.StringIO())


# --------------------------------------------------------------------------- 1. data pipeline
def bench_data(cfg, codec, n: int, tag: str = "[1/6]") -> dict:
    out = {}
    for key, image_set, is_train in (("train", cfg.DATASET.TRAIN_SET, True), ("test", cfg.DATASET.TEST_SET, False)):
        with quiet():
            dataset = build_dataset(cfg, image_set, is_train, codec)
        if len(dataset) == 0:
            raise ValueError(f"dataset {cfg.DATASET.DATASET} {image_set} has no person box to benchmark")
        dataset[0]  # warm-up (imports, first file read)
        seconds = timed(lambda it=iter(range(n)): dataset[next(it) % len(dataset)], n)
        out[f"data_{key}_crops_s"] = n / seconds
        out[f"_{key}_set"] = dataset
        say(f"{tag} data {key:5s} ({image_set}, {len(dataset)} boxes): {n} samples in {seconds:.2f} s "
            f"-> {n / seconds:.1f} crops/s")
    return out


# --------------------------------------------------------------------------- loop references
@dataclass(frozen=True)
class LoopReference:
    """A per-joint loop reference from tests/oracles/reference*.py, bound to one codec's settings."""
    name: str
    run: Callable
    every: int = 1  # encode: the reference gets the first max(1, n // every) joint sets only
    score_tol: float = 0.0  # decode: largest |score difference| accepted (0: identical scores)


def encode_reference(codec) -> LoopReference | None:
    """The loop reference of ``codec.encode``: run(joints (K, 3), joints_vis (K, 3)) -> (target, weight),
    or None for a codec without one (a user's plugin)."""
    if isinstance(codec, SoftArgmaxCodec):  # LPN trains on HRNet's targets
        codec = codec.gaussian
    if isinstance(codec, GaussianHeatmapCodec):
        return LoopReference("_reference.generate_target_loop", lambda joints, vis: _reference.generate_target_loop(
            joints, vis, codec.image_size, codec.heatmap_size, codec.sigma))
    if isinstance(codec, DarkCodec):
        return LoopReference("_reference_dark.generate_target_dark_loop",
                             lambda joints, vis: _reference_dark.generate_target_dark_loop(
                                 codec.to_heatmap(joints), vis, codec.heatmap_size, codec.sigma))
    if isinstance(codec, UDPHeatmapCodec):
        return LoopReference("_reference_udp.generate_udp_gaussian_loop",
                             lambda joints, vis: _reference_udp.generate_udp_gaussian_loop(
                                 joints, vis, codec.image_size, codec.heatmap_size, codec.sigma))
    if isinstance(codec, UDPOffsetCodec):  # a Python loop over every pixel of every joint
        return LoopReference("_reference_udp.generate_udp_offset_loop",
                             lambda joints, vis: _reference_udp.generate_udp_offset_loop(
                                 joints, vis, codec.image_size, codec.heatmap_size, codec.kpd), every=50)
    return None


def decode_reference(codec) -> LoopReference | None:
    """The loop reference of ``codec.decode``: run(numpy outputs (N, C, H, W), center (N, 2), scale (N, 2))
    -> (preds (N, K, 2), maxvals (N, K, 1)), or None for a codec without one (a user's plugin)."""
    if isinstance(codec, GaussianHeatmapCodec):
        return LoopReference("_reference.get_final_preds_loop", lambda out, center, scale: (
            _reference.get_final_preds_loop(out, center, scale, codec.post_process)))
    if isinstance(codec, DarkCodec):
        return LoopReference("_reference_dark.get_final_preds_dark_loop", lambda out, center, scale: (
            _reference_dark.get_final_preds_dark_loop(out, center, scale, codec.blur_kernel)))
    if isinstance(codec, SoftArgmaxCodec):
        return LoopReference("_reference_soft_argmax.get_final_preds_soft_argmax_loop", lambda out, center, scale: (
            _reference_soft_argmax.get_final_preds_soft_argmax_loop(out, center, scale, codec.beta,
                                                                     codec.post_process, codec.bias)))
    if isinstance(codec, UDPHeatmapCodec):
        return LoopReference("_reference_udp.get_final_preds_udp_loop", lambda out, center, scale: (
            _reference_udp.get_final_preds_udp_loop(out, center, scale, codec.post_process)))
    if isinstance(codec, UDPOffsetCodec):  # scores: OpenCV's float32 blur vs the codec's float64 one
        return LoopReference("_reference_udp.get_final_preds_offset_loop", lambda out, center, scale: (
            _reference_udp.get_final_preds_offset_loop(out, center, scale, codec.kpd)), score_tol=1e-5)
    return None


def check_decode(codec, ref: LoopReference, preds, maxvals, ref_preds, ref_maxvals) -> tuple[float, float]:
    """Max |px| and |score| differences of a decode from its reference; ReferenceMismatch beyond the limits."""
    preds, maxvals = preds.cpu().numpy(), maxvals.cpu().numpy()
    if preds.shape != ref_preds.shape or maxvals.shape != ref_maxvals.shape:
        raise ReferenceMismatch(f"{type(codec).__name__}.decode gives shapes {preds.shape}/{maxvals.shape}, "
                                f"{ref.name} {ref_preds.shape}/{ref_maxvals.shape}")
    px = float(np.abs(preds - ref_preds).max()) if preds.size else 0.0
    vals = float(np.abs(maxvals - ref_maxvals).max()) if maxvals.size else 0.0
    if not px < MAX_DECODE_PX_DIFF or not vals <= ref.score_tol:
        raise ReferenceMismatch(f"{type(codec).__name__}.decode differs from {ref.name}: {px:g} px "
                                f"(limit {MAX_DECODE_PX_DIFF:g}), scores {vals:g} (limit {ref.score_tol:g})")
    return px, vals


# --------------------------------------------------------------------------- 2. target generation
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


# --------------------------------------------------------------------------- 3. forward
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
        return _last(model(x))

    def flipped():
        both = _last(model(torch.cat([x, x.flip(3)], dim=0)))
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
        return codec.decode_crop(_last(model(x)), x)

    with torch.no_grad():
        for _ in range(3 if device.type == "cuda" else 1):
            forward_decode()
        seconds = timed(forward_decode, n_batches, sync)
    out = {"params": count_parameters(model), "gmacs": count_flops(model, input_shape(model, cfg)) / 1e9,
           "forward_crops_s": batch * n_batches / seconds}
    say(f"{tag} forward + decode: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} frames/s; "
        f"{out['params'] / 1e6:.2f} M params, {out['gmacs']:.3f} GMACs")
    return out


# --------------------------------------------------------------------------- 4. decode
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


# --------------------------------------------------------------------------- 5. evaluation
def make_eval_set(rng: np.random.Generator, num_dets: int, sigmas: np.ndarray, width: int = 640,
                  height: int = 480) -> tuple[dict, list, np.ndarray]:
    """A COCO person GT (5-15 people per image) and detections: ~90 % of the
    people found with keypoint noise of OKS-like size, ~30 % of those found
    twice (noisier, lower score), 0-3 false positives per image. Returns the GT
    dict, the detections in COCO results format and their keypoints (N, K, 3)."""
    k = len(sigmas)
    kappa = 2 * np.asarray(sigmas)
    images, anns, det_boxes, det_scores, det_kpts, det_images = [], [], [], [], [], []
    next_image, total = 1, 0
    while total < num_dets:
        n_img = int(np.ceil((num_dets - total) / 13.0)) + 1
        image_ids = np.arange(next_image, next_image + n_img)
        next_image += n_img
        images += [{"id": int(i), "file_name": f"{i:012d}.jpg", "width": width, "height": height}
                   for i in image_ids]
        per_image = rng.integers(5, 16, n_img)
        owner = np.repeat(image_ids, per_image)
        p = len(owner)
        bw, bh = rng.uniform(20, 250, p), rng.uniform(40, 400, p)
        bw, bh = np.minimum(bw, width - 1), np.minimum(bh, height - 1)
        x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
        kx = x0[:, None] + rng.random((p, k)) * bw[:, None]
        ky = y0[:, None] + rng.random((p, k)) * bh[:, None]
        vis = rng.choice(3, size=(p, k), p=[0.15, 0.25, 0.6])
        area = bw * bh * 0.6
        gt = np.stack([np.where(vis > 0, kx, 0.0), np.where(vis > 0, ky, 0.0), vis], axis=2).round(2)
        for j in range(p):
            anns.append({"id": len(anns) + 1, "image_id": int(owner[j]), "category_id": 1, "iscrowd": 0,
                         "bbox": [round(float(v), 2) for v in (x0[j], y0[j], bw[j], bh[j])],
                         "area": round(float(area[j]), 2), "keypoints": gt[j].reshape(-1).tolist(),
                         "num_keypoints": int((vis[j] > 0).sum())})

        found = np.flatnonzero(rng.random(p) < 0.9)
        twice = found[rng.random(len(found)) < 0.3]
        src = np.concatenate([found, twice])
        noise = rng.uniform(0.2, 1.2, len(src))
        noise[len(found):] *= 1.5
        std = 0.5 * kappa[None, :] * np.sqrt(area[src])[:, None] * noise[:, None]
        kpts = np.stack([kx[src] + rng.standard_normal(std.shape) * std,
                         ky[src] + rng.standard_normal(std.shape) * std, rng.uniform(0.05, 1.0, std.shape)], axis=2)
        jitter = 1 + 0.05 * rng.standard_normal((len(src), 4))
        boxes = np.stack([x0[src], y0[src], bw[src], bh[src]], axis=1) * jitter
        scores = rng.uniform(0.5, 1.0, len(src))
        scores[len(found):] *= 0.8

        n_fp = rng.integers(0, 4, n_img)
        fp_owner = np.repeat(image_ids, n_fp)
        f = len(fp_owner)
        fw, fh = rng.uniform(20, 200, f), rng.uniform(40, 300, f)
        fx, fy = rng.uniform(0, width - fw), rng.uniform(0, height - fh)
        fp_kpts = np.stack([fx[:, None] + rng.random((f, k)) * fw[:, None],
                            fy[:, None] + rng.random((f, k)) * fh[:, None], rng.uniform(0.05, 0.7, (f, k))], axis=2)

        det_images.append(np.concatenate([owner[src], fp_owner]))
        det_boxes.append(np.concatenate([boxes, np.stack([fx, fy, fw, fh], axis=1)]))
        det_scores.append(np.concatenate([scores, rng.uniform(0.05, 0.6, f)]))
        det_kpts.append(np.concatenate([kpts, fp_kpts]))
        total += len(src) + f

    det_images, det_boxes = np.concatenate(det_images), np.concatenate(det_boxes).round(2)
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], 1.0)
    # a detector's box starts inside its image (the jitter can push one past the edge)
    det_boxes[:, 0] = np.minimum(det_boxes[:, 0], width - 1)
    det_boxes[:, 1] = np.minimum(det_boxes[:, 1], height - 1)
    det_scores, det_kpts = np.concatenate(det_scores).round(6), np.concatenate(det_kpts)
    order = np.argsort(det_images, kind="stable")  # detector output comes image by image
    dets = [{"image_id": int(det_images[i]), "category_id": 1, "bbox": det_boxes[i].tolist(),
             "score": float(det_scores[i])} for i in order]
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
                          "skeleton": [list(s) for s in SKELETON]}]}
    return gt, dets, det_kpts[order]


def rescore_and_nms(cfg, dataset, preds, boxes, image_ids) -> tuple[np.ndarray, np.ndarray]:
    """COCODataset.evaluate's rescoring and per-image NMS, step for step (the
    results JSON it writes is checked against this)."""
    rescored = instance_scores(preds, boxes[:, 5], cfg.TEST.IN_VIS_THRE)
    kept = nms_per_image(preds, rescored, boxes[:, 4], image_ids, cfg.TEST.OKS_THRE, dataset.sigmas, cfg.TEST.SOFT_NMS)
    return rescored, np.concatenate([rows for _, rows in kept])


def bench_evaluate(cfg, codec, num_dets: int, rng: np.random.Generator, tag: str = "[5/6]") -> dict:
    sigmas = np.asarray(COCO_SIGMAS) / 10.0
    with tempfile.TemporaryDirectory(prefix="posezoo_bench_") as tmp:
        gt, dets, kpts = make_eval_set(rng, num_dets, sigmas)
        os.makedirs(os.path.join(tmp, "annotations"))
        with open(os.path.join(tmp, "annotations", "person_keypoints_bench.json"), "w") as f:
            json.dump(gt, f)
        det_file = os.path.join(tmp, "detections.json")
        with open(det_file, "w") as f:
            json.dump(dets, f)
        eval_cfg = update_config(cfg, [
            "DATASET.DATASET", "coco", "DATASET.ROOT", tmp, "MODEL.NUM_JOINTS", 17, "DATASET.SELECT_DATA", False,
            "DATASET.FLIP_PAIRS", [], "DATASET.OKS_SIGMAS", [], "DATASET.JOINTS_WEIGHT", [],
            "DATASET.UPPER_BODY_IDS", [], "TEST.USE_GT_BBOX", False, "TEST.COCO_BBOX_FILE", det_file,
            "TEST.IMAGE_THRE", 0.0, "TEST.BBOX_THRE", 1.0])
        with quiet():
            dataset = COCODataset(eval_cfg, "bench", False, codec)
        if len(dataset.db) != len(dets):
            raise RuntimeError(f"the COCO dataset kept {len(dataset.db)} of {len(dets)} generated detections")
        # what core/function.predict hands to evaluate: image coords + scores, and per box
        # center, scale, area, score (here the keypoints are the generated ones)
        preds = kpts.astype(np.float64)
        center = np.stack([rec["center"] for rec in dataset.db]).astype(np.float64)
        scale = np.stack([rec["scale"] for rec in dataset.db]).astype(np.float64)
        area = np.prod(scale * PIXEL_STD, axis=1, keepdims=True)
        score = np.array([[rec["score"] for rec in dataset.db]])
        boxes = np.concatenate([center, scale, area, score.T], axis=1)
        image_ids = np.array([rec["image_id"] for rec in dataset.db])
        n = len(preds)

        start = time.perf_counter()
        rescored, kept = rescore_and_nms(eval_cfg, dataset, preds, boxes, image_ids)
        seconds_nms = time.perf_counter() - start

        start = time.perf_counter()
        with quiet():
            _, ap = dataset.evaluate(preds, boxes, image_ids, tmp)
        seconds_eval = time.perf_counter() - start
        with open(os.path.join(tmp, "results", "keypoints_bench_results_0.json")) as f:
            written = [r["score"] for r in json.load(f)]
        if not np.array_equal(np.asarray(written), rescored[kept]):
            raise ReferenceMismatch("COCODataset.evaluate wrote other detections than its rescoring + NMS "
                                    f"replayed here ({len(written)} vs {len(kept)})")

        # posezoo.nms.oks_nms vs the loop reference on the same per-image groups
        groups = [np.flatnonzero(image_ids == i) for i in np.unique(image_ids)]
        args = [(preds[idx], rescored[idx], boxes[idx, 4]) for idx in groups]
        thre = eval_cfg.TEST.OKS_THRE
        start = time.perf_counter()
        fast = [oks_nms(k, s, a, thre, dataset.sigmas) for k, s, a in args]
        seconds_fast = time.perf_counter() - start
        start = time.perf_counter()
        slow = [_reference.oks_nms_loop(k, s, a, thre, dataset.sigmas) for k, s, a in args]
        seconds_slow = time.perf_counter() - start
        same = all(list(a) == list(b) for a, b in zip(fast, slow))
        if not same:
            bad = next(i for i, (a, b) in enumerate(zip(fast, slow)) if list(a) != list(b))
            raise ReferenceMismatch(f"oks_nms keeps {fast[bad]} but oks_nms_loop keeps {slow[bad]} "
                                    f"in image group {bad}")
    out = {"eval_num_dets": n, "eval_num_images": len(gt["images"]), "eval_num_gt": len(gt["annotations"]),
           "eval_kept": int(len(kept)), "eval_ap": float(ap),
           "eval_rescore_nms_dets_s": n / seconds_nms, "eval_total_dets_s": n / seconds_eval,
           "eval_total_s": seconds_eval, "nms_dets_s": n / seconds_fast, "nms_ref_dets_s": n / seconds_slow,
           "nms_speedup": seconds_slow / seconds_fast, "nms_identical": same}
    say(f"{tag} evaluate: {n} detections, {out['eval_num_images']} images, {out['eval_num_gt']} GT people, "
        f"{out['eval_kept']} kept by NMS, AP {ap:.3f}: rescoring+NMS {out['eval_rescore_nms_dets_s']:.0f} dets/s, "
        f"whole evaluate {seconds_eval:.1f} s = {out['eval_total_dets_s']:.0f} dets/s; oks_nms "
        f"{out['nms_dets_s']:.0f} dets/s vs loop {out['nms_ref_dets_s']:.0f} dets/s (x{out['nms_speedup']:.1f})")
    return out


# --------------------------------------------------------------------------- 6. memory
def peak_memory(device: torch.device, tag: str = "[6/6]") -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10
    out = {"host_peak_rss_mb": rss_mb}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
        out["peak_memory_kind"] = "cuda max_memory_allocated"
    else:
        out["peak_memory_mb"] = rss_mb
        out["peak_memory_kind"] = "process peak RSS"
    say(f"{tag} peak memory: {out['peak_memory_mb']:.0f} MiB ({out['peak_memory_kind']}); "
        f"host peak RSS {rss_mb:.0f} MiB")
    return out


# --------------------------------------------------------------------------- 7. every decoder
DECODERS_IMAGE_SIZE = (192, 256)  # (w, h): HRNet's 256x192 crops
DECODERS_HEATMAP_SIZE = (48, 64)  # (w, h): 64x48 heatmaps
DECODERS_JOINTS = 17


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
                   tag: str = "[7/7]") -> dict:
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
    for name, codec in decoder_codecs().items():
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


def decoders_table(decoders: dict, device) -> str:
    rows = []
    for name, d in decoders.items():
        rows.append((name, d["codec"], f"{d['crops_s']:,.0f}", f"{d['ref_crops_s']:,.0f}", f"x{d['speedup']:.1f}",
                     f"{d['max_px_diff']:.1e}"))
    first = next(iter(decoders.values()))
    loop = f"loop crops/s (numpy, first {first['ref_crops']})"
    header = ("codec", "class", f"vectorised crops/s ({device.type})", loop, "speedup", "max px diff")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{wd}}}" for i, wd in enumerate(widths))
    title = (f"decoders: {first['crops']} crops of {DECODERS_JOINTS} x {DECODERS_HEATMAP_SIZE[1]}x"
             f"{DECODERS_HEATMAP_SIZE[0]} heatmaps (udp_offset: {3 * DECODERS_JOINTS} channels); the loop "
             f"references decode the first {first['ref_crops']} of them")
    lines = [title] + [fmt.format(*row).rstrip() for row in [header, ["-" * wd for wd in widths]] + rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- report
def summary_table(r: dict) -> str:
    """The stages that ran, one row per measurement."""
    def rate(key, unit):
        return f"{r[key]:,.1f} {unit}" if key in r else "-"

    def speed(key):
        return f"x{r[key]:.1f}" if key in r else "-"

    rows = []
    if "data_train_crops_s" in r:
        rows += [("data: train transform", rate("data_train_crops_s", "crops/s"), "-", "-", "read+augment+warp+encode"),
                 ("data: test transform", rate("data_test_crops_s", "crops/s"), "-", "-", "read+warp+encode")]
    if "encode_items_s" in r:
        note = "-"
        if "encode_max_abs_diff" in r:
            note = f"max |diff| {r['encode_max_abs_diff']:g}"
            if r["encode_ref_items"] != r["encode_items"]:
                note += f"; loop on {r['encode_ref_items']} of {r['encode_items']} sets"
        rows.append(("encode (targets)", rate("encode_items_s", "crops/s"), rate("encode_ref_items_s", "crops/s"),
                     speed("encode_speedup"), note))
    if "forward_crops_s" in r and "forward_flip_crops_s" not in r:
        rows.append(("forward + decode", rate("forward_crops_s", "frames/s"), "-", "-", f"batch {r['batch']}"))
    elif "forward_crops_s" in r:
        rows += [("forward", rate("forward_crops_s", "crops/s"), "-", "-", f"batch {r['batch']}"),
                 ("forward + flip", rate("forward_flip_crops_s", "crops/s"), "-", "-", "image+mirror in one forward")]
    if "decode_crops_s" in r:
        rows.append(("decode", rate("decode_crops_s", "crops/s"), rate("decode_ref_crops_s", "crops/s"),
                     speed("decode_speedup"),
                     f"max diff {r['decode_max_px_diff']:.1e} px" if "decode_max_px_diff" in r else "-"))
    if "eval_total_dets_s" in r:
        rows += [("eval: rescoring + OKS-NMS", rate("eval_rescore_nms_dets_s", "dets/s"), "-", "-",
                  f"{r['eval_num_dets']} dets"),
                 ("eval: OKS-NMS alone", rate("nms_dets_s", "dets/s"), rate("nms_ref_dets_s", "dets/s"),
                  speed("nms_speedup"), "identical keeps" if r.get("nms_identical") else "-"),
                 ("eval: whole evaluate", rate("eval_total_dets_s", "dets/s"), "-", "-",
                  f"{r['eval_total_s']:.1f} s, AP {r['eval_ap']:.3f}")]
    lines = []
    if rows:
        header = ("stage", "rate", "loop reference", "speedup", "check / note")
        widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
        fmt = "  ".join(f"{{:{'<' if i in (0, 4) else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*row).rstrip() for row in [header, ["-" * w for w in widths]] + rows]
    footer = []
    if "params" in r:
        footer.append(f"params {r['params'] / 1e6:.2f} M, {r['gmacs']:.3f} GMACs per crop")
    if "peak_memory_mb" in r:
        footer.append(f"peak memory {r['peak_memory_mb']:.0f} MiB ({r['peak_memory_kind']})")
    if footer:
        lines.append("; ".join(footer))
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    configure_backends(cfg)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.SEED)
    rng = np.random.default_rng(cfg.SEED)
    device = choose_device(cfg, args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    width, height = cfg.MODEL.IMAGE_SIZE
    stages = list(args.stages)
    codec = build_codec(cfg)
    if codec.prediction == "keypoints3d":  # depth models: forward + decode and memory only
        stages = [s for s in stages if s in ("forward", "memory")]
    model = build_model(cfg, is_train=False).to(device).eval() if "forward" in stages else None
    run = stages + (["decoders"] if args.decoders else [])
    tags = {name: f"[{i}/{len(run)}]" for i, name in enumerate(run, 1)}

    where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)")
    say("posezoo benchmark")
    say(f"  config   {args.cfg}  overrides {' '.join(map(str, args.opts)) or '-'}")
    say(f"  device   {where}, torch {torch.__version__}, numpy {np.__version__}")
    say(f"  model    {cfg.MODEL.NAME}, input {width}x{height} (w x h), heatmap "
        f"{cfg.MODEL.HEATMAP_SIZE[0]}x{cfg.MODEL.HEATMAP_SIZE[1]}, {cfg.MODEL.NUM_JOINTS} joints")
    say(f"  codec    {cfg.MODEL.TARGET_TYPE} ({type(codec).__name__}), dataset {cfg.DATASET.DATASET} at "
        f"{cfg.DATASET.ROOT} ({cfg.DATASET.TRAIN_SET} / {cfg.DATASET.TEST_SET})")
    say(f"  stages   {', '.join(run)}")
    say(f"  work     --iters {args.iters}, --num-dets {args.num_dets}, --decode-batch {args.decode_batch}"
        + (f", --decoders {args.decoders}, --decoders-ref {args.decoders_ref}" if args.decoders else ""))

    results = {"device": str(device), "torch": torch.__version__, "model": cfg.MODEL.NAME,
               "input_size": [width, height], "batch": cfg.TEST.BATCH_SIZE_PER_GPU, "stages": run}
    start = time.perf_counter()
    flip_pairs = default_flip_pairs(cfg)
    if "data" in stages:
        data = bench_data(cfg, codec, args.iters, tags["data"])
        flip_pairs = data.pop("_test_set").flip_pairs
        data.pop("_train_set")
        results.update(data)
    if "encode" in stages:
        n = 20 * args.iters
        results.update(bench_encode(cfg, codec, n, rng, tags["encode"]), encode_items=n)
    shape = output_shape(cfg, codec)
    if "forward" in stages and codec.prediction == "keypoints3d":
        results.update(bench_forward_3d(cfg, codec, model, device, max(2, args.iters // 25), tags["forward"]))
    elif "forward" in stages:
        forward = bench_forward(cfg, codec, model, device, max(2, args.iters // 25), flip_pairs, tags["forward"])
        results.update(forward)
        shape = forward["output_shape"]
    if "decode" in stages:
        results.update(bench_decode(cfg, codec, device, shape, args.decode_batch, args.iters, rng, tags["decode"]))
    if "evaluate" in stages:
        results.update(bench_evaluate(cfg, codec, args.num_dets, rng, tags["evaluate"]))
    if "memory" in stages:
        results.update(peak_memory(device, tags["memory"]))
    if args.decoders:
        results["decoders"] = bench_decoders(device, args.decoders, args.decode_batch, args.decoders_ref, rng,
                                             tags["decoders"])
    results["total_s"] = time.perf_counter() - start
    say("")
    table = summary_table(results)
    if table:
        say(table)
    if args.decoders:
        if table:
            say("")
        say(decoders_table(results["decoders"], device))
    say(f"total {results['total_s']:.1f} s")
    return results


if __name__ == "__main__":
    _setup.run(main)
