"""MoCap-style training data for the reconstruction component of Pavlakos et al.
CVPR 2018 (``codecs/lifting.py``, ``models/lifting_mlp.py``):
``DATASET.DATASET: h36m_lifting`` takes the 3D poses (camera mm) and cameras of
Human3.6M's annotation files (the layout ``datasets/h36m.py`` reads; no image is
read), ``synthetic_h36m_lifting`` the poses of the synthetic Human3.6M generator.

Each sample (``__getitem__``): the pose is projected to pixels with its frame's
camera (``h36m.project``, with the camera's distortion), the root-relative
depths are taken, and both are perturbed as the paper's training inputs
simulate the ConvNet's estimates (``noisy_observation``): Gaussian noise of std
``LIFTING.KEYPOINT_NOISE`` px on every 2D coordinate and of std
``LIFTING.DEPTH_NOISE`` mm on every root-relative depth, before the codec turns
the depth into its bin or rank (``LIFTING.DEPTH_INPUT``), so nearby joints swap
order as ordinal estimates do. The ordinal-pose3d release has no training code
(its README: "We will soon update this repository with the training code"), so
the noise model is posezoo's reading of the paper (the component is trained on
MoCap poses projected to 2D, with the depths made noisy) and its levels are keys.
Training draws fresh noise per sample and, with ``DATASET.FLIP``, mirrors half
of the poses (x negated, left/right swapped); the test split draws each frame's
noise from ``default_rng((SEED, index))`` (``LIFTING.TEST_NOISE``; off: exact
inputs), so every evaluation sees the same inputs.

``evaluate`` reports MPJPE (protocol 1, root-aligned), P-MPJPE, per-action
MPJPE (``core/metrics3d.py``) and the **mean-pose baseline** on the same frames:
every frame predicted as the mean root-relative pose of ``DATASET.TRAIN_SET``;
it writes ``results/lifting_<set>_results.json`` (format in docs/h36m.md).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.metrics3d import H36M_ACTIONS, action_table, mpjpe, p_mpjpe
from ..utils.transforms import flip_permutation
from ..utils.utils import write_text_atomic
from .h36m import (FLIP_PAIRS, JOINT_NAMES, NUM_JOINTS, ROOT_JOINT, SKELETON, _read_coco_json, _read_npz,
                   annotation_file, cameras_file, keypoint_info, load_cameras, parse_image_name, project,
                   split_subjects)  # noqa: F401 (keypoint_info: registry)

logger = logging.getLogger(__name__)

RESULTS_FORMAT = "posezoo-lifting-results-1"


def noisy_observation(uv: np.ndarray, depth: np.ndarray, rng: Optional[np.random.Generator],
                      keypoint_noise: float, depth_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) pixels and (K,) root-relative depths (mm) plus independent Gaussian
    noise of std `keypoint_noise` px and `depth_noise` mm (unchanged without `rng`)."""
    uv, depth = np.asarray(uv, dtype=np.float64), np.asarray(depth, dtype=np.float64)
    if rng is None:
        return uv, depth
    return uv + rng.normal(0.0, 1.0, uv.shape) * keypoint_noise, depth + rng.normal(0.0, 1.0, depth.shape) * depth_noise


def h36m_poses(cfg, image_set: str) -> dict[str, np.ndarray]:
    """The 3D poses of a Human3.6M split (protocol-1 subjects by its name, or
    ``DATASET.SUBJECTS``) with their cameras: ``joints_cam`` (N, 17, 3) mm, ``vis``
    (N, 17), ``action``, ``subject`` (N,) and ``cameras`` (a list of camera dicts)."""
    root = cfg.DATASET.ROOT
    cameras = load_cameras(cameras_file(root))
    path = annotation_file(root, image_set)
    data = _read_npz(path) if path.endswith(".npz") else _read_coco_json(path, cameras)
    subjects = split_subjects(cfg, image_set)
    keep, actions, subject_ids, cams = [], [], [], []
    for i, name in enumerate(data["imgname"]):
        subject, camera, action = parse_image_name(name)
        if subjects is not None and subject not in subjects:
            continue
        key = f"{subject}/{camera}"
        if key not in cameras:
            raise ValueError(f"{path}: no camera {key} in the cameras file")
        keep.append(i)
        actions.append(action)
        subject_ids.append(int(subject[1:]))
        cams.append(cameras[key])
    if not keep:
        raise ValueError(f"Human3.6M {image_set} ({path}): no pose of subjects {', '.join(subjects or ())}; "
                         f"set DATASET.SUBJECTS to the subjects the file holds")
    vis = ((data["part"][keep, :, 2] > 0) & (data["vis3d"][keep] > 0)).astype(np.float32)
    return {"joints_cam": data["joints_cam"][keep], "vis": vis, "action": np.asarray(actions),
            "subject": np.asarray(subject_ids), "cameras": cams}


