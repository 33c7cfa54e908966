"""Deterministic synthetic depth frames in the NYU hand dataset's layout.

A ray-cast articulated hand (a flattened-ellipsoid palm, capsule phalanges, a
capsule forearm) in front of a planar wall, seen by NYU's kinect-1 camera, so
that the 3D hand models (A2J, AWR) train end to end on a CPU with nothing to
download. The files are those of the real release plus A2J's and AWR's centre
files::

    root/train/depth_1_0000001.png ...   640x480, depth mm = blue + 256 * green, red 0, invalid 0
    root/train/joint_data.mat            joint_uvd, joint_xyz: float64 (1, N, 36, 3) (kinect 1 only)
    root/test/...                        the same for the test split
    root/nyu_center_{train,test}.mat     centre_pixel: float64 (N, 1, 3), hand centre (u, v, d mm) as A2J reads it
    root/center_{train,test}_refined.txt one "x y z" line (mm) per frame, the same centres as AWR reads them
    root/.complete                       the summary as JSON, written last

The 14 evaluated joints sit on the skeleton (fingertips are the centres of the
distal caps, the mids are the PIP joints), i.e. inside the rendered surface as
the real annotations are; the other 22 of the 36 NYU joints are interpolated
along the same bones. Every frame comes from its own
``numpy.random.default_rng((seed, split, index))`` stream, so the output is
byte-identical for the same arguments and a frame does not depend on how many
frames are requested.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.io

from .nyu import EVAL_JOINTS, FX, FY, U0, V0, joint_errors, keypoint_info, nyu_xyz_to_uvd  # noqa: F401 (registry)
from ..utils.utils import write_bytes_atomic
from .synthetic import MARKER_FILE, generate_on_first_use, generation_complete

__all__ = ["DISPARITY_NOISE", "KINECT_DISPARITY", "MARKER_FILE", "NUM_JOINTS", "PART_FOREARM", "PART_PALM",
           "PART_WALL", "SyntheticFrame", "encode_depth", "generate_synthetic_nyu", "is_generated",
           "mean_pose_error", "render_frame"]

WIDTH, HEIGHT = 640, 480
NUM_JOINTS = 36
_SPLITS = {"train": 0, "test": 1}
_PLACEMENT_TRIES, _EDGE = 100, 12.0   # placements drawn per frame, joints' minimum distance (px) to the border
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]
# savemat stamps the creation time into the 116-byte text header; a fixed text keeps the file reproducible.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: posezoo synthetic_nyu".ljust(116, b" ")

# Hand frame, mm at scale 1: x across the palm towards the thumb, y from the wrist towards the fingers,
# z out of the back of the hand (the palm faces -z, i.e. the camera before the global rotation).
# Fingers in NYU order F1..F4 = pinky, ring, middle, index.
_KNUCKLES = np.array([[-30.0, 38.0, 0.0], [-11.0, 44.0, 0.0], [8.0, 46.0, 0.0], [27.0, 43.0, 0.0]])
_PHALANGES = np.array([[30.0, 20.0, 18.0], [40.0, 27.0, 22.0], [44.0, 29.0, 23.0], [40.0, 25.0, 21.0]])
_FINGER_RADII = np.array([8.2, 9.0, 9.5, 9.2])
_TAPER = np.array([1.0, 0.93, 0.86])             # proximal, middle, distal phalanx radius factors
_SPREAD = np.radians([-14.0, -5.0, 2.0, 9.0])    # rest abduction of each finger about z
_THUMB_CMC = np.array([22.0, -28.0, -4.0])
_THUMB_BONES = np.array([42.0, 32.0, 26.0])      # metacarpal, proximal, distal
_THUMB_RADII = np.array([10.0, 9.5, 8.8])
_THUMB_AXIS = np.array([0.62, 0.62, -0.45])
_PALM_CENTRE, _PALM_AXES = np.array([0.0, 2.0, 0.0]), np.array([43.0, 47.0, 14.0])
_WRIST_CENTRE = np.array([0.0, -50.0, 0.0])
_FOREARM_RADIUS, _FOREARM_LENGTH = 24.0, 800.0
# NYU joints 30..35: wrist (pinky side), wrist (thumb side), palm centre, and three more palm points.
_PALM_POINTS = np.array([[-20.0, -50.0, 0.0], [20.0, -50.0, 0.0], [0.0, 0.0, 0.0],
                         [0.0, -25.0, 0.0], [-25.0, 10.0, 0.0], [25.0, 10.0, 0.0]])

# Part ids of the label map: 0 wall, 1 palm, 2 forearm, 3 + 3 * finger + segment (finger 4 = thumb).
PART_WALL, PART_PALM, PART_FOREARM = 0, 1, 2
# Kinect 1: z * disparity = f * baseline (75 mm) * 8 sub-pixel steps; the disparity noise in steps.
KINECT_DISPARITY = FX * 75.0 * 8.0
DISPARITY_NOISE = 0.15


def _part(finger: int, segment: int) -> int:
    return 3 + 3 * finger + segment


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame: what is written (``depth``, ``joints_xyz``, ``centre_xyz``)
    and the clean render behind it, which tests check the written files against."""

    depth: np.ndarray        # (480, 640) uint16 mm as written: rounded, noisy, 0 = invalid
    surface: np.ndarray      # (480, 640) float64 exact z-buffer (nearest surface z along each pixel's ray)
    background: np.ndarray   # (480, 640) float64 z of the wall alone
    parts: np.ndarray        # (480, 640) uint8 part id visible at each pixel (see PART_*)
    joints_xyz: np.ndarray   # (36, 3) NYU joints, camera mm (y up)
    tip_radius: np.ndarray   # (5,) radius of the distal capsule of pinky, ring, middle, index, thumb
    centre_xyz: np.ndarray   # (3,) hand centre (joint mean + noise), rounded to 1e-6 mm as written


