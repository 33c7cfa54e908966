"""Human3.6M (Ionescu et al., TPAMI 2014), single-person 3D body pose from RGB
(``DATASET.DATASET: h36m``), in the layout of mmpose's body3d converter::

    ROOT/images/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg
    ROOT/annotation_body3d/fps50/h36m_<set>.npz   imgname (N,) str, center (N, 2), scale (N,) (box side / 200 px),
                                                  part (N, 17, 3) 2D px + visibility, S (N, 17, 4) camera metres + vis
    ROOT/annotation_body3d/cameras.pkl            {(subject, camera id): {R, T, c, f, k, p, w, h, name, id}}

``DATASET.TRAIN_SET`` / ``TEST_SET`` name the split (``train`` ->
``h36m_train.npz``) or a file under ROOT: such an npz, or a COCO-style json
whose annotations carry ``keypoints`` (2D px), ``keypoints_3d`` (world metres,
x y z v) and ``bbox`` (the 2D json of mmpose's tests); a json's world joints go
to the camera as X_cam = R^T (X_world - T), the convention of mmpose's
cameras.pkl (checked on the real samples: it reproduces the npz's ``S`` to
1e-7 m). The images may also sit directly under ROOT (no ``images/``).

Protocol 1 (Pavlakos et al. 2017, Sec. 5): train on S1, S5, S6, S7, S8, test on
S9, S11; a split whose name contains ``train`` keeps the training subjects, one
with ``test`` or ``val`` the test subjects, ``DATASET.SUBJECTS`` overrides.
17 joints, root = pelvis (joint 0); mmpose's joint names (the 2D json of the
samples calls joints 1-3 "left" and 4-6 "right", which its own pixels contradict:
joint 1 lies on the same image side as joint 14, the right shoulder).

``cameras.pkl`` is a pickle: it is read by :func:`load_cameras` with an
unpickler that builds only dicts, lists, tuples, strings, numbers and numpy
arrays and refuses every other global with one line, so a crafted file cannot
run code. ``cameras.json`` (``save_cameras_json``) is the pickle-free alternative.

Each crop's sample follows the volumetric codec's interface:
``codec.encode(joints, joints_vis)`` with ``joints`` (17, 3) = crop-input pixel
x, y and z = camera depth minus the root's depth in mm; ``meta`` carries the 2D
crop (``center``, ``scale``) and the camera (``root_cam`` mm, ``focal``,
``princpt``), the ground truth ``joints_cam`` (mm), ``action`` (an index into
``core.metrics3d.H36M_ACTIONS``) and ``subject`` (9 for S9).

Training augmentation is c2f-vol-train's (``src/data.lua:84-111``, see
``H36MDataset.augment_3d``): scale N(1, 0.25) clipped to [0.75, 1.25], rotation
N(0, 30) clipped to +-60 degrees and applied to 40 % of the samples, a colour
gain U(0.8, 1.2) per channel and a horizontal flip with probability 0.5. The flip
swaps left/right joints and mirrors the camera with the image (x_cam -> -x_cam,
c_x -> W - 1 - c_x), so the 3D labels stay consistent with the flipped pixels;
the relative depths are unchanged by the in-plane rotation and scale, as in
the Lua code (the meta's camera values are not rotated: they are used at test
time only, where nothing is augmented).
"""
from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
from typing import Any, Optional

import cv2
import numpy as np
import torch

from ..core.metrics3d import H36M_ACTIONS, action_table, mpjpe, ordinal_accuracy, ordinal_from_depth, p_mpjpe
from ..utils.transforms import affine_transform, fliplr_joints, flip_permutation, get_affine_transform
from ..utils.utils import write_text_atomic
from . import KeypointInfo
from ..utils.normalise import to_input_tensor, uint8_input_tensor
from .joints_dataset import ImageReadError, JointsDataset, read_image, target_tensors

logger = logging.getLogger(__name__)

JOINT_NAMES = ("root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine",
               "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
               "right_elbow", "right_wrist")