def mean_pose(joints_cam: np.ndarray) -> np.ndarray:
    """The mean root-relative pose (17, 3) mm of poses (N, 17, 3)."""
    return (joints_cam - joints_cam[:, ROOT_JOINT:ROOT_JOINT + 1]).mean(axis=0)


class LiftingDataset(Dataset):
    """2D + noisy depth inputs and root-relative 3D targets from a set of poses
    (module doc). ``poses``: as :func:`h36m_poses` returns; ``baseline``: the mean
    training pose the evaluation compares against."""

    def __init__(self, cfg, image_set: str, is_train: bool, codec, poses: dict[str, Any], baseline: np.ndarray):
        self.cfg, self.image_set, self.is_train, self.codec = cfg, image_set, is_train, codec
        self.poses, self.baseline = poses, np.asarray(baseline, dtype=np.float64)
        self.num_joints, self.flip_pairs, self.skeleton = NUM_JOINTS, [list(p) for p in FLIP_PAIRS], SKELETON
        self.flip = bool(cfg.DATASET.FLIP)
        self.keypoint_noise, self.depth_noise = float(cfg.LIFTING.KEYPOINT_NOISE), float(cfg.LIFTING.DEPTH_NOISE)
        self.test_noise, self.seed = bool(cfg.LIFTING.TEST_NOISE), int(cfg.SEED)
        self.perm = flip_permutation(NUM_JOINTS, FLIP_PAIRS)
        logger.info("=> lifting %s: %d poses (%s noise: %.1f px, %.1f mm)", image_set, len(self),
                    "training" if is_train else ("test" if self.test_noise else "no"), self.keypoint_noise,
                    self.depth_noise)

    def __len__(self) -> int:
        return len(self.poses["joints_cam"])

    def _rng(self, idx: int) -> Optional[np.random.Generator]:
        if self.is_train:
            return np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
        return np.random.default_rng((self.seed, idx)) if self.test_noise else None

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        joints = self.poses["joints_cam"][idx].astype(np.float64)
        vis = self.poses["vis"][idx]
        uv = project(joints, self.poses["cameras"][idx])
        rng = self._rng(idx)
        uv, depth = noisy_observation(uv, joints[:, 2] - joints[ROOT_JOINT, 2], rng, self.keypoint_noise,
                                      self.depth_noise)
        if self.is_train and self.flip and rng.random() < 0.5:  # mirror: x negated (root-relative), sides swapped
            uv, depth, vis = uv[self.perm] * [-1.0, 1.0], depth[self.perm], vis[self.perm]
            joints = joints[self.perm] * [-1.0, 1.0, 1.0]
        inputs = self.codec.make_input(uv, depth)
        target, weight = self.codec.encode(joints, vis)
        meta = {"image_id": idx, "index": idx, "valid": 1.0, "joints_cam": joints, "action": int(
            self.poses["action"][idx]), "subject": int(self.poses["subject"][idx])}
        return torch.from_numpy(inputs), torch.from_numpy(target), torch.from_numpy(weight), meta

    def ground_truth(self, indices) -> np.ndarray:
        return self.poses["joints_cam"][np.asarray(indices, dtype=np.int64)]

    @property
    def split_name(self) -> str:
        return os.path.splitext(os.path.basename(self.image_set))[0]

    def evaluate(self, preds: np.ndarray, boxes, image_ids: np.ndarray, output_dir: str) -> tuple[dict, float]:
        """MPJPE, P-MPJPE and per-action MPJPE of root-relative predictions (N, 17, 3)
        mm, next to the mean-pose baseline's; writes the results file. Returns the
        table and -MPJPE (higher is better, for model selection)."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        preds = np.asarray(preds, dtype=np.float64)[:, :, :3]
        gt = self.ground_truth(image_ids)
        visible = self.poses["vis"][image_ids] > 0
        errors, aligned = mpjpe(preds, gt, ROOT_JOINT, visible), p_mpjpe(preds, gt, visible)
        base = np.broadcast_to(self.baseline, gt.shape)
        base_errors, base_aligned = mpjpe(base, gt, ROOT_JOINT, visible), p_mpjpe(base, gt, visible)
        actions = self.poses["action"][image_ids]
        per_action = action_table(errors, actions)
        name_values = {"MPJPE (mm)": float(errors.mean()), "P-MPJPE (mm)": float(aligned.mean()),
                       "Mean-pose MPJPE (mm)": float(base_errors.mean()),
                       "Mean-pose P-MPJPE (mm)": float(base_aligned.mean())}
        name_values.update({f"MPJPE {name}": value for name, value in per_action.items() if name != "Average"})
        results = {"format": RESULTS_FORMAT, "dataset": self.cfg.DATASET.DATASET, "image_set": self.image_set,
                   "unit": "mm", "joints": list(JOINT_NAMES), "root_joint": ROOT_JOINT,
                   "inputs": {"depth_input": self.cfg.LIFTING.DEPTH_INPUT, "keypoint_noise_px": self.keypoint_noise,
                              "depth_noise_mm": self.depth_noise, "test_noise": self.test_noise},
                   "metrics": {"MPJPE": name_values["MPJPE (mm)"], "P-MPJPE": name_values["P-MPJPE (mm)"],
                               "mean_pose_MPJPE": name_values["Mean-pose MPJPE (mm)"],
                               "mean_pose_P-MPJPE": name_values["Mean-pose P-MPJPE (mm)"]},
                   "per_action": {"MPJPE": per_action, "P-MPJPE": action_table(aligned, actions)},
                   "frames": [{"index": int(i), "subject": f"S{int(self.poses['subject'][i])}",
                               "action": H36M_ACTIONS[int(self.poses["action"][i])], "mpjpe": round(float(e), 4),
                               "pred": np.round(p, 3).tolist()} for i, e, p in zip(image_ids, errors, preds)]}
        folder = os.path.join(output_dir, "results")
        os.makedirs(folder, exist_ok=True)
        write_text_atomic(os.path.join(folder, f"lifting_{self.split_name}_results.json"), json.dumps(results))
        return name_values, -name_values["MPJPE (mm)"]

    def write_gallery(self, preds: np.ndarray, image_ids: np.ndarray, out_dir: str) -> dict[str, np.ndarray]:
        """3D plots of the best and the worst frame by MPJPE against their ground
        truth (``{best,worst}_<set>_3d.png``; y drawn up); no image exists to draw on."""
        from ..utils.vis import plot_hand_3d

        image_ids = np.asarray(image_ids, dtype=np.int64)
        preds = np.asarray(preds, dtype=np.float64)[:, :, :3]
        gt = self.ground_truth(image_ids)
        errors = mpjpe(preds, gt, ROOT_JOINT)
        order = np.argsort(errors, kind="stable")
        os.makedirs(out_dir, exist_ok=True)
        up = np.array([1.0, -1.0, 1.0])  # camera y points down; the plot draws y up
        sheets = {}
        for kind, row in (("best", order[0]), ("worst", order[-1])):
            path = os.path.join(out_dir, f"{kind}_{self.split_name}_3d.png")
            plot_hand_3d(preds[row] * up, self.skeleton, path, gt_xyz=(gt[row] - gt[row, ROOT_JOINT]) * up,
                         title=f"{self.split_name} #{image_ids[row]}: {errors[row]:.1f} mm")
            image = cv2.imread(path)
            if image is not None:
                sheets[f"{kind}_3d"] = image
        return sheets


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> LiftingDataset:
    """``DATASET.DATASET: h36m_lifting``: the poses of a Human3.6M split under ``DATASET.ROOT``."""
    poses = h36m_poses(cfg, image_set)
    train = poses if image_set == cfg.DATASET.TRAIN_SET else h36m_poses(cfg, cfg.DATASET.TRAIN_SET)
    return LiftingDataset(cfg, image_set, is_train, codec, poses, mean_pose(train["joints_cam"]))
