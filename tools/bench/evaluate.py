"""Stage 5: rescoring + OKS-NMS + results file + COCOeval on a generated COCO person set."""
from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

from posezoo.config import update_config
from posezoo.core.evaluate import instance_scores, nms_per_image
from posezoo.datasets.coco import COCO_SIGMAS, COCODataset
from posezoo.datasets.synthetic import KEYPOINT_NAMES, SKELETON
from posezoo.nms import oks_nms
from posezoo.utils.transforms import PIXEL_STD

from .common import ReferenceMismatch, alternate, quiet, say, side_row
from .official import LOOP_LABEL, REPOS, official_coco_evaluator, official_oks_nms
from .references import _reference


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


def eval_inputs(cfg, codec, num_dets: int, rng: np.random.Generator, tmp: str) -> tuple:
    """A generated COCO person set of >= num_dets detections (make_eval_set) written to `tmp` and loaded by
    the real COCODataset with those detections as boxes. Returns (eval cfg, dataset, GT dict, annotation file,
    (preds, boxes, image ids)): what core/function.predict hands to evaluate."""
    sigmas = np.asarray(COCO_SIGMAS) / 10.0
    gt, dets, kpts = make_eval_set(rng, num_dets, sigmas)
    os.makedirs(os.path.join(tmp, "annotations"))
    ann_file = os.path.join(tmp, "annotations", "person_keypoints_bench.json")
    with open(ann_file, "w") as f:
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
    # image coords + scores (here the generated keypoints), and per box center, scale, area, score
    preds = kpts.astype(np.float64)
    center = np.stack([rec["center"] for rec in dataset.db]).astype(np.float64)
    scale = np.stack([rec["scale"] for rec in dataset.db]).astype(np.float64)
    area = np.prod(scale * PIXEL_STD, axis=1, keepdims=True)
    score = np.array([[rec["score"] for rec in dataset.db]])
    boxes = np.concatenate([center, scale, area, score.T], axis=1)
    image_ids = np.array([rec["image_id"] for rec in dataset.db])
    return eval_cfg, dataset, gt, ann_file, (preds, boxes, image_ids)


def bench_evaluate(cfg, codec, num_dets: int, rng: np.random.Generator, tag: str = "[5/6]",
                   official: str | None = None, reps: int = 3) -> dict:
    """The stage's own measurements and, with `official` (a folder of checkouts), the side-by-side runs of
    side_by_side_evaluate."""
    with tempfile.TemporaryDirectory(prefix="posezoo_bench_") as tmp:
        eval_cfg, dataset, gt, ann_file, (preds, boxes, image_ids) = eval_inputs(cfg, codec, num_dets, rng, tmp)
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
        if official:
            out["eval_side_by_side"] = side_by_side_evaluate(eval_cfg, dataset, (preds, boxes, image_ids), rescored,
                                                              ann_file, tmp, official, reps, tag)
    return out


def _image_groups(image_ids: np.ndarray) -> list[np.ndarray]:
    """Row indices per image, by ascending id, grouped with one stable sort as core.evaluate.nms_per_image
    does (both sides of a side-by-side run get the same groups)."""
    order = np.argsort(image_ids, kind="stable")
    _, starts = np.unique(image_ids[order], return_index=True)
    return np.split(order, starts[1:])


def side_by_side_evaluate(cfg, dataset, inputs: tuple, rescored: np.ndarray, ann_file: str, tmp: str, root: str,
                          reps: int, tag: str) -> list:
    """OKS-NMS alone (per image, on the rescored detections) and the whole evaluate flow, each alternating
    `reps` times with the official code of the checkouts in `root` (HRNet's lib/nms/nms.py oks_nms and
    lib/dataset/coco.py COCODataset.evaluate), on the same detections: identical keeps and identical
    COCOeval stats are required. Without the HRNet checkout OKS-NMS runs against posezoo's loop reference
    (labelled so) and the whole flow, which has no loop reference, is not compared."""
    preds, boxes, image_ids = inputs
    n, thre, sigmas = len(preds), cfg.TEST.OKS_THRE, dataset.sigmas
    groups = _image_groups(image_ids)
    args = [(preds[idx], rescored[idx], boxes[idx, 4]) for idx in groups]
    official_nms = official_oks_nms(root)
    if official_nms is None:
        say(f"{tag} evaluate: {os.path.join(root, REPOS['hrnet'][0])} absent: OKS-NMS against the {LOOP_LABEL}; "
            "the whole evaluate flow is not compared (no loop reference of it)")
        label = "_reference.oks_nms_loop"

        def reference():
            return [_reference.oks_nms_loop(k, s, a, thre, sigmas) for k, s, a in args]
    else:
        label = f"{REPOS['hrnet'][0]} nms/nms.py oks_nms"
        dbs = [[{"keypoints": k[j], "score": s[j], "area": a[j]} for j in range(len(s))] for k, s, a in args]

        def reference():
            return [official_nms(db, thre) for db in dbs]

    ref_times, our_times, ref_keep, our_keep = alternate(
        reference, lambda: [oks_nms(k, s, a, thre, sigmas) for k, s, a in args], reps)
    bad = next((i for i, (a, b) in enumerate(zip(ref_keep, our_keep)) if list(a) != list(b)), None)
    if bad is not None:
        raise ReferenceMismatch(f"oks_nms keeps {our_keep[bad]} but {label} keeps {ref_keep[bad]} in image "
                                f"group {bad}")
    rows = [side_row("OKS-NMS alone", label, official_nms is not None, n, ref_times, our_times, "identical keeps")]
    evaluator = None
    if official_nms is not None:
        with quiet():
            evaluator = official_coco_evaluator(root, cfg, ann_file)
    if evaluator is not None:
        ours_dir, official_dir_ = os.path.join(tmp, "posezoo"), os.path.join(tmp, "official")
        with quiet():
            ref_times, our_times, (ref_stats, ref_ap), (our_stats, our_ap) = alternate(
                lambda: evaluator(preds, boxes, image_ids, official_dir_),
                lambda: dataset.evaluate(preds, boxes, image_ids, ours_dir), reps)
        ref_values, our_values = [float(v) for v in ref_stats.values()], [float(v) for v in our_stats.values()]
        if ref_values != our_values:
            raise ReferenceMismatch(f"COCOeval stats differ: official {ref_values}, posezoo {our_values}")
        rows.append(side_row("whole evaluate", f"{REPOS['hrnet'][0]} dataset/coco.py COCODataset.evaluate", True,
                              n, ref_times, our_times, f"identical AP {our_ap:.4f} (all 10 stats)"))
    for row in rows:
        say(f"{tag} evaluate side by side: {row['stage']}, {reps} alternating runs: {row['reference']} "
            f"{row['ref_rate']:,.0f} / {row['ref_median_rate']:,.0f} dets/s (min time / median), posezoo "
            f"{row['rate']:,.0f} / {row['median_rate']:,.0f}, x{row['speedup']:.1f}; {row['check']}")
    return rows