SKELETON = [(0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11), (11, 12),
            (12, 13), (8, 14), (14, 15), (15, 16)]
#: (left, right): hips, knees, feet, shoulders, elbows, wrists.
FLIP_PAIRS = [(4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)]
UPPER_BODY_IDS = list(range(7, 17))
NUM_JOINTS, ROOT_JOINT = 17, 0
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
#: Other spellings of the action names in Human3.6M file names.
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether",
                  "Walkdog": "WalkDog"}
#: Colour gain range of c2f-vol-train data.lua:90-92.
COLOR_GAIN = (0.8, 1.2)
ANNOTATION_DIR = "annotation_body3d"
RESULTS_FORMAT = "posezoo-h36m-results-1"


class CameraFileError(ValueError):
    """A cameras file that is malformed or that tries to build anything other than plain data."""


# --- cameras -------------------------------------------------------------------------------------------------------

#: The only globals a cameras pickle may name: numpy's array and scalar rebuilders.
_SAFE_GLOBALS = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for name in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, strings, numbers and numpy arrays; any other
    global (``os.system``, ``builtins.eval``, a class) raises CameraFileError
    before it is imported, so nothing outside numpy's rebuilders can run."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise CameraFileError(f"refusing {module}.{name}: a cameras pickle may only hold dicts, lists, strings, "
                              f"numbers and numpy arrays")

    def persistent_load(self, pid: Any) -> Any:
        raise CameraFileError("refusing a persistent id: a cameras pickle may only hold plain data")


def _camera(key: str, entry: Any) -> dict:
    if not isinstance(entry, dict):
        raise CameraFileError(f"camera {key}: expected a dict of R, T, f, c, got {type(entry).__name__}")
    try:
        camera = {name: np.asarray(entry[name], dtype=np.float64).reshape(shape)
                  for name, shape in (("R", (3, 3)), ("T", (3,)), ("f", (2,)), ("c", (2,)))}
        for name, size in (("k", 3), ("p", 2)):
            camera[name] = np.asarray(entry.get(name, np.zeros(size)), dtype=np.float64).reshape(size)
    except KeyError as err:
        raise CameraFileError(f"camera {key} has no {err.args[0]}") from None
    except (TypeError, ValueError) as err:
        raise CameraFileError(f"camera {key}: {err}") from None
    if not all(np.isfinite(v).all() for v in camera.values()) or (camera["f"] <= 0).any():
        raise CameraFileError(f"camera {key}: non-finite values or a focal length <= 0")
    camera["w"], camera["h"] = int(entry.get("w", 0)), int(entry.get("h", 0))
    return camera


def _camera_key(key: Any) -> str:
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key):
        return f"{key[0]}/{key[1]}"
    if isinstance(key, str) and key.count("/") == 1:
        return key
    raise CameraFileError(f"camera key {key!r}: expected (subject, camera id) or 'subject/camera id'")


