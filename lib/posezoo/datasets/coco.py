"""COCO keypoints, top-down (``DATASET.DATASET: coco``).

Layout (HRNet's)::

    ROOT/annotations/person_keypoints_<set>.json
    ROOT/images/<set>/<file_name>
    TEST.COCO_BBOX_FILE  (detections in COCO results format)

Persons come from the GT boxes (training, or ``TEST.USE_GT_BBOX``) or from the
detection file. The keypoint set (joints, flip pairs, OKS sigmas, joint weights)
is COCO person by default; a COCO-format animal or hand set sets ``DATASET.*``.
Evaluation: rescoring, OKS-NMS, results JSON, COCOeval, as in the official code.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
from collections import OrderedDict, defaultdict
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO

from ..core.evaluate import instance_scores, keypoint_coco_eval, nms_per_image
from ..utils.transforms import box_to_center_scale, usable_boxes
from ..utils.utils import write_text_atomic
from . import KeypointInfo
from .joints_dataset import JointsDataset, make_record

logger = logging.getLogger(__name__)

COCO_KEYPOINT_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                       "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle")
#: COCO person skeleton, 0-based (the annotation files' 1-based skeleton minus one).
COCO_SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
#: (left, right) pairs: eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO_FLIP_PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
COCO_UPPER_BODY_IDS = list(range(11))
COCO_JOINTS_WEIGHT = [1., 1., 1., 1., 1., 1., 1., 1.2, 1.2, 1.5, 1.5, 1., 1., 1.2, 1.2, 1.5, 1.5]
COCO_SIGMAS = [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
STATS_NAMES = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]


class AnnotationError(ValueError):
    """A malformed annotation or detection file, named with the offending entry."""


#: ``DATASET.GT_BOX``: how a GT box [x, y, w, h] is clipped to the image and which boxes are kept.
GT_BOX_RULES = ("hrnet", "mmpose", "mmpose_0x")


def clean_gt_box(ann: dict, width: int, height: int, rule: str = "hrnet") -> list[float] | None:
    """The GT box [x1, y1, w', h'] a top-down loader crops, or None where it drops the annotation.

    - ``hrnet`` (HRNet ``lib/dataset/coco.py:_load_coco_keypoint_annotation_kernel``): x2 = min(W - 1,
      x1 + max(0, w - 1)), kept when area > 0 and x2 >= x1 (so w' = w - 1 inside the image).
    - ``mmpose`` (mmpose 1.x ``datasets/base/base_coco_style_dataset.py:284-290``, validity :333-352):
      x1 = clip(x, 0, W - 1), x2 = clip(x + w, 0, W - 1) (w' = w inside the image); dropped when
      crowd, ``num_keypoints`` 0, or w' or h' <= 0.
    - ``mmpose_0x`` (mmpose 0.x ``datasets/animal/animal_pose_dataset.py:131-158``, the same in
      ``animal_ap10k_dataset.py``): x2 = min(W - 1, x1 + max(0, w)), kept when area > 0 (or absent)
      and x2 > x1; crowd and ``num_keypoints`` 0 dropped.
    Annotations without a labelled keypoint are dropped by the caller under every rule."""
    x, y, w, h = (float(v) for v in ann["bbox"])
    if rule == "hrnet":
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(width - 1, x1 + max(0, w - 1)), min(height - 1, y1 + max(0, h - 1))
        if not (ann.get("area", 0) > 0 and x2 >= x1 and y2 >= y1) or w <= 0 or h <= 0:
            return None
        return [x1, y1, x2 - x1, y2 - y1]
    if ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) == 0:
        return None
    if rule == "mmpose":
        x1, y1 = float(np.clip(x, 0, width - 1)), float(np.clip(y, 0, height - 1))
        x2, y2 = float(np.clip(x + w, 0, width - 1)), float(np.clip(y + h, 0, height - 1))
        return [x1, y1, x2 - x1, y2 - y1] if x2 - x1 > 0 and y2 - y1 > 0 else None
    if rule == "mmpose_0x":
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(width - 1, x1 + max(0, w)), min(height - 1, y1 + max(0, h))
        return [x1, y1, x2 - x1, y2 - y1] if ann.get("area", 1) > 0 and x2 > x1 and y2 > y1 else None
    raise ValueError(f"DATASET.GT_BOX = {rule!r}: expected one of {', '.join(GT_BOX_RULES)}")


def _finite_numbers(values, count: int) -> bool:
    return (isinstance(values, list) and len(values) == count and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _read_json(path: str, what: str, hint: str):
    if not os.path.isfile(path):
        raise AnnotationError(f"{what} not found: {path}{hint}")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{what} {path} is not valid JSON: {err}") from None


def load_coco_json(path: str) -> COCO:
    """pycocotools COCO from `path`, with one-line errors for missing/malformed files."""
    data = _read_json(path, "annotation file", "")
    if not isinstance(data, dict) or any(k not in data for k in ("images", "annotations", "categories")):
        raise AnnotationError(f"annotation file {path} lacks the COCO keys images/annotations/categories")
    for i, image in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height") if not isinstance(image, dict) or k not in image]
        if missing:
            raise AnnotationError(f"annotation file {path}: images[{i}] lacks {', '.join(repr(k) for k in missing)}")
    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in ("id", "image_id") if not isinstance(ann, dict) or k not in ann]
        if missing:
            raise AnnotationError(f"annotation file {path}: annotations[{i}] lacks "
                                  f"{', '.join(repr(k) for k in missing)}")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def load_detections(path: str, image_ids: set, image_thre: float) -> list[dict]:
    """Person detections (COCO results format) scoring at least `image_thre`."""
    if not path:
        raise AnnotationError("TEST.USE_GT_BBOX is False but TEST.COCO_BBOX_FILE is empty")
    dets = _read_json(path, "detection file", " (TEST.COCO_BBOX_FILE)")
    if not isinstance(dets, list):
        raise AnnotationError(f"detection file {path} must be a list of {{image_id, category_id, bbox, score}}")
    kept = []
    for i, det in enumerate(dets):
        missing = [k for k in ("image_id", "bbox", "score") if not isinstance(det, dict) or k not in det]
        if missing:
            raise AnnotationError(f"detection #{i} in {path} lacks {', '.join(missing)}: {det!r}"[:300])
        if not _finite_numbers(det["bbox"], 4):
            raise AnnotationError(f"detection #{i} in {path}: bbox {det['bbox']!r} is not 4 finite numbers")
        if not _finite_numbers([det["score"]], 1):
            raise AnnotationError(f"detection #{i} in {path}: score {det['score']!r} is not a finite number")
        if det.get("category_id", 1) != 1 or det["score"] < image_thre:
            continue
        if det["image_id"] not in image_ids:
            raise AnnotationError(f"detection #{i} in {path}: image_id {det['image_id']!r} is not in the annotations")
        kept.append(det)
    if not kept:
        raise AnnotationError(f"detection file {path} has no person box with score >= TEST.IMAGE_THRE "
                              f"({image_thre})")
    return kept


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> list[int]:
    """Greedy IoU NMS over [x, y, w, h] boxes; kept indices in descending score."""
    order = np.argsort(-scores, kind="stable")
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_thresh]
    return keep


def oks_sigmas(cfg, num_joints: int, sigmas: Sequence[float] | None = None) -> np.ndarray:
    """Per-joint OKS sigmas as COCOeval uses them: ``DATASET.OKS_SIGMAS``, else
    `sigmas`, else COCO person's for 17 joints; given x10 (COCO's table) or not."""
    sigmas = cfg.DATASET.OKS_SIGMAS or sigmas or (COCO_SIGMAS if num_joints == 17 else None)
    if sigmas is None or len(sigmas) != num_joints:
        raise ValueError(f"DATASET.OKS_SIGMAS needs {num_joints} values for this keypoint set")
    return np.asarray(sigmas, dtype=np.float64) / (10.0 if max(sigmas) > 0.5 else 1.0)


def keypoint_info(cfg) -> KeypointInfo:
    """COCO person's names, pairs, skeleton and sigmas for 17 joints; a custom
    COCO-format set's skeleton is only known to its annotation file."""
    if cfg.MODEL.NUM_JOINTS != 17:
        return KeypointInfo(sigmas=oks_sigmas(cfg, cfg.MODEL.NUM_JOINTS) if cfg.DATASET.OKS_SIGMAS else None)
    return KeypointInfo(COCO_KEYPOINT_NAMES, COCO_FLIP_PAIRS, COCO_SKELETON, oks_sigmas(cfg, 17))


class COCODataset(JointsDataset):
    #: keep boxes without any labelled keypoint (unlabelled target domains to pseudo-label)
    keep_unlabelled = False

    def __init__(self, cfg, image_set: str, is_train: bool, codec,
                 flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS,
                 upper_body_ids: Sequence[int] = COCO_UPPER_BODY_IDS,
                 joints_weight: Sequence[float] | None = None, sigmas: Sequence[float] | None = None):
        root = cfg.DATASET.ROOT
        ann_file = self.annotation_file(root, image_set)
        self.ann_file = ann_file
        self.coco = load_coco_json(ann_file)
        cats = self.keypoint_categories(self.coco.dataset["categories"])
        if not cats:
            raise AnnotationError(f"annotation file {ann_file} has no category")
        num_joints = len(cats[0].get("keypoints", [])) or cfg.MODEL.NUM_JOINTS
        self.category_id = cats[0]["id"]
        self.category_ids = {c["id"] for c in cats}
        self.skeleton = [(a - 1, b - 1) for a, b in cats[0].get("skeleton", [])]
        self.sigmas = oks_sigmas(cfg, num_joints, sigmas)
        joints_weight = joints_weight or (COCO_JOINTS_WEIGHT if num_joints == 17 else [1.0] * num_joints)
        if num_joints != 17 and not cfg.DATASET.FLIP_PAIRS:
            flip_pairs = []
        super().__init__(cfg, image_set, is_train, codec, num_joints, flip_pairs,
                         upper_body_ids if num_joints == 17 else [], joints_weight)

        self.image_dir = self.images_folder(root, image_set)
        self.image_ids = sorted(self.coco.getImgIds())
        self.use_gt_bbox = is_train or cfg.TEST.USE_GT_BBOX
        if cfg.DATASET.GT_BOX not in GT_BOX_RULES:
            raise ValueError(f"DATASET.GT_BOX = {cfg.DATASET.GT_BOX!r}: expected one of {', '.join(GT_BOX_RULES)}")
        self.gt_box = cfg.DATASET.GT_BOX
        self.skipped_boxes = 0
        self.db = self._gt_db() if self.use_gt_bbox else self._detection_db()
        if is_train and cfg.DATASET.SELECT_DATA:
            self.db = self.select_data(self.db)
        logger.info("=> %s %s: %d person boxes from %s (%d boxes with w or h <= 0 skipped)",
                    cfg.DATASET.DATASET, image_set, len(self.db),
                    "GT boxes" if self.use_gt_bbox else cfg.TEST.COCO_BBOX_FILE, self.skipped_boxes)

    @staticmethod
    def annotation_file(root: str, image_set: str) -> str:
        """HRNet's layout; animal sets name their files differently."""
        return os.path.join(root, "annotations", f"person_keypoints_{image_set}.json")

    @staticmethod
    def images_folder(root: str, image_set: str) -> str:
        return os.path.join(root, "images", image_set)

    @staticmethod
    def keypoint_categories(categories: list[dict]) -> list[dict]:
        """The categories whose boxes are read: COCO's person (id 1), or the
        first category of a custom set. Multi-species sets take them all."""
        return [c for c in categories if c.get("id") == 1] or categories[:1]

    def image_path(self, image_id: int) -> str:
        return os.path.join(self.image_dir, self.coco.imgs[image_id]["file_name"])

    def _gt_db(self) -> list[dict]:
        """Persons with at least one labelled keypoint; boxes clipped to the image
        as in the official loader, empty ones skipped and counted."""
        db = []
        k = self.num_joints
        for image_id in self.image_ids:
            info = self.coco.imgs[image_id]
            width, height = info["width"], info["height"]
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann.get("category_id") not in self.category_ids:
                    continue
                kpts, bbox = ann.get("keypoints"), ann.get("bbox")
                if not _finite_numbers(kpts, 3 * k):
                    got = len(kpts) if isinstance(kpts, list) and len(kpts) != 3 * k else f"{str(kpts)[:60]}"
                    raise AnnotationError(f"{self.ann_file}: annotation id {ann['id']} (image {image_id}): keypoints "
                                          f"must be {3 * k} numbers, all finite; got {got}")
                if not _finite_numbers(bbox, 4):
                    raise AnnotationError(f"{self.ann_file}: annotation id {ann['id']} (image {image_id}): bbox "
                                          f"{bbox!r} is not 4 finite numbers [x, y, w, h]")
                box = clean_gt_box(ann, width, height, self.gt_box)
                if box is None:
                    self.skipped_boxes += 1
                    continue
                kp = np.asarray(kpts, dtype=np.float32).reshape(k, 3)
                if kp.max() == 0 and not self.keep_unlabelled:  # no labelled keypoint: nothing to learn or score
                    continue
                joints = np.zeros((k, 3), np.float32)
                joints[:, :2] = kp[:, :2]
                joints_vis = np.zeros((k, 3), np.float32)
                joints_vis[:, :2] = np.minimum(kp[:, 2:3], 1)
                center, scale = box_to_center_scale(box, self.aspect_ratio, center_rule=self.box_center,
                                                    **self.box_rule)
                record = make_record(self.image_path(image_id), image_id, center, scale, joints, joints_vis)
                record["category_id"], record["bbox"] = ann["category_id"], box
                record["ordinal_key"] = str(ann["id"])  # DATASET.ORDINAL_FILE
                record["joints_visible"] = kp[:, 2] == 2  # for codecs that read visibility (Codec.reads_visibility)
                db.append(record)
        return db

    def _detection_db(self) -> list[dict]:
        cfg = self.cfg
        dets = load_detections(cfg.TEST.COCO_BBOX_FILE, set(self.image_ids), cfg.TEST.IMAGE_THRE)
        if cfg.TEST.BBOX_THRE < 1.0:
            dets = self._box_nms_per_image(dets, cfg.TEST.BBOX_THRE)
        db = []
        k = self.num_joints
        for det in dets:
            info = self.coco.imgs[det["image_id"]]
            if not usable_boxes(det["bbox"], info["width"], info["height"])[0]:
                self.skipped_boxes += 1
                continue
            center, scale = box_to_center_scale(det["bbox"], self.aspect_ratio, center_rule=self.box_center,
                                                **self.box_rule)
            db.append(make_record(self.image_path(det["image_id"]), det["image_id"], center, scale,
                                  np.zeros((k, 3), np.float32), np.ones((k, 3), np.float32), det["score"]))
        return db

    @staticmethod
    def _box_nms_per_image(dets: list[dict], iou_thresh: float) -> list[dict]:
        by_image = defaultdict(list)
        for det in dets:
            by_image[det["image_id"]].append(det)
        kept = []
        for image_dets in by_image.values():
            boxes = np.array([d["bbox"] for d in image_dets], dtype=np.float64)
            scores = np.array([d["score"] for d in image_dets], dtype=np.float64)
            kept += [image_dets[i] for i in box_nms(boxes, scores, iou_thresh)]
        return kept

    def select_data(self, db: list[dict]) -> list[dict]:
        """Official ``SELECT_DATA``: drop boxes whose visible keypoints' centre is
        far from the box centre relative to the box size."""
        selected = []
        for rec in db:
            visible = rec["joints_vis"][:, 0] > 0
            num_vis = int(visible.sum())
            if num_vis == 0:
                continue
            area = rec["scale"][0] * rec["scale"][1] * 200.0 ** 2
            joints_center = rec["joints"][visible, :2].mean(axis=0)
            ks_param = 0.2 ** 2 * (2 * area)
            diff = np.sum((joints_center - rec["center"]) ** 2)
            ks = np.exp(-1.0 * diff / ks_param)
            metric = (0.2 / 16) * num_vis + 0.45 - 0.2 / 16
            if ks > metric:
                selected.append(rec)
        logger.info("=> SELECT_DATA kept %d of %d boxes", len(selected), len(db))
        return selected

    def evaluate(self, preds: np.ndarray, boxes: np.ndarray, image_ids: Sequence[int], output_dir: str,
                 rank: int = 0) -> tuple[OrderedDict, float]:
        """preds (N, K, 3) image x, y, score; boxes (N, 6) center, scale, area,
        box score. Rescoring (box score x mean keypoint score above IN_VIS_THRE),
        OKS-NMS per image, results JSON, COCOeval. Returns (stats by name, AP)."""
        cfg = self.cfg
        res_folder = os.path.join(output_dir, "results")
        os.makedirs(res_folder, exist_ok=True)
        res_file = os.path.join(res_folder, f"keypoints_{self.image_set}_results_{rank}.json")

        rescored = instance_scores(preds, boxes[:, 5], cfg.TEST.IN_VIS_THRE)

        results = []
        # Multi-species sets with GT boxes (one prediction per record, in order):
        # each result keeps its box's species, so COCOeval matches within it.
        one_per_record = self.use_gt_bbox and len(preds) == len(self.db)
        categories = [r.get("category_id", self.category_id) for r in self.db] if one_per_record \
            else [self.category_id] * len(preds)
        for image_id, kept in nms_per_image(preds, rescored, boxes[:, 4], image_ids, cfg.TEST.OKS_THRE, self.sigmas,
                                            cfg.TEST.SOFT_NMS):
            for i in kept:
                results.append({"image_id": int(image_id), "category_id": int(categories[i]),
                                "keypoints": preds[i].reshape(-1).round(4).tolist(),
                                "score": float(rescored[i]), "center": boxes[i, 0:2].tolist(),
                                "scale": boxes[i, 2:4].tolist()})
        # json.dumps: the C encoder (json.dump streams through the slow Python one)
        write_text_atomic(res_file, json.dumps(results))
        # COCO test-dev has no public keypoints: score only a "test" set that carries labels
        # (e.g. synthetic_animal's labelled target_test)
        if "test" in self.image_set and not any(np.asarray(r["joints_vis"]).any() for r in self.db):
            return OrderedDict([("Null", 0.0)]), 0.0
        return self.coco_eval(results)

    def coco_eval(self, results: str | list) -> tuple[OrderedDict, float]:
        """COCOeval of a results file, or of the results list itself: evaluate
        hands over the list it has just written, so the file is not read back
        (HRNet's coco.py dumps and reloads it; loadRes builds the same index
        from either)."""
        if isinstance(results, str):
            with open(results) as f:
                results = json.load(f)
        if not results:
            logger.warning("no predictions to evaluate: AP = 0")
            return OrderedDict((name, 0.0) for name in STATS_NAMES), 0.0
        cfg = getattr(self, "cfg", None)
        backend = cfg.TEST.get("COCOEVAL", "pycocotools") if cfg is not None else "pycocotools"
        stats = OrderedDict(zip(STATS_NAMES, (float(v) for v in keypoint_coco_eval(self.coco, results, self.sigmas,
                                                                                    backend))))
        return stats, stats["AP"]


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> COCODataset:
    return COCODataset(cfg, image_set, is_train, codec)
