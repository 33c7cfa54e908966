"""COCO object detection for CornerNet (``DATASET.DATASET: coco_det``).

Reads ``DATASET.ROOT/annotations/instances_<set>.json`` (or, where that is absent,
``person_keypoints_<set>.json``: the synthetic set and COCO's keypoint files carry
person boxes too) and ``images/<set>/``. ``CORNERNET.CATEGORIES`` picks the
classes: ``[]`` all of the file's categories (80 for COCO), ``[1]`` persons only;
their number must equal ``MODEL.EXTRA.NUM_CLASSES``. As in the official
CornerNet-Lite ``core/dbs/coco.py`` every image is used and every box, crowd boxes
included, becomes (x, y, x + w, y + h).

Training sample (official ``core/sample/cornernet.py``): a random crop of size
``MODEL.IMAGE_SIZE`` x a scale drawn from ``arange(*CORNERNET.RAND_SCALES)``
centred at least ``BORDER`` (halved until it fits) inside the image, zero padded,
resized to ``MODEL.IMAGE_SIZE``, boxes clipped (empty ones dropped), a horizontal
flip with probability 1/2 (x -> W - x - 1), /255, colour jitter (brightness,
contrast, saturation 0.4 in random order) and PCA lighting (std 0.1), then
``DATASET.INPUT_MEAN``/``INPUT_STD``. The official YAML sets the official BGR
mean/std with ``COLOR_RGB: false`` (the released weights take BGR input).

Test sample (official ``core/test/cornernet.py``): the whole image centred in a
zero canvas of (H | 127, W | 127), one per ``CORNERNET.TEST_SCALES`` entry
(``detector_input``); ``meta`` maps output-map pixels to image pixels
(``crop_to_image``) and holds ``image_size`` (W, H), so batches need equal canvas
sizes (``TEST.BATCH_SIZE_PER_GPU: 1`` for COCO's mixed sizes). The sample is the
loop's 4-tuple with an empty target: ``core.inference.predict`` runs it like any
other test set, and the codec decodes (N, D, 6) detections per image.

``evaluate(preds, None, image_ids, output_dir)`` writes the COCO results file
(scores rounded to 2 decimals, boxes to 2, as the official ``convert_to_coco``)
and returns pycocotools' bbox AP table and its AP, the training checkpoint's
best metric.
"""
from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.image import ImageReadError, truncated
from ..utils.normalise import input_normalisation
from ..utils.utils import write_text_atomic

logger = logging.getLogger(__name__)

EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], np.float32)  # official dbs/coco.py (BGR)
EIG_VEC = np.array([[-0.58752847, -0.69563484, 0.41340352], [-0.5832747, 0.00994535, -0.81221408],
                    [-0.56089297, 0.71832671, 0.41158938]], np.float32)
AP_NAMES = ("AP", "AP .5", "AP .75", "AP (S)", "AP (M)", "AP (L)", "AR 1", "AR 10", "AR", "AR (S)", "AR (M)",
            "AR (L)")


def canvas_geometry(height: int, width: int, stride: int) -> tuple[int, int, np.ndarray]:
    """The official test canvas (H | 127, W | 127) and the (2, 3) affine from
    output-map pixels to image pixels: x / ratio - border, ratio = out / canvas."""
    ch, cw = height | 127, width | 127
    oh, ow = (ch + 1) // stride, (cw + 1) // stride
    top, left = ch // 2 - height // 2, cw // 2 - width // 2
    a = np.array([[cw / ow, 0, -left], [0, ch / oh, -top]], np.float32)
    return ch, cw, a