def load_cameras(path: str) -> dict[str, dict]:
    """Cameras by ``"S1/54138969"``: R (3, 3), T (3,) metres, f, c (2,) px, k (3,),
    p (2,) distortion, w, h. ``.pkl`` through the plain-data unpickler, ``.json``
    as written by :func:`save_cameras_json`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise CameraFileError(f"cannot read cameras file {path}: {err.strerror}") from None
    if path.endswith(".json"):
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise CameraFileError(f"cameras file {path} is not valid json: {err}") from None
    else:
        try:
            data = _PlainDataUnpickler(io.BytesIO(raw)).load()
        except CameraFileError as err:
            raise CameraFileError(f"{path}: {err}") from None
        except Exception as err:  # any malformed byte stream: one line naming the file
            raise CameraFileError(f"cameras file {path} is not a readable pickle ({type(err).__name__}: {err})") \
                from None
    if not isinstance(data, dict):
        raise CameraFileError(f"cameras file {path}: expected a dict of cameras, got {type(data).__name__}")
    return {_camera_key(key): _camera(_camera_key(key), entry) for key, entry in data.items()}


def save_cameras_json(cameras: dict[str, dict], path: str) -> None:
    """Write cameras (as :func:`load_cameras` returns them) as json, atomically."""
    plain = {key: {name: (value.tolist() if isinstance(value, np.ndarray) else value)
                   for name, value in camera.items()} for key, camera in cameras.items()}
    write_text_atomic(path, json.dumps(plain, indent=1, sort_keys=True))


def world_to_camera(joints_world: np.ndarray, camera: dict) -> np.ndarray:
    """(K, 3) world -> camera coordinates, X_cam = R^T (X_world - T) (mmpose's cameras.pkl)."""
    return (np.asarray(joints_world, dtype=np.float64) - camera["T"]) @ camera["R"]


def project(joints_cam: np.ndarray, camera: dict, distort: bool = True) -> np.ndarray:
    """(..., 3) camera coordinates -> (..., 2) pixels: pinhole, with Human3.6M's
    radial (k) and tangential (p) distortion when ``distort`` (the model of the
    dataset's own ``ProjectPointRadial``; it reproduces the 2D labels of the real
    samples to 1e-4 px)."""
    joints_cam = np.asarray(joints_cam, dtype=np.float64)
    x = joints_cam[..., :2] / joints_cam[..., 2:3]
    if distort:
        k, p = camera["k"], camera["p"]
        r2 = (x ** 2).sum(axis=-1, keepdims=True)
        radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
        tangential = p[0] * x[..., 1:2] + p[1] * x[..., 0:1]
        x = x * (radial + tangential) + np.array([p[1], p[0]]) * r2
    return x * camera["f"] + camera["c"]


# --- annotations ---------------------------------------------------------------------------------------------------

_NAME = re.compile(r"^(S\d+)_([A-Za-z]+)[^.]*\.(\d+)")


def parse_image_name(name: str) -> tuple[str, str, int]:
    """``S9_Walking_1.54138969_000001.jpg`` -> (subject, camera id, action id)."""
    match = _NAME.match(os.path.basename(name))
    if match is None:
        raise ValueError(f"image name {name!r} is not a Human3.6M frame name (S<n>_<Action>[_k].<camera>_<frame>)")
    subject, action, camera = match.groups()
    action = ACTION_ALIASES.get(action, action)
    if action not in H36M_ACTIONS:
        raise ValueError(f"image name {name!r}: unknown action {action!r}; expected one of {', '.join(H36M_ACTIONS)}")
    return subject, camera, H36M_ACTIONS.index(action)


def image_relpath(name: str) -> str:
    """An image's path under the image folder: as given when it has folders,
    else mmpose's ``S1/S1_Directions_1.54138969/<name>``."""
    if "/" in name:
        return name
    stem = os.path.splitext(name)[0]
    return f"{name.split('_')[0]}/{stem.rsplit('_', 1)[0]}/{name}"


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("imgname", "center", "scale", "part", "S")}
    except KeyError as err:
        raise ValueError(f"{path} has no {err.args[0]!r} (expected imgname, center, scale, part, S)") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read Human3.6M annotations {path}: {str(err).splitlines()[0]}") from None
    n = len(arrays["imgname"])
    expected = {"center": (n, 2), "scale": (n,), "part": (n, NUM_JOINTS, 3), "S": (n, NUM_JOINTS, 4)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}")
    return {"imgname": arrays["imgname"].astype(str), "center": arrays["center"].astype(np.float64),
            "scale": arrays["scale"].astype(np.float64), "part": arrays["part"].astype(np.float64),
            "joints_cam": arrays["S"][..., :3].astype(np.float64) * 1000.0, "vis3d": arrays["S"][..., 3]}


