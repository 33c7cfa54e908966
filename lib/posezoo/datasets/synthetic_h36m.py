"""Deterministic synthetic frames in the Human3.6M layout that ``datasets/h36m.py`` reads.

Articulated 17-joint figures (Human3.6M's joints and skeleton) with random joint
angles and per-subject bone lengths stand in a world whose z axis points up,
filmed by four pinhole cameras per subject placed around them, and are drawn as
filled capsules (painter's order, far limbs first) over a textured background.
The files are those of the real layout::

    root/images/S1/S1_Walking.54138969/S1_Walking.54138969_000001.jpg ...   200x200 JPEG
    root/annotation_body3d/fps50/h36m_{train,test}.npz   imgname, center, scale, part (px), S (camera metres)
    root/annotation_body3d/cameras.pkl   {(subject, camera id): {R, T, c, f, k, p, w, h, name, id}} (no distortion)
    root/.complete                       the summary as JSON, written last

with mmpose's conventions (X_cam = R^T (X_world - T), T in metres; the 2D labels
are the projections of S; scale = the square box side / 200 px). Protocol 1's
subjects: S1, S5, S6, S7, S8 train, S9 and S11 test. A figure's left limbs are
warm-coloured, its right limbs cool, so left and right can be told apart. Every
frame comes from its own ``numpy.random.default_rng((seed, split, index))``
stream, each subject's proportions and cameras from ``(seed, subject)``, so the
output is byte-identical for the same arguments.

The summary holds the **mean-pose baseline**: every test frame predicted as the
training set's mean root-relative pose in camera coordinates (what a model must
beat to have learnt anything from the image), its MPJPE and P-MPJPE in mm.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import dataclass

import cv2
import numpy as np

from ..core.metrics3d import H36M_ACTIONS, mpjpe, p_mpjpe
from ..utils.utils import write_atomic, write_bytes_atomic
from .h36m import (ANNOTATION_DIR, FLIP_PAIRS, NUM_JOINTS, ROOT_JOINT, TEST_SUBJECTS, TRAIN_SUBJECTS,
                   keypoint_info)  # noqa: F401 (keypoint_info: registry)
from .synthetic import MARKER_FILE, _background, _hsv_color, generate_on_first_use, generation_complete

__all__ = ["CAMERA_IDS", "IMAGE_SIZE", "MARKER_FILE", "SyntheticFrame", "frame_camera", "generate_synthetic_h36m",
           "is_generated", "mean_pose_baseline", "render_frame", "sample_poses"]

IMAGE_SIZE = 200
#: The four Human3.6M camera ids, reused as names.
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
_SPLITS = {"train": (0, TRAIN_SUBJECTS), "test": (1, TEST_SUBJECTS)}
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 95]
_BOX_PAD = 1.2  # square box side = 1.2 x the larger extent of the 2D joints (the real npz's boxes are ~1.2x)

# Mean bone lengths (mm) of a Human3.6M subject, per bone of SKELETON-like chains.
_HIP_HALF, _THIGH, _SHIN = 130.0, 445.0, 445.0
_SPINE, _CHEST, _NECK, _HEAD = 230.0, 255.0, 115.0, 115.0
_SHOULDER_HALF, _UPPER_ARM, _FOREARM = 150.0, 280.0, 250.0
# Capsule radii (mm): torso, hip and shoulder girdles, thigh, shin, upper arm, forearm, neck; head sphere.
_R_TORSO, _R_GIRDLE, _R_THIGH, _R_SHIN, _R_UPPER, _R_FORE, _R_NECK, _R_HEAD = 120, 60, 75, 55, 48, 40, 45, 105

#: Joint-angle ranges (degrees) per action family: hip flexion, knee flexion,
#: shoulder flexion, shoulder abduction, elbow flexion, torso pitch (forward bend).
_GENERIC = dict(hip=(-30, 60), knee=(0, 70), shoulder=(-40, 120), abduct=(0, 80), elbow=(0, 130), pitch=(-10, 30))
_ACTION_RANGES = {
    "Sitting": dict(_GENERIC, hip=(70, 100), knee=(70, 100), pitch=(-5, 20)),
    "SittingDown": dict(_GENERIC, hip=(60, 110), knee=(60, 110), pitch=(0, 40)),
    "Walking": dict(_GENERIC, hip=(-25, 30), knee=(0, 50), shoulder=(-30, 30), abduct=(0, 20), elbow=(0, 40)),
    "WalkDog": dict(_GENERIC, hip=(-25, 30), knee=(0, 50), shoulder=(-20, 60)),
    "WalkTogether": dict(_GENERIC, hip=(-25, 30), knee=(0, 50), shoulder=(-30, 30), abduct=(0, 20)),
    "Photo": dict(_GENERIC, shoulder=(40, 110), elbow=(60, 140)),
    "Phoning": dict(_GENERIC, elbow=(90, 150)),
}


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame: the image (BGR) and its labels."""

    image: np.ndarray          # (H, W, 3) uint8 BGR
    joints_cam: np.ndarray     # (17, 3) camera mm
    part: np.ndarray           # (17, 2) pixels (pinhole projection)
    center: np.ndarray         # (2,) box centre px
    scale: float               # square box side / 200 px
    action: int