def _rotation(roll: float, yaw: float, pitch: float) -> np.ndarray:
    """Rz(roll) @ Ry(yaw) @ Rx(pitch): roll turns the hand in the image plane."""
    cr, sr, cy, sy, cp, sp = (math.cos(roll), math.sin(roll), math.cos(yaw), math.sin(yaw),
                              math.cos(pitch), math.sin(pitch))
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return rz @ ry @ rx


def _lerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return a + w * (b - a)


def _sample_hand(rng: np.random.Generator) -> tuple[np.ndarray, list, tuple, np.ndarray]:
    """A random pose in the hand frame (scale 1): the 36 NYU joints, the capsules
    ``(a, b, radius, part)``, the palm ellipsoid ``(centre, semi-axes)`` and the
    forearm direction. Flexion is driven by one grip value shared by the fingers
    (real hands flex together) with per-finger noise and some independent fingers."""
    grip = rng.beta(0.8, 0.8)
    grips = np.where(rng.random(4) < 0.25, rng.random(4), grip)
    mcp = np.clip(grips * 80.0 + rng.normal(0.0, 12.0, 4), -15.0, 90.0)
    pip = np.clip(grips * 95.0 + rng.normal(0.0, 12.0, 4), 0.0, 105.0)
    dip = np.clip(0.7 * pip + rng.normal(0.0, 5.0, 4), 0.0, 80.0)
    flex = np.radians(np.cumsum(np.stack([mcp, pip, dip], axis=1), axis=1))        # (4, 3) cumulative
    spread = (_SPREAD * rng.uniform(0.3, 1.4) + np.radians(rng.normal(0.0, 3.0, 4)))[:, None]
    # A phalanx flexed by phi about x bends from +y towards the palm side (-z).
    dirs = np.stack([np.sin(spread) * np.cos(flex), np.cos(spread) * np.cos(flex), -np.sin(flex)], axis=-1)
    bones = np.cumsum((_PHALANGES * rng.uniform(0.95, 1.05, (4, 1)))[..., None] * dirs, axis=1)
    mcp_pts = _KNUCKLES + rng.normal(0.0, 1.5, (4, 3))
    pip_pts, dip_pts, tip_pts = (mcp_pts + bones[:, k] for k in range(3))

    axis = _THUMB_AXIS + rng.uniform(-0.15, 0.15, 3)
    axis /= np.linalg.norm(axis)
    hinge = np.cross(axis, [0.0, 0.0, -1.0])
    hinge /= np.linalg.norm(hinge)
    thumb_grip = np.clip(grip + rng.normal(0.0, 0.25), 0.0, 1.0)
    thumb_flex = np.radians(np.cumsum([rng.uniform(-5.0, 30.0), thumb_grip * 50.0 + rng.normal(0.0, 8.0),
                                       thumb_grip * 70.0 + rng.normal(0.0, 8.0)]))
    # Rodrigues about the hinge (perpendicular to the axis): bends towards the palm and across it.
    thumb_dirs = np.cos(thumb_flex)[:, None] * axis + np.sin(thumb_flex)[:, None] * np.cross(hinge, axis)
    cmc = _THUMB_CMC + rng.normal(0.0, 1.5, 3)
    root, mid, tip = cmc + np.cumsum(_THUMB_BONES[:, None] * thumb_dirs, axis=0)

    joints = np.empty((NUM_JOINTS, 3))
    finger_joints = np.stack([tip_pts, _lerp(tip_pts, dip_pts, 0.8), _lerp(dip_pts, pip_pts, 0.2), pip_pts,
                              _lerp(pip_pts, mcp_pts, 0.2), mcp_pts], axis=1)              # (4, 6, 3)
    joints[:24] = finger_joints.reshape(24, 3)
    joints[24:30] = [tip, mid, _lerp(mid, root, 0.2), root, cmc, _lerp(cmc, _PALM_POINTS[1], 0.3)]
    joints[30:] = _PALM_POINTS

    capsules = []
    for f in range(4):
        chain = (mcp_pts[f], pip_pts[f], dip_pts[f], tip_pts[f])
        for k in range(3):
            capsules.append((chain[k], chain[k + 1], _FINGER_RADII[f] * _TAPER[k], _part(f, k)))
    for k, (a, b) in enumerate(((cmc, root), (root, mid), (mid, tip))):
        capsules.append((a, b, _THUMB_RADII[k], _part(4, k)))

    flex_wrist, deviation = np.radians(rng.uniform(-35.0, 35.0)), np.radians(rng.uniform(-15.0, 15.0))
    forearm = np.array([math.sin(deviation), -math.cos(deviation) * math.cos(flex_wrist),
                        math.cos(deviation) * math.sin(flex_wrist)])
    return joints, capsules, (_PALM_CENTRE, _PALM_AXES), forearm


