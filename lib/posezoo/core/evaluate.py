"""Evaluation helpers shared by the datasets, the API, the training loop and the
benchmark: the official instance rescoring, per-instance OKS against COCO
ground truth, and the metric table."""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ..nms import oks_nms, soft_oks_nms


def instance_scores(keypoints: np.ndarray, box_scores: np.ndarray, in_vis_thre: float) -> np.ndarray:
    """Instance score of the official rescoring (HRNet's ``coco.py`` evaluate):
    box score x mean keypoint score over the joints scoring above
    ``in_vis_thre`` (``TEST.IN_VIS_THRE``; 0 when none does), which OKS-NMS and
    the COCO evaluation rank by."""
    scores = np.asarray(keypoints)[..., 2]
    above = scores > in_vis_thre
    count = above.sum(axis=-1)
    # the official loop's arithmetic: a running sum over the joints in the
    # keypoints' own dtype (cumsum is sequential; numpy's sum is pairwise and
    # rounds differently), divided in that dtype, times the float64 box score.
    # Any other order moves the scores by an ulp, which reorders near-ties and
    # moves AP in the 8th digit.
    total = np.where(above, scores, 0).astype(scores.dtype).cumsum(axis=-1)[..., -1]
    mean = np.where(count > 0, total / np.maximum(count, 1).astype(scores.dtype), 0)
    return mean * np.asarray(box_scores, dtype=np.float64)


def nms_per_image(preds: np.ndarray, scores: np.ndarray, areas: np.ndarray, image_ids: np.ndarray,
                  thresh: float, sigmas: np.ndarray, soft: bool = False) -> list[tuple[int, np.ndarray]]:
    """OKS-NMS (soft with `soft`, ``TEST.SOFT_NMS``) among each image's
    instances, as HRNet's ``coco.py`` evaluate runs it: per image (ascending
    id), that image's id and the rows it keeps (all of them when NMS keeps none)."""
    nms = soft_oks_nms if soft else oks_nms
    image_ids = np.asarray(image_ids)
    # one stable sort groups the rows by image in O(N log N) (a mask per image
    # would be O(N x images): 0.25 G comparisons for 50k detections on 5k images)
    order = np.argsort(image_ids, kind="stable")
    ids, starts = np.unique(image_ids[order], return_index=True)
    kept = []
    for image_id, idx in zip(ids, np.split(order, starts[1:])):
        keep = nms(preds[idx], scores[idx], areas[idx], thresh, sigmas)
        kept.append((image_id, idx[keep] if len(keep) else idx))
    return kept


def instance_oks(dataset, preds: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per predicted instance, its best OKS against the labelled people of its
    image (COCOeval's per-pair OKS: mean over the GT's labelled joints of
    exp(-d^2 / (2 area (2 sigma)^2))) and that person's GT keypoints (N, K, 3);
    0 and zeros for an image without labelled people. None when the dataset
    has no COCO ground truth (``dataset.coco`` and ``dataset.sigmas``)."""
    coco, sigmas = getattr(dataset, "coco", None), getattr(dataset, "sigmas", None)
    if coco is None or sigmas is None:
        return None
    num_joints = preds.shape[1]
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    categories = getattr(dataset, "category_ids", {getattr(dataset, "category_id", 1)})
    oks, matched = np.zeros(len(preds)), np.zeros((len(preds), num_joints, 3))
    for image_id in np.unique(image_ids):
        anns = [a for a in coco.imgToAnns.get(int(image_id), []) if a.get("category_id") in categories
                and not a.get("iscrowd", 0) and len(a.get("keypoints", [])) == 3 * num_joints]
        gt = np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, num_joints, 3)
        labelled = gt[:, :, 2] > 0
        keep = labelled.any(axis=1)
        if not keep.any():
            continue
        gt, labelled = gt[keep], labelled[keep]
        area = np.asarray([a.get("area", 0.0) for a in anns], dtype=np.float64)[keep]
        rows = np.flatnonzero(image_ids == image_id)
        d2 = ((preds[rows, None, :, :2] - gt[None, :, :, :2]) ** 2).sum(axis=3)
        e = d2 / variances / (area[None, :, None] + np.spacing(1)) / 2
        pair = (np.exp(-e) * labelled).sum(axis=2) / labelled.sum(axis=1)
        best = pair.argmax(axis=1)
        oks[rows] = pair[np.arange(len(rows)), best]
        matched[rows] = gt[best]
    return oks, matched


#: ``TEST.COCOEVAL`` values: pycocotools is the reference; faster_coco_eval
#: (PyPI ``faster-coco-eval``) runs evaluateImg/accumulate in C++.
COCOEVAL_BACKENDS = ("pycocotools", "faster_coco_eval")


def keypoint_coco_eval(coco, results: list[dict], sigmas: np.ndarray, backend: str = "pycocotools",
                       quiet: bool = False) -> np.ndarray:
    """COCOeval's 10 keypoint stats (AP, AP .5, AP .75, AP M, AP L, AR, ...)
    of a results list against the pycocotools ``coco`` ground truth, with
    ``backend`` (``TEST.COCOEVAL``). ``faster_coco_eval`` gives the same 10
    numbers as pycocotools (``tests/core/test_cocoeval_backend.py``) in less time:
    its C++ evaluateImg and accumulate replace pycocotools' Python loops, the
    Python computeOks stays. ``results`` may be modified (loadRes adds ids)."""
    if backend not in COCOEVAL_BACKENDS:
        raise ValueError(f"TEST.COCOEVAL must be one of {', '.join(COCOEVAL_BACKENDS)}; got {backend!r}")
    out = io.StringIO() if quiet else None
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        if backend == "pycocotools":
            from pycocotools.cocoeval import COCOeval
            coco_eval = COCOeval(coco, coco.loadRes(results), "keypoints")
            coco_eval.params.useSegm = None
            coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas)
        else:
            try:
                from faster_coco_eval import COCO as FasterCOCO, COCOeval_faster
            except ImportError as exc:
                raise ValueError("TEST.COCOEVAL faster_coco_eval needs the package: pip install faster-coco-eval "
                                 "(or set TEST.COCOEVAL pycocotools)") from exc
            gt = FasterCOCO(coco.dataset)
            coco_eval = COCOeval_faster(gt, gt.loadRes(results), "keypoints", kpt_oks_sigmas=list(sigmas),
                                        print_function=print)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats[:10], dtype=np.float64)


def format_table(name_values: dict, model_name: str) -> str:
    """HRNet's markdown results table."""
    names = list(name_values)
    header = "| Arch | " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    row = f"| {model_name} | " + " | ".join(f"{v:.3f}" for v in name_values.values()) + " |"
    return "\n".join([header, rule, row])