def _rot(axis: int, degrees: float) -> np.ndarray:
    """Right-handed rotation about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _subject_bones(seed: int, subject: str) -> dict[str, float]:
    """A subject's bone lengths: a global size and small per-bone factors, left = right."""
    rng = np.random.default_rng((seed, 1000 + int(subject[1:])))
    size = rng.uniform(0.88, 1.12)
    names = ("hip", "thigh", "shin", "spine", "chest", "neck", "head", "shoulder", "upper", "fore")
    means = (_HIP_HALF, _THIGH, _SHIN, _SPINE, _CHEST, _NECK, _HEAD, _SHOULDER_HALF, _UPPER_ARM, _FOREARM)
    return {n: m * size * rng.uniform(0.92, 1.08) for n, m in zip(names, means)}


def _pose(rng: np.random.Generator, bones: dict[str, float], action: str) -> np.ndarray:
    """17 joints (mm) in the body frame: x the person's left, y up, z forward, pelvis at 0."""
    ranges = _ACTION_RANGES.get(action, _GENERIC)
    u = lambda key: rng.uniform(*ranges[key])  # noqa: E731
    j = np.zeros((NUM_JOINTS, 3))
    down, up = np.array([0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0])
    torso = _rot(0, u("pitch")) @ _rot(2, rng.uniform(-12, 12)) @ _rot(1, rng.uniform(-25, 25))
    j[7] = torso @ up * bones["spine"]
    j[8] = j[7] + torso @ _rot(0, rng.uniform(-10, 10)) @ up * bones["chest"]
    head = torso @ _rot(0, rng.uniform(-30, 20)) @ _rot(2, rng.uniform(-20, 20))
    j[9] = j[8] + head @ up * bones["neck"]
    j[10] = j[9] + head @ up * bones["head"]
    for side, (hip, knee, foot, sho, elb, wri) in ((1.0, (4, 5, 6, 11, 12, 13)), (-1.0, (1, 2, 3, 14, 15, 16))):
        # Legs: flexion about x swings the thigh forward (-y towards +z), abduction about z outwards.
        j[hip] = np.array([side * bones["hip"], 0.0, 0.0])
        thigh = _rot(0, -u("hip")) @ _rot(2, side * rng.uniform(-5, 25))
        j[knee] = j[hip] + thigh @ down * bones["thigh"]
        j[foot] = j[knee] + thigh @ _rot(0, u("knee")) @ down * bones["shin"]
        # Arms hang from the shoulders of the (turned, bent) torso.
        j[sho] = j[8] + torso @ np.array([side * bones["shoulder"], -30.0, 0.0])
        arm = torso @ _rot(0, -u("shoulder")) @ _rot(2, side * u("abduct"))
        j[elb] = j[sho] + arm @ down * bones["upper"]
        j[wri] = j[elb] + arm @ _rot(0, -u("elbow")) @ down * bones["fore"]
    return j


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """R whose columns are the camera's x (right), y (down), z (forward) in world coordinates (z up)."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward], axis=1)


def _cameras(seed: int, subject: str) -> dict[str, dict]:
    """Four cameras around the capture area (as Human3.6M's four corners), metres, H36M's dict layout."""
    rng = np.random.default_rng((seed, 2000 + int(subject[1:])))
    cameras = {}
    for k, cam_id in enumerate(CAMERA_IDS):
        angle = math.radians(45 + 90 * k + rng.uniform(-15, 15))
        radius, height = rng.uniform(4.0, 5.0), rng.uniform(1.2, 1.8)
        centre = np.array([radius * math.cos(angle), radius * math.sin(angle), height])
        focal = rng.uniform(280.0, 320.0)
        cameras[(subject, cam_id)] = {
            "R": _look_at(centre, np.array([0.0, 0.0, 0.9])), "T": centre.reshape(3, 1),
            "c": (IMAGE_SIZE / 2 + rng.uniform(-4, 4, 2)).reshape(2, 1),
            "f": (focal * np.array([1.0, rng.uniform(0.998, 1.002)])).reshape(2, 1),
            "k": np.zeros((3, 1)), "p": np.zeros((2, 1)), "w": IMAGE_SIZE, "h": IMAGE_SIZE,
            "name": f"camera{k + 1}", "id": cam_id}
    return cameras


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A background: gradient + noise (as the synthetic COCO set), with stripes or a checkerboard."""
    image = _background(rng, IMAGE_SIZE, IMAGE_SIZE).astype(np.float32)
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    period, angle = rng.uniform(8, 40), rng.uniform(0, math.pi)
    phase = (xs * math.cos(angle) + ys * math.sin(angle)) / period
    pattern = np.sin(2 * math.pi * phase) if rng.random() < 0.5 else \
        np.sign(np.sin(math.pi * xs / period) * np.sin(math.pi * ys / period))
    image += rng.uniform(10, 35) * pattern[..., None] * rng.uniform(0.5, 1.0, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def _capsules(joints_cam: np.ndarray) -> list[tuple[int, int, float, str]]:
    """(joint a, joint b, radius mm, colour key) of the drawn body parts."""
    parts = [(0, 8, _R_TORSO, "torso"), (1, 4, _R_GIRDLE, "torso"), (11, 14, _R_GIRDLE, "torso"),
             (8, 9, _R_NECK, "skin")]
    for side, (hip, knee, foot, sho, elb, wri) in (("left", (4, 5, 6, 11, 12, 13)), ("right", (1, 2, 3, 14, 15, 16))):
        parts += [(hip, knee, _R_THIGH, side), (knee, foot, _R_SHIN, side + "_lower"),
                  (sho, elb, _R_UPPER, side), (elb, wri, _R_FORE, side + "_lower")]
    return parts


def _draw(image: np.ndarray, joints_cam: np.ndarray, uv: np.ndarray, focal: float, palette: dict) -> None:
    """Filled capsules (a thick line with round caps) and the head sphere, far to near."""
    shift = 4
    items = [((joints_cam[a, 2] + joints_cam[b, 2]) / 2, a, b, r, c) for a, b, r, c in _capsules(joints_cam)]
    items.append((joints_cam[10, 2], 10, 10, _R_HEAD, "skin"))
    for depth, a, b, radius, colour in sorted(items, key=lambda item: -item[0]):
        thick = max(1, int(round(2 * radius * focal / depth)))
        pa = tuple(int(round(v * (1 << shift))) for v in uv[a])
        pb = tuple(int(round(v * (1 << shift))) for v in uv[b])
        if a == b:
            cv2.circle(image, pa, int(round(thick / 2 * (1 << shift))), palette[colour], -1, cv2.LINE_AA, shift)
        else:
            cv2.line(image, pa, pb, palette[colour], thick, cv2.LINE_AA, shift)


def _palette(rng: np.random.Generator) -> dict[str, tuple]:
    left = _hsv_color(rng, (0, 25), (170, 255), (150, 255))
    right = _hsv_color(rng, (95, 125), (170, 255), (130, 255))
    darker = lambda c: tuple(int(v * 0.75) for v in c)  # noqa: E731
    return {"left": left, "left_lower": darker(left), "right": right, "right_lower": darker(right),
            "torso": _hsv_color(rng, (35, 75), (110, 255), (110, 230)),
            "skin": _hsv_color(rng, (5, 30), (40, 140), (150, 245))}


def _camera_pose(rng: np.random.Generator, seed: int, subject: str, camera: dict) -> tuple[np.ndarray, int]:
    """A random pose of ``subject`` placed in the world and seen by ``camera``: (17, 3) camera mm, action id."""
    action = int(rng.integers(len(H36M_ACTIONS)))
    body = _pose(rng, _subject_bones(seed, subject), H36M_ACTIONS[action])
    # body (x left, y up, z forward) -> world (z up), turned by a random yaw, feet on the floor
    to_world = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    world = body @ (_rot(2, rng.uniform(0, 360)) @ to_world).T
    world += np.array([rng.uniform(-300, 300), rng.uniform(-300, 300), -world[:, 2].min()])
    return (world - camera["T"].reshape(3) * 1000.0) @ camera["R"], action


def frame_camera(split: str, index: int) -> tuple[str, str]:
    """(subject, camera id) of frame ``index`` of ``split``: subjects in turn, then cameras."""
    subjects = _SPLITS[split][1]
    return subjects[index % len(subjects)], CAMERA_IDS[(index // len(subjects)) % len(CAMERA_IDS)]


def sample_poses(seed: int, split: str, count: int) -> dict[str, np.ndarray]:
    """The first ``count`` poses of ``split`` without rendering (MoCap-style data for
    the lifting network): frame i's pose equals that of ``render_frame`` of frame i.
    Returns ``joints_cam`` (count, 17, 3) mm, ``action``, ``subject`` (S9 -> 9) and
    per-frame camera ``focal``, ``princpt`` (count, 2)."""
    cameras = {key: cam for subject in _SPLITS[split][1] for key, cam in _cameras(seed, subject).items()}
    out: dict[str, list] = {"joints_cam": [], "action": [], "subject": [], "focal": [], "princpt": []}
    for index in range(count):
        subject, cam_id = frame_camera(split, index)
        camera = cameras[(subject, cam_id)]
        joints, action = _camera_pose(np.random.default_rng((seed, _SPLITS[split][0], index)), seed, subject, camera)
        for key, value in (("joints_cam", joints), ("action", action), ("subject", int(subject[1:])),
                           ("focal", camera["f"].reshape(2)), ("princpt", camera["c"].reshape(2))):
            out[key].append(value)
    return {key: np.asarray(value) for key, value in out.items()}


def render_frame(seed: int, split: str, index: int, subject: str, camera: dict) -> SyntheticFrame:
    """Frame ``index`` of ``split``: a random pose of ``subject`` seen by ``camera``."""
    rng = np.random.default_rng((seed, _SPLITS[split][0], index))
    joints_cam, action = _camera_pose(rng, seed, subject, camera)
    f, c = camera["f"].reshape(2), camera["c"].reshape(2)
    uv = joints_cam[:, :2] / joints_cam[:, 2:] * f + c
    image = _texture(rng)
    _draw(image, joints_cam, uv, float(f.mean()), _palette(rng))
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    return SyntheticFrame(image, joints_cam, uv, (lo + hi) / 2, float((hi - lo).max() * _BOX_PAD / 200.0), action)


def _write_split(root: str, split: str, seed: int, count: int, cameras: dict) -> np.ndarray:
    names, centers, scales, parts, joints = [], [], [], [], []
    frame_numbers: dict[str, int] = {}
    for index in range(count):
        subject, cam_id = frame_camera(split, index)
        frame = render_frame(seed, split, index, subject, cameras[(subject, cam_id)])
        sequence = f"{subject}_{H36M_ACTIONS[frame.action]}.{cam_id}"
        frame_numbers[sequence] = frame_numbers.get(sequence, 0) + 1
        name = f"{subject}/{sequence}/{sequence}_{frame_numbers[sequence]:06d}.jpg"
        path = os.path.join(root, "images", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ok, jpg = cv2.imencode(".jpg", frame.image, _JPEG)
        if not ok:
            raise OSError(f"could not encode {path}")
        write_bytes_atomic(path, jpg.tobytes())
        names.append(name)
        centers.append(frame.center)
        scales.append(frame.scale)
        parts.append(np.concatenate([frame.part, np.ones((NUM_JOINTS, 1))], axis=1))
        joints.append(frame.joints_cam)
    joints = np.asarray(joints)
    s = np.concatenate([joints / 1000.0, np.ones((count, NUM_JOINTS, 1))], axis=2)
    folder = os.path.join(root, ANNOTATION_DIR, "fps50")
    os.makedirs(folder, exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, imgname=np.asarray(names), center=np.asarray(centers), scale=np.asarray(scales),
                     part=np.asarray(parts), S=s)
    write_atomic(os.path.join(folder, f"h36m_{split}.npz"), write)
    return joints


def mean_pose_baseline(train_joints: np.ndarray, test_joints: np.ndarray) -> tuple[float, float]:
    """(MPJPE, P-MPJPE) in mm of predicting every test frame as the mean
    root-relative training pose (camera coordinates, root joint 0)."""
    mean = (train_joints - train_joints[:, ROOT_JOINT:ROOT_JOINT + 1]).mean(axis=0)
    prediction = np.broadcast_to(mean, test_joints.shape)
    return float(mpjpe(prediction, test_joints).mean()), float(p_mpjpe(prediction, test_joints).mean())


def generate_synthetic_h36m(root: str, seed: int = 0, num_train: int = 800, num_test: int = 200) -> dict:
    """Write a synthetic Human3.6M dataset under ``root`` (layout in the module
    docstring); ``root/.complete`` is written last. Returns its summary: the seed,
    the frame counts and the mean-pose baseline (``mean_pose_mpjpe_mm``,
    ``mean_pose_p_mpjpe_mm``) on the test split."""
    if num_train < 1 or num_test < 1:
        raise ValueError(f"num_train and num_test must be >= 1 (got {num_train}, {num_test}): "
                         "the mean-pose baseline needs both splits")
    marker = os.path.join(root, MARKER_FILE)
    os.makedirs(os.path.join(root, ANNOTATION_DIR), exist_ok=True)
    if os.path.exists(marker):
        os.remove(marker)
    cameras = {key: cam for subject in TRAIN_SUBJECTS + TEST_SUBJECTS for key, cam in _cameras(seed, subject).items()}
    write_bytes_atomic(os.path.join(root, ANNOTATION_DIR, "cameras.pkl"), pickle.dumps(cameras, protocol=3))
    train = _write_split(root, "train", seed, num_train, cameras)
    test = _write_split(root, "test", seed, num_test, cameras)
    baseline, baseline_pa = mean_pose_baseline(train, test)
    summary = {"seed": seed, "train": {"frames": num_train}, "test": {"frames": num_test},
               "mean_pose_mpjpe_mm": round(baseline, 4), "mean_pose_p_mpjpe_mm": round(baseline_pa, 4)}
    write_bytes_atomic(marker, json.dumps(summary, sort_keys=True).encode("utf-8"))
    return summary


def is_generated(root: str) -> bool:
    """Whether ``root`` holds a completely written synthetic Human3.6M dataset."""
    folder = os.path.join(root, ANNOTATION_DIR)
    return generation_complete(root, [os.path.join(folder, "cameras.pkl")] + [
        os.path.join(folder, "fps50", f"h36m_{split}.npz") for split in _SPLITS])


def get_dataset(cfg, image_set: str, is_train: bool, codec):
    """``DATASET.DATASET: synthetic_h36m``: the Human3.6M layout under
    ``DATASET.ROOT``, generated there first (seed ``SEED``) if not complete
    yet, then read by the Human3.6M reader like the real data."""
    from .h36m import H36MDataset

    generate_on_first_use(cfg.DATASET.ROOT, cfg.SEED, is_generated, generate_synthetic_h36m,
                          lambda s: f"synthetic Human3.6M frames ({s['train']['frames']} train / {s['test']['frames']} "
                                    f"test; the mean pose scores {s['mean_pose_mpjpe_mm']:.1f} mm MPJPE)")
    return H36MDataset(cfg, image_set, is_train, codec)
