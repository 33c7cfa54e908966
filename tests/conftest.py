"""Shared fixtures: a tiny synthetic COCO-format dataset and configs pointing at it."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import yaml

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from posezoo.config import load_config  # noqa: E402
from posezoo.datasets.synthetic import DETECTIONS_FILE, generate_synthetic_coco  # noqa: E402

SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
SHARED_DATA = os.path.join(SHARED, "data")
SPECS = os.path.join(SHARED, "specs")
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED),
                                  reason=f"{SHARED} is absent (the shared samples/specs live outside the repo)")

COCO_SAMPLES = os.path.join(SHARED_DATA, "coco_mmpose_tests")
MPII_SAMPLES = os.path.join(SHARED_DATA, "mpii_mmpose_tests")


def link_coco_samples(root, splits=("val2017",)) -> str:
    """The shared COCO samples in HRNet's layout under `root` (one annotation file and image
    folder per split), by symlinks, never copies; skips the test when they are absent."""
    if not os.path.isdir(COCO_SAMPLES):
        pytest.skip(f"{COCO_SAMPLES} is absent")
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split in splits:
        os.makedirs(os.path.join(root, "images", split))
        os.symlink(os.path.join(COCO_SAMPLES, "test_coco.json"),
                   os.path.join(root, "annotations", f"person_keypoints_{split}.json"))
        for name in os.listdir(COCO_SAMPLES):
            if name.endswith(".jpg"):
                os.symlink(os.path.join(COCO_SAMPLES, name), os.path.join(root, "images", split, name))
    return str(root)


def link_mpii_samples(root):
    """The shared MPII samples as ROOT/images + annot/valid.json, by symlinks; skips when absent."""
    if not os.path.isdir(MPII_SAMPLES):
        pytest.skip(f"{MPII_SAMPLES} is absent")
    os.makedirs(os.path.join(root, "annot"))
    os.makedirs(os.path.join(root, "images"))
    os.symlink(os.path.join(MPII_SAMPLES, "test_mpii.json"), os.path.join(root, "annot", "valid.json"))
    for name in os.listdir(MPII_SAMPLES):
        if name.endswith(".jpg"):
            os.symlink(os.path.join(MPII_SAMPLES, name), os.path.join(root, "images", name))
    return root


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


@pytest.fixture(scope="session")
def synthetic_nyu_root(tmp_path_factory) -> str:
    """A tiny synthetic NYU-layout dataset (depth PNGs, joint_data.mat, centres)."""
    from posezoo.datasets.synthetic_nyu import generate_synthetic_nyu

    root = str(tmp_path_factory.mktemp("synthetic_nyu"))
    generate_synthetic_nyu(root, seed=3, num_train=8, num_test=4)
    return root


@pytest.fixture
def synthetic_cfg(synthetic_root, tmp_path):
    """Read-only config for a tiny PoseResNet-18 on the tiny synthetic set."""
    return load_config(None, synthetic_opts(synthetic_root, str(tmp_path / "output")))


def write_cfg(path, opts) -> str:
    """A YAML file at `path` holding the KEY VALUE overrides `opts` (for tools run
    as subprocesses)."""
    cfg = {}
    for key, value in zip(opts[0::2], opts[1::2]):
        node = cfg
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def deterministic_state(model, seed=0):
    """A state dict drawn from a seeded torch.Generator in state-dict order,
    independent of any init code (the golden values of the official models were
    computed from it): conv weights N(0, 1/fan_in), BN weights 0.5 + N(0, 0.01),
    biases N(0, 0.01), running means N(0, 0.01), running vars U(0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(value.shape, generator=g) * 0.1
        elif value.dim() == 1:
            base = 0.5 if key.endswith("weight") else 0.0
            state[key] = base + 0.1 * torch.randn(value.shape, generator=g)
        else:
            state[key] = torch.randn(value.shape, generator=g) / math.sqrt(value[0].numel())
    return state


def assert_loads_spec_strictly(model, spec: dict, rename=lambda key: key) -> None:
    """A state dict built from an official checkpoint spec loads with strict=True,
    every tensor lands under its own key (each is a distinct constant), and the key
    order, parameter count and buffer size equal the official model's. `rename`
    gives the model's name of a file key where the loader renames (mmpose 0.x files)."""
    state = {k: torch.full(s, float(i)) if dtype == "float32" else torch.zeros(s, dtype=torch.int64)
             for i, (k, s, dtype) in enumerate(spec["state_dict"])}
    from posezoo.models import load_checkpoint

    load_checkpoint(model, state, strict=True)
    own = model.state_dict()
    assert list(own) == [rename(k) for k, _, _ in spec["state_dict"]]
    assert all(torch.equal(own[rename(k)], v) for k, v in state.items())
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    if "num_buffer_elements" in spec:
        assert sum(b.numel() for b in model.buffers()) == spec["num_buffer_elements"]


# The lifting component (codecs/lifting.py, models/lifting_mlp.py) on a few synthetic MoCap-style poses.
LIFTING_TINY = ["DATASET.DATASET", "synthetic_h36m_lifting", "MODEL.NAME", "lifting_mlp", "MODEL.TARGET_TYPE",
                "lifting", "MODEL.NUM_JOINTS", "17", "MODEL.EXTRA", "{LINEAR_SIZE: 32, NUM_BLOCKS: 2, DROPOUT: 0.5}",
                "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "test", "LIFTING.NUM_TRAIN", "64",
                "LIFTING.NUM_TEST", "16", "WORKERS", "0"]


def lifting_cfg(extra=()):
    return load_config(None, LIFTING_TINY + list(extra))


def pytest_configure(config):
    # tests read parameter values with float(); torch warns about it once per process
    config.addinivalue_line("filterwarnings",
                            "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning")