def _read_coco_json(path: str, cameras: dict[str, dict]) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
        images = {image["id"]: image["file_name"] for image in data["images"]}
        anns = [a for a in data["annotations"] if len(a.get("keypoints_3d", [])) == 4 * NUM_JOINTS]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read Human3.6M json {path}: {err}") from None
    names, centers, scales, parts, joints_cam, vis3d = [], [], [], [], [], []
    for ann in anns:
        name = images[ann["image_id"]]
        subject, camera, _ = parse_image_name(name)
        world = np.asarray(ann["keypoints_3d"], dtype=np.float64).reshape(NUM_JOINTS, 4)
        x, y, w, h = (float(v) for v in ann["bbox"])
        names.append(image_relpath(name))
        centers.append([x + w / 2, y + h / 2])
        scales.append(max(w, h) / 200.0)
        parts.append(np.asarray(ann["keypoints"], dtype=np.float64).reshape(NUM_JOINTS, 3))
        joints_cam.append(world_to_camera(world[:, :3], _lookup(cameras, subject, camera, path)) * 1000.0)
        vis3d.append(world[:, 3])
    empty = np.zeros((0, NUM_JOINTS, 3))
    return {"imgname": np.asarray(names, dtype=str), "center": np.asarray(centers).reshape(-1, 2),
            "scale": np.asarray(scales), "part": np.asarray(parts).reshape(-1, NUM_JOINTS, 3) if parts else empty,
            "joints_cam": np.asarray(joints_cam).reshape(-1, NUM_JOINTS, 3) if parts else empty,
            "vis3d": np.asarray(vis3d).reshape(-1, NUM_JOINTS)}


def _lookup(cameras: dict[str, dict], subject: str, camera: str, where: str) -> dict:
    try:
        return cameras[f"{subject}/{camera}"]
    except KeyError:
        raise ValueError(f"{where}: no camera {subject}/{camera} in the cameras file") from None


def find_file(root: str, candidates: list[str], what: str) -> str:
    for name in candidates:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"Human3.6M {what} not found: looked for "
                            f"{', '.join(os.path.join(root, c) for c in candidates)}")


def annotation_file(root: str, image_set: str) -> str:
    if image_set.endswith((".npz", ".json")):
        return find_file(root, [image_set, os.path.join(ANNOTATION_DIR, image_set)], f"annotations {image_set}")
    return find_file(root, [os.path.join(ANNOTATION_DIR, "fps50", f"h36m_{image_set}.npz"),
                            os.path.join(ANNOTATION_DIR, f"h36m_{image_set}.npz"),
                            os.path.join(ANNOTATION_DIR, f"h36m_{image_set}.json")], f"{image_set} annotations")


def cameras_file(root: str) -> str:
    return find_file(root, [os.path.join(ANNOTATION_DIR, "cameras.pkl"), os.path.join(ANNOTATION_DIR, "cameras.json"),
                            "cameras.pkl", "cameras.json"], "cameras")


def split_subjects(cfg, image_set: str) -> Optional[tuple[str, ...]]:
    """``DATASET.SUBJECTS``, else protocol 1 by the split's name (None: every subject)."""
    if cfg.DATASET.SUBJECTS:
        return tuple(str(s) for s in cfg.DATASET.SUBJECTS)
    name = os.path.basename(image_set).lower()
    if "train" in name:
        return TRAIN_SUBJECTS
    if "test" in name or "val" in name:
        return TEST_SUBJECTS
    return None


