"""A COCO-format set with its own keypoints (here 5 joints) needs config only:
joints from the annotation file, flip pairs / sigmas / weights from DATASET.*."""
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.models import build_model

KEEP = [9, 10, 15, 16, 0]  # left/right wrist, left/right ankle, nose


@pytest.fixture
def five_joint_root(tmp_path, synthetic_root):
    root = tmp_path / "five"
    shutil.copytree(synthetic_root, root)
    for split in ("train2017", "val2017"):
        path = root / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        cat = data["categories"][0]
        cat["keypoints"] = [cat["keypoints"][k] for k in KEEP]
        cat["skeleton"] = [[1, 5], [2, 5]]
        for ann in data["annotations"]:
            kp = np.asarray(ann["keypoints"]).reshape(17, 3)[KEEP]
            ann["keypoints"] = kp.reshape(-1).tolist()
            ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        path.write_text(json.dumps(data))
    return str(root)


def five_cfg(root, out):
    return load_config(None, synthetic_opts(root, out) + [
        "DATASET.DATASET", "coco", "MODEL.NUM_JOINTS", "5", "DATASET.FLIP_PAIRS", "[[0, 1], [2, 3]]",
        "DATASET.OKS_SIGMAS", "[0.062, 0.062, 0.089, 0.089, 0.026]", "DATASET.UPPER_BODY_IDS", "[0, 1, 4]",
        "DATASET.JOINTS_WEIGHT", "[1.5, 1.5, 1.5, 1.5, 1.0]", "LOSS.USE_DIFFERENT_JOINTS_WEIGHT", "True"])


def test_five_joint_set_trains_and_evaluates(five_joint_root, tmp_path):
    cfg = five_cfg(five_joint_root, str(tmp_path / "out"))
    codec = build_codec(cfg)
    train_set = build_dataset(cfg, "train2017", True, codec)
    assert train_set.num_joints == 5 and train_set.flip_pairs == [(0, 1), (2, 3)]
    _, target, weight, _ = train_set[0]
    assert target.shape[0] == 5 and set(weight[:, 0].tolist()) <= {0.0, 1.0, 1.5}

    model = build_model(cfg, is_train=True)
    inputs, target, weight, _ = next(iter(torch.utils.data.DataLoader(train_set, batch_size=4)))
    out = model(inputs)
    assert out.shape[1] == 5
    build_loss(cfg)(out, target, weight).backward()

    val_set = build_dataset(cfg, "val2017", False, codec)
    preds = np.stack([np.concatenate([r["joints"][:, :2], r["joints_vis"][:, :1]], 1) for r in val_set.db])
    boxes = np.stack([[*r["center"], *r["scale"], np.prod(r["scale"] * 200), 1.0] for r in val_set.db])
    _, ap = val_set.evaluate(preds, boxes, [r["image_id"] for r in val_set.db], str(tmp_path))
    assert ap == pytest.approx(1.0)
    np.testing.assert_allclose(val_set.sigmas, [0.062, 0.062, 0.089, 0.089, 0.026])


def test_wrong_metadata_is_reported(five_joint_root, tmp_path):
    opts = ["DATASET.OKS_SIGMAS", "[0.1, 0.1]"]
    cfg = load_config(None, synthetic_opts(five_joint_root, str(tmp_path)) + [
        "DATASET.DATASET", "coco", "MODEL.NUM_JOINTS", "5", *opts])
    with pytest.raises(ValueError, match="OKS_SIGMAS needs 5 values"):
        build_dataset(cfg, "val2017", False, build_codec(cfg))
    mismatch = load_config(None, synthetic_opts(five_joint_root, str(tmp_path)) + [
        "DATASET.DATASET", "coco", "DATASET.OKS_SIGMAS", "[0.1, 0.1, 0.1, 0.1, 0.1]"])  # MODEL.NUM_JOINTS 17
    with pytest.raises(ValueError, match="MODEL.NUM_JOINTS = 17 but dataset coco has 5 joints"):
        build_dataset(mismatch, "val2017", False, build_codec(mismatch))
