"""Shared fixtures: a tiny synthetic COCO-format dataset and configs pointing at it."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from posezoo.config import load_config  # noqa: E402
from posezoo.datasets.synthetic import DETECTIONS_FILE, generate_synthetic_coco  # noqa: E402

SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
SHARED_DATA = os.path.join(SHARED, "data")
SPECS = os.path.join(SHARED, "specs")
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED),
                                  reason=f"{SHARED} is absent (the shared samples/specs live outside the repo)")

TINY_MODEL = ["MODEL.NAME", "pose_resnet", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
              "MODEL.SIGMA", "1", "MODEL.PRETRAINED", "''",
              "MODEL.EXTRA", "{NUM_LAYERS: 18, NUM_DECONV_FILTERS: [32, 32, 32], NUM_DECONV_KERNELS: [4, 4, 4]}"]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("synthetic"))
    generate_synthetic_coco(root, seed=3, num_train_images=12, num_val_images=6)
    return root


def synthetic_opts(root: str, out_dir: str) -> list:
    return ["DATASET.DATASET", "synthetic", "DATASET.ROOT", root, "DATASET.TRAIN_SET", "train2017",
            "DATASET.TEST_SET", "val2017", "OUTPUT_DIR", out_dir, "WORKERS", "0", "GPUS", "[0]",
            "TRAIN.BATCH_SIZE_PER_GPU", "8", "TEST.BATCH_SIZE_PER_GPU", "16", "TRAIN.END_EPOCH", "1",
            "TEST.USE_GT_BBOX", "True", "TEST.FLIP_TEST", "True", "TEST.POST_PROCESS", "True",
            "TEST.SHIFT_HEATMAP", "True", "TEST.COCO_BBOX_FILE",
            os.path.join(root, "person_detection_results", DETECTIONS_FILE), "TEST.IMAGE_THRE", "0.0"] + TINY_MODEL


@pytest.fixture
def synthetic_cfg(synthetic_root, tmp_path):
    """Read-only config for a tiny PoseResNet-18 on the tiny synthetic set."""
    return load_config(None, synthetic_opts(synthetic_root, str(tmp_path / "output")))
