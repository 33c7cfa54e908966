"""DATASET.MIX through tools/train.py: the one training path builds the mixed
loader (fixed-composition batches of synthetic Human3.6M frames and COCO-format
2D + ordinal people), trains a tiny c2f_vol on it and validates on the
Human3.6M test split alone."""
import json
import math

import torch

import train as train_tool
from conftest import synthetic_opts, write_cfg
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.synthetic_h36m import generate_synthetic_h36m
from posezoo.utils.distributed import DistContext

COCO_TO_H36M = [-1, 12, 14, 16, 11, 13, 15, -1, -1, -1, -1, 5, 7, 9, 6, 8, 10]


def test_train_py_trains_on_the_mix(synthetic_root, tmp_path):
    h36m_root = str(tmp_path / "h36m")
    generate_synthetic_h36m(h36m_root, seed=3, num_train=4, num_test=2)
    with open(f"{synthetic_root}/annotations/person_keypoints_train2017.json") as f:
        ids = [a["id"] for a in json.load(f)["annotations"]]
    eye = [[0 if i == j else (1 if i < j else -1) for j in range(17)] for i in range(17)]
    (tmp_path / "ord.json").write_text(json.dumps({"num_joints": 17, "annotations": {str(i): eye for i in ids}}))
    mix = [{"DATASET": "synthetic_h36m", "ROOT": h36m_root, "SET": "train"},
           {"DATASET": "synthetic", "ROOT": synthetic_root, "SET": "train2017",
            "ORDINAL_FILE": str(tmp_path / "ord.json"), "JOINTS": COCO_TO_H36M}]
    opts = synthetic_opts(synthetic_root, str(tmp_path / "out")) + [
        "DATASET.DATASET", "synthetic_h36m", "DATASET.ROOT", h36m_root, "DATASET.TRAIN_SET", "train",
        "DATASET.TEST_SET", "test", "DATASET.MIX", json.dumps(mix), "MODEL.NAME", "c2f_vol",
        "MODEL.TARGET_TYPE", "volumetric", "MODEL.NUM_JOINTS", "17", "MODEL.IMAGE_SIZE", "[64, 64]",
        "MODEL.HEATMAP_SIZE", "[16, 16]", "MODEL.EXTRA", json.dumps({"NUM_FEATURES": 8, "DEPTH": 2}),
        "VOLUMETRIC.RES_Z", "[1, 4]", "TRAIN.BATCH_SIZE_PER_GPU", "2", "TEST.BATCH_SIZE_PER_GPU", "2",
        "TRAIN.OPTIMIZER", "rmsprop", "TRAIN.LR", "0.00025", "TEST.FLIP_TEST", "False", "GPUS", "(0,)"]
    cfg = load_config(None, opts)
    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, build_codec(cfg))
    loader, sampler = train_tool._train_loader(cfg, train_set, DistContext(0, 1, 0, torch.device("cpu")),
                                               torch.Generator())
    assert len(loader) == 4  # 4 Human3.6M frames, one per batch of 2
    for _, _, _, meta in loader:
        assert meta["part"].tolist() == [0, 1]
        assert meta["has_depth"].tolist() == [True, False] and meta["has_ordinal"][1]
    perf = train_tool.main(["--cfg", write_cfg(tmp_path / "mix.yaml", opts)])
    assert math.isfinite(perf) and perf < 0  # -MPJPE on the Human3.6M test frames
