"""``DATASET.DATASET: synthetic_h36m_lifting``: the lifting dataset
(``datasets/h36m_lifting.py``) on the poses of the synthetic Human3.6M generator
(``datasets/synthetic_h36m.sample_poses``, seed ``SEED``), sampled without
rendering: ``LIFTING.NUM_TRAIN`` poses of the protocol-1 training subjects and
``LIFTING.NUM_TEST`` of the test subjects, each seen by its frame's pinhole
camera. Nothing is written to disk. ``DATASET.TRAIN_SET`` / ``TEST_SET`` name
the generator's splits, ``train`` or ``test``."""
from __future__ import annotations

import numpy as np

from .h36m import NUM_JOINTS, keypoint_info  # noqa: F401 (keypoint_info: registry)
from .h36m_lifting import LiftingDataset, mean_pose
from .synthetic_h36m import sample_poses

SPLITS = ("train", "test")


def synthetic_poses(cfg, split: str) -> dict:
    """The split's poses in the form ``h36m_lifting.h36m_poses`` returns."""
    if split not in SPLITS:
        raise ValueError(f"synthetic_h36m_lifting: split {split!r}; expected one of {', '.join(SPLITS)} "
                         f"(DATASET.TRAIN_SET / TEST_SET)")
    count = int(cfg.LIFTING.NUM_TRAIN if split == "train" else cfg.LIFTING.NUM_TEST)
    if count < 1:
        raise ValueError(f"LIFTING.NUM_{split.upper()} = {count}: expected at least one pose")
    poses = sample_poses(int(cfg.SEED), split, count)
    poses["vis"] = np.ones((count, NUM_JOINTS), np.float32)
    poses["cameras"] = [{"f": f, "c": c, "k": np.zeros(3), "p": np.zeros(2)}
                        for f, c in zip(poses.pop("focal"), poses.pop("princpt"))]
    return poses


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> LiftingDataset:
    poses = synthetic_poses(cfg, image_set)
    train = poses if image_set == cfg.DATASET.TRAIN_SET else synthetic_poses(cfg, cfg.DATASET.TRAIN_SET)
    return LiftingDataset(cfg, image_set, is_train, codec, poses, mean_pose(train["joints_cam"]))
