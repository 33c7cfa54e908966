"""Deterministic synthetic COCO person-keypoints dataset.

The generator draws articulated stick-figure people on noisy, cluttered
backgrounds and writes the result in the standard COCO layout::

    root/images/train2017/000000000001.jpg
    root/images/val2017/000000100000.jpg
    root/annotations/person_keypoints_train2017.json
    root/annotations/person_keypoints_val2017.json
    root/person_detection_results/COCO_val2017_detections_synthetic.json
    root/.complete

Left limbs are drawn in warm (red/orange) hues, right limbs in blue hues and
the torso in green/yellow hues, so that left/right flip pairs are visually
distinguishable.  Figures face the camera, hence the person's left side is on
the image's right side.

Keypoint visibility follows COCO: ``v=2`` visible, ``v=1`` labelled but
covered by something drawn later (another figure, the other limb of the same
figure, or a foreground occluder), ``v=0`` with ``x=y=0`` when the joint is
outside the image or the person is not labelled at all (a few tiny background
people, like the unannotated small people in real COCO).

Every image is generated from its own ``numpy.random.default_rng`` stream
seeded with ``(seed, split, index)``, so the output is byte-identical for the
same arguments and the first images of a split do not depend on how many
images are requested.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ..utils.utils import write_bytes_atomic
from .coco import COCO_KEYPOINT_NAMES, COCO_SKELETON, keypoint_info  # noqa: F401 (keypoint_info: registry)

__all__ = [
    "DETECTIONS_FILE",
    "KEYPOINT_NAMES",
    "MARKER_FILE",
    "SKELETON",
    "generate_synthetic_coco",
    "is_generated",
]

KEYPOINT_NAMES = COCO_KEYPOINT_NAMES
# Standard COCO skeleton, 1-based keypoint indices (as the annotation files write it).
SKELETON = tuple((a + 1, b + 1) for a, b in COCO_SKELETON)

MARKER_FILE = ".complete"
DETECTIONS_FILE = "COCO_val2017_detections_synthetic.json"
TRAIN_IMAGE_ID_START = 1
VAL_IMAGE_ID_START = 100_000
JPEG_QUALITY = 95

_NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# Keypoint indices.  Paired joints give the index of the left one; COCO lists
# each right keypoint directly after its left counterpart (offset 1).
_NOSE, _EYE, _EAR, _SHOULDER, _ELBOW, _WRIST, _HIP, _KNEE, _ANKLE = 0, 1, 3, 5, 7, 9, 11, 13, 15
_LEFT, _RIGHT = 0, 1
_SPLIT_TRAIN, _SPLIT_VAL, _STREAM_DETECTIONS = 0, 1, 2

# Fraction of the clipped bounding box counted as the person's area (COCO
# uses the segmentation area as the OKS object scale).
_AREA_FRACTION = 0.6

# Sub-pixel precision used for all cv2 drawing calls.
_SHIFT = 4
_FIXED_ONE = 1 << _SHIFT

# Body parts drawn as separate layers; a keypoint is occluded when a layer
# drawn later covers its pixel.
_TORSO, _LEFT_LEG, _RIGHT_LEG, _HEAD, _LEFT_ARM, _RIGHT_ARM = range(6)
_NUM_LAYERS = 6
_KEYPOINT_LAYER = np.array(
    [_HEAD] * 5
    + [_LEFT_ARM, _RIGHT_ARM] * 3
    + [_LEFT_LEG, _RIGHT_LEG] * 3
)

# Hue ranges in OpenCV units (0..180); red wraps around 180.
_LEFT_HUES = (-8.0, 14.0)
_RIGHT_HUES = (100.0, 124.0)
_TORSO_HUES = (30.0, 80.0)

Color = tuple[int, int, int]


@dataclass
class _Figure:
    """One stick-figure person in image coordinates."""

    keypoints: np.ndarray  # (17, 2)
    neck: np.ndarray  # (2,)
    head_center: np.ndarray  # (2,)
    head_radius: float
    ear_radius: float
    eye_radius: float
    toes: np.ndarray  # (2, 2): left toe, right toe
    height: float
    thickness: int
    colors: dict[str, Color]
    labelled: bool


@dataclass
class _Person:
    """Annotation data of one drawn figure."""

    bbox: list[float]
    area: float
    keypoints: list[float]
    num_keypoints: int


class _Canvas:
    """A BGR image plus a label map recording which layer owns each pixel."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.labels = np.zeros(image.shape[:2], np.uint16)
        self._last_label = 0

    def new_layer(self) -> int:
        """Return a label that lies above every label handed out so far."""
        self._last_label += 1
        return self._last_label

    def line(self, p: np.ndarray, q: np.ndarray, color: Color, thickness: int,
             label: Optional[int] = None) -> None:
        cv2.line(self.image, _fixed(p), _fixed(q), color, thickness, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.line(self.labels, _fixed(p), _fixed(q), int(label), thickness, cv2.LINE_8, _SHIFT)

    def circle(self, center: np.ndarray, radius: float, color: Color,
               label: Optional[int] = None, thickness: int = -1) -> None:
        r = max(1, int(round(radius * _FIXED_ONE)))
        cv2.circle(self.image, _fixed(center), r, color, thickness, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.circle(self.labels, _fixed(center), r, int(label), thickness, cv2.LINE_8, _SHIFT)

    def ellipse(self, center: np.ndarray, axes: np.ndarray, angle: float, color: Color,
                label: Optional[int] = None, thickness: int = -1) -> None:
        ax = tuple(max(1, int(round(a * _FIXED_ONE))) for a in axes)
        cv2.ellipse(self.image, _fixed(center), ax, angle, 0, 360, color, thickness,
                    cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.ellipse(self.labels, _fixed(center), ax, angle, 0, 360, int(label), thickness,
                        cv2.LINE_8, _SHIFT)

    def polygon(self, points: np.ndarray, color: Color, label: Optional[int] = None) -> None:
        pts = np.round(points * _FIXED_ONE).astype(np.int32)
        cv2.fillConvexPoly(self.image, pts, color, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.fillConvexPoly(self.labels, pts, int(label), cv2.LINE_8, _SHIFT)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """Convert a float point to cv2 fixed-point coordinates."""
    return int(round(point[0] * _FIXED_ONE)), int(round(point[1] * _FIXED_ONE))


def _hsv_color(rng: np.random.Generator, hues: Sequence[float],
               sats: Sequence[float], vals: Sequence[float]) -> Color:
    """Sample a BGR colour uniformly inside the given HSV box."""
    hue = rng.uniform(*hues) % 180.0
    hsv = np.array([[[hue, rng.uniform(*sats), rng.uniform(*vals)]]]).round().astype(np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, round(c * factor))) for c in color)


def _sample_palette(rng: np.random.Generator) -> dict[str, Color]:
    left = _hsv_color(rng, _LEFT_HUES, (170, 255), (150, 255))
    right = _hsv_color(rng, _RIGHT_HUES, (170, 255), (130, 255))
    return {
        "left": left,
        "left_lower": _shade(left, 0.75),
        "right": right,
        "right_lower": _shade(right, 0.75),
        "torso": _hsv_color(rng, _TORSO_HUES, (110, 255), (110, 230)),
        "skin": _hsv_color(rng, (5, 30), (40, 140), (150, 245)),
        "left_eye": _hsv_color(rng, _LEFT_HUES, (200, 255), (60, 110)),
        "right_eye": _hsv_color(rng, _RIGHT_HUES, (200, 255), (60, 110)),
        "nose": _hsv_color(rng, (0, 180), (0, 80), (20, 60)),
    }


def _limb_direction(side: float, angle: float) -> np.ndarray:
    """Unit vector ``angle`` radians away from straight down, towards ``side``."""
    return np.array([side * math.sin(angle), math.cos(angle)])


def _sample_figure(rng: np.random.Generator, height: float, pelvis: np.ndarray,
                   labelled: bool) -> _Figure:
    """Sample a plausible frontal pose of a figure ``height`` pixels tall."""
    torso = 0.30 * height
    shoulder_half = 0.5 * rng.uniform(0.20, 0.26) * height
    hip_half = 0.5 * rng.uniform(0.13, 0.18) * height
    head_radius = rng.uniform(0.065, 0.08) * height
    upper_arm, forearm = 0.17 * height, 0.15 * height
    thigh, shin = 0.24 * height, 0.23 * height

    lean = rng.uniform(-0.15, 0.15)
    up = np.array([math.sin(lean), -math.cos(lean)])
    across = np.array([math.cos(lean), math.sin(lean)])  # towards the person's left
    neck = torso * up

    tilt = lean + rng.uniform(-0.25, 0.25)
    head_up = np.array([math.sin(tilt), -math.cos(tilt)])
    head_across = np.array([math.cos(tilt), math.sin(tilt)])
    head_center = neck + 1.3 * head_radius * head_up
    yaw = rng.uniform(-0.3, 0.3) * head_radius

    points = np.zeros((_NUM_KEYPOINTS, 2))
    points[_NOSE] = head_center + yaw * head_across - 0.2 * head_radius * head_up
    toes = np.zeros((2, 2))
    for side, offset in ((1.0, _LEFT), (-1.0, _RIGHT)):
        points[_EYE + offset] = (head_center + 0.2 * head_radius * head_up
                                 + (side * 0.38 * head_radius + 0.8 * yaw) * head_across)
        points[_EAR + offset] = head_center + side * 0.98 * head_radius * head_across

        shoulder = neck + side * shoulder_half * across - 0.03 * height * up
        arm_angle = rng.uniform(-0.4, 2.9)
        elbow = shoulder + upper_arm * _limb_direction(side, arm_angle)
        wrist = elbow + forearm * _limb_direction(side, arm_angle + rng.uniform(-0.7, 2.4))
        points[_SHOULDER + offset] = shoulder
        points[_ELBOW + offset] = elbow
        points[_WRIST + offset] = wrist

        hip = side * hip_half * across
        if rng.random() < 0.15:
            leg_angle = rng.uniform(0.6, 1.5)
        else:
            leg_angle = rng.uniform(-0.2, 0.6)
        shin_angle = float(np.clip(leg_angle + rng.uniform(-1.2, 0.2), -0.6, 1.2))
        knee = hip + thigh * _limb_direction(side, leg_angle)
        ankle = knee + shin * _limb_direction(side, shin_angle)
        points[_HIP + offset] = hip
        points[_KNEE + offset] = knee
        points[_ANKLE + offset] = ankle
        outward = np.array([side * math.cos(shin_angle), -math.sin(shin_angle)])
        toes[offset] = ankle + 0.07 * height * outward

    angle = float(np.clip(rng.normal(0.0, 0.2), -0.6, 0.6))
    rotation = np.array([[math.cos(angle), -math.sin(angle)],
                         [math.sin(angle), math.cos(angle)]])

    def place(p: np.ndarray) -> np.ndarray:
        return p @ rotation.T + pelvis

    return _Figure(
        keypoints=place(points),
        neck=place(neck),
        head_center=place(head_center),
        head_radius=head_radius,
        ear_radius=0.3 * head_radius,
        eye_radius=max(1.0, 0.14 * head_radius),
        toes=place(toes),
        height=height,
        thickness=int(np.clip(round(height / 25), 2, 8)),
        colors=_sample_palette(rng),
        labelled=labelled,
    )


def _draw_figure(canvas: _Canvas, fig: _Figure) -> np.ndarray:
    """Draw ``fig`` and return the label of each of its layers."""
    kp, col, t = fig.keypoints, fig.colors, fig.thickness
    layers = np.array([canvas.new_layer() for _ in range(_NUM_LAYERS)])

    corners = kp[[_SHOULDER + _LEFT, _SHOULDER + _RIGHT, _HIP + _RIGHT, _HIP + _LEFT]]
    canvas.polygon(corners, col["torso"], layers[_TORSO])
    for i in range(4):
        canvas.line(corners[i], corners[(i + 1) % 4], col["torso"], max(2, t // 2),
                    layers[_TORSO])

    for side, offset, layer in (("left", _LEFT, _LEFT_LEG), ("right", _RIGHT, _RIGHT_LEG)):
        hip, knee, ankle = kp[_HIP + offset], kp[_KNEE + offset], kp[_ANKLE + offset]
        canvas.line(ankle, fig.toes[offset], _shade(col[side + "_lower"], 0.7),
                    max(2, t - 1), layers[layer])
        canvas.line(knee, ankle, col[side + "_lower"], t, layers[layer])
        canvas.line(hip, knee, col[side], t, layers[layer])

    head = layers[_HEAD]
    canvas.line(fig.neck, fig.head_center, col["skin"], max(2, t - 1), head)
    canvas.circle(fig.head_center, fig.head_radius, col["skin"], head)
    canvas.circle(kp[_EAR + _LEFT], fig.ear_radius, col["left"], head)
    canvas.circle(kp[_EAR + _RIGHT], fig.ear_radius, col["right"], head)
    canvas.circle(kp[_EYE + _LEFT], fig.eye_radius, col["left_eye"], head)
    canvas.circle(kp[_EYE + _RIGHT], fig.eye_radius, col["right_eye"], head)
    canvas.circle(kp[_NOSE], fig.eye_radius, col["nose"], head)

    for side, offset, layer in (("left", _LEFT, _LEFT_ARM), ("right", _RIGHT, _RIGHT_ARM)):
        shoulder, elbow, wrist = kp[_SHOULDER + offset], kp[_ELBOW + offset], kp[_WRIST + offset]
        canvas.line(shoulder, elbow, col[side], t, layers[layer])
        canvas.line(elbow, wrist, col[side + "_lower"], t, layers[layer])
    return layers


def _figure_bbox(fig: _Figure, width: int, height: int) -> Optional[list[float]]:
    """Tight box ``[x, y, w, h]`` around the drawn figure, clipped to the image."""
    half = fig.thickness / 2.0
    centers = np.concatenate([fig.keypoints, fig.toes, fig.head_center[None]])
    radii = np.concatenate([np.full(len(fig.keypoints) + len(fig.toes), half),
                            [fig.head_radius]])
    ears = [_EAR + _LEFT, _EAR + _RIGHT]
    radii[ears] = np.maximum(radii[ears], fig.ear_radius)
    x0, y0 = np.clip((centers - radii[:, None]).min(axis=0), 0, [width, height])
    x1, y1 = np.clip((centers + radii[:, None]).max(axis=0), 0, [width, height])
    x0, y0, x1, y1 = (round(float(v), 2) for v in (x0, y0, x1, y1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)]


def _keypoint_annotation(fig: _Figure, layers: np.ndarray, labels: np.ndarray
                         ) -> tuple[list[float], int]:
    """COCO ``keypoints`` list and ``num_keypoints`` of a drawn figure."""
    height, width = labels.shape
    xy = np.round(fig.keypoints, 2)
    inside = ((xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
              & fig.labelled)
    visibility = np.zeros(_NUM_KEYPOINTS, np.int64)
    cols = np.clip(xy[:, 0].astype(np.int64), 0, width - 1)
    rows = np.clip(xy[:, 1].astype(np.int64), 0, height - 1)
    covered = labels[rows, cols] > layers[_KEYPOINT_LAYER]
    visibility[inside] = np.where(covered[inside], 1, 2)
    xy[~inside] = 0.0
    flat: list[float] = []
    for (x, y), v in zip(xy.tolist(), visibility.tolist()):
        flat += [x, y, v]
    return flat, int(inside.sum())


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Plain or linear-gradient background with Gaussian noise."""
    start = np.array(_hsv_color(rng, (0, 180), (0, 120), (60, 230)), np.float32)
    if rng.random() < 0.5:
        image = np.broadcast_to(start, (height, width, 3)).astype(np.float32)
    else:
        end = np.array(_hsv_color(rng, (0, 180), (0, 120), (60, 230)), np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
        image = start + ramp[..., None] * (end - start)
    sigma = rng.uniform(2.0, 10.0)
    image = image + sigma * rng.standard_normal((height, width, 3), dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_clutter(rng: np.random.Generator, canvas: _Canvas, count: int) -> list[list[float]]:
    """Draw distractor lines, circles and rectangles; return their boxes."""
    height, width = canvas.labels.shape
    boxes = []
    for _ in range(count):
        color = _hsv_color(rng, (0, 180), (0, 255), (40, 255))
        kind = rng.integers(3)
        if kind == 0:
            p, q = rng.uniform(-20, [width + 20, height + 20], size=(2, 2))
            thickness = int(rng.integers(1, 9))
            canvas.line(p, q, color, thickness)
            lo, hi = np.minimum(p, q) - thickness / 2, np.maximum(p, q) + thickness / 2
        elif kind == 1:
            center = rng.uniform(0, [width, height])
            radius = rng.uniform(4, 30)
            canvas.circle(center, radius, color, thickness=-1 if rng.random() < 0.5 else 2)
            lo, hi = center - radius, center + radius
        else:
            lo = rng.uniform(0, [width, height])
            hi = lo + rng.uniform(8, 60, size=2)
            corners = np.array([lo, [hi[0], lo[1]], hi, [lo[0], hi[1]]])
            if rng.random() < 0.5:
                canvas.polygon(corners, color)
            else:
                for i in range(4):
                    canvas.line(corners[i], corners[(i + 1) % 4], color, 2)
        lo = np.clip(lo, 0, [width, height])
        hi = np.clip(hi, 0, [width, height])
        boxes.append([float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])])
    return boxes


def _draw_occluders(rng: np.random.Generator, canvas: _Canvas, figures: list[_Figure]) -> None:
    """Draw filled shapes in front of random joints of the figures."""
    for _ in range(int(rng.integers(1, 3))):
        fig = figures[int(rng.integers(len(figures)))]
        center = fig.keypoints[int(rng.integers(_NUM_KEYPOINTS))]
        center = center + rng.normal(0.0, 0.08 * fig.height, size=2)
        axes = 0.5 * fig.height * rng.uniform(0.12, 0.35, size=2)
        color = _hsv_color(rng, (0, 180), (0, 255), (40, 255))
        label = canvas.new_layer()
        if rng.random() < 0.5:
            canvas.ellipse(center, axes, rng.uniform(0, 180), color, label)
        else:
            corners = center + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * axes
            canvas.polygon(corners, color, label)


def _place_figure(rng: np.random.Generator, width: int, height: int, fig_height: float,
                  labelled: bool) -> _Figure:
    """Sample a figure whose body is mostly, but not always fully, in frame."""
    half = 0.42 * fig_height
    low, high = sorted((half, height - half))
    pelvis_y = rng.uniform(low, high) + rng.normal(0.0, 0.05 * fig_height)
    pelvis_x = rng.uniform(0.1, 0.9) * width
    return _sample_figure(rng, fig_height, np.array([pelvis_x, pelvis_y]), labelled)


def _render_image(rng: np.random.Generator, width: int, height: int
                  ) -> tuple[np.ndarray, list[_Person], list[list[float]]]:
    """Render one image; return it, its people and its clutter boxes."""
    canvas = _Canvas(_background(rng, width, height))
    clutter = _draw_clutter(rng, canvas, int(rng.integers(2, 9)))

    figures = []
    if rng.random() < 0.04:
        size = rng.uniform(0.1, 0.18) * height
        figures.append(_place_figure(rng, width, height, size, labelled=False))
    num_people = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    sizes = np.sort(rng.uniform(0.375, 0.92, size=num_people) * height)
    figures += [_place_figure(rng, width, height, s, labelled=True) for s in sizes]

    layers = [_draw_figure(canvas, fig) for fig in figures]
    if rng.random() < 0.35:
        _draw_occluders(rng, canvas, figures)

    people = []
    for fig, fig_layers in zip(figures, layers):
        bbox = _figure_bbox(fig, width, height)
        if bbox is None:
            continue
        keypoints, num_keypoints = _keypoint_annotation(fig, fig_layers, canvas.labels)
        area = round(_AREA_FRACTION * bbox[2] * bbox[3], 2)
        people.append(_Person(bbox, area, keypoints, num_keypoints))
    return canvas.image, people, clutter


def _jitter_box(rng: np.random.Generator, box: Sequence[float], relative: float,
                width: int, height: int) -> Optional[list[float]]:
    """Randomly shift and rescale ``box``; clip to the image."""
    x, y, w, h = box
    cx = x + w / 2 + rng.normal(0.0, relative * w)
    cy = y + h / 2 + rng.normal(0.0, relative * h)
    w *= math.exp(rng.normal(0.0, relative))
    h *= math.exp(rng.normal(0.0, relative))
    x0, y0 = max(0.0, cx - w / 2), max(0.0, cy - h / 2)
    x1, y1 = min(float(width), cx + w / 2), min(float(height), cy + h / 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def _detections(rng: np.random.Generator, image_id: int, people: list[_Person],
                clutter: list[list[float]], width: int, height: int) -> list[dict]:
    """Simulated person detector output for one image (COCO results format)."""
    results = []

    def add(box: Optional[list[float]], score: float) -> None:
        if box is not None:
            results.append({"image_id": image_id, "category_id": 1, "bbox": box,
                            "score": round(score, 4)})

    for person in people:
        miss_rate = 0.05 if person.num_keypoints > 0 else 0.5
        if rng.random() >= miss_rate:
            add(_jitter_box(rng, person.bbox, 0.07, width, height), rng.uniform(0.6, 1.0))
    for _ in range(int(rng.poisson(1.2))):
        if clutter and rng.random() < 0.7:
            box = clutter[int(rng.integers(len(clutter)))]
        else:
            w, h = rng.uniform(20, 100), rng.uniform(40, 160)
            box = [rng.uniform(0, width - w / 2), rng.uniform(0, height - h / 2), w, h]
        add(_jitter_box(rng, box, 0.15, width, height), rng.uniform(0.05, 0.5))
    return results


def _categories() -> list[dict]:
    return [{
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [list(pair) for pair in SKELETON],
    }]


def _write_json(path: str, obj: object) -> None:
    write_bytes_atomic(path, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def _generate_split(root: str, split: str, split_code: int, seed: int, num_images: int,
                    first_image_id: int, first_annotation_id: int, width: int, height: int,
                    with_detections: bool) -> tuple[dict, list[dict], dict]:
    """Render and write the images of one split.

    Returns the COCO annotation file content, the detections and the summary.
    """
    image_dir = os.path.join(root, "images", f"{split}2017")
    os.makedirs(image_dir, exist_ok=True)
    images, annotations, detections = [], [], []
    visibility_counts = np.zeros(3, np.int64)
    annotation_id = first_annotation_id

    for index in range(num_images):
        image_id = first_image_id + index
        file_name = f"{image_id:012d}.jpg"
        rng = np.random.default_rng([seed, split_code, index])
        image, people, clutter = _render_image(rng, width, height)
        if not cv2.imwrite(os.path.join(image_dir, file_name), image,
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f"could not write {os.path.join(image_dir, file_name)}")
        images.append({"id": image_id, "file_name": file_name, "width": width,
                       "height": height, "license": 1})
        for person in people:
            annotations.append({
                "id": annotation_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": person.bbox,
                "area": person.area,
                "num_keypoints": person.num_keypoints,
                "keypoints": person.keypoints,
                "segmentation": [],
            })
            annotation_id += 1
            visibility_counts += np.bincount(person.keypoints[2::3], minlength=3)
        if with_detections:
            det_rng = np.random.default_rng([seed, _STREAM_DETECTIONS, index])
            detections += _detections(det_rng, image_id, people, clutter, width, height)

    coco = {
        "info": {
            "description": "posezoo synthetic COCO person keypoints",
            "version": "1.0",
            "year": 2017,
            "contributor": "posezoo",
            "date_created": "2017/01/01",
            "seed": seed,
        },
        "licenses": [{"id": 1, "name": "Synthetic data, no restrictions", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": _categories(),
    }
    summary = {
        "images": len(images),
        "annotations": len(annotations),
        "annotations_with_keypoints": sum(a["num_keypoints"] > 0 for a in annotations),
        "keypoints_visible": int(visibility_counts[2]),
        "keypoints_occluded": int(visibility_counts[1]),
        "keypoints_unlabelled": int(visibility_counts[0]),
    }
    if with_detections:
        summary["detections"] = len(detections)
    return coco, detections, summary


def generate_synthetic_coco(root: str, seed: int = 0, num_train_images: int = 600,
                            num_val_images: int = 100,
                            image_size: tuple[int, int] = (320, 240)) -> dict:
    """Write a synthetic COCO person-keypoints dataset under ``root``.

    ``image_size`` is ``(width, height)``.  Train image ids start at
    ``TRAIN_IMAGE_ID_START`` and val image ids at ``VAL_IMAGE_ID_START``;
    annotation ids are unique across both splits.  The marker file
    ``root/.complete`` is written last (see :func:`is_generated`).

    Returns a summary with the seed, the image size and per-split counts of
    images, annotations, keypoint visibilities and (val) detections.
    """
    width, height = (int(v) for v in image_size)
    if width < 32 or height < 32:
        raise ValueError(f"image_size too small: {image_size}")
    if num_train_images < 0 or num_val_images < 0:
        raise ValueError("image counts must be non-negative")
    if TRAIN_IMAGE_ID_START + num_train_images > VAL_IMAGE_ID_START:
        raise ValueError(f"at most {VAL_IMAGE_ID_START - 1} train images are supported")

    marker = os.path.join(root, MARKER_FILE)
    if os.path.exists(marker):
        os.remove(marker)
    ann_dir = os.path.join(root, "annotations")
    det_dir = os.path.join(root, "person_detection_results")
    os.makedirs(ann_dir, exist_ok=True)
    os.makedirs(det_dir, exist_ok=True)

    summary: dict = {"seed": seed, "image_size": [width, height]}
    next_annotation_id = 1
    for split, code, count, first_id in (
        ("train", _SPLIT_TRAIN, num_train_images, TRAIN_IMAGE_ID_START),
        ("val", _SPLIT_VAL, num_val_images, VAL_IMAGE_ID_START),
    ):
        coco, detections, split_summary = _generate_split(
            root, split, code, seed, count, first_id, next_annotation_id, width, height,
            with_detections=(split == "val"))
        next_annotation_id += len(coco["annotations"])
        _write_json(os.path.join(ann_dir, f"person_keypoints_{split}2017.json"), coco)
        if split == "val":
            _write_json(os.path.join(det_dir, DETECTIONS_FILE), detections)
        summary[split] = split_summary

    _write_json(marker, summary)
    return summary


def generation_complete(root: str, required: list[str]) -> bool:
    """Whether a generator finished writing under ``root``: its marker (written
    last, a JSON summary) reads back and every ``required`` file exists."""
    try:
        with open(os.path.join(root, MARKER_FILE), "rb") as f:
            marker = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and all(os.path.isfile(p) for p in required)


def is_generated(root: str) -> bool:
    """Whether ``root`` holds a completely written synthetic dataset."""
    return generation_complete(root, [
        os.path.join(root, "annotations", "person_keypoints_train2017.json"),
        os.path.join(root, "annotations", "person_keypoints_val2017.json"),
        os.path.join(root, "person_detection_results", DETECTIONS_FILE),
    ])


def generate_on_first_use(root: str, seed: int, is_complete: Callable[[str], bool],
                          generate: Callable[..., dict], describe: Callable[[dict], str]) -> None:
    """The embedded defaults' rule: a synthetic set is written under ``root`` the
    first time a config names it (``generate(root, seed=seed)``, one summary
    line printed), and read from disk like real data from then on."""
    if not is_complete(root):
        summary = generate(root, seed=seed)
        print(f"=> generated {describe(summary)} in {root}")


def get_dataset(cfg, image_set: str, is_train: bool, codec):
    """``DATASET.DATASET: synthetic``: COCO-format data under ``DATASET.ROOT``,
    generated there first (seed ``SEED``) if it is not complete yet."""
    from .coco import COCODataset  # a COCO dataset in every respect once written

    generate_on_first_use(cfg.DATASET.ROOT, cfg.SEED, is_generated, generate_synthetic_coco,
                          lambda s: f"the synthetic dataset ({s['train']['images']} train / {s['val']['images']} "
                                    f"val images)")
    return COCODataset(cfg, image_set, is_train, codec)
