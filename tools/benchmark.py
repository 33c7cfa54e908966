"""Throughput of every stage of the pipeline for one experiment, in one process.

    python tools/benchmark.py --cfg experiments/synthetic/pose_resnet_18_128x96.yaml
    python tools/benchmark.py --cfg X.yaml --device cuda --iters 400 --num-dets 100000 DATASET.ROOT /fast/disk/coco

For the model, codec and dataset named in the YAML (after the KEY VALUE
overrides) it measures:

1. data:     dataset[i] with is_train True (read + augment + warp + encode) and
             False (read + warp + encode), crops/s, in the main process;
2. encode:   codec.encode vs the per-joint loop reference
             (codecs/_reference.py), on the same random joints, checked
             identical before timing;
3. forward:  crops/s of the model (random weights, eval mode, no_grad) at
             batch TEST.BATCH_SIZE_PER_GPU, without and with the flip test
             (image + mirror in one forward, flipped back and averaged, as
             core/function.predict does); parameters and GMACs;
4. decode:   codec.decode on the device vs the numpy loop reference on the same
             random heatmaps of the model's output shape, checked within 1e-3 px
             before timing;
5. evaluate: on >= --num-dets generated detections of a generated COCO person
             set (written to a temporary folder and loaded by the real
             COCODataset with detected boxes): rescoring + OKS-NMS alone,
             then the whole COCODataset.evaluate (rescoring, NMS, results JSON,
             COCOeval), detections/s; and posezoo.nms.oks_nms vs the loop
             reference on the same per-image groups, checked identical;
6. memory:   peak CUDA memory allocated (on CUDA) and the peak RSS of the process.

--iters N scales every stage: N samples per transform, 20 N joint sets for
encode, max(2, N / 25) forward batches, max(3, N / 10) vectorised and
max(1, N / 100) reference decode passes. Missing synthetic data is generated
on first use (DATASET.ROOT can be pointed elsewhere with an override).
"""
import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time

import _setup  # puts lib/ on the path
import numpy as np
import torch

from posezoo.codecs import _reference, build_codec
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.config import load_config, update_config
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import COCO_SIGMAS, COCODataset
from posezoo.datasets.synthetic import KEYPOINT_NAMES, SKELETON
from posezoo.models import build_model
from posezoo.nms import oks_nms, soft_oks_nms
from posezoo.utils.transforms import PIXEL_STD
from posezoo.utils.utils import configure_backends, count_flops, count_parameters, select_device

MAX_DECODE_PX_DIFF = 1e-3