def detector_input(image: np.ndarray, stride: int, mean: np.ndarray, std: np.ndarray, scales=(1.0,)
                   ) -> tuple[torch.Tensor | list[torch.Tensor], dict]:
    """The official test input of one image (uint8 HWC, the configured channel
    order): centred in its zero canvas, /255, normalised; and its decode meta
    (``crop_to_image`` (2, 3), ``image_size`` (2,) W, H).

    Other ``scales`` than [1] (``CORNERNET.TEST_SCALES``, official
    ``cornernet_inference``): one input per scale, the image resized to
    (int(W s), int(H s)) with ``cv2.resize`` before its canvas, and meta
    ``crop_to_image`` (S, 2, 3) mapping each scale's output map to the original
    image (the canvas affine divided by s) and ``image_size`` (S, 2), the
    official clip size int(W s), int(H s) divided by s."""
    scales = [float(s) for s in scales]
    h, w = image.shape[:2]
    inputs, affines, sizes = [], [], []
    for scale in scales:
        nh, nw = int(h * scale), int(w * scale)
        resized = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh))
        ch, cw, a = canvas_geometry(nh, nw, stride)
        canvas = np.zeros((ch, cw, 3), np.float32)
        top, left = ch // 2 - nh // 2, cw // 2 - nw // 2
        canvas[top:top + nh, left:left + nw] = resized.astype(np.float32) / 255.0
        canvas = (canvas - mean) / std
        inputs.append(torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))))
        affines.append(torch.from_numpy(a / np.float32(scale)))
        sizes.append(torch.tensor([nw / scale, nh / scale], dtype=torch.float32))
    if scales == [1.0]:
        return inputs[0], {"crop_to_image": affines[0], "image_size": sizes[0]}
    return inputs, {"crop_to_image": torch.stack(affines), "image_size": torch.stack(sizes)}