def _pixel_rays(box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """x/z and y/z of the rays through the integer pixels of ``box = (u0, v0, u1, v1)``
    (inclusive); the ray through (u, v) is t * (dx, dy, 1), so t is the depth z."""
    u_lo, v_lo, u_hi, v_hi = box
    dx = (np.arange(u_lo, u_hi + 1, dtype=np.float64)[None, :] - U0) / FX
    dy = (np.arange(v_lo, v_hi + 1, dtype=np.float64)[:, None] - V0) / FY
    return dx, dy


def _sphere_extent(centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Exact pixel bounds (u_min, v_min, u_max, v_max) of spheres' silhouettes, from
    the planes through the camera tangent to each sphere (x = k z and y = k z)."""
    z, r = centres[:, 2], radii
    bounds = []
    for coord, focal, principal in ((centres[:, 0], FX, U0), (centres[:, 1], FY, V0)):
        root = r * np.sqrt(coord ** 2 + z ** 2 - r ** 2)
        slopes = (coord * z + np.stack([-root, root])) / (z ** 2 - r ** 2)
        pixels = focal * slopes + principal
        bounds.append((pixels.min(), pixels.max()))
    (u_min, u_max), (v_min, v_max) = bounds
    return np.array([u_min, v_min, u_max, v_max])


def _clip_box(extent: np.ndarray) -> tuple[int, int, int, int] | None:
    u_lo, v_lo = max(0, math.floor(extent[0])), max(0, math.floor(extent[1]))
    u_hi, v_hi = min(WIDTH - 1, math.ceil(extent[2])), min(HEIGHT - 1, math.ceil(extent[3]))
    if u_lo > u_hi or v_lo > v_hi:
        return None
    return u_lo, v_lo, u_hi, v_hi


def _hit_sphere(dx: np.ndarray, dy: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Depth of the first intersection of each ray with a sphere (inf on a miss)."""
    dd = dx * dx + dy * dy + 1.0
    dc = dx * centre[0] + dy * centre[1] + centre[2]
    disc = dc * dc - dd * (centre @ centre - radius * radius)
    with np.errstate(invalid="ignore"):
        t = (dc - np.sqrt(disc)) / dd
    return np.where(disc >= 0.0, t, np.inf)


def _hit_capsule(dx: np.ndarray, dy: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """First intersection with a capsule = the nearest of its two end spheres and
    its side wall (the side counts where the hit's axial position lies on the bone).
    When the camera is inside the infinite cylinder (axis pointing at it), the near
    root lies behind the camera, off the bone, and the ray enters through a cap."""
    t = np.minimum(_hit_sphere(dx, dy, a, radius), _hit_sphere(dx, dy, b, radius))
    axis = b - a
    length = float(np.linalg.norm(axis))
    w = axis / length
    aw = a @ w
    c = a @ a - aw * aw - radius * radius
    dw = dx * w[0] + dy * w[1] + w[2]
    qa = dx * dx + dy * dy + 1.0 - dw * dw
    qb = dx * a[0] + dy * a[1] + a[2] - dw * aw
    disc = qb * qb - qa * c
    with np.errstate(invalid="ignore", divide="ignore"):
        side = (qb - np.sqrt(disc)) / qa
        along = side * dw - aw
    side = np.where((disc >= 0.0) & (qa > 1e-12) & (along >= 0.0) & (along <= length), side, np.inf)
    return np.minimum(t, side)


def _hit_ellipsoid(dx: np.ndarray, dy: np.ndarray, centre: np.ndarray, rotation: np.ndarray,
                   semi_axes: np.ndarray) -> np.ndarray:
    """First intersection with an ellipsoid ``{centre + rotation @ (s * p): |p| <= 1}``:
    the ray mapped into the unit-sphere frame keeps its parameter t."""
    to_unit = rotation.T / semi_axes[:, None]
    origin = -(to_unit @ centre)
    px, py, pz = (m[0] * dx + m[1] * dy + m[2] for m in to_unit)
    qa = px * px + py * py + pz * pz
    qb = px * origin[0] + py * origin[1] + pz * origin[2]
    disc = qb * qb - qa * (origin @ origin - 1.0)
    with np.errstate(invalid="ignore"):
        t = (-qb - np.sqrt(disc)) / qa
    return np.where(disc >= 0.0, t, np.inf)


def _splat(surface: np.ndarray, parts: np.ndarray, box: tuple[int, int, int, int], t: np.ndarray,
           part: int) -> None:
    """z-buffer test: keep the hit where it is nearer than what is there."""
    u_lo, v_lo, u_hi, v_hi = box
    region = (slice(v_lo, v_hi + 1), slice(u_lo, u_hi + 1))
    nearer = (t > 0.0) & (t < surface[region])
    surface[region] = np.where(nearer, t, surface[region])
    parts[region] = np.where(nearer, part, parts[region])


def _place(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Global rotation (in-plane mostly; sometimes the back of the hand to the
    camera), the palm position (500-1000 mm, kept so the fingers stay in frame)
    and the hand scale."""
    yaw = np.radians(np.clip(rng.normal(0.0, 22.0), -50.0, 50.0)) + (math.pi if rng.random() < 0.15 else 0.0)
    rotation = _rotation(np.radians(rng.uniform(-80.0, 80.0)), yaw,
                         np.radians(np.clip(rng.normal(0.0, 18.0), -45.0, 45.0)))
    z = rng.uniform(500.0, 1000.0)
    margin = 125.0 * FX / z + 10.0
    u = rng.uniform(max(margin, 170.0), min(WIDTH - margin, WIDTH - 170.0))
    v = rng.uniform(max(margin, 130.0), min(HEIGHT - margin, HEIGHT - 130.0))
    palm = np.array([(u - U0) * z / FX, (v - V0) * z / FY, z])
    return rotation, palm, rng.uniform(0.88, 1.12)


def _wall(rng: np.random.Generator, palm: np.ndarray) -> np.ndarray:
    """z of a plane 300-700 mm behind the palm, tilted half of the time, at every
    pixel: z = z_w + a (x - x_p) + b (y - y_p) along the ray t (dx, dy, 1)."""
    gap = rng.uniform(300.0, 700.0)
    a, b = rng.uniform(-0.35, 0.35, 2) if rng.random() < 0.5 else (0.0, 0.0)
    dx, dy = _pixel_rays((0, 0, WIDTH - 1, HEIGHT - 1))
    offset = palm[2] + gap - a * palm[0] - b * palm[1]
    return offset / (1.0 - a * dx - b * dy)


def _sensor(rng: np.random.Generator, surface: np.ndarray) -> np.ndarray:
    """Kinect-1-like measurement (Khoshelham & Elberink 2012): depth is read as a
    disparity in 1/8 pixel steps, so the depth step grows as z^2 / KINECT_DISPARITY
    (1.4 mm at 0.7 m, 8 mm at 1.7 m), with Gaussian disparity noise (DISPARITY_NOISE
    steps, clipped at 3 sigma), stored in whole mm. Holes: half the pixels on the far
    side of a depth edge (the projector's shadow) and 0.2% random dropouts."""
    noise = np.clip(rng.standard_normal(surface.shape, dtype=np.float32), -3.0, 3.0) * DISPARITY_NOISE
    depth = np.rint(KINECT_DISPARITY / np.rint(KINECT_DISPARITY / surface + noise))
    far = np.zeros(surface.shape, bool)
    far[:, 1:] |= surface[:, 1:] - surface[:, :-1] > 40.0
    far[:, :-1] |= surface[:, :-1] - surface[:, 1:] > 40.0
    far[1:] |= surface[1:] - surface[:-1] > 40.0
    far[:-1] |= surface[:-1] - surface[1:] > 40.0
    draw = rng.random(surface.shape, dtype=np.float32)
    depth[(far & (draw < 0.5)) | (draw < 0.002)] = 0.0
    return np.clip(depth, 0, 65535).astype(np.uint16)


def render_frame(seed: int, split: str, index: int) -> SyntheticFrame:
    """Frame ``index`` (0-based) of ``split`` for ``seed``: sample a hand, ray-cast
    it and the wall with an exact z-buffer over each primitive's pixel box, then
    add sensor noise and holes."""
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_SPLITS)}")
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    joints, capsules, (palm_centre, palm_axes), forearm = _sample_hand(rng)
    for _ in range(_PLACEMENT_TRIES):           # redraw the placement until every joint is well inside the image
        rotation, palm, scale = _place(rng)
        joints_xyz = (scale * joints) @ rotation.T + palm
        u = joints_xyz[:, 0] * FX / joints_xyz[:, 2] + U0
        v = joints_xyz[:, 1] * FY / joints_xyz[:, 2] + V0
        if np.all((u >= _EDGE) & (u <= WIDTH - 1 - _EDGE) & (v >= _EDGE) & (v <= HEIGHT - 1 - _EDGE)):
            break

    def to_camera(points: np.ndarray) -> np.ndarray:
        return (scale * np.asarray(points)) @ rotation.T + palm

    arm = rotation @ forearm
    arm[2] = abs(arm[2]) + 0.15                 # the forearm goes back towards the body, never at the camera
    arm /= np.linalg.norm(arm)
    wrist = to_camera(_WRIST_CENTRE)
    capsules = [(to_camera(a), to_camera(b), scale * r, part) for a, b, r, part in capsules]
    capsules.append((wrist, wrist + scale * _FOREARM_LENGTH * arm, scale * _FOREARM_RADIUS, PART_FOREARM))

    background = _wall(rng, palm)
    surface = background.copy()
    parts = np.zeros((HEIGHT, WIDTH), np.uint8)
    for a, b, radius, part in capsules:
        box = _clip_box(_sphere_extent(np.stack([a, b]), np.array([radius, radius])))
        if box is not None:
            dx, dy = _pixel_rays(box)
            _splat(surface, parts, box, _hit_capsule(dx, dy, a, b, radius), part)
    centre, axes = to_camera(palm_centre), scale * palm_axes
    box = _clip_box(_sphere_extent(centre[None], np.array([axes.max()])))
    if box is not None:
        dx, dy = _pixel_rays(box)
        _splat(surface, parts, box, _hit_ellipsoid(dx, dy, centre, rotation, axes), PART_PALM)

    centre_xyz = np.round(joints_xyz[EVAL_JOINTS].mean(axis=0) + rng.normal(0.0, 4.0, 3), 6)
    tip_radius = scale * np.append(_FINGER_RADII * _TAPER[2], _THUMB_RADII[2])
    return SyntheticFrame(depth=_sensor(rng, surface), surface=surface, background=background, parts=parts,
                          joints_xyz=joints_xyz, tip_radius=tip_radius, centre_xyz=centre_xyz)


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """uint16 mm -> NYU's BGR PNG pixels: low byte in blue, high byte in green, red 0."""
    image = np.zeros(depth.shape + (3,), np.uint8)
    image[..., 0] = depth & 0xFF
    image[..., 1] = depth >> 8
    return image


def _write_mat(path: str, arrays: dict) -> None:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    data = buffer.getvalue()
    write_bytes_atomic(path, _MAT_HEADER + data[len(_MAT_HEADER):])


def _write_split(root: str, split: str, seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Render and write one split; return its joints (N, 36, 3) and centres (N, 3) in xyz."""
    folder = os.path.join(root, split)
    os.makedirs(folder, exist_ok=True)
    joints = np.zeros((count, NUM_JOINTS, 3))
    centres = np.zeros((count, 3))
    for index in range(count):
        frame = render_frame(seed, split, index)
        path = os.path.join(folder, f"depth_1_{index + 1:07d}.png")
        ok, png = cv2.imencode(".png", encode_depth(frame.depth), _PNG_PARAMS)
        if not ok:
            raise OSError(f"could not encode {path}")
        write_bytes_atomic(path, png.tobytes())
        joints[index], centres[index] = frame.joints_xyz, frame.centre_xyz
    _write_mat(os.path.join(folder, "joint_data.mat"),
               {"joint_uvd": nyu_xyz_to_uvd(joints)[None], "joint_xyz": joints[None]})
    _write_mat(os.path.join(root, f"nyu_center_{split}.mat"), {"centre_pixel": nyu_xyz_to_uvd(centres)[:, None]})
    lines = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in centres.tolist())
    write_bytes_atomic(os.path.join(root, f"center_{split}_refined.txt"), lines.encode("ascii"))
    return joints, centres


def mean_pose_error(train_joints: np.ndarray, train_centres: np.ndarray, test_joints: np.ndarray,
                    test_centres: np.ndarray) -> float:
    """Mean 3D error (mm, 14 evaluated joints) of the "mean pose" baseline: every
    test frame predicted as its centre plus the train set's mean joint offset from
    the centre -- what a model must beat to have learnt anything from the depth."""
    offset = (train_joints[:, EVAL_JOINTS] - train_centres[:, None]).mean(axis=0)
    prediction = test_centres[:, None] + offset
    return float(joint_errors(nyu_xyz_to_uvd(prediction), nyu_xyz_to_uvd(test_joints[:, EVAL_JOINTS])).mean())


def generate_synthetic_nyu(root: str, seed: int = 0, num_train: int = 400, num_test: int = 100) -> dict:
    """Write a synthetic NYU hand dataset under ``root`` (layout in the module
    docstring); ``root/.complete`` is written last (see :func:`is_generated`).

    Returns the summary stored in the marker: the seed, the frame counts per split
    and ``mean_pose_error_mm``, the mean-pose baseline on the test split.
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f"num_train and num_test must be >= 1 (got {num_train}, {num_test}): "
                         "the mean-pose baseline needs both splits")
    marker = os.path.join(root, MARKER_FILE)
    os.makedirs(root, exist_ok=True)
    if os.path.exists(marker):
        os.remove(marker)
    train_joints, train_centres = _write_split(root, "train", seed, num_train)
    test_joints, test_centres = _write_split(root, "test", seed, num_test)
    summary = {
        "seed": seed,
        "train": {"frames": num_train},
        "test": {"frames": num_test},
        "mean_pose_error_mm": round(mean_pose_error(train_joints, train_centres, test_joints, test_centres), 4),
    }
    write_bytes_atomic(marker, json.dumps(summary, sort_keys=True).encode("utf-8"))
    return summary


def is_generated(root: str) -> bool:
    """Whether ``root`` holds a completely written synthetic NYU dataset."""
    required = [os.path.join(root, split, "joint_data.mat") for split in _SPLITS]
    required += [os.path.join(root, f"nyu_center_{split}.mat") for split in _SPLITS]
    required += [os.path.join(root, f"center_{split}_refined.txt") for split in _SPLITS]
    return generation_complete(root, required)


def get_dataset(cfg, image_set: str, is_train: bool, codec):
    """``DATASET.DATASET: synthetic_nyu``: NYU-layout frames under
    ``DATASET.ROOT``, generated there first (seed ``SEED``) if not complete yet;
    then read by the NYU dataset class like the real data."""
    from .nyu import NYUDataset

    generate_on_first_use(cfg.DATASET.ROOT, cfg.SEED, is_generated, generate_synthetic_nyu,
                          lambda s: f"synthetic NYU frames ({s['train']['frames']} train / {s['test']['frames']} "
                                    f"test; the mean pose scores {s['mean_pose_error_mm']:.1f} mm)")
    return NYUDataset(cfg, image_set, is_train, codec)