class ReferenceMismatch(RuntimeError):
    """A vectorised function disagrees with its loop reference."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "DATASET.ROOT /tmp/synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where the model forward and decode run (default: cuda if available, else cpu)")
    parser.add_argument("--iters", type=int, default=100, help="scales the work of every stage (default 100)")
    parser.add_argument("--num-dets", type=int, default=50000,
                        help="at least this many generated detections for the evaluation stage (default 50000)")
    parser.add_argument("--decode-batch", type=int, default=1024,
                        help="heatmaps per decode call (default 1024)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    for name in ("iters", "num_dets", "decode_batch", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
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
def bench_data(cfg, codec, n: int) -> dict:
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
        say(f"[1/6] data {key:5s} ({image_set}, {len(dataset)} boxes): {n} samples in {seconds:.2f} s "
            f"-> {n / seconds:.1f} crops/s")
    return out


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


def bench_encode(cfg, codec, n: int, rng: np.random.Generator) -> dict:
    sets = random_joints(rng, n, cfg.MODEL.NUM_JOINTS, cfg.MODEL.IMAGE_SIZE)
    out = {}
    has_reference = isinstance(codec, GaussianHeatmapCodec)
    if has_reference:
        def reference(joints, vis):
            return _reference.generate_target_loop(joints, vis, cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE,
                                                   cfg.MODEL.SIGMA)
        diff = 0.0
        for joints, vis in sets:
            target, weight = codec.encode(joints, vis)
            ref_target, ref_weight = reference(joints, vis)
            if target.shape != ref_target.shape or weight.shape != ref_weight.shape:
                raise ReferenceMismatch(f"codec.encode gives shapes {target.shape}/{weight.shape}, the reference "
                                        f"{ref_target.shape}/{ref_weight.shape}")
            diff = max(diff, float(np.abs(target - ref_target).max()), float(np.abs(weight - ref_weight).max()))
        if diff != 0.0:
            raise ReferenceMismatch(f"codec.encode differs from generate_target_loop by up to {diff:g}")
        out["encode_max_abs_diff"] = diff
        seconds_ref = timed(lambda it=iter(sets): reference(*next(it)), n)
        out["encode_ref_items_s"] = n / seconds_ref
    seconds = timed(lambda it=iter(sets): codec.encode(*next(it)), n)
    out["encode_items_s"] = n / seconds
    line = f"[2/6] encode: {n} joint sets, codec {n / seconds:.0f}/s"
    if has_reference:
        out["encode_speedup"] = out["encode_items_s"] / out["encode_ref_items_s"]
        line += (f", loop reference {out['encode_ref_items_s']:.0f}/s (x{out['encode_speedup']:.1f}); "
                 f"max |diff| {out['encode_max_abs_diff']:g}")
    else:
        line += f" (no loop reference for {type(codec).__name__})"
    say(line)
    return out


# --------------------------------------------------------------------------- 3. forward
def bench_forward(cfg, codec, model, device, n_batches: int, flip_pairs) -> dict:
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    width, height = cfg.MODEL.IMAGE_SIZE
    sync = make_sync(device)
    warmup = 3 if device.type == "cuda" else 1
    params = count_parameters(model)
    macs = count_flops(model, (3, height, width))
    x = torch.randn(batch, 3, height, width, device=device)

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
    say(f"[3/6] forward: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} crops/s, with flip "
        f"{out['forward_flip_crops_s']:.1f} crops/s; output {out['output_shape']}; "
        f"{params / 1e6:.2f} M params, {macs / 1e9:.3f} GMACs")
    return out


# --------------------------------------------------------------------------- 4. decode
def random_heatmaps(rng: np.random.Generator, n: int, shape) -> np.ndarray:
    """Noise plus one Gaussian peak per map (some near or over the border, so
    the quarter offset is skipped there); ~5 % of the maps entirely negative."""
    k, h, w = shape
    heatmaps = rng.random((n, k, h, w), dtype=np.float32) * np.float32(0.1)
    cx = rng.uniform(-2, w + 1, (n, k, 1, 1)).astype(np.float32)
    cy = rng.uniform(-2, h + 1, (n, k, 1, 1)).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, None, :, None]
    heatmaps += np.exp(((xs - cx) ** 2 + (ys - cy) ** 2) / np.float32(-2 * 1.5 ** 2))
    heatmaps[rng.random((n, k)) < 0.05] -= np.float32(1.5)
    return heatmaps


def bench_decode(cfg, codec, device, shape, n: int, iters: int, rng: np.random.Generator) -> dict:
    heatmaps = random_heatmaps(rng, n, shape)
    center = rng.uniform(50, 600, (n, 2)).astype(np.float32)
    scale = rng.uniform(0.3, 3.0, (n, 2)).astype(np.float32)
    heatmaps_t = torch.from_numpy(heatmaps).to(device)
    center_t, scale_t = torch.from_numpy(center).to(device), torch.from_numpy(scale).to(device)
    sync = make_sync(device)
    reps, ref_reps = max(3, iters // 10), max(1, iters // 100)
    out = {}
    has_reference = isinstance(codec, GaussianHeatmapCodec)
    if has_reference:
        preds, maxvals = codec.decode(heatmaps_t, center_t, scale_t)
        ref_preds, ref_maxvals = _reference.get_final_preds_loop(heatmaps, center, scale, codec.post_process)
        px = float(np.abs(preds.cpu().numpy() - ref_preds).max())
        vals = float(np.abs(maxvals.cpu().numpy() - ref_maxvals).max())
        if not px < MAX_DECODE_PX_DIFF or vals != 0.0:
            raise ReferenceMismatch(f"codec.decode differs from get_final_preds_loop: {px:g} px, scores {vals:g}")
        out["decode_max_px_diff"] = px
        seconds_ref = timed(lambda: _reference.get_final_preds_loop(heatmaps, center, scale, codec.post_process),
                            ref_reps)
        out["decode_ref_crops_s"] = n * ref_reps / seconds_ref
    codec.decode(heatmaps_t, center_t, scale_t)  # warm-up
    seconds = timed(lambda: codec.decode(heatmaps_t, center_t, scale_t), reps, sync)
    out["decode_crops_s"] = n * reps / seconds
    line = f"[4/6] decode: {n} x {shape} on {device.type}: codec {out['decode_crops_s']:.0f} crops/s"
    if has_reference:
        out["decode_speedup"] = out["decode_crops_s"] / out["decode_ref_crops_s"]
        line += (f", loop reference (numpy, cpu) {out['decode_ref_crops_s']:.0f} crops/s "
                 f"(x{out['decode_speedup']:.1f}); max diff {px:.2e} px")
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
    scores = preds[:, :, 2]
    above = scores > cfg.TEST.IN_VIS_THRE
    num_above = above.sum(axis=1)
    kpt_score = np.where(num_above > 0, (scores * above).sum(axis=1) / np.maximum(num_above, 1), 0.0)
    rescored = kpt_score * boxes[:, 5]
    nms = soft_oks_nms if cfg.TEST.SOFT_NMS else oks_nms
    kept = []
    for image_id in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == image_id)
        keep = nms(preds[idx], rescored[idx], boxes[idx, 4], cfg.TEST.OKS_THRE, dataset.sigmas)
        kept.append(idx[keep] if len(keep) else idx)
    return rescored, np.concatenate(kept)


def bench_evaluate(cfg, codec, num_dets: int, rng: np.random.Generator) -> dict:
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
    say(f"[5/6] evaluate: {n} detections, {out['eval_num_images']} images, {out['eval_num_gt']} GT people, "
        f"{out['eval_kept']} kept by NMS, AP {ap:.3f}: rescoring+NMS {out['eval_rescore_nms_dets_s']:.0f} dets/s, "
        f"whole evaluate {seconds_eval:.1f} s = {out['eval_total_dets_s']:.0f} dets/s; oks_nms "
        f"{out['nms_dets_s']:.0f} dets/s vs loop {out['nms_ref_dets_s']:.0f} dets/s (x{out['nms_speedup']:.1f})")
    return out


# --------------------------------------------------------------------------- 6. memory
def peak_memory(device: torch.device) -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10
    out = {"host_peak_rss_mb": rss_mb}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
        out["peak_memory_kind"] = "cuda max_memory_allocated"
    else:
        out["peak_memory_mb"] = rss_mb
        out["peak_memory_kind"] = "process peak RSS"
    say(f"[6/6] peak memory: {out['peak_memory_mb']:.0f} MiB ({out['peak_memory_kind']}); "
        f"host peak RSS {rss_mb:.0f} MiB")
    return out


# --------------------------------------------------------------------------- report
def summary_table(r: dict) -> str:
    def rate(key, unit):
        return f"{r[key]:,.1f} {unit}" if key in r else "-"

    def speed(key):
        return f"x{r[key]:.1f}" if key in r else "-"

    rows = [
        ("data: train transform", rate("data_train_crops_s", "crops/s"), "-", "-", "read+augment+warp+encode"),
        ("data: test transform", rate("data_test_crops_s", "crops/s"), "-", "-", "read+warp+encode"),
        ("encode (targets)", rate("encode_items_s", "crops/s"), rate("encode_ref_items_s", "crops/s"),
         speed("encode_speedup"), f"max |diff| {r['encode_max_abs_diff']:g}" if "encode_max_abs_diff" in r else "-"),
        ("forward", rate("forward_crops_s", "crops/s"), "-", "-", f"batch {r['batch']}"),
        ("forward + flip", rate("forward_flip_crops_s", "crops/s"), "-", "-", "image+mirror in one forward"),
        ("decode", rate("decode_crops_s", "crops/s"), rate("decode_ref_crops_s", "crops/s"), speed("decode_speedup"),
         f"max diff {r['decode_max_px_diff']:.1e} px" if "decode_max_px_diff" in r else "-"),
        ("eval: rescoring + OKS-NMS", rate("eval_rescore_nms_dets_s", "dets/s"), "-", "-",
         f"{r['eval_num_dets']} dets"),
        ("eval: OKS-NMS alone", rate("nms_dets_s", "dets/s"), rate("nms_ref_dets_s", "dets/s"), speed("nms_speedup"),
         "identical keeps" if r.get("nms_identical") else "-"),
        ("eval: whole evaluate", rate("eval_total_dets_s", "dets/s"), "-", "-",
         f"{r['eval_total_s']:.1f} s, AP {r['eval_ap']:.3f}"),
    ]
    header = ("stage", "rate", "loop reference", "speedup", "check / note")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i in (0, 4) else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*row).rstrip() for row in [header, ["-" * w for w in widths]] + rows]
    lines.append(f"params {r['params'] / 1e6:.2f} M, {r['gmacs']:.3f} GMACs per crop; peak memory "
                 f"{r['peak_memory_mb']:.0f} MiB ({r['peak_memory_kind']})")
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
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=False).to(device).eval()

    where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)")
    say("posezoo benchmark")
    say(f"  config   {args.cfg}  overrides {' '.join(map(str, args.opts)) or '-'}")
    say(f"  device   {where}, torch {torch.__version__}, numpy {np.__version__}")
    say(f"  model    {cfg.MODEL.NAME}, input {width}x{height} (w x h), heatmap "
        f"{cfg.MODEL.HEATMAP_SIZE[0]}x{cfg.MODEL.HEATMAP_SIZE[1]}, {cfg.MODEL.NUM_JOINTS} joints")
    say(f"  codec    {cfg.MODEL.TARGET_TYPE} ({type(codec).__name__}), dataset {cfg.DATASET.DATASET} at "
        f"{cfg.DATASET.ROOT} ({cfg.DATASET.TRAIN_SET} / {cfg.DATASET.TEST_SET})")
    say(f"  work     --iters {args.iters}, --num-dets {args.num_dets}, --decode-batch {args.decode_batch}")

    results = {"device": str(device), "torch": torch.__version__, "model": cfg.MODEL.NAME,
               "input_size": [width, height], "batch": cfg.TEST.BATCH_SIZE_PER_GPU}
    start = time.perf_counter()
    data = bench_data(cfg, codec, args.iters)
    test_set = data.pop("_test_set")
    data.pop("_train_set")
    results.update(data)
    results.update(bench_encode(cfg, codec, 20 * args.iters, rng))
    forward = bench_forward(cfg, codec, model, device, max(2, args.iters // 25), test_set.flip_pairs)
    results.update(forward)
    results.update(bench_decode(cfg, codec, device, forward["output_shape"], args.decode_batch, args.iters, rng))
    results.update(bench_evaluate(cfg, codec, args.num_dets, rng))
    results.update(peak_memory(device))
    results["total_s"] = time.perf_counter() - start
    say("")
    say(summary_table(results))
    say(f"total {results['total_s']:.1f} s")
    return results


if __name__ == "__main__":
    _setup.run(main)