def random_crop(image: np.ndarray, boxes: np.ndarray, scale: float, size, border: int, rng):
    """Official ``random_crop``: a (scale x size) window centred at a random point
    at least ``border`` (halved until it fits) inside the image, zero padded."""
    vw, vh = size
    ih, iw = image.shape[:2]
    h, w = int(vh * scale), int(vw * scale)

    def inner(b, n):
        i = 1
        while n - b // i <= b // i:
            i *= 2
        return b // i
    wb, hb = inner(border, iw), inner(border, ih)
    ctx, cty = int(rng.integers(wb, iw - wb)), int(rng.integers(hb, ih - hb))
    x0, x1 = max(ctx - w // 2, 0), min(ctx + w // 2, iw)
    y0, y1 = max(cty - h // 2, 0), min(cty + h // 2, ih)
    out = np.zeros((h, w, 3), image.dtype)
    cx, cy = w // 2, h // 2
    out[cy - (cty - y0):cy + (y1 - cty), cx - (ctx - x0):cx + (x1 - ctx)] = image[y0:y1, x0:x1]
    boxes = boxes.copy()
    boxes[:, 0:4:2] += cx - ctx
    boxes[:, 1:4:2] += cy - cty
    return out, boxes


def color_jitter(image: np.ndarray, rng, var: float = 0.4) -> None:
    """Official ``color_jittering_``: brightness, contrast, saturation in random order."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mean = gray.mean()
    for op in rng.permutation(3):
        alpha = 1.0 + rng.uniform(-var, var)
        if op == 0:
            image *= alpha
        elif op == 1:
            image *= alpha
            image += (1 - alpha) * mean
        else:
            image *= alpha
            image += (1 - alpha) * gray[:, :, None]


class COCODetection(Dataset):
    """``ann_file``/``image_dir`` override the ``DATASET.ROOT`` layout."""

    def __init__(self, cfg, image_set: str, is_train: bool, codec, ann_file: str = "", image_dir: str = ""):
        from pycocotools.coco import COCO

        root = cfg.DATASET.ROOT
        path = ann_file or os.path.join(root, "annotations", f"instances_{image_set}.json")
        if not os.path.isfile(path) and not ann_file:
            path = os.path.join(root, "annotations", f"person_keypoints_{image_set}.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"coco_det: neither instances_{image_set}.json nor person_keypoints_"
                                    f"{image_set}.json under {os.path.join(root, 'annotations')}")
        self.coco = COCO(path)
        self.cfg, self.is_train, self.codec = cfg, is_train, codec
        self.image_dir = image_dir or os.path.join(root, "images", image_set)
        wanted = list(cfg.CORNERNET.CATEGORIES) or sorted(self.coco.getCatIds())
        missing = [c for c in wanted if c not in self.coco.cats]
        if missing:
            raise ValueError(f"coco_det: CORNERNET.CATEGORIES {missing} are not categories of {path}")
        if len(wanted) != codec.num_classes:
            raise ValueError(f"coco_det: {len(wanted)} classes selected by CORNERNET.CATEGORIES but "
                             f"MODEL.EXTRA.NUM_CLASSES is {codec.num_classes}")
        self.cat_ids = wanted
        self.cat_to_class = {c: i for i, c in enumerate(wanted)}
        self.image_ids = sorted(self.coco.getImgIds())
        self.image_set = image_set
        self.flip_pairs: list = []  # no keypoints: the loop's flip test needs no pairs
        self.input_size = tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE)
        self.stride = round((codec.input_size[0] + 1) / codec.output_size[0])
        self.mean, self.std = input_normalisation(cfg)
        self._rng, self._rng_seed = None, None

    @property
    def rng(self) -> np.random.Generator:
        """The augmentation stream: seeded from ``SEED`` and torch's process seed,
        which differs per DataLoader worker and epoch (no two workers repeat)."""
        seed = torch.initial_seed() % 2 ** 63
        if self._rng_seed != seed:
            self._rng, self._rng_seed = np.random.default_rng([self.cfg.SEED, seed]), seed
        return self._rng

    def __len__(self) -> int:
        return len(self.image_ids)

    def boxes(self, image_id: int) -> np.ndarray:
        """(M, 5) x1, y1, x2, y2, class of the selected categories."""
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id, catIds=self.cat_ids))
        rows = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3],
                 self.cat_to_class[a["category_id"]]] for a in anns]
        return np.asarray(rows, np.float32).reshape(-1, 5)

    def read(self, image_id: int) -> np.ndarray:
        info = self.coco.loadImgs(image_id)[0]
        path = os.path.join(self.image_dir, info["file_name"])
        if truncated(path):  # the pose readers' rule (read_image)
            raise ImageReadError(f"coco_det: image {path} is truncated (its end marker is missing)")
        image = cv2.imread(path, cv2.IMREAD_COLOR)  # the official cv2.imread applies EXIF orientation
        if image is None:
            raise ImageReadError(f"coco_det: cannot read image {path}")
        if self.cfg.DATASET.COLOR_RGB:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image

    def __getitem__(self, i: int):
        image_id = self.image_ids[i]
        image = self.read(image_id)
        if self.is_train:
            return self._train_sample(image, self.boxes(image_id), image_id)
        return self._test_sample(image, image_id)

    def _train_sample(self, image, dets, image_id):
        c, rng = self.cfg.CORNERNET, self.rng
        if c.RAND_CROP:
            scale = float(rng.choice(np.arange(*c.RAND_SCALES)))
            image, dets = random_crop(image, dets, scale, self.input_size, c.BORDER, rng)
        h, w = image.shape[:2]
        dets = dets.copy()
        image = cv2.resize(image, self.input_size)
        dets[:, 0:4:2] *= self.input_size[0] / w
        dets[:, 1:4:2] *= self.input_size[1] / h
        dets[:, 0:4:2] = np.clip(dets[:, 0:4:2], 0, self.input_size[0] - 1)
        dets[:, 1:4:2] = np.clip(dets[:, 1:4:2], 0, self.input_size[1] - 1)
        dets = dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]
        if rng.uniform() > 0.5:
            image = image[:, ::-1]
            dets[:, [0, 2]] = self.input_size[0] - dets[:, [2, 0]] - 1
        image = image.astype(np.float32) / 255.0
        if c.RAND_COLOR:
            color_jitter(image, rng)
            if c.LIGHTING:
                image += EIG_VEC @ (EIG_VAL * rng.normal(scale=0.1, size=3)).astype(np.float32)
        image = (image - self.mean) / self.std
        target, weight = self.codec.encode(dets[:, :4], dets[:, 4].astype(np.int64))
        meta = {"image_id": image_id, "valid": 1}
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), \
            {k: torch.from_numpy(v) for k, v in target.items()}, torch.from_numpy(weight), meta

    def _test_sample(self, image, image_id):
        """The test canvas (one per ``CORNERNET.TEST_SCALES`` entry), no target
        (an empty dict: the loop computes no test loss), and its meta."""
        inputs, meta = detector_input(image, self.stride, self.mean, self.std, self.cfg.CORNERNET.TEST_SCALES)
        meta.update(image_id=image_id, valid=1)
        return inputs, {}, torch.ones(1), meta

    def image_path(self, image_id: int) -> str:
        return os.path.join(self.image_dir, self.coco.loadImgs(int(image_id))[0]["file_name"])

    def results(self, preds: np.ndarray, image_ids: np.ndarray) -> list[dict]:
        """COCO results entries from the (N, D, 6) per-image detections
        (x1, y1, x2, y2, score, class; score -1: none) of ``image_ids``."""
        out = []
        for image_id, dets in zip(np.asarray(image_ids).tolist(), preds):
            for x1, y1, x2, y2, score, cls in dets[dets[:, 4] > -1].tolist():
                out.append({"image_id": int(image_id), "category_id": self.cat_ids[int(cls)],
                            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                            "score": round(float(score), 2)})
        return out

    def evaluate(self, preds: np.ndarray, boxes, image_ids: np.ndarray, output_dir: str
                 ) -> tuple["OrderedDict[str, float]", float]:
        """The datasets' ``evaluate``: write ``results/bbox_<set>_results.json``
        (atomically) and return COCOeval's bbox table and its AP. ``boxes`` is
        None: a detector's test images are whole images, not person crops."""
        results = self.results(preds, image_ids)
        path = write_results(results, os.path.join(output_dir, "results", f"bbox_{self.image_set}_results.json"))
        table = bbox_ap(self.coco, path if results else [], self.image_ids, self.cat_ids)
        return table, table["AP"]

    def write_gallery(self, preds: np.ndarray, image_ids: np.ndarray, out_dir: str, score_thr: float = 0.3,
                      max_images: int = 8) -> dict[str, np.ndarray]:
        """The detections scoring ``score_thr`` or more on the first images,
        tiled into ``detections_<set>.png``; returns it by name."""
        from ..utils.vis import draw_boxes, save_gallery

        drawn = []
        for image_id, dets in list(zip(np.asarray(image_ids).tolist(), preds))[:max_images]:
            dets = dets[dets[:, 4] >= score_thr]
            boxes = np.concatenate([dets[:, :2], dets[:, 2:4] - dets[:, :2], dets[:, 4:5]], 1)
            drawn.append(draw_boxes(cv2.imread(self.image_path(image_id), cv2.IMREAD_COLOR), boxes))
        if not drawn:
            return {}
        path = os.path.join(out_dir, f"detections_{self.image_set}.png")
        return {"detections": save_gallery(drawn, [np.zeros((0, 1, 3))] * len(drawn), path, [], None,
                                           max_images=max_images)}


def write_results(results: list[dict], path: str) -> str:
    """A COCO results JSON written atomically; returns its path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_text_atomic(path, json.dumps(results))
    return path


def bbox_ap(coco, results, image_ids: list, cat_ids: list) -> "OrderedDict[str, float]":
    """pycocotools' bbox table for a results file (or list) on a COCO object;
    zeros for no results."""
    from pycocotools.cocoeval import COCOeval

    if not len(results):
        return OrderedDict((k, 0.0) for k in AP_NAMES)
    coco_eval = COCOeval(coco, coco.loadRes(results), "bbox")
    coco_eval.params.imgIds = list(image_ids)
    coco_eval.params.catIds = list(cat_ids)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return OrderedDict(zip(AP_NAMES, (float(v) for v in coco_eval.stats)))


def collate(batch: list):
    """Stack tensors (and dicts of tensors); meta values stay lists where not tensors."""
    def stack(items):
        first = items[0]
        if isinstance(first, torch.Tensor):
            return torch.stack(items)
        if isinstance(first, dict):
            return {k: stack([it[k] for it in items]) for k in first}
        return list(items)
    return tuple(stack([b[i] for b in batch]) for i in range(len(batch[0])))


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> COCODetection:
    return COCODetection(cfg, image_set, is_train, codec)