class H36MDataset(JointsDataset):
    """One crop per annotated frame; see the module docstring for the sample."""

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        super().__init__(cfg, image_set, is_train, codec, NUM_JOINTS, FLIP_PAIRS, UPPER_BODY_IDS, [1.0] * NUM_JOINTS)
        self.skeleton = SKELETON
        if self.uint8_inputs and is_train:
            raise ValueError("DATASET.UINT8_INPUTS True: Human3.6M training scales the crop's colours in float "
                             "(augment_3d's gain), so its crops are not uint8; set DATASET.UINT8_INPUTS False")
        self.cameras = load_cameras(cameras_file(self.root))
        path = annotation_file(self.root, image_set)
        data = _read_npz(path) if path.endswith(".npz") else _read_coco_json(path, self.cameras)
        image_dir = os.path.join(self.root, "images")
        image_dir = image_dir if os.path.isdir(image_dir) else self.root
        subjects = split_subjects(cfg, image_set)
        for i, name in enumerate(data["imgname"]):
            subject, camera, action = parse_image_name(name)
            if subjects is not None and subject not in subjects:
                continue
            cam = _lookup(self.cameras, subject, camera, path)
            self.db.append(self._record(os.path.join(image_dir, name), data, i, subject, action, cam))
        if not self.db:
            raise ValueError(f"Human3.6M {image_set} ({path}): no frame of subjects {', '.join(subjects or ())}; "
                             f"set DATASET.SUBJECTS to the subjects the file holds")
        logger.info("=> Human3.6M %s: %d frames of %s", image_set, len(self.db),
                    ", ".join(sorted({f"S{r['subject']}" for r in self.db}, key=lambda s: int(s[1:]))))

    def _record(self, image: str, data: dict, i: int, subject: str, action: int, camera: dict) -> dict:
        vis = ((data["part"][i, :, 2] > 0) & (data["vis3d"][i] > 0)).astype(np.float32)
        scale = float(data["scale"][i])
        width, height = scale, scale  # a square box, widened to the crop's aspect ratio
        if self.aspect_ratio > 1:
            width = scale * self.aspect_ratio
        elif self.aspect_ratio < 1:
            height = scale / self.aspect_ratio
        return {"image": image, "center": data["center"][i].astype(np.float32),
                "scale": np.array([width, height], np.float32), "part": data["part"][i, :, :2],
                "vis": vis, "joints_cam": data["joints_cam"][i], "subject": int(subject[1:]), "action": action,
                "focal": camera["f"].copy(), "princpt": camera["c"].copy()}

    @property
    def split_name(self) -> str:
        """The split as file names use it: ``test`` for ``test`` or ``.../h36m_test.npz``."""
        return os.path.splitext(os.path.basename(self.image_set))[0]

    def image_path(self, index: int) -> str:
        return self.db[int(index)]["image"]

    def ground_truth(self, indices) -> np.ndarray:
        """Camera-space joints (N, 17, 3) mm of the given frames."""
        return np.stack([self.db[int(i)]["joints_cam"] for i in indices])

    def augment_3d(self, image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                   scale: np.ndarray, cam: dict, rng: np.random.Generator):
        """c2f-vol-train's augmentation (data.lua:85-111), per sample: scale
        clip(N(1, sf), 1 - sf, 1 + sf), rotation clip(N(0, rf), -2 rf, 2 rf) kept
        with probability 0.4 (data.lua:95 zeroes it when U <= 0.6; HRNet's
        ``JointsDataset.augment`` keeps it with probability 0.6 instead), a gain
        U(0.8, 1.2) per colour channel, and a flip with probability 0.5 that also
        mirrors the camera (the Lua code flips the whole batch at once)."""
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
        rotation = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
        gain = rng.uniform(*COLOR_GAIN, size=3)
        if rng.random() <= 0.6:
            rotation = 0.0
        if self.flip and rng.random() <= 0.5:
            width = image.shape[1]
            image = cv2.flip(image, 1)  # image[:, ::-1]'s pixels without its slow strided copy
            joints, joints_vis = fliplr_joints(joints, joints_vis, width, self.flip_pairs)
            center = np.array([width - center[0] - 1, center[1]], dtype=np.float32)
            perm = flip_permutation(NUM_JOINTS, self.flip_pairs)
            cam = {"joints_cam": cam["joints_cam"][perm] * [-1.0, 1.0, 1.0],
                   "princpt": np.array([width - 1 - cam["princpt"][0], cam["princpt"][1]])}
        return image, joints, joints_vis, center, scale, rotation, cam, gain

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, Any, torch.Tensor, dict[str, Any]]:
        rec = self.db[idx]
        vis = rec["vis"][:, None].repeat(3, axis=1)
        depth = rec["joints_cam"][:, 2] - rec["joints_cam"][ROOT_JOINT, 2]
        joints = np.concatenate([rec["part"], depth[:, None]], axis=1) * vis
        center, scale, rotation, gain = rec["center"].copy(), rec["scale"].copy(), 0.0, None
        cam = {"joints_cam": rec["joints_cam"], "princpt": rec["princpt"]}
        width, height = int(self.image_size[0]), int(self.image_size[1])
        image, valid = self.read_or_blank(rec["image"])
        if self.is_train and valid:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
            image, joints, vis, center, scale, rotation, cam, gain = self.augment_3d(
                image, joints, vis, center, scale, cam, rng)

        crop_matrix = getattr(self.codec, "crop_matrix", None)
        trans = (crop_matrix(center, scale, rotation, (width, height)) if crop_matrix is not None
                 else get_affine_transform(center, scale, rotation, (width, height)))
        crop = cv2.warpAffine(image, trans, (width, height), flags=cv2.INTER_LINEAR)
        if gain is not None:
            crop = np.clip(crop * gain.astype(np.float32), 0, 255)
        joints = joints.astype(np.float32)
        visible = vis[:, 0] > 0
        joints[visible, :2] = affine_transform(joints[visible, :2], trans)
        target, target_weight = self.codec.encode(joints, vis.astype(np.float32))
        target_weight = target_weight * valid
        joints_cam = cam["joints_cam"]
        meta = {"image": rec["image"], "image_id": idx, "index": idx, "joints": joints, "joints_vis": vis,
                "center": center, "scale": scale, "rotation": rotation, "score": 1.0, "valid": valid,
                "root_cam": joints_cam[ROOT_JOINT].astype(np.float64), "focal": rec["focal"],
                "princpt": np.asarray(cam["princpt"], dtype=np.float64), "joints_cam": joints_cam.astype(np.float64),
                "action": rec["action"], "subject": rec["subject"]}
        inputs = (uint8_input_tensor(crop) if self.uint8_inputs
                  else to_input_tensor(crop, self.input_mean, self.input_std))
        return inputs, target_tensors(target), torch.as_tensor(target_weight), meta

    def evaluate(self, preds: np.ndarray, boxes, image_ids: np.ndarray, output_dir: str) -> tuple[dict, float]:
        """MPJPE (protocol 1, root-aligned), P-MPJPE (Procrustes), per-action
        MPJPE and the ordinal accuracy of the predicted depth orders (pairs more
        than 100 mm apart in depth) of camera-space predictions (N, 17, 3) mm;
        writes ``results/h36m_<split_name>_results.json`` (format in docs/h36m.md). The
        returned metric (higher is better, for model selection) is -MPJPE."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        preds = np.asarray(preds, dtype=np.float64)[:, :, :3]
        gt = self.ground_truth(image_ids)
        visible = np.stack([self.db[i]["vis"] > 0 for i in image_ids])
        errors, aligned = mpjpe(preds, gt, ROOT_JOINT, visible), p_mpjpe(preds, gt, visible)
        actions = np.array([self.db[i]["action"] for i in image_ids])
        per_action = action_table(errors, actions)
        ordinal = ordinal_accuracy(preds[:, :, 2], ordinal_from_depth(gt[:, :, 2], same_depth=100.0))
        name_values = {"MPJPE (mm)": float(errors.mean()), "P-MPJPE (mm)": float(aligned.mean()),
                       "Ordinal acc (%)": 100.0 * ordinal}
        name_values.update({f"MPJPE {name}": value for name, value in per_action.items() if name != "Average"})
        frames = [{"image": os.path.relpath(self.db[i]["image"], self.root), "index": int(i),
                   "subject": f"S{self.db[i]['subject']}", "action": H36M_ACTIONS[self.db[i]["action"]],
                   "mpjpe": round(float(e), 4), "p_mpjpe": round(float(a), 4),
                   "pred_cam": np.round(p, 3).tolist()} for i, e, a, p in zip(image_ids, errors, aligned, preds)]
        results = {"format": RESULTS_FORMAT, "dataset": "h36m", "image_set": self.image_set, "unit": "mm",
                   "joints": list(JOINT_NAMES), "root_joint": ROOT_JOINT,
                   "metrics": {"MPJPE": name_values["MPJPE (mm)"], "P-MPJPE": name_values["P-MPJPE (mm)"],
                               "ordinal_accuracy": ordinal},
                   "per_action": {"MPJPE": per_action, "P-MPJPE": action_table(aligned, actions)},
                   "frames": frames}
        folder = os.path.join(output_dir, "results")
        os.makedirs(folder, exist_ok=True)
        write_text_atomic(os.path.join(folder, f"h36m_{self.split_name}_results.json"),
                          json.dumps(results))
        return name_values, -name_values["MPJPE (mm)"]

    def write_gallery(self, preds: np.ndarray, image_ids: np.ndarray, out_dir: str, per_row: int = 4,
                      tile: int = 192) -> dict[str, np.ndarray]:
        """The best and worst frames by MPJPE, each the person's box with the
        prediction projected into the image (pinhole with the frame's camera),
        as ``best_<set>.png`` / ``worst_<set>.png``, and a 3D plot of the worst
        frame against its ground truth (``worst_<set>_3d.png``; y drawn up). The
        returned sheets (BGR, by name) include that plot as ``worst_3d``."""
        from ..utils.vis import draw_skeletons, plot_hand_3d

        image_ids = np.asarray(image_ids, dtype=np.int64)
        preds = np.asarray(preds, dtype=np.float64)[:, :, :3]
        errors = mpjpe(preds, self.ground_truth(image_ids), ROOT_JOINT)
        order = np.argsort(errors, kind="stable")
        name = self.split_name
        os.makedirs(out_dir, exist_ok=True)
        sheets = {}
        for kind, rows in (("best", order[:per_row]), ("worst", order[::-1][:per_row])):
            tiles = []
            for row in rows:
                rec = self.db[image_ids[row]]
                try:
                    image = read_image(rec["image"], False)
                except ImageReadError:
                    continue
                uv = preds[row, :, :2] / preds[row, :, 2:] * rec["focal"] + rec["princpt"]
                drawn = draw_skeletons(image, np.concatenate([uv, np.ones((NUM_JOINTS, 1))], axis=1)[None],
                                       self.skeleton, self.flip_pairs)
                warp = get_affine_transform(rec["center"], rec["scale"], 0.0, (tile, tile))
                piece = cv2.warpAffine(drawn, warp, (tile, tile))
                cv2.putText(piece, f"{errors[row]:.1f} mm", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(piece)
            if tiles:
                sheets[kind] = cv2.hconcat(tiles)
                cv2.imwrite(os.path.join(out_dir, f"{kind}_{name}.png"), sheets[kind])
        worst = order[-1]
        up = np.array([1.0, -1.0, 1.0])  # camera y points down; the plot draws y up
        plot = plot_hand_3d(preds[worst] * up, self.skeleton, os.path.join(out_dir, f"worst_{name}_3d.png"),
                            title=f"{os.path.basename(self.db[image_ids[worst]]['image'])}: {errors[worst]:.1f} mm",
                            gt_xyz=self.ground_truth(image_ids[worst:worst + 1])[0] * up)
        sheets["worst_3d"] = cv2.imread(plot)  # TensorBoard gets the 3D plot with the sheets (gallery/worst_3d)
        return sheets


def keypoint_info(cfg) -> KeypointInfo:
    """Human3.6M's 17 joints, flip pairs and skeleton (no OKS sigmas: the metric is in mm)."""
    return KeypointInfo(JOINT_NAMES, FLIP_PAIRS, SKELETON)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> H36MDataset:
    """``DATASET.DATASET: h36m``."""
    return H36MDataset(cfg, image_set, is_train, codec)
