"""CC-SSL's Unreal synthetic animals (Mu et al., CVPR 2020), ``DATASET.DATASET:
unreal_animal``; ``TRAIN_SET`` / ``TEST_SET`` are ``<animal>_train`` /
``<animal>_valid`` with animal ``horse``, ``tiger``, ``sheep`` or ``hound``.

Layout (the synthetic download of ``get_dataset.sh`` plus the repo's
``data/synthetic_animal/`` split and mean files copied into the same folder)::

    ROOT/synthetic_animal/<animal>_combineds5r5_texture/<stem>img.png
    ROOT/synthetic_animal/<animal>_combineds5r5_texture/<stem>kpts.npy     (P, 3) mesh points x, y, v
    ROOT/synthetic_animal/<animal>_combineds5r5_texture/{train,valid}_idxs.npy   (optional)
    ROOT/synthetic_animal/<animal>_combineds5r5_texture/mean.pth.tar             (DATASET.INPUT_MEAN_FILE)

As in JitengMu/Learning-from-Synthetic-Animals ``pose/datasets/synthetic_animal_sp.py``:
the images are the sorted ``*img.png`` and each annotation the file with
``img.png`` replaced by ``kpts.npy`` (lines 49-56); the points are read as
float16 (31, 176); the box spans *all* mesh points (``cal_bbox`` 28-37), is
clipped to 640 x 480 (193-196), its centre is the box middle and its scale
the longer side / 200 x 1.25 (198-199); the 18 TigDog-order joints are the
mesh points of the per-animal index arrays (84-98, 189), all marked visible
(``train_with_occlusion``, 184-185) except those outside 640 x 480 (217-219)
or with y <= 0 (no target, 238); the split is ``train_idxs.npy`` /
``valid_idxs.npy`` (indices into the sorted images, 70-72), else a seeded
1/5 validation split (the official draws an unseeded one, 63-68, and saves it).
Normalisation: the official subtracts the animal's ``mean.pth.tar`` mean
(141-168, 229): point ``DATASET.INPUT_MEAN_FILE`` at it.

Augmentation: the official imgaug pipeline (affine with shear, noise, blur, contrast,
121-139) is ``DATASET.STRONG_AUG: ccssl`` (``datasets/strong_aug.py``), then posezoo's
SCALE_FACTOR / ROT_FACTOR / FLIP. Deliberate differences: a joint outside the render
before augmentation stays unlabelled (the official tests the bounds after the affine,
217-219, and keeps the augmented points in float16); a missing mean file is not computed
and saved. Elephant is refused: its official index array has 25 entries for the 18-joint model.
Metric: PCK@0.05 of the crop side (200 x scale), CC-SSL's ``accuracy`` on
the validation split in image coordinates (``tigdog.crop_pck_table``).
"""
from __future__ import annotations

import glob
import os
from collections import OrderedDict
from typing import Sequence

import numpy as np

from . import KeypointInfo
from .animal import TIGDOG
from .coco import AnnotationError
from .joints_dataset import JointsDataset, make_record
from .tigdog import crop_pck_table, parse_image_set, square_crop_scale

# Mesh point indices of the 18 TigDog joints (synthetic_animal_sp.py:85-97).
MESH_JOINTS = {
    "horse": (1718, 1684, 1271, 1634, 1650, 1643, 1659, 925, 392, 564, 993, 726, 1585, 1556, 427, 1548, 967, 877),
    "tiger": (2753, 2679, 2032, 1451, 1287, 3085, 1632, 229, 1441, 1280, 2201, 1662, 266, 158, 270, 152, 219, 129),
    "sheep": (2046, 1944, 1267, 1875, 1900, 1868, 1894, 687, 173, 1829, 1422, 821, 624, 580, 622, 575, 1370, 716),
    "hound": (2028, 2580, 912, 878, 977, 1541, 1734, 480, 799, 1575, 1446, 602, 755, 673, 780, 1580, 466, 631),
}
ANIMALS = tuple(MESH_JOINTS)
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480  # the renders' size, hard-coded in the official clip (193-196, 218)
BOX_FACTOR = 1.25
FOLDER = "{}_combineds5r5_texture"


def animal_folder(root: str, animal: str) -> str:
    return os.path.join(root, "synthetic_animal", FOLDER.format(animal))


def list_renders(folder: str) -> list[str]:
    """The sorted ``*img.png`` of `folder` (synthetic_animal_sp.py:49-50)."""
    images = sorted(glob.glob(os.path.join(folder, "*img.png")))
    if not images:
        raise AnnotationError(f"no *img.png renders in {folder} (DATASET.ROOT must hold synthetic_animal/ from "
                              f"CC-SSL's get_dataset.sh)")
    return images


