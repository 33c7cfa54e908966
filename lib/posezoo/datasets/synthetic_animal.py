"""Synthetic quadrupeds in two appearance domains, COCO format
(``DATASET.DATASET: synthetic_animal``): the embedded default of the
adaptation experiments (``core/adaptation.py``), runnable on a CPU.

Articulated four-legged figures seen from the side (body, neck, head, tail, two
two-segment legs per girdle) are drawn with the helpers of ``synthetic.py``::

    root/annotations/quadruped_<split>.json     splits below
    root/images/<split>/<image_id:012d>.jpg
    root/.complete                              written last (generation_complete)

- ``source_train`` / ``source_val``: the labelled source domain, flat saturated
  colours on plain or gradient backgrounds with clutter (as ``synthetic.py``).
- ``target_train``: the unlabelled target domain, boxes only (keypoints all 0,
  ``num_keypoints`` 0); ``target_train_gt`` holds the same boxes with their
  keypoints, for diagnosing pseudo-labels only.
- ``target_test``: a small labelled split of the target domain.

The target domain shifts appearance only: earthy low-saturation coats with
stripes or spots, textured (blurred-noise) backgrounds, a global blur, a
contrast/brightness change and a lower JPEG quality. Poses are drawn from the
same distribution, so the gap is the appearance gap CC-SSL and WS-CDA address.

Keypoints (``QUADRUPED``): the near side of the animal is the left one when it
faces right, so a mirror image keeps the labels consistent (its flip pairs
swap). Near legs are drawn last and brighter, far legs behind and darker;
a joint covered by a later layer gets ``v=1``. Each image comes from its own
``default_rng((seed, split, index))`` stream, so the output is byte-identical
for the same arguments.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .animal import AnimalCOCODataset, KeypointSet, _links
from .synthetic import (MARKER_FILE, _background, _Canvas, _draw_clutter, _hsv_color, _shade, _write_json,
                        generate_on_first_use, generation_complete)

__all__ = ["QUADRUPED", "SPLITS", "generate_synthetic_animals", "is_generated", "get_dataset"]

_NAMES = ("Nose", "L_Eye", "R_Eye", "Withers", "TailBase", "TailTip",
          "L_F_Shoulder", "R_F_Shoulder", "L_F_Knee", "R_F_Knee", "L_F_Paw", "R_F_Paw",
          "L_B_Hip", "R_B_Hip", "L_B_Knee", "R_B_Knee", "L_B_Paw", "R_B_Paw")
QUADRUPED = KeypointSet(
    names=_NAMES,
    flip_pairs=((1, 2), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17)),
    skeleton=_links(_NAMES, [
        ("Nose", "L_Eye"), ("Nose", "R_Eye"), ("L_Eye", "Withers"), ("Withers", "TailBase"), ("TailBase", "TailTip"),
        ("Withers", "L_F_Shoulder"), ("L_F_Shoulder", "L_F_Knee"), ("L_F_Knee", "L_F_Paw"),
        ("Withers", "R_F_Shoulder"), ("R_F_Shoulder", "R_F_Knee"), ("R_F_Knee", "R_F_Paw"),
        ("TailBase", "L_B_Hip"), ("L_B_Hip", "L_B_Knee"), ("L_B_Knee", "L_B_Paw"),
        ("TailBase", "R_B_Hip"), ("R_B_Hip", "R_B_Knee"), ("R_B_Knee", "R_B_Paw")]),
    upper_body_ids=(0, 1, 2, 3, 6, 7, 8, 9, 10, 11),
    # OKS sigmas by analogy with AP-10K's (eyes/nose small, paws and knees larger).
    sigmas=(0.026, 0.025, 0.025, 0.079, 0.079, 0.089, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
)
_K = QUADRUPED.num_joints
_NOSE, _LEYE, _REYE, _WITHERS, _TAILBASE, _TAILTIP = range(6)
_SHOULDER, _FKNEE, _FPAW, _HIP, _BKNEE, _BPAW = 6, 8, 10, 12, 14, 16  # left joint; right = +1

# (split name, stream code, labelled keypoints written, target appearance)
SPLITS = {"source_train": (0, True, False), "source_val": (1, True, False),
          "target_train": (2, False, True), "target_test": (3, True, True)}
DIAGNOSTIC_SPLIT = "target_train_gt"
DEFAULT_COUNTS = {"source_train": 800, "source_val": 100, "target_train": 400, "target_test": 100}
_FIRST_ID = {"source_train": 1, "source_val": 200_000, "target_train": 400_000, "target_test": 600_000}
_AREA_FRACTION = 0.5
_LAYERS = ("far_legs", "tail", "body", "near_legs", "head")



@dataclass
class _Animal:
    keypoints: np.ndarray  # (K, 2) image coordinates, labels already following the facing
    near: int  # offset (0 left, 1 right) of the side drawn on top in each left/right pair
    head_center: np.ndarray
    head_axes: np.ndarray
    head_angle: float  # degrees
    body: np.ndarray  # (4, 2) body polygon
    length: float  # hip-to-shoulder length in pixels
    thickness: int


def _rotation(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])


def _leg(top: np.ndarray, upper: float, lower: float, swing: float, bend: float) -> tuple[np.ndarray, np.ndarray]:
    """Knee and paw below ``top``: ``swing`` radians from straight down
    (positive towards the head), the lower segment bent by ``bend``."""
    knee = top + upper * np.array([math.sin(swing), math.cos(swing)])
    paw = knee + lower * np.array([math.sin(swing + bend), math.cos(swing + bend)])
    return knee, paw


def _sample_animal(rng: np.random.Generator, length: float, origin: np.ndarray) -> _Animal:
    """A side-view quadruped, ``length`` pixels from hip to shoulder, centred
    on ``origin``, facing right or left at random. Geometry is built facing
    right (+x) in body lengths, near (left) side first."""
    kp = np.zeros((_K, 2))
    depth = rng.uniform(0.32, 0.48)  # body depth / length
    hip, shoulder = np.zeros(2), np.array([1.0, 0.0])
    kp[_WITHERS] = shoulder + [-0.05, -0.55 * depth]
    kp[_TAILBASE] = hip + [-0.08, -0.4 * depth]
    tail_angle = rng.uniform(0.2, 1.4)  # below the horizontal, pointing back
    kp[_TAILTIP] = kp[_TAILBASE] + rng.uniform(0.35, 0.6) * np.array([-math.cos(tail_angle), math.sin(tail_angle)])
    neck_angle = rng.uniform(0.35, 1.2)  # above the horizontal
    head_center = kp[_WITHERS] + rng.uniform(0.3, 0.45) * np.array([math.cos(neck_angle), -math.sin(neck_angle)])
    head_angle = rng.uniform(-0.3, 0.9)  # snout below the horizontal
    forward = np.array([math.cos(head_angle), math.sin(head_angle)])
    up = np.array([forward[1], -forward[0]])
    head_axes = np.array([0.2, 0.1]) * rng.uniform(0.85, 1.15)
    kp[_NOSE] = head_center + 0.24 * forward
    kp[_LEYE] = head_center + 0.05 * forward + 0.03 * up
    kp[_REYE] = head_center + 0.1 * forward + 0.06 * up
    leg = rng.uniform(0.75, 1.1) * depth * 2.1
    for side, dx in ((0, 0.0), (1, 0.07)):  # the far legs are set back a little
        front_top = shoulder + [dx - 0.02, 0.1 * depth]
        back_top = hip + [dx + 0.02, 0.05 * depth]
        kp[_SHOULDER + side], kp[_HIP + side] = front_top, back_top
        kp[_FKNEE + side], kp[_FPAW + side] = _leg(front_top, 0.5 * leg, 0.5 * leg, rng.uniform(-0.6, 0.6),
                                                   rng.uniform(-0.9, 0.1))
        kp[_BKNEE + side], kp[_BPAW + side] = _leg(back_top, 0.5 * leg, 0.5 * leg, rng.uniform(-0.6, 0.6),
                                                   rng.uniform(-0.1, 0.9))
    body = np.array([kp[_TAILBASE], kp[_WITHERS], shoulder + [0.08, 0.45 * depth], hip + [-0.05, 0.5 * depth]])

    facing = 1.0 if rng.random() < 0.5 else -1.0
    rot = _rotation(rng.normal(0.0, 0.12))

    def place(p: np.ndarray) -> np.ndarray:
        return ((np.asarray(p) - [0.5, 0.0]) * [facing, 1.0]) @ rot.T * length + origin

    kp = place(kp)
    near = 0
    if facing < 0:  # facing left, the near side is the animal's right: the labels follow
        near = 1
        for a, b in QUADRUPED.flip_pairs:
            kp[[a, b]] = kp[[b, a]]
    snout = rot @ (forward * [facing, 1.0])
    return _Animal(keypoints=kp, near=near, head_center=place(head_center), head_axes=head_axes * length,
                   head_angle=math.degrees(math.atan2(snout[1], snout[0])), body=place(body), length=length,
                   thickness=int(np.clip(round(length / 14), 2, 9)))


def _palette(rng: np.random.Generator, target: bool) -> dict:
    if target:  # earthy, low saturation, with darker marks
        coat = _hsv_color(rng, (5, 30), (30, 120), (70, 200))
        marks = _shade(coat, rng.uniform(0.35, 0.6))
    else:
        coat = _hsv_color(rng, (0, 180), (150, 255), (140, 255))
        marks = coat
    return {"coat": coat, "far": _shade(coat, 0.6), "marks": marks,
            "eye": _hsv_color(rng, (0, 180), (0, 60), (10, 50)), "nose": _hsv_color(rng, (0, 20), (60, 200), (40, 90))}


def _coat_marks(canvas: _Canvas, rng: np.random.Generator, animal: _Animal, color, label: int) -> None:
    """Stripes or spots on the visible part of the body (target coats)."""
    lo, hi = animal.body.min(axis=0), animal.body.max(axis=0)
    marks = np.zeros(canvas.labels.shape, np.uint8)
    if rng.random() < 0.5:
        step = max(3.0, animal.length * rng.uniform(0.08, 0.15))
        for x in np.arange(lo[0], hi[0], step):
            slant = rng.uniform(-0.3, 0.3) * (hi[1] - lo[1])
            cv2.line(marks, (int(x), int(lo[1])), (int(x + slant), int(hi[1])), 1, max(1, int(step / 3)))
    else:
        for _ in range(int(rng.integers(6, 16))):
            c = rng.uniform(lo, hi)
            cv2.circle(marks, (int(c[0]), int(c[1])), max(1, int(animal.length * rng.uniform(0.03, 0.07))), 1, -1)
    canvas.image[(marks > 0) & (canvas.labels == label)] = color


def _draw_animal(canvas: _Canvas, rng: np.random.Generator, animal: _Animal, target: bool) -> np.ndarray:
    """Draw ``animal`` far legs, tail, body, near legs, head; return the
    canvas label of each layer (``_LAYERS`` order)."""
    col = _palette(rng, target)
    kp, t, near = animal.keypoints, animal.thickness, animal.near
    layers = np.array([canvas.new_layer() for _ in _LAYERS])
    for side, color, layer in ((1 - near, col["far"], layers[0]), (near, col["coat"], None)):
        if layer is None:  # near legs after the body
            canvas.line(kp[_TAILBASE], kp[_TAILTIP], col["coat"], max(2, t - 1), layers[1])
            canvas.polygon(animal.body, col["coat"], layers[2])
            for i in range(4):
                canvas.line(animal.body[i], animal.body[(i + 1) % 4], col["coat"], t, layers[2])
            if target:
                _coat_marks(canvas, rng, animal, col["marks"], layers[2])
            layer = layers[3]
        for top, knee, paw in ((_SHOULDER, _FKNEE, _FPAW), (_HIP, _BKNEE, _BPAW)):
            canvas.line(kp[top + side], kp[knee + side], color, t, layer)
            canvas.line(kp[knee + side], kp[paw + side], _shade(color, 0.85), max(2, t - 1), layer)
    canvas.line(kp[_WITHERS], animal.head_center, col["coat"], int(t * 1.6), layers[4])
    canvas.ellipse(animal.head_center, animal.head_axes, animal.head_angle, col["coat"], layers[4])
    eye_radius = max(1.0, 0.03 * animal.length)
    canvas.circle(kp[_LEYE + near], eye_radius, col["eye"], layers[4])
    canvas.circle(kp[_NOSE], 1.2 * eye_radius, col["nose"], layers[4])
    return layers


def _keypoint_layers(near: int) -> np.ndarray:
    """Index into ``_LAYERS`` of the layer each keypoint belongs to."""
    layer = np.full(_K, 2)  # withers, tail base: the body
    layer[[_NOSE, _LEYE, _REYE]] = 4
    layer[_TAILTIP] = 1
    for base in (_SHOULDER, _FKNEE, _FPAW, _HIP, _BKNEE, _BPAW):
        layer[base + near], layer[base + 1 - near] = 3, 0
    return layer


def _annotation(animal: _Animal, layers: np.ndarray, labels: np.ndarray) -> tuple[list[float], int]:
    """COCO ``keypoints`` and ``num_keypoints``: v=2 visible, v=1 covered by a
    later layer (the far eye always: it is behind the head), 0 outside."""
    height, width = labels.shape
    xy = np.round(animal.keypoints, 2)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    cols = np.clip(xy[:, 0].astype(np.int64), 0, width - 1)
    rows = np.clip(xy[:, 1].astype(np.int64), 0, height - 1)
    covered = labels[rows, cols] > layers[_keypoint_layers(animal.near)]
    covered[_LEYE + 1 - animal.near] = True
    vis = np.where(inside, np.where(covered, 1, 2), 0)
    xy[~inside] = 0.0
    return np.column_stack([xy, vis]).reshape(-1).tolist(), int(inside.sum())


def _bbox(animal: _Animal, width: int, height: int) -> Optional[list[float]]:
    pts = np.concatenate([animal.keypoints, animal.body, animal.head_center[None] + np.array([[-1, -1], [1, 1]])
                          * animal.head_axes.max()])
    pad = animal.thickness / 2
    x0, y0 = np.clip(pts.min(axis=0) - pad, 0, [width, height])
    x1, y1 = np.clip(pts.max(axis=0) + pad, 0, [width, height])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)]


def _target_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Textured background: blurred multi-scale colour noise (foliage/soil-like)."""
    image = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.6), (40, 0.35)):
        noise = rng.uniform(0, 255, size=(cells, max(2, cells * width // height), 3)).astype(np.float32)
        image += weight * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    image /= 1.95
    tint = np.array(_hsv_color(rng, (20, 90), (40, 160), (80, 200)), np.float32)
    return np.clip(0.5 * image + 0.5 * tint, 0, 255).astype(np.uint8)


def _appearance_shift(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Global blur, contrast and brightness change of the target domain."""
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 1.8))
    gain, bias = rng.uniform(0.6, 0.9), rng.uniform(10, 50)
    return np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def _render(rng: np.random.Generator, width: int, height: int, target: bool
            ) -> tuple[np.ndarray, list[tuple[list[float], list[float], int]]]:
    """One image and its animals as (bbox, keypoints, num_keypoints)."""
    canvas = _Canvas(_target_background(rng, width, height) if target else _background(rng, width, height))
    _draw_clutter(rng, canvas, int(rng.integers(1, 6)))
    count = 1 if rng.random() < 0.75 else 2
    animals = []
    for _ in range(count):
        length = rng.uniform(0.28, 0.5) * width / count ** 0.5
        origin = rng.uniform([0.25 * width, 0.35 * height], [0.75 * width, 0.6 * height])
        animals.append(_sample_animal(rng, length, origin))
    layers = [_draw_animal(canvas, rng, a, target) for a in animals]
    image = _appearance_shift(rng, canvas.image) if target else canvas.image
    out = []
    for animal, animal_layers in zip(animals, layers):
        box = _bbox(animal, width, height)
        if box is not None:
            keypoints, num = _annotation(animal, animal_layers, canvas.labels)
            out.append((box, keypoints, num))
    return image, out


def _split_file(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"quadruped_{split}.json")


def generate_synthetic_animals(root: str, seed: int = 0, counts: Optional[dict] = None,
                               image_size: tuple[int, int] = (160, 128)) -> dict:
    """Write the four splits (and ``target_train_gt``) under ``root``;
    ``counts`` overrides ``DEFAULT_COUNTS`` per split. Returns a summary."""
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    width, height = (int(v) for v in image_size)
    if width < 48 or height < 48:
        raise ValueError(f"image_size too small for quadrupeds: {image_size}")
    if any(v < 0 or v >= 200_000 for v in counts.values()):
        raise ValueError(f"split sizes must be in 0..199999; got {counts}")
    marker = os.path.join(root, MARKER_FILE)
    if os.path.exists(marker):
        os.remove(marker)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    category = {"supercategory": "animal", "id": 1, "name": "quadruped", "keypoints": list(QUADRUPED.names),
                "skeleton": [[a + 1, b + 1] for a, b in QUADRUPED.skeleton]}
    summary: dict = {"seed": seed, "image_size": [width, height]}
    annotation_id = 1
    for split, (code, labelled, target) in SPLITS.items():
        folder = os.path.join(root, "images", split)
        os.makedirs(folder, exist_ok=True)
        images, anns = [], []
        for index in range(counts[split]):
            image_id = _FIRST_ID[split] + index
            image, animals = _render(np.random.default_rng([seed, code, index]), width, height, target)
            name = f"{image_id:012d}.jpg"
            quality = 70 if target else 95
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise OSError(f"could not encode {name}")
            with open(os.path.join(folder, name + ".tmp"), "wb") as f:
                f.write(data.tobytes())
            os.replace(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for box, keypoints, num in animals:
                anns.append({"id": annotation_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": box,
                             "area": round(_AREA_FRACTION * box[2] * box[3], 2), "num_keypoints": num,
                             "keypoints": keypoints, "segmentation": []})
                annotation_id += 1
        coco = {"info": {"description": f"posezoo synthetic quadrupeds, {split}", "seed": seed},
                "images": images, "annotations": anns, "categories": [category]}
        if not labelled:
            _write_json(_split_file(root, DIAGNOSTIC_SPLIT), coco)
            coco = {**coco, "annotations": [{**a, "keypoints": [0] * (3 * _K), "num_keypoints": 0} for a in anns]}
        _write_json(_split_file(root, split), coco)
        summary[split] = {"images": len(images), "animals": len(anns)}
    _write_json(marker, summary)
    return summary


def is_generated(root: str) -> bool:
    return generation_complete(root, [_split_file(root, s) for s in (*SPLITS, DIAGNOSTIC_SPLIT)])


class SyntheticAnimalDataset(AnimalCOCODataset):
    """A split of the generated data; the unlabelled ``target_train`` keeps its
    boxes (the pseudo-labelling input) with zero target weights."""

    keypoints = QUADRUPED

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        if image_set not in SPLITS and image_set != DIAGNOSTIC_SPLIT:
            raise ValueError(f"synthetic_animal image set {image_set!r}: one of {', '.join(SPLITS)}, "
                             f"{DIAGNOSTIC_SPLIT}")
        self.keep_unlabelled = image_set == "target_train"
        super().__init__(cfg, image_set, is_train, codec)

    @staticmethod
    def annotation_file(root: str, image_set: str) -> str:
        return _split_file(root, image_set)

    @staticmethod
    def images_folder(root: str, image_set: str) -> str:
        return os.path.join(root, "images", "target_train" if image_set == DIAGNOSTIC_SPLIT else image_set)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> SyntheticAnimalDataset:
    """``DATASET.DATASET: synthetic_animal``, generated under ``DATASET.ROOT``
    (seed ``SEED``) on first use."""
    generate_on_first_use(cfg.DATASET.ROOT, cfg.SEED, is_generated, generate_synthetic_animals,
                          lambda s: "synthetic quadrupeds (" + ", ".join(f"{k} {s[k]['images']}" for k in SPLITS) + ")")
    return SyntheticAnimalDataset(cfg, image_set, is_train, codec)
