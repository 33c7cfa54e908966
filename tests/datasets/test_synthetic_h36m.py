"""The synthetic Human3.6M generator writes the real layout, read by the real reader."""
import json
import os

import numpy as np
import pytest

from posezoo.config import load_config
from posezoo.core.metrics3d import mpjpe
from posezoo.datasets import build_dataset
from posezoo.datasets.h36m import load_cameras, project
from posezoo.datasets.synthetic_h36m import IMAGE_SIZE, generate_synthetic_h36m, is_generated, mean_pose_baseline


class EncodeJoints:
    def encode(self, joints, joints_vis, **sample):
        return joints.copy(), joints_vis[:, :1].copy()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_h36m"))
    summary = generate_synthetic_h36m(root, seed=3, num_train=12, num_test=6)
    assert summary["train"]["frames"] == 12 and summary["mean_pose_mpjpe_mm"] > 50
    return root


def _cfg(root, split):
    return load_config(None, ["DATASET.DATASET", "synthetic_h36m", "DATASET.ROOT", root, "DATASET.TEST_SET", split,
                              "MODEL.NUM_JOINTS", "17", "MODEL.IMAGE_SIZE", "[64, 64]"])


def test_layout_is_complete_and_deterministic(root, tmp_path):
    assert is_generated(root)
    generate_synthetic_h36m(str(tmp_path), seed=3, num_train=12, num_test=6)
    for name in ("annotation_body3d/fps50/h36m_train.npz", "annotation_body3d/cameras.pkl"):
        assert open(os.path.join(root, name), "rb").read() == open(tmp_path / name, "rb").read()


def test_labels_are_consistent_with_the_cameras(root):
    cameras = load_cameras(os.path.join(root, "annotation_body3d", "cameras.pkl"))
    data = np.load(os.path.join(root, "annotation_body3d", "fps50", "h36m_test.npz"))
    for name, part, s in zip(data["imgname"], data["part"], data["S"]):
        base = os.path.basename(name)
        subject, camera = base.split("_")[0], base.split(".")[1].split("_")[0]
        assert subject in ("S9", "S11")
        assert np.allclose(project(s[:, :3], cameras[f"{subject}/{camera}"]), part[:, :2], atol=1e-6)
        assert (part[:, :2] > 0).all() and (part[:, :2] < IMAGE_SIZE - 1).all()
        bones = np.linalg.norm(s[[2, 5], :3] - s[[1, 4], :3], axis=1) * 1000  # thighs, mm
        assert np.all((bones > 350) & (bones < 560))


def test_reader_reads_synthetic_frames_and_mean_pose_baseline(root, tmp_path):
    train = build_dataset(_cfg(root, "test"), "train", False, EncodeJoints())
    test = build_dataset(_cfg(root, "test"), "test", False, EncodeJoints())
    assert len(train) == 12 and len(test) == 6
    inputs, target, _, meta = test[0]
    assert inputs.shape == (3, 64, 64) and float(target[0, 2]) == 0.0
    gt_train, gt_test = train.ground_truth(range(12)), test.ground_truth(range(6))
    mean = (gt_train - gt_train[:, :1]).mean(axis=0)
    stats, _ = test.evaluate(np.broadcast_to(mean + gt_test[:, :1], gt_test.shape), None, np.arange(6),
                             str(tmp_path))
    baseline, _ = mean_pose_baseline(gt_train, gt_test)
    assert stats["MPJPE (mm)"] == pytest.approx(baseline, abs=1e-6)
    assert baseline == pytest.approx(float(mpjpe(np.broadcast_to(mean, gt_test.shape), gt_test).mean()))
    marker = json.load(open(os.path.join(root, ".complete")))
    assert marker["mean_pose_mpjpe_mm"] == pytest.approx(baseline, abs=1e-3)