def box_center_scale(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (x, y) and bearpaw scale (crop side / 200) of the box around every
    mesh point, in the official float16 arithmetic (``cal_bbox``, lines 193-199)."""
    pts = np.asarray(points).astype(np.float16)
    x_min, x_max = np.clip(pts[:, 0].min(), 0, IMAGE_WIDTH), np.clip(pts[:, 0].max(), 0, IMAGE_WIDTH)
    y_min, y_max = np.clip(pts[:, 1].min(), 0, IMAGE_HEIGHT), np.clip(pts[:, 1].max(), 0, IMAGE_HEIGHT)
    center = np.array([float(x_min + x_max) / 2.0, float(y_min + y_max) / 2.0], np.float32)
    return center, max(float(x_max - x_min), float(y_max - y_min)) / 200.0 * BOX_FACTOR


def select_joints(points: np.ndarray, animal: str) -> tuple[np.ndarray, np.ndarray]:
    """(18, 2) joints and (18,) labelled mask from the mesh points (lines
    184-189, 217-219, 238)."""
    pts = np.asarray(points).astype(np.float16).astype(np.float32)
    idx = np.asarray(MESH_JOINTS[animal])
    if pts.ndim != 2 or pts.shape[1] < 2 or len(pts) <= idx.max():
        raise AnnotationError(f"mesh points of shape {pts.shape}: the {animal} joints need at least "
                              f"{idx.max() + 1} rows of (x, y, v)")
    xy = pts[idx, :2]
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] <= IMAGE_WIDTH) & (xy[:, 1] <= IMAGE_HEIGHT)
    labelled = inside & (xy[:, 1] > 0)
    return np.where(labelled[:, None], xy, 0).astype(np.float32), labelled


def split_indices(folder: str, count: int, seed: int) -> dict[str, np.ndarray]:
    files = {s: os.path.join(folder, f"{s}_idxs.npy") for s in ("train", "valid")}
    if all(os.path.isfile(f) for f in files.values()):
        split = {s: np.load(f, allow_pickle=False).astype(np.int64).reshape(-1) for s, f in files.items()}
        for s, idx in split.items():
            if len(idx) and (idx.min() < 0 or idx.max() >= count):
                raise AnnotationError(f"{files[s]} indexes renders outside 0..{count - 1}")
        return split
    valid = np.sort(np.random.default_rng(seed).choice(count, count // 5, replace=False))
    return {"train": np.setdiff1d(np.arange(count), valid), "valid": valid}


def keypoint_info(cfg) -> KeypointInfo:
    return KeypointInfo(TIGDOG.names, TIGDOG.flip_pairs, TIGDOG.skeleton)


class UnrealAnimalDataset(JointsDataset):
    keypoints = TIGDOG

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        kp = self.keypoints
        super().__init__(cfg, image_set, is_train, codec, kp.num_joints, kp.flip_pairs, kp.upper_body_ids,
                         [1.0] * kp.num_joints)
        if image_set.startswith("elephant_"):
            raise ValueError("unreal_animal: elephant is not supported (CC-SSL's elephant index array has 25 "
                             "mesh points for an 18-joint model, synthetic_animal_sp.py:94)")
        self.animal, split = parse_image_set(image_set, ANIMALS, "unreal_animal")
        self.skeleton = list(kp.skeleton)
        folder = animal_folder(self.root, self.animal)
        self.images = list_renders(folder)
        for index in split_indices(folder, len(self.images), cfg.SEED)[split]:
            self.db.append(self._record(int(index)))

    def _record(self, index: int) -> dict:
        image = self.images[index]
        kpts = image[: -len("img.png")] + "kpts.npy"
        if not os.path.isfile(kpts):
            raise AnnotationError(f"{kpts} not found (each <stem>img.png needs its <stem>kpts.npy)")
        points = np.load(kpts, allow_pickle=False)
        center, s = box_center_scale(points)
        xy, labelled = select_joints(points, self.animal)
        joints = np.zeros((self.num_joints, 3), np.float32)
        joints[:, :2] = xy
        vis = np.repeat(labelled[:, None].astype(np.float32), 3, axis=1)
        vis[:, 2] = 0
        rec = make_record(image, index, center, square_crop_scale(s * 200.0, self.aspect_ratio), joints, vis)
        rec["crop_size"] = s * 200.0
        return rec

    def evaluate(self, preds: np.ndarray, boxes: np.ndarray, image_ids: Sequence[int], output_dir: str,
                 rank: int = 0) -> tuple[OrderedDict, float]:
        """PCK@0.05 of the crop side (mean and per joint, percent); preds
        follow ``self.db`` order."""
        if len(preds) != len(self.db):
            raise ValueError(f"{len(preds)} predictions for {len(self.db)} unreal_animal crops")
        return crop_pck_table(preds, self.db, self.keypoints.names)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> UnrealAnimalDataset:
    return UnrealAnimalDataset(cfg, image_set, is_train, codec)
