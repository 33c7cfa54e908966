"""DATASET.ORDINAL_FILE: per-person ordinal depth labels beside COCO-format 2D
labels reach the volumetric codec's targets (the CVPR 2018 2D + ordinal
samples), follow the flip augmentation, and are refused for codecs without
an ordinal loss."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.codecs.volumetric import ORDINAL_UNKNOWN, ordinal_from_depth
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.ordinal import flip_ordinal

VOLUMETRIC = ["MODEL.NAME", "c2f_vol", "MODEL.TARGET_TYPE", "volumetric", "VOLUMETRIC.RES_Z", "[1, 4]",
              "MODEL.EXTRA", "{}"]


def labelled_cfg(synthetic_root, tmp_path, *extra):
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path / "out")) + VOLUMETRIC)
    dataset = build_dataset(cfg, "train2017", False, build_codec(cfg))
    with open(os.path.join(synthetic_root, "annotations", "person_keypoints_train2017.json")) as f:
        ann_id = next(a["id"] for a in json.load(f)["annotations"] if a["num_keypoints"] > 0)
    codes = ordinal_from_depth(np.random.default_rng(0).normal(0, 300, 17), same_depth=50.0)
    codes[2, 5] = codes[5, 2] = ORDINAL_UNKNOWN
    path = tmp_path / "ordinal.json"
    path.write_text(json.dumps({"num_joints": 17, "annotations": {str(ann_id): codes.tolist()}}))
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path / "out")) + VOLUMETRIC +
                      ["DATASET.ORDINAL_FILE", str(path), *extra])
    row = next(i for i, r in enumerate(dataset.db) if r["ordinal_key"] == str(ann_id))
    return cfg, codes, row


def test_labels_reach_the_targets_and_unlisted_people_are_unknown(synthetic_root, tmp_path):
    cfg, codes, row = labelled_cfg(synthetic_root, tmp_path)
    dataset = build_dataset(cfg, "train2017", False, build_codec(cfg))
    _, target, _, _ = dataset[row]
    for stack in target:
        np.testing.assert_array_equal(stack["ordinal"].numpy(), codes.astype(np.float32))
        assert torch.all(stack["depth_weight"] == 0)  # 2D + ordinal: no metric depth
    _, other, _, _ = dataset[(row + 1) % len(dataset)]
    assert torch.all(other[-1]["ordinal"] == ORDINAL_UNKNOWN)


def test_labels_follow_the_flip(synthetic_root, tmp_path):
    cfg, codes, row = labelled_cfg(synthetic_root, tmp_path, "DATASET.FLIP", "True", "DATASET.SCALE_FACTOR", "0.0",
                                   "DATASET.ROT_FACTOR", "0", "DATASET.PROB_HALF_BODY", "0.0")
    dataset = build_dataset(cfg, "train2017", True, build_codec(cfg))
    flipped = flip_ordinal(codes, dataset.flip_pairs).astype(np.float32)
    seen = set()
    torch.manual_seed(0)
    for _ in range(12):
        got = dataset[row][1][-1]["ordinal"].numpy()
        assert np.array_equal(got, codes) or np.array_equal(got, flipped)
        seen.add(np.array_equal(got, flipped))
    assert seen == {False, True}
    # a flip keeps the depth order: left shoulder (5) vs left hip (11) becomes right shoulder (6) vs right hip (12)
    assert flipped[6, 12] == codes[5, 11]


def test_a_codec_without_an_ordinal_loss_refuses_the_file(synthetic_root, tmp_path):
    path = tmp_path / "ordinal.json"
    path.write_text(json.dumps({"num_joints": 17, "annotations": {}}))
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path / "out")) + ["DATASET.ORDINAL_FILE", str(path)])
    with pytest.raises(ValueError, match="takes no ordinal labels .*MODEL.TARGET_TYPE volumetric"):
        build_dataset(cfg, "train2017", False, build_codec(cfg))
